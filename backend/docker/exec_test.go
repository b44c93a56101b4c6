package docker_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/exectest"
)

// screen collects what an Execution prints, for expect.
type screen struct {
	t       *testing.T
	mu      sync.Mutex
	buf     []byte
	seen    int // expect matched up to here
	changed chan struct{}
	eof     chan struct{}
}

func watch(t *testing.T, r io.Reader) *screen {
	s := &screen{t: t, changed: make(chan struct{}, 1), eof: make(chan struct{})}
	go func() {
		defer close(s.eof)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			s.mu.Lock()
			s.buf = append(s.buf, b[:n]...)
			s.mu.Unlock()
			select {
			case s.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return s
}

// expect waits for want to appear after what earlier expects matched.
func (s *screen) expect(want string) {
	s.t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		i := bytes.Index(s.buf[s.seen:], []byte(want))
		if i >= 0 {
			s.seen += i + len(want)
		}
		got := string(s.buf[s.seen:])
		s.mu.Unlock()
		if i >= 0 {
			return
		}
		select {
		case <-s.changed:
		case <-s.eof:
			s.mu.Lock()
			done := bytes.Contains(s.buf[s.seen:], []byte(want))
			s.mu.Unlock()
			if !done {
				s.t.Fatalf("output ended without %q; after the last match: %q", want, got)
			}
		case <-deadline:
			s.t.Fatalf("no %q in 10s; after the last match: %q", want, got)
		}
	}
}

// all waits for EOF and returns everything.
func (s *screen) all() string {
	s.t.Helper()
	select {
	case <-s.eof:
	case <-time.After(10 * time.Second):
		s.t.Fatal("output did not end in 10s")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return string(s.buf)
}

func send(t *testing.T, ex backend.Execution, text string) {
	t.Helper()
	if _, err := io.WriteString(ex.Stdin(), text); err != nil {
		t.Fatalf("write %q: %v", text, err)
	}
}

func waitExit(t *testing.T, ex backend.Execution) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	code, err := ex.Wait(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		t.Fatal("process did not end in 10s")
	}
	return code, err
}

func (r *rig) exec(id backend.Identity, ref string, spec backend.ExecSpec) backend.Execution {
	r.t.Helper()
	ex, err := r.svc.Exec(r.ctx, id, ref, spec)
	if err != nil {
		r.t.Fatalf("exec %v in %s: %v", spec.Cmd, ref, err)
	}
	r.t.Cleanup(func() { _ = ex.Close() })
	return ex
}

// processes lists the container's processes as the engine's top shows them: PID -> command.
func (r *rig) processes(c docker.Container) map[string]string {
	r.t.Helper()
	top, err := r.cli.ContainerTop(r.ctx, c.ID, client.ContainerTopOptions{})
	if err != nil {
		r.t.Fatalf("top %s: %v", c.Name, err)
	}
	pid, cmd := slices.Index(top.Titles, "PID"), slices.Index(top.Titles, "CMD")
	if pid < 0 || cmd < 0 {
		r.t.Fatalf("top titles %v", top.Titles)
	}
	m := map[string]string{}
	for _, p := range top.Processes {
		m[p[pid]] = p[cmd]
	}
	return m
}

// untilTop polls top (up to 10s) until cond holds for the container's processes.
func (r *rig) untilTop(c docker.Container, what string, cond func(map[string]string) bool) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ps := r.processes(c)
		if cond(ps) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("timed out waiting for %s; processes: %v", what, ps)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func running(cmd string) func(map[string]string) bool {
	return func(ps map[string]string) bool {
		for _, c := range ps {
			if c == cmd {
				return true
			}
		}
		return false
	}
}

// TestExecTTY: a shell on a terminal computes, sees its initial size and a resize, gets
// TERM, and its exit code comes back.
func TestExecTTY(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "box"})
	ex := r.exec(alice, "box", backend.ExecSpec{Cmd: []string{"sh"}, TTY: true, Term: "xterm-256color", Width: 100, Height: 30})
	if ex.Stderr() != nil {
		t.Error("a TTY exec has a separate stderr")
	}
	out := watch(t, ex.Stdout())
	send(t, ex, "echo $((6*7))\n")
	out.expect("42\r\n")
	send(t, ex, "stty size; echo term=$TERM\n")
	out.expect("30 100\r\n")
	out.expect("term=xterm-256color\r\n")
	if err := ex.Resize(120, 40); err != nil {
		t.Fatal(err)
	}
	send(t, ex, "stty size\n")
	out.expect("40 120\r\n")
	send(t, ex, "exit 7\n")
	if code, err := waitExit(t, ex); code != 7 || err != nil {
		t.Errorf("exit: %d %v, want 7", code, err)
	}
	out.all()
	if err := ex.Close(); err != nil {
		t.Errorf("close after exit: %v", err)
	}
	if _, err := ex.Stdin().Write([]byte("x")); err == nil {
		t.Error("stdin still writable after the end")
	}
}

