// Package exectest is the conformance suite of backend.Execution: what the shell bridge, the
// dashboard's shell and the command line rely on, written once and run against every backend
// that returns an Execution (containers, pods). A backend whose test double cannot give a
// behaviour says so in Gaps, in one line, and that behaviour is skipped there only.
package exectest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"whalemountain/backend"
)

// Open starts an execution in the one running container or pod under test.
type Open func(ctx context.Context, spec backend.ExecSpec) (backend.Execution, error)

// Gaps are behaviours a backend's test double cannot give, each with the one line saying
// why (and where it is covered instead); empty: the behaviour is tested.
type Gaps struct {
	// StdinEOF: closing Stdin without a terminal reaches the process as end of input.
	StdinEOF string
	// SignalExit: the exit code of a process ended by a signal (128+N).
	SignalExit string
}

// bound is how long any one step may take.
const bound = 20 * time.Second

// Run runs the suite as subtests of t.
func Run(t *testing.T, open Open, gaps Gaps) {
	t.Run("terminal size, TERM, input, resize and exit status", func(t *testing.T) { terminal(t, open) })
	t.Run("pipes: stdout, stderr and exit status", func(t *testing.T) { pipes(t, open) })
	t.Run("stdin EOF ends the input", func(t *testing.T) {
		if gaps.StdinEOF != "" {
			t.Skip(gaps.StdinEOF)
		}
		stdinEOF(t, open)
	})
	t.Run("close hangs up a process that would run on", func(t *testing.T) { hangUp(t, open) })
	t.Run("exit status of a signal", func(t *testing.T) {
		if gaps.SignalExit != "" {
			t.Skip(gaps.SignalExit)
		}
		signalExit(t, open)
	})
}

func start(t *testing.T, open Open, spec backend.ExecSpec) (backend.Execution, context.Context) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*bound)
	t.Cleanup(cancel)
	e, err := open(ctx, spec)
	if err != nil {
		t.Fatalf("exec %q: %v", spec.Cmd, err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e, ctx
}

// output collects what r prints (a terminal's CRs dropped), for expect.
type output struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	seen    int
	changed chan struct{}
	eof     chan struct{}
}

func watch(r io.Reader) *output {
	o := &output{changed: make(chan struct{}, 1), eof: make(chan struct{})}
	go func() {
		defer close(o.eof)
		b := make([]byte, 4096)
		for {
			n, err := r.Read(b)
			o.mu.Lock()
			o.buf.Write(bytes.ReplaceAll(b[:n], []byte("\r"), nil))
			o.mu.Unlock()
			select {
			case o.changed <- struct{}{}:
			default:
			}
			if err != nil {
				return
			}
		}
	}()
	return o
}

// expect waits for the line want after what earlier expects matched.
func (o *output) expect(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(bound)
	find := func() bool {
		o.mu.Lock()
		defer o.mu.Unlock()
		i := strings.Index(o.buf.String()[o.seen:], want+"\n")
		if i >= 0 {
			o.seen += i + len(want) + 1
		}
		return i >= 0
	}
	for !find() {
		select {
		case <-o.changed:
		case <-o.eof:
			if !find() {
				t.Fatalf("output ended without the line %q:\n%q", want, o.all())
			}
			return
		case <-deadline:
			t.Fatalf("no line %q in %s:\n%q", want, bound, o.all())
		}
	}
}

// rest waits for the end of the output and returns all of it.
func (o *output) rest(t *testing.T) string {
	t.Helper()
	select {
	case <-o.eof:
	case <-time.After(bound):
		t.Fatalf("output did not end in %s", bound)
	}
	return o.all()
}

func (o *output) all() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

func wait(t *testing.T, ctx context.Context, e backend.Execution) int {
	t.Helper()
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	code, err := e.Wait(wctx)
	if err != nil {
		t.Fatalf("wait: %v", err)
	}
	return code
}

