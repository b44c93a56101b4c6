package docker

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"whalemountain/backend"
)

func TestNoticesKeptOnDisk(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "notices")
	s := newService(DefaultConfig(), nil, nil)
	if err := s.SetNoticeDir(dir); err != nil {
		t.Fatal(err)
	}
	started := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := s.notices.addNotice("alice", Notice{Container: "box", Action: "stop", By: "tina", ByRole: "ta", Reason: "the exam needs the GPU"}); err != nil {
		t.Fatal(err)
	}
	if err := s.notices.recordStop("alice", "id1", started, StopInfo{By: "tina", ByRole: "ta", Reason: "the exam needs the GPU"}); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "alice.json"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("alice's file: %v %v", fi, err)
	}

	// A new server reads it back: the notice is unseen, the stop still marks that run.
	s2 := newService(DefaultConfig(), nil, nil)
	if err := s2.SetNoticeDir(dir); err != nil {
		t.Fatal(err)
	}
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	ns, seen := s2.Notices(alice)
	if len(ns) != 1 || seen != 0 || ns[0].Seq != 1 || ns[0].By != "tina" || ns[0].Reason != "the exam needs the GPU" || ns[0].At.IsZero() {
		t.Fatalf("notices after a restart: %+v seen %d", ns, seen)
	}
	if ns, _ := s2.Notices(backend.Identity{User: "bob", Role: backend.RoleStudent}); len(ns) != 0 {
		t.Errorf("bob sees alice's notices: %+v", ns)
	}
	s2.MarkNoticesSeen(alice, 1)
	s3 := newService(DefaultConfig(), nil, nil)
	_ = s3.SetNoticeDir(dir)
	if _, seen := s3.Notices(alice); seen != 1 {
		t.Errorf("seen mark not kept: %d", seen)
	}

	c := Container{ID: "id1", Owner: "alice", Name: "box", State: "exited", ExitCode: 143, StartedAt: started}
	s3.notices.markStopped(&c)
	if c.Stopped == nil || c.Stopped.By != "tina" {
		t.Fatalf("the stopped run is not marked: %+v", c.Stopped)
	}
	// Started again (another run), or running: the stop no longer counts.
	again := c
	again.StartedAt = started.Add(time.Hour)
	s3.notices.markStopped(&again)
	running := c
	running.State = "running"
	s3.notices.markStopped(&running)
	other := c
	other.ID = "id2"
	s3.notices.markStopped(&other)
	if again.Stopped != nil || running.Stopped != nil || other.Stopped != nil {
		t.Errorf("marked what was not stopped: %v %v %v", again.Stopped, running.Stopped, other.Stopped)
	}
	// Removed: forgotten.
	_ = s3.notices.forget("alice", "id1")
	s3.notices.markStopped(&c)
	if c.Stopped != nil {
		t.Error("a forgotten stop still marks")
	}
}

func TestNoticesBounded(t *testing.T) {
	s := newService(DefaultConfig(), nil, nil)
	for i := range maxNotices + 5 {
		_ = s.notices.addNotice("alice", Notice{Container: "box", Action: "rm", By: "tina", Reason: strings.Repeat("x", i)})
	}
	ns, _ := s.Notices(backend.Identity{User: "alice", Role: backend.RoleStudent})
	if len(ns) != maxNotices || ns[len(ns)-1].Seq != maxNotices+5 {
		t.Errorf("%d notices kept, last seq %d", len(ns), ns[len(ns)-1].Seq)
	}
}

func TestValidateReason(t *testing.T) {
	for in, want := range map[string]string{
		"":                          "",
		"  the exam needs the GPU ": "the exam needs the GPU",
		"試験でGPUを使います":               "試験でGPUを使います",
	} {
		got, err := ValidateReason(in)
		if err != nil || got != want {
			t.Errorf("ValidateReason(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"two\nlines", "esc\x1b[2J", strings.Repeat("x", 201), "\xff"} {
		if _, err := ValidateReason(bad); err == nil {
			t.Errorf("ValidateReason(%q) accepted", bad)
		}
	}
}
