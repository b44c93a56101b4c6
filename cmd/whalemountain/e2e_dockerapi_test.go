package main

// End-to-end tests of the per-user Docker Engine API: the real docker CLI against the
// server binary, over ssh:// (the CLI runs `ssh ... -- host docker system dial-stdio`
// itself) and over a unix socket forwarded with `ssh -L`, on the real engine. What the
// student is allowed to do works as with a local engine; what a curious student tries
// beyond that is refused with one line, creates nothing, and what was allowed is proved
// hardened by inspecting it from the engine's side.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"golang.org/x/crypto/ssh"

	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// dockerTimeout bounds one docker CLI command.
const dockerTimeout = 90 * time.Second

// e2eNamespace is the registry namespace of the Docker API test servers.
const e2eNamespace = "registry.e2e.test:5050"

// dockerCLI runs the real docker CLI as one user against a test server.
type dockerCLI struct {
	t   *testing.T
	dir string
	env []string
}

// newDockerCLI prepares the docker CLI for user with key against s over ssh://. OpenSSH
// reads ~/.ssh/config from the home in the password database, not from $HOME, so the ssh
// the docker CLI runs (`ssh -l USER -p PORT -- HOST docker system dial-stdio`, from PATH)
// is a wrapper that adds the test's options: the key, no agent, no known hosts.
func newDockerCLI(t *testing.T, s *server, key *testKey, user string) *dockerCLI {
	t.Helper()
	needTools(t, "docker")
	realSSH := sshBinary(t)
	dir := t.TempDir()
	cfg := fmt.Sprintf("Host *\n  IdentityFile %s\n  IdentitiesOnly yes\n  IdentityAgent none\n  BatchMode yes\n"+
		"  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n", key.Path)
	for _, f := range []struct {
		name, text string
		mode       os.FileMode
	}{
		{"ssh_config", cfg, 0o600},
		{"bin/ssh", fmt.Sprintf("#!/bin/sh\nexec %s -F %s \"$@\"\n", realSSH, filepath.Join(dir, "ssh_config")), 0o755},
	} {
		p := filepath.Join(dir, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(f.text), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "DOCKER_") && !strings.HasPrefix(kv, "SSH_AUTH_SOCK=") &&
			!strings.HasPrefix(kv, "HOME=") && !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	env = append(env,
		"PATH="+filepath.Join(dir, "bin")+":"+os.Getenv("PATH"),
		"HOME="+filepath.Join(dir, "home"),
		"DOCKER_CONFIG="+filepath.Join(dir, "docker-config"),
		"DOCKER_HOST=ssh://"+user+"@127.0.0.1:"+s.Port,
		"DOCKER_BUILDKIT=0",
		"DOCKER_CLI_HINTS=false",
		"TERM=xterm-256color",
	)
	return &dockerCLI{t: t, dir: dir, env: env}
}

// withHost is the same CLI aimed at another DOCKER_HOST (a forwarded socket).
func (d *dockerCLI) withHost(host string) *dockerCLI {
	env := slices.DeleteFunc(slices.Clone(d.env), func(kv string) bool { return strings.HasPrefix(kv, "DOCKER_HOST=") })
	return &dockerCLI{t: d.t, dir: d.dir, env: append(env, "DOCKER_HOST="+host)}
}

// command is `docker args...` ready to run.
func (d *dockerCLI) command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = d.env
	cmd.Dir = d.dir
	return cmd
}

