package sshd

import (
	"testing"

	"whalemountain/backend"
)

func TestSessionUses(t *testing.T) {
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	tina := backend.Identity{User: "tina", Role: backend.RoleTA}
	for _, c := range []struct {
		id          backend.Identity
		what        string
		args        []string
		owner, name string
		want        bool
	}{
		{alice, "dashboard", nil, "alice", "box", false},
		{alice, "shell in box", nil, "alice", "box", true},
		{alice, "shell in box", nil, "alice", "other", false},
		{tina, "shell in alice/box", nil, "alice", "box", true},
		{tina, "shell in box", nil, "alice", "box", false},
		{alice, "command exec", []string{"exec", "box", "--", "ls"}, "alice", "box", true},
		{alice, "command exec", []string{"exec", "--", "box"}, "alice", "box", false},
		{alice, "command attach", []string{"attach", "box"}, "alice", "box", true},
		{alice, "command shell", []string{"shell", "-x", "box", "python3"}, "alice", "box", true},
		{alice, "command logs", []string{"logs", "box"}, "alice", "box", false},
		{alice, "sftp", nil, "alice", "box", true},
		{alice, "shell in pod/box", nil, "pod", "box", false},
		{alice, "shell in pod/box", nil, "alice", "box", false},
		{alice, "sftp", nil, "bob", "box", false},
		{alice, "docker API", nil, "alice", "any", true},
		{tina, "command exec", []string{"exec", "alice/box", "--", "ls"}, "alice", "box", true},
	} {
		if got := sessionUses(c.id, c.what, c.args, c.owner, c.name); got != c.want {
			t.Errorf("%s %q %v uses %s/%s = %v, want %v", c.id.User, c.what, c.args, c.owner, c.name, got, c.want)
		}
	}
}
