package main

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzConfigFile: any file given as the configuration is read or refused with an error;
// nothing in it can crash the server at start.
func FuzzConfigFile(f *testing.F) {
	for _, s := range []string{"listen: :2222\n", "limits:\n  login_grace: banana\n", "docker:\n  labels: {a: b}\n", "images:\n  allow: [\"**\"]\n", "{", "tas: [a, b]\nunknown: 1\n", "limits:\n  max_startups: 1:2\n"} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		p := filepath.Join(dir, "wm.yaml")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		c := defaultConfig()
		if err := c.loadFile(p); err != nil {
			return
		}
		_ = c.validate()
	})
}