// run runs `docker args...` with stdin from /dev/null.
func (d *dockerCLI) run(args ...string) sshResult {
	d.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer cancel()
	cmd := d.command(ctx, args...)
	var stdout, stderr lockedBuffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		d.t.Fatalf("docker %q did not finish within %v\nstdout: %s\nstderr: %s", args, dockerTimeout, stdout.String(), stderr.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		d.t.Fatalf("run docker: %v", err)
	}
	return sshResult{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}

// must runs `docker args...`, which must succeed, and returns its stdout.
func (d *dockerCLI) must(args ...string) string {
	d.t.Helper()
	r := d.run(args...)
	if r.Code != 0 {
		d.t.Fatalf("docker %q: want exit 0\n%s", args, r)
	}
	return r.Stdout
}

// terminal runs `docker args...` in a PTY of cols x rows.
func (d *dockerCLI) terminal(cols, rows int, args ...string) *terminal {
	d.t.Helper()
	cmd := exec.Command("docker", args...)
	cmd.Env = d.env
	cmd.Dir = d.dir
	return startTerminal(d.t, cmd, cols, rows)
}

// dockerAPIServer starts a container server whose users have a registry namespace, and
// alice and bob with keys. bob has a running container, "bob-box".
func dockerAPIServer(t *testing.T, tag string) (*ctrServer, *testKey, *testKey) {
	t.Helper()
	sshBinary(t)
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	s := startContainerServer(t, cli, img, containerPrefix(tag), ctrOptions{
		Top: "images:\n  registry_namespace: " + e2eNamespace + "\nlimits:\n  failures_per_minute: 1000\n  max_sessions_per_user: 30\n",
	})
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	s.addKey(t, "alice", alice)
	s.addKey(t, "bob", bob)
	s.mustRun(t, bob, "bob", "run", "--name", "bob-box", img, "sleep", "3600")
	return s, alice, bob
}

// TestE2EDockerAPI: a student's day with the docker CLI over ssh://.
func TestE2EDockerAPI(t *testing.T) {
	s, alice, bob := dockerAPIServer(t, "a")
	d := newDockerCLI(t, s.server, alice, "alice")
	img := s.img

	// The door answers as an engine of API 1.41 at most would, and says it is this server.
	v := d.must("version", "--format", "{{.Server.Platform.Name}} {{.Server.APIVersion}}")
	if !strings.HasPrefix(v, "WhaleMountain") {
		t.Errorf("docker version: %q", v)
	}
	info := d.must("info", "--format", "{{json .}}")
	for _, leak := range []string{"/var/lib/docker", "DockerRootDir\":\"/", s.prefix} {
		if strings.Contains(info, leak) {
			t.Errorf("docker info shows %q:\n%s", leak, info)
		}
	}

	// Nothing of bob's is listed.
	if out := d.must("ps", "-a", "--format", "{{.Names}}"); strings.TrimSpace(out) != "" {
		t.Errorf("alice's docker ps -a lists %q", out)
	}

	// run -d: the container is alice's, named as she named it, hardened like every other.
	id := strings.TrimSpace(d.must("run", "-d", "--name", "web", "--label", "course=os", "--label", docker.LabelOwner+"=bob",
		"--cap-add", "CHOWN", img, "sleep", "3600"))
	ins := s.engineInspect(t, id)
	checkHardened(t, s, ins, "alice", "web")
	if ins.Config.Labels["course"] != "os" || ins.Config.Labels[docker.LabelOwner] != "alice" {
		t.Errorf("labels %v: want course=os kept and the owner the server's", ins.Config.Labels)
	}
	if out := d.must("ps", "--format", "{{.Names}} {{.ID}}"); strings.TrimSpace(out) != "web "+id[:12] {
		t.Errorf("docker ps: %q", out)
	}

	// inspect: alice's name, no host paths, no engine names.
	js := d.must("inspect", "web")
	var inspected []map[string]any
	if err := json.Unmarshal([]byte(js), &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("docker inspect web: %v\n%s", err, js)
	}
	if inspected[0]["Name"] != "/web" {
		t.Errorf("docker inspect Name = %v", inspected[0]["Name"])
	}
	for _, leak := range []string{"/var/lib/docker", s.prefix + "-", "GraphDriver", "/run/docker", "HostsPath\": \"/"} {
		if strings.Contains(js, leak) {
			t.Errorf("docker inspect web shows %q", leak)
		}
	}
	// By ID and by ID prefix, as the CLI writes them.
	for _, ref := range []string{id, id[:12], id[:5]} {
		if got := strings.TrimSpace(d.must("inspect", "--format", "{{.Name}}", ref)); got != "/web" {
			t.Errorf("docker inspect %s: %q", ref, got)
		}
	}

	// exec: streams apart, the exit status passed on.
	r := d.run("exec", "web", "sh", "-c", "echo out; echo err >&2; exit 3")
	if r.Code != 3 || r.Stdout != "out\n" || !strings.Contains(r.Stderr, "err") {
		t.Errorf("docker exec: %s", r)
	}
	// stdin to exec -i.
	cmd := d.command(context.Background(), "exec", "-i", "web", "cat")
	cmd.Stdin = strings.NewReader("piped\n")
	if out, err := cmd.Output(); err != nil || string(out) != "piped\n" {
		t.Errorf("docker exec -i web cat: %q, %v", out, err)
	}

	// run -it with a real PTY: the size, keys, the exit status; --rm removes it.
	tm := d.terminal(100, 30, "run", "-it", "--rm", "--name", "tty", img, "sh")
	tm.waitText("#")
	tm.send("stty size; echo it-$((6*7))\r")
	tm.waitText("30 100", "it-42")
	// The CLI tells the server of a resize on a connection of its own: ask until it lands.
	tm.resize(90, 25)
	if !poll(pollTimeout, func() bool {
		tm.send("stty size\r")
		time.Sleep(300 * time.Millisecond)
		return screenHas(tm.lines(), "25 90")
	}) {
		t.Errorf("the resize never reached the container:\n%s", tm.dump())
	}
	tm.send("exit 4\r")
	if code := tm.waitExit(dockerTimeout); code != 4 {
		t.Errorf("docker run -it: exit %d, want 4", code)
	}
	if !poll(pollTimeout, func() bool { return len(s.engineContainers(t, "alice", "tty")) == 0 }) {
		t.Error("docker run --rm left the container behind")
	}

	// exec -it into the running container.
	tm = d.terminal(80, 24, "exec", "-it", "web", "sh")
	tm.waitText("#")
	tm.send("echo in-$((1+1)); exit 5\r")
	tm.waitText("in-2")
	if code := tm.waitExit(dockerTimeout); code != 5 {
		t.Errorf("docker exec -it: exit %d, want 5", code)
	}

	// A process started with exec ends when its client goes away (the docker CLI and its
	// ssh killed), as a shell does; the engine by itself would leave it running.
	tm = d.terminal(80, 24, "exec", "-it", "web", "sh", "-c", "echo ready; sleep 4242")
	tm.waitText("ready")
	if !containerRuns(t, s, id, "sleep 4242") {
		t.Fatal("the exec'd process is not in the container")
	}
	_ = syscall.Kill(-tm.cmd.Process.Pid, syscall.SIGKILL)
	if !poll(2*pollTimeout, func() bool { return !containerRuns(t, s, id, "sleep 4242") }) {
		t.Error("the exec'd process outlived its client")
	}

	// logs -f follows until the container ends.
	d.must("run", "-d", "--name", "logger", img, "sh", "-c", "for i in 1 2 3; do echo line$i; sleep 1; done")
	if out := d.must("logs", "-f", "logger"); out != "line1\nline2\nline3\n" {
		t.Errorf("docker logs -f: %q", out)
	}

	// cp both ways.
	local := filepath.Join(d.dir, "note.txt")
	if err := os.WriteFile(local, []byte("copied in\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	d.must("cp", local, "web:/tmp/note.txt")
	if out := d.must("exec", "web", "cat", "/tmp/note.txt"); out != "copied in\n" {
		t.Errorf("after docker cp in: %q", out)
	}
	d.must("exec", "web", "sh", "-c", "echo made inside > /tmp/out.txt")
	back := filepath.Join(d.dir, "out.txt")
	d.must("cp", "web:/tmp/out.txt", back)
	if b, err := os.ReadFile(back); err != nil || string(b) != "made inside\n" {
		t.Errorf("after docker cp out: %q, %v", b, err)
	}

	// images lists the server's images; build goes into alice's namespace, FROM the test
	// image, its RUN step on alice's own network, limited.
	if out := d.must("images", "--format", "{{.Repository}}:{{.Tag}}"); !strings.Contains(out, img) {
		t.Errorf("docker images does not list %s:\n%s", img, out)
	}
	ctxDir := filepath.Join(d.dir, "build")
	if err := os.MkdirAll(ctxDir, 0o700); err != nil {
		t.Fatal(err)
	}
	df := fmt.Sprintf("FROM %s\nRUN echo built-$((20+1)) > /built && cat /proc/self/cgroup > /dev/null\nCMD [\"cat\", \"/built\"]\n", img)
	if err := os.WriteFile(filepath.Join(ctxDir, "Dockerfile"), []byte(df), 0o600); err != nil {
		t.Fatal(err)
	}
	tag := e2eNamespace + "/alice/hello-" + s.prefix + ":1" // of this run alone: tags are the engine's, shared
	d.must("build", "-t", tag, ctxDir)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		_, _ = s.cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true})
	})
	if out := d.must("run", "--rm", tag); out != "built-21\n" {
		t.Errorf("docker run of the built image: %q", out)
	}

	// Volumes of her own.
	d.must("volume", "create", "data")
	d.must("run", "--rm", "-v", "data:/data", img, "sh", "-c", "echo kept > /data/f")
	if out := d.must("run", "--rm", "-v", "data:/data", img, "cat", "/data/f"); out != "kept\n" {
		t.Errorf("a file in alice's volume: %q", out)
	}
	if out := d.must("volume", "ls", "--format", "{{.Name}}"); strings.TrimSpace(out) != "data" {
		t.Errorf("docker volume ls: %q", out)
	}

	// events: her own containers' only, named as she names them.
	evCtx, evCancel := context.WithTimeout(context.Background(), dockerTimeout)
	defer evCancel()
	ev := d.command(evCtx, "events", "--filter", "type=container", "--format", "{{.Action}} {{.Actor.Attributes.name}}")
	var evOut lockedBuffer
	ev.Stdout, ev.Stderr = &evOut, &evOut
	if err := ev.Start(); err != nil {
		t.Fatal(err)
	}
	// The CLI connects and subscribes in its own time: a container made and removed until its
	// removal shows says it listens.
	if !poll(2*pollTimeout, func() bool {
		d.must("create", "--name", "ping", img)
		d.must("rm", "ping")
		return strings.Contains(evOut.String(), "destroy ping")
	}) {
		t.Fatalf("docker events never showed anything:\n%s", evOut.String())
	}
	d.must("run", "-d", "--name", "evt", img, "sleep", "3600")
	s.mustRun(t, bob, "bob", "restart", "bob-box")
	d.must("rm", "-f", "evt")
	if !poll(2*pollTimeout, func() bool {
		o := evOut.String()
		return strings.Contains(o, "start evt") && strings.Contains(o, "destroy evt")
	}) {
		t.Errorf("docker events never showed evt start and destroy:\n%s", evOut.String())
	}
	evCancel()
	_ = ev.Wait()
	if strings.Contains(evOut.String(), "bob") || strings.Contains(evOut.String(), s.prefix) {
		t.Errorf("docker events shows bob's or engine names:\n%s", evOut.String())
	}

	// stop, rm; the home and volumes stay.
	d.must("stop", "web")
	if st := s.engineInspect(t, id).State; st == nil || st.Running {
		t.Errorf("after docker stop: %+v", st)
	}
	d.must("rm", "web", "logger")
	if n := len(s.engineContainers(t, "alice", "")); n != 0 {
		t.Errorf("after docker rm, alice has %d containers", n)
	}
	d.must("volume", "rm", "data")

	// Every mutating call is in the audit log, with alice's identity.
	for _, action := range []string{"create", "start", "exec", "attach", "cp", "build", "stop", "rm", "volume create"} {
		s.waitAudit(t, "alice's "+action, func(e auditEntry) bool {
			return e.User == "alice" && e.Action == action && e.Key == alice.Fingerprint && e.Result == "ok"
		})
	}
}

