package files

import (
	"path"
	"strings"
	"testing"
)

// FuzzResolve: a virtual path resolves to a clean path inside one place, or to nothing; no
// form of "..", NUL or doubled slash reaches a place.
func FuzzResolve(f *testing.F) {
	for _, s := range []string{"/", "/home", "/home/a/../b", "/containers/box/etc/passwd", "/containers/../home", "/containers/BOX/x", "/sif/x.sif", "//containers", "/containers/box\x00/x", "/containers/box/../../etc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		n, err := resolve(p)
		if err != nil {
			return
		}
		if n.kind != nodePlace {
			return
		}
		if !strings.HasPrefix(n.path, "/") || path.Clean(n.path) != n.path || strings.Contains(n.path, "\x00") {
			t.Fatalf("resolve(%q) gave the path %q", p, n.path)
		}
		if back := n.virtual(n.path); back != p && back+"/" != p && !(n.path == "/" && back == p) {
			t.Fatalf("resolve(%q) comes back as %q", p, back)
		}
	})
}
