package main

import (
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

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
	"whalemountain/backend/gitlab"
	"whalemountain/backend/gitlab/gitlabtest"
	"whalemountain/backend/runner/runnertest"
)

// runnerTimeout bounds the waits on a runner: its start, its first poll, a job.
const runnerTimeout = 90 * time.Second

// runnerFixture is a server with personal runners on, the GitLab stand-in (reachable from
// containers), alice with project alice/demo and bob with bob/lab.
type runnerFixture struct {
	t          *testing.T
	s          *ctrServer
	gl         *gitlabtest.Server
	alice, bob *testKey
	demo, lab  int64 // project IDs
	img        string
}

// dockerBridgeIP is the host's address on the engine's default bridge, which containers on
// any bridge network reach the host by.
func dockerBridgeIP(t *testing.T) string {
	t.Helper()
	ifc, err := net.InterfaceByName("docker0")
	if err != nil {
		t.Fatalf("the engine's bridge docker0 (containers reach the GitLab stand-in through it): %v", err)
	}
	addrs, _ := ifc.Addrs()
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			return ipn.IP.String()
		}
	}
	t.Fatal("docker0 has no IPv4 address")
	return ""
}

func newRunnerFixture(t *testing.T, tag, dockerLines string) *runnerFixture {
	t.Helper()
	return newRunnerFixtureWith(t, tag, dockerLines, "", "")
}

// newRunnerFixtureWith is newRunnerFixture with registry ("host:port", "" for GitLab's
// stand-in name, which nothing serves) as GitLab's registry, the users' registry namespace
// and an internal registry, and more top-level configuration lines.
func newRunnerFixtureWith(t *testing.T, tag, dockerLines, registry, moreTop string) *runnerFixture {
	t.Helper()
	needTools(t, "docker")
	sshBinary(t)
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	runnerImg := runnertest.Image(ctx, t, cli)
	hostIP := dockerBridgeIP(t)

	gl := gitlabtest.New(gitlabtest.WithListenAddress("0.0.0.0:0"), gitlabtest.WithRegistryHost(registry))
	t.Cleanup(gl.Close)
	_, port, err := net.SplitHostPort(strings.TrimPrefix(gl.URL(), "http://"))
	if err != nil {
		t.Fatal(err)
	}
	f := &runnerFixture{t: t, gl: gl, alice: newKey(t, "alice"), bob: newKey(t, "bob"), img: img}
	aliceID := gl.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{{Key: f.alice.AuthorizedKey()}}})
	bobID := gl.AddUser(gitlabtest.User{Username: "bob", Keys: []gitlabtest.Key{{Key: f.bob.AuthorizedKey()}}})
	f.demo = gl.AddProject(aliceID, "demo", true)
	f.lab = gl.AddProject(bobID, "lab", true)
	top := fmt.Sprintf("limits:\n  failures_per_minute: 1000\ngitlab:\n  url: http://127.0.0.1:%s\n  request_timeout: 5s\n"+
		"runners:\n  enabled: true\n  image: %s\n  gitlab_url: http://%s:%s\n  job_image: %s\n  max_per_user: 1\n  server_creates: true\n"+
		"images:\n  registry_namespace: %s\n",
		port, runnerImg, hostIP, port, img, gl.RegistryHost())
	if registry != "" {
		top += "  internal_registries: [" + registry + "]\n"
	}
	top += moreTop
	f.s = startContainerServer(t, cli, img, containerPrefix(tag), ctrOptions{Top: top, Docker: dockerLines})
	return f
}

// setToken gives user's runner for project the token on stdin.
func (f *runnerFixture) setToken(key *testKey, user, project, token string) sshResult {
	f.t.Helper()
	return f.s.sshStdin(f.t, key, user, token+"\n", "runner", "token", "--project", project)
}

// runnerDir is where the server keeps user's runner name.
func (f *runnerFixture) runnerDir(user, name string) string {
	return filepath.Join(f.s.DataDir, "runners", user, name)
}

