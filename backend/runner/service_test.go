package runner

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/gitlab"
	"whalemountain/backend/kube"
)

// fakeGitLab knows some runner tokens.
type fakeGitLab struct {
	mu      sync.Mutex
	valid   map[string]bool
	deleted []string
}

func (g *fakeGitLab) VerifyRunner(_ context.Context, token string) (int64, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.valid[token] {
		return 0, gitlab.ErrRunnerToken
	}
	return int64(len(token)), nil
}

func (g *fakeGitLab) DeleteRunner(_ context.Context, token string) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.deleted = append(g.deleted, token)
	return nil
}

// fakeContainers keeps runner containers in memory.
type fakeContainers struct {
	mu      sync.Mutex
	runners map[string]docker.RunnerContainer // owner/name
	specs   []docker.RunnerSpec
	ops     []string
	log     string // what RunnerLogs answers; "log\n" when empty
}

func (c *fakeContainers) CreateRunner(_ context.Context, spec docker.RunnerSpec) (docker.RunnerContainer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := docker.RunnerContainer{ID: spec.Owner + "-" + spec.Name, Owner: spec.Owner, Name: spec.Name, Project: spec.Project, State: "running"}
	c.runners[spec.Owner+"/"+spec.Name] = r
	c.specs = append(c.specs, spec)
	return r, nil
}

func (c *fakeContainers) Runners(_ context.Context, owner string) ([]docker.RunnerContainer, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []docker.RunnerContainer
	for _, r := range c.runners {
		if owner == "" || r.Owner == owner {
			out = append(out, r)
		}
	}
	return out, nil
}

func (c *fakeContainers) op(what, owner, name string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.runners[owner+"/"+name]; !ok {
		return docker.ErrNotFound
	}
	c.ops = append(c.ops, what+" "+owner+"/"+name)
	if what == "rm" {
		delete(c.runners, owner+"/"+name)
	}
	return nil
}

func (c *fakeContainers) RemoveRunner(_ context.Context, owner, name string) error {
	return c.op("rm", owner, name)
}
func (c *fakeContainers) RestartRunner(_ context.Context, owner, name string) error {
	return c.op("restart", owner, name)
}
func (c *fakeContainers) StopRunner(_ context.Context, owner, name string) error {
	return c.op("stop", owner, name)
}
func (c *fakeContainers) RunnerLogs(_ context.Context, owner, name string, _ docker.LogOptions) (io.ReadCloser, error) {
	if err := c.op("logs", owner, name); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.log != "" {
		return io.NopCloser(strings.NewReader(c.log)), nil
	}
	return io.NopCloser(strings.NewReader("log\n")), nil
}

var (
	alice  = backend.Identity{User: "alice", Role: backend.RoleStudent}
	bob    = backend.Identity{User: "bob", Role: backend.RoleStudent}
	tanaka = backend.Identity{User: "tanaka", Role: backend.RoleTA}
)