// containerRuns reports whether a process whose command line contains cmd runs in the
// container, as the engine's top shows it.
func containerRuns(t *testing.T, s *ctrServer, id, cmd string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	res, err := s.cli.ContainerTop(ctx, id, client.ContainerTopOptions{})
	if err != nil {
		t.Fatalf("top: %v", err)
	}
	for _, p := range res.Processes {
		if strings.Contains(strings.Join(p, " "), cmd) {
			return true
		}
	}
	return false
}

// checkHardened proves from the engine's own inspect that a container made through the
// Docker API carries the policy.
func checkHardened(t *testing.T, s *ctrServer, in container.InspectResponse, owner, name string) {
	t.Helper()
	hc, cfg := in.HostConfig, in.Config
	if hc == nil || cfg == nil {
		t.Fatalf("inspect without config: %+v", in)
	}
	caps := docker.DefaultConfig()
	var want []string
	for _, c := range caps.Capabilities {
		want = append(want, "CAP_"+c)
	}
	slices.Sort(want)
	got := slices.Sorted(slices.Values(hc.CapAdd))
	switch {
	case hc.Privileged:
		t.Error("privileged")
	case !slices.Equal(hc.CapDrop, []string{"ALL"}):
		t.Errorf("CapDrop %v", hc.CapDrop)
	case !slices.Equal(got, want):
		t.Errorf("CapAdd %v, want %v", got, want)
	case !slices.Contains(hc.SecurityOpt, "no-new-privileges:true"):
		t.Errorf("SecurityOpt %v", hc.SecurityOpt)
	case hc.PidsLimit == nil || *hc.PidsLimit <= 0:
		t.Errorf("PidsLimit %v", hc.PidsLimit)
	case hc.Memory <= 0 || hc.NanoCPUs <= 0 || hc.MemorySwap != hc.Memory:
		t.Errorf("memory %d swap %d cpus %d", hc.Memory, hc.MemorySwap, hc.NanoCPUs)
	case hc.PidMode != "" || hc.IpcMode != "private" || hc.UTSMode != "" || hc.UsernsMode != "" || hc.CgroupnsMode != "private":
		t.Errorf("namespaces pid %q ipc %q uts %q userns %q cgroupns %q", hc.PidMode, hc.IpcMode, hc.UTSMode, hc.UsernsMode, hc.CgroupnsMode)
	case len(hc.Binds) > 0 || len(hc.Devices) > 0 || len(hc.VolumesFrom) > 0 || len(hc.PortBindings) > 0:
		t.Errorf("binds %v devices %v volumes-from %v ports %v", hc.Binds, hc.Devices, hc.VolumesFrom, hc.PortBindings)
	case cfg.Labels[docker.LabelOwner] != owner || cfg.Labels[docker.LabelName] != name || cfg.Labels[docker.LabelKind] != docker.KindContainer:
		t.Errorf("labels %v", cfg.Labels)
	}
	own := func(n string) bool {
		return n == s.prefix+"-net-"+owner || strings.HasPrefix(n, fmt.Sprintf("%s-unet-%d-%s-", s.prefix, len(owner), owner))
	}
	if len(in.NetworkSettings.Networks) != 1 || slices.ContainsFunc(slices.Collect(maps.Keys(in.NetworkSettings.Networks)), func(n string) bool { return !own(n) }) {
		t.Errorf("networks %v, want one of %s's own", in.NetworkSettings.Networks, owner)
	}
	home := false
	for _, m := range in.Mounts {
		if strings.Contains(m.Source, "docker.sock") {
			t.Errorf("the Docker socket is mounted: %+v", m)
		}
		if m.Type == "bind" {
			t.Errorf("a host path is mounted: %+v", m)
		}
		if m.Name == s.prefix+"-home-"+owner && m.Destination == "/home/"+owner {
			home = true
		}
	}
	if !home {
		t.Errorf("no home volume among %+v", in.Mounts)
	}
}