// TestExecDefaultShell: no command means bash where the container has one, else sh.
func TestExecDefaultShell(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "box"})
	ex := r.exec(alice, "box", backend.ExecSpec{TTY: true})
	out := watch(t, ex.Stdout())
	send(t, ex, `echo "shell=$0"; exit`+"\n")
	out.expect("shell=sh\r\n")
	if code, err := waitExit(t, ex); code != 0 || err != nil {
		t.Errorf("exit: %d %v", code, err)
	}

	// A "bash" of our own, found without being on PATH's usual places.
	mk := r.exec(alice, "box", backend.ExecSpec{Cmd: []string{"sh", "-c",
		`mkdir -p /usr/local/bin && printf '#!/bin/sh\necho "bash here"\n' > /usr/local/bin/bash && chmod +x /usr/local/bin/bash`}})
	go io.Copy(io.Discard, mk.Stdout())
	go io.Copy(io.Discard, mk.Stderr())
	if code, err := waitExit(t, mk); code != 0 || err != nil {
		t.Fatalf("make bash: %d %v", code, err)
	}
	ex = r.exec(alice, "box", backend.ExecSpec{})
	if got := watch(t, ex.Stdout()).all(); got != "bash here\n" {
		t.Errorf("default shell with a bash printed %q", got)
	}
}

// TestExecPipes: without a TTY stdin EOF reaches the process and stdout and stderr stay apart.
func TestExecPipes(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "box"})

	cat := r.exec(alice, "box", backend.ExecSpec{Cmd: []string{"cat"}})
	out, errs := watch(t, cat.Stdout()), watch(t, cat.Stderr())
	send(t, cat, "hi")
	if err := cat.Stdin().Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.all(); got != "hi" {
		t.Errorf("cat printed %q", got)
	}
	if got := errs.all(); got != "" {
		t.Errorf("cat's stderr %q", got)
	}
	if code, err := waitExit(t, cat); code != 0 || err != nil {
		t.Errorf("cat exit: %d %v", code, err)
	}

	sh := r.exec(alice, "box", backend.ExecSpec{Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	out, errs = watch(t, sh.Stdout()), watch(t, sh.Stderr())
	if got := out.all(); got != "out\n" {
		t.Errorf("stdout %q", got)
	}
	if got := errs.all(); got != "err\n" {
		t.Errorf("stderr %q", got)
	}
	if code, err := waitExit(t, sh); code != 3 || err != nil {
		t.Errorf("exit: %d %v, want 3", code, err)
	}
	if err := sh.Resize(80, 24); !errors.Is(err, docker.ErrInvalid) {
		t.Errorf("resize without a TTY: %v", err)
	}

	// The environment reaches the process; the TTY default does not apply.
	env := r.exec(alice, "box", backend.ExecSpec{Cmd: []string{"sh", "-c", `echo "$GREETING"`}, Env: []string{"GREETING=hello there"}})
	go io.Copy(io.Discard, env.Stderr())
	if got := watch(t, env.Stdout()).all(); got != "hello there\n" {
		t.Errorf("env: %q", got)
	}
}

// TestExecCloseEndsProcess: Close ends what the exec started, on a terminal or not, also a
// process that ignores SIGHUP, and leaves the container's own processes alone.
func TestExecCloseEndsProcess(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name     string
		spec     backend.ExecSpec
		typed    string // typed into the shell once it runs
		wantCode int
	}{
		{"pipes", backend.ExecSpec{Cmd: []string{"sleep", "100"}}, "", 128 + 1},
		{"shell running a command", backend.ExecSpec{Cmd: []string{"sh"}, TTY: true}, "sleep 100\n", 128 + 1},
		{"ignores SIGHUP", backend.ExecSpec{Cmd: []string{"sh", "-c", "trap '' HUP; sleep 100; echo survived"}}, "", 128 + 9},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			box := r.run(alice, docker.RunSpec{Name: "box"})
			// The keep-alive forks its sleep a moment after the start: count it in.
			r.untilTop(box, "the keep-alive to settle", running("sleep 3600"))
			before := r.processes(box)
			ex := r.exec(alice, "box", tc.spec)
			go io.Copy(io.Discard, ex.Stdout())
			if ex.Stderr() != nil {
				go io.Copy(io.Discard, ex.Stderr())
			}
			if tc.typed != "" {
				send(t, ex, tc.typed)
			}
			r.untilTop(box, "sleep 100 to start", running("sleep 100"))

			start := time.Now()
			if err := ex.Close(); err != nil {
				t.Fatalf("close: %v", err)
			}
			t.Logf("close took %v", time.Since(start).Round(time.Millisecond))
			r.untilTop(box, "the exec's processes to go", func(ps map[string]string) bool {
				return !running("sleep 100")(ps) && len(ps) == len(before)
			})
			for pid, cmd := range before {
				if after := r.processes(box)[pid]; after != cmd {
					t.Errorf("container process %s %q became %q", pid, cmd, after)
				}
			}
			if code, err := waitExit(t, ex); code != tc.wantCode || err != nil {
				t.Errorf("after close: %d %v, want %d", code, err, tc.wantCode)
			}
			if err := ex.Close(); err != nil {
				t.Errorf("second close: %v", err)
			}
		})
	}
}

