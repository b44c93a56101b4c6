package main

// End-to-end tests of the container verbs through the real door: the server binary, the
// real OpenSSH client and the real Docker Engine, with a busybox image built in process.
// Every test server labels what it creates with the test run and with a label of its own,
// so parallel servers never see each other's containers (lookups go by labels), and
// everything a server made is removed when its test ends.

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// engineTimeout bounds one call the test makes to the engine itself.
const engineTimeout = time.Minute

// ctrOptions add to the YAML of a container test server.
type ctrOptions struct {
	Top    string // top-level lines, e.g. "tas: [tanaka]\n"
	Docker string // lines inside `docker:`, indented by two spaces
}

// ctrServer is a server lending containers on the real engine, plus an engine client for
// looking behind its back.
type ctrServer struct {
	*server
	cli    *client.Client
	img    string
	prefix string
	labels map[string]string // the labels the server puts on (and selects) its objects
}

// containerPrefix is a name prefix of this test process's own: test runs sharing an engine
// never meet on a container, volume or network name.
func containerPrefix(tag string) string { return "c" + dockertest.RunID()[8:] + tag }

// startContainerServer starts a server whose engine names start with prefix and whose
// objects carry this run's label and one of the server's own. They are removed after the
// server has stopped.
func startContainerServer(t *testing.T, cli *client.Client, img, prefix string, opts ctrOptions) *ctrServer {
	t.Helper()
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
	cfg += opts.Docker + opts.Top
	s := startServer(t, serverOptions{Config: cfg})
	return &ctrServer{server: s, cli: cli, img: img, prefix: prefix, labels: labels}
}

// run is ssh with every remote argument quoted, so the server splits the command line
// back into exactly these arguments.
func (c *ctrServer) run(t *testing.T, key *testKey, user string, args ...string) sshResult {
	t.Helper()
	quoted := make([]string, len(args))
	for i, a := range args {
		if strings.Contains(a, "'") {
			t.Fatalf("argument %q: single quotes are not supported here", a)
		}
		quoted[i] = "'" + a + "'"
	}
	return c.ssh(t, key, user, quoted...)
}

// mustRun runs a command that must succeed with nothing on stderr, and returns its stdout.
func (c *ctrServer) mustRun(t *testing.T, key *testKey, user string, args ...string) string {
	t.Helper()
	r := c.run(t, key, user, args...)
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("%s %q: want exit 0 and no error\n%s", user, args, r)
	}
	return r.Stdout
}

// filters selects the objects of this server, and of owner and name where given.
func (c *ctrServer) filters(owner, name string) client.Filters {
	f := client.Filters{}
	for k, v := range c.labels {
		f.Add("label", k+"="+v)
	}
	if owner != "" {
		f.Add("label", docker.LabelOwner+"="+owner)
	}
	if name != "" {
		f.Add("label", docker.LabelName+"="+name)
	}
	return f
}

// engineContainers lists this server's containers of owner/name (every one for "", "").
func (c *ctrServer) engineContainers(t *testing.T, owner, name string) []container.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	res, err := c.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: c.filters(owner, name)})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return res.Items
}

// engineContainer is owner's container name as the engine knows it; there must be one.
func (c *ctrServer) engineContainer(t *testing.T, owner, name string) container.Summary {
	t.Helper()
	cs := c.engineContainers(t, owner, name)
	if len(cs) != 1 {
		t.Fatalf("%d containers %s/%s on the engine, want 1: %+v", len(cs), owner, name, cs)
	}
	return cs[0]
}

// engineInspect is the engine's full inspect of a container.
func (c *ctrServer) engineInspect(t *testing.T, id string) container.InspectResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	res, err := c.cli.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatalf("inspect %s: %v", id, err)
	}
	return res.Container
}

// engineNetwork is the engine's inspect of a network, by name or ID.
func (c *ctrServer) engineNetwork(t *testing.T, ref string) network.Inspect {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	res, err := c.cli.NetworkInspect(ctx, ref, client.NetworkInspectOptions{})
	if err != nil {
		t.Fatalf("inspect network %s: %v", ref, err)
	}
	return res.Network
}

