package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"whalemountain/backend/docker/dockertest"
	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// startPodServer starts the server on the shared test cluster, as the ServiceAccount that
// holds exactly the ClusterRole of `whalemountain kube-rbac`, in namespaces of its own; with
// containers on too (the file tree needs them), under a prefix and labels of its own.
func startPodServer(t *testing.T) *server {
	t.Helper()
	return startPodServerWith(t, "")
}

// startPodServerWith is startPodServer with more top-level configuration.
func startPodServerWith(t *testing.T, top string) *server {
	t.Helper()
	cli := dockertest.Client(t)
	prefix := "kp" + dockertest.RunID()[8:] + randomLetters(3)
	dlabels := map[string]string{dockertest.LabelRun: dockertest.RunID(), dockertest.LabelService: prefix}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		if err := dockertest.Remove(ctx, cli, dlabels); err != nil {
			t.Errorf("remove the objects of %s: %v", prefix, err)
		}
	})
	c := kubetest.Get(t)
	kc := kubetest.Config(t)
	t.Cleanup(func() { c.RemoveNamespaces(t, kc.Labels) })
	var labels strings.Builder
	for k, v := range kc.Labels {
		fmt.Fprintf(&labels, "    %s: %q\n", k, v)
	}
	return startServer(t, serverOptions{Config: fmt.Sprintf(`server_name: pods-e2e
tas: [tina]
docker:
  name_prefix: %s
  labels:
    %s: %q
    %s: %q
kubernetes:
  kubeconfig: %s
  namespace_prefix: %s
  labels:
%s%s`, prefix, dockertest.LabelRun, dockertest.RunID(), dockertest.LabelService, prefix, kc.Kubeconfig, kc.NamespacePrefix, labels.String(), top)})
}

// podsOf runs `pods --json` for user.
func (s *server) podsOf(t *testing.T, key *testKey, user string, args ...string) []kube.Pod {
	t.Helper()
	r := s.ssh(t, key, user, append([]string{"pods", "--json"}, args...)...)
	if r.Code != 0 {
		t.Fatalf("pods --json: %s", r)
	}
	var ps []kube.Pod
	if err := json.Unmarshal([]byte(r.Stdout), &ps); err != nil {
		t.Fatalf("pods --json: %v\n%s", err, r.Stdout)
	}
	return ps
}

