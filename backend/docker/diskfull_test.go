package docker_test

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"whalemountain/backend"
	"whalemountain/backend/audit"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// disk stands for the file system of the data dir: when full, appends fail with ENOSPC and
// it reports no room, as a full disk does.
type disk struct {
	mu   sync.Mutex
	f    *os.File
	full bool
}

func (d *disk) set(full bool) { d.mu.Lock(); d.full = full; d.mu.Unlock() }

func (d *disk) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full {
		return 0, &os.PathError{Op: "write", Path: d.f.Name(), Err: syscall.ENOSPC}
	}
	return d.f.Write(p)
}

func (d *disk) Free() (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.full {
		return 4096, nil
	}
	return 1 << 40, nil
}

// TestAuditDiskFull: while the audit log cannot be written, actions are refused with one
// line and change nothing (no container made, stopped or written into, no message kept),
// rather than done unrecorded; once there is room again they go ahead and are recorded.
func TestAuditDiskFull(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	d := &disk{f: f}
	log, err := audit.OpenWith(path, audit.Options{Writer: d, Free: d.Free})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	cfg := dockertest.Config()
	dockertest.Track(t, r.cli, cfg)
	svc, err := docker.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	if err := svc.SetNoticeDir(filepath.Join(dir, "notices")); err != nil {
		t.Fatal(err)
	}
	box, err := svc.Run(r.ctx, alice, docker.RunSpec{Name: "box", Image: r.img})
	if err != nil {
		t.Fatal(err)
	}

	d.set(true)
	refused := func(what string, err error) {
		t.Helper()
		const want = "refused: the audit log cannot be written: the disk holding it is full; tell an administrator"
		if err == nil || err.Error() != want || !errors.Is(err, docker.ErrUnavailable) {
			t.Errorf("%s with the disk full: %v, want %q", what, err, want)
		}
	}
	_, err = svc.Run(r.ctx, alice, docker.RunSpec{Name: "two", Image: r.img})
	refused("run", err)
	refused("stop", svc.Stop(r.ctx, alice, "box", ""))
	refused("rm", svc.Remove(r.ctx, alice, "box", true, ""))
	refused("put", svc.WriteFile(r.ctx, alice, backend.InContainer("box"), "/tmp/f", strings.NewReader("x"), 1, 0o644, time.Time{}))
	_, err = svc.Wall(tina, "lab ends at noon", []string{"alice"})
	refused("wall", err)

	ins, err := r.cli.ContainerInspect(r.ctx, box.ID, client.ContainerInspectOptions{})
	if err != nil || !ins.Container.State.Running {
		t.Errorf("box after refused stop and rm: %v, %+v", err, ins.Container.State)
	}
	if cs, err := svc.List(r.ctx, alice, docker.ListOptions{All: true}); err != nil || len(cs) != 1 {
		t.Errorf("containers after a refused run: %v, %v", cs, err)
	}
	if n, _ := svc.Notices(alice); len(n) != 0 {
		t.Errorf("a refused wall left notices %+v", n)
	}

	// Room again: the next action goes ahead and is recorded.
	d.set(false)
	if _, err := svc.StatPath(r.ctx, alice, backend.InContainer("box"), "/tmp/f"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("a refused put wrote the file: %v", err)
	}
	if err := svc.Stop(r.ctx, alice, "box", ""); err != nil {
		t.Fatalf("stop with room again: %v", err)
	}
	lines := auditLines(t, path)
	want := []string{"alice run alice/box ok", "alice stop alice/box ok"}
	if !slices.Equal(lines, want) {
		t.Errorf("audit log %q, want %q", lines, want)
	}
}

// TestNoticesUnwritable: a wall whose notices cannot be kept fails with one line that
// says so; the detail goes to the server log.
func TestNoticesUnwritable(t *testing.T) {
	t.Parallel()
	svc := dockertest.NewService(t)
	dir := filepath.Join(t.TempDir(), "notices")
	if err := svc.SetNoticeDir(dir); err != nil {
		t.Fatal(err)
	}
	// The directory goes; a file takes its place, so nothing can be written in it.
	if err := os.Remove(dir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dir, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Wall(tina, "lab ends at noon", []string{"alice", "bob"})
	const want = "the message could not be kept for 2 of 2 users (the server log says why)"
	if err == nil || err.Error() != want {
		t.Errorf("wall into an unwritable notice dir: %v, want %q", err, want)
	}
}
