package docker

import (
	"strings"
	"testing"
	"unicode/utf8"

	"whalemountain/backend"
)

// FuzzParseRef: whatever a student types, a reference resolves to that student's own
// containers or to nothing, with a valid name; shown never lets a control character through.
func FuzzParseRef(f *testing.F) {
	for _, s := range []string{"box", "alice/box", "bob/box", "wm-bob-box", "../box", "box\x1b[31m", "BOX", "b\u03bfx", " box", "alice//box", "a/b/c", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	f.Fuzz(func(t *testing.T, ref string) {
		tg, err := parseRef(alice, ref)
		if err == nil {
			if tg.owner != "alice" || ValidateName(tg.name) != nil {
				t.Fatalf("%q resolved to %s/%s", ref, tg.owner, tg.name)
			}
		}
		s := shown(ref)
		for _, r := range s {
			if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == '\u202e' {
				t.Fatalf("shown(%q) = %q keeps %U", ref, s, r)
			}
		}
		if !utf8.ValidString(s) {
			t.Fatalf("shown(%q) is not UTF-8: %q", ref, s)
		}
	})
}

// FuzzParseImage: a reference either parses to a form that parses again to itself, or is
// refused with an error that names it safely.
func FuzzParseImage(f *testing.F) {
	for _, s := range []string{"ubuntu:24.04", "registry.example.org/alice/ml:latest", "127.0.0.1:5000/x/y:1", "a@sha256:" + strings.Repeat("a", 64), "UPPER/case", "x:y:z", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ref string) {
		got, err := ParseImage(ref)
		if err != nil {
			if strings.ContainsAny(err.Error(), "\x1b\x07\n") {
				t.Fatalf("error for %q carries control characters: %q", ref, err)
			}
			return
		}
		again, err := ParseImage(got)
		if err != nil || again != got {
			t.Fatalf("ParseImage(%q) = %q, and again %q, %v", ref, got, again, err)
		}
	})
}