// objects counts this server's containers, volumes and networks on the engine.
func (c *ctrServer) objects(t *testing.T) [3]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	f := c.filters("", "")
	cs, err := c.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	vs, err := c.cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	ns, err := c.cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return [3]int{len(cs.Items), len(vs.Items), len(ns.Items)}
}

// psEntry is one element of `ps --json`.
type psEntry struct {
	Name     string `json:"name"`
	Owner    string `json:"owner"`
	Image    string `json:"image"`
	State    string `json:"state"`
	ExitCode int    `json:"exit_code"`
}

// psJSON runs `ps --json` with extra flags and parses it.
func (c *ctrServer) psJSON(t *testing.T, key *testKey, user string, flags ...string) []psEntry {
	t.Helper()
	out := c.mustRun(t, key, user, append([]string{"ps", "--json"}, flags...)...)
	var list []psEntry
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("ps --json of %s is not a JSON list: %v\n%s", user, err, out)
	}
	return list
}

func findEntry(list []psEntry, owner, name string) (psEntry, bool) {
	for _, e := range list {
		if e.Owner == owner && e.Name == name {
			return e, true
		}
	}
	return psEntry{}, false
}

// waitState polls `ps -a --json` until owner's container name is in a state starting with
// state, and returns it.
func (c *ctrServer) waitState(t *testing.T, key *testKey, user, name, state string) psEntry {
	t.Helper()
	var last []psEntry
	var found psEntry
	if !poll(pollTimeout, func() bool {
		last = c.psJSON(t, key, user, "-a")
		e, ok := findEntry(last, user, name)
		found = e
		return ok && strings.HasPrefix(e.State, state)
	}) {
		t.Fatalf("%s/%s never became %s; last ps -a --json: %+v", user, name, state, last)
	}
	return found
}

// waitLogs polls `logs name` until it contains want.
func (c *ctrServer) waitLogs(t *testing.T, key *testKey, user, name, want string) {
	t.Helper()
	var last sshResult
	if !poll(pollTimeout, func() bool {
		last = c.run(t, key, user, "logs", name)
		return last.Code == 0 && strings.Contains(last.Stdout, want)
	}) {
		t.Fatalf("logs %s never showed %q:\n%s", name, want, last)
	}
}

// tableRow is the cells of the first row of a table (ps output or a screen) whose leading
// cells are lead; a selection marker before them is skipped. Nil when there is none.
func tableRow(lines []string, lead ...string) []string {
	for _, line := range lines {
		f := strings.Fields(line)
		if len(f) > 0 && f[0] == "▸" {
			f = f[1:]
		}
		if len(f) > len(lead) && slices.Equal(f[:len(lead)], lead) {
			return f
		}
	}
	return nil
}

func outLines(s string) []string { return strings.Split(s, "\n") }

// wantError requires exit status code, nothing on stdout and exactly one line on stderr
// containing substr.
func wantError(t *testing.T, what string, r sshResult, code int, substr string) {
	t.Helper()
	if r.Code != code {
		t.Errorf("%s: exit %d, want %d\n%s", what, r.Code, code, r)
	}
	wantOneLineError(t, what, r, substr)
}

// wantOneLineError requires nothing on stdout and exactly one line on stderr containing
// substr.
func wantOneLineError(t *testing.T, what string, r sshResult, substr string) {
	t.Helper()
	if r.Stdout != "" {
		t.Errorf("%s: stdout = %q, want nothing", what, r.Stdout)
	}
	if strings.Count(r.Stderr, "\n") != 1 || !strings.HasSuffix(r.Stderr, "\n") {
		t.Errorf("%s: stderr is not one line: %q", what, r.Stderr)
	}
	if !strings.Contains(r.Stderr, substr) {
		t.Errorf("%s: stderr %q does not contain %q", what, r.Stderr, substr)
	}
}

