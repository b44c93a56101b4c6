package docker

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// Interactive processes: Exec starts one in a container (a shell by default), Attach joins a
// container's main process. Both hand back a backend.Execution over the engine's hijacked
// connection.
//
// Ending an exec. Closing the connection of an exec does not end its process: the engine
// leaves it running in the container. So Close (and a connection lost before the process
// ended) ends it the way a terminal hang-up would: SIGHUP to the process and its process
// group, and with a TTY to the terminal's foreground process group too (the command a shell
// is running); then, if the process has not gone after hangupGrace, SIGKILL to the same.
// Background jobs in groups of their own (`nohup cmd &`, setsid, tmux) are left alone, as
// after an SSH disconnect.
//
// The signals are sent from inside the container (a short `sh` exec, endScript), so the
// server needs no privilege over the container's processes and no share of its PID
// namespace. What it needs is the process's PID as the container sees it. The engine reports
// the host PID; when this server runs on the Docker host, /proc/<host pid>/status gives the
// in-container PID on its NSpid line (checked against /proc/<host pid>/cgroup naming the
// container, so a PID from another machine or namespace is never trusted). When that cannot
// be read (the server in a container of its own, a remote engine), every exec carries a
// marker variable, WHALEMOUNTAIN_EXEC=<random>, and the script finds the process that has
// it in its environment and was started from outside the container (parent PID 0).

const (
	hangupGrace   = 2 * time.Second  // between SIGHUP and SIGKILL
	killWait      = 3 * time.Second  // for the process to go after SIGKILL
	endTimeout    = 15 * time.Second // bound on ending one process, API calls included
	lostWait      = time.Second      // for the engine to report an exit after the stream ends
	resizeTimeout = 2 * time.Second  // for the first resize, while the process starts
	pollEvery     = 50 * time.Millisecond
	maxTermSize   = 65535 // cells per side, as in struct winsize

	// hostProc is the host's /proc, as seen by this server.
	hostProc = "/proc"
	// execMarker names the variable that marks the processes of one exec.
	execMarker = "WHALEMOUNTAIN_EXEC"
	// detachKeys replaces the engine's detach sequence (ctrl-p ctrl-q) on TTY streams.
	// The engine cannot be told to have none, and it holds back a key that starts the
	// sequence until the next one arrives, so this is one nobody types (a lone ctrl-^ waits
	// for the next key): detaching is the SSH side's business.
	detachKeys = "ctrl-^,ctrl-],ctrl-^,ctrl-],ctrl-^,ctrl-]"
)

// bashPaths are where a container's bash is looked for; without one, the shell is sh.
var bashPaths = []string{"/bin/bash", "/usr/bin/bash", "/usr/local/bin/bash"}

var termRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)

// ErrNotRunning: the container is not running (exec, attach). It is backend.ErrNotRunning,
// so callers of any backend can offer to start it; such errors are of kind ErrConflict too.
var ErrNotRunning = backend.ErrNotRunning

func notRunning(t found) error {
	msg := fmt.Sprintf("container %s is not running; start it first", shown(t.typed))
	return &wrapped{kind: ErrConflict, msg: msg, err: &userError{kind: ErrNotRunning, msg: msg}}
}

// runningContainer resolves ref like every other call and requires it to be running.
func (s *Service) runningContainer(ctx context.Context, id backend.Identity, ref string) (found, error) {
	t, err := s.find(ctx, id, ref)
	if err != nil {
		return t, err
	}
	switch container.ContainerState(t.State) {
	case container.StateRunning:
		return t, nil
	case container.StatePaused:
		return t, errorf(ErrConflict, "container %s is paused", shown(t.typed))
	default:
		return t, notRunning(t)
	}
}

// RecordRefusal puts a read of the container ref that was refused to id — because it is
// another user's or does not exist, which id is told alike — in the audit log as "refused",
// for reads this service does not audit itself (inspect, logs). Any other error is not a
// refusal and is not recorded.
func (s *Service) RecordRefusal(id backend.Identity, action, ref string, err error) {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrPermission) {
		s.record(id, action, auditTarget(found{}, ref), err)
	}
}

