package main

// End-to-end tests of what a new user meets first, and of what the administrator reads at
// start-up about roles.

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"whalemountain/backend/docker/dockertest"
)

// TestE2EStartupLogsRoles: one start-up line says who the TAs are and where roles come
// from (the config's tas, the GitLab group and its minimum access level).
func TestE2EStartupLogsRoles(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, config string
		want         []string
	}{
		{"tas and a GitLab group",
			"tas: [carol, dave]\ngitlab:\n  url: http://127.0.0.1:1\n  ta_group: dept/tas\n  ta_min_access_level: 40\n",
			[]string{"tas=carol,dave", "gitlab_group=dept/tas", `min_access_level="40 (maintainer)"`, "gitlab=http://127.0.0.1:1"}},
		{"tas only", "tas: [carol]\n", []string{"tas=carol", "gitlab_group=none"}},
		{"nobody", "", []string{"tas=none", "gitlab_group=none"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := startServer(t, serverOptions{Config: c.config})
			var lines []string
			for _, line := range strings.Split(s.Log(), "\n") {
				if strings.Contains(line, "msg=\"roles:") {
					lines = append(lines, line)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("want one start-up line about roles, got %d:\n%s", len(lines), s.Log())
			}
			for _, w := range c.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("the roles line lacks %s:\n%s", w, lines[0])
				}
			}
		})
	}
}

// TestE2ERefusedReadsAudited: a student's reads of another user's container, and of one
// that does not exist, are told "no such container" alike and each is in the audit log as
// refused, with the student's role and key: inspect, logs, exec, sftp, scp and ssh -L.
func TestE2ERefusedReadsAudited(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	c := startContainerServer(t, cli, img, "e2eref", ctrOptions{})
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	c.addKey(t, "alice", alice)
	c.addKey(t, "bob", bob)
	c.mustRun(t, bob, "bob", "run", "--name", "bobbox", img)

	for _, verb := range [][]string{{"inspect"}, {"logs"}, {"exec", "", "--", "true"}} {
		var said []string
		for _, name := range []string{"bobbox", "ghost"} {
			args := append([]string{verb[0], name}, verb[min(2, len(verb)):]...)
			r := c.run(t, alice, "alice", args...)
			if r.Code == 0 || r.Stdout != "" {
				t.Errorf("alice %q: %s", args, r)
			}
			said = append(said, strings.ReplaceAll(r.Stderr, name, "X"))
		}
		if said[0] != said[1] || !strings.Contains(said[0], "no such container: X") {
			t.Errorf("alice %s: another's container told %q, a missing one %q", verb[0], said[0], said[1])
		}
	}
	dir := t.TempDir()
	if r := c.sftpBatch(t, alice, "alice", "get /containers/bobbox/etc/hostname "+filepath.Join(dir, "h")); r.Code == 0 {
		t.Errorf("sftp get of bob's container: %s", r)
	}
	if r := c.fileClient(t, "scp", alice, "alice@127.0.0.1:/containers/ghost/etc/hostname", filepath.Join(dir, "g")); r.Code == 0 {
		t.Errorf("scp of a missing container: %s", r)
	}
	// ssh -L to bob's container: the channel is refused.
	port := freePort(t)
	cmd := exec.Command(sshBinary(t), c.sshArgs(alice, "alice", []string{"-L", "127.0.0.1:" + port + ":bobbox:8080", "-N"})...)
	cmd.Env = environWithout("SSH_AUTH_SOCK")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	poll(pollTimeout, func() bool {
		conn, err := net.DialTimeout("tcp", "127.0.0.1:"+port, time.Second)
		if err != nil {
			return false
		}
		_ = conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		_, _ = conn.Read(make([]byte, 1))
		conn.Close()
		return true
	})
	// A forward to an address is refused with the command line that would work, as alice
	// types it.
	gc, err := c.dial(&ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(alice.Signer)}})
	if err != nil {
		t.Fatal(err)
	}
	defer gc.Close()
	_, err = gc.Dial("tcp", "127.0.0.1:80")
	if hint := "ssh -L 8888:box:8888 -p " + c.Port + " alice@"; err == nil || !strings.Contains(err.Error(), hint) {
		t.Errorf("a forward to an address: %v; want it refused with %q", err, hint)
	}

	for _, w := range []struct{ action, target string }{
		{"inspect", "bobbox"}, {"inspect", "ghost"}, {"logs", "bobbox"}, {"logs", "ghost"},
		{"exec", "bobbox"}, {"exec", "ghost"},
		{"read", "alice/bobbox:/etc/hostname"}, {"read", "alice/ghost:/etc/hostname"},
		{"forward", "bobbox:8080"},
	} {
		e := c.waitAudit(t, "a refused "+w.action+" of "+w.target, func(e auditEntry) bool {
			// sftp and scp stat a file before they read it: the stat is the refused read.
			action := e.Action == w.action || w.action == "read" && (e.Action == "stat" || e.Action == "get")
			return e.User == "alice" && action && e.Target == w.target && e.Result == "refused"
		})
		if e.Role != "student" || e.Key != alice.Fingerprint || e.Source == "" {
			t.Errorf("the refused %s of %s is recorded with role %q, key %q, source %q; want student, %s and an address",
				w.action, w.target, e.Role, e.Key, e.Source, alice.Fingerprint)
		}
	}
}

