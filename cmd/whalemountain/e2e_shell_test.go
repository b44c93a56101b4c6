package main

// End-to-end tests of the terminal into containers: `shell`, `exec` and `attach` over the
// real OpenSSH client (in a PTY, its screen read through a VT emulator), and `s` in the
// dashboard, which hands the same session's input to a shell and takes it back. Every
// container runs on the real engine, from the busybox test image.

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"whalemountain/backend/docker/dockertest"
)

// shellPrompt is busybox sh's prompt for root in alice's home (PS1 '\w \$ ').
const shellPrompt = "/home/alice #"

// shellPrefix is a name prefix of this test process's own, so that test runs sharing an
// engine never meet on a container name.
func shellPrefix(tag string) string { return "s" + dockertest.RunID()[8:] + tag }

// shellServer starts a container server for one test, lets alice in and runs a container
// of hers for each name.
func shellServer(t *testing.T, cli *client.Client, img, tag string, names ...string) (*ctrServer, *testKey) {
	t.Helper()
	s := startContainerServer(t, cli, img, shellPrefix(tag), ctrOptions{})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)
	for _, name := range names {
		s.mustRun(t, alice, "alice", "run", "--name", name, img)
	}
	return s, alice
}

// linesEqual is the number of screen rows that are exactly text (trailing blanks ignored).
func linesEqual(lines []string, text string) int {
	n := 0
	for _, l := range lines {
		if strings.TrimSpace(l) == text {
			n++
		}
	}
	return n
}

// waitOutput waits for a row that is exactly text: the output of a command, not the echo of
// the command line typed (type the word split by an empty quoted string, wait for it whole).
func (tm *terminal) waitOutput(text string) []string {
	tm.t.Helper()
	return tm.waitScreen(`a row "`+text+`"`, func(ls []string) bool { return linesEqual(ls, text) > 0 })
}

// waitSize runs `stty size` in the shell until it shows rows and cols: a window change
// travels on its own, so the first run may still see the old size.
func (tm *terminal) waitSize(rows, cols int) {
	tm.t.Helper()
	want := fmt.Sprintf("%d %d", rows, cols)
	if !poll(pollTimeout, func() bool {
		tm.send("clear; stty size\r")
		return poll(time.Second, func() bool { return linesEqual(tm.lines(), want) > 0 })
	}) {
		tm.t.Fatalf("stty size never showed %q; last screen:\n%s", want, tm.dump())
	}
}

// promptAfter reports whether a prompt row follows the last row containing typed.
func promptAfter(lines []string, typed string) bool {
	last := -1
	for i, l := range lines {
		if strings.Contains(l, typed) {
			last = i
		}
	}
	if last < 0 {
		return false
	}
	for _, l := range lines[last+1:] {
		if strings.HasPrefix(strings.TrimSpace(l), shellPrompt) {
			return true
		}
	}
	return false
}

// waitPromptAfter waits until the shell prompts again after the command line typed.
func (tm *terminal) waitPromptAfter(typed string) []string {
	tm.t.Helper()
	return tm.waitScreen("a prompt after "+`"`+typed+`"`, func(ls []string) bool { return promptAfter(ls, typed) })
}

// sshStdin runs ssh without a PTY, remote arguments as given, with stdin from in.
func (s *server) sshStdin(t *testing.T, key *testKey, user, in string, remote ...string) sshResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, sshBinary(t), s.sshArgs(key, user, nil, remote...)...)
	cmd.Env = environWithout("SSH_AUTH_SOCK")
	cmd.Stdin = strings.NewReader(in)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ssh %q did not finish within %v\nstderr: %s", remote, sshTimeout, stderr.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run ssh: %v", err)
	}
	return sshResult{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}

// topProcess is one process in a container, as `docker top` shows it.
type topProcess struct{ PID, Cmd string }

// containerTop lists the processes in a container (ps -ef on the host, PIDs of the host).
func containerTop(t *testing.T, cli *client.Client, id string) []topProcess {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	res, err := cli.ContainerTop(ctx, id, client.ContainerTopOptions{})
	if err != nil {
		t.Fatalf("top %s: %v", id, err)
	}
	pidCol, cmdCol := slices.Index(res.Titles, "PID"), slices.Index(res.Titles, "CMD")
	if pidCol < 0 || cmdCol < 0 {
		t.Fatalf("top %s: titles %q have no PID or CMD", id, res.Titles)
	}
	var out []topProcess
	for _, p := range res.Processes {
		if len(p) > max(pidCol, cmdCol) {
			out = append(out, topProcess{PID: p[pidCol], Cmd: p[cmdCol]})
		}
	}
	return out
}

