package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"whalemountain/backend/docker/dockertest"
	"whalemountain/backend/gitlab"
	"whalemountain/backend/gitlab/gitlabtest"
)

// TestE2ESharedData: a dataset and group workspaces from GitLab groups, through the real
// OpenSSH ssh and sftp: the dataset is read-only everywhere, two members of a group share
// files over sftp and in their containers, a third student sees nothing of it, and a member
// removed in GitLab loses the workspace at the next start (TAs see the container meanwhile).
// Not parallel, for the reason TestE2EContainers gives.
func TestE2ESharedData(t *testing.T) {
	needTools(t, "sftp")
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)

	gl := gitlabtest.New()
	t.Cleanup(gl.Close)
	ids := map[string]int64{}
	for _, u := range []string{"alice", "bob", "carol", "tina"} {
		ids[u] = gl.AddUser(gitlabtest.User{Username: u})
	}
	gl.SetMember("os/team-a", ids["alice"], gitlab.Developer)
	gl.SetMember("os/team-a", ids["bob"], gitlab.Developer)
	gl.SetMember("os/team-b", ids["carol"], gitlab.Developer)

	data := t.TempDir()
	if err := os.WriteFile(filepath.Join(data, "hello.txt"), []byte("course data\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	top := fmt.Sprintf("tas: [tina]\nta_file_access: read\ngitlab:\n  url: %s\n  cache_ttl: 1ms\ndatasets:\n  - name: course\n    host_path: %s\n"+
		"    description: the course's data\ngroups:\n  - group: os/team-*\n    size: 64m\n", gl.URL(), data)
	s := startContainerServer(t, cli, img, containerPrefix("d"), ctrOptions{Top: top})
	keys := map[string]*testKey{}
	for _, u := range []string{"alice", "bob", "carol", "tina"} {
		keys[u] = newKey(t, u)
		s.addKey(t, u, keys[u])
	}
	for _, u := range []string{"alice", "bob", "carol"} {
		s.mustRun(t, keys[u], u, "run", "--name", "box", img)
	}

	// The verbs.
	r := s.run(t, keys["alice"], "alice", "datasets")
	if r.Code != 0 || !strings.Contains(r.Stdout, "course") || !strings.Contains(r.Stdout, "/datasets/course (read-only)") || !strings.Contains(r.Stdout, "12 B") {
		t.Fatalf("datasets: %s", r)
	}
	r = s.run(t, keys["alice"], "alice", "groups", "--json")
	var gs []struct {
		Group   string   `json:"group"`
		Members []string `json:"members"`
		Target  string   `json:"target"`
		Limit   string   `json:"limit_enforced"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &gs); err != nil || len(gs) != 1 || gs[0].Group != "os/team-a" ||
		strings.Join(gs[0].Members, ",") != "alice,bob" || gs[0].Target != "/groups/os/team-a" {
		t.Fatalf("groups --json: %v %s", err, r)
	}
	// The server runs as root beside the engine here: the workspace has a file system of its
	// size, and a write from inside the container stops at it.
	if os.Geteuid() == 0 {
		if gs[0].Limit != "filesystem" {
			t.Fatalf("the 64 MiB limit is enforced by %q", gs[0].Limit)
		}
		if r := s.run(t, keys["alice"], "alice", "exec", "box", "--", "dd", "if=/dev/zero", "of=/groups/os/team-a/fill", "bs=1M", "count=80"); r.Code == 0 ||
			!strings.Contains(r.Stdout+r.Stderr, "No space left") {
			t.Fatalf("80 MiB into the 64 MiB workspace from the container: %s", r)
		}
		s.mustRun(t, keys["alice"], "alice", "exec", "box", "--", "rm", "/groups/os/team-a/fill")
	}

	// Two members share a file, over sftp and in their containers.
	note := filepath.Join(t.TempDir(), "note.txt")
	if err := os.WriteFile(note, []byte("meet at 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := s.sftpBatch(t, keys["alice"], "alice", "put "+note+" /groups/os/team-a/note.txt", "ls /groups/os", "ls /"); r.Code != 0 ||
		!strings.Contains(r.Stdout, "team-a") || !strings.Contains(r.Stdout, "datasets") || !strings.Contains(r.Stdout, "groups") {
		t.Fatalf("alice's sftp: %s", r)
	}
	got := filepath.Join(t.TempDir(), "got.txt")
	if r := s.sftpBatch(t, keys["bob"], "bob", "get /groups/os/team-a/note.txt "+got); r.Code != 0 {
		t.Fatalf("bob's sftp get: %s", r)
	}
	if b, _ := os.ReadFile(got); string(b) != "meet at 3\n" {
		t.Fatalf("bob got %q", b)
	}
	if r := s.run(t, keys["bob"], "bob", "exec", "box", "--", "cat", "/groups/os/team-a/note.txt"); r.Code != 0 || r.Stdout != "meet at 3\n" {
		t.Fatalf("bob's container: %s", r)
	}
	// The third student: nothing of it, by sftp or in her container.
	if r := s.sftpBatch(t, keys["carol"], "carol", "get /groups/os/team-a/note.txt "+got+"-carol"); r.Code == 0 {
		t.Fatalf("carol got the team's note: %s", r)
	}
	if r := s.sftpBatch(t, keys["carol"], "carol", "ls /groups/os"); r.Code != 0 || strings.Contains(r.Stdout, "team-a") || !strings.Contains(r.Stdout, "team-b") {
		t.Fatalf("carol's /groups/os: %s", r)
	}
	if r := s.run(t, keys["carol"], "carol", "exec", "box", "--", "sh", "-c", "ls /groups/os; cat /groups/os/team-a/note.txt"); strings.Contains(r.Stdout, "meet at 3") || strings.Contains(r.Stdout, "team-a") {
		t.Fatalf("carol's container: %s", r)
	}

	// The dataset: readable, never writable.
	if r := s.sftpBatch(t, keys["alice"], "alice", "get /datasets/course/hello.txt "+got+"-data"); r.Code != 0 {
		t.Fatalf("get from the dataset: %s", r)
	}
	r = s.sftpBatch(t, keys["alice"], "alice", "put "+note+" /datasets/course/note.txt")
	if r.Code == 0 || !strings.Contains(r.Stderr, "Permission denied") {
		t.Fatalf("put into the dataset: %s", r)
	}
	if r := s.run(t, keys["alice"], "alice", "exec", "box", "--", "touch", "/datasets/course/x"); r.Code == 0 || !strings.Contains(r.Stderr, "Read-only") {
		t.Fatalf("write in the container: %s", r)
	}
	if _, err := os.Stat(filepath.Join(data, "note.txt")); err == nil {
		t.Fatal("a file was put into the dataset")
	}

	// The TA reads (never writes) the workspace and alice's home; each file read is audited.
	// A student reads neither.
	if r := s.sftpBatch(t, keys["alice"], "alice", "put "+note+" /home/essay.txt"); r.Code != 0 {
		t.Fatalf("alice's put into her home: %s", r)
	}
	if r := s.sftpBatch(t, keys["tina"], "tina", "get /groups/os/team-a/note.txt "+got+"-ta1", "get /users/alice/home/essay.txt "+got+"-ta2", "ls /users"); r.Code != 0 ||
		!strings.Contains(r.Stdout, "alice") {
		t.Fatalf("the TA's reads: %s", r)
	}
	for _, f := range []string{got + "-ta1", got + "-ta2"} {
		if b, _ := os.ReadFile(f); string(b) != "meet at 3\n" {
			t.Fatalf("the TA got %q", b)
		}
	}
	for _, cmd := range []string{"put " + note + " /groups/os/team-a/ta.txt", "put " + note + " /users/alice/home/ta.txt", "rm /users/alice/home/essay.txt"} {
		if r := s.sftpBatch(t, keys["tina"], "tina", cmd); r.Code == 0 || !strings.Contains(r.Stderr, "Permission denied") {
			t.Fatalf("the TA's %s: %s", cmd, r)
		}
	}
	s.waitAudit(t, "the TA's read of alice's essay", func(e auditEntry) bool {
		return e.User == "tina" && e.Action == "get" && e.Target == "tina:/users/alice/home/essay.txt" && e.Result == "ok"
	})
	if r := s.sftpBatch(t, keys["carol"], "carol", "get /users/alice/home/essay.txt "+got+"-carol2"); r.Code == 0 {
		t.Fatalf("a student reads alice's home: %s", r)
	}

	// bob leaves the group in GitLab: TAs see his running container, and it does not start
	// again.
	gl.SetMember("os/team-a", ids["bob"], 0)
	if r := s.run(t, keys["tina"], "tina", "groups"); r.Code != 0 || !strings.Contains(r.Stdout, "bob/box still mounts os/team-a") {
		t.Fatalf("the TA's groups: %s", r)
	}
	s.mustRun(t, keys["bob"], "bob", "stop", "box")
	if r := s.run(t, keys["bob"], "bob", "start", "box"); r.Code != 1 || !strings.Contains(r.Stderr, "no longer a member") {
		t.Fatalf("bob starts his box after leaving: %s", r)
	}
	if r := s.sftpBatch(t, keys["bob"], "bob", "get /groups/os/team-a/note.txt "+got+"-bob"); r.Code == 0 {
		t.Fatalf("bob still gets the note over sftp: %s", r)
	}
}
