package kube

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	"k8s.io/streaming/pkg/httpstream"

	"whalemountain/backend"
)

// Interactive processes in pods: Exec starts one (a shell by default) through the API
// server's exec subresource, over WebSocket with a fallback to SPDY, and hands back a
// backend.Execution.
//
// Ending an exec. Kubernetes has no call to end an exec'd process; closing the stream ends
// it where the runtime hangs up a terminal that goes away, not otherwise (Kubernetes issue
// 89031). So a shell, and every command run with environment variables, is started through
// `env` with a marker variable, WHALEMOUNTAIN_EXEC=<random>; Close, when the process still
// runs, execs a short `sh` script in the pod that sends SIGHUP to the process that carries
// the marker and was started from outside the pod's processes (parent PID 0), its process
// group and its terminal's foreground group, then SIGKILL after hangupGrace.

const (
	execMarker  = "WHALEMOUNTAIN_EXEC"
	hangupGrace = 2 * time.Second
	endTimeout  = 10 * time.Second
	defaultTerm = "xterm"
)

// shellCmd is the default shell: bash if the image has it, else sh.
var shellCmd = []string{"sh", "-c", "if command -v bash >/dev/null 2>&1; then exec bash; fi; exec sh"}

// exitStatusRE finds the exit code in an exec error that carries it only as text (as
// kwok's does: "... exit status 3").
var exitStatusRE = regexp.MustCompile(`(?:^|[:\s])exit status (\d{1,3})$`)

