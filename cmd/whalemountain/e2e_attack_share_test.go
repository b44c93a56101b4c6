package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// --- rows: live help (share, join) and the recordings of shared shells ---

// ptySession is a command running with a terminal on a Go SSH connection, its input open.
type ptySession struct {
	sess *ssh.Session
	in   interface{ Write([]byte) (int, error) }
	out  *lockedBuffer
	done chan error
}

func startPTY(t *testing.T, c *ssh.Client, cmdline string) *ptySession {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		t.Fatalf("session for %q: %v", cmdline, err)
	}
	if err := sess.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		t.Fatalf("pty for %q: %v", cmdline, err)
	}
	in, err := sess.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &ptySession{sess: sess, in: in, out: &lockedBuffer{}, done: make(chan error, 1)}
	sess.Stdout, sess.Stderr = p.out, p.out
	if err := sess.Start(cmdline); err != nil {
		t.Fatalf("start %q: %v", cmdline, err)
	}
	go func() { p.done <- sess.Wait() }()
	return p
}

// joinAndLeave joins target as the TA on c, waits for the view, leaves with ctrl-p ctrl-q and
// says what was seen and whether it went so.
func joinAndLeave(t *testing.T, c *ssh.Client, target, want string) (string, bool) {
	p := startPTY(t, c, "join "+target)
	defer p.sess.Close()
	seen := poll(pollTimeout, func() bool { return strings.Contains(p.out.String(), want) })
	_, _ = p.in.Write([]byte{0x10, 0x11})
	select {
	case err := <-p.done:
		got := clip(p.out.String(), 400)
		return got, seen && err == nil && strings.Contains(p.out.String(), "you left")
	case <-time.After(sshTimeout):
		return "the view did not end at ctrl-p ctrl-q: " + clip(p.out.String(), 400), false
	}
}

