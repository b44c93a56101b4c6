package docker_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/gitlab"
	"whalemountain/backend/gitlab/gitlabtest"
	"whalemountain/backend/groups"
)

var carol = backend.Identity{User: "carol", Role: backend.RoleStudent}

// sh runs script in the container ref of id and returns its output (stdout and stderr) and
// exit code.
func (r *rig) sh(id backend.Identity, ref, script string) (string, int) {
	r.t.Helper()
	ex := r.exec(id, ref, backend.ExecSpec{Cmd: []string{"sh", "-c", script}})
	_ = ex.Stdin().Close()
	outc, errc := make(chan []byte, 1), make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(ex.Stdout()); outc <- b }()
	go func() { b, _ := io.ReadAll(ex.Stderr()); errc <- b }()
	code, err := waitExit(r.t, ex)
	if err != nil {
		r.t.Fatalf("%s in %s: %v", script, ref, err)
	}
	return string(<-outc) + string(<-errc), code
}

// sharedRig is a rig whose service mounts a dataset for everyone (a host directory), one
// for the members of group ml only, and a workspace for each os/team-* group, with
// memberships in a GitLab stand-in: alice and bob in os/team-a, carol in os/team-b and ml.
type sharedRig struct {
	*rig
	gl      *gitlabtest.Server
	users   map[string]int64
	dataDir string
}