// Exec starts a process in a running container the identity may use: the spec's command,
// or with none the container's bash, else sh. It is audited as "exec", or "shell" for the
// default shell. ctx covers the start only; Close the Execution to end it.
func (s *Service) Exec(ctx context.Context, id backend.Identity, ref string, spec backend.ExecSpec) (backend.Execution, error) {
	action := "exec"
	if len(spec.Cmd) == 0 {
		action = "shell"
	}
	t, p, err := s.exec(ctx, id, ref, spec)
	s.record(id, action, auditTarget(t, ref), err)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Service) exec(ctx context.Context, id backend.Identity, ref string, spec backend.ExecSpec) (found, *process, error) {
	if err := validateExec(spec); err != nil {
		return found{}, nil, err
	}
	t, err := s.runningContainer(ctx, id, ref)
	if err != nil {
		return t, nil, err
	}
	cmd := slices.Clone(spec.Cmd)
	if len(cmd) == 0 {
		cmd = s.defaultShell(ctx, t.ID)
	}
	token := rand.Text()
	env := slices.DeleteFunc(slices.Clone(spec.Env), func(kv string) bool {
		return strings.HasPrefix(kv, execMarker+"=") || spec.Term != "" && strings.HasPrefix(kv, "TERM=")
	})
	if spec.Term != "" {
		env = append(env, "TERM="+spec.Term)
	}
	env = append(env, execMarker+"="+token)
	var size client.ConsoleSize
	if spec.TTY && spec.Width > 0 {
		size = client.ConsoleSize{Width: uint(spec.Width), Height: uint(spec.Height)}
	}
	what := "exec in " + t.target.String()
	created, err := s.api.ExecCreate(ctx, t.ID, client.ExecCreateOptions{
		TTY:          spec.TTY,
		ConsoleSize:  size, // engines before API 1.42 ignore it: resized below
		AttachStdin:  true,
		AttachStdout: true,
		AttachStderr: true,
		DetachKeys:   detachKeys,
		Env:          env,
		Cmd:          cmd,
	})
	switch {
	case cerrdefs.IsNotFound(err):
		return t, nil, notFound(ref)
	case cerrdefs.IsConflict(err):
		return t, nil, notRunning(t)
	case err != nil:
		return t, nil, engineErr(what, err)
	}
	att, err := s.api.ExecAttach(ctx, created.ID, client.ExecAttachOptions{TTY: spec.TTY, ConsoleSize: size})
	if err != nil {
		return t, nil, engineErr(what, err)
	}
	p := newProcess(s.api, att.HijackedResponse, what, t.ID, created.ID, token, spec.TTY)
	if size.Width > 0 {
		// The size only takes once the process exists: retry briefly while it starts (not
		// after it has ended). A failure leaves the engine's default size, which the next
		// Resize corrects.
		rctx, cancel := context.WithTimeout(ctx, resizeTimeout)
		for {
			_, err := s.api.ExecResize(rctx, created.ID, client.ExecResizeOptions(size))
			if err == nil {
				break
			}
			if ins, ierr := s.api.ExecInspect(rctx, created.ID, client.ExecInspectOptions{}); ierr != nil || !ins.Running && ins.PID != 0 {
				break
			}
			if !sleep(rctx, pollEvery) {
				break
			}
		}
		cancel()
	}
	return t, p, nil
}

// validateExec checks what a user asks to run, before anything is looked up.
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
	return validateSize(spec.Width, spec.Height)
}

// validateSize accepts no size (0x0) or a positive one.
func validateSize(width, height int) error {
	if width == 0 && height == 0 {
		return nil
	}
	if width < 1 || height < 1 || width > maxTermSize || height > maxTermSize {
		return errorf(ErrInvalid, "invalid terminal size %dx%d", width, height)
	}
	return nil
}

// defaultShell is the container's bash if it has one where bash lives, else sh. Looking
// costs a stat through the archive API per place, and starts no process.
func (s *Service) defaultShell(ctx context.Context, containerID string) []string {
	for _, p := range bashPaths {
		res, err := s.api.ContainerStatPath(ctx, containerID, client.ContainerStatPathOptions{Path: p})
		if err == nil && !res.Stat.Mode.IsDir() {
			return []string{p}
		}
	}
	return []string{"sh"}
}

// Attach joins the main process of a running container the identity may use: its terminal
// for a TTY container (the rest get stdout and stderr apart), its stdin if it keeps one
// open. width and height (0 for none) resize the container's terminal. It is audited as
// "attach". Close detaches and leaves the container running; Wait returns the exit code
// when the container's process ends, or backend.ErrDetached when the attachment ended
// without that.
func (s *Service) Attach(ctx context.Context, id backend.Identity, ref string, width, height int) (backend.Execution, error) {
	t, p, err := s.attach(ctx, id, ref, width, height)
	s.record(id, "attach", auditTarget(t, ref), err)
	if err != nil {
		return nil, err
	}
	return p, nil
}