// TestExecStreamEndLeavesNothing: when the stream ends before the process (here by the
// engine's own detach sequence, typed), nothing of the exec stays behind and Wait returns.
func TestExecStreamEndLeavesNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	box := r.run(alice, docker.RunSpec{Name: "box"})
	r.untilTop(box, "the keep-alive to settle", running("sleep 3600"))
	before := r.processes(box)
	ex := r.exec(alice, "box", backend.ExecSpec{Cmd: []string{"sh"}, TTY: true})
	out := watch(t, ex.Stdout())
	send(t, ex, "sleep 100\n")
	r.untilTop(box, "sleep 100 to start", running("sleep 100"))
	send(t, ex, "\x1e\x1d\x1e\x1d\x1e\x1d") // ctrl-^ ctrl-] three times
	out.all()
	// Wait returns (waitExit fails the test otherwise), and never as a clean exit: the shell
	// was cut off, it did not end by itself.
	if code, err := waitExit(t, ex); err == nil && code == 0 {
		t.Errorf("wait after the stream ended early: exit 0, as if the shell had ended by itself")
	}
	r.untilTop(box, "the exec's processes to go", func(ps map[string]string) bool {
		return !running("sleep 100")(ps) && len(ps) == len(before)
	})
}

// TestExecRefused: others' containers by any spelling are not found, exactly as for the
// other calls; a stopped container is "not running"; bad input is refused.
func TestExecRefused(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	box := r.run(alice, docker.RunSpec{Name: "box"})
	r.run(alice, docker.RunSpec{Name: "halt"})
	if err := r.svc.Stop(r.ctx, alice, "halt", ""); err != nil {
		t.Fatal(err)
	}
	ins, err := r.cli.ContainerInspect(r.ctx, box.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ops := map[string]func(backend.Identity, string) (backend.Execution, error){
		"exec": func(id backend.Identity, ref string) (backend.Execution, error) {
			return r.svc.Exec(r.ctx, id, ref, backend.ExecSpec{Cmd: []string{"true"}})
		},
		"shell": func(id backend.Identity, ref string) (backend.Execution, error) {
			return r.svc.Exec(r.ctx, id, ref, backend.ExecSpec{TTY: true, Width: 80, Height: 24})
		},
		"attach": func(id backend.Identity, ref string) (backend.Execution, error) {
			return r.svc.Attach(r.ctx, id, ref, 80, 24)
		},
	}
	refs := []string{"box", "alice/box", strings.TrimPrefix(ins.Container.Name, "/"), box.ID, box.ID[:12], box.ID[:4], "nosuch", "box\x1b[31m"}
	for name, op := range ops {
		for _, ref := range refs {
			ex, err := op(bob, ref)
			want := "no such container: " + ref
			if strings.Contains(ref, "\x1b") {
				want = "no such container: " + strconv.QuoteToASCII(ref)
			}
			if ex != nil || !errors.Is(err, docker.ErrNotFound) || err.Error() != want {
				t.Errorf("bob %s %q: %v, want %q", name, ref, err, want)
			}
		}
		for _, c := range []struct {
			id  backend.Identity
			ref string
		}{{alice, "halt"}, {tina, "alice/halt"}} {
			ex, err := op(c.id, c.ref)
			want := "container " + c.ref + " is not running; start it first"
			if ex != nil || !errors.Is(err, docker.ErrNotRunning) || !errors.Is(err, backend.ErrNotRunning) ||
				!errors.Is(err, docker.ErrConflict) || err.Error() != want {
				t.Errorf("%s %s %s: %v, want %q", c.id.User, name, c.ref, err, want)
			}
		}
	}

	bad := []backend.ExecSpec{
		{Cmd: []string{""}},
		{Cmd: []string{"sh", "a\x00b"}},
		{Cmd: []string{"true"}, Env: []string{"NOEQUALS"}},
		{TTY: true, Term: "xterm\x1b[2J"},
		{TTY: true, Width: -1, Height: 24},
		{TTY: true, Width: 80},
		{TTY: true, Width: 80, Height: 1 << 20},
	}
	for _, spec := range bad {
		if ex, err := r.svc.Exec(r.ctx, alice, "box", spec); ex != nil || !errors.Is(err, docker.ErrInvalid) {
			t.Errorf("exec %+v: %v, want invalid input", spec, err)
		}
	}
	if ex, err := r.svc.Attach(r.ctx, alice, "box", 0, 24); ex != nil || !errors.Is(err, docker.ErrInvalid) {
		t.Errorf("attach with 0x24: %v", err)
	}
	if _, err := r.svc.Exec(r.ctx, backend.Identity{}, "box", backend.ExecSpec{}); !errors.Is(err, docker.ErrPermission) {
		t.Errorf("nobody execs: %v", err)
	}

	// A TA reaches alice's box by alice/box.
	ta := r.exec(tina, "alice/box", backend.ExecSpec{Cmd: []string{"sh", "-c", "echo $HOME"}})
	go io.Copy(io.Discard, ta.Stderr())
	if got := watch(t, ta.Stdout()).all(); got != "/home/alice\n" {
		t.Errorf("TA exec printed %q", got)
	}
}

// TestAttach: typing into the main shell of a TTY container and reading its answer; Close
// detaches and the container keeps running; the exit of the main process ends Wait.
func TestAttach(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "main", Cmd: []string{"sh"}})
	at, err := r.svc.Attach(r.ctx, alice, "main", 100, 30)
	if err != nil {
		t.Fatal(err)
	}
	defer at.Close()
	out := watch(t, at.Stdout())
	// Quotes keep the echo of the typed line from matching.
	send(t, at, "echo hel''lo; stty size\n")
	out.expect("hello\r\n")
	out.expect("30 100\r\n")
	if err := at.Resize(90, 20); err != nil {
		t.Fatal(err)
	}
	send(t, at, "stty size\n")
	out.expect("20 90\r\n")

	if err := at.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if code, err := waitExit(t, at); !errors.Is(err, backend.ErrDetached) {
		t.Errorf("wait after detach: %d %v", code, err)
	}
	if d, err := r.svc.Inspect(r.ctx, alice, "main"); err != nil || d.State != "running" {
		t.Fatalf("after detach: %s %v", d.State, err)
	}

	// Again, and what was typed before is still the same shell's (so the detach did not end
	// it a moment later).
	at = r.exec0(r.svc.Attach(r.ctx, alice, "main", 0, 0))
	out = watch(t, at.Stdout())
	send(t, at, "echo again$((1+1))\n")
	out.expect("again2\r\n")
	send(t, at, "exit 5\n")
	if code, err := waitExit(t, at); code != 5 || err != nil {
		t.Errorf("main process exit: %d %v, want 5", code, err)
	}
	if d, err := r.svc.Inspect(r.ctx, alice, "main"); err != nil || d.State != "exited" || d.ExitCode != 5 {
		t.Errorf("after exit: %s %d %v", d.State, d.ExitCode, err)
	}
}

