package docker

import (
	"strings"
	"testing"

	"github.com/distribution/reference"

	"whalemountain/backend"
)

// TestOwnNamespace: the one rule for "the caller's own registry namespace", used both for
// sending the server's registry credential with a pull and for removing tags.
func TestOwnNamespace(t *testing.T) {
	var (
		alice = backend.Identity{User: "alice", Role: backend.RoleStudent}
		al    = backend.Identity{User: "al", Role: backend.RoleStudent}
		upper = backend.Identity{User: "Alice", Role: backend.RoleStudent}
		tina  = backend.Identity{User: "tina", Role: backend.RoleTA}
	)
	const ns = "registry.ie.example"
	cases := []struct {
		name     string
		who      backend.Identity
		ns, ref  string
		own      bool // ownNamespace
		mayRmTag bool // mayRemoveTag: TAs any tag
	}{
		{"student own", alice, ns, "registry.ie.example/alice/ml:latest", true, true},
		{"student own, no tag", alice, ns, "registry.ie.example/alice/ml", true, true},
		{"nested path", alice, ns, "registry.ie.example/alice/deep/er/x:1", true, true},
		{"other student", alice, ns, "registry.ie.example/bob/ml:1", false, false},
		{"prefix of another user", al, ns, "registry.ie.example/alice/ml:1", false, false},
		{"another user's prefix", alice, ns, "registry.ie.example/al/ml:1", false, false},
		{"longer user", alice, ns, "registry.ie.example/alice2/ml:1", false, false},
		{"repository named after the user", alice, ns, "registry.ie.example/alice:1", false, false},
		{"user in capitals", upper, ns, "registry.ie.example/alice/ml:1", true, true},
		{"registry host in capitals", alice, ns, "Registry.IE.example/alice/ml:1", true, true},
		{"namespace in capitals", alice, "Registry.IE.Example", "registry.ie.example/alice/ml:1", true, true},
		{"another registry", alice, ns, "other.example/alice/ml:1", false, false},
		{"a registry that starts the same", alice, ns, "registry.ie.example.evil.org/alice/ml:1", false, false},
		{"docker hub", alice, ns, "alice/ml:1", false, false},
		{"no namespace", alice, "", "registry.ie.example/alice/ml:1", false, false},
		{"no namespace, docker hub", alice, "", "alice/ml:1", false, false},
		{"host with port", alice, "registry.ie.example:5000", "registry.ie.example:5000/alice/ml:1", true, true},
		{"host with port, other port", alice, "registry.ie.example:5000", "registry.ie.example:5001/alice/ml:1", false, false},
		{"host with port, none given", alice, "registry.ie.example:5000", "registry.ie.example/alice/ml:1", false, false},
		{"host without port, port given", alice, ns, "registry.ie.example:5000/alice/ml:1", false, false},
		{"namespace with path", alice, "registry.ie.example/students", "registry.ie.example/students/alice/ml:1", true, true},
		{"namespace with path and slash", alice, "registry.ie.example/students/", "registry.ie.example/students/alice/ml:1", true, true},
		{"namespace with path, outside it", alice, "registry.ie.example/students", "registry.ie.example/alice/ml:1", false, false},
		{"namespace with path, a user named after it", backend.Identity{User: "students", Role: backend.RoleStudent}, "registry.ie.example/students", "registry.ie.example/students/alice/ml:1", false, false},
		{"TA own", tina, ns, "registry.ie.example/tina/x:1", true, true},
		{"TA on a student's", tina, ns, "registry.ie.example/alice/ml:1", false, true},
		{"TA without namespace", tina, "", "ubuntu:24.04", false, true},
		{"no role", backend.Identity{User: "alice"}, ns, "registry.ie.example/alice/ml:1", false, false},
		{"nobody", backend.Identity{}, ns, "registry.ie.example/alice/ml:1", false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			named, err := reference.ParseNormalizedNamed(c.ref)
			if err != nil {
				t.Fatal(err)
			}
			if got := ownNamespace(c.who, c.ns, named); got != c.own {
				t.Errorf("ownNamespace(%s, %q, %s) = %v, want %v", c.who.User, c.ns, c.ref, got, c.own)
			}
			if got := mayRemoveTag(c.who, c.ns, reference.TagNameOnly(named)); got != c.mayRmTag {
				t.Errorf("mayRemoveTag(%s, %q, %s) = %v, want %v", c.who.User, c.ns, c.ref, got, c.mayRmTag)
			}
			// The credential follows the same rule, plus TAs.
			is := &ImageService{policy: compiledPolicy{ns: c.ns}, auth: map[string]registryAuth{}}
			named, _ = reference.ParseNormalizedNamed(c.ref)
			is.auth[strings.ToLower(reference.Domain(named))] = registryAuth{header: "h"}
			if got, want := is.authFor(c.who, named) != "", c.own || c.who.IsTA(); got != want {
				t.Errorf("authFor(%s, %s) sends the credential: %v, want %v", c.who.User, c.ref, got, want)
			}
		})
	}
}
