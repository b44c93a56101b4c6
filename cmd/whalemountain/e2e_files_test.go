package main

// End-to-end test of file transfer: the real OpenSSH sftp (in batch mode) and scp (which
// speaks SFTP by default since OpenSSH 9.0) against the server binary and the real Docker
// Engine.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"whalemountain/backend/docker/dockertest"
)

// fileClientArgs are the options sftp and scp need to reach the server as user with key
// (both take the port as -P).
func (s *server) fileClientArgs(key *testKey) []string {
	return []string{
		"-F", "/dev/null",
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=10",
		"-P", s.Port,
		"-i", key.Path,
	}
}

// fileClient runs sftp or scp with args after the connection options, bounded by sshTimeout.
func (s *server) fileClient(t *testing.T, tool string, key *testKey, args ...string) sshResult {
	t.Helper()
	bin, err := exec.LookPath(tool)
	if err != nil {
		t.Fatalf("OpenSSH's %s is needed for this test (apt-get install openssh-client): %v", tool, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append(s.fileClientArgs(key), args...)...)
	cmd.Env = environWithout("SSH_AUTH_SOCK")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("%s %q did not finish within %v\nstderr: %s", tool, args, sshTimeout, stderr.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run %s: %v", tool, err)
	}
	return sshResult{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}

// sftpBatch runs `sftp -b -` with the batch commands given, as user.
func (s *server) sftpBatch(t *testing.T, key *testKey, user string, commands ...string) sshResult {
	t.Helper()
	batch := filepath.Join(t.TempDir(), "batch")
	if err := os.WriteFile(batch, []byte(strings.Join(commands, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return s.fileClient(t, "sftp", key, "-b", batch, user+"@127.0.0.1")
}

func sha256File(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return sha256.Sum256(b)
}

// TestE2EFiles: a 5 MB file goes into a container and into the home with sftp and scp and
// comes back the same; another user's container is not there. Not parallel, for the reason
// TestE2EContainers gives.
func TestE2EFiles(t *testing.T) {
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)

	prefix := "fx" + dockertest.RunID()[8:]
	labels := map[string]string{dockertest.LabelRun: dockertest.RunID(), dockertest.LabelService: prefix}
	// Registered before the server starts, so it runs after the server has stopped.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		if err := dockertest.Remove(ctx, cli, labels); err != nil {
			t.Errorf("remove the objects of %s: %v", prefix, err)
		}
	})
	cfg := fmt.Sprintf("docker:\n  name_prefix: %s\n  stop_timeout: 2s\n  labels:\n    %s: %q\n    %s: %q\n",
		prefix, dockertest.LabelRun, dockertest.RunID(), dockertest.LabelService, prefix)
	s := startServer(t, serverOptions{Config: cfg})
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	s.addKey(t, "alice", alice)
	s.addKey(t, "bob", bob)
	for _, u := range []struct {
		key        *testKey
		user, name string
	}{{alice, "alice", "box"}, {bob, "bob", "bobbox"}} {
		if r := s.ssh(t, u.key, u.user, "run", "--name", u.name, img); r.Code != 0 {
			t.Fatalf("%s: run %s: %s", u.user, u.name, r)
		}
	}

	dir := t.TempDir()
	local := filepath.Join(dir, "big.bin")
	data := make([]byte, 5<<20)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(local, data, 0o640); err != nil {
		t.Fatal(err)
	}
	want := sha256.Sum256(data)

	// sftp: into the container and the home, and back.
	r := s.sftpBatch(t, alice, "alice",
		"put "+local+" /containers/box/tmp/big.bin",
		"put "+local+" /home/big.bin",
		"get /containers/box/tmp/big.bin "+filepath.Join(dir, "back-ctr.bin"),
		"get /home/big.bin "+filepath.Join(dir, "back-home.bin"),
		"ls -l /containers/box/tmp",
		"ls /containers",
	)
	if r.Code != 0 {
		t.Fatalf("sftp batch: %s", r)
	}
	for _, f := range []string{"back-ctr.bin", "back-home.bin"} {
		if got := sha256File(t, filepath.Join(dir, f)); got != want {
			t.Errorf("sftp: %s differs from what was put", f)
		}
	}
	if !strings.Contains(r.Stdout, "big.bin") || !strings.Contains(r.Stdout, fmt.Sprint(len(data))) {
		t.Errorf("sftp ls -l /containers/box/tmp does not show big.bin of %d bytes:\n%s", len(data), r.Stdout)
	}
	if strings.Contains(r.Stdout, "bobbox") {
		t.Errorf("alice's ls /containers shows bob's container:\n%s", r.Stdout)
	}

	// scp (SFTP underneath): into the container, to the home by a relative path, and back.
	if r := s.fileClient(t, "scp", alice, "-p", local, "alice@127.0.0.1:/containers/box/tmp/scp.bin"); r.Code != 0 {
		t.Fatalf("scp put into the container: %s", r)
	}
	if r := s.fileClient(t, "scp", alice, local, "alice@127.0.0.1:rel.bin"); r.Code != 0 {
		t.Fatalf("scp put into the home: %s", r)
	}
	for _, remote := range []string{"/containers/box/tmp/scp.bin", "/home/rel.bin", "/containers/box/home/alice/rel.bin"} {
		back := filepath.Join(dir, "scp-back.bin")
		_ = os.Remove(back)
		if r := s.fileClient(t, "scp", alice, "alice@127.0.0.1:"+remote, back); r.Code != 0 {
			t.Fatalf("scp get %s: %s", remote, r)
		}
		if got := sha256File(t, back); got != want {
			t.Errorf("scp: %s came back different", remote)
		}
	}
	// scp -p kept the mode.
	if r := s.ssh(t, alice, "alice", "exec", "box", "--", "stat", "-c", "%a:%s", "/tmp/scp.bin"); r.Code != 0 ||
		strings.TrimSpace(r.Stdout) != fmt.Sprintf("640:%d", len(data)) {
		t.Errorf("stat of the scp -p file in the container: %s", r)
	}

	// Bob's container is not in alice's tree, by either tool.
	r = s.sftpBatch(t, alice, "alice", "get /containers/bobbox/etc/hostname "+filepath.Join(dir, "stolen"))
	if r.Code == 0 {
		t.Errorf("alice got a file of bob's container: %s", r)
	}
	if !strings.Contains(r.Stderr, "No such file") && !strings.Contains(r.Stderr, "not found") {
		t.Errorf("sftp of bob's container does not say no such file: %s", r)
	}
	if r := s.fileClient(t, "scp", alice, "alice@127.0.0.1:/containers/box/../bobbox/etc/hostname", filepath.Join(dir, "stolen")); r.Code == 0 {
		t.Errorf("scp reached bob's container: %s", r)
	}
	if _, err := os.Stat(filepath.Join(dir, "stolen")); err == nil {
		t.Errorf("a file of bob's container arrived")
	}

	// Every put is in the audit log.
	for _, target := range []string{"alice/box:/tmp/big.bin", "alice:~/big.bin", "alice/box:/tmp/scp.bin", "alice:~/rel.bin"} {
		s.waitAudit(t, "the put of "+target, func(e auditEntry) bool {
			return e.User == "alice" && e.Action == "put" && e.Target == target && e.Result == "ok"
		})
	}
}