func (r *rig) exec0(ex backend.Execution, err error) backend.Execution {
	r.t.Helper()
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = ex.Close() })
	return ex
}

// TestExecAudit: exec, shell and attach are recorded with their result.
func TestExecAudit(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	svc, path := r.auditedService()
	if _, err := svc.Run(r.ctx, alice, docker.RunSpec{Name: "box", Image: r.img}); err != nil {
		t.Fatal(err)
	}
	ex := r.exec0(svc.Exec(r.ctx, alice, "box", backend.ExecSpec{Cmd: []string{"true"}}))
	go io.Copy(io.Discard, ex.Stderr())
	watch(t, ex.Stdout()).all()
	sh := r.exec0(svc.Exec(r.ctx, alice, "box", backend.ExecSpec{TTY: true}))
	_ = sh.Close()
	_, _ = svc.Exec(r.ctx, bob, "alice/box", backend.ExecSpec{})
	at := r.exec0(svc.Attach(r.ctx, tina, "alice/box", 0, 0))
	_ = at.Close()

	got := auditLines(t, path)
	want := []string{
		"alice run alice/box ok", "alice exec alice/box ok", "alice shell alice/box ok",
		"bob shell alice/box refused", "tina attach alice/box ok",
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestExecConformance: containers pass the Execution suite pods pass too.
func TestExecConformance(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "box"})
	exectest.Run(t, func(ctx context.Context, spec backend.ExecSpec) (backend.Execution, error) {
		return r.svc.Exec(ctx, alice, "box", spec)
	}, exectest.Gaps{})
}