func topHas(ps []topProcess, cmd string) bool {
	return slices.ContainsFunc(ps, func(p topProcess) bool { return p.Cmd == cmd })
}

// waitTop polls the container's processes until cond holds, for at most timeout.
func waitTop(t *testing.T, cli *client.Client, id string, timeout time.Duration, cond func([]topProcess) bool) ([]topProcess, bool) {
	t.Helper()
	var last []topProcess
	ok := poll(timeout, func() bool {
		last = containerTop(t, cli, id)
		return cond(last)
	})
	return last, ok
}

// TestE2EShell opens terminals in containers with `ssh -t host shell NAME`, and from the
// dashboard with `s`.
func TestE2EShell(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)

	t.Run("Terminal", func(t *testing.T) {
		t.Parallel()
		testShellTerminal(t, cli, img)
	})
	t.Run("NeedsTerminal", func(t *testing.T) {
		t.Parallel()
		s, alice := shellServer(t, cli, img, "n", "box")
		r := s.run(t, alice, "alice", "shell", "box")
		wantError(t, "shell without -t", r, 2, "-t")
	})
	t.Run("FromDashboard", func(t *testing.T) {
		t.Parallel()
		testShellFromDashboard(t, cli, img)
	})
	t.Run("ClientGone", func(t *testing.T) {
		t.Parallel()
		testShellClientGone(t, cli, img)
	})
	t.Run("OtherUsers", func(t *testing.T) {
		t.Parallel()
		testShellOtherUsers(t, cli, img)
	})
}

func testShellTerminal(t *testing.T, cli *client.Client, img string) {
	s, alice := shellServer(t, cli, img, "t", "box")
	box := s.engineContainer(t, "alice", "box")

	tm := s.openTerminal(t, alice, "alice", 100, 30, "shell", "box")
	tm.waitText(shellPrompt)

	// Edit a file with vi, as on any terminal.
	tm.send("vi /tmp/f\r")
	tm.waitScreen("vi's status line", func(ls []string) bool { return findLine(ls, "/tmp/f") >= 0 && findLine(ls, "~") >= 0 })
	tm.send("i")
	tm.send("written in vi")
	tm.waitText("written in vi")
	tm.send("\x1b") // alone: vi tells ESC from the start of a key sequence by a pause
	tm.waitScreen("vi in command mode", func(ls []string) bool {
		i := findLine(ls, "[Modified]")
		return i >= 0 && strings.HasPrefix(ls[i], "-")
	})
	tm.send(":wq\r")
	tm.waitPromptAfter("vi /tmp/f")
	if r := s.run(t, alice, "alice", "exec", "box", "--", "cat", "/tmp/f"); r.Code != 0 || r.Stdout != "written in vi\n" {
		t.Errorf("exec box -- cat /tmp/f: want exit 0 and %q\n%s", "written in vi\n", r)
	}

	// The container's terminal has the client's size, and follows it.
	tm.send("stty size; echo $TERM\r")
	tm.waitOutput("30 100")
	tm.waitOutput("xterm-256color")
	tm.resize(120, 40)
	tm.waitSize(40, 120)

	// Ctrl-C interrupts the foreground command, and the shell goes on.
	tm.send("sleep 100\r")
	if ps, ok := waitTop(t, cli, box.ID, pollTimeout, func(ps []topProcess) bool { return topHas(ps, "sleep 100") }); !ok {
		t.Fatalf("sleep 100 never ran in box: %+v", ps)
	}
	start := time.Now()
	tm.send("\x03")
	tm.waitPromptAfter("sleep 100")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the prompt came back %v after ctrl-c", d)
	}
	if ps, ok := waitTop(t, cli, box.ID, pollTimeout, func(ps []topProcess) bool { return !topHas(ps, "sleep 100") }); !ok {
		t.Errorf("sleep 100 still runs after ctrl-c: %+v", ps)
	}
	tm.send("echo after''-int\r")
	tm.waitOutput("after-int")

	// The shell's exit status is ssh's.
	tm.send("exit 7\r")
	if code := tm.waitExit(sshTimeout); code != 7 {
		t.Errorf("ssh exited %d after `exit 7`, want 7", code)
	}
	s.waitAudit(t, "alice's shell in box", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "shell" && e.Target == "alice/box" && e.Result == "ok"
	})
}