// waitPolling waits until GitLab has seen the runner ask for jobs.
func (f *runnerFixture) waitPolling(key *testKey, user string, runnerID int64) {
	f.t.Helper()
	if !poll(runnerTimeout, func() bool { return f.gl.Runner(runnerID).Requests > 0 }) {
		f.t.Fatalf("%s's runner never asked GitLab for a job; runner logs:\n%s", user, f.s.run(f.t, key, user, "runner", "logs"))
	}
}

// jobContainers are user's containers the runner made for jobs, as the engine has them.
func (f *runnerFixture) jobContainers(user string) []container.Summary {
	f.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	flt := f.s.filters(user, "")
	flt.Add("label", "com.gitlab.gitlab-runner.type=build")
	res, err := f.s.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: flt})
	if err != nil {
		f.t.Fatal(err)
	}
	return res.Items
}

// TestE2ERunner: a student's own GitLab runner end to end, with real ssh, the real engine,
// the GitLab stand-in and the stand-in runner: the token from stdin only, checked with
// GitLab and stored 0600; the runner container hardened with its one mount, its directory;
// a job's container made through the owner's own Docker API is theirs (listed, counted in
// the quota, hardened, on their network, reachable with exec) and gone afterwards; a second
// student's runner runs a job at the same time; a new token restarts the runner; runner rm
// leaves nothing; the token is in no log, audit line or answer.
func TestE2ERunner(t *testing.T) {
	f := newRunnerFixture(t, "q", "  quotas:\n    student:\n      max_containers: 2\n      max_running: 2\n")
	s, alice, bob := f.s, f.alice, f.bob
	runnerID, token := f.gl.AddRunner(f.demo)
	bobRunnerID, bobToken := f.gl.AddRunner(f.lab)

	if out := s.mustRun(t, alice, "alice", "runner", "status"); !strings.Contains(out, "No runners") {
		t.Errorf("runner status before any token: %q", out)
	}
	// The token on the command line is refused without being repeated; a token GitLab does
	// not know is refused; nothing is made either way.
	r := s.run(t, alice, "alice", "runner", "token", token)
	if r.Code != 2 || !strings.Contains(r.Stderr, "never from the command line") || strings.Contains(r.Stderr+r.Stdout, token) {
		t.Errorf("runner token TOKEN: want exit 2 and a line that does not repeat it\n%s", r)
	}
	r = f.setToken(alice, "alice", "alice/demo", "glrt-"+strings.Repeat("z", 24))
	if r.Code != 2 || !strings.Contains(r.Stderr, "GitLab does not accept this runner token") {
		t.Errorf("unknown token: want exit 2 and GitLab's refusal\n%s", r)
	}
	r = f.setToken(alice, "alice", "alice/demo", "not-a-token")
	if r.Code != 2 || !strings.Contains(r.Stderr, "not a runner authentication token") {
		t.Errorf("malformed token: %s", r)
	}
	if n := len(s.engineContainers(t, "alice", "alice-demo")); n != 0 {
		t.Fatalf("%d runner containers after refused tokens", n)
	}

	// The token on stdin: checked with GitLab, the runner starts.
	r = f.setToken(alice, "alice", "alice/demo", token)
	if r.Code != 0 || !strings.Contains(r.Stdout, "runner alice-demo: token accepted by GitLab") {
		t.Fatalf("runner token on stdin: %s", r)
	}
	if f.gl.Runner(runnerID).Verifies == 0 {
		t.Error("the server started a runner without asking GitLab about its token")
	}
	rc := s.engineContainer(t, "alice", "alice-demo")
	ins := s.engineInspect(t, rc.ID)
	dir := f.runnerDir("alice", "alice-demo")
	checkRunnerContainer(t, s, ins, "alice", dir)
	for _, p := range []string{filepath.Join(dir, "config.toml"), filepath.Join(dir, "runner.json")} {
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v; want 0600", p, err, fi.Mode())
		}
	}
	toml, _ := os.ReadFile(filepath.Join(dir, "config.toml"))
	for _, want := range []string{`host = "unix:///etc/gitlab-runner/api/docker.sock"`, `privileged = false`, `token = "` + token + `"`} {
		if !strings.Contains(string(toml), want) {
			t.Errorf("config.toml lacks %s:\n%s", want, toml)
		}
	}
	for _, e := range s.psJSON(t, alice, "alice", "-a") {
		if e.Name == "alice-demo" {
			t.Errorf("the runner container is listed as a container of alice's: %+v", e)
		}
	}
	if out := s.mustRun(t, alice, "alice", "runner", "status"); !strings.Contains(out, "alice-demo") || !strings.Contains(out, "alice/demo") {
		t.Errorf("runner status: %q", out)
	}
	// One runner per student here: a second project is refused by that quota.
	r = f.setToken(alice, "alice", "alice/other", bobToken)
	if r.Code == 0 || !strings.Contains(r.Stderr, "quota: at most 1 runners per user") {
		t.Errorf("a second runner past the quota: %s", r)
	}
	f.waitPolling(alice, "alice", runnerID)

	// bob's runner, at the same time.
	if r := f.setToken(bob, "bob", "bob/lab", bobToken); r.Code != 0 {
		t.Fatalf("bob's runner token: %s", r)
	}
	f.waitPolling(bob, "bob", bobRunnerID)

	// alice has one container of her own; the job's container is her second, the last her
	// quota allows.
	s.mustRun(t, alice, "alice", "run", "--name", "box", f.img)
	job := f.gl.QueueJob(runnerID, gitlabtest.Job{Image: f.img, Script: []string{
		"echo JOB-OK-$CI_JOB_ID", "while [ ! -e /tmp/go ]; do sleep 0.1; done"}})
	bobJob := f.gl.QueueJob(bobRunnerID, gitlabtest.Job{Image: f.img, Script: []string{"echo BOB-JOB-$CI_PROJECT_PATH"}})
	var jobs []container.Summary
	if !poll(runnerTimeout, func() bool { jobs = f.jobContainers("alice"); return len(jobs) == 1 && jobs[0].State == "running" }) {
		t.Fatalf("alice's job container never ran: %+v\njob: %+v\nrunner logs:\n%s", jobs, f.gl.Job(job), s.run(t, alice, "alice", "runner", "logs"))
	}
	jobName := jobs[0].Labels[docker.LabelName]
	if got := jobs[0].Labels[docker.LabelRunner]; got != "alice-demo" {
		t.Errorf("the job container's runner label is %q, want alice-demo (set by the server)", got)
	}
	// Hardened like every container; its one host path is the socket directory of the
	// runner that made it, placed read-only by the server where config.toml asks (alice's
	// own Docker API).
	jobIns := s.engineInspect(t, jobs[0].ID)
	sock := filepath.Join(dir, "api")
	var others []container.MountPoint
	socketMounted := false
	for _, m := range jobIns.Mounts {
		if m.Type == "bind" && m.Source == sock && m.Destination == "/run/whalemountain" && !m.RW {
			socketMounted = true
			continue
		}
		others = append(others, m)
	}
	if !socketMounted {
		t.Errorf("the job container lacks its runner's socket directory %s at /run/whalemountain, read-only: %+v", sock, jobIns.Mounts)
	}
	jobIns.Mounts = others
	checkHardened(t, s, jobIns, "alice", jobName)
	if _, ok := findEntry(s.psJSON(t, alice, "alice"), "alice", jobName); !ok {
		t.Errorf("alice's job container %s is not in her ps", jobName)
	}
	if _, ok := findEntry(s.psJSON(t, bob, "bob", "-a"), "alice", jobName); ok {
		t.Errorf("bob sees alice's job container")
	}
	r = s.run(t, alice, "alice", "run", "--name", "extra", f.img)
	if r.Code == 0 || !strings.Contains(r.Stderr, "quota: at most 2 containers") {
		t.Errorf("the job container does not count in alice's quota: %s", r)
	}
	// runner status --json: the job running now, and GitLab's own view (the runner's ID from
	// the token check; this server's token may read it).
	type statusJob struct {
		Name  string `json:"name"`
		State string `json:"state"`
	}
	var st []struct {
		Online   string      `json:"online"`
		ViewFrom string      `json:"view_from"`
		JobsNow  []statusJob `json:"jobs_now"`
		Recent   []statusJob `json:"recent_jobs"`
	}
	status := func() bool {
		st = nil
		return json.Unmarshal([]byte(s.mustRun(t, alice, "alice", "runner", "status", "--json")), &st) == nil && len(st) == 1
	}
	if !poll(runnerTimeout, func() bool {
		return status() && st[0].Online == "online" && st[0].ViewFrom == "gitlab" && len(st[0].JobsNow) == 1 && st[0].JobsNow[0].Name == jobName
	}) {
		t.Errorf("runner status --json while %s runs: %+v", jobName, st)
	}
	s.mustRun(t, alice, "alice", "exec", jobName, "--", "touch", "/tmp/go")
	if !poll(runnerTimeout, func() bool { return f.gl.Job(job).State == "success" && f.gl.Job(bobJob).State == "success" }) {
		t.Fatalf("jobs did not succeed: alice %+v, bob %+v", f.gl.Job(job), f.gl.Job(bobJob))
	}
	if tr := f.gl.Job(job).Trace; !strings.Contains(tr, fmt.Sprintf("JOB-OK-%d", job)) {
		t.Errorf("alice's job trace: %q", tr)
	}
	if tr := f.gl.Job(bobJob).Trace; !strings.Contains(tr, "BOB-JOB-bob/lab") {
		t.Errorf("bob's job trace: %q", tr)
	}
	if !poll(pollTimeout, func() bool { return len(f.jobContainers("alice")) == 0 }) {
		t.Errorf("the job container outlived its job: %+v", f.jobContainers("alice"))
	}
	if !poll(runnerTimeout, func() bool {
		return status() && len(st[0].JobsNow) == 0 && len(st[0].Recent) == 1 && st[0].Recent[0].Name == jobName
	}) {
		t.Errorf("runner status --json after %s ended: %+v", jobName, st)
	}

	// A container made through alice's runner socket with the bind of its directory, as a
	// job's, talks to her API with the real docker CLI before the server's restart and
	// after it: the new server's socket appears in the directory the container has.
	cliImg := dockerCLIImage(t, f)
	rcli := newDockerCLI(t, s.server, alice, "alice").withHost("unix://" + filepath.Join(dir, "api", "docker.sock"))
	rcli.must("run", "-d", "--name", "keep", "-v", docker.RunnerSocketDirBind+":/run/whalemountain",
		"-e", "DOCKER_HOST=unix:///run/whalemountain/docker.sock", cliImg, "sleep", "600")
	apiFromInside := func(when string) {
		t.Helper()
		r := s.run(t, alice, "alice", "exec", "keep", "--", "docker", "ps", "--format", "{{.Names}}")
		if r.Code != 0 || !strings.Contains(r.Stdout, "keep") {
			t.Errorf("docker ps inside a container with the runner socket's directory, %s the server's restart: %s", when, r)
		}
	}
	apiFromInside("before")

	// A server restart: the runner keeps running, its socket is served again, jobs run.
	var cfgPath string
	for i, a := range s.cmd.Args {
		if a == "--config" && i+1 < len(s.cmd.Args) {
			cfgPath = s.cmd.Args[i+1]
		}
	}
	cfg, err := os.ReadFile(cfgPath)
	if err != nil {
		t.Fatalf("the first server's configuration: %v", err)
	}
	first := s
	first.stop(t)
	s = &ctrServer{server: startServer(t, serverOptions{Config: string(cfg), DataDir: first.DataDir}), cli: first.cli, img: first.img,
		prefix: first.prefix, labels: first.labels}
	f.s = s
	if st := s.engineInspect(t, rc.ID).State; st == nil || !st.Running {
		t.Errorf("the runner did not survive the server's restart: %+v", st)
	}
	apiFromInside("after")
	s.mustRun(t, alice, "alice", "rm", "-f", "keep") // the quota's room for the next job
	again := f.gl.QueueJob(runnerID, gitlabtest.Job{Image: f.img, Script: []string{"echo AFTER-RESTART"}})
	if !poll(runnerTimeout, func() bool { return f.gl.Job(again).State == "success" }) {
		t.Fatalf("a job after the server's restart: %+v\nrunner logs:\n%s", f.gl.Job(again), s.run(t, alice, "alice", "runner", "logs"))
	}

	runnerBuildJob(t, f, runnerID, cliImg)

	// A new token restarts the runner with it.
	before := rc.ID
	fresh := f.gl.Runner(runnerID)
	newToken := resetToken(t, f, runnerID)
	if r := f.setToken(alice, "alice", "alice/demo", newToken); r.Code != 0 {
		t.Fatalf("new token: %s", r)
	}
	after := s.engineContainer(t, "alice", "alice-demo")
	if after.ID == before {
		t.Error("a new token did not make the runner again")
	}
	if !poll(runnerTimeout, func() bool { return f.gl.Runner(runnerID).Requests > fresh.Requests }) {
		t.Error("the runner with the new token never polled")
	}

	// The Runner tab, on an 80x24 terminal over real ssh: the runner and its state; the
	// token input never draws what is typed.
	tm := s.openTerminal(t, alice, "alice", 80, 24)
	tm.waitText("Containers")
	tm.send("5")
	tm.waitFits(80, 24, "the Runner tab", "alice-demo", "alice/demo", "running", "t token")
	tm.send("t")
	tm.waitText("project:")
	tm.send("\r")
	tm.waitText("token for alice/demo (not shown)")
	tm.send(newToken[:12])
	lines := tm.waitText("token for alice/demo (not shown)")
	if strings.Contains(strings.Join(lines, "\n"), newToken[:12]) {
		t.Errorf("the token input drew what was typed:\n%s", strings.Join(lines, "\n"))
	}
	tm.send("\x1b")
	tm.waitGone("token for alice/demo")
	tm.send("q")
	tm.waitExit(sshTimeout)

	// runner rm: unregistered, container, files and socket gone.
	if out := s.mustRun(t, alice, "alice", "runner", "rm"); !strings.Contains(out, "removed") {
		t.Errorf("runner rm: %q", out)
	}
	if f.gl.Runner(runnerID).Exists {
		t.Error("runner rm left the runner registered in GitLab")
	}
	if n := len(s.engineContainers(t, "alice", "alice-demo")); n != 0 {
		t.Errorf("runner rm left %d containers", n)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("runner rm left %s: %v", dir, err)
	}

	// With the server's GitLab token: runner create (Maintainer at least), rotate, rm.
	r = s.run(t, alice, "alice", "runner", "create", "bob/lab")
	if r.Code == 0 || !strings.Contains(r.Stderr, "you must be at least Maintainer of bob/lab") {
		t.Errorf("runner create for bob's project: %s", r)
	}
	if out := s.mustRun(t, alice, "alice", "runner", "create", "alice/demo"); !strings.Contains(out, "created in GitLab for alice/demo") {
		t.Errorf("runner create: %q", out)
	}
	var made []struct {
		ID int64 `json:"gitlab_runner_id"`
	}
	if err := json.Unmarshal([]byte(s.mustRun(t, alice, "alice", "runner", "status", "--json")), &made); err != nil || len(made) != 1 || made[0].ID == 0 {
		t.Fatalf("runner status --json after create: %+v, %v", made, err)
	}
	created := f.gl.Runner(made[0].ID).Token
	s.mustRun(t, alice, "alice", "runner", "rotate")
	rotated := f.gl.Runner(made[0].ID).Token
	toml, _ = os.ReadFile(filepath.Join(dir, "config.toml"))
	if rotated == created || !strings.Contains(string(toml), rotated) {
		t.Errorf("runner rotate: GitLab's token changed %v, config.toml has the new one %v", rotated != created, strings.Contains(string(toml), rotated))
	}
	s.mustRun(t, alice, "alice", "runner", "rm")
	if f.gl.Runner(made[0].ID).Exists || len(s.engineContainers(t, "alice", "alice-demo")) != 0 {
		t.Error("runner rm of a created runner left it in GitLab or on the engine")
	}

	// The tokens appear in no log, no audit line, no answer.
	s.stop(t)
	secrets := []string{token, newToken, bobToken, created, rotated}
	checkNoSecret(t, first.Log(), "the first server's log", secrets...)
	checkNoSecret(t, s.Log(), "the server's log", secrets...)
	audit, _ := os.ReadFile(s.auditPath())
	checkNoSecret(t, string(audit), "the audit log", secrets...)
}