// TestE2EContainers drives containers through `ssh host CMD ...` and the dashboard. One
// busybox image serves every subtest; each subtest has its own server, name prefix and
// labels.
//
// It does not run in parallel with the other tests of the package: servers configured
// without docker.labels manage every container on the engine, so theirs would show (and
// keep redrawing) alice's containers made here, which defeats their idle timeout.
func TestE2EContainers(t *testing.T) {
	cli := dockertest.Client(t)
	// Whatever of this run is left when the subtests are done goes, the image included.
	// Nothing else of the package runs meanwhile (see above), so nothing else is hit.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		if err := dockertest.Cleanup(ctx, cli, dockertest.RunID()); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	// Held by this test, so it lives until every parallel subtest below has ended.
	img := dockertest.BusyboxImage(ctx, t, cli)

	for _, sub := range []struct {
		name string
		run  func(*testing.T, *client.Client, string)
	}{
		{"StudentFlow", testStudentFlow},
		{"LogsFollow", testLogsFollow},
		{"Isolation", testIsolation},
		{"BadInputChangesNothing", testBadInput},
		{"Quota", testQuota},
		{"Hardening", testHardening},
		{"DashboardLiveUpdate", testDashboardLive},
	} {
		t.Run(sub.name, func(t *testing.T) {
			t.Parallel()
			sub.run(t, cli, img)
		})
	}
}

func testStudentFlow(t *testing.T, cli *client.Client, img string) {
	s := startContainerServer(t, cli, img, containerPrefix("a"), ctrOptions{})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)

	// run
	if out := s.mustRun(t, alice, "alice", "run", "--name", "box", img); out != "box: created and started\n" {
		t.Errorf("run stdout = %q, want %q", out, "box: created and started\n")
	}
	s.waitAudit(t, "alice's run of box", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "run" && e.Target == "alice/box" && e.Result == "ok"
	})

	// ps, as a table and as JSON
	out := s.mustRun(t, alice, "alice", "ps")
	if h := strings.Fields(outLines(out)[0]); len(h) < 3 || h[0] != "NAME" || h[1] != "IMAGE" || h[2] != "STATE" {
		t.Errorf("ps header = %q, want NAME IMAGE STATE ...", outLines(out)[0])
	}
	if row := tableRow(outLines(out), "box"); row == nil || row[1] != img || row[2] != "running" {
		t.Errorf("ps does not list box %s running:\n%s", img, out)
	}
	list := s.psJSON(t, alice, "alice")
	if e, ok := findEntry(list, "alice", "box"); !ok || e.State != "running" || e.Image != img {
		t.Errorf("ps --json has no running alice/box of %s: %+v", img, list)
	}

	// logs of a container that printed and ended
	if out := s.mustRun(t, alice, "alice", "run", "--name", "hello", img, "sh", "-c", "echo hi-there"); out != "hello: created and started\n" {
		t.Errorf("run hello stdout = %q", out)
	}
	s.waitLogs(t, alice, "alice", "hello", "hi-there")
	if e := s.waitState(t, alice, "alice", "hello", "exited"); e.ExitCode != 0 {
		t.Errorf("hello exited with %d, want 0", e.ExitCode)
	}

	// inspect: the safe subset
	box := s.engineContainer(t, "alice", "box")
	out = s.mustRun(t, alice, "alice", "inspect", "box")
	var details map[string]any
	if err := json.Unmarshal([]byte(out), &details); err != nil {
		t.Fatalf("inspect box is not JSON: %v\n%s", err, out)
	}
	if details["home"] != "/home/alice" || details["name"] != "box" || details["owner"] != "alice" || details["state"] != "running" {
		t.Errorf("inspect box: home %v, name %v, owner %v, state %v; want /home/alice, box, alice, running\n%s",
			details["home"], details["name"], details["owner"], details["state"], out)
	}
	for _, leak := range []string{"/var/lib/docker", "Mountpoint", "mountpoint", box.ID} {
		if strings.Contains(out, leak) {
			t.Errorf("inspect box shows %q:\n%s", leak, out)
		}
	}

	// stop: gone from ps, stopped (not the exit code of the signal) in ps -a
	if out := s.mustRun(t, alice, "alice", "stop", "box"); out != "box\n" {
		t.Errorf("stop stdout = %q, want %q", out, "box\n")
	}
	out = s.mustRun(t, alice, "alice", "ps", "-a")
	if row := tableRow(outLines(out), "box"); row == nil || row[2] != "stopped" {
		t.Errorf("ps -a does not show box stopped:\n%s", out)
	}
	if out := s.mustRun(t, alice, "alice", "ps"); tableRow(outLines(out), "box") != nil {
		t.Errorf("ps (running only) lists the stopped box:\n%s", out)
	}

	// rm refuses a running container; rm -f removes it
	s.mustRun(t, alice, "alice", "start", "box")
	r := s.run(t, alice, "alice", "rm", "box")
	wantError(t, "rm of a running box", r, 1, "is running; stop it or use -f")
	if st := s.engineInspect(t, box.ID).State; st == nil || !st.Running {
		t.Errorf("box is not running after a refused rm: %+v", st)
	}
	if out := s.mustRun(t, alice, "alice", "rm", "-f", "box"); out != "box\n" {
		t.Errorf("rm -f stdout = %q, want %q", out, "box\n")
	}
	if cs := s.engineContainers(t, "alice", "box"); len(cs) != 0 {
		t.Errorf("box is still on the engine after rm -f: %+v", cs)
	}
	if _, ok := findEntry(s.psJSON(t, alice, "alice", "-a"), "alice", "box"); ok {
		t.Errorf("ps -a still lists box after rm -f")
	}

	// the home outlives the containers
	s.mustRun(t, alice, "alice", "run", "--name", "w", img, "sh", "-c", "echo persisted > ~/f")
	if e := s.waitState(t, alice, "alice", "w", "exited"); e.ExitCode != 0 {
		t.Fatalf("writing ~/f exited with %d", e.ExitCode)
	}
	s.mustRun(t, alice, "alice", "rm", "w")
	s.mustRun(t, alice, "alice", "run", "--name", "r", img, "cat", "/home/alice/f")
	s.waitLogs(t, alice, "alice", "r", "persisted")
}

