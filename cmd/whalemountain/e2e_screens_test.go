package main

// End-to-end tests of what the dashboard looks like through the real door: every tab and
// overlay at 80x24 and 120x40 in a VT emulator behind real OpenSSH, a TA's stop and removal
// of a student's container with the reason the student reads (at once and at the next
// login), "stopped" against a crash's exit code, the details' ssh -L line, names typed in
// other scripts, and the TA's table after a shell.

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"whalemountain/backend/docker/dockertest"
)

// screenFits says what is wrong with a screen of cols x rows, "" when nothing: the header
// on the first row, the tab bar on the second, the footer with its last word "quit" on the
// last, no row wider than the window.
func screenFits(lines []string, cols, rows int) string {
	switch {
	case len(lines) != rows:
		return fmt.Sprintf("%d rows, want %d", len(lines), rows)
	case !strings.Contains(lines[0], "WhaleMountain"):
		return "the first row is not the header"
	case !strings.HasPrefix(lines[1], "─[1 Containers]") || cellWidth(lines[1]) != cols:
		return "the second row is not the tab bar across the window"
	}
	if f := strings.Fields(lines[rows-1]); len(f) == 0 || f[len(f)-1] != "quit" {
		return "the last row is not the footer ending in quit"
	}
	for i, l := range lines {
		if cellWidth(l) > cols {
			return fmt.Sprintf("row %d is %d cells wide", i, cellWidth(l))
		}
	}
	return ""
}

// waitFits waits until the screen fits and shows every substring.
func (tm *terminal) waitFits(cols, rows int, what string, substrs ...string) []string {
	tm.t.Helper()
	return tm.waitScreen(what+" fitting "+fmt.Sprint(cols, "x", rows), func(ls []string) bool {
		return screenFits(ls, cols, rows) == "" && screenHas(ls, substrs...)
	})
}

// footer is the bottom row's words.
func footer(lines []string) string { return strings.Join(strings.Fields(lines[len(lines)-1]), " ") }

func TestE2EScreens(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.ImageWith(ctx, t, cli, "screens", "EXPOSE 8888")
	s := startContainerServer(t, cli, img, containerPrefix("v"), ctrOptions{Top: "tas: [tina]\nserver_name: gpu1-琉球\n"})
	alice, tina := newKey(t, "alice"), newKey(t, "tina")
	s.addKey(t, "alice", alice)
	s.addKey(t, "tina", tina)
	s.mustRun(t, alice, "alice", "run", "--name", "jupyter", img)
	s.mustRun(t, alice, "alice", "run", "--name", "crash", img, "sh", "-c", "sleep 1; exit 3")
	s.mustRun(t, alice, "alice", "run", "--name", "thesis", img)
	s.waitState(t, alice, "alice", "crash", "exited")

	t.Run("EveryScreenFits", func(t *testing.T) { testEveryScreenFits(t, s, alice) })
	t.Run("StoppedByTA", func(t *testing.T) { testStoppedByTA(t, s, alice, tina) })
}

// testEveryScreenFits visits every tab and overlay at both sizes; the footer lists the same
// keys at both.
func testEveryScreenFits(t *testing.T, s *ctrServer, alice *testKey) {
	type step struct {
		name  string
		keys  []string // typed one after the other, the screen settling in between
		shows []string
		after string // typed to leave it
	}
	steps := []step{
		{"containers", nil, []string{"jupyter", "crash", "thesis"}, ""},
		{"details", []string{"j", "enter"}, []string{"ports: ssh -L 8888:jupyter:8888 -p ", "alice@gpu1-琉球", "address "}, "\x1b"},
		{"help", []string{"?"}, []string{"Everywhere", "j/↓", "enter", "any key closes this help"}, "x"},
		{"question", []string{"d"}, []string{"jupyter is running: stop and remove it? y/N"}, "n"},
		{"form", []string{"n"}, []string{"New container", "quota:"}, "\x1b"},
		{"logs", []string{"l"}, []string{"logs: jupyter"}, "\x1b"},
		{"filter", []string{"/", "ゆき"}, []string{"/ゆき", `No container matches "ゆき"`}, "\x1b"},
		{"images", []string{"2"}, []string{"IMAGE", "USED BY YOU", "wm-test-screens"}, ""},
		{"images help", []string{"?"}, []string{"Images", "j/↓", "my registry (needs GitLab"}, "x"},
		{"no registry", []string{"m"}, []string{"no registry view: this server has no GitLab"}, ""},
		{"SIF files", []string{"v"}, []string{"My SIF files"}, "v"},
		{"pull prompt", []string{"p"}, []string{"pull: "}, "\x1b"},
		{"pull failed", []string{"p", "127.0.0.1:1/nothing/here:1", "\r"}, []string{"✗ pull of 127.0.0.1:1/nothing/here:1 failed"}, "j"},
		{"gpus", []string{"3"}, []string{"GPU"}, ""},
		{"pods", []string{"4"}, []string{"[4 Pods]"}, ""},
		{"runner", []string{"5"}, []string{"[5 Runner]"}, "1"},
	}
	footers := map[string]string{}
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		cols, rows := size[0], size[1]
		tm := s.openDashboard(t, alice, "alice", "student", cols, rows)
		tm.waitFits(cols, rows, "the dashboard", "jupyter", "gpu1-琉球")
		for _, st := range steps {
			for _, k := range st.keys {
				if k == "enter" {
					k = "\r"
				}
				tm.send(k)
				time.Sleep(100 * time.Millisecond)
			}
			lines := tm.waitFits(cols, rows, st.name, st.shows...)
			if f, ok := footers[st.name]; ok && f != footer(lines) {
				t.Errorf("%s: the footer at %dx%d differs from 80x24's:\n%s\n%s", st.name, cols, rows, f, footer(lines))
			}
			footers[st.name] = footer(lines)
			if st.after != "" {
				tm.send(st.after)
				time.Sleep(200 * time.Millisecond)
			}
		}
		tm.send("q")
		if code := tm.waitExit(sshTimeout); code != 0 {
			t.Errorf("ssh exited %d after q", code)
		}
	}
}

