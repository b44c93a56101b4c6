package main

// End-to-end tests of what a new user meets first, and of what the administrator reads at
// start-up about roles.

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
