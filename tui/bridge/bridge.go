// Package bridge connects a user's SSH terminal to a process in a container or pod (a
// backend.Execution): keystrokes in, output out, every window size forwarded, the process's
// exit code back — and the process ended when the user goes away.
package bridge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"

	"whalemountain/backend"
	"whalemountain/tui/input"
)

// Terminal is the user's side of a bridge.
type Terminal struct {
	In     io.Reader         // what the user types (or pipes in)
	Out    io.Writer         // the process's output (with a TTY, everything the terminal shows)
	ErrOut io.Writer         // the process's error output without a TTY
	Sizes  <-chan input.Size // window sizes; nil without a terminal
	// Detach, when set, is a key sequence (ctrl-p ctrl-q) that leaves the process running
	// and ends the bridge.
	Detach []byte
	// StopInput, when set, makes a pending In.Read return (the router's stream Close). Run
	// then waits until input reading has stopped, so every byte typed after the process
	// ended is still there for the next reader.
	StopInput func()
}

// Unreader is implemented by inputs that can take back bytes nobody consumed (the session's
// input router), so keys typed as the process ends go to whoever reads next.
type Unreader interface{ Unread(p []byte) }

// Result is how a bridge ended.
type Result struct {
	ExitCode int
	Detached bool // the user pressed the detach sequence
}

// DetachKeys is Docker's default detach sequence: ctrl-p ctrl-q.
var DetachKeys = []byte{0x10, 0x11}

// Run bridges term and ex until the process ends, the user detaches, or ctx ends (the client
// went away: the process is then ended). It always closes ex.
func Run(ctx context.Context, ex backend.Execution, term Terminal) (Result, error) {
	defer ex.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	detached := make(chan struct{})
	var detachOnce sync.Once
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		pumpInput(ctx, ex, term, func() { detachOnce.Do(func() { close(detached) }) })
	}()
	if term.StopInput != nil {
		defer func() {
			_ = ex.Close()
			term.StopInput()
			<-pumped
		}()
	}

	var outputs sync.WaitGroup
	copyOut := func(w io.Writer, r io.Reader) {
		if r == nil || w == nil {
			return
		}
		outputs.Add(1)
		go func() {
			defer outputs.Done()
			_, _ = io.Copy(w, r)
		}()
	}
	copyOut(term.Out, ex.Stdout())
	copyOut(term.ErrOut, ex.Stderr())

	if term.Sizes != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case s, ok := <-term.Sizes:
					if !ok {
						return
					}
					_ = ex.Resize(s.Width, s.Height)
				}
			}
		}()
	}

	type waited struct {
		code int
		err  error
	}
	done := make(chan waited, 1)
	go func() {
		code, err := ex.Wait(ctx)
		done <- waited{code, err}
	}()
	select {
	case w := <-done:
		outputs.Wait()
		if errors.Is(w.err, backend.ErrDetached) {
			return Result{Detached: true}, nil
		}
		return Result{ExitCode: w.code}, w.err
	case <-detached:
		return Result{Detached: true}, nil
	case <-ctx.Done():
		return Result{}, ctx.Err()
	}
}

// pumpInput copies the user's input to the process, watching for the detach sequence. When
// the input ends (EOF from a pipe), the process's stdin is closed so it sees EOF. Bytes that
// could not be delivered because the process ended go back to the input.
func pumpInput(ctx context.Context, ex backend.Execution, term Terminal, detach func()) {
	stdin := ex.Stdin()
	buf := make([]byte, 32*1024)
	var held []byte // a detach prefix waiting for its next byte
	for ctx.Err() == nil {
		n, err := term.In.Read(buf)
		if n > 0 {
			data := append(held, buf[:n]...)
			out, rest, found := scanDetach(data, term.Detach)
			held = rest
			if len(out) > 0 {
				if _, werr := stdin.Write(out); werr != nil {
					if u, ok := term.In.(Unreader); ok {
						u.Unread(out)
					}
					return
				}
			}
			if found {
				detach()
				return
			}
		}
		if err != nil {
			_ = stdin.Close()
			return
		}
	}
}

// scanDetach splits data into what goes to the process, a trailing prefix of the detach
// sequence held back until the next read, and whether the full sequence was typed.
func scanDetach(data, seq []byte) (out, held []byte, found bool) {
	if len(seq) == 0 {
		return data, nil, false
	}
	if i := bytes.Index(data, seq); i >= 0 {
		return data[:i], nil, true
	}
	for k := min(len(seq)-1, len(data)); k > 0; k-- {
		if bytes.Equal(data[len(data)-k:], seq[:k]) {
			return data[:len(data)-k], append([]byte(nil), data[len(data)-k:]...), false
		}
	}
	return data, nil, false
}