// shareRows: alice shares her open shell read-only and the TA has joined it once (so it is
// recorded); mallory, a student, tries to join it, steer its sharing and read or plant
// recordings.
func (f *attackFixture) shareRows(tb *attackTable) {
	t := f.t
	shell := startPTY(t, f.ac, "shell box")
	t.Cleanup(func() { shell.sess.Close() })
	if !poll(pollTimeout, func() bool { return strings.Contains(shell.out.String(), shellPrompt) }) {
		t.Fatalf("alice's shell in box never prompted: %q", shell.out.String())
	}
	if r := f.goRun(f.ac, false, "share", "box"); r.Code != 0 {
		t.Fatalf("alice's share box: %s", describe(r))
	}
	if got, ok := joinAndLeave(t, f.tc, "alice", "watching alice's shell in box"); !ok {
		t.Fatalf("the TA could not join alice's shared shell: %s", got)
	}
	var recs []struct{ Name string }
	if r := f.goRun(f.ac, false, "recordings", "--json"); r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &recs) != nil || len(recs) != 1 {
		t.Fatalf("alice's recordings after the TA's join: %s", describe(r))
	}
	rec := recs[0].Name
	ctlRec := "20990101T000000Z-box-" + strings.ToLower(randomLetters(6)) + ".cast"
	user := [][2]string{{f.ctlUser, "alice"}}

	equiv := func(door string, tty bool, args, ctlArgs []string, pairs [][2]string) {
		tb.equivRow(door, "mallory", shownArgs(args), shownArgs(ctlArgs), func(t *testing.T, control bool) sshResult {
			if control {
				return f.goRun(f.mc, tty, ctlArgs...)
			}
			return f.goRun(f.mc, tty, args...)
		}, pairs, nil)
	}
	equiv("cli join", true, []string{"join", "alice"}, []string{"join", f.ctlUser}, user)
	equiv("cli join", true, []string{"join", "alice/box"}, []string{"join", f.ctlUser + "/box"}, user)
	equiv("cli join", false, []string{"join", "alice"}, []string{"join", f.ctlUser}, user)
	equiv("cli share", false, []string{"share", "alice/box"}, []string{"share", f.ctlUser + "/box"}, user)
	equiv("cli share", false, []string{"share", "alice/box", "--write"}, []string{"share", f.ctlUser + "/box", "--write"}, user)
	equiv("cli share", false, []string{"share", "alice/box", "--stop"}, []string{"share", f.ctlUser + "/box", "--stop"}, user)
	equiv("cli share", false, []string{"share", "box", "--drop", "tanaka"}, []string{"share", f.ctl, "--drop", "tanaka"}, [][2]string{{f.ctl, "box"}})
	equiv("cli recordings", false, []string{"recordings", "cat", "alice/" + rec}, []string{"recordings", "cat", f.ctlUser + "/" + ctlRec},
		[][2]string{{f.ctlUser + "/" + ctlRec, "alice/" + rec}})
	equiv("cli recordings", false, []string{"recordings", "cat", rec}, []string{"recordings", "cat", ctlRec}, [][2]string{{ctlRec, rec}})
	for _, ref := range []string{"../alice/" + rec, "alice/../alice/" + rec, "alice//" + rec, "mallory/../alice/" + rec, "/alice/" + rec} {
		args := []string{"recordings", "cat", ref}
		tb.add("cli recordings", "mallory", shownArgs(args), "no such recording, nothing of alice's", func(t *testing.T) (string, bool) {
			r := f.goRun(f.mc, false, args...)
			return describe(r), r.Code == 1 && r.Stdout == "" && strings.Contains(r.Stderr, "no such recording")
		})
	}
	for _, args := range [][]string{{"recordings", "--user", "alice"}, {"recordings", "--all"}, {"recordings", "--user", "alice", "--json"}} {
		tb.add("cli recordings", "mallory", shownArgs(args), "refused, nothing listed", func(t *testing.T) (string, bool) {
			r := f.goRun(f.mc, false, args...)
			return describe(r), r.Code != 0 && r.Stdout == "" && !strings.Contains(r.Stderr, ".cast")
		})
	}
	tb.add("cli share", "mallory", `"share" and "recordings --json"`, "mallory's own: no shell, no recording", func(t *testing.T) (string, bool) {
		r1 := f.goRun(f.mc, false, "share", "--json")
		r2 := f.goRun(f.mc, false, "recordings", "--json")
		return describe(r1) + "; " + describe(r2), r1.Code == 0 && strings.TrimSpace(r1.Stdout) == "[]" &&
			r2.Code == 0 && strings.TrimSpace(r2.Stdout) == "[]"
	})
	tb.add("sftp", "mallory", "get /recordings/"+rec+" (alice's)", "no such file, nothing written", func(t *testing.T) (string, bool) {
		dst := filepath.Join(t.TempDir(), "got.cast")
		r := f.s.sftpBatch(t, f.mallory, "mallory", "get /recordings/"+rec+" "+dst)
		_, err := os.Stat(dst)
		return describe(r), r.Code != 0 && strings.Contains(r.Stderr, "not found") && err != nil
	})
	tb.add("sftp", "mallory", "ls /recordings, get /recordings/../recordings/"+rec, "empty, no such file", func(t *testing.T) (string, bool) {
		dst := filepath.Join(t.TempDir(), "got.cast")
		r := f.s.sftpBatch(t, f.mallory, "mallory", "ls -1 /recordings", "get /recordings/../recordings/"+rec+" "+dst)
		_, err := os.Stat(dst)
		listed := false
		for _, l := range strings.Split(r.Stdout, "\n") {
			listed = listed || !strings.HasPrefix(l, "sftp>") && strings.Contains(l, ".cast")
		}
		return describe(r), r.Code != 0 && !listed && strings.Contains(r.Stderr, "not found") && err != nil
	})
	tb.add("sftp", "mallory", "put x.cast /recordings/x.cast", "permission denied (read-only), nothing made", func(t *testing.T) (string, bool) {
		src := filepath.Join(t.TempDir(), "x.cast")
		_ = os.WriteFile(src, []byte(`{"version":2,"width":80,"height":24}`+"\n"), 0o600)
		r := f.s.sftpBatch(t, f.mallory, "mallory", "put "+src+" /recordings/x.cast")
		_, err := os.Stat(filepath.Join(f.s.DataDir, "recordings", "mallory"))
		return describe(r), r.Code != 0 && strings.Contains(r.Stderr, "Permission denied") && err != nil
	})

	// A TA joins only what is shared; alice's share is as she left it.
	tb.add("cli join", "tanaka", "join "+f.ctlUser+" (shares nothing)", "refused: shares no shell", func(t *testing.T) (string, bool) {
		r := f.goRun(f.tc, true, "join", f.ctlUser)
		return describe(r), r.Code == 1 && strings.Contains(r.Stdout+r.Stderr, f.ctlUser+" shares no shell")
	})
	tb.add("cli join", "tanaka", "join alice (shared), then ctrl-p ctrl-q", "sees alice's shell, leaves", func(t *testing.T) (string, bool) {
		return joinAndLeave(t, f.tc, "alice", "watching alice's shell in box, 80x24, read-only")
	})
	tb.add("cli share", "alice", "share --json after the attempts", "box shared read-only, as she left it", func(t *testing.T) (string, bool) {
		r := f.goRun(f.ac, false, "share", "--json")
		var list []struct {
			Name          string
			Shared, Write bool
		}
		ok := r.Code == 0 && json.Unmarshal([]byte(r.Stdout), &list) == nil && len(list) == 1 &&
			list[0].Name == "box" && list[0].Shared && !list[0].Write
		return describe(r), ok
	})
	tb.add("cli", "alice", "her shell after the attempts", "still hers, no one else's keys in it", func(t *testing.T) (string, bool) {
		mark := "still" + strings.ToLower(randomLetters(6))
		_, _ = shell.in.Write([]byte("echo " + mark[:3] + "''" + mark[3:] + "\r"))
		ok := poll(pollTimeout, func() bool { return strings.Contains(shell.out.String(), mark+"\r\n") })
		out := shell.out.String()
		return clip(out[max(0, len(out)-300):], 300), ok && !bytes.Contains([]byte(out), []byte("mallory"))
	})
}
