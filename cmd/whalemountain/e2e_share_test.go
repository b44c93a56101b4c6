package main

// End-to-end tests of live help: alice shares her shell, the TA tanaka joins it, both over
// the real OpenSSH client in terminals of their own (tmux). What alice's shell prints reaches
// tanaka byte for byte; tanaka's keys reach the shell only while alice allows; a drop and the
// end of sharing take effect at once; bob (a student) joins nothing; the recording is a cast
// v2 file only alice and TAs read.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"whalemountain/backend/docker/dockertest"
)

// castFile is a parsed asciinema cast v2 file.
type castFile struct {
	Header struct {
		Version       int `json:"version"`
		Width, Height int
		Title         string `json:"title"`
	}
	Events [][3]string // kind, data (the time is checked while parsing)
}

// output is the text of every output event.
func (c castFile) output() string {
	var b strings.Builder
	for _, e := range c.Events {
		if e[1] == "o" {
			b.WriteString(e[2])
		}
	}
	return b.String()
}

func (c castFile) has(kind, data string) bool {
	for _, e := range c.Events {
		if e[1] == kind && strings.Contains(e[2], data) {
			return true
		}
	}
	return false
}

// parseCastV2 parses data as cast v2: a header object, then [time, kind, data] events in
// time order. Anything else fails the test.
func parseCastV2(t *testing.T, data []byte) castFile {
	t.Helper()
	var c castFile
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 4<<20)
	if !sc.Scan() || json.Unmarshal(sc.Bytes(), &c.Header) != nil || c.Header.Version != 2 || c.Header.Width <= 0 || c.Header.Height <= 0 {
		t.Fatalf("not a cast v2 header: %.200q", data)
	}
	last := 0.0
	for sc.Scan() {
		var ev [3]any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("cast event %q: %v", sc.Bytes(), err)
		}
		ts, ok1 := ev[0].(float64)
		kind, ok2 := ev[1].(string)
		d, ok3 := ev[2].(string)
		if !ok1 || !ok2 || !ok3 || ts < last || !strings.Contains("oirm", kind) {
			t.Fatalf("malformed cast event %q", sc.Bytes())
		}
		last = ts
		c.Events = append(c.Events, [3]string{"", kind, d})
	}
	return c
}

// segment is the bytes from the first begin marker to the end marker after it.
func segment(b []byte, begin, end string) []byte {
	i := bytes.Index(b, []byte(begin))
	if i < 0 {
		return nil
	}
	j := bytes.Index(b[i:], []byte(end))
	if j < 0 {
		return nil
	}
	return b[i : i+j+len(end)]
}

// shareServer starts a server whose TA is tanaka, with a key for each of users (alice is
// one) and alice's container box running.
func shareServer(t *testing.T, users ...string) (*ctrServer, map[string]*testKey) {
	t.Helper()
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	s := startContainerServer(t, cli, img, shellPrefix("sh"), ctrOptions{Top: "tas: [tanaka]\n"})
	keys := map[string]*testKey{}
	for _, u := range users {
		keys[u] = newKey(t, u)
		s.addKey(t, u, keys[u])
	}
	s.mustRun(t, keys["alice"], "alice", "run", "--name", "box", img)
	return s, keys
}

