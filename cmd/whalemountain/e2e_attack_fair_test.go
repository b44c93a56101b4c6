package main

import (
	"strings"
	"testing"
)

// fairRows: the GPU waiting list, GPU-hours and keeps. mallory neither sees nor cancels nor
// moves another student's waiting request (cancelling one answers exactly as for a request
// nobody made), reads nobody's GPU-hours but her own, and cannot keep a container from idle
// stops.
func (f *attackFixture) fairRows(tb *attackTable) {
	noAlice := func(args ...string) {
		tb.add("cli "+args[0], "mallory", shownArgs(args), "exit 0, nothing of alice's", func(t *testing.T) (string, bool) {
			r := f.goRun(f.mc, false, args...)
			return describe(r), r.Code == 0 && !strings.Contains(r.Stdout+r.Stderr, "alice")
		})
	}
	noAlice("waiting")
	noAlice("waiting", "--json")
	noAlice("usage", "--json", "--since", "30d")
	for _, ref := range []string{"alice/box", "alice/" + f.box.ID[:12], "ALICE/box", "alice/../mallory/box"} {
		args := []string{"waiting", "cancel", ref}
		tb.add("cli waiting", "mallory", shownArgs(args), `"no waiting request: `+ref+`", as for nobody's`, func(t *testing.T) (string, bool) {
			r := f.goRun(f.mc, false, args...)
			none := f.goRun(f.mc, false, "waiting", "cancel", "nobody/box")
			same := strings.ReplaceAll(none.Stderr, "nobody/box", ref) == r.Stderr
			return describe(r), r.Code == 1 && r.Stdout == "" && same && r.Stderr == "error: no waiting request: "+ref+"\n"
		})
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"waiting", "move", "alice/box", "--to", "1"}, "only TAs move waiting requests"},
		{[]string{"keep", "alice/box", "--for", "48h"}, "only TAs keep containers from idle stops"},
		{[]string{"keep", "box", "--for", "48h"}, "only TAs keep containers from idle stops"},
		{[]string{"usage", "--user", "alice"}, "you may read your own GPU-hours only"},
	} {
		tb.add("cli "+tc.args[0], "mallory", shownArgs(tc.args), tc.want+", nothing of alice's", func(t *testing.T) (string, bool) {
			r := f.goRun(f.mc, false, tc.args...)
			return describe(r), r.Code == 1 && r.Stdout == "" && r.Stderr == "error: "+tc.want+"\n"
		})
	}
}
