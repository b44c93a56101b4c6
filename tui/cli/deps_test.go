package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
)

// noticeBoard is a backend that keeps notices and can do nothing else.
type noticeBoard struct {
	ns   []docker.Notice
	seen int64
}

func (b *noticeBoard) Notices(backend.Identity) ([]docker.Notice, int64) { return b.ns, b.seen }
func (b *noticeBoard) MarkNoticesSeen(_ backend.Identity, seq int64)     { b.seen = seq }

// TestNoticesFromTheirOwnBackend: the notices command needs only Deps.Notices, whatever else
// is (not) there; without one it says containers are not available.
func TestNoticesFromTheirOwnBackend(t *testing.T) {
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	run := func(deps Deps) (int, string, string) {
		var out, errb bytes.Buffer
		env := Env{Ctx: context.Background(), Identity: alice, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
			Prefix: "ssh -p 2222 gpu1", Deps: deps}
		return Run(env, []string{"notices"}), out.String(), errb.String()
	}
	b := &noticeBoard{ns: []docker.Notice{{Seq: 3, At: time.Now(), Container: "box", Action: "stop", By: "tina", ByRole: string(backend.RoleTA), Reason: "exam"}}}
	code, out, errs := run(Deps{Notices: b})
	if code != ExitOK || !strings.Contains(out, "tina (TA) stopped your container box: exam") || errs != "" {
		t.Errorf("notices = %d, %q, %q", code, out, errs)
	}
	if b.seen != 3 {
		t.Errorf("seen mark = %d, want 3", b.seen)
	}
	code, _, errs = run(Deps{})
	if code != ExitFail || !strings.Contains(errs, "containers are not available on this server") {
		t.Errorf("without notices = %d, %q", code, errs)
	}
}
