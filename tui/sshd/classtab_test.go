package sshd

import (
	"testing"

	"whalemountain/backend"
	"whalemountain/tui/dashboard"
)

// Only a TA's dashboard has the Class tab, after the five others.
func TestClassTabOnlyForTAs(t *testing.T) {
	srv := &Server{perUser: map[string]int{}, sessions: map[*session]struct{}{}}
	for _, c := range []struct {
		role  backend.Role
		class bool
	}{{backend.RoleStudent, false}, {backend.RoleTA, true}} {
		se := &session{srv: srv, id: backend.Identity{User: "u", Role: c.role}}
		tabs := se.tabs(dashboard.DefaultStyles())
		dashboard.New(dashboard.Info{}, dashboard.DefaultStyles(), tabs...).Close()
		var titles []string
		for _, tab := range tabs {
			titles = append(titles, tab.Title())
		}
		want := 5
		if c.class {
			want = 6
		}
		if len(tabs) != want || titles[4] != "Runner" {
			t.Fatalf("%s: tabs %v", c.role, titles)
		}
		if c.class && titles[5] != "Class" {
			t.Fatalf("%s: tabs %v, want Class sixth", c.role, titles)
		}
	}
}