func testLogsFollow(t *testing.T, cli *client.Client, img string) {
	// One session per user: while the follow holds it, nothing else of alice's gets in, so
	// a later command that does proves the server ended the follow.
	s := startContainerServer(t, cli, img, containerPrefix("f"), ctrOptions{Top: "limits:\n  max_sessions_per_user: 1\n"})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)
	s.mustRun(t, alice, "alice", "run", "--name", "ticker", img, "sh", "-c", "while :; do echo tick; sleep 1; done")

	cmd := exec.Command(sshBinary(t), s.sshArgs(alice, "alice", nil, "logs", "-f", "ticker")...)
	cmd.Env = environWithout("SSH_AUTH_SOCK")
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start ssh: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	ticks := func() int { return strings.Count(stdout.String(), "tick") }
	if !poll(pollTimeout, func() bool { return ticks() >= 1 }) {
		t.Fatalf("logs -f printed no tick; stdout %q, stderr %q", stdout.String(), stderr.String())
	}
	// Lines printed after the stream began arrive too.
	first := ticks()
	if !poll(pollTimeout, func() bool { return ticks() >= first+2 }) {
		t.Fatalf("logs -f stopped at %d ticks (first read %d); stderr %q", ticks(), first, stderr.String())
	}
	select {
	case <-exited:
		t.Fatalf("logs -f ended by itself; stderr %q", stderr.String())
	default:
	}
	r := s.run(t, alice, "alice", "ps")
	wantError(t, "a second session while logs -f runs", r, 1, "too many open sessions")

	// The client goes away without a word; the server must end the follow.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-exited
	if n := ticks(); n < 2 {
		t.Errorf("the client got %d ticks, want at least 2", n)
	}
	var last sshResult
	if !poll(pollTimeout, func() bool {
		last = s.run(t, alice, "alice", "ps")
		return last.Code == 0
	}) {
		t.Fatalf("the server still holds alice's session after the client was killed:\n%s", last)
	}
	if row := tableRow(outLines(last.Stdout), "ticker"); row == nil || row[2] != "running" {
		t.Errorf("ticker is not running after the follow ended:\n%s", last.Stdout)
	}
}