func (s *Service) attach(ctx context.Context, id backend.Identity, ref string, width, height int) (found, *process, error) {
	if err := validateSize(width, height); err != nil {
		return found{}, nil, err
	}
	t, err := s.runningContainer(ctx, id, ref)
	if err != nil {
		return t, nil, err
	}
	what := "attach to " + t.target.String()
	ins, err := s.api.ContainerInspect(ctx, t.ID, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return t, nil, notFound(ref)
	}
	if err != nil {
		return t, nil, engineErr(what, err)
	}
	var tty, stdin bool
	if c := ins.Container.Config; c != nil {
		tty, stdin = c.Tty, c.OpenStdin
	}
	att, err := s.api.ContainerAttach(ctx, t.ID, client.ContainerAttachOptions{
		Stream: true, Stdin: stdin, Stdout: true, Stderr: true, DetachKeys: detachKeys,
	})
	if err != nil {
		return t, nil, engineErr(what, err)
	}
	p := newProcess(s.api, att.HijackedResponse, what, t.ID, "", "", tty)
	if tty && width > 0 {
		if _, err := s.api.ContainerResize(ctx, t.ID, client.ContainerResizeOptions{Width: uint(width), Height: uint(height)}); err != nil {
			_ = p.Close()
			return t, nil, engineErr(what, err)
		}
	}
	return t, p, nil
}

// process is a backend.Execution over one hijacked engine connection: an exec (execID set)
// or an attachment to a container's main process.
type process struct {
	api         execEngine
	what        string // "exec in alice/box", for errors
	containerID string
	execID      string // empty for an attachment
	token       string // value of execMarker in the exec's environment
	tty         bool

	conn           client.HijackedResponse
	stdin          *stdinWriter
	stdout, stderr *io.PipeReader

	done chan struct{} // closed when code and err are final
	code int
	err  error

	endMu     sync.Mutex // one ending at a time
	closing   atomic.Bool
	closeOnce sync.Once
	closeErr  error
}

func newProcess(api execEngine, conn client.HijackedResponse, what, containerID, execID, token string, tty bool) *process {
	p := &process{
		api: api, what: what, containerID: containerID, execID: execID, token: token, tty: tty,
		conn: conn, done: make(chan struct{}),
	}
	p.stdin = &stdinWriter{conn: &p.conn, tty: tty}
	outR, outW := io.Pipe()
	p.stdout = outR
	var errW *io.PipeWriter
	if !tty {
		p.stderr, errW = io.Pipe()
	}
	go p.pump(outW, errW)
	return p
}

// pump copies the stream to the pipes until it ends, then settles how the process ended.
func (p *process) pump(outW, errW *io.PipeWriter) {
	var err error
	if p.tty {
		_, err = io.Copy(outW, p.conn.Reader)
	} else {
		_, err = stdcopy.StdCopy(outW, errW, p.conn.Reader)
	}
	if p.closing.Load() {
		err = nil
	}
	_ = outW.CloseWithError(err)
	if errW != nil {
		_ = errW.CloseWithError(err)
	}
	p.stdin.closed.Store(true)
	ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
	defer cancel()
	if p.execID != "" {
		p.code, p.err = p.execExit(ctx)
	} else {
		p.code, p.err = p.attachExit(ctx)
	}
	close(p.done)
}

// execExit is the exit code of an exec whose stream has ended. If the process is still
// running then, the connection was lost (or the engine's detach sequence typed): the
// process is ended rather than left behind.
func (p *process) execExit(ctx context.Context) (int, error) {
	deadline := time.Now().Add(lostWait)
	for {
		ins, err := p.api.ExecInspect(ctx, p.execID, client.ExecInspectOptions{})
		if err != nil {
			return -1, engineErr(p.what, err)
		}
		if !ins.Running {
			return ins.ExitCode, nil
		}
		if p.closing.Load() || time.Now().After(deadline) {
			break
		}
		sleep(ctx, pollEvery)
	}
	if err := p.end(ctx); err != nil {
		return -1, err
	}
	return -1, fmt.Errorf("%s: the connection to the process was lost; the process was ended", p.what)
}