// Exec starts a process in a running pod the identity may use: the spec's command, or with
// none the pod's bash, else sh. It is audited as "pod exec", or "pod shell" for the default
// shell. ctx covers the start only; Close the Execution to end it.
func (s *Service) Exec(ctx context.Context, id backend.Identity, ref string, spec backend.ExecSpec) (backend.Execution, error) {
	action := "pod exec"
	if len(spec.Cmd) == 0 {
		action = "pod shell"
	}
	t, p, err := s.exec(ctx, id, ref, spec)
	s.record(id, action, auditTarget(t, ref), err)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func validateExec(spec backend.ExecSpec) error {
	if err := validateCmd(spec.Cmd); err != nil {
		return err
	}
	if err := ValidateEnv(spec.Env); err != nil {
		return err
	}
	if spec.Term != "" && !termRE.MatchString(spec.Term) {
		return errorf(ErrInvalid, "invalid terminal type %s", shown(spec.Term))
	}
	if len(spec.Env) > 0 && len(spec.Cmd) > 0 && strings.Contains(spec.Cmd[0], "=") {
		return errorf(ErrInvalid, "a command run with environment variables may not start with a word containing '='")
	}
	return validateSize(spec.Width, spec.Height)
}

func validateSize(width, height int) error {
	if width == 0 && height == 0 {
		return nil
	}
	if width < 1 || height < 1 || width > maxTermSize || height > maxTermSize {
		return errorf(ErrInvalid, "invalid terminal size %dx%d", width, height)
	}
	return nil
}

// runningPod resolves ref like every other call and requires the pod to be running.
func (s *Service) runningPod(ctx context.Context, id backend.Identity, ref string) (found, error) {
	f, err := s.find(ctx, id, ref)
	if err != nil {
		return f, err
	}
	if f.pod.DeletionTimestamp != nil {
		return f, notRunning(f.target, "terminating")
	}
	if f.pod.Status.Phase != corev1.PodRunning {
		return f, notRunning(f.target, string(f.pod.Status.Phase))
	}
	if len(f.pod.Spec.Containers) == 0 {
		return f, notFound(ref)
	}
	for _, cs := range f.pod.Status.ContainerStatuses {
		if cs.Name == f.pod.Spec.Containers[0].Name && cs.State.Running == nil {
			return f, notRunning(f.target, podView(f.pod, f.owner, s.cfg.GPUResource, nil).Status)
		}
	}
	return f, nil
}

func (s *Service) exec(ctx context.Context, id backend.Identity, ref string, spec backend.ExecSpec) (target, *execution, error) {
	if err := checkIdentity(id); err != nil {
		return target{}, nil, err
	}
	if err := validateExec(spec); err != nil {
		return target{}, nil, err
	}
	f, err := s.runningPod(ctx, id, ref)
	if err != nil {
		return f.target, nil, err
	}
	token := ""
	cmd := slices.Clone(spec.Cmd)
	if len(cmd) == 0 || len(spec.Env) > 0 || spec.TTY {
		token = rand.Text()
		env := []string{execMarker + "=" + token}
		if spec.TTY {
			env = append(env, "TERM="+cmpOr(spec.Term, defaultTerm))
		}
		for _, kv := range spec.Env {
			if !strings.HasPrefix(kv, execMarker+"=") && !(spec.TTY && strings.HasPrefix(kv, "TERM=")) {
				env = append(env, kv)
			}
		}
		if len(cmd) == 0 {
			cmd = slices.Clone(shellCmd)
		}
		cmd = append(append([]string{"env"}, env...), cmd...)
	}
	e := &execution{
		svc: s, ns: f.ns, pod: f.pod.Name, container: f.pod.Spec.Containers[0].Name,
		what: "exec in " + f.target.String(), tty: spec.TTY, token: token,
		done: make(chan struct{}),
	}
	exe, err := s.executor(f.ns, f.pod.Name, e.container, cmd, spec.TTY, true)
	if err != nil {
		return f.target, nil, apiErr(e.what, err)
	}
	if spec.TTY && spec.Width > 0 {
		e.sizes.push(remotecommand.TerminalSize{Width: uint16(spec.Width), Height: uint16(spec.Height)})
	}
	e.start(exe)
	return f.target, e, nil
}

// executor makes a remote command executor for one exec: WebSocket first (what the API
// server prefers), SPDY when the upgrade is refused.
func (s *Service) executor(ns, pod, container string, cmd []string, tty, stdin bool) (remotecommand.Executor, error) {
	req := s.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(ns).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{
			Container: container,
			Command:   cmd,
			Stdin:     stdin,
			Stdout:    true,
			Stderr:    !tty,
			TTY:       tty,
		}, scheme.ParameterCodec)
	spdy, err := remotecommand.NewSPDYExecutor(s.rest, "POST", req.URL())
	if err != nil {
		return nil, err
	}
	ws, err := remotecommand.NewWebSocketExecutor(s.rest, "GET", req.URL().String())
	if err != nil {
		return nil, err
	}
	return remotecommand.NewFallbackExecutor(ws, spdy, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
}

// execution is a backend.Execution over one exec stream.
type execution struct {
	svc                *Service
	ns, pod, container string
	what               string
	tty                bool
	token              string // the marker's value; "" when the command was not marked
	stdin              stdinPipe
	stdout, stderr     *io.PipeReader
	sizes              sizeQueue
	cancel             context.CancelFunc
	done               chan struct{}
	code               int
	err                error
	closing            atomic.Bool
	closeOnce          sync.Once
	closeErr           error
}

func (e *execution) start(exe remotecommand.Executor) {
	ctx, cancel := context.WithCancel(context.Background())
	e.cancel = cancel
	inR, inW := io.Pipe()
	e.stdin = stdinPipe{w: inW, tty: e.tty}
	outR, outW := io.Pipe()
	e.stdout = outR
	var errW *io.PipeWriter
	if !e.tty {
		e.stderr, errW = io.Pipe()
	}
	opts := remotecommand.StreamOptions{Stdin: inR, Stdout: outW, Tty: e.tty}
	if errW != nil {
		opts.Stderr = errW
	}
	if e.tty {
		opts.TerminalSizeQueue = &e.sizes
	}
	e.sizes.init()
	go func() {
		err := exe.StreamWithContext(ctx, opts)
		e.sizes.stop()
		_ = inW.Close()
		e.code, e.err = e.exitOf(err)
		_ = outW.Close()
		if errW != nil {
			_ = errW.Close()
		}
		close(e.done)
	}()
}

// exitOf turns how the stream ended into an exit code.
func (e *execution) exitOf(err error) (int, error) {
	if err == nil {
		return 0, nil
	}
	var ee utilexec.ExitError
	if errors.As(err, &ee) && ee.Exited() {
		return ee.ExitStatus(), nil
	}
	if m := exitStatusRE.FindStringSubmatch(strings.TrimSpace(err.Error())); m != nil {
		n, _ := strconv.Atoi(m[1])
		return n, nil
	}
	if e.closing.Load() {
		return -1, fmt.Errorf("%s: ended by closing it", e.what)
	}
	if errors.Is(err, context.Canceled) {
		return -1, err
	}
	return -1, apiErr(e.what, err)
}

func (e *execution) Stdin() io.WriteCloser { return &e.stdin }
func (e *execution) Stdout() io.Reader     { return e.stdout }

func (e *execution) Stderr() io.Reader {
	if e.stderr == nil {
		return nil
	}
	return e.stderr
}

func (e *execution) Resize(width, height int) error {
	if !e.tty {
		return errorf(ErrInvalid, "%s: no terminal to resize", e.what)
	}
	if width == 0 || height == 0 {
		return errorf(ErrInvalid, "invalid terminal size %dx%d", width, height)
	}
	if err := validateSize(width, height); err != nil {
		return err
	}
	e.sizes.push(remotecommand.TerminalSize{Width: uint16(width), Height: uint16(height)})
	return nil
}

func (e *execution) Wait(ctx context.Context) (int, error) {
	select {
	case <-e.done:
		return e.code, e.err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// Close ends the process if it still runs (see the top of this file) and releases the
// stream and pipes.
func (e *execution) Close() error {
	e.closeOnce.Do(func() {
		e.closing.Store(true)
		e.stdin.stop()
		ended := false
		select {
		case <-e.done:
			ended = true
		default:
		}
		e.cancel()
		select {
		case <-e.done:
		case <-time.After(250 * time.Millisecond):
			// Output nobody reads any more must not hold the stream.
			_ = e.stdout.Close()
			if e.stderr != nil {
				_ = e.stderr.Close()
			}
			<-e.done
		}
		if !ended && e.token != "" {
			e.closeErr = e.hangUp()
		}
	})
	return e.closeErr
}

// hangUp sends SIGHUP, then after hangupGrace SIGKILL, to the marked process from inside
// the pod, until it is gone.
func (e *execution) hangUp() error {
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	out, err := e.signal(ctx, "HUP")
	if err != nil || out == "gone" {
		return err
	}
	deadline := time.Now().Add(hangupGrace)
	for time.Now().Before(deadline) {
		if !sleep(ctx, 200*time.Millisecond) {
			return ctx.Err()
		}
		if out, err := e.signal(ctx, "0"); err != nil || out == "gone" {
			return err
		}
	}
	if _, err := e.signal(ctx, "KILL"); err != nil {
		return err
	}
	if out, err := e.signal(ctx, "0"); err != nil || out == "gone" {
		return err
	}
	return fmt.Errorf("end %s: the process is still running", e.what)
}

// signal runs endScript in the pod with sig ("0": only look) and returns what it printed:
// "gone", "alive" or "sent".
func (e *execution) signal(ctx context.Context, sig string) (string, error) {
	cmd := []string{"sh", "-c", endScript, "whalemountain-end", sig, execMarker + "=" + e.token}
	exe, err := e.svc.executor(e.ns, e.pod, e.container, cmd, false, false)
	if err != nil {
		return "", apiErr("end "+e.what, err)
	}
	var out, errOut limitedBuffer
	err = exe.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	if err != nil {
		return "", fmt.Errorf("end %s: kill -%s: %v %s", e.what, sig, err, oneLine(string(errOut.b), maxReason))
	}
	lines := strings.Fields(string(out.b))
	if len(lines) == 0 {
		return "", fmt.Errorf("end %s: kill -%s: no answer %s", e.what, sig, oneLine(string(errOut.b), maxReason))
	}
	return lines[len(lines)-1], nil
}

// endScript finds, inside the pod, the process started from outside it (parent PID 0) that
// has the marker (argument 2) in its environment and prints "gone" if there is none. Else,
// for signal 0 it prints "alive"; for another it signals the process's group if it leads
// one (else the process) and its terminal's foreground group, never PID 1 or its group, and
// prints "sent".
const endScript = `sig=$1 marker=$2
p=
for d in /proc/[0-9]*; do
	q=${d#/proc/}
	[ "$q" = "$$" ] && continue
	{ read -r s < "$d/stat"; } 2>/dev/null || continue
	set -- ${s##*)}
	[ "$2" = 0 ] || continue
	{ tr '\0' '\n' < "$d/environ" | grep -qx "$marker"; } 2>/dev/null || continue
	p=$q
	break
done
if [ -z "$p" ] || ! [ "$p" -gt 1 ] 2>/dev/null; then echo gone; exit 0; fi
if [ "$sig" = 0 ]; then echo alive; exit 0; fi
s=$(cat "/proc/$p/stat" 2>/dev/null) || { echo gone; exit 0; }
set -- ${s##*)}
pg=$3 tp=$6
s=$(cat /proc/1/stat 2>/dev/null)
set -- ${s##*)}
ipg=$3
if [ "$pg" = "$p" ] && [ "$pg" != "$ipg" ]; then t=-$p; else t=$p; fi
if [ "$tp" -gt 1 ] 2>/dev/null && [ "$tp" != "$pg" ] && [ "$tp" != "$ipg" ]; then t="$t -$tp"; fi
kill -$sig $t 2>/dev/null
echo sent
`

// stdinPipe is an Execution's stdin.
type stdinPipe struct {
	w      *io.PipeWriter
	tty    bool
	closed atomic.Bool
}

func (w *stdinPipe) Write(b []byte) (int, error) {
	if w.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	return w.w.Write(b)
}

// Close sends EOF without a TTY; with one it only stops input.
func (w *stdinPipe) Close() error {
	if w.closed.Swap(true) || w.tty {
		return nil
	}
	return w.w.Close()
}

// stop ends input for good (the execution is closing).
func (w *stdinPipe) stop() {
	w.closed.Store(true)
	_ = w.w.Close()
}

// sizeQueue is a remotecommand.TerminalSizeQueue that keeps only the latest size.
type sizeQueue struct {
	mu   sync.Mutex
	ch   chan remotecommand.TerminalSize
	end  chan struct{}
	once sync.Once
}

func (q *sizeQueue) init() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.ch == nil {
		q.ch = make(chan remotecommand.TerminalSize, 1)
	}
	if q.end == nil {
		q.end = make(chan struct{})
	}
}

func (q *sizeQueue) push(s remotecommand.TerminalSize) {
	q.init()
	q.mu.Lock()
	defer q.mu.Unlock()
	select {
	case <-q.ch:
	default:
	}
	q.ch <- s
}

func (q *sizeQueue) stop() { q.once.Do(func() { close(q.end) }) }

// Next blocks until a new size or the end of the stream (nil).
func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case s := <-q.ch:
		return &s
	case <-q.end:
		return nil
	}
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(b []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, b[:min(room, len(b))]...)
	}
	return len(b), nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