// TestE2EPods: a student's pods through every door with the real OpenSSH client — the
// command line, logs, exec with its exit status, ssh -L pod/NAME, a kubeconfig that kubectl
// uses, the Pods tab with a shell that comes back to the same row — while another student
// reaches none of it and hears "no such pod" exactly as for a name nobody has.
func TestE2EPods(t *testing.T) {
	t.Parallel()
	s := startPodServer(t)
	alice, bob, tina := newKey(t, "alice"), newKey(t, "bob"), newKey(t, "tina")
	s.addKey(t, "alice", alice)
	s.addKey(t, "bob", bob)
	s.addKey(t, "tina", tina)

	if r := s.ssh(t, alice, "alice", "pod", "run", "--name", "lab", "busybox:1"); r.Code != 0 || !strings.Contains(r.Stdout, "pod lab: created") {
		t.Fatalf("pod run: %s", r)
	}
	if !poll(pollTimeout, func() bool {
		ps := s.podsOf(t, alice, "alice")
		return len(ps) == 1 && ps[0].Running()
	}) {
		t.Fatalf("lab never ran: %+v", s.podsOf(t, alice, "alice"))
	}
	if r := s.ssh(t, alice, "alice", "pods"); r.Code != 0 || !strings.Contains(r.Stdout, "RESTARTS") || !strings.Contains(r.Stdout, "lab") {
		t.Errorf("pods: %s", r)
	}
	if r := s.ssh(t, alice, "alice", "pod", "exec", "lab", "--", "sh", "-c", "'echo out; echo err >&2; exit 3'"); r.Code != 3 || r.Stdout != "out\n" || r.Stderr != "err\n" {
		t.Errorf("pod exec: %s", r)
	}
	if r := s.ssh(t, alice, "alice", "pod", "logs", "--tail", "1", "lab"); r.Code != 0 || r.Stdout != kubetest.LogLines[len(kubetest.LogLines)-1]+"\n" {
		t.Errorf("pod logs: %s", r)
	}
	if r := s.ssh(t, alice, "alice", "pod", "run", "--name", "Bad_Name", "busybox:1"); r.Code != 2 || !strings.Contains(r.Stderr, "invalid pod name") {
		t.Errorf("bad name: %s", r)
	}

	// Files go into and come out of the pod over sftp (tar through exec), whole. The test
	// cluster's exec runs on this machine, so the pod's files are in a directory here.
	podDir, err := os.MkdirTemp("", "wm-pod-files-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(podDir) })
	if r := s.ssh(t, alice, "alice", "pod", "exec", "lab", "--", "sh", "-c", "'echo pod-data > "+podDir+"/out.txt; mkdir "+podDir+"/sub'"); r.Code != 0 {
		t.Fatalf("write in the pod: %s", r)
	}
	local := filepath.Join(t.TempDir(), "got.txt")
	r := s.sftpBatch(t, alice, "alice", "ls /pods", "ls -l /pods/lab"+podDir, "get /pods/lab"+podDir+"/out.txt "+local)
	if got, _ := os.ReadFile(local); r.Code != 0 || string(got) != "pod-data\n" || !strings.Contains(r.Stdout, "out.txt") || !strings.Contains(r.Stdout, "sub") {
		t.Errorf("sftp out of the pod: %s\ngot %q", r, got)
	}
	if r := s.sftpBatch(t, alice, "alice", "put "+local+" /pods/lab"+podDir+"/sub/in.txt"); r.Code != 0 {
		t.Errorf("sftp into the pod: %s", r)
	}
	if got, err := os.ReadFile(filepath.Join(podDir, "sub", "in.txt")); err != nil || string(got) != "pod-data\n" {
		t.Errorf("the file put into the pod: %q %v", got, err)
	}
	// The same operations as in a container's home: mkdir, chmod, rename, rm, rmdir, ".."
	// (which stays in the pod), each a tool run in the pod.
	lab := "/pods/lab" + podDir
	r = s.sftpBatch(t, alice, "alice", "mkdir "+lab+"/new", "chmod 600 "+lab+"/sub/in.txt",
		"rename "+lab+"/sub/in.txt "+lab+"/new/moved.txt", "get "+lab+"/new/../new/moved.txt "+local+".moved")
	if got, _ := os.ReadFile(local + ".moved"); r.Code != 0 || string(got) != "pod-data\n" {
		t.Errorf("mkdir, chmod, rename in the pod: %s\ngot %q", r, got)
	}
	if st, err := os.Stat(filepath.Join(podDir, "new", "moved.txt")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the file chmod 600 and moved in the pod: %v %v", st, err)
	}
	if r := s.sftpBatch(t, alice, "alice", "rm "+lab+"/new/moved.txt", "rmdir "+lab+"/new"); r.Code != 0 {
		t.Errorf("rm and rmdir in the pod: %s", r)
	}
	if _, err := os.Stat(filepath.Join(podDir, "new")); !os.IsNotExist(err) {
		t.Errorf("the directory removed in the pod: %v", err)
	}
	theirs := s.sftpBatch(t, bob, "bob", "get /pods/lab"+podDir+"/out.txt "+local+".bob")
	nobody := s.sftpBatch(t, bob, "bob", "get /pods/nosuch"+podDir+"/out.txt "+local+".bob")
	if theirs.Code == 0 || strings.ReplaceAll(nobody.Stderr, "nosuch", "lab") != theirs.Stderr || !strings.Contains(theirs.Stderr, "not found") {
		t.Errorf("bob gets alice's file: %s\nfor a pod nobody has: %s", theirs, nobody)
	}

	// Another student: every way of naming alice's pod reads as a pod nobody has.
	for _, args := range [][]string{
		{"pod", "logs", "lab"}, {"pod", "logs", "alice/lab"}, {"pod", "rm", "lab"}, {"pod", "rm", "alice/lab"},
		{"pod", "exec", "alice/lab", "--", "true"}, {"pod", "inspect", "alice/lab"},
	} {
		r := s.ssh(t, bob, "bob", args...)
		other := append([]string(nil), args...)
		other[2] = strings.Replace(other[2], "lab", "nosuch", 1)
		nobody := s.ssh(t, bob, "bob", other...)
		if r.Code != 1 || r.Stderr != strings.ReplaceAll(nobody.Stderr, "nosuch", "lab") || !strings.Contains(r.Stderr, "no such pod") {
			t.Errorf("bob %q: %s\nfor a pod nobody has: %s", args, r, nobody)
		}
	}
	if ps := s.podsOf(t, bob, "bob"); len(ps) != 0 {
		t.Errorf("bob sees %+v", ps)
	}
	if ps := s.podsOf(t, tina, "tina", "--all-users"); len(ps) != 1 || ps[0].Ref() != "alice/lab" {
		t.Errorf("a TA's pods --all-users: %+v", ps)
	}

	// ssh -L 8888:pod/lab:8888 reaches alice's pod (the test cluster echoes every port);
	// bob's same line is refused.
	forward := func(key *testKey, user string) (string, error) {
		port := freePort(t)
		cmd := exec.Command(sshBinary(t), s.sshArgs(key, user, []string{"-N", "-L", "127.0.0.1:" + port + ":pod/lab:8888"})...)
		cmd.Env = environWithout("SSH_AUTH_SOCK")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
		var line string
		var err error
		poll(pollTimeout, func() bool {
			conn, derr := net.DialTimeout("tcp", "127.0.0.1:"+port, 2*time.Second)
			if derr != nil {
				err = derr
				return false
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
			fmt.Fprintf(conn, "ping from %s\n", user)
			line, err = bufio.NewReader(conn).ReadString('\n')
			return err == nil || !strings.Contains(err.Error(), "refused")
		})
		return line, err
	}
	if line, err := forward(alice, "alice"); line != "ping from alice\n" {
		t.Errorf("alice's forward to pod/lab: %q %v", line, err)
	}
	if line, _ := forward(bob, "bob"); line != "" {
		t.Errorf("bob's forward to pod/lab answered %q", line)
	}
	s.waitAudit(t, "bob's refused forward", func(e auditEntry) bool {
		return e.User == "bob" && e.Action == "forward" && e.Target == "pod/lab:8888" && e.Result == "refused"
	})

	// kubeconfig: kubectl reaches alice's own namespace with it, and nothing else.
	r = s.ssh(t, alice, "alice", "kubeconfig")
	if r.Code != 0 || !strings.Contains(r.Stdout, "token:") || !strings.Contains(r.Stderr, "valid until") {
		t.Fatalf("kubeconfig: %s", r)
	}
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(path, []byte(r.Stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl := func(args ...string) (string, error) {
		out, err := exec.Command(kubetest.Get(t).Kubectl(), append([]string{"--kubeconfig", path}, args...)...).CombinedOutput()
		return string(out), err
	}
	if out, err := kubectl("get", "pods", "-o", "name"); err != nil || strings.TrimSpace(out) != "pod/lab" {
		t.Errorf("kubectl get pods: %v %s", err, out)
	}
	if out, err := kubectl("get", "pods", "-A"); err == nil {
		t.Errorf("kubectl get pods -A allowed: %s", out)
	}

	// The Pods tab: the pod, its details, a shell that comes back to the same row.
	tm := s.openDashboard(t, alice, "alice", "student", 80, 24)
	tm.send("4")
	tm.waitText("NAME", "STATUS", "lab", "Running")
	tm.send("\r")
	tm.waitText("pod lab", "ssh -L 8888:pod/lab:8888")
	tm.send("s")
	tm.waitText("#") // the test cluster's exec runs a shell on this machine
	tm.send("echo in-the-pod-$((6*7))\r")
	tm.waitOutput("in-the-pod-42")
	tm.send("exit\r")
	lines := tm.waitText("shell in pod/lab ended (exit 0)", "lab")
	if err := layoutFits(lines, 80, 24, "alice (student)"); err != nil {
		t.Error(err)
	}
	if tm.activeTab(lines) != 4 {
		t.Errorf("not back on the Pods tab:\n%s", strings.Join(lines, "\n"))
	}
	tm.send("q")

	if r := s.ssh(t, alice, "alice", "pod", "rm", "lab"); r.Code != 0 {
		t.Errorf("pod rm: %s", r)
	}
	s.waitAudit(t, "alice's pod rm", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "pod rm" && e.Target == "alice/lab" && e.Result == "ok"
	})
}

// TestE2ENoCluster: without a kubernetes: section the pod commands and the Pods tab say so
// in one line.
func TestE2ENoCluster(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{Config: "docker:\n  enabled: false\n"})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)
	for _, args := range [][]string{{"pods"}, {"pod", "run", "busybox:1"}, {"kubeconfig"}} {
		if r := s.ssh(t, alice, "alice", args...); r.Code != 1 || r.Stderr != "error: no Kubernetes cluster is configured on this server\n" {
			t.Errorf("%q: %s", args, r)
		}
	}
}