// attachExit is the exit code of the container's process once the attachment has ended,
// or ErrDetached if the container goes on running.
func (p *process) attachExit(ctx context.Context) (int, error) {
	detached := &userError{kind: backend.ErrDetached, msg: "detached from " + strings.TrimPrefix(p.what, "attach to ") + "; it keeps running"}
	if p.closing.Load() {
		return -1, detached
	}
	wctx, cancel := context.WithTimeout(ctx, lostWait)
	defer cancel()
	w := p.api.ContainerWait(wctx, p.containerID, client.ContainerWaitOptions{Condition: container.WaitConditionNotRunning})
	select {
	case res := <-w.Result:
		if res.Error != nil && res.Error.Message != "" {
			return int(res.StatusCode), fmt.Errorf("%s: %s", p.what, res.Error.Message)
		}
		return int(res.StatusCode), nil
	case err := <-w.Error:
		if wctx.Err() != nil {
			return -1, detached
		}
		if cerrdefs.IsNotFound(err) {
			return -1, fmt.Errorf("%s: the container was removed", p.what)
		}
		return -1, engineErr(p.what, err)
	}
}

func (p *process) Stdin() io.WriteCloser { return p.stdin }
func (p *process) Stdout() io.Reader     { return p.stdout }

func (p *process) Stderr() io.Reader {
	if p.stderr == nil {
		return nil // a nil *io.PipeReader in an interface would not compare equal to nil
	}
	return p.stderr
}

func (p *process) Resize(width, height int) error {
	if !p.tty {
		return errorf(ErrInvalid, "%s: no terminal to resize", p.what)
	}
	if width == 0 || height == 0 {
		return errorf(ErrInvalid, "invalid terminal size %dx%d", width, height)
	}
	if err := validateSize(width, height); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	if p.execID != "" {
		_, err = p.api.ExecResize(ctx, p.execID, client.ExecResizeOptions{Width: uint(width), Height: uint(height)})
	} else {
		_, err = p.api.ContainerResize(ctx, p.containerID, client.ContainerResizeOptions{Width: uint(width), Height: uint(height)})
	}
	return engineErr("resize "+p.what, err)
}

