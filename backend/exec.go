package backend

import (
	"context"
	"errors"
	"io"
)

// Execution is a process running in a container or pod, wired either to a terminal (TTY)
// or to pipes. Every backend that can run something interactively returns one, so the SSH
// side bridges containers and pods the same way.
//
// The output streams are pipes: read Stdout (and, without a TTY, Stderr) concurrently until
// EOF, as with os/exec's pipes; output that nobody reads holds the process back. The
// context given to the call that made the Execution covers setting it up only: call Close
// when the user goes away, or the process outlives them.
type Execution interface {
	// Stdin is the process's input. Without a TTY, closing it sends EOF. With a TTY there
	// is no EOF to send (a terminal's EOF is the byte ctrl-D): closing it only stops input.
	Stdin() io.WriteCloser
	// Stdout is the process's output; with a TTY, everything the terminal shows.
	Stdout() io.Reader
	// Stderr is the process's error output without a TTY; nil with one.
	Stderr() io.Reader
	// Resize sets the terminal size in character cells; an error without a TTY.
	Resize(width, height int) error
	// Wait blocks until the process ends (and its output has been read) and returns its
	// exit code; 128+N when signal N ended it. The error is ctx's when ctx ends first, or
	// says why no exit code could be had (ErrDetached for an attach that ended while the
	// process goes on).
	Wait(ctx context.Context) (exitCode int, err error)
	// Close ends the execution and releases its streams. For a process the call started,
	// that means ending it like a terminal hang-up (SIGHUP, then SIGKILL after a short
	// grace) if it still runs; an attachment to a container's main process only detaches,
	// and the container keeps running. Close may be called more than once and at any time.
	Close() error
}

// Executor runs processes in the containers or pods an identity may reach; ref names one
// as its user typed it ("box", or "alice/box" for a TA). The container and pod rooms both
// have it.
type Executor interface {
	Exec(ctx context.Context, id Identity, ref string, spec ExecSpec) (Execution, error)
}

// ExecSpec is what to run in a container or pod.
type ExecSpec struct {
	Cmd    []string // empty: the default shell (bash if the container has it, else sh)
	TTY    bool     // a terminal (interactive shell, editors) instead of pipes
	Term   string   // TERM for the process, with a TTY; empty: the backend's default
	Width  int      // initial terminal size in cells, with a TTY; 0: the backend's default
	Height int
	Env    []string // extra KEY=value
}

// Errors an execution can end or be refused with, shared by every backend.
var (
	// ErrNotRunning: the container or pod must be running for this; a caller may offer to
	// start it.
	ErrNotRunning = errors.New("not running")
	// ErrDetached: an attachment ended while the process goes on running.
	ErrDetached = errors.New("detached")
)
