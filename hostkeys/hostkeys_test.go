package hostkeys

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadOrCreateKeepsFingerprint(t *testing.T) {
	for _, kind := range []Kind{Ed25519, RSA} {
		t.Run(string(kind), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "host_"+string(kind))
			first, err := LoadOrCreate(path, kind)
			if err != nil {
				t.Fatal(err)
			}
			if !first.Created || !strings.HasPrefix(first.Fingerprint, "SHA256:") {
				t.Fatalf("first load: created=%v fingerprint=%q", first.Created, first.Fingerprint)
			}
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm() != 0o600 {
				t.Fatalf("mode %04o, want 0600", st.Mode().Perm())
			}
			dir, _ := os.Stat(filepath.Dir(path))
			if dir.Mode().Perm() != 0o700 {
				t.Fatalf("dir mode %04o, want 0700", dir.Mode().Perm())
			}
			second, err := LoadOrCreate(path, kind)
			if err != nil {
				t.Fatal(err)
			}
			if second.Created || second.Fingerprint != first.Fingerprint {
				t.Fatalf("second load: created=%v fingerprint %s != %s", second.Created, second.Fingerprint, first.Fingerprint)
			}
		})
	}
}

func TestLoadOrCreateRefuses(t *testing.T) {
	dir := t.TempDir()
	key, err := LoadOrCreate(filepath.Join(dir, "k"), Ed25519)
	if err != nil {
		t.Fatal(err)
	}
	open := filepath.Join(dir, "open")
	if err := os.WriteFile(open, key.PEM, 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage")
	if err := os.WriteFile(garbage, []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, path string
		kind       Kind
		want       string
	}{
		{"world readable", open, Ed25519, "too open"},
		{"garbage", garbage, Ed25519, "parse"},
		{"wrong kind", key.Path, RSA, "holds a ed25519 key"},
		{"unknown kind", key.Path, Kind("dsa"), "unknown kind"},
		{"directory", dir, Ed25519, "not a regular file"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := LoadOrCreate(c.path, c.kind)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want it to mention %q", err, c.want)
			}
		})
	}
	// The refused file is left exactly as it was.
	if st, _ := os.Stat(open); st.Mode().Perm() != 0o644 {
		t.Fatalf("refused key file was changed: %04o", st.Mode().Perm())
	}
}
