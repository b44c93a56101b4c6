package main

// A terminal for the end-to-end tests: the real ssh client runs in a pseudo-terminal, and
// what it prints is fed into a VT emulator whose screen the tests read, as a user would.

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	uv "github.com/charmbracelet/ultraviolet"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"
)

// terminal is ssh running in a PTY of a given size, drawn by a VT emulator.
type terminal struct {
	t    *testing.T
	cmd  *exec.Cmd
	ptmx *os.File

	mu  sync.Mutex // guards emu: the reader writes to it while tests look at it
	emu *vt.Emulator

	exited  chan struct{} // closed when ssh has exited
	drained chan struct{} // closed when everything ssh wrote is on the emulator's screen
	code    int           // ssh's exit status, valid after exited
}

// openTerminal starts `ssh -tt user@127.0.0.1 remote...` in a cols x rows PTY.
func (s *server) openTerminal(t *testing.T, key *testKey, user string, cols, rows int, remote ...string) *terminal {
	t.Helper()
	bin := sshBinary(t)
	cmd := exec.Command(bin, s.sshArgs(key, user, []string{"-tt"}, remote...)...)
	cmd.Env = append(environWithout("SSH_AUTH_SOCK"), "TERM=xterm-256color")
	return startTerminal(t, cmd, cols, rows)
}

// startTerminal starts cmd (its environment set by the caller) in a cols x rows PTY drawn
// by a VT emulator.
func startTerminal(t *testing.T, cmd *exec.Cmd, cols, rows int) *terminal {
	t.Helper()
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
	if err != nil {
		t.Fatalf("start %s in a pty: %v", cmd.Path, err)
	}
	tm := &terminal{t: t, cmd: cmd, ptmx: ptmx, emu: vt.NewEmulator(cols, rows),
		exited: make(chan struct{}), drained: make(chan struct{})}

	// The server's output goes into the emulator.
	go func() {
		defer close(tm.drained)
		buf := make([]byte, 32*1024)
		for {
			n, err := ptmx.Read(buf)
			if n > 0 {
				tm.mu.Lock()
				_, _ = tm.emu.Write(buf[:n])
				tm.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	// The emulator's answers to queries (device attributes, cursor position, ...) go back
	// to the server, as a real terminal's do. Without a reader the emulator would block.
	go func() {
		buf := make([]byte, 1024)
		for {
			n, err := tm.emu.Read(buf)
			if n > 0 {
				_, _ = ptmx.Write(buf[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		tm.code = cmd.ProcessState.ExitCode()
		close(tm.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-tm.exited:
		default:
			_ = cmd.Process.Kill()
			<-tm.exited
		}
		_ = ptmx.Close()
		// End the answer reader by closing the emulator's input pipe; Emulator.Close would
		// race with a Read in progress.
		if c, ok := tm.emu.InputPipe().(io.Closer); ok {
			_ = c.Close()
		}
		if t.Failed() {
			t.Logf("last screen:\n%s", tm.dump())
		}
	})
	return tm
}

// lines is the screen, one string per row, trailing blanks removed.
func (tm *terminal) lines() []string {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	w, h := tm.emu.Width(), tm.emu.Height()
	out := make([]string, h)
	for y := 0; y < h; y++ {
		var b strings.Builder
		for x := 0; x < w; {
			c := tm.emu.CellAt(x, y)
			if c == nil || c.Content == "" {
				b.WriteByte(' ')
				x++
				continue
			}
			b.WriteString(c.Content)
			x += max(c.Width, 1)
		}
		out[y] = strings.TrimRight(b.String(), " ")
	}
	return out
}

// styleAt is the style of the cell at column x, row y.
func (tm *terminal) styleAt(x, y int) uv.Style {
	tm.mu.Lock()
	defer tm.mu.Unlock()
	if c := tm.emu.CellAt(x, y); c != nil {
		return c.Style
	}
	return uv.Style{}
}

func (tm *terminal) dump() string {
	ls := tm.lines()
	var b strings.Builder
	for i, l := range ls {
		fmt.Fprintf(&b, "%2d|%s\n", i, l)
	}
	return b.String()
}

// screenHas reports whether every substring appears somewhere on the screen.
func screenHas(lines []string, substrs ...string) bool {
	all := strings.Join(lines, "\n")
	for _, s := range substrs {
		if !strings.Contains(all, s) {
			return false
		}
	}
	return true
}

// findLine is the index of the first row containing substr, or -1.
func findLine(lines []string, substr string) int {
	for i, l := range lines {
		if strings.Contains(l, substr) {
			return i
		}
	}
	return -1
}

// waitScreen waits until cond holds for the screen and returns that screen.
func (tm *terminal) waitScreen(what string, cond func([]string) bool) []string {
	tm.t.Helper()
	var last []string
	ok := poll(pollTimeout, func() bool {
		last = tm.lines()
		return cond(last)
	})
	if !ok {
		tm.t.Fatalf("the screen never showed %s; last screen:\n%s", what, tm.dump())
	}
	return last
}

// waitText waits until every substring is on the screen.
func (tm *terminal) waitText(substrs ...string) []string {
	tm.t.Helper()
	return tm.waitScreen(strings.Join(quoteAll(substrs), ", "), func(ls []string) bool { return screenHas(ls, substrs...) })
}

// waitGone waits until substr is no longer on the screen.
func (tm *terminal) waitGone(substr string) []string {
	tm.t.Helper()
	return tm.waitScreen("no "+`"`+substr+`"`, func(ls []string) bool { return !screenHas(ls, substr) })
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = `"` + s + `"`
	}
	return out
}

// send types s, as if on the keyboard.
func (tm *terminal) send(s string) {
	tm.t.Helper()
	if _, err := tm.ptmx.Write([]byte(s)); err != nil {
		tm.t.Fatalf("type %q: %v", s, err)
	}
}

// resize changes the window: the emulator first, then the PTY (ssh gets SIGWINCH and tells
// the server).
func (tm *terminal) resize(cols, rows int) {
	tm.t.Helper()
	tm.mu.Lock()
	tm.emu.Resize(cols, rows)
	tm.mu.Unlock()
	if err := pty.Setsize(tm.ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err != nil {
		tm.t.Fatalf("resize pty: %v", err)
	}
}

// waitExit waits for ssh to end and for its last output to reach the screen, and returns
// its exit status.
func (tm *terminal) waitExit(timeout time.Duration) int {
	tm.t.Helper()
	deadline := time.After(timeout)
	select {
	case <-tm.exited:
	case <-deadline:
		tm.t.Fatalf("ssh still running after %v; screen:\n%s", timeout, tm.dump())
	}
	select {
	case <-tm.drained:
	case <-deadline:
		tm.t.Fatalf("ssh exited but its output did not end within %v", timeout)
	}
	return tm.code
}

// cellWidth is the width of a screen line in cells.
func cellWidth(line string) int { return ansi.StringWidth(line) }