// resetToken resets runner id's token in GitLab as its owner would in the web page.
func resetToken(t *testing.T, f *runnerFixture, id int64) string {
	t.Helper()
	c, err := gitlab.New(f.gl.URL(), "", gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	tok, err := c.ResetRunnerToken(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// checkNoSecret fails when text holds any of the secrets.
func checkNoSecret(t *testing.T, text, where string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if sec != "" && strings.Contains(text, sec) {
			t.Errorf("%s holds a runner token", where)
		}
	}
}

// checkRunnerContainer checks a runner container as the engine has it: the owner's, kind
// runner, hardened, its one mount its own directory, no engine socket, the owner's network.
func checkRunnerContainer(t *testing.T, s *ctrServer, in container.InspectResponse, owner, dir string) {
	t.Helper()
	hc, cfg := in.HostConfig, in.Config
	switch {
	case cfg.Labels[docker.LabelOwner] != owner || cfg.Labels[docker.LabelKind] != docker.KindRunner:
		t.Errorf("runner labels %v", cfg.Labels)
	case hc.Privileged || len(hc.CapDrop) != 1 || hc.CapDrop[0] != "ALL":
		t.Errorf("runner privileged %v capdrop %v", hc.Privileged, hc.CapDrop)
	case !strings.Contains(strings.Join(hc.SecurityOpt, ","), "no-new-privileges:true"):
		t.Errorf("runner security options %v", hc.SecurityOpt)
	case hc.PidMode != "" || hc.NetworkMode.IsHost() || len(hc.Binds) > 0 || len(hc.Devices) > 0:
		t.Errorf("runner pid %q network %q binds %v devices %v", hc.PidMode, hc.NetworkMode, hc.Binds, hc.Devices)
	}
	if len(in.Mounts) != 1 || in.Mounts[0].Source != dir || in.Mounts[0].Destination != "/etc/gitlab-runner" {
		t.Errorf("runner mounts %+v, want only %s at /etc/gitlab-runner", in.Mounts, dir)
	}
	for _, m := range in.Mounts {
		if strings.HasSuffix(m.Source, "/docker.sock") && !strings.HasPrefix(m.Source, dir) {
			t.Errorf("the engine's socket is mounted: %+v", m)
		}
	}
	if _, ok := in.NetworkSettings.Networks[s.prefix+"-net-"+owner]; !ok || len(in.NetworkSettings.Networks) != 1 {
		t.Errorf("runner networks %v, want only %s-net-%s", in.NetworkSettings.Networks, s.prefix, owner)
	}
}

// dockerCLIImage is the test image with the real docker CLI (the host's) at /bin/docker.
func dockerCLIImage(t *testing.T, f *runnerFixture) string {
	t.Helper()
	bin, err := exec.LookPath("docker")
	if err != nil {
		t.Fatalf("the docker CLI: %v", err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return dockertest.ImageWithFiles(ctx, t, f.s.cli, "docker-cli", map[string][]byte{"bin/docker": data})
}

// runnerBuildJob: a job builds an image without privileges with the real docker CLI (copied
// into the job's image) through the socket the server mounts, its owner's own API named by
// DOCKER_HOST from config.toml: the tag lands in the owner's registry namespace; a tag or a
// push outside it is refused with one line; the job's own container binds nothing else.
func runnerBuildJob(t *testing.T, f *runnerFixture, runnerID int64, cliImg string) {
	t.Helper()
	tag := f.gl.RegistryHost() + "/alice/demo:" + f.s.prefix // of this run alone: tags are the engine's, shared
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		_, _ = f.s.cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true})
	})
	// The build line of runner template, as alice gets it, runs as printed (its push needs the
	// site's registry, which is not here).
	tpl := f.s.mustRun(t, f.alice, "alice", "runner", "template")
	if !strings.Contains(tpl, "your registry namespace, "+f.gl.RegistryHost()+"/alice/...") {
		t.Errorf("runner template does not name alice's namespace:\n%s", tpl)
	}
	const buildLine = `docker build -t "$IMAGE" .`
	if !strings.Contains(tpl, "\n    - "+buildLine+"\n") || !strings.Contains(tpl, "\n    - docker push \"$IMAGE\"\n") {
		t.Fatalf("runner template lacks the build and push lines:\n%s", tpl)
	}
	job := f.gl.QueueJob(runnerID, gitlabtest.Job{Image: cliImg, Variables: map[string]string{"IMAGE": tag}, Script: []string{
		`echo "HOST=$DOCKER_HOST"`,
		`mkdir -p /tmp/ctx && echo built-in-ci > /tmp/ctx/hello.txt && cd /tmp/ctx`,
		`printf 'FROM ` + f.img + `\nCOPY hello.txt /hello.txt\n' > Dockerfile`,
		buildLine,
		`if docker build -q -t otheruser/x:1 /tmp/ctx; then exit 1; fi`,
		`if docker push ` + f.gl.RegistryHost() + `/bob/lab:1; then exit 1; fi`,
		`if docker run --rm -v /var/run/docker.sock:/s ` + f.img + ` true; then exit 1; fi`,
	}})
	if !poll(runnerTimeout, func() bool { st := f.gl.Job(job).State; return st == "success" || st == "failed" }) || f.gl.Job(job).State != "success" {
		t.Fatalf("the build job: %+v\nrunner logs:\n%s", f.gl.Job(job), f.s.run(t, f.alice, "alice", "runner", "logs"))
	}
	tr := f.gl.Job(job).Trace
	for _, want := range []string{
		"HOST=unix:///run/whalemountain/docker.sock",
		"\nError response from daemon: build -t otheruser/x:1: only into your own registry namespace, " + f.gl.RegistryHost() + "/alice/...\n",
		"\nError response from daemon: push " + f.gl.RegistryHost() + "/bob/lab:1: only into your own registry namespace, " + f.gl.RegistryHost() + "/alice/...\n",
		"\ndocker: Error response from daemon: --volume (HostConfig.Binds): the Docker socket is never mounted into a container\n",
	} {
		if !strings.Contains(tr, want) {
			t.Errorf("the build job's trace lacks %q:\n%s", want, tr)
		}
	}
	// The image is on the engine under alice's namespace, made from her Dockerfile.
	if out := f.s.mustRun(t, f.alice, "alice", "images"); !strings.Contains(out, tag) {
		t.Errorf("alice's images lack %s:\n%s", tag, out)
	}
	f.s.mustRun(t, f.alice, "alice", "run", "--name", "built", tag, "cat", "/hello.txt")
	var out string
	if !poll(pollTimeout, func() bool {
		out = f.s.run(t, f.alice, "alice", "logs", "built").Stdout
		return strings.Contains(out, "built-in-ci")
	}) {
		t.Errorf("the image built in CI: logs %q", out)
	}
	f.s.mustRun(t, f.alice, "alice", "rm", "built")
	// Not bob's: he may not remove it.
	if r := f.s.run(t, f.bob, "bob", "rmi", tag); r.Code == 0 {
		t.Errorf("bob removed alice's image built in CI: %s", r)
	}
}