func TestE2EShare(t *testing.T) {
	s, keys := shareServer(t, "alice", "bob", "tanaka")
	alice, bob, tanaka := keys["alice"], keys["bob"], keys["tanaka"]
	tty := []string{"-tt"}
	sshArgv := func(k *testKey, user string, remote ...string) []string {
		return append([]string{sshBinary(t)}, s.sshArgs(k, user, tty, remote...)...)
	}

	x := newTmux(t)
	stu := x.open("alice", 100, 30, sshArgv(alice, "alice", "shell", "box"))
	stu.waitText(shellPrompt)

	// Nothing is shared yet: the TA is refused, as for a user who does not exist.
	r := s.sshFlags(t, tanaka, "tanaka", tty, "join", "alice")
	wantError(t, "join before share", r, 1, "alice shares no shell")
	r2 := s.sshFlags(t, tanaka, "tanaka", tty, "join", "nobody")
	if strings.ReplaceAll(r2.Stdout+r2.Stderr, "nobody", "alice") != r.Stdout+r.Stderr || r2.Code != r.Code {
		t.Errorf("join of a user who does not exist reads differently:\n%s\n%s", r, r2)
	}
	// Only alice shares alice's shell.
	wantError(t, "bob shares box", s.run(t, bob, "bob", "share", "box"), 1, "you have no open shell in box")
	wantError(t, "bob shares alice/box", s.run(t, bob, "bob", "share", "alice/box"), 1, "you have no open shell in alice/box")

	out := s.mustRun(t, alice, "alice", "share", "box")
	if !strings.Contains(out, "read-only") || !strings.Contains(out, "join alice/box") {
		t.Errorf("share box said:\n%s", out)
	}
	stu.waitTitle("box · shared with TAs, read-only · watching: nobody")

	// A student cannot join, shared or not.
	r = s.sshFlags(t, bob, "bob", tty, "join", "alice")
	wantError(t, "bob joins alice", r, 1, "join is for TAs")

	ta := x.open("tanaka", 80, 24, sshArgv(tanaka, "tanaka", "join", "alice"))
	// The intro line, then the student's screen drawn over it (clipped to 80x24).
	ta.waitText(shellPrompt)
	if !bytes.Contains(ta.bytes(), []byte("[watching alice's shell in box, 100x30, read-only; ctrl-p ctrl-q leaves]")) {
		t.Errorf("no intro line: %q", ta.bytes())
	}
	ta.waitTitle("alice/box 100x30 · read-only · watching: tanaka · your terminal 80x24 is smaller: clipped")
	stu.waitTitle("watching: tanaka")
	if out := s.mustRun(t, tanaka, "tanaka", "who"); !strings.Contains(out, "shell in box (shared read-only; watching: tanaka)") ||
		!strings.Contains(out, "watching alice") {
		t.Errorf("who does not show the share and the view:\n%s", out)
	}

	// The student's output reaches the TA byte for byte: colours, UTF-8, many lines.
	stu.typeLine(`printf 'BEGIN''-1\n'; seq 1 300; printf '\033[1;31mred\033[0m \303\274 \346\227\245\n'; printf 'END''-1\n'`)
	stu.waitText("END-1")
	ta.waitText("END-1")
	var mine, seen []byte
	if !poll(pollTimeout, func() bool {
		mine, seen = segment(stu.bytes(), "BEGIN-1", "END-1"), segment(ta.bytes(), "BEGIN-1", "END-1")
		return mine != nil && bytes.Equal(mine, seen)
	}) {
		t.Fatalf("the TA's bytes differ from the student's:\nstudent %d bytes %.300q\nTA      %d bytes %.300q", len(mine), mine, len(seen), seen)
	}
	if !bytes.Contains(mine, []byte("\x1b[1;31mred\x1b[0m ü 日")) || !bytes.Contains(mine, []byte("\r\n300\r\n")) {
		t.Errorf("the student's segment lacks what was printed: %.300q", mine)
	}

	// Read-only: the TA's keys go nowhere.
	ta.typeLine("echo ta''-typed-ro")
	stu.typeLine("echo stu''-mark-1")
	stu.waitText("stu-mark-1")
	ta.waitText("stu-mark-1")
	if strings.Contains(stu.screen(), "ta-typed-ro") || strings.Contains(stu.screen(), "tatyped") {
		t.Errorf("a read-only TA's keys reached the shell:\n%s", stu.screen())
	}

	// Write granted: they arrive. Taken back: at once they do not.
	s.mustRun(t, alice, "alice", "share", "box", "--write")
	ta.waitTitle("read-write")
	stu.waitTitle("read-write")
	ta.typeLine("echo ta''-wrote")
	stu.waitText("ta-wrote")
	s.mustRun(t, alice, "alice", "share", "box")
	ta.waitTitle("alice/box 100x30 · read-only")
	ta.typeLine("echo ta''-late")
	stu.typeLine("echo stu''-mark-2")
	stu.waitText("stu-mark-2")
	if strings.Contains(stu.screen(), "ta-late") {
		t.Errorf("the TA's keys reached the shell after write was taken back:\n%s", stu.screen())
	}

	// The student's new size reaches the viewer.
	stu.resize(120, 40)
	ta.waitTitle("alice/box 120x40")

	// Drop: the TA's view ends at once.
	out = s.mustRun(t, alice, "alice", "share", "box", "--drop", "tanaka")
	if !strings.Contains(out, "dropped tanaka") {
		t.Errorf("share --drop said %q", out)
	}
	if code := ta.waitExit(); code != 0 {
		t.Errorf("the dropped TA's ssh exited %d", code)
	}
	ta.waitText("alice dropped you")
	stu.waitTitle("watching: nobody")
	wantError(t, "drop again", s.run(t, alice, "alice", "share", "box", "--drop", "tanaka"), 1, "tanaka is not watching")

	// Stop sharing: a viewer is ended at once, and nobody joins after.
	ta2 := x.open("tanaka2", 120, 40, sshArgv(tanaka, "tanaka", "join", "alice/box"))
	ta2.waitTitle("alice/box 120x40 · read-only · watching: tanaka")
	s.mustRun(t, alice, "alice", "share", "box", "--stop")
	if code := ta2.waitExit(); code != 0 {
		t.Errorf("the TA's ssh exited %d at stop", code)
	}
	ta2.waitText("alice stopped sharing")
	stu.waitTitle("box · not shared")
	wantError(t, "join after stop", s.sshFlags(t, tanaka, "tanaka", tty, "join", "alice"), 1, "alice shares no shell")

	// From inside the shell, as OpenSSH's escapes at the start of a line: ~H lists the keys
	// in the title, ~S shares read-only. Sharing ends with the shell; a TA leaves with
	// ctrl-p ctrl-q.
	stu.typeLine("echo esc''-ready")
	stu.waitText("esc-ready")
	stu.keys("~", "H")
	stu.waitTitle("~S read-only · ~W read-write · ~X stop")
	stu.keys("~", "S")
	stu.waitTitle("box · shared with TAs, read-only · watching: nobody")
	leaver := x.open("leaver", 120, 40, sshArgv(tanaka, "tanaka", "join", "alice"))
	leaver.waitTitle("alice/box 120x40 · read-only · watching: tanaka")
	leaver.keys("C-p", "C-q")
	if code := leaver.waitExit(); code != 0 {
		t.Errorf("the TA's ssh exited %d after ctrl-p ctrl-q", code)
	}
	leaver.waitText("you left the shell of alice in box")

	// From the dashboard's Class tab: w on alice's row shows her shared shell in the same
	// terminal; ctrl-p ctrl-q comes back to the dashboard.
	// alice's row is marked while she shares (the mark goes when the shell ends, below).
	dash := s.openDashboard(t, tanaka, "tanaka", "ta", 120, 40)
	dash.send("6")
	dash.waitText("join shell", "●alice", "● 1 sharing a shell (w joins)")
	dash.send("/alice")
	dash.send("\r")
	dash.send("w")
	dash.waitOutput("stu-mark-2") // the recent output first
	stu.typeLine("echo from''-dash")
	dash.waitOutput("from-dash")
	dash.send("\x10\x11")
	dash.waitText("alice's shared shell ended", "[6 Class]")
	ta3 := x.open("tanaka3", 120, 40, sshArgv(tanaka, "tanaka", "join", "alice"))
	ta3.waitTitle("alice/box 120x40 · read-only · watching: tanaka")
	stu.typeLine("exit")
	if code := stu.waitExit(); code != 0 {
		t.Errorf("alice's ssh exited %d", code)
	}
	if code := ta3.waitExit(); code != 0 {
		t.Errorf("the TA's ssh exited %d when the shell ended", code)
	}
	ta3.waitText("ended")
	dash.waitScreen("alice's mark gone with her shell", func(lines []string) bool {
		return !strings.Contains(strings.Join(lines, "\n"), "●")
	})
	dash.send("q")
	if code := dash.waitExit(sshTimeout); code != 0 {
		t.Errorf("the TA's dashboard exited %d", code)
	}

	// Recordings: two (one per share that was joined), cast v2, alice's and the TAs' to read.
	var list []struct{ Owner, Name string }
	if err := json.Unmarshal([]byte(s.mustRun(t, alice, "alice", "recordings", "--json")), &list); err != nil || len(list) != 2 {
		t.Fatalf("alice's recordings: %v %+v", err, list)
	}
	var all strings.Builder
	var first castFile
	for _, rec := range list {
		data := s.mustRun(t, alice, "alice", "recordings", "cat", rec.Name)
		c := parseCastV2(t, []byte(data))
		all.WriteString(c.output())
		if c.has("m", "tanaka joined (read-only)") && c.has("o", "BEGIN-1") {
			first = c
		}
		p := filepath.Join(s.DataDir, "recordings", "alice", rec.Name)
		if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v, want 0600", p, err, fi)
		}
		if tr := s.mustRun(t, tanaka, "tanaka", "recordings", "cat", "alice/"+rec.Name); tr != data {
			t.Errorf("the TA reads a different %s", rec.Name)
		}
		// bob reads nothing of alice's, exactly as for a name nobody has.
		rb := s.run(t, bob, "bob", "recordings", "cat", "alice/"+rec.Name)
		rn := s.run(t, bob, "bob", "recordings", "cat", "alice/20990101T000000Z-box-000000.cast")
		wantError(t, "bob reads alice's recording", rb, 1, "no such recording")
		if strings.ReplaceAll(rn.Stderr, "20990101T000000Z-box-000000.cast", rec.Name) != rb.Stderr {
			t.Errorf("bob's answer for alice's recording differs from one for nothing:\n%s\n%s", rb, rn)
		}
		// sftp: alice gets it from /recordings; bob's /recordings has no such file.
		dst := filepath.Join(t.TempDir(), rec.Name)
		if r := s.sftpBatch(t, alice, "alice", "get /recordings/"+rec.Name+" "+dst); r.Code != 0 {
			t.Errorf("alice's sftp get: %s", r)
		} else if got, _ := os.ReadFile(dst); string(got) != data {
			t.Errorf("sftp gave alice a different %s", rec.Name)
		}
		if r := s.sftpBatch(t, bob, "bob", "get /recordings/"+rec.Name+" "+dst+".bob"); r.Code == 0 || !strings.Contains(r.Stderr, "not found") {
			t.Errorf("bob's sftp get of alice's recording: %s", r)
		}
	}
	if first.Events == nil {
		t.Fatalf("no recording has tanaka's join and the session's text")
	}
	for _, want := range []string{"END-1", "ta-wrote", "stu-mark-2"} {
		if !strings.Contains(first.output(), want) {
			t.Errorf("the recording lacks %q", want)
		}
	}
	if !first.has("r", "120x40") || !first.has("m", "tanaka left") {
		t.Errorf("the recording lacks the resize or the leave: %q", first.Events[len(first.Events)-3:])
	}
	if first.Header.Width != 100 || first.Header.Height != 30 {
		t.Errorf("the recording's size %dx%d, want 100x30", first.Header.Width, first.Header.Height)
	}
	if out := s.mustRun(t, bob, "bob", "recordings"); strings.Contains(out, ".cast") {
		t.Errorf("bob lists recordings: %q", out)
	}
	wantError(t, "bob lists alice's", s.run(t, bob, "bob", "recordings", "--user", "alice"), 1, "your own recordings only")
	if out := s.mustRun(t, tanaka, "tanaka", "recordings", "--all"); strings.Count(out, "alice/") != 2 {
		t.Errorf("the TA's list of everyone's: %q", out)
	}

	// Every share, join, grant, drop and stop is in the audit log.
	for _, w := range []struct{ user, action, result, note string }{
		{"alice", "share", "ok", "read-only"},
		{"alice", "share", "ok", "read-write"},
		{"tanaka", "join", "ok", "read-only"},
		{"tanaka", "join", "refused", ""},
		{"bob", "join", "refused", ""},
		{"alice", "drop", "ok", "tanaka"},
		{"alice", "unshare", "ok", ""},
	} {
		s.waitAudit(t, w.user+" "+w.action+" "+w.note, func(e auditEntry) bool {
			return e.User == w.user && e.Action == w.action && e.Result == w.result && strings.Contains(e.Target, "alice")
		})
	}
}