// selectedHas is true of a screen whose selected row (the one marked ▸) shows text.
func selectedHas(text string) func([]string) bool {
	return func(ls []string) bool {
		for _, l := range ls {
			if f := strings.Fields(l); len(f) > 1 && f[0] == "▸" {
				return strings.Contains(l, text)
			}
		}
		return false
	}
}

// testStoppedByTA: the TA says why before stopping a student's container; the student reads
// it at once; "stopped" against the crash's exit code; a removal while the student is away
// is read at the next login; the TA's table after a shell is drawn whole.
func testStoppedByTA(t *testing.T, s *ctrServer, alice, tina *testKey) {
	at := s.openDashboard(t, alice, "alice", "student", 120, 40)
	at.waitText("jupyter", "crash")
	tm := s.openDashboard(t, tina, "tina", "ta", 80, 24)
	tm.waitText("alice", "jupyter")
	// crash, jupyter, thesis: jupyter is the second.
	tm.send("j")
	tm.waitScreen("jupyter selected", selectedHas("jupyter"))
	tm.send("S")
	tm.waitFits(80, 24, "the question why", "stop alice/jupyter: why? alice reads this")
	tm.send("the exam needs this GPU at ten")
	tm.waitText("the exam needs this GPU at ten")
	tm.send("\r")
	tm.waitText("alice/jupyter: stopped")

	at.waitFits(120, 40, "the notice", "tina (TA) stopped your container jupyter: the exam needs this GPU at ten")
	// The notice and the container's new state come by different ways: wait for both.
	lines := at.waitScreen("jupyter stopped", func(ls []string) bool {
		row := tableRow(ls, "jupyter")
		return row != nil && row[2] != "running"
	})
	if row := tableRow(lines, "jupyter"); row == nil || row[2] != "stopped" {
		t.Errorf("jupyter does not read stopped:\n%s", at.dump())
	}
	if row := tableRow(lines, "crash"); row == nil || row[2] != "exited(3)" {
		t.Errorf("the crash does not keep its exit code:\n%s", at.dump())
	}
	at.send("j")
	at.waitScreen("jupyter selected", selectedHas("jupyter"))
	at.send("\r")
	at.waitFits(120, 40, "who stopped it", "state stopped", "stopped by tina (TA): the exam needs this GPU at ten")
	at.send("q")
	at.waitExit(sshTimeout)
	s.waitAudit(t, "the stop", func(e auditEntry) bool {
		return e.User == "tina" && e.Action == "stop" && e.Target == "alice/jupyter" && e.Result == "ok"
	})
	if b, err := os.ReadFile(s.auditPath()); err != nil || !strings.Contains(string(b), `"note":"the exam needs this GPU at ten"`) {
		t.Errorf("the audit line does not carry the reason (%v):\n%s", err, b)
	}

	// Away: the TA removes crash from the command line; alice reads it when she logs in.
	if out := s.mustRun(t, tina, "tina", "rm", "--reason", "crashed for a week", "alice/crash"); out != "alice/crash\n" {
		t.Errorf("rm --reason: %q", out)
	}
	at = s.openDashboard(t, alice, "alice", "student", 80, 24)
	at.waitFits(80, 24, "the notice at login", "tina (TA) removed your container crash: crashed for a")
	at.send("q")
	at.waitExit(sshTimeout)
	again := s.openDashboard(t, alice, "alice", "student", 80, 24)
	again.waitText("thesis")
	time.Sleep(500 * time.Millisecond)
	if screenHas(again.lines(), "tina (TA)") {
		t.Errorf("a notice shown again at the next login:\n%s", again.dump())
	}
	again.send("q")
	again.waitExit(sshTimeout)

	// The TA's table after a shell: every row's cells where the header's are.
	tm.send("G")
	tm.waitScreen("thesis selected", selectedHas("thesis"))
	tm.send("s")
	tm.waitText(shellPrompt)
	tm.send("exit\r")
	lines = tm.waitFits(80, 24, "the table after the shell", "shell in alice/thesis ended (exit 0)")
	head := findLine(lines, "OWNER")
	if head < 0 {
		t.Fatalf("no table header:\n%s", tm.dump())
	}
	// Every cell here is one column wide: rune offsets are screen columns.
	stateAt := slices.Index([]rune(lines[head]), 'S') // OWNER NAME IMAGE STATE: the first S
	for _, name := range []string{"jupyter", "thesis"} {
		i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, " "+name+" ") })
		if i < 0 {
			t.Fatalf("no row %s:\n%s", name, tm.dump())
		}
		cell := string([]rune(lines[i])[stateAt:])
		if !strings.HasPrefix(cell, "stopped") && !strings.HasPrefix(cell, "running") {
			t.Errorf("row %s not aligned with the header after the shell (%q):\n%s", name, cell, tm.dump())
		}
	}
	tm.send("q")
	tm.waitExit(sshTimeout)
}