func terminal(t *testing.T, open Open) {
	// The initial size travels on its own stream as the process starts (pods), and a test
	// kubelet closes the terminal as soon as the process ends: the script waits a moment
	// before it looks and before it exits, as a real shell's user would.
	script := `sleep 0.3; stty size; echo "term=$TERM"; read l; stty size; echo "got:$l"; sleep 0.3; exit 4`
	e, ctx := start(t, open, backend.ExecSpec{Cmd: []string{"sh", "-c", script}, TTY: true, Term: "xterm-256color", Width: 100, Height: 30})
	if e.Stderr() != nil {
		t.Error("a terminal execution has a separate stderr")
	}
	out := watch(e.Stdout())
	out.expect(t, "30 100")
	out.expect(t, "term=xterm-256color")
	if err := e.Resize(120, 40); err != nil {
		t.Fatalf("resize: %v", err)
	}
	time.Sleep(300 * time.Millisecond) // the resize travels its own stream, as in a real session
	if _, err := io.WriteString(e.Stdin(), "hi\r"); err != nil {
		t.Fatal(err)
	}
	out.expect(t, "40 120")
	out.expect(t, "got:hi")
	if code := wait(t, ctx, e); code != 4 {
		t.Errorf("exit status %d, want 4", code)
	}
	if err := e.Close(); err != nil {
		t.Errorf("close after the end: %v", err)
	}
}

func pipes(t *testing.T, open Open) {
	e, ctx := start(t, open, backend.ExecSpec{Cmd: []string{"sh", "-c", "echo out; echo err >&2; exit 3"}})
	if e.Stderr() == nil {
		t.Fatal("a pipe execution has no stderr")
	}
	out, errs := watch(e.Stdout()), watch(e.Stderr())
	if got := out.rest(t); got != "out\n" {
		t.Errorf("stdout %q", got)
	}
	if got := errs.rest(t); got != "err\n" {
		t.Errorf("stderr %q", got)
	}
	if code := wait(t, ctx, e); code != 3 {
		t.Errorf("exit status %d, want 3", code)
	}
	if err := e.Resize(80, 24); err == nil {
		t.Error("resize without a terminal accepted")
	}
}

func stdinEOF(t *testing.T, open Open) {
	e, ctx := start(t, open, backend.ExecSpec{Cmd: []string{"sh", "-c", `n=0; while read l; do n=$((n+1)); done; echo "lines:$n"`}})
	out := watch(e.Stdout())
	go func() { _, _ = io.Copy(io.Discard, e.Stderr()) }()
	if _, err := io.WriteString(e.Stdin(), "one\ntwo\n"); err != nil {
		t.Fatal(err)
	}
	if err := e.Stdin().Close(); err != nil {
		t.Fatal(err)
	}
	if got := out.rest(t); got != "lines:2\n" {
		t.Errorf("after EOF the process printed %q", got)
	}
	if code := wait(t, ctx, e); code != 0 {
		t.Errorf("exit status %d", code)
	}
}

func hangUp(t *testing.T, open Open) {
	e, ctx := start(t, open, backend.ExecSpec{Cmd: []string{"sh", "-c", "echo started; sleep 300"}, TTY: true, Width: 80, Height: 24})
	out := watch(e.Stdout())
	out.expect(t, "started")
	began := time.Now()
	if err := e.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	wctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	if _, err := e.Wait(wctx); errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("the execution still runs %s after Close", bound)
	}
	t.Logf("ended %s after Close", time.Since(began).Round(time.Millisecond))
	if err := e.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
}

func signalExit(t *testing.T, open Open) {
	e, ctx := start(t, open, backend.ExecSpec{Cmd: []string{"sh", "-c", "kill -TERM $$"}})
	go func() { _, _ = io.Copy(io.Discard, e.Stdout()) }()
	go func() { _, _ = io.Copy(io.Discard, e.Stderr()) }()
	if code := wait(t, ctx, e); code != 128+15 {
		t.Errorf("exit status %d, want %d (SIGTERM)", code, 128+15)
	}
}
