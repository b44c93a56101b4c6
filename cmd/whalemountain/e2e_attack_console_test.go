package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// --- rows: the class console (who, audit, notices, wall, presets) ---

// consoleRows: a student asks the console's verbs about alice; nothing of hers comes back.
func (f *attackFixture) consoleRows(tb *attackTable) {
	noAlice := func(args ...string) {
		tb.add("cli "+args[0], "mallory", shownArgs(args), "exit 0, nothing of alice's", func(t *testing.T) (string, bool) {
			r := f.goRun(f.mc, false, args...)
			return describe(r), r.Code == 0 && !strings.Contains(r.Stdout+r.Stderr, "alice")
		})
	}
	noAlice("who")
	noAlice("who", "--json")
	noAlice("notices", "--json")
	noAlice("presets", "--json")
	tb.add("cli audit", "mallory", "audit --json", "mallory's own entries only", func(t *testing.T) (string, bool) {
		r := f.goRun(f.mc, false, "audit", "--json")
		ok := r.Code == 0 && strings.TrimSpace(r.Stdout) != ""
		for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			var e struct{ User string }
			if json.Unmarshal([]byte(l), &e) != nil || e.User != "mallory" {
				ok = false
			}
		}
		return describe(r), ok
	})
	for _, args := range [][]string{
		{"audit", "--user", "alice"},
		{"audit", "--user", "alice", "--json", "-f"},
		{"wall", "alice: your box is gone"},
		{"run", "--preset", "ta-only"},
	} {
		tb.add("cli "+args[0], "mallory", shownArgs(args), "refused, nothing of alice's, nothing sent or made", func(t *testing.T) (string, bool) {
			r := f.goRun(f.mc, false, args...)
			return describe(r), r.Code != 0 && r.Stdout == "" && !strings.Contains(r.Stderr, "your box")
		})
	}
}