// testShellFromDashboard: s on a container hands the terminal to a shell in it; keys typed
// in the same write as the s go to the shell, once; exit comes back to the same tab and
// row, and keys typed right after that reach the dashboard.
func testShellFromDashboard(t *testing.T, cli *client.Client, img string) {
	// apple sorts before box: the dashboard starts on apple, and box must be selected.
	s, alice := shellServer(t, cli, img, "d", "apple", "box")
	box := s.engineContainer(t, "alice", "box")
	started := s.engineInspect(t, box.ID).State.StartedAt

	tm := s.openDashboard(t, alice, "alice", "student", 100, 30)
	selected := func(ls []string) string {
		for _, l := range ls {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "▸" {
				return f[1]
			}
		}
		return ""
	}
	tm.waitScreen("apple selected and box running", func(ls []string) bool {
		row := tableRow(ls, "box")
		return selected(ls) == "apple" && row != nil && row[2] == "running"
	})
	tm.send("j")
	tm.waitScreen("box selected", func(ls []string) bool { return selected(ls) == "box" })

	// The command typed with the s contains dashboard keys (r restart, s shell, ...): none
	// of them may reach the dashboard.
	tm.send("secho first''-keys\r")
	tm.waitOutput("first-keys")
	tm.waitText(shellPrompt)
	// The shell runs what it reads in order: a second run of the command would show before
	// the marker typed after it.
	tm.send("echo marker''-after\r")
	tm.waitOutput("marker-after")
	lines := tm.lines()
	if n := linesEqual(lines, "first-keys"); n != 1 {
		t.Errorf("the command typed with s ran %d times, want once:\n%s", n, tm.dump())
	}
	if screenHas(lines, "[1 Containers]") {
		t.Errorf("the dashboard is still on the screen in the shell:\n%s", tm.dump())
	}

	// A resize during the shell reaches the container.
	tm.resize(110, 35)
	tm.waitSize(35, 110)

	tm.send("exit\r")
	lines = tm.waitText("shell in box ended")
	if !screenHas(lines, "shell in box ended (exit 0)") {
		t.Errorf("the status line does not say the shell ended with 0:\n%s", tm.dump())
	}
	tm.send("k") // at once: the dashboard has the input again
	tm.waitScreen("apple selected after k", func(ls []string) bool { return selected(ls) == "apple" })
	tm.send("j")
	lines = tm.waitScreen("box selected after j", func(ls []string) bool { return selected(ls) == "box" })
	if got := tm.activeTab(lines); got != 1 {
		t.Errorf("tab %d active after the shell, want 1 (Containers)", got)
	}
	if err := layoutFits(lines, 110, 35, "alice (student)"); err != nil {
		t.Errorf("the dashboard after the shell does not fit the new size 110x35: %v\n%s", err, tm.dump())
	}
	if st := s.engineInspect(t, box.ID).State; st == nil || !st.Running || st.StartedAt != started {
		t.Errorf("box was restarted or stopped by keys meant for the shell: %+v (started %s before)", st, started)
	}

	tm.send("q")
	if code := tm.waitExit(sshTimeout); code != 0 {
		t.Errorf("ssh exited %d after q, want 0", code)
	}
}

// testShellClientGone: when the client goes away without a word, the shell and what it
// runs are ended, as on a hang-up.
func testShellClientGone(t *testing.T, cli *client.Client, img string) {
	s, alice := shellServer(t, cli, img, "g", "box")
	box := s.engineContainer(t, "alice", "box")
	// The keep-alive forks its sleep a moment after the start: count it in.
	before, ok := waitTop(t, cli, box.ID, pollTimeout, func(ps []topProcess) bool { return topHas(ps, "sleep 3600") })
	if !ok {
		t.Fatalf("the keep-alive never settled: %+v", before)
	}

	tm := s.openTerminal(t, alice, "alice", 80, 24, "shell", "box")
	tm.waitText(shellPrompt)
	tm.send("sleep 300\r")
	during, ok := waitTop(t, cli, box.ID, pollTimeout, func(ps []topProcess) bool { return topHas(ps, "sleep 300") })
	if !ok {
		t.Fatalf("sleep 300 never ran in box: %+v", during)
	}
	// What the shell added: the shell itself and the sleep.
	var added []topProcess
	for _, p := range during {
		if !slices.ContainsFunc(before, func(q topProcess) bool { return q.PID == p.PID }) {
			added = append(added, p)
		}
	}
	if len(added) < 2 {
		t.Fatalf("the shell added %+v to box, want the shell and sleep 300", added)
	}

	if err := tm.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	left, ok := waitTop(t, cli, box.ID, 15*time.Second, func(ps []topProcess) bool {
		return !slices.ContainsFunc(ps, func(p topProcess) bool {
			return slices.ContainsFunc(added, func(q topProcess) bool { return q.PID == p.PID })
		})
	})
	if !ok {
		t.Errorf("15s after the client was killed, box still runs %+v (of %+v)", left, added)
	}
	if st := s.engineInspect(t, box.ID).State; st == nil || !st.Running {
		t.Errorf("box itself stopped: %+v", st)
	}
}