func testIsolation(t *testing.T, cli *client.Client, img string) {
	s := startContainerServer(t, cli, img, containerPrefix("i"), ctrOptions{Top: "tas: [tanaka]\n"})
	alice, bob, tanaka := newKey(t, "alice"), newKey(t, "bob"), newKey(t, "tanaka")
	s.addKey(t, "alice", alice)
	s.addKey(t, "bob", bob)
	s.addKey(t, "tanaka", tanaka)

	s.mustRun(t, alice, "alice", "run", "--name", "box", img)
	box := s.engineContainer(t, "alice", "box")
	if st := s.engineInspect(t, box.ID).State; st == nil || !st.Running {
		t.Fatalf("alice's box is not running: %+v", st)
	}

	// What a missing container looks like; alice's must look the same to bob.
	missing := s.run(t, bob, "bob", "inspect", "nosuchthing")
	if missing.Code != 1 || missing.Stdout != "" || missing.Stderr != "error: no such container: nosuchthing\n" {
		t.Fatalf("inspect nosuchthing: want exit 1 and one not-found line\n%s", missing)
	}
	notFoundLine := func(typed string) string {
		return strings.Replace(missing.Stderr, "nosuchthing", typed, 1)
	}

	if out := s.mustRun(t, bob, "bob", "ps", "-a"); tableRow(outLines(out), "box") != nil || strings.Contains(out, "alice") {
		t.Errorf("bob's ps -a shows alice's box:\n%s", out)
	}
	if list := s.psJSON(t, bob, "bob", "-a"); len(list) != 0 {
		t.Errorf("bob's ps -a --json = %+v, want nothing", list)
	}

	refs := []string{"box", "alice/box", s.prefix + "-alice-box", box.ID, box.ID[:12]}
	verbs := [][]string{{"inspect"}, {"start"}, {"stop"}, {"restart"}, {"rm", "-f"}, {"logs"}}
	for _, ref := range refs {
		for _, verb := range verbs {
			args := append(slices.Clone(verb), ref)
			r := s.run(t, bob, "bob", args...)
			if r.Code != 1 || r.Stdout != "" || r.Stderr != notFoundLine(ref) {
				t.Errorf("bob %q: want exit 1 and exactly %q\n%s", args, notFoundLine(ref), r)
			}
		}
	}
	// Engine names and IDs are no way in for the owner either.
	for _, ref := range []string{s.prefix + "-alice-box", box.ID, box.ID[:12]} {
		r := s.run(t, alice, "alice", "inspect", ref)
		if r.Code != 1 || r.Stderr != notFoundLine(ref) {
			t.Errorf("alice inspect %q: want exit 1 and exactly %q\n%s", ref, notFoundLine(ref), r)
		}
	}
	if st := s.engineInspect(t, box.ID).State; st == nil || !st.Running {
		t.Errorf("alice's box is not running after bob's attempts: %+v", st)
	}
	s.waitAudit(t, "bob's refused stop", func(e auditEntry) bool {
		return e.User == "bob" && e.Action == "stop" && e.Result == "refused"
	})

	// A student may not list everyone's containers.
	r := s.run(t, alice, "alice", "ps", "--all-users")
	wantError(t, "a student's ps --all-users", r, 2, "--all-users")

	// A TA sees and stops it.
	out := s.mustRun(t, tanaka, "tanaka", "ps", "--all-users")
	if h := strings.Fields(outLines(out)[0]); len(h) < 2 || h[0] != "OWNER" || h[1] != "NAME" {
		t.Errorf("the TA's ps --all-users has no OWNER column:\n%s", out)
	}
	if row := tableRow(outLines(out), "alice", "box"); row == nil || row[3] != "running" {
		t.Errorf("the TA's ps --all-users does not show alice's box running:\n%s", out)
	}
	if _, ok := findEntry(s.psJSON(t, tanaka, "tanaka", "--all-users"), "alice", "box"); !ok {
		t.Errorf("the TA's ps --all-users --json has no alice/box")
	}
	// Another user's container is never stopped without saying why.
	if r := s.run(t, tanaka, "tanaka", "stop", "alice/box"); r.Code != 2 || !strings.Contains(r.Stderr, "--reason") {
		t.Errorf("the TA's stop of alice/box without --reason: want exit 2 naming --reason, got %s", r)
	}
	if st := s.engineInspect(t, box.ID).State; st == nil || !st.Running {
		t.Errorf("alice's box stopped although the TA gave no reason: %+v", st)
	}
	if out := s.mustRun(t, tanaka, "tanaka", "stop", "--reason", "checking the TA console", "alice/box"); out != "alice/box\n" {
		t.Errorf("the TA's stop stdout = %q", out)
	}
	if st := s.engineInspect(t, box.ID).State; st == nil || st.Running {
		t.Errorf("alice's box still runs after the TA stopped it: %+v", st)
	}
	s.waitAudit(t, "the TA's stop", func(e auditEntry) bool {
		return e.User == "tanaka" && e.Action == "stop" && e.Target == "alice/box" && e.Result == "ok"
	})
}

