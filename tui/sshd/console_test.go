package sshd

import "testing"

func TestInitialWhat(t *testing.T) {
	for _, c := range []struct {
		args      []string
		subsystem string
		pty       bool
		want      string
	}{
		{nil, "", true, "dashboard"},
		{nil, "", false, "command help"},
		{nil, "sftp", false, "sftp"},
		{[]string{"shell", "box"}, "", true, "shell in box"},
		{[]string{"shell", "box", "python3", "train.py"}, "", true, "shell in box"},
		{[]string{"shell", "--", "box", "top"}, "", true, "shell in box"},
		{[]string{"shell", "b\x1b[2Jox"}, "", true, `shell in b\x1b[2Jox`},
		{[]string{"join", "alice"}, "", true, "watching alice"},
		{[]string{"ps", "-a"}, "", false, "command ps"},
		{[]string{"docker", "system", "dial-stdio"}, "", false, "docker API"},
	} {
		if got := initialWhat(c.args, c.subsystem, c.pty); got != c.want {
			t.Errorf("initialWhat(%q, %q, %v) = %q, want %q", c.args, c.subsystem, c.pty, got, c.want)
		}
	}
}