func newSharedRig(t *testing.T, configure ...func(*docker.Config)) *sharedRig {
	t.Helper()
	gl := gitlabtest.New()
	t.Cleanup(gl.Close)
	users := map[string]int64{}
	for _, u := range []string{"alice", "bob", "carol"} {
		users[u] = gl.AddUser(gitlabtest.User{Username: u})
	}
	gl.SetMember("os/team-a", users["alice"], gitlab.Developer)
	gl.SetMember("os/team-a", users["bob"], gitlab.Developer)
	gl.SetMember("os/team-b", users["carol"], gitlab.Developer)
	gl.SetMember("ml", users["carol"], gitlab.Reporter)
	gl.GroupID("os") // the parent exists in GitLab, with no members of its own

	dataDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dataDir, "hello.txt"), []byte("hello from the course\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	secretDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(secretDir, "weights.bin"), []byte("secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := newRig(t, func(c *docker.Config) {
		c.Datasets = []docker.Dataset{
			{Name: "course", HostPath: dataDir, Description: "for everyone"},
			{Name: "secret", HostPath: secretDir, Groups: []string{"ml"}},
		}
		c.Groups = []docker.GroupWorkspace{{Group: "os/team-*", Size: 64 << 20}}
		for _, f := range configure {
			f(c)
		}
	})
	client, err := gitlab.New(gl.URL(), "", gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	// Every answer is asked afresh, so a change in GitLab counts at once.
	r.svc.SetGroupDirectory(groups.New(groups.Config{TTL: time.Nanosecond}, client))
	return &sharedRig{rig: r, gl: gl, users: users, dataDir: dataDir}
}

func TestSharedDataInContainers(t *testing.T) {
	r := newSharedRig(t)
	a := r.run(alice, docker.RunSpec{Name: "a1"})
	r.run(bob, docker.RunSpec{Name: "b1"})
	c := r.run(carol, docker.RunSpec{Name: "c1"})

	// The dataset for everyone: readable, not writable, also not by root in the container.
	if out, code := r.sh(alice, "a1", "cat /datasets/course/hello.txt"); code != 0 || out != "hello from the course\n" {
		t.Fatalf("read dataset: %d %q", code, out)
	}
	for _, script := range []string{
		"touch /datasets/course/new",
		"rm /datasets/course/hello.txt",
		"echo x >> /datasets/course/hello.txt",
		"mount -o remount,rw /datasets/course",
	} {
		if out, code := r.sh(alice, "a1", script); code == 0 {
			t.Errorf("%s in a dataset succeeded: %q", script, out)
		}
	}
	if b, err := os.ReadFile(filepath.Join(r.dataDir, "hello.txt")); err != nil || string(b) != "hello from the course\n" {
		t.Fatalf("dataset changed: %q %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(r.dataDir, "new")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a file appeared in the dataset: %v", err)
	}
	// The group's dataset: carol's only.
	if out, code := r.sh(alice, "a1", "ls /datasets"); code != 0 || strings.TrimSpace(out) != "course" {
		t.Fatalf("alice's datasets: %d %q", code, out)
	}
	if out, code := r.sh(carol, "c1", "cat /datasets/secret/weights.bin"); code != 0 || out != "secret" {
		t.Fatalf("carol's group dataset: %d %q", code, out)
	}

	// Two members of a group share its workspace; the third student sees nothing of it.
	if out, code := r.sh(alice, "a1", "echo from-alice > /groups/os/team-a/note && ls /groups/os"); code != 0 || strings.TrimSpace(out) != "team-a" {
		t.Fatalf("alice writes the workspace: %d %q", code, out)
	}
	if out, code := r.sh(bob, "b1", "cat /groups/os/team-a/note"); code != 0 || out != "from-alice\n" {
		t.Fatalf("bob reads alice's note: %d %q", code, out)
	}
	if out, code := r.sh(carol, "c1", "ls /groups/os; cat /groups/os/team-a/note"); code == 0 || strings.Contains(out, "from-alice") || !strings.Contains(out, "team-b") {
		t.Fatalf("carol reaches team-a: %d %q", code, out)
	}

	// What the engine says: read-only binds for datasets, the group's volume read-write,
	// the labels naming both.
	ins, err := r.cli.ContainerInspect(r.ctx, a.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, m := range ins.Container.Mounts {
		switch {
		case m.Destination == "/datasets/course":
			if m.Type != mount.TypeBind || m.RW {
				t.Errorf("dataset mount: %+v", m)
			}
		case m.Destination == "/groups/os/team-a":
			if m.Type != mount.TypeVolume || !m.RW {
				t.Errorf("workspace mount: %+v", m)
			}
		}
		kinds = append(kinds, m.Destination)
	}
	slices.Sort(kinds)
	if want := []string{"/datasets/course", "/groups/os/team-a", "/home/alice"}; !slices.Equal(kinds, want) {
		t.Errorf("mounts of a1: %v, want %v", kinds, want)
	}
	if l := ins.Container.Config.Labels; l[docker.LabelDatasets] != "course" || l[docker.LabelGroups] != "os/team-a" {
		t.Errorf("labels: %v", l)
	}
	ins, err = r.cli.ContainerInspect(r.ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ins.Container.Mounts {
		if strings.Contains(m.Name, "team-a") || m.Destination == "/groups/os/team-a" {
			t.Errorf("carol's container mounts team-a: %+v", m)
		}
	}

	// Listings.
	ds, err := r.svc.Datasets(r.ctx, alice)
	if err != nil || len(ds) != 1 || ds[0].Name != "course" || ds[0].Size != int64(len("hello from the course\n")) || !ds[0].Available || ds[0].Source != "" {
		t.Fatalf("alice's datasets: %+v %v", ds, err)
	}
	gs, err := r.svc.Groups(r.ctx, alice)
	if err != nil || len(gs) != 1 || gs[0].Group != "os/team-a" || !slices.Equal(gs[0].Members, []string{"alice", "bob"}) || gs[0].Used != int64(len("from-alice\n")) {
		t.Fatalf("alice's groups: %+v %v", gs, err)
	}
	if gs[0].Quota != "server" && gs[0].Quota != "engine" {
		t.Fatalf("size limit enforced by %q", gs[0].Quota)
	}
	if gs, err := r.svc.Groups(r.ctx, tina); err != nil || len(gs) != 2 {
		t.Fatalf("the TA's view of the groups: %+v %v", gs, err)
	}

	// bob leaves the group: his running container is listed for TAs, and it does not
	// start again.
	r.gl.SetMember("os/team-a", r.users["bob"], 0)
	fm, err := r.svc.FormerMembers(r.ctx, tina)
	if err != nil || len(fm) != 1 || fm[0] != (docker.FormerMember{Owner: "bob", Container: "b1", Group: "os/team-a"}) {
		t.Fatalf("former members: %+v %v", fm, err)
	}
	if _, err := r.svc.FormerMembers(r.ctx, alice); !errors.Is(err, docker.ErrPermission) {
		t.Fatalf("a student asks for former members: %v", err)
	}
	if err := r.svc.Stop(r.ctx, bob, "b1", ""); err != nil {
		t.Fatal(err)
	}
	err = r.svc.Start(r.ctx, bob, "b1")
	if !errors.Is(err, docker.ErrPermission) || !strings.Contains(err.Error(), "no longer a member") {
		t.Fatalf("start after leaving: %v", err)
	}
	if err := r.svc.Start(r.ctx, tina, "bob/b1"); !errors.Is(err, docker.ErrPermission) {
		t.Fatalf("a TA starts it for him: %v", err)
	}
	// A new container of his has no workspace.
	r.run(bob, docker.RunSpec{Name: "b2"})
	if out, code := r.sh(bob, "b2", "ls /groups"); code == 0 {
		t.Fatalf("bob's new container has /groups: %q", out)
	}
	// alice's container starts again as it was.
	if err := r.svc.Restart(r.ctx, alice, "a1"); err != nil {
		t.Fatal(err)
	}
}

func TestSharedDataFiles(t *testing.T) {
	r := newSharedRig(t)
	if _, err := r.svc.MyGroups(r.ctx, alice); err != nil {
		t.Fatal(err)
	}
	team := backend.InGroup("os/team-a")
	body := "shared notes\n"
	if err := r.svc.WriteFile(r.ctx, alice, team, "/notes.txt", strings.NewReader(body), int64(len(body)), 0o644, time.Time{}); err != nil {
		t.Fatalf("alice writes the workspace: %v", err)
	}
	rc, _, err := r.svc.ReadFile(r.ctx, bob, team, "/notes.txt")
	if err != nil {
		t.Fatalf("bob reads it: %v", err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != body {
		t.Fatalf("bob read %q", b)
	}
	// carol is not a member: every way in is "no such file", as for a group that does not exist.
	for _, place := range []backend.Place{team, backend.InGroup("os/team-a/.."), backend.InGroup("os"), backend.InGroup("nope/x")} {
		if _, err := r.svc.StatPath(r.ctx, carol, place, "/notes.txt"); !errors.Is(err, docker.ErrNotFound) {
			t.Errorf("carol stats %+v: %v", place, err)
		}
		if err := r.svc.WriteFile(r.ctx, carol, place, "/x", strings.NewReader("x"), 1, 0o644, time.Time{}); !errors.Is(err, docker.ErrNotFound) {
			t.Errorf("carol writes %+v: %v", place, err)
		}
	}
	// Datasets: read-only for whoever sees them, not there for whoever does not.
	course := backend.InDataset("course")
	if fis, _, err := r.svc.ListDir(r.ctx, alice, course, "/"); err != nil || len(fis) != 1 || fis[0].Name != "hello.txt" {
		t.Fatalf("list the dataset: %+v %v", fis, err)
	}
	if err := r.svc.WriteFile(r.ctx, alice, course, "/x", strings.NewReader("x"), 1, 0o644, time.Time{}); !errors.Is(err, docker.ErrPermission) {
		t.Fatalf("write into a dataset: %v", err)
	}
	if err := r.svc.RemovePath(r.ctx, alice, course, "/hello.txt"); !errors.Is(err, docker.ErrPermission) {
		t.Fatalf("remove from a dataset: %v", err)
	}
	if err := r.svc.MakeDir(r.ctx, alice, course, "/d", 0o755); !errors.Is(err, docker.ErrPermission) {
		t.Fatalf("mkdir in a dataset: %v", err)
	}
	if _, _, err := r.svc.ListDir(r.ctx, alice, backend.InDataset("secret"), "/"); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("alice lists carol's group dataset: %v", err)
	}
	// A symlink in a dataset that leads out of it leads nowhere; nor does "..".
	if err := os.Symlink("/etc", filepath.Join(r.dataDir, "escape")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.svc.ReadFile(r.ctx, alice, course, "/escape/passwd"); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("read through a symlink out of the dataset: %v", err)
	}
	if _, err := r.svc.StatPath(r.ctx, alice, course, "/../../etc/passwd"); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("path with ..: %v", err)
	}
	// The size limit: past it, uploads are refused.
	big := strings.Repeat("x", 1<<20)
	var qerr error
	for i := range 70 {
		if qerr = r.svc.WriteFile(r.ctx, alice, team, "/big"+string(rune('a'+i%26))+string(rune('a'+i/26)), strings.NewReader(big), int64(len(big)), 0o644, time.Time{}); qerr != nil {
			break
		}
	}
	if !errors.Is(qerr, docker.ErrQuota) {
		t.Fatalf("70 MiB into a 64 MiB workspace: %v", qerr)
	}
}

func TestSharedDataTAReads(t *testing.T) {
	r := newSharedRig(t, func(c *docker.Config) { c.TAFileAccess = true })
	team := backend.InGroup("os/team-a")
	put := func(id backend.Identity, place backend.Place, p, body string) error {
		return r.svc.WriteFile(r.ctx, id, place, p, strings.NewReader(body), int64(len(body)), 0o644, time.Time{})
	}
	read := func(id backend.Identity, place backend.Place, p string) (string, error) {
		rc, _, err := r.svc.ReadFile(r.ctx, id, place, p)
		if err != nil {
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}
	if err := put(alice, team, "/plan.txt", "team plan"); err != nil {
		t.Fatal(err)
	}
	if err := put(alice, backend.Home, "/essay.txt", "my essay"); err != nil {
		t.Fatal(err)
	}
	// The TA reads both, changes neither.
	if got, err := read(tina, team, "/plan.txt"); err != nil || got != "team plan" {
		t.Fatalf("the TA reads the workspace: %q %v", got, err)
	}
	if got, err := read(tina, backend.InHomeOf("alice"), "/essay.txt"); err != nil || got != "my essay" {
		t.Fatalf("the TA reads alice's home: %q %v", got, err)
	}
	for _, place := range []backend.Place{team, backend.InHomeOf("alice")} {
		if err := put(tina, place, "/ta.txt", "x"); !errors.Is(err, docker.ErrPermission) {
			t.Errorf("the TA writes %+v: %v", place, err)
		}
		if err := r.svc.RemovePath(r.ctx, tina, place, "/plan.txt"); !errors.Is(err, docker.ErrPermission) {
			t.Errorf("the TA removes in %+v: %v", place, err)
		}
	}
	if gs, err := r.svc.MyGroups(r.ctx, tina); err != nil || !slices.Equal(gs, []string{"os/team-a", "os/team-b"}) {
		t.Fatalf("the TA's groups in the tree: %v %v", gs, err)
	}
	// Students never; nor a home nobody has (and none is made for it).
	if _, err := read(carol, backend.InHomeOf("alice"), "/essay.txt"); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("a student reads alice's home: %v", err)
	}
	if _, err := read(tina, backend.InHomeOf("nobody"), "/x"); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("the home of nobody: %v", err)
	}
	if _, err := r.cli.VolumeInspect(r.ctx, r.svc.Config().NamePrefix+"-home-nobody", client.VolumeInspectOptions{}); err == nil {
		t.Fatal("a home volume was made for a name a TA typed")
	}

	// Off (the default): the TA is not a member, and homes are not a place.
	off := newSharedRig(t)
	if err := off.svc.WriteFile(off.ctx, alice, team, "/plan.txt", strings.NewReader("p"), 1, 0o644, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := off.svc.ReadFile(off.ctx, tina, team, "/plan.txt"); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("the TA reads a workspace with the access off: %v", err)
	}
	if _, _, err := off.svc.ReadFile(off.ctx, tina, backend.InHomeOf("alice"), "/essay.txt"); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("the TA reads a home with the access off: %v", err)
	}
}

func TestSharedDataConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*docker.Config)
		want string
	}{
		{"no source", func(c *docker.Config) { c.Datasets = []docker.Dataset{{Name: "d"}} }, "exactly one of HostPath and Volume"},
		{"both sources", func(c *docker.Config) { c.Datasets = []docker.Dataset{{Name: "d", HostPath: "/srv/d", Volume: "v"}} }, "exactly one"},
		{"relative", func(c *docker.Config) { c.Datasets = []docker.Dataset{{Name: "d", HostPath: "srv/d"}} }, "HostPath"},
		{"socket", func(c *docker.Config) { c.Datasets = []docker.Dataset{{Name: "d", HostPath: "/var/run/docker.sock"}} }, "Docker socket"},
		{"bad name", func(c *docker.Config) { c.Datasets = []docker.Dataset{{Name: "D/x", HostPath: "/srv/d"}} }, "Name"},
		{"twice", func(c *docker.Config) {
			c.Datasets = []docker.Dataset{{Name: "d", HostPath: "/srv/d"}, {Name: "d", HostPath: "/srv/e"}}
		}, "used twice"},
		{"same target", func(c *docker.Config) {
			c.Datasets = []docker.Dataset{{Name: "d", HostPath: "/srv/d"}, {Name: "e", HostPath: "/srv/e", Target: "/datasets/d"}}
		}, "also the target"},
		{"over homes", func(c *docker.Config) {
			c.Datasets = []docker.Dataset{{Name: "d", HostPath: "/srv/d", Target: "/home/data"}}
		}, "homes are mounted"},
		{"bad role", func(c *docker.Config) {
			c.Datasets = []docker.Dataset{{Name: "d", HostPath: "/srv/d", Roles: []string{"admin"}}}
		}, "Roles"},
		{"pattern first", func(c *docker.Config) { c.Groups = []docker.GroupWorkspace{{Group: "*/x"}} }, "Group"},
		{"tiny size", func(c *docker.Config) { c.Groups = []docker.GroupWorkspace{{Group: "a/b", Size: 10}} }, "Size"},
		{"no {group}", func(c *docker.Config) { c.Groups = []docker.GroupWorkspace{{Group: "a/b", Target: "/team"}} }, "{group}"},
		{"{group} inside a name", func(c *docker.Config) { c.Groups = []docker.GroupWorkspace{{Group: "a/b", Target: "/team-{group}"}} }, "whole part"},
		{"dataset among workspaces", func(c *docker.Config) {
			c.Datasets = []docker.Dataset{{Name: "d", HostPath: "/srv/d", Target: "/groups/d"}}
			c.Groups = []docker.GroupWorkspace{{Group: "a/b"}}
		}, "where group workspaces appear"},
	} {
		cfg := docker.DefaultConfig()
		tc.set(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	cfg := docker.DefaultConfig()
	cfg.Datasets = []docker.Dataset{{Name: "imagenet", Volume: "imagenet-2026", Roles: []string{"ta"}}}
	cfg.Groups = []docker.GroupWorkspace{{Group: "os-2026/team-*", Size: 10 << 30}}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
}

// A container with a group workspace starts only with a membership check: the Docker API
// door refuses restart policies for it, and one the engine starts by itself (a restart
// policy it had from before, the engine's own restart) is stopped when its owner has left
// the group, and the owner is told.
func TestGroupWorkspaceEngineStarts(t *testing.T) {
	r := newSharedRig(t)
	body := func(policy string) []byte {
		retries := "0"
		if policy == "on-failure" {
			retries = "3"
		}
		return []byte(`{"Image":"` + r.img + `","Cmd":["sleep","600"],"HostConfig":{"RestartPolicy":{"Name":"` + policy + `","MaximumRetryCount":` + retries + `}}}`)
	}
	_, err := r.svc.CreateFromAPI(r.ctx, alice, "restarts", body("on-failure"))
	if !errors.Is(err, docker.ErrPermission) || !strings.Contains(err.Error(), "--restart") || !strings.Contains(err.Error(), "os/team-a") ||
		strings.Contains(err.Error(), "\n") {
		t.Fatalf("a restart policy with a group workspace: %v", err)
	}
	if _, err := r.svc.Inspect(r.ctx, alice, "restarts"); !errors.Is(err, docker.ErrNotFound) {
		t.Fatalf("the refused container exists: %v", err)
	}
	if _, err := r.svc.CreateFromAPI(r.ctx, alice, "norestart", body("no")); err != nil {
		t.Fatalf("restart policy no: %v", err)
	}
	if _, err := r.svc.CreateFromAPI(r.ctx, tina, "restarts", body("on-failure")); err != nil {
		t.Fatalf("a restart policy without a group workspace: %v", err)
	}

	// Containers from before, with a restart policy: the engine starts them by itself.
	a := r.run(alice, docker.RunSpec{Name: "a1", Cmd: []string{"sleep", "600"}})
	b := r.run(bob, docker.RunSpec{Name: "b1", Cmd: []string{"sleep", "600"}})
	policy := &container.RestartPolicy{Name: container.RestartPolicyOnFailure, MaximumRetryCount: 3}
	for _, c := range []docker.Container{a, b} {
		if _, err := r.cli.ContainerUpdate(r.ctx, c.ID, client.ContainerUpdateOptions{RestartPolicy: policy}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.cli.ContainerKill(r.ctx, c.ID, client.ContainerKillOptions{Signal: "KILL"}); err != nil {
			t.Fatal(err)
		}
	}
	r.gl.SetMember("os/team-a", r.users["alice"], 0)
	// The engine's own start, as after a crash or a reboot with a restart policy.
	if _, err := r.cli.ContainerStart(r.ctx, a.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.cli.ContainerStart(r.ctx, b.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		ins, err := r.cli.ContainerInspect(r.ctx, a.ID, client.ContainerInspectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !ins.Container.State.Running && !ins.Container.State.Restarting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("alice's container runs on with the workspace of a group she left")
		}
		time.Sleep(100 * time.Millisecond)
	}
	notices, _ := r.svc.Notices(alice)
	if i := slices.IndexFunc(notices, func(n docker.Notice) bool {
		return n.Container == "a1" && n.Action == "stop" && n.By == "whalemountain" && strings.Contains(n.Reason, "os/team-a")
	}); i < 0 {
		t.Errorf("alice is not told why: %+v", notices)
	}
	// It stays stopped: the restart policy does not start it again after a stop.
	time.Sleep(2 * time.Second)
	if ins, _ := r.cli.ContainerInspect(r.ctx, a.ID, client.ContainerInspectOptions{}); ins.Container.State.Running {
		t.Error("alice's container started again")
	}
	// bob is still a member: his runs on.
	if ins, _ := r.cli.ContainerInspect(r.ctx, b.ID, client.ContainerInspectOptions{}); !ins.Container.State.Running {
		t.Errorf("bob's container, still a member, was stopped: %+v", ins.Container.State)
	}
}

// With a workspace directory and root, a workspace with a size gets a file system of that
// size: writes from inside containers stop at the limit, not only uploads.
func TestGroupWorkspaceFileSystemLimit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("a file system of its own per workspace needs the server to run as root (the README's fallback applies)")
	}
	r := newSharedRig(t)
	dir := t.TempDir()
	// Before the directory goes; the rig's containers may still use the mounts then, so
	// they are detached lazily and let go when their last user goes.
	t.Cleanup(func() {
		entries, _ := os.ReadDir(dir)
		for _, e := range entries {
			if e.IsDir() {
				if err := syscall.Unmount(filepath.Join(dir, e.Name()), syscall.MNT_DETACH); err != nil {
					t.Errorf("unmount %s: %v", e.Name(), err)
				}
			}
		}
	})
	if err := r.svc.SetWorkspaceDir(dir); err != nil {
		t.Fatal(err)
	}
	r.run(alice, docker.RunSpec{Name: "a1", Cmd: []string{"sleep", "600"}})
	r.run(bob, docker.RunSpec{Name: "b1", Cmd: []string{"sleep", "600"}})
	gs, err := r.svc.Groups(r.ctx, alice)
	if err != nil || len(gs) != 1 || gs[0].Quota != docker.QuotaFilesystem {
		t.Fatalf("groups: %+v %v", gs, err)
	}
	out, code := r.sh(alice, "a1", "dd if=/dev/zero of=/groups/os/team-a/big bs=1M count=100 2>&1; echo; df -k /groups/os/team-a | tail -1")
	if code == 0 && !strings.Contains(out, "No space left") {
		t.Fatalf("100 MiB into a 64 MiB workspace from inside a container: %q", out)
	}
	if !strings.Contains(out, "No space left") {
		t.Errorf("the write did not stop for want of space: %q", out)
	}
	out, code = r.sh(bob, "b1", "wc -c < /groups/os/team-a/big")
	if n, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64); code != 0 || err != nil || n == 0 || n > 64<<20 {
		t.Errorf("bob sees %q (%d) of what alice wrote into a 64 MiB workspace", out, code)
	}
	// Uploads meet the same limit; removing makes room again.
	if err := r.svc.WriteFile(r.ctx, bob, backend.InGroup("os/team-a"), "/more", strings.NewReader(strings.Repeat("x", 1<<20)), 1<<20, 0o644, time.Time{}); err == nil {
		t.Error("an upload into a full workspace succeeded")
	}
	if out, code := r.sh(alice, "a1", "rm /groups/os/team-a/big && echo ok > /groups/os/team-a/small && cat /groups/os/team-a/small"); code != 0 || strings.TrimSpace(out) != "ok" {
		t.Errorf("after removing: %d %q", code, out)
	}
	// The volume binds the data directory inside the file system, never the host's disk.
	v, err := r.cli.VolumeInspect(r.ctx, docker.GroupVolumeName(r.svc, "os/team-a"), client.VolumeInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dev := v.Volume.Options["device"]; !strings.HasPrefix(dev, dir+"/") || filepath.Base(dev) != "data" {
		t.Errorf("the workspace volume binds %q", dev)
	}
}