func testBadInput(t *testing.T, cli *client.Client, img string) {
	s := startContainerServer(t, cli, img, containerPrefix("b"), ctrOptions{})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)

	before := s.objects(t)
	cases := []struct {
		args   []string
		code   int // 0: any non-zero status
		substr string
	}{
		{[]string{"run", "--name", "Bad_Name", img}, 2, "invalid container name"},
		{[]string{"run", "--name", "ok", "bad image ref!!"}, 2, "invalid image reference"},
		{[]string{"run", "-e", "=x", img}, 2, "invalid environment variable"},
		{[]string{"run", "--memory", "lots", img}, 2, "--memory"},
		{[]string{"run", "--name", "\x1b]0;pwned\x07x", img}, 2, "invalid container name"},
		{[]string{"run", "nosuch:image"}, 0, "nosuch:image"},
	}
	for _, c := range cases {
		r := s.run(t, alice, "alice", c.args...)
		what := fmt.Sprintf("%q", c.args)
		if c.code == 0 {
			if r.Code == 0 {
				t.Errorf("%s: exit 0, want a failure\n%s", what, r)
			}
			wantOneLineError(t, what, r, c.substr)
		} else {
			wantError(t, what, r, c.code, c.substr)
		}
		if strings.ContainsAny(r.Stderr, "\x1b\x07") {
			t.Errorf("%s: a terminal control character reached stderr: %q", what, r.Stderr)
		}
		if after := s.objects(t); after != before {
			t.Errorf("%s changed the engine: containers, volumes, networks %v -> %v", what, before, after)
		}
	}
	// The same server does create what is valid.
	s.mustRun(t, alice, "alice", "run", "--name", "ok", img)
	if after := s.objects(t); after[0] != before[0]+1 {
		t.Errorf("a valid run made %d containers, want 1", after[0]-before[0])
	}
}

func testQuota(t *testing.T, cli *client.Client, img string) {
	s := startContainerServer(t, cli, img, containerPrefix("q"), ctrOptions{
		Docker: "  quotas:\n    student:\n      max_containers: 2\n      max_running: 2\n",
	})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)

	s.mustRun(t, alice, "alice", "run", "--name", "one", img)
	s.mustRun(t, alice, "alice", "run", "--name", "two", img)
	r := s.run(t, alice, "alice", "run", "--name", "three", img)
	wantError(t, "a third run over max_containers 2", r, 1, "at most 2")
	if cs := s.engineContainers(t, "alice", ""); len(cs) != 2 {
		t.Errorf("%d containers of alice on the engine, want 2", len(cs))
	}
	if _, ok := findEntry(s.psJSON(t, alice, "alice", "-a"), "alice", "three"); ok {
		t.Errorf("ps -a lists the refused container three")
	}
}