func newTestService(t *testing.T) (*Service, *fakeGitLab, *fakeContainers, chan backend.Identity) {
	t.Helper()
	dir, err := os.MkdirTemp("", "wmr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cfg := DefaultConfig()
	cfg.Image, cfg.GitLabURL, cfg.Dir, cfg.MaxRunners = "gitlab/gitlab-runner:v17.11.0", "https://gitlab.example.org", dir, 1
	gl := &fakeGitLab{valid: map[string]bool{}}
	ctr := &fakeContainers{runners: map[string]docker.RunnerContainer{}}
	served := make(chan backend.Identity, 4)
	svc, err := New(cfg, gl, ctr, func(_ context.Context, id backend.Identity, conn net.Conn) {
		served <- id
		_, _ = conn.Write([]byte("ok"))
	}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	return svc, gl, ctr, served
}

// TestServiceTokenSocketAndOwnership: a token is checked, stored 0600 beside a socket that
// serves its owner only; another student reaches the runner by no name; a TA needs a reason.
func TestServiceTokenSocketAndOwnership(t *testing.T) {
	ctx := context.Background()
	svc, gl, ctr, served := newTestService(t)
	token := "glrt-" + strings.Repeat("a", 20)

	if _, err := svc.SetToken(ctx, alice, "alice/demo", token); !errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), token) {
		t.Errorf("a token GitLab does not know: %v", err)
	}
	if len(ctr.specs) != 0 {
		t.Fatal("a refused token made a runner")
	}
	gl.valid[token] = true
	r, err := svc.SetToken(ctx, alice, "alice/demo", token)
	if err != nil || r.Name != "alice-demo" || r.Owner != "alice" {
		t.Fatalf("SetToken: %+v, %v", r, err)
	}
	spec := ctr.specs[0]
	if spec.ConfigDir != svc.dir("alice", "alice-demo") || spec.ConfigTarget != ConfigTarget || spec.Image != svc.cfg.Image {
		t.Errorf("runner spec %+v", spec)
	}
	for _, name := range []string{"config.toml", "runner.json"} {
		fi, err := os.Stat(filepath.Join(spec.ConfigDir, name))
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v", name, err, fi)
		}
	}
	if fi, err := os.Stat(spec.ConfigDir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("runner directory: %v %v", err, fi)
	}
	// The socket serves alice's API, as alice the student, through her runner.
	conn, err := net.Dial("unix", svc.SocketPath("alice", "alice-demo"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.ReadAll(conn)
	conn.Close()
	if id := <-served; id.User != "alice" || id.Role != backend.RoleStudent || id.KeySource != backend.KeySourceRunner {
		t.Errorf("the socket served %+v", id)
	}

	// The per-user quota.
	if _, err := svc.SetToken(ctx, alice, "alice/other", token); !errors.Is(err, ErrQuota) {
		t.Errorf("a second runner: %v", err)
	}
	// bob: alice's runner by name, project path and owner reads as none at all.
	for _, ref := range []string{"alice-demo", "alice/demo", ""} {
		for name, err := range map[string]error{
			"restart": svc.Restart(ctx, bob, "alice", ref, ""),
			"stop":    svc.Stop(ctx, bob, "alice", ref, ""),
			"rm":      svc.Remove(ctx, bob, "alice", ref, ""),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("bob's %s of alice's %q: %v", name, ref, err)
			}
		}
		if _, err := svc.Logs(ctx, bob, "alice", ref, false, 0); !errors.Is(err, ErrNotFound) {
			t.Errorf("bob's logs of alice's %q: %v", ref, err)
		}
	}
	if list, _ := svc.List(ctx, bob, true); len(list) != 0 {
		t.Errorf("bob's list --all: %+v", list)
	}
	if list, _ := svc.List(ctx, tanaka, true); len(list) != 1 {
		t.Errorf("a TA's list --all: %+v", list)
	}
	if err := svc.Stop(ctx, tanaka, "alice", "alice-demo", ""); !errors.Is(err, ErrInvalid) {
		t.Errorf("a TA's stop without a reason: %v", err)
	}
	if err := svc.Stop(ctx, tanaka, "alice", "alice-demo", "runaway jobs"); err != nil {
		t.Errorf("a TA's stop with a reason: %v", err)
	}
	if got := strings.Join(ctr.ops, ","); got != "stop alice/alice-demo" {
		t.Errorf("container operations: %s", got)
	}

	// rm: unregistered with its own token, files and socket gone.
	if err := svc.Remove(ctx, alice, "alice", "", ""); err != nil {
		t.Fatal(err)
	}
	if len(gl.deleted) != 1 || gl.deleted[0] != token {
		t.Errorf("GitLab deletes: %d", len(gl.deleted))
	}
	if _, err := os.Stat(spec.ConfigDir); !os.IsNotExist(err) {
		t.Errorf("runner rm left its directory: %v", err)
	}
	if svc.Serving("alice", "alice-demo") {
		t.Error("runner rm left the socket served")
	}
}

// flakyContainers cannot list runners until up is set.
type flakyContainers struct {
	*fakeContainers
	mu sync.Mutex
	up bool
}

func (c *flakyContainers) Runners(ctx context.Context, owner string) ([]docker.RunnerContainer, error) {
	c.mu.Lock()
	up := c.up
	c.mu.Unlock()
	if !up {
		return nil, docker.ErrUnavailable
	}
	return c.fakeContainers.Runners(ctx, owner)
}