// TestE2EDockerAPISocket: the same API through `ssh -L LOCAL.sock:/docker.sock`; any
// other socket path is refused and audited.
func TestE2EDockerAPISocket(t *testing.T) {
	s, alice, _ := dockerAPIServer(t, "u")
	d := newDockerCLI(t, s.server, alice, "alice")
	sock := filepath.Join(d.dir, "gpu1.sock")
	other := filepath.Join(d.dir, "other.sock")
	forwardSockets(t, s, alice, "alice", sock+":/docker.sock", other+":/var/run/containerd/containerd.sock")
	u := d.withHost("unix://" + sock)
	if out := u.must("ps", "-a", "--format", "{{.Names}}"); strings.TrimSpace(out) != "" {
		t.Errorf("docker ps -a through the socket: %q", out)
	}
	id := strings.TrimSpace(u.must("run", "-d", "--name", "fwd", s.img, "sleep", "3600"))
	checkHardened(t, s, s.engineInspect(t, id), "alice", "fwd")
	if out := u.must("exec", "fwd", "echo", "through the socket"); out != "through the socket\n" {
		t.Errorf("docker exec through the socket: %q", out)
	}
	tm := u.terminal(80, 24, "exec", "-it", "fwd", "sh")
	tm.waitText("#")
	tm.send("echo tty-$((3*3)); exit 2\r")
	tm.waitText("tty-9")
	if code := tm.waitExit(dockerTimeout); code != 2 {
		t.Errorf("docker exec -it through the socket: exit %d", code)
	}
	u.must("rm", "-f", "fwd")

	// The other socket: the forward is refused when something connects to it.
	o := d.withHost("unix://" + other)
	if r := o.run("ps"); r.Code == 0 {
		t.Errorf("docker ps through a forward of another socket succeeded: %s", r)
	}
	s.waitAudit(t, "the refused socket forward", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "forward" && e.Result == "refused" &&
			e.Target == "unix:/var/run/containerd/containerd.sock"
	})
	s.waitAudit(t, "the socket forward", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "forward" && e.Result == "ok" && e.Target == "unix:/docker.sock"
	})
}

