package cli

import (
	"strings"
	"testing"
	"time"

	"whalemountain/backend/runner"
)

func TestRenderRunners(t *testing.T) {
	now := time.Date(2026, 12, 2, 8, 30, 0, 0, time.UTC)
	busy := runner.Runner{Owner: "alice", Name: "alice-demo", Project: "alice/demo", State: "running", Status: "Up 3 minutes",
		Online: runner.Online, LastContact: now.Add(-4 * time.Second),
		JobsNow:    []runner.Job{{Name: "build-7", State: "running", StartedAt: now.Add(-40 * time.Second)}},
		RecentJobs: []runner.Job{{Name: "test-6", State: "exited", ExitCode: 1, Created: now.Add(-3 * time.Minute)}}}
	for _, tc := range []struct {
		list      []runner.Runner
		withOwner bool
		want      []string
		not       []string
	}{
		{nil, false, []string{"No runners. Set one up with: runner token --project PATH < token.txt"}, nil},
		{[]runner.Runner{{Owner: "alice", Name: "alice-demo", Project: "alice/demo", State: "running", Status: "Up 3 minutes"}}, false,
			[]string{"NAME         PROJECT      STATE     JOBS   ONLINE   LAST CONTACT   STATUS", "alice-demo   alice/demo   running   0      ?        ?              Up 3 minutes"},
			[]string{"alice-demo: "}},
		{[]runner.Runner{busy}, false,
			[]string{"alice-demo   alice/demo   running   1      online   4s ago         Up 3 minutes",
				"alice-demo: now build-7 (running, started 40s ago); last test-6 (exited 1, started 3m ago)"}, nil},
		{[]runner.Runner{{Owner: "bob", Name: "default", State: "missing", Status: "gone\x1b[2J", Online: runner.NeverContacted}}, true,
			[]string{"OWNER   NAME      PROJECT   STATE     JOBS   ONLINE   LAST CONTACT   STATUS", "bob     default   -         missing   0      never    never          gone"}, nil},
	} {
		got := RenderRunners(tc.list, tc.withOwner, now)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("RenderRunners lacks %q:\n%s", w, got)
			}
		}
		for _, w := range tc.not {
			if strings.Contains(got, w) {
				t.Errorf("RenderRunners has %q:\n%s", w, got)
			}
		}
		if strings.Contains(got, "\x1b") {
			t.Errorf("an escape reached the table: %q", got)
		}
	}
}

func TestHideToken(t *testing.T) {
	if got := hideToken("glrt-abcdefghijklmnopqrstuvwxyz"); strings.Contains(got, "abcdef") {
		t.Errorf("hideToken kept the token: %q", got)
	}
	if got := hideToken("status"); got != "status" {
		t.Errorf("hideToken(status) = %q", got)
	}
}
