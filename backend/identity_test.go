package backend_test

import (
	"testing"

	"whalemountain/backend"
)

func TestParseRef(t *testing.T) {
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	ta := backend.Identity{User: "tom", Role: backend.RoleTA}
	short := func(n string) bool { return n != "" && len(n) <= 8 }
	for _, tc := range []struct {
		id         backend.Identity
		ref, owner string
		name       string
		ok         bool
	}{
		{alice, "box", "alice", "box", true},
		{alice, "alice/box", "alice", "box", true},
		{alice, "bob/box", "", "", false},
		{ta, "bob/box", "bob", "box", true},
		{ta, "bo b/box", "", "", false},
		{alice, "toolongname", "", "", false},
		{alice, "alice/", "", "", false},
	} {
		owner, name, ok := backend.ParseRef(tc.id, tc.ref, short)
		if owner != tc.owner || name != tc.name || ok != tc.ok {
			t.Errorf("%s: ParseRef(%q) = %q %q %v, want %q %q %v", tc.id, tc.ref, owner, name, ok, tc.owner, tc.name, tc.ok)
		}
	}
	for u, want := range map[string]bool{"alice": true, "a.b_c-d": true, "_x": true, "": false, ".a": false, "a.": false, "a/b": false} {
		if backend.ValidUser(u) != want {
			t.Errorf("ValidUser(%q) != %v", u, want)
		}
	}
}