// forwardSockets runs `ssh -N -L LOCAL:REMOTE ...` as user for each forward until the test
// ends, once the first local socket exists.
func forwardSockets(t *testing.T, s *ctrServer, key *testKey, user string, forwards ...string) {
	t.Helper()
	flags := []string{"-N", "-o", "ExitOnForwardFailure=yes"}
	for _, f := range forwards {
		flags = append(flags, "-L", f)
	}
	fwd := exec.Command(sshBinary(t), s.sshArgs(key, user, flags)...)
	fwd.Env = environWithout("SSH_AUTH_SOCK")
	var fwdErr lockedBuffer
	fwd.Stderr = &fwdErr
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = fwd.Process.Kill(); _ = fwd.Wait() })
	sock, _, _ := strings.Cut(forwards[0], ":")
	if !poll(pollTimeout, func() bool { _, err := os.Stat(sock); return err == nil }) {
		t.Fatalf("ssh -L never made %s: %s", sock, fwdErr.String())
	}
}

// dockerRefusal is one thing a curious student tries with the docker CLI.
type dockerRefusal struct {
	args []string
	want string // in stderr
	df   string // a Dockerfile for a build row: the context is made with it
	// bob is the part of args that names bob's object: the answer must be exactly the one
	// for the same form of a name nobody has.
	bob string
}