// TestStartRetries: runners already there get their sockets served once the engine answers,
// even when it did not at start.
func TestStartRetries(t *testing.T) {
	ctx := context.Background()
	svc, gl, ctr, _ := newTestService(t)
	token := "glrt-" + strings.Repeat("b", 20)
	gl.valid[token] = true
	if _, err := svc.SetToken(ctx, alice, "alice/demo", token); err != nil {
		t.Fatal(err)
	}
	svc.Close()

	// A new server over the same directory, the engine down at first.
	flaky := &flakyContainers{fakeContainers: ctr}
	again, err := New(svc.cfg, gl, flaky, func(context.Context, backend.Identity, net.Conn) {}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer again.Close()
	again.retry = 10 * time.Millisecond
	if err := again.Start(ctx); err == nil {
		t.Fatal("Start reported no trouble with the engine down")
	}
	if again.Serving("alice", "alice-demo") {
		t.Fatal("serving before the engine answered")
	}
	flaky.mu.Lock()
	flaky.up = true
	flaky.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for !again.Serving("alice", "alice-demo") {
		if time.Now().After(deadline) {
			t.Fatal("the runner's socket was never served once the engine answered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fakePods keeps runner pods in memory.
type fakePods struct {
	mu    sync.Mutex
	pods  map[string]kube.RunnerPod // owner/name
	specs []kube.RunnerSpec
	ops   []string
}

func (p *fakePods) CreateRunner(_ context.Context, spec kube.RunnerSpec) (kube.RunnerPod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := kube.RunnerPod{Owner: spec.Owner.User, Name: spec.Name, Project: spec.Project, Namespace: "wm-" + spec.Owner.User, State: "running", Status: "Running"}
	p.pods[r.Owner+"/"+r.Name] = r
	p.specs = append(p.specs, spec)
	return r, nil
}

func (p *fakePods) Runners(_ context.Context, owner string) ([]kube.RunnerPod, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []kube.RunnerPod
	for _, r := range p.pods {
		if owner == "" || r.Owner == owner {
			out = append(out, r)
		}
	}
	return out, nil
}

func (p *fakePods) op(what, owner, name string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.pods[owner+"/"+name]; !ok {
		return kube.ErrNotFound
	}
	p.ops = append(p.ops, what+" "+owner+"/"+name)
	if what == "rm" {
		delete(p.pods, owner+"/"+name)
	}
	return nil
}

func (p *fakePods) RemoveRunner(_ context.Context, owner, name string) error {
	return p.op("rm", owner, name)
}
func (p *fakePods) StopRunner(_ context.Context, owner, name string) error {
	return p.op("stop", owner, name)
}
func (p *fakePods) RunnerLogs(_ context.Context, owner, name string, _ kube.LogOptions) (io.ReadCloser, error) {
	if err := p.op("logs", owner, name); err != nil {
		return nil, err
	}
	return io.NopCloser(strings.NewReader("log\n")), nil
}
func (p *fakePods) RunnerNamespace(owner string) string { return "wm-" + owner }

// TestServiceKubernetesRunner: runner token --kubernetes runs the runner as a pod in the
// owner's namespace with a config.toml for the kubernetes executor there; no socket is
// served; it is listed with the same states, reached by its owner only, and a new token
// for the same project without --kubernetes keeps it a pod; a token asked with the docker
// executor replaces it, leaving nothing of the pod; without pods, --kubernetes is refused.
func TestServiceKubernetesRunner(t *testing.T) {
	ctx := context.Background()
	svc, gl, ctr, _ := newTestService(t)
	token := "glrt-" + strings.Repeat("k", 20)
	gl.valid[token] = true
	if _, err := svc.SetTokenWith(ctx, alice, "alice/demo", token, ExecutorKubernetes); !errors.Is(err, ErrUnavailable) || len(ctr.specs) != 0 {
		t.Fatalf("--kubernetes without pods: %v", err)
	}
	pods := &fakePods{pods: map[string]kube.RunnerPod{}}
	svc.pods = pods

	r, err := svc.SetTokenWith(ctx, alice, "alice/demo", token, ExecutorKubernetes)
	if err != nil || r.Executor != ExecutorKubernetes || r.Namespace != "wm-alice" || r.State != "running" {
		t.Fatalf("SetTokenWith kubernetes: %+v, %v", r, err)
	}
	if len(ctr.specs) != 0 || svc.Serving("alice", "alice-demo") {
		t.Error("a kubernetes runner got a container or a socket")
	}
	spec := pods.specs[0]
	toml := string(spec.ConfigTOML)
	for _, want := range []string{`executor = "kubernetes"`, `namespace = "wm-alice"`, `namespace_overwrite_allowed = ""`,
		`service_account_overwrite_allowed = ""`, `privileged = false`, `allow_privilege_escalation = false`, `drop = ["ALL"]`, `token = "` + token + `"`} {
		if !strings.Contains(toml, want) {
			t.Errorf("the kubernetes config.toml lacks %s:\n%s", want, toml)
		}
	}
	if spec.Owner.User != "alice" || spec.Image != svc.cfg.Image || spec.CPUs != svc.cfg.CPUs || spec.Memory != svc.cfg.Memory {
		t.Errorf("runner pod spec %+v", spec)
	}
	list, err := svc.List(ctx, alice, false)
	if err != nil || len(list) != 1 || list[0].Executor != ExecutorKubernetes || list[0].State != "running" || !strings.Contains(list[0].Status, "wm-alice") {
		t.Errorf("alice's list: %+v %v", list, err)
	}
	// The per-user quota counts it.
	if _, err := svc.SetToken(ctx, alice, "alice/other", token); !errors.Is(err, ErrQuota) {
		t.Errorf("a second runner past the quota: %v", err)
	}
	// attack: bob reaches it by no name.
	for _, ref := range []string{"alice-demo", "alice/demo", ""} {
		for name, err := range map[string]error{
			"restart": svc.Restart(ctx, bob, "alice", ref, ""),
			"stop":    svc.Stop(ctx, bob, "alice", ref, ""),
			"rm":      svc.Remove(ctx, bob, "alice", ref, ""),
		} {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("attack: bob's %s of alice's kubernetes runner %q: %v", name, ref, err)
			}
		}
	}
	if len(pods.ops) != 0 {
		t.Errorf("bob's tries reached the cluster: %v", pods.ops)
	}
	// Its owner: logs, stop, restart (made again from the record).
	if rc, err := svc.Logs(ctx, alice, "alice", "", false, 0); err != nil {
		t.Errorf("logs: %v", err)
	} else {
		rc.Close()
	}
	if err := svc.Stop(ctx, alice, "alice", "", ""); err != nil {
		t.Errorf("stop: %v", err)
	}
	if err := svc.Restart(ctx, alice, "alice", "", ""); err != nil || len(pods.specs) != 2 {
		t.Errorf("restart: %v (%d creates)", err, len(pods.specs))
	}
	// A new token without --kubernetes keeps it a pod.
	if r, err := svc.SetToken(ctx, alice, "alice/demo", token); err != nil || r.Executor != ExecutorKubernetes || len(ctr.specs) != 0 {
		t.Errorf("a new token, no flag: %+v %v", r, err)
	}
	// The docker executor asked for: the pod and its objects go, a container comes.
	if r, err := svc.SetTokenWith(ctx, alice, "alice/demo", token, ExecutorDocker); err != nil || r.Executor != ExecutorDocker || len(ctr.specs) != 1 {
		t.Fatalf("to docker: %+v %v", r, err)
	}
	if ps, _ := pods.Runners(ctx, "alice"); len(ps) != 0 {
		t.Errorf("the pod outlived the switch to docker: %+v", ps)
	}
	// And back; then rm leaves nothing.
	if _, err := svc.SetTokenWith(ctx, alice, "alice/demo", token, ExecutorKubernetes); err != nil {
		t.Fatal(err)
	}
	if cs, _ := ctr.Runners(ctx, "alice"); len(cs) != 0 || svc.Serving("alice", "alice-demo") {
		t.Errorf("the container or socket outlived the switch to kubernetes: %+v", cs)
	}
	if err := svc.Remove(ctx, alice, "alice", "", ""); err != nil {
		t.Fatal(err)
	}
	if ps, _ := pods.Runners(ctx, "alice"); len(ps) != 0 {
		t.Errorf("runner rm left the pod: %+v", ps)
	}
	if _, err := os.Stat(svc.dir("alice", "alice-demo")); !os.IsNotExist(err) {
		t.Errorf("runner rm left its directory: %v", err)
	}
	if _, err := svc.SetTokenWith(ctx, alice, "alice/demo", token, "podman"); !errors.Is(err, ErrInvalid) {
		t.Errorf("an unknown executor: %v", err)
	}
}
