package main

// End-to-end tests of faults: the client killed in the middle of a transfer, a SIF build or
// a shell, and the server killed in the middle of a build and started again.

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/moby/moby/client"

	"whalemountain/backend/docker/dockertest"
)

// background is an OpenSSH client (ssh or scp) running in its own process group, so that
// killing it kills the ssh it started too.
type background struct {
	cmd    *exec.Cmd
	stdin  *os.File // the write end of its stdin (nil: /dev/null)
	exited chan struct{}
}

func startClient(t *testing.T, bin string, withStdin bool, args ...string) *background {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = environWithout("SSH_AUTH_SOCK")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	b := &background{cmd: cmd, exited: make(chan struct{})}
	if withStdin {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stdin, b.stdin = r, w
		defer r.Close()
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	go func() {
		_ = cmd.Wait()
		close(b.exited)
	}()
	t.Cleanup(b.kill)
	return b
}

// kill sends SIGKILL to the client's process group and waits for it.
func (b *background) kill() {
	_ = syscall.Kill(-b.cmd.Process.Pid, syscall.SIGKILL)
	<-b.exited
	if b.stdin != nil {
		_ = b.stdin.Close()
	}
}

func (b *background) running() bool {
	select {
	case <-b.exited:
		return false
	default:
		return true
	}
}

// readBytes is how much the process has read so far (/proc/PID/io rchar): how far scp is
// into the file it sends.
func readBytes(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

// openFiles lists the targets of the process's open descriptors that contain substr.
func openFiles(pid int, substr string) []string {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, e := range ents {
		if target, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && strings.Contains(target, substr) {
			out = append(out, target)
		}
	}
	return out
}

// randomFile writes n random bytes to a new file in dir and returns its path.
func randomFile(t *testing.T, dir, name string, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// heldTool writes a tar2sqfs stand-in that records its PID and then hangs without reading,
// as the tool does on a very large image: a build using it stays in the middle. The PIDs
// it wrote are killed when the test ends (a server killed with SIGKILL leaves them).
func heldTool(t *testing.T) (script, pids string) {
	t.Helper()
	dir := t.TempDir()
	script, pids = filepath.Join(dir, "tar2sqfs"), filepath.Join(dir, "pids")
	body := fmt.Sprintf("#!/bin/sh\necho $$ >> %s\nexec sleep 600\n", pids)
	if err := os.WriteFile(script, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		b, _ := os.ReadFile(pids)
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	})
	return script, pids
}

// toolsAlive counts the tool processes the held tool recorded that still run.
func toolsAlive(pids string) int {
	b, _ := os.ReadFile(pids)
	n := 0
	for _, f := range strings.Fields(string(b)) {
		if pid, err := strconv.Atoi(f); err == nil && syscall.Kill(pid, 0) == nil {
			// A zombie still answers; it is gone for this purpose once it has exited.
			if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil && !strings.Contains(string(st), ") Z ") {
				n++
			}
		}
	}
	return n
}

// TestE2EClientKilled: OpenSSH clients killed with SIGKILL in the middle of an scp upload
// (into a container and into the home), an scp download, a SIF build and a shell leave
// nothing behind: no file, whole or partial, where the upload was going, no spool file held
// open, the build's export container, staging files and tool process gone, the shell's
// process gone from the container. Not parallel, for the reason TestE2EContainers gives.
func TestE2EClientKilled(t *testing.T) {
	needTools(t, "scp")
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	tool, pids := heldTool(t)
	s := startContainerServer(t, cli, img, containerPrefix("ck"), ctrOptions{Top: "images:\n  sif:\n    tar2sqfs: " + tool + "\n"})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)
	s.mustRun(t, alice, "alice", "run", "--name", "box", img)
	pid := s.cmd.Process.Pid
	dir := t.TempDir()
	scp, err := exec.LookPath("scp")
	if err != nil {
		t.Fatal(err)
	}
	held := func(what string) {
		t.Helper()
		if !poll(pollTimeout, func() bool { return len(openFiles(pid, "/spool/")) == 0 }) {
			t.Errorf("after the %s the server still holds %q", what, openFiles(pid, "/spool/"))
		}
	}

	// Uploads, killed a few MiB in (scp sends at 8 Mbit/s).
	big := randomFile(t, dir, "big.bin", 32<<20)
	for _, dest := range []string{"/containers/box/tmp/up.bin", "/home/up.bin"} {
		up := startClient(t, scp, false, append(s.fileClientArgs(alice), "-l", "8192", big, "alice@127.0.0.1:"+dest)...)
		if !poll(sshTimeout, func() bool { return readBytes(up.cmd.Process.Pid) > 3<<20 || !up.running() }) || !up.running() {
			t.Fatalf("scp to %s ended or never got going before it could be killed", dest)
		}
		up.kill()
		held("upload to " + dest + " was killed")
	}
	out := s.mustRun(t, alice, "alice", "exec", "box", "--", "ls", "-a", "/tmp", "/home/alice")
	if strings.Contains(out, "up.bin") || strings.Contains(out, ".wm-upload") {
		t.Errorf("killed uploads left files behind:\n%s", out)
	}

	// A download, killed a few MiB in.
	if r := s.fileClient(t, "scp", alice, big, "alice@127.0.0.1:/containers/box/tmp/big.bin"); r.Code != 0 {
		t.Fatalf("scp into the container: %s", r)
	}
	back := filepath.Join(dir, "back.bin")
	down := startClient(t, scp, false, append(s.fileClientArgs(alice), "-l", "8192", "alice@127.0.0.1:/containers/box/tmp/big.bin", back)...)
	if !poll(sshTimeout, func() bool {
		fi, err := os.Stat(back)
		return err == nil && fi.Size() > 3<<20 || !down.running()
	}) || !down.running() {
		t.Fatal("the download ended or never got going before it could be killed")
	}
	down.kill()
	held("download was killed")

	// A SIF build, killed while the tool works.
	build := startClient(t, sshBinary(t), false, s.sshArgs(alice, "alice", nil, "sif", img)...)
	if !poll(sshTimeout, func() bool { return toolsAlive(pids) == 1 && s.sifExportContainers(t) == 1 }) {
		t.Fatalf("the build never reached the tool; server log:\n%s", s.Log())
	}
	build.kill()
	if !poll(pollTimeout, func() bool {
		return toolsAlive(pids) == 0 && s.sifExportContainers(t) == 0 && len(userSIFDir(t, s.DataDir, "alice")) == 0
	}) {
		t.Errorf("after the build's client was killed: %d tools, %d export containers, %q in the SIF directory",
			toolsAlive(pids), s.sifExportContainers(t), userSIFDir(t, s.DataDir, "alice"))
	}

	// A shell, killed while its command runs.
	shell := startClient(t, sshBinary(t), true, s.sshArgs(alice, "alice", []string{"-tt"}, "shell", "box")...)
	if _, err := shell.stdin.WriteString("sleep 4242\n"); err != nil {
		t.Fatal(err)
	}
	ps := func() string { return s.mustRun(t, alice, "alice", "exec", "box", "--", "ps", "-o", "pid,args") }
	if !poll(sshTimeout, func() bool { return strings.Contains(ps(), "sleep 4242") }) {
		t.Fatalf("the shell's command never ran:\n%s", ps())
	}
	shell.kill()
	if !poll(pollTimeout, func() bool { return !strings.Contains(ps(), "sleep 4242") }) {
		t.Errorf("the killed shell's processes still run in the container:\n%s", ps())
	}
	if st := s.engineInspect(t, s.engineContainer(t, "alice", "box").ID).State; st == nil || !st.Running {
		t.Errorf("box is not running after the clients were killed: %+v", st)
	}
}

// TestE2EServerKilled: the server killed with SIGKILL in the middle of a SIF build (and of
// an image build, whose spooled context it leaves) and started again on the same data
// directory comes back with everything that was finished — containers as they were, a file
// uploaded, the audit log — and clears what was half done: the export container, the
// build's staging files, the spool. Not parallel, for the reason TestE2EContainers gives.
func TestE2EServerKilled(t *testing.T) {
	needTools(t, "scp")
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	tool, pids := heldTool(t)
	prefix := containerPrefix("sk")
	first := startContainerServer(t, cli, img, prefix, ctrOptions{Top: "images:\n  sif:\n    tar2sqfs: " + tool + "\n"})
	alice := newKey(t, "alice")
	first.addKey(t, "alice", alice)
	first.mustRun(t, alice, "alice", "run", "--name", "box", img)
	first.mustRun(t, alice, "alice", "run", "--name", "old", img)
	first.mustRun(t, alice, "alice", "stop", "old")
	dir := t.TempDir()
	kept := randomFile(t, dir, "kept.bin", 1<<20)
	if r := first.fileClient(t, "scp", alice, kept, "alice@127.0.0.1:/home/kept.bin"); r.Code != 0 {
		t.Fatalf("scp into the home: %s", r)
	}

	build := startClient(t, sshBinary(t), false, first.sshArgs(alice, "alice", nil, "sif", img)...)
	if !poll(sshTimeout, func() bool { return toolsAlive(pids) == 1 && first.sifExportContainers(t) == 1 }) {
		t.Fatalf("the build never reached the tool; server log:\n%s", first.Log())
	}
	// What an image build through the Docker API spools while it runs.
	spooled := filepath.Join(first.DataDir, "spool", "build-1234.tar")
	if err := os.WriteFile(spooled, []byte("half a context"), 0o600); err != nil {
		t.Fatal(err)
	}
	// And half a notice file, as a kill in the middle of saving one leaves it.
	halfNotice := filepath.Join(first.DataDir, "notices", ".alice.1234.tmp")
	if err := os.MkdirAll(filepath.Dir(halfNotice), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(halfNotice, []byte(`{"last":`), 0o600); err != nil {
		t.Fatal(err)
	}
	first.kill()
	build.kill()

	// Started again on the same data directory, with the same configuration.
	cfg := fmt.Sprintf("docker:\n  name_prefix: %s\n  stop_timeout: 2s\n  labels:\n    %s: %q\n    %s: %q\nimages:\n  sif:\n    tar2sqfs: %s\n",
		prefix, dockertest.LabelRun, dockertest.RunID(), dockertest.LabelService, prefix, tool)
	again := &ctrServer{server: startServer(t, serverOptions{Config: cfg, DataDir: first.DataDir}), cli: cli, img: img, prefix: prefix, labels: first.labels}

	if n := again.sifExportContainers(t); n != 0 {
		t.Errorf("%d export containers after the restart", n)
	}
	if names := userSIFDir(t, again.DataDir, "alice"); len(names) != 0 {
		t.Errorf("the SIF directory holds %q after the restart", names)
	}
	for _, p := range []string{spooled, halfNotice} {
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is still there after the restart: %v", p, err)
		}
	}
	ps := again.mustRun(t, alice, "alice", "ps", "-a")
	if row := tableRow(outLines(ps), "box"); row == nil || row[2] != "running" {
		t.Errorf("box after the restart:\n%s", ps)
	}
	if row := tableRow(outLines(ps), "old"); row == nil || !strings.HasPrefix(row[2], "stopped") && !strings.HasPrefix(row[2], "exited") {
		t.Errorf("old after the restart:\n%s", ps)
	}
	if n := len(again.engineContainers(t, "alice", "")); n != 2 {
		t.Errorf("%d containers of alice on the engine, want box and old", n)
	}
	back := filepath.Join(dir, "back.bin")
	if r := again.fileClient(t, "scp", alice, "alice@127.0.0.1:/home/kept.bin", back); r.Code != 0 {
		t.Fatalf("scp from the home after the restart: %s", r)
	} else if sha256File(t, back) != sha256File(t, kept) {
		t.Error("the file uploaded before the kill came back different")
	}
	again.waitAudit(t, "the run before the kill", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "run" && e.Target == "alice/box" && e.Result == "ok"
	})
	// The server can build again, and the build it lost does not block a new one.
	if r := again.run(t, alice, "alice", "sif", "ls"); r.Code != 0 {
		t.Errorf("sif ls after the restart: %s", r)
	}
}

