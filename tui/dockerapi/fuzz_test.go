package dockerapi

import (
	"encoding/json"
	"testing"
)

// FuzzParseFilters: the filters parameter of any request parses or is refused, never
// panics, and yields only the keys it holds.
func FuzzParseFilters(f *testing.F) {
	for _, seed := range []string{``, `{"label":{"a=b":true}}`, `{"name":["box"]}`, `{"x":{"y":false}}`, `{"a":"b"}`, `[]`} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseFilters(s)
		if err != nil {
			return
		}
		var top map[string]json.RawMessage
		_ = json.Unmarshal([]byte(s), &top)
		for k := range got {
			if _, ok := top[k]; !ok {
				t.Fatalf("key %q is not in %q", k, s)
			}
		}
	})
}
