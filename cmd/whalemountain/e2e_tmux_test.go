package main

// Terminals in tmux for end-to-end tests that need more than one user at a keyboard: each
// ssh client runs in a tmux session of its own on a tmux server private to the test. The
// test reads what each user sees (capture-pane), every byte each client was sent
// (pipe-pane), the terminal's title (the status line) and types keys (send-keys).

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// tmuxServer is a tmux server of one test.
type tmuxServer struct {
	t    *testing.T
	sock string
	dir  string
}

// newTmux starts a private tmux server; it is killed at cleanup.
func newTmux(t *testing.T) *tmuxServer {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		t.Fatalf("tmux is needed for the two-terminal tests (apt-get install tmux): %v", err)
	}
	dir, err := os.MkdirTemp("", "wmtmux")
	if err != nil {
		t.Fatal(err)
	}
	x := &tmuxServer{t: t, sock: filepath.Join(dir, "s"), dir: dir}
	// A first session keeps the server up; panes stay after their client exits, for its status.
	x.must("-f", "/dev/null", "new-session", "-d", "-s", "keep", "sleep 3600")
	x.must("set-option", "-g", "remain-on-exit", "on")
	t.Cleanup(func() {
		_, _ = x.run("kill-server")
		os.RemoveAll(dir)
	})
	return x
}

func (x *tmuxServer) run(args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tmux", append([]string{"-S", x.sock}, args...)...)
	cmd.Env = append(environWithout("SSH_AUTH_SOCK"), "TMUX=")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (x *tmuxServer) must(args ...string) string {
	x.t.Helper()
	out, err := x.run(args...)
	if err != nil {
		x.t.Fatalf("tmux %q: %v\n%s", args, err, out)
	}
	return out
}

// tmuxPane is one client in its own tmux session.
type tmuxPane struct {
	x    *tmuxServer
	name string
	raw  string // file with every byte the client wrote to its terminal
}

// open runs argv in a new cols x rows terminal named name.
func (x *tmuxServer) open(name string, cols, rows int, argv []string) *tmuxPane {
	x.t.Helper()
	p := &tmuxPane{x: x, name: name, raw: filepath.Join(x.dir, name+".raw")}
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	// The client waits for the byte capture to be in place before it starts.
	ready := filepath.Join(x.dir, name+".ready")
	shell := "while [ ! -e " + ready + " ]; do sleep 0.02; done; exec " + strings.Join(quoted, " ")
	x.must("new-session", "-d", "-s", name, "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows), shell)
	x.must("pipe-pane", "-o", "-t", name, "cat >> "+p.raw)
	if err := os.WriteFile(ready, nil, 0o600); err != nil {
		x.t.Fatal(err)
	}
	return p
}

// screen is what the terminal shows, one line per row.
func (p *tmuxPane) screen() string {
	out, _ := p.x.run("capture-pane", "-p", "-t", p.name)
	return out
}

func (p *tmuxPane) format(f string) string {
	out, _ := p.x.run("display-message", "-p", "-t", p.name, f)
	return strings.TrimRight(out, "\n")
}

// title is the terminal's title, as the client last set it.
func (p *tmuxPane) title() string { return p.format("#{pane_title}") }

// bytes is everything the client wrote to its terminal since it started.
func (p *tmuxPane) bytes() []byte {
	b, _ := os.ReadFile(p.raw)
	return b
}

// waitScreen waits until cond holds for the screen.
func (p *tmuxPane) waitScreen(what string, cond func(string) bool) string {
	p.x.t.Helper()
	var last string
	if !poll(pollTimeout, func() bool { last = p.screen(); return cond(last) }) {
		b := p.bytes()
		p.x.t.Fatalf("%s: never showed %s; screen:\n%s\nits last bytes: %q", p.name, what, last, b[max(0, len(b)-600):])
	}
	return last
}

// waitText waits until the screen shows s.
func (p *tmuxPane) waitText(s string) string {
	p.x.t.Helper()
	return p.waitScreen(strconv.Quote(s), func(sc string) bool { return strings.Contains(sc, s) })
}

// waitTitle waits until the title contains s.
func (p *tmuxPane) waitTitle(s string) string {
	p.x.t.Helper()
	var last string
	if !poll(pollTimeout, func() bool { last = p.title(); return strings.Contains(last, s) }) {
		p.x.t.Fatalf("%s: the title never showed %q; it is %q", p.name, s, last)
	}
	return last
}

// typeLine types s and Enter.
func (p *tmuxPane) typeLine(s string) {
	p.x.t.Helper()
	p.x.must("send-keys", "-t", p.name, "-l", s)
	p.x.must("send-keys", "-t", p.name, "Enter")
}

// keys sends tmux key names (C-p, Enter).
func (p *tmuxPane) keys(k ...string) {
	p.x.t.Helper()
	p.x.must(append([]string{"send-keys", "-t", p.name}, k...)...)
}

// resize gives the terminal a new size.
func (p *tmuxPane) resize(cols, rows int) {
	p.x.t.Helper()
	p.x.must("resize-window", "-t", p.name, "-x", strconv.Itoa(cols), "-y", strconv.Itoa(rows))
}

// waitExit waits for the client to exit and returns its status.
func (p *tmuxPane) waitExit() int {
	p.x.t.Helper()
	if !poll(sshTimeout, func() bool { return p.format("#{pane_dead}") == "1" }) {
		p.x.t.Fatalf("%s: the client did not exit; screen:\n%s", p.name, p.screen())
	}
	code, _ := strconv.Atoi(p.format("#{pane_dead_status}"))
	return code
}