// TestE2EEngineCut: with the server's connection to dockerd going through a proxy, cutting
// it puts one line on an open dashboard (the last known list stays, dimmed) and makes a
// command fail with one line; a container stopped behind the cut shows as stopped once the
// connection is back, and the line goes by itself. Not parallel, for the reason
// TestE2EContainers gives.
func TestE2EEngineCut(t *testing.T) {
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	proxy := dockertest.NewProxy(t)
	s := startContainerServer(t, cli, img, containerPrefix("ec"), ctrOptions{Docker: "  host: " + proxy.Host() + "\n"})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)
	s.mustRun(t, alice, "alice", "run", "--name", "box", img)
	boxRow := func(state string) func([]string) bool {
		return func(ls []string) bool {
			for _, l := range ls {
				if strings.Contains(l, " box ") && strings.Contains(l, state) {
					return true
				}
			}
			return false
		}
	}
	tm := s.openDashboard(t, alice, "alice", "student", 100, 30)
	tm.waitScreen("box running", boxRow("running"))

	proxy.Cut()
	lines := tm.waitText("Docker unreachable: cannot connect to the Docker daemon — showing the last known list")
	if !boxRow("running")(lines) {
		t.Errorf("the last known list is gone while Docker is unreachable:\n%s", tm.dump())
	}
	wantError(t, "stop while Docker is cut off", s.run(t, alice, "alice", "stop", "box"), 1, "Docker unreachable")

	zero := 0
	if _, err := cli.ContainerStop(ctx, s.engineContainer(t, "alice", "box").ID, client.ContainerStopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := proxy.Resume(); err != nil {
		t.Fatal(err)
	}
	tm.waitGone("Docker unreachable")
	tm.waitScreen("box exited after the resync", boxRow("exited"))
	if r := s.run(t, alice, "alice", "start", "box"); r.Code != 0 {
		t.Errorf("start once Docker is back: %s", r)
	}
	tm.waitScreen("box running again", boxRow("running"))
}