func (p *process) Wait(ctx context.Context) (int, error) {
	select {
	case <-p.done:
		return p.code, p.err
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

// Close ends an exec's process if it still runs (see the top of this file) and releases the
// connection and pipes; for an attachment it only detaches.
func (p *process) Close() error {
	p.closeOnce.Do(func() {
		p.closing.Store(true)
		p.stdin.closed.Store(true)
		ctx, cancel := context.WithTimeout(context.Background(), endTimeout)
		defer cancel()
		if p.execID != "" {
			p.closeErr = p.end(ctx)
		}
		p.conn.Close()
		select {
		case <-p.done: // readers got EOF
		case <-time.After(250 * time.Millisecond):
			// Output nobody reads any more must not hold the pump.
			_ = p.stdout.Close()
			if p.stderr != nil {
				_ = p.stderr.Close()
			}
			select {
			case <-p.done:
			case <-ctx.Done():
			}
		}
	})
	return p.closeErr
}

// end ends the exec's process if it still runs: SIGHUP, then SIGKILL after hangupGrace,
// each sent from inside the container, until the engine reports it gone.
func (p *process) end(ctx context.Context) error {
	p.endMu.Lock()
	defer p.endMu.Unlock()
	var sent error
	for _, step := range []struct {
		sig  string
		wait time.Duration
	}{{"HUP", hangupGrace}, {"KILL", killWait}} {
		ins, err := p.api.ExecInspect(ctx, p.execID, client.ExecInspectOptions{})
		if cerrdefs.IsNotFound(err) {
			return nil // the container is gone, and its processes with it
		}
		if err != nil {
			return engineErr("end "+p.what, err)
		}
		if !ins.Running {
			return nil
		}
		if err := p.signal(ctx, ins.PID, step.sig); err != nil {
			sent = err
		}
		if p.waitExit(ctx, step.wait) {
			return nil
		}
	}
	if sent != nil {
		return sent
	}
	return fmt.Errorf("end %s: the process is still running", p.what)
}

// waitExit polls until the engine reports the exec's process ended, for at most d.
func (p *process) waitExit(ctx context.Context, d time.Duration) bool {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	for {
		ins, err := p.api.ExecInspect(ctx, p.execID, client.ExecInspectOptions{})
		if cerrdefs.IsNotFound(err) || err == nil && !ins.Running {
			return true
		}
		if !sleep(ctx, pollEvery) {
			return false
		}
	}
}

// signal runs endScript in the container to send sig to the exec's process (host PID
// hostPID) and the process groups a hang-up reaches.
func (p *process) signal(ctx context.Context, hostPID int, sig string) error {
	cmd := []string{"sh", "-c", endScript, "whalemountain-end", sig}
	if pid, ok := containerPID(hostProc, hostPID, p.containerID); ok {
		cmd = append(cmd, "pid", strconv.Itoa(pid))
	} else {
		cmd = append(cmd, "marker", execMarker+"="+p.token)
	}
	what := "end " + p.what
	created, err := p.api.ExecCreate(ctx, p.containerID, client.ExecCreateOptions{AttachStdout: true, AttachStderr: true, Cmd: cmd})
	if err != nil {
		return engineErr(what, err)
	}
	att, err := p.api.ExecAttach(ctx, created.ID, client.ExecAttachOptions{})
	if err != nil {
		return engineErr(what, err)
	}
	defer att.Close()
	stop := context.AfterFunc(ctx, att.Close)
	defer stop()
	var out limitedBuffer
	_, _ = stdcopy.StdCopy(&out, &out, att.Reader)
	if ins, err := p.api.ExecInspect(ctx, created.ID, client.ExecInspectOptions{}); err == nil && ins.ExitCode != 0 {
		return fmt.Errorf("%s: kill -%s exited %d: %s", what, sig, ins.ExitCode, strings.TrimSpace(string(out.b)))
	}
	return nil
}

// endScript signals, inside the container, an exec's process, its process group and (with
// a terminal) the terminal's foreground group; never PID 1 or PID 1's group. Arguments:
// the signal, then "pid N" (N as the container sees it) or "marker NAME=VALUE" (the process
// started from outside the container, parent PID 0, that has it in its environment).
const endScript = `sig=$1 how=$2 what=$3
if [ "$how" = pid ]; then
	p=$what
else
	p=
	for d in /proc/[0-9]*; do
		q=${d#/proc/}
		[ "$q" = "$$" ] && continue
		grep -q "$what" "$d/environ" 2>/dev/null || continue
		s=$(cat "$d/stat" 2>/dev/null) || continue
		set -- ${s##*)}
		if [ "$2" = 0 ]; then p=$q; break; fi
	done
fi
[ -n "$p" ] && [ "$p" -gt 1 ] 2>/dev/null || exit 0
s=$(cat "/proc/$p/stat" 2>/dev/null) || exit 0
set -- ${s##*)}
pg=$3 tp=$6
s=$(cat /proc/1/stat 2>/dev/null)
set -- ${s##*)}
ipg=$3
if [ "$pg" = "$p" ] && [ "$pg" != "$ipg" ]; then t=-$p; else t=$p; fi
if [ "$tp" -gt 1 ] 2>/dev/null && [ "$tp" != "$pg" ] && [ "$tp" != "$ipg" ]; then t="$t -$tp"; fi
kill -$sig $t
`

// containerPID maps a host PID to the PID the container sees (the last NSpid entry), if
// proc shows that process and it belongs to the container.
func containerPID(proc string, hostPID int, containerID string) (int, bool) {
	if hostPID <= 0 || len(containerID) < 12 {
		return 0, false
	}
	dir := filepath.Join(proc, strconv.Itoa(hostPID))
	cg, err := os.ReadFile(filepath.Join(dir, "cgroup"))
	if err != nil || !strings.Contains(string(cg), containerID) {
		return 0, false
	}
	status, err := os.ReadFile(filepath.Join(dir, "status"))
	if err != nil {
		return 0, false
	}
	for line := range strings.Lines(string(status)) {
		rest, ok := strings.CutPrefix(line, "NSpid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		n, err := strconv.Atoi(f[len(f)-1])
		return n, err == nil && n > 1
	}
	return 0, false
}

// stdinWriter is an Execution's stdin: the hijacked connection's write side.
type stdinWriter struct {
	conn   *client.HijackedResponse
	tty    bool
	closed atomic.Bool
	once   sync.Once
}

func (w *stdinWriter) Write(b []byte) (int, error) {
	if w.closed.Load() {
		return 0, io.ErrClosedPipe
	}
	return w.conn.Conn.Write(b)
}

// Close sends EOF without a TTY (the engine then closes the process's stdin); with one it
// only stops input, since ending the write side would end the whole stream.
func (w *stdinWriter) Close() error {
	var err error
	w.once.Do(func() {
		if w.closed.Swap(true) || w.tty {
			return
		}
		if err = w.conn.CloseWrite(); errors.Is(err, net.ErrClosed) {
			err = nil
		}
	})
	return err
}

// limitedBuffer keeps the first 4 KiB written to it.
type limitedBuffer struct{ b []byte }

func (l *limitedBuffer) Write(b []byte) (int, error) {
	if room := 4096 - len(l.b); room > 0 {
		l.b = append(l.b, b[:min(room, len(b))]...)
	}
	return len(b), nil
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