// TestE2ENewUserHome: a student who has never made a container uses their home over sftp
// and scp from the first login — list, put, get, mkdir, rename, rm, rmdir — and finds what
// they left there as /home/<user> in the first container they run. Both kinds of home: the
// per-user volume (the default) and a directory on the host.
func TestE2ENewUserHome(t *testing.T) {
	t.Parallel()
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	homes := t.TempDir()
	for _, kind := range []struct{ name, tag, docker string }{
		{"volume", "e2ehv", ""},
		{"host path", "e2ehp", "  home_host_path: " + filepath.Join(homes, "{user}") + "\n"},
	} {
		t.Run(kind.name, func(t *testing.T) {
			t.Parallel()
			c := startContainerServer(t, cli, img, kind.tag, ctrOptions{Docker: kind.docker})
			alice := newKey(t, "alice")
			c.addKey(t, "alice", alice)
			dir := t.TempDir()
			local := filepath.Join(dir, "notes.txt")
			data := []byte("first words in a new home\n")
			if err := os.WriteFile(local, data, 0o644); err != nil {
				t.Fatal(err)
			}

			r := c.sftpBatch(t, alice, "alice",
				"ls /home",
				"put "+local+" /home/notes.txt",
				"mkdir /home/proj",
				"put "+local+" /home/proj/draft.txt",
				"rename /home/proj/draft.txt /home/proj/final.txt",
				"get /home/proj/final.txt "+filepath.Join(dir, "back.txt"),
				"put "+local+" /home/scratch.txt",
				"rm /home/scratch.txt",
				"mkdir /home/empty",
				"rmdir /home/empty",
				"ls -1 /home",
				"ls -1 /home/proj",
			)
			if r.Code != 0 {
				t.Fatalf("sftp in the home of a user without a container: %s", r)
			}
			if b, err := os.ReadFile(filepath.Join(dir, "back.txt")); err != nil || !bytes.Equal(b, data) {
				t.Errorf("the renamed file came back as %q, %v", b, err)
			}
			// What the two ls at the end print (the empty home at the start prints nothing).
			var listed []string
			for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
				if !strings.HasPrefix(line, "sftp>") {
					listed = append(listed, strings.TrimSpace(line))
				}
			}
			if want := []string{"/home/notes.txt", "/home/proj", "/home/proj/final.txt"}; !slices.Equal(listed, want) {
				t.Errorf("ls shows %q, want %q\n%s", listed, want, r.Stdout)
			}
			// scp to a relative path lands in the home, and comes back.
			if r := c.fileClient(t, "scp", alice, local, "alice@127.0.0.1:rel.txt"); r.Code != 0 {
				t.Fatalf("scp into the home: %s", r)
			}
			if r := c.fileClient(t, "scp", alice, "alice@127.0.0.1:rel.txt", filepath.Join(dir, "rel.txt")); r.Code != 0 {
				t.Fatalf("scp from the home: %s", r)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "rel.txt")); !bytes.Equal(b, data) {
				t.Errorf("scp brought back %q", b)
			}

			// The first container sees it all as /home/alice.
			c.mustRun(t, alice, "alice", "run", "--name", "first", img)
			out := c.mustRun(t, alice, "alice", "exec", "first", "--", "sh", "-c", "cd /home/alice && ls -1 . proj && cat notes.txt")
			for _, w := range []string{"notes.txt", "rel.txt", "final.txt", string(data)} {
				if !strings.Contains(out, w) {
					t.Errorf("the container's /home/alice lacks %q:\n%s", w, out)
				}
			}
			if strings.Contains(out, "scratch.txt") {
				t.Errorf("a removed file is in the container's home:\n%s", out)
			}
			// And what the container writes there is in the home over sftp.
			c.mustRun(t, alice, "alice", "exec", "first", "--", "sh", "-c", "echo from-the-container > /home/alice/made.txt")
			if r := c.fileClient(t, "scp", alice, "alice@127.0.0.1:/home/made.txt", filepath.Join(dir, "made.txt")); r.Code != 0 {
				t.Fatalf("scp of a file the container made: %s", r)
			}
			if b, _ := os.ReadFile(filepath.Join(dir, "made.txt")); string(b) != "from-the-container\n" {
				t.Errorf("the container's file came back as %q", b)
			}
		})
	}
}