// dockerRefusals are the negative table: each must fail with want, and create nothing.
func dockerRefusals(img, bobID, bobNetID string) []dockerRefusal {
	bobRow := func(bob, want string, args ...string) dockerRefusal {
		return dockerRefusal{args: args, want: want, bob: bob}
	}
	run := func(flags ...string) []string {
		return append(append([]string{"run", "--rm"}, flags...), img, "true")
	}
	return []dockerRefusal{
		{args: run("--privileged"), want: "--privileged (HostConfig.Privileged)"},
		{args: run("-v", "/:/host"), want: "host path /"},
		{args: run("-v", "/var/run/docker.sock:/var/run/docker.sock"), want: "Docker socket is never mounted"},
		{args: run("-v", "/run/docker.sock:/s"), want: "Docker socket is never mounted"},
		{args: run("-v", "/etc:/e:ro"), want: "host path /etc"},
		{args: run("--mount", "type=bind,src=/home,dst=/h"), want: "--mount (HostConfig.Mounts): host path /home"},
		{args: run("--pid", "host"), want: "--pid (HostConfig.PidMode)"},
		bobRow("bob-box", "--pid (HostConfig.PidMode)", run("--pid", "container:bob-box")...),
		{args: run("--network", "host"), want: "--network (HostConfig.NetworkMode)"},
		bobRow("bob-box", "no such container: bob-box", run("--network", "container:bob-box")...),
		bobRow(bobID[:6], "no such container: "+bobID[:6], run("--network", "container:"+bobID[:6])...),
		{args: run("--ipc", "host"), want: "--ipc (HostConfig.IpcMode)"},
		{args: run("--uts", "host"), want: "--uts (HostConfig.UTSMode)"},
		{args: run("--userns", "host"), want: "--userns (HostConfig.UsernsMode)"},
		{args: run("--cgroupns", "host"), want: "--cgroupns (HostConfig.CgroupnsMode)"},
		{args: run("--cgroup-parent", "/"), want: "HostConfig.CgroupParent"},
		{args: run("--cap-add", "SYS_ADMIN"), want: "--cap-add (HostConfig.CapAdd): capability CAP_SYS_ADMIN is not allowed"},
		{args: run("--cap-add", "ALL"), want: "--cap-add (HostConfig.CapAdd)"},
		{args: run("--cap-add", "NET_RAW"), want: "--cap-add (HostConfig.CapAdd)"},
		{args: run("--device", "/dev/mem"), want: "--device (HostConfig.Devices)"},
		{args: run("--device-cgroup-rule", "c *:* rwm"), want: "HostConfig.DeviceCgroupRules"},
		{args: run("--security-opt", "seccomp=unconfined"), want: "--security-opt (HostConfig.SecurityOpt)"},
		{args: run("--security-opt", "apparmor=unconfined"), want: "--security-opt (HostConfig.SecurityOpt)"},
		{args: run("--security-opt", "label=disable"), want: "--security-opt (HostConfig.SecurityOpt)"},
		{args: run("--security-opt", "systempaths=unconfined"), want: "HostConfig.MaskedPaths"},
		{args: run("--sysctl", "net.ipv4.ip_forward=1"), want: "--sysctl (HostConfig.Sysctls)"},
		{args: run("--runtime", "nvidia"), want: "--runtime (HostConfig.Runtime)"},
		{args: run("--gpus", "all"), want: "HostConfig.DeviceRequests"},
		bobRow("bob-box", "--volumes-from (HostConfig.VolumesFrom): no such container: bob-box", run("--volumes-from", "bob-box")...),
		bobRow(bobID[:8], "no such container: "+bobID[:8], run("--volumes-from", bobID[:8])...),
		{args: run("-p", "8080:80"), want: "--publish (HostConfig.PortBindings)"},
		{args: run("-P", "--expose", "80"), want: "--publish-all (HostConfig.PublishAllPorts)"},
		{args: run("--memory", "64g"), want: "--memory (HostConfig.Memory): quota"},
		{args: run("--cpus", "64"), want: "--cpus (HostConfig.NanoCpus): quota"},
		{args: run("--oom-kill-disable"), want: "HostConfig.OomKillDisable"},
		{args: []string{"run", "-d", "--restart", "always", img, "true"}, want: "--restart (HostConfig.RestartPolicy)"},
		{args: run("--ulimit", "nofile=1048576:1048576"), want: "--ulimit (HostConfig.Ulimits)"},
		{args: run("--log-driver", "syslog", "--log-opt", "syslog-address=tcp://127.0.0.1:514"), want: "--log-driver (HostConfig.LogConfig)"},
		bobRow("bob-box", "--link (HostConfig.Links)", run("--link", "bob-box:db")...),
		{args: run("--volume-driver", "local", "-v", "x:/x"), want: "--volume-driver"},
		bobRow("bob-box", "No such container: bob-box", "exec", "bob-box", "id"),
		bobRow(bobID[:6], "No such container: "+bobID[:6], "exec", bobID[:6], "id"),
		bobRow(bobID, "No such container: "+bobID, "exec", bobID, "id"),
		bobRow("bob-box", "No such container: bob-box", "cp", "bob-box:/etc/hostname", "stolen"),
		bobRow(bobID[:10], "no such directory", "cp", "local.txt", bobID[:10]+":/tmp/"),
		bobRow(bobID[:12], "No such container: "+bobID[:12], "logs", bobID[:12]),
		bobRow("bob-box", "No such container: bob-box", "attach", "bob-box"),
		bobRow("bob-box", "No such container: bob-box", "stop", "bob-box"),
		bobRow(bobID[:4], "No such container: "+bobID[:4], "kill", bobID[:4]),
		bobRow("bob-box", "No such container: bob-box", "rm", "bob-box"),
		bobRow("bob-box", "No such container: bob-box", "top", "bob-box"),
		bobRow(bobID, "No such container: "+bobID, "inspect", "--type", "container", bobID),
		bobRow(bobID[:7], "No such object: "+bobID[:7], "inspect", bobID[:7]),
		bobRow("bob-box", "No such container: bob-box", "restart", "bob-box"),
		bobRow("bob-box", "No such container: bob-box", "start", "bob-box"),
		bobRow("bob-box", "No such container: bob-box", "stats", "--no-stream", "bob-box"),
		bobRow("bob-box", "not available through this server's Docker API", "export", "bob-box"),
		{args: []string{"tag", img, "busybox:latest"}, want: "only into your own registry namespace, " + e2eNamespace + "/alice/"},
		{args: []string{"tag", img, e2eNamespace + "/bob/x:1"}, want: "only into your own registry namespace"},
		{args: []string{"push", e2eNamespace + "/bob/x:1"}, want: "only into your own registry namespace"},
		{args: []string{"push", img}, want: "only into your own registry namespace"},
		{args: []string{"build", "-t", "otheruser/x", "."}, want: "only into your own registry namespace", df: "FROM " + img + "\n"},
		{args: []string{"build", "-t", e2eNamespace + "/bob/x:1", "."}, want: "only into your own registry namespace", df: "FROM " + img + "\n"},
		{args: []string{"build", "--network", "host", "."}, want: "networkmode", df: "FROM " + img + "\n"},
		{args: []string{"build", "."}, want: "does not fetch URLs", df: "FROM " + img + "\nADD http://127.0.0.1:1/secret /s\n"},
		{args: []string{"build", "."}, want: "it is on the server's own network", df: "FROM 127.0.0.1:5000/x/y:1\n"},
		{args: []string{"rmi", "--force", img}, want: "rmi --force is not available"},
		{args: []string{"rmi", img}, want: "not yours to remove"},
		{args: []string{"volume", "create", "--opt", "type=none", "--opt", "device=/", "--opt", "o=bind", "evil"}, want: "--opt (DriverOpts)"},
		{args: []string{"volume", "create", "--driver", "nfs", "evil"}, want: "--driver (Driver)"},
		bobRow("bobvol", "no such volume", "volume", "rm", "bobvol"),
		bobRow("bobvol", "no such volume", "volume", "inspect", "bobvol"),
		{args: []string{"network", "create", "--driver", "host", "mine"}, want: "--driver (Driver)"},
		{args: []string{"network", "create", "--subnet", "10.99.0.0/24", "mine"}, want: "--subnet (IPAM.Config)"},
		{args: []string{"network", "create", "-o", "com.docker.network.bridge.name=eth0", "mine"}, want: "--opt (Options)"},
		{args: []string{"network", "create", "host"}, want: "pre-defined network"},
		{args: []string{"network", "rm", "bridge"}, want: "pre-defined network and cannot be removed"},
		bobRow("bobnet", "network bobnet not found", "network", "inspect", "bobnet"),
		bobRow(bobNetID[:6], "network "+bobNetID[:6]+" not found", "network", "inspect", bobNetID[:6]),
		bobRow("bobnet", "network bobnet not found", "network", "rm", "bobnet"),
		bobRow(bobNetID[:8], "network "+bobNetID[:8]+" not found", "network", "rm", bobNetID[:8]),
		bobRow("bobnet", "network bobnet not found", "network", "connect", "bobnet", "nosuchbox"),
		bobRow("bob-box", "No such container: bob-box", "network", "connect", "bridge", "bob-box"),
		bobRow("bob-box", "No such container: bob-box", "network", "disconnect", "bridge", "bob-box"),
		bobRow("bobnet", "--network (HostConfig.NetworkMode): network bobnet not found", run("--network", "bobnet")...),
		bobRow(bobNetID[:10], "network "+bobNetID[:10]+" not found", run("--network", bobNetID[:10])...),
		bobRow("bob-box", "not available through this server's Docker API", "commit", "bob-box"),
		{args: []string{"import", "-"}, want: "not available"},
		{args: []string{"swarm", "init"}, want: "not available through this server's Docker API"},
		{args: []string{"pull", "127.0.0.1:5000/x/y:1"}, want: "is not allowed: it is on the server's own network"},
	}
}