// testShellOtherUsers: another student's container is not there, whatever it is called.
func testShellOtherUsers(t *testing.T, cli *client.Client, img string) {
	s, alice := shellServer(t, cli, img, "o", "box")
	bob := newKey(t, "bob")
	s.addKey(t, "bob", bob)
	box := s.engineContainer(t, "alice", "box")
	engineName := s.prefix + "-alice-box"

	for _, ref := range []string{"alice/box", "box"} {
		r := s.sshFlags(t, bob, "bob", []string{"-tt"}, "shell", ref)
		out := r.Stdout + r.Stderr
		if r.Code != 1 || !strings.Contains(out, "no such container: "+ref) {
			t.Errorf("bob's shell %s: want exit 1 and no such container\n%s", ref, r)
		}
	}
	for _, ref := range []string{engineName, box.ID, box.ID[:12]} {
		r := s.run(t, bob, "bob", "exec", ref, "--", "id")
		wantError(t, "bob's exec "+ref, r, 1, "no such container: "+ref)
	}
	if out := s.mustRun(t, alice, "alice", "exec", "box", "--", "pwd"); out != "/home/alice\n" {
		t.Errorf("alice's exec box ran in %q, want /home/alice", out)
	}
	// bob's own: the same names are his to use once he has a box.
	s.mustRun(t, bob, "bob", "run", "--name", "box", img)
	if out := s.mustRun(t, bob, "bob", "exec", "box", "--", "pwd"); out != "/home/bob\n" {
		t.Errorf("bob's exec box ran in %q, want his own container in /home/bob", out)
	}
}

// TestE2EExec runs commands for scripts: stdin, stdout, stderr and the exit status as with
// a local command.
func TestE2EExec(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	s, alice := shellServer(t, cli, img, "e", "box", "off")

	r := s.sshStdin(t, alice, "alice", "hi\n", "exec", "box", "--", "cat")
	if r.Code != 0 || r.Stdout != "hi\n" || r.Stderr != "" {
		t.Errorf("echo hi | exec box -- cat: want exit 0 and hi\n%s", r)
	}
	// A bigger input arrives whole, and its end is the command's end of input.
	big := strings.Repeat("0123456789abcdef", 64*1024) // 1 MiB
	r = s.sshStdin(t, alice, "alice", big, "exec", "box", "--", "wc", "-c")
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != fmt.Sprint(len(big)) {
		t.Errorf("exec box -- wc -c of %d bytes: exit %d, stdout %q, stderr %q", len(big), r.Code, r.Stdout, r.Stderr)
	}

	r = s.run(t, alice, "alice", "exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.Code != 3 || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Errorf("exec with stdout, stderr and exit 3: want exit 3, stdout %q, stderr %q\n%s", "out\n", "err\n", r)
	}

	s.mustRun(t, alice, "alice", "stop", "off")
	r = s.run(t, alice, "alice", "exec", "off", "--", "true")
	wantError(t, "exec in a stopped container", r, 1, "not running")

	r = s.run(t, alice, "alice", "exec", "box")
	wantError(t, "exec without a command", r, 2, "exec")
	s.waitAudit(t, "alice's exec in box", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "exec" && e.Target == "alice/box" && e.Result == "ok"
	})
}

// TestE2EAttach joins a container's main process and leaves it with ctrl-p ctrl-q.
func TestE2EAttach(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	s, alice := shellServer(t, cli, img, "a")
	s.mustRun(t, alice, "alice", "run", "--name", "a", img, "sh")
	a := s.engineContainer(t, "alice", "a")

	tm := s.openTerminal(t, alice, "alice", 100, 30, "attach", "a")
	tm.send("kept=yes; echo attached''-ok\r")
	tm.waitOutput("attached-ok")

	tm.send("\x10\x11") // ctrl-p ctrl-q
	if code := tm.waitExit(sshTimeout); code != 0 {
		t.Errorf("ssh exited %d after ctrl-p ctrl-q, want 0", code)
	}
	if !screenHas(tm.lines(), "detached from a") {
		t.Errorf("no word about detaching:\n%s", tm.dump())
	}
	if st := s.engineInspect(t, a.ID).State; st == nil || !st.Running {
		t.Errorf("a is not running after the detach: %+v", st)
	}

	// Attaching again finds the same shell (so the detach did not end it a moment later).
	tm = s.openTerminal(t, alice, "alice", 100, 30, "attach", "a")
	tm.send("echo again-$kept''\r")
	tm.waitOutput("again-yes")
	tm.send("\x10\x11")
	if code := tm.waitExit(sshTimeout); code != 0 {
		t.Errorf("ssh exited %d after the second detach, want 0", code)
	}

	r := s.run(t, alice, "alice", "attach", "a")
	wantError(t, "attach without -t", r, 2, "-t")
}
