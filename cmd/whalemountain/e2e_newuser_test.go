package main

// End-to-end tests of what a new user meets first, and of what the administrator reads at
// start-up about roles.

import (
	"strings"
	"testing"
)

// TestE2EStartupLogsRoles: one start-up line says who the TAs are and where roles come
// from (the config's tas, the GitLab group and its minimum access level).
func TestE2EStartupLogsRoles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, config string
		want         []string
	}{
		{"tas and a GitLab group",
			"tas: [carol, dave]\ngitlab:\n  url: http://127.0.0.1:1\n  ta_group: dept/tas\n  ta_min_access_level: 40\n",
			[]string{"tas=carol,dave", "gitlab_group=dept/tas", `min_access_level="40 (maintainer)"`, "gitlab=http://127.0.0.1:1"}},
		{"tas only", "tas: [carol]\n", []string{"tas=carol", "gitlab_group=none"}},
		{"nobody", "", []string{"tas=none", "gitlab_group=none"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverOptions{Config: c.config})
			var lines []string
			for _, line := range strings.Split(s.Log(), "\n") {
				if strings.Contains(line, "msg=\"roles:") {
					lines = append(lines, line)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("want one start-up line about roles, got %d:\n%s", len(lines), s.Log())
			}
			for _, w := range c.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("the roles line lacks %s:\n%s", w, lines[0])
				}
			}
		})
	}
}