// TestE2EShareFramed: a TA whose terminal is larger than the student's sees the student's
// screen framed — whose shell and its size in the border, the student's text inside — and
// the student's new size reaches the frame; once the TA's terminal no longer has room for
// the frame the output comes as it is printed.
func TestE2EShareFramed(t *testing.T) {
	s, keys := shareServer(t, "alice", "tanaka")
	alice, tanaka := keys["alice"], keys["tanaka"]
	sshArgv := func(k *testKey, user string, remote ...string) []string {
		return append([]string{sshBinary(t)}, s.sshArgs(k, user, []string{"-tt"}, remote...)...)
	}
	x := newTmux(t)
	stu := x.open("alice", 80, 24, sshArgv(alice, "alice", "shell", "box"))
	stu.waitText(shellPrompt)
	// Printed before the TA joins: the TA is shown the screen, not only what comes next.
	stu.typeLine("echo before''-join; printf '\\033[1;31mred''-text\\033[0m\\n'")
	stu.waitText("red-text")
	s.mustRun(t, alice, "alice", "share", "box")

	ta := x.open("tanaka", 120, 40, sshArgv(tanaka, "tanaka", "join", "alice"))
	sc := ta.waitText("┌─ alice/box 80x24 · read-only · watching: tanaka")
	rowOf := func(sc, text string) string {
		for _, l := range strings.Split(sc, "\n") {
			if strings.Contains(l, text) {
				return l
			}
		}
		return ""
	}
	if l := rowOf(sc, "before-join"); !strings.HasPrefix(l, "│before-join") || !strings.HasSuffix(strings.TrimRight(l, " "), "│") ||
		len([]rune(strings.TrimRight(l, " "))) != 82 {
		t.Errorf("the student's text is not inside an 80-column frame: %q\n%s", l, sc)
	}
	if !strings.Contains(sc, "└"+strings.Repeat("─", 80)+"┘") {
		t.Errorf("no bottom edge 80 wide:\n%s", sc)
	}
	ta.waitTitle("alice/box 80x24 · read-only · watching: tanaka")
	t.Logf("the TA sees:\n%s", sc)

	// Live: what the student types shows in the frame; the new size reaches the frame.
	stu.typeLine("echo live''-in-frame")
	ta.waitScreen("live output inside the frame", func(sc string) bool {
		return strings.HasPrefix(rowOf(sc, "live-in-frame"), "│live-in-frame")
	})
	stu.resize(100, 30)
	sc = ta.waitText("┌─ alice/box 100x30")
	if !strings.Contains(sc, "└"+strings.Repeat("─", 100)+"┘") {
		t.Errorf("after the resize, no bottom edge 100 wide:\n%s", sc)
	}
	stu.typeLine("echo after''-resize")
	ta.waitScreen("output after the resize inside the frame", func(sc string) bool {
		l := strings.TrimRight(rowOf(sc, "after-resize"), " ")
		return strings.HasPrefix(l, "│after-resize") && len([]rune(l)) == 102
	})

	// The student's terminal grows to the TA's: no room for a frame, the output comes as it is.
	stu.resize(120, 40)
	ta.waitTitle("alice/box 120x40")
	stu.typeLine("echo unframed''-now")
	sc = ta.waitText("unframed-now")
	if strings.Contains(sc, "┌─") || strings.Contains(rowOf(sc, "unframed-now"), "│") {
		t.Errorf("still framed at the same size:\n%s", sc)
	}
	ta.keys("C-p", "C-q")
	if code := ta.waitExit(); code != 0 {
		t.Errorf("the TA's ssh exited %d", code)
	}

	// A full-screen program: a TA who joins while it runs is shown its screen as it is.
	stu.typeLine("vi /tmp/notes")
	stu.waitText("~")
	stu.keys("i")
	stu.typeLine("hello from vi")
	stu.keys("Escape")
	stu.waitText("hello from vi")
	late := x.open("tanaka-late", 120, 40, sshArgv(tanaka, "tanaka", "join", "alice"))
	sc = late.waitText("hello from vi")
	if strings.Count(sc, "\n~") < 10 || strings.Contains(sc, "unframed-now") {
		t.Errorf("the late TA does not see vi's screen as the student does:\n%s\nthe student's:\n%s", sc, stu.screen())
	}
	late.keys("C-p", "C-q")
	if code := late.waitExit(); code != 0 {
		t.Errorf("the late TA's ssh exited %d", code)
	}
	stu.keys(":q!", "Enter")
	stu.waitText(shellPrompt)
	stu.typeLine("exit")
	if code := stu.waitExit(); code != 0 {
		t.Errorf("alice's ssh exited %d", code)
	}
}