// TestE2EDockerAPIRefusals: the negative table through the real docker CLI. Each attempt
// fails with its one line, none creates anything, and none reaches bob's container.
func TestE2EDockerAPIRefusals(t *testing.T) {
	s, alice, bob := dockerAPIServer(t, "r")
	d := newDockerCLI(t, s.server, alice, "alice")
	bobBox := s.engineContainer(t, "bob", "bob-box")
	bobD := newDockerCLI(t, s.server, bob, "bob")
	bobD.must("volume", "create", "bobvol")
	bobNetID := strings.TrimSpace(bobD.must("network", "create", "bobnet"))
	d.must("ps")            // alice's first login, which may make her home
	d.must("network", "ls") // and her default network
	if err := os.WriteFile(filepath.Join(d.dir, "local.txt"), []byte("mine\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	before := s.objects(t)
	bobBefore := s.engineInspect(t, bobBox.ID)
	rows := dockerRefusals(s.img, bobBox.ID, bobNetID)
	if len(rows) < 30 {
		t.Fatalf("the negative table has %d rows, want at least 30", len(rows))
	}
	for i, row := range rows {
		name := fmt.Sprintf("%02d_%s", i+1, strings.Join(row.args, "_"))
		t.Run(clip(name, 60), func(t *testing.T) {
			dc := &dockerCLI{t: t, dir: d.dir, env: d.env}
			if row.df != "" {
				dc.dir = filepath.Join(d.dir, fmt.Sprintf("ctx%d", i))
				if err := os.MkdirAll(dc.dir, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(dc.dir, "Dockerfile"), []byte(row.df), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			r := dc.run(row.args...)
			if row.bob != "" {
				ctl := controlRef(t, s, row.bob)
				args := make([]string, len(row.args))
				for i, a := range row.args {
					args[i] = strings.ReplaceAll(a, row.bob, ctl)
				}
				c := dc.run(args...)
				c.Stdout, c.Stderr = strings.ReplaceAll(c.Stdout, ctl, row.bob), strings.ReplaceAll(c.Stderr, ctl, row.bob)
				// The CLI's own log lines (time="..." level=...) come from its tar writer
				// racing the answer: they are the client's, not the server's.
				if withoutCLILog(c) != withoutCLILog(r) {
					t.Errorf("docker %q answers differently for bob's %s than for %s, a name nobody has:\n%s\nfor the name nobody has:\n%s",
						row.args, row.bob, ctl, r, c)
				}
			}
			if r.Code == 0 {
				t.Errorf("docker %q succeeded, want it refused\n%s", row.args, r)
			}
			if !strings.Contains(r.Stderr, row.want) {
				t.Errorf("docker %q: stderr does not say %q\n%s", row.args, row.want, r)
			}
			for _, leak := range []string{s.prefix + "-", "/var/lib/docker"} {
				if strings.Contains(r.Stdout+r.Stderr, leak) {
					t.Errorf("docker %q shows %q\n%s", row.args, leak, r)
				}
			}
		})
	}
	if after := s.objects(t); after != before {
		t.Errorf("the refused attempts changed the engine's objects: %v before, %v after", before, after)
	}
	after := s.engineInspect(t, bobBox.ID)
	if after.State == nil || !after.State.Running || after.State.StartedAt != bobBefore.State.StartedAt || len(after.ExecIDs) != 0 {
		t.Errorf("bob's container was touched: %+v, exec IDs %v", after.State, after.ExecIDs)
	}
	if _, err := os.Stat(filepath.Join(d.dir, "stolen")); err == nil {
		t.Error("a file came out of bob's container")
	}
	for _, e := range readAudit(t, s.auditPath()) {
		if e.User == "alice" && e.Result == "ok" && e.Action != "login" && e.Action != "pull" {
			t.Errorf("a refused attempt is audited as done: %+v", e)
		}
	}
	s.waitAudit(t, "a refused create", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "create" && e.Result == "refused" && strings.Contains(e.Reason, "HostConfig.Privileged")
	})
}

// TestE2EDockerAPIIdentity: what the CLI session is is the key's, checked again: an
// unknown key gets nowhere, and a PTY is not a dial-stdio session.
func TestE2EDockerAPIIdentity(t *testing.T) {
	s, alice, _ := dockerAPIServer(t, "i")
	stranger := newKey(t, "stranger")
	d := newDockerCLI(t, s.server, stranger, "alice")
	if r := d.run("ps"); r.Code == 0 {
		t.Errorf("a key alice never registered reached her API: %s", r)
	}
	// A terminal belongs to the session that asked for it: after one with a PTY, another
	// session on the same connection (a ControlMaster, a Go client) is dial-stdio as usual.
	c, err := s.dial(&ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(alice.Signer)}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if r, err := atkExec(c, "whoami", true, 20*time.Second); err != nil || r.Code != 0 {
		t.Fatalf("whoami with a PTY: %s %v", r, err)
	}
	if got, err := rawAPI(c, "", "GET", "/v1.41/_ping", ""); err != nil || got != "200 OK OK" {
		t.Errorf("dial-stdio after a PTY session on the same connection: %q, %v", got, err)
	}
	r := s.ssh(t, alice, "alice", "docker", "ps")
	if r.Code != 2 || !strings.Contains(r.Stderr, "DOCKER_HOST=ssh://alice@") || !strings.Contains(r.Stderr, ":"+s.Port+" docker ps") {
		t.Errorf("ssh host docker ps: %s", r)
	}
}

// controlRef is a reference of the same form as ref (a name, or so many hex digits of an
// ID) that names nothing on the engine.
func controlRef(t *testing.T, s *ctrServer, ref string) string {
	t.Helper()
	if strings.Trim(ref, "0123456789abcdef") != "" {
		return "n" + ref[1:]
	}
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	res, err := s.cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for {
		c := randomHex(len(ref))
		if !slices.ContainsFunc(res.Items, func(x container.Summary) bool { return strings.HasPrefix(x.ID, c[:min(4, len(c))]) }) {
			return c
		}
	}
}

// randomHex is n random hex digits, at least one of them a letter and one a digit.
func randomHex(n int) string {
	for {
		b := make([]byte, (n+1)/2)
		_, _ = rand.Read(b)
		h := hex.EncodeToString(b)[:n]
		if n < 2 || strings.ContainsAny(h[:min(4, n)], "abcdef") && strings.ContainsAny(h[:min(4, n)], "0123456789") {
			return h
		}
	}
}

// withoutCLILog is r without the docker CLI's own log lines on stderr.
func withoutCLILog(r sshResult) sshResult {
	lines := strings.Split(r.Stderr, "\n")
	r.Stderr = strings.Join(slices.DeleteFunc(lines, func(l string) bool { return strings.HasPrefix(l, `time="`) }), "\n")
	return r
}
