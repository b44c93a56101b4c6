package cli

import (
	"strings"
	"testing"

	"whalemountain/backend/runner"
)

func TestRenderRunners(t *testing.T) {
	for _, tc := range []struct {
		list      []runner.Runner
		withOwner bool
		want      []string
	}{
		{nil, false, []string{"No runners. Set one up with: runner token --project PATH < token.txt"}},
		{[]runner.Runner{{Owner: "alice", Name: "alice-demo", Project: "alice/demo", State: "running", Status: "Up 3 minutes"}}, false,
			[]string{"NAME         PROJECT      STATE     STATUS", "alice-demo   alice/demo   running   Up 3 minutes"}},
		{[]runner.Runner{{Owner: "bob", Name: "default", State: "missing", Status: "gone\x1b[2J"}}, true,
			[]string{"OWNER   NAME      PROJECT   STATE     STATUS", "bob     default   -         missing   gone"}},
	} {
		got := RenderRunners(tc.list, tc.withOwner)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("RenderRunners lacks %q:\n%s", w, got)
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