func testHardening(t *testing.T, cli *client.Client, img string) {
	s := startContainerServer(t, cli, img, containerPrefix("h"), ctrOptions{})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)
	s.mustRun(t, alice, "alice", "run", "--name", "hard", img)
	in := s.engineInspect(t, s.engineContainer(t, "alice", "hard").ID)
	hc := in.HostConfig
	if hc == nil {
		t.Fatalf("no HostConfig in the inspect")
	}
	if hc.Privileged {
		t.Errorf("Privileged is true")
	}
	if !slices.Equal(hc.CapDrop, []string{"ALL"}) {
		t.Errorf("CapDrop = %v, want [ALL]", hc.CapDrop)
	}
	if !slices.ContainsFunc(hc.SecurityOpt, func(o string) bool { return strings.HasPrefix(o, "no-new-privileges") }) {
		t.Errorf("SecurityOpt = %v, want no-new-privileges", hc.SecurityOpt)
	}
	if hc.PidsLimit == nil || *hc.PidsLimit <= 0 {
		t.Errorf("PidsLimit = %v, want > 0", hc.PidsLimit)
	}
	if hc.Memory <= 0 || hc.NanoCPUs <= 0 {
		t.Errorf("Memory %d, NanoCpus %d; want both > 0", hc.Memory, hc.NanoCPUs)
	}
	// NetworkMode names alice's own bridge network (the engine keeps whatever reference the
	// create call gave: its name or its ID).
	netName := s.prefix + "-net-alice"
	if mode := hc.NetworkMode; mode.IsHost() || mode.IsNone() || mode.IsDefault() || mode.IsBridge() || mode.IsContainer() {
		t.Errorf("NetworkMode = %q, want alice's own network", mode)
	} else if nw := s.engineNetwork(t, string(mode)); nw.Name != netName || nw.Driver != "bridge" {
		t.Errorf("NetworkMode %q is the %s network %q, want the bridge network %q", mode, nw.Driver, nw.Name, netName)
	}
	if in.NetworkSettings == nil || len(in.NetworkSettings.Networks) != 1 || in.NetworkSettings.Networks[netName] == nil {
		t.Errorf("attached to %v, want only %s", in.NetworkSettings, netName)
	}
	if len(hc.Binds) != 0 {
		t.Errorf("Binds = %v, want none", hc.Binds)
	}
	if len(in.Mounts) != 1 {
		t.Fatalf("mounts %+v, want only the home", in.Mounts)
	}
	if m := in.Mounts[0]; m.Destination != "/home/alice" || string(m.Type) != "volume" || m.Name != s.prefix+"-home-alice" {
		t.Errorf("the one mount is %+v, want the volume %s-home-alice at /home/alice", m, s.prefix)
	}
}

func testDashboardLive(t *testing.T, cli *client.Client, img string) {
	s := startContainerServer(t, cli, img, containerPrefix("d"), ctrOptions{})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)
	s.mustRun(t, alice, "alice", "run", "--name", "live", img)
	live := s.engineContainer(t, "alice", "live")

	tm := s.openDashboard(t, alice, "alice", "student", 120, 30)
	rowState := func(ls []string) string {
		if row := tableRow(ls, "live"); len(row) > 2 {
			return row[2]
		}
		return ""
	}
	tm.waitScreen("live running", func(ls []string) bool { return rowState(ls) == "running" })

	// Stopped behind the server's back: the event stream brings it to the screen.
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	timeout := 1
	if _, err := s.cli.ContainerStop(ctx, live.ID, client.ContainerStopOptions{Timeout: &timeout}); err != nil {
		t.Fatalf("stop live on the engine: %v", err)
	}
	tm.waitScreen("live exited", func(ls []string) bool { return strings.HasPrefix(rowState(ls), "exited") })

	tm.send("d")
	tm.waitText("remove live? y/N")
	tm.send("y")
	tm.waitScreen("no live row", func(ls []string) bool { return tableRow(ls, "live") == nil })
	if _, ok := findEntry(s.psJSON(t, alice, "alice", "-a"), "alice", "live"); ok {
		t.Errorf("ps -a still lists live after d, y")
	}
	if cs := s.engineContainers(t, "alice", "live"); len(cs) != 0 {
		t.Errorf("live is still on the engine: %+v", cs)
	}
	tm.send("q")
	if code := tm.waitExit(sshTimeout); code != 0 {
		t.Errorf("ssh exited %d after q, want 0", code)
	}
}

// TestE2EDockerUnreachable needs no engine: the configured one does not exist.
func TestE2EDockerUnreachable(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{Config: "docker:\n  name_prefix: e2eu\n  host: unix:///nonexistent.sock\n"})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)

	s.mustLogIn(t, alice, "alice", "student", "keys-dir")
	r := s.ssh(t, alice, "alice", "ps")
	wantError(t, "ps without Docker", r, 1, "Docker unreachable")

	tm := s.openDashboard(t, alice, "alice", "student", 100, 30)
	tm.waitText("Docker unreachable")
	tm.send("q")
	if code := tm.waitExit(sshTimeout); code != 0 {
		t.Errorf("ssh exited %d after q, want 0", code)
	}
	if w, r := s.whoami(t, alice, "alice"); r.Code != 0 || w["user"] != "alice" {
		t.Errorf("whoami after the dashboard: %s", r)
	}
}
