package termsafe

import (
	"testing"
	"unicode/utf8"
)

// FuzzLine: nothing a container name, a log line or an error can hold reaches a terminal as
// a control: no C0, DEL or C1 character in Line; only newlines and tabs besides in Text;
// always UTF-8.
func FuzzLine(f *testing.F) {
	for _, s := range []string{"box", "\x1b[31mred\x1b[0m", "\x1b]0;title\x07", "a\nb\r\n", "\xff\xfe", "\u009b31m", "tab\there"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, mode := range []struct {
			name string
			out  string
			nl   bool
		}{{"Line", Line(s), false}, {"Text", Text(s), true}} {
			if !utf8.ValidString(mode.out) {
				t.Fatalf("%s(%q) = %q is not UTF-8", mode.name, s, mode.out)
			}
			for _, r := range mode.out {
				if (r == '\n' || r == '\t') && mode.nl {
					continue
				}
				if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
					t.Fatalf("%s(%q) = %q keeps %U", mode.name, s, mode.out, r)
				}
			}
		}
	})
}
