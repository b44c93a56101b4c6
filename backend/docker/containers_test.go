package docker_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// capBits are the Linux capability numbers of the default allow-list.
var capBits = map[string]uint{
	"CHOWN": 0, "DAC_OVERRIDE": 1, "FOWNER": 3, "FSETID": 4, "KILL": 5, "SETGID": 6, "SETUID": 7,
	"NET_BIND_SERVICE": 10, "SYS_CHROOT": 18, "AUDIT_WRITE": 29,
}

// TestHardening proves the policy from what the engine created, and from inside.
func TestHardening(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	c := r.run(alice, docker.RunSpec{Name: "box", CPUs: 0.5, Memory: 64 << 20,
		Cmd: []string{"sh", "-c", "grep -E '^(CapEff|CapBnd|NoNewPrivs)' /proc/self/status; sleep 3600"}})
	other := r.run(bob, docker.RunSpec{Name: "box"})

	ins, err := r.cli.ContainerInspect(r.ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	hc := ins.Container.HostConfig
	cfg := r.svc.Config()
	var wantCaps []string
	for _, cp := range docker.DefaultCapabilities {
		wantCaps = append(wantCaps, "CAP_"+cp)
	}
	slices.Sort(wantCaps)
	gotCaps := slices.Sorted(slices.Values(hc.CapAdd))
	checks := []struct {
		what string
		ok   bool
		got  any
	}{
		{"not privileged", !hc.Privileged, hc.Privileged},
		{"CapDrop ALL", slices.Equal(hc.CapDrop, []string{"ALL"}), hc.CapDrop},
		{"CapAdd == allow-list", slices.Equal(gotCaps, wantCaps), gotCaps},
		{"no-new-privileges", slices.Contains(hc.SecurityOpt, "no-new-privileges:true"), hc.SecurityOpt},
		{"pids limit", hc.PidsLimit != nil && *hc.PidsLimit == cfg.PidsLimit, hc.PidsLimit},
		{"memory", hc.Memory == 64<<20 && hc.MemorySwap == 64<<20, []int64{hc.Memory, hc.MemorySwap}},
		{"CPUs", hc.NanoCPUs == 5e8, hc.NanoCPUs},
		{"network not host", !hc.NetworkMode.IsHost() && !hc.NetworkMode.IsNone(), hc.NetworkMode},
		{"pid not host", !hc.PidMode.IsHost(), hc.PidMode},
		{"ipc private", hc.IpcMode.IsPrivate(), hc.IpcMode},
		{"uts not host", !hc.UTSMode.IsHost(), hc.UTSMode},
		{"userns not host", !hc.UsernsMode.IsHost(), hc.UsernsMode},
		{"cgroupns private", hc.CgroupnsMode.IsPrivate(), hc.CgroupnsMode},
		{"no binds", len(hc.Binds) == 0, hc.Binds},
		{"no devices", len(hc.Devices) == 0 && len(hc.DeviceRequests) == 0, hc.Devices},
		{"no published ports", len(hc.PortBindings) == 0 && !hc.PublishAllPorts, hc.PortBindings},
	}
	for _, ch := range checks {
		if !ch.ok {
			t.Errorf("%s: got %v", ch.what, ch.got)
		}
	}

	// Mounts: only the home, a named volume of alice's, at /home/alice.
	if len(ins.Container.Mounts) != 1 {
		t.Fatalf("mounts = %+v, want only the home", ins.Container.Mounts)
	}
	m := ins.Container.Mounts[0]
	if m.Type != "volume" || m.Name != cfg.NamePrefix+"-home-alice" || m.Destination != "/home/alice" {
		t.Errorf("home mount = %+v", m)
	}
	raw, _ := json.Marshal(ins.Container)
	if strings.Contains(string(raw), "docker.sock") {
		t.Error("the Docker socket appears in the container")
	}
	if ins.Container.Config.WorkingDir != "/home/alice" || !slices.Contains(ins.Container.Config.Env, "HOME=/home/alice") {
		t.Errorf("workdir %q env %q", ins.Container.Config.WorkingDir, ins.Container.Config.Env)
	}

	// Networks: alice's own, and not bob's.
	nets := ins.Container.NetworkSettings.Networks
	if len(nets) != 1 || nets[cfg.NamePrefix+"-net-alice"] == nil {
		t.Fatalf("networks = %v, want only %s-net-alice", slices.Collect(mapKeys(nets)), cfg.NamePrefix)
	}
	bins, err := r.cli.ContainerInspect(r.ctx, other.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	bnets := bins.Container.NetworkSettings.Networks
	if len(bnets) != 1 || bnets[cfg.NamePrefix+"-net-bob"] == nil ||
		bnets[cfg.NamePrefix+"-net-bob"].NetworkID == nets[cfg.NamePrefix+"-net-alice"].NetworkID {
		t.Errorf("bob's networks = %v, want his own", slices.Collect(mapKeys(bnets)))
	}

	// Labels on every object.
	for _, k := range []string{docker.LabelOwner, docker.LabelName, docker.LabelManaged, dockertest.LabelRun} {
		if ins.Container.Config.Labels[k] == "" {
			t.Errorf("label %s missing", k)
		}
	}
	vol, err := r.cli.VolumeInspect(r.ctx, m.Name, client.VolumeInspectOptions{})
	if err != nil || vol.Volume.Labels[docker.LabelOwner] != "alice" || vol.Volume.Labels[dockertest.LabelRun] == "" {
		t.Errorf("home volume labels: %v %v", vol.Volume.Labels, err)
	}

	// And from inside: the kernel agrees.
	var want uint64
	for _, b := range capBits {
		want |= 1 << b
	}
	var status string
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if status = r.logs(alice, "box", docker.LogOptions{}); strings.Contains(status, "NoNewPrivs") {
			break
		}
	}
	for _, line := range strings.Split(status, "\n") {
		k, v, _ := strings.Cut(line, ":")
		v = strings.TrimSpace(v)
		switch k {
		case "CapEff", "CapBnd":
			got, err := strconv.ParseUint(v, 16, 64)
			if err != nil || got != want {
				t.Errorf("%s = %s, want %x", k, v, want)
			}
		case "NoNewPrivs":
			if v != "1" {
				t.Errorf("NoNewPrivs = %s", v)
			}
		}
	}
	if !strings.Contains(status, "NoNewPrivs") {
		t.Errorf("no status from inside the container: %q", status)
	}
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// TestHostPathHome: the home template is the only host path, created 0700, and persists.
func TestHostPathHome(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	r := newRig(t, func(c *docker.Config) { c.HomeHostPath = filepath.Join(base, "homes", "{user}") })
	c := r.run(alice, docker.RunSpec{Name: "w", Cmd: []string{"sh", "-c", "echo hi > ~/f"}})
	if code := r.wait(c); code != 0 {
		t.Fatalf("exit %d", code)
	}
	dir := filepath.Join(base, "homes", "alice")
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("home dir: %v %v", fi, err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "f")); err != nil || string(b) != "hi\n" {
		t.Errorf("file in home = %q, %v", b, err)
	}
	ins, err := r.cli.ContainerInspect(r.ctx, c.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ms := ins.Container.Mounts; len(ms) != 1 || ms[0].Type != "bind" || ms[0].Source != dir || ms[0].Destination != "/home/alice" {
		t.Errorf("mounts = %+v", ms)
	}
	d, err := r.svc.Inspect(r.ctx, alice, "w")
	if err != nil || d.Home != "/home/alice" {
		t.Errorf("inspect home = %q, %v", d.Home, err)
	}
	if raw, _ := json.Marshal(d); strings.Contains(string(raw), base) {
		t.Errorf("inspect shows a host path: %s", raw)
	}
}

// TestIsolation: bob reaches nothing of alice's by any spelling, and cannot tell a miss
// from "not yours"; a TA can, by alice/name.
func TestIsolation(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	box := r.run(alice, docker.RunSpec{Name: "box"})
	ins, err := r.cli.ContainerInspect(r.ctx, box.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refs := []string{"box", "alice/box", strings.TrimPrefix(ins.Container.Name, "/"),
		box.ID, box.ID[:12], box.ID[:4], "nosuch", "alice/nosuch", "../box", "box\x1b[31m"}
	ops := map[string]func(ref string) error{
		"inspect": func(ref string) error { _, err := r.svc.Inspect(r.ctx, bob, ref); return err },
		"start":   func(ref string) error { return r.svc.Start(r.ctx, bob, ref) },
		"stop":    func(ref string) error { return r.svc.Stop(r.ctx, bob, ref, "") },
		"restart": func(ref string) error { return r.svc.Restart(r.ctx, bob, ref) },
		"rm":      func(ref string) error { return r.svc.Remove(r.ctx, bob, ref, true, "") },
		"logs": func(ref string) error {
			rc, err := r.svc.Logs(r.ctx, bob, ref, docker.LogOptions{})
			if err == nil {
				rc.Close()
			}
			return err
		},
	}
	for name, op := range ops {
		for _, ref := range refs {
			err := op(ref)
			want := "no such container: " + ref
			if strings.ContainsAny(ref, "\x1b") {
				want = "no such container: " + strconv.QuoteToASCII(ref)
			}
			if !errors.Is(err, docker.ErrNotFound) || err.Error() != want {
				t.Errorf("bob %s %q: %v, want %q", name, ref, err, want)
			}
		}
	}
	for _, opts := range []docker.ListOptions{{All: true}, {All: true, AllUsers: true}} {
		list, err := r.svc.List(r.ctx, bob, opts)
		if err != nil || len(list) != 0 {
			t.Errorf("bob lists %+v: %v %v", opts, list, err)
		}
		snap, _ := r.svc.Snapshot(bob, opts)
		if len(snap) != 0 {
			t.Errorf("bob's snapshot %+v: %v", opts, snap)
		}
	}
	// Nobody is nobody.
	if _, err := r.svc.List(r.ctx, backend.Identity{}, docker.ListOptions{}); !errors.Is(err, docker.ErrPermission) {
		t.Errorf("zero identity lists: %v", err)
	}
	if err := r.svc.Stop(r.ctx, backend.Identity{User: "alice"}, "box", ""); !errors.Is(err, docker.ErrPermission) {
		t.Errorf("identity without role stops: %v", err)
	}

	// alice's box is untouched.
	d, err := r.svc.Inspect(r.ctx, alice, "alice/box")
	if err != nil || d.State != "running" {
		t.Fatalf("alice's box after bob: %+v %v", d, err)
	}

	// The TA: by alice/name yes, by plain name (their own namespace) no.
	if _, err := r.svc.Inspect(r.ctx, tina, "box"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("TA inspect box: %v", err)
	}
	if d, err := r.svc.Inspect(r.ctx, tina, "alice/box"); err != nil || d.Owner != "alice" {
		t.Errorf("TA inspect alice/box: %+v %v", d, err)
	}
	all, err := r.svc.List(r.ctx, tina, docker.ListOptions{All: true, AllUsers: true})
	if _, ok := find(all, "alice", "box"); err != nil || !ok {
		t.Errorf("TA list: %v %v", all, err)
	}
	if own, _ := r.svc.List(r.ctx, tina, docker.ListOptions{All: true}); len(own) != 0 {
		t.Errorf("TA's own list: %v", own)
	}
	if err := r.svc.Stop(r.ctx, tina, "alice/box", ""); err != nil {
		t.Errorf("TA stop: %v", err)
	}
	_ = r.logs(tina, "alice/box", docker.LogOptions{})
	if err := r.svc.Remove(r.ctx, tina, "alice/box", false, ""); err != nil {
		t.Errorf("TA rm: %v", err)
	}
	if _, err := r.svc.Inspect(r.ctx, alice, "box"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("after TA rm: %v", err)
	}
}

// TestHomeSurvivesRemove: what a container writes to ~ outlives it; bob's home is not alice's.
func TestHomeSurvivesRemove(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	w := r.run(alice, docker.RunSpec{Name: "writer", Cmd: []string{"sh", "-c", "echo hi > ~/f"}})
	r.wait(w)
	if err := r.svc.Remove(r.ctx, alice, "writer", false, ""); err != nil {
		t.Fatal(err)
	}
	rd := r.run(alice, docker.RunSpec{Name: "reader", Cmd: []string{"cat", "f"}})
	if code := r.wait(rd); code != 0 {
		t.Fatalf("reader exit %d", code)
	}
	if got := r.logs(alice, "reader", docker.LogOptions{}); got != "hi\n" {
		t.Errorf("reader saw %q", got)
	}
	other := r.run(bob, docker.RunSpec{Name: "reader", Cmd: []string{"cat", "f"}})
	if code := r.wait(other); code == 0 {
		t.Errorf("bob read alice's file: %q", r.logs(bob, "reader", docker.LogOptions{}))
	}
}

// TestQuota: every limit refuses with a line that names it, and creates nothing.
func TestQuota(t *testing.T) {
	t.Parallel()
	r := newRig(t, func(c *docker.Config) {
		c.Student = docker.Quota{MaxContainers: 2, MaxRunning: 1, MaxCPUs: 1, MaxMemory: 128 << 20}
		c.DefaultCPUs, c.DefaultMemory = 0.5, 64<<20
	})
	r.run(alice, docker.RunSpec{Name: "a"})
	refuse := func(spec docker.RunSpec, want string) {
		t.Helper()
		before, _, _ := r.count()
		spec.Image = r.img
		_, err := r.svc.Run(r.ctx, alice, spec)
		if !errors.Is(err, docker.ErrQuota) || err.Error() != want {
			t.Errorf("run %+v: %v, want %q", spec, err, want)
		}
		if after, _, _ := r.count(); after != before {
			t.Errorf("refused run changed the container count %d -> %d", before, after)
		}
	}
	refuse(docker.RunSpec{Name: "b"}, "quota: at most 1 running containers for students (you have 1)")
	refuse(docker.RunSpec{Name: "b", CPUs: 2}, "quota: at most 1 CPUs per container for students (asked 2)")
	refuse(docker.RunSpec{Name: "b", Memory: 1 << 30}, "quota: at most 128 MiB memory per container for students (asked 1.0 GiB)")
	if err := r.svc.Stop(r.ctx, alice, "a", ""); err != nil {
		t.Fatal(err)
	}
	r.run(alice, docker.RunSpec{Name: "b"})
	refuse(docker.RunSpec{Name: "c"}, "quota: at most 2 containers for students (you have 2)")
	if err := r.svc.Start(r.ctx, alice, "a"); !errors.Is(err, docker.ErrQuota) {
		t.Errorf("start beyond the running quota: %v", err)
	}
	// The TA is not bound by their own quota when acting for a student.
	if err := r.svc.Start(r.ctx, tina, "alice/a"); err != nil {
		t.Errorf("TA start: %v", err)
	}
	// bob's quota is his own.
	r.run(bob, docker.RunSpec{Name: "a"})
}

// TestBadInput: every bad name, image, env, command or limit is refused with one clear
// line, and nothing is created.
func TestBadInput(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	img, err := r.cli.ImageInspect(r.ctx, r.img)
	if err != nil {
		t.Fatal(err)
	}
	shortID := strings.TrimPrefix(img.ID, "sha256:")[:12]
	cases := []struct {
		spec docker.RunSpec
		kind error
		want string
	}{
		{docker.RunSpec{Name: "Box"}, docker.ErrInvalid, "invalid container name Box: use 1-32 lower-case letters, digits, '-' and '_', starting and ending with a letter or digit"},
		{docker.RunSpec{Name: "-x"}, docker.ErrInvalid, "invalid container name -x"},
		{docker.RunSpec{Name: "a.b"}, docker.ErrInvalid, "invalid container name a.b"},
		{docker.RunSpec{Name: strings.Repeat("a", 33)}, docker.ErrInvalid, "invalid container name aaaa"},
		{docker.RunSpec{Name: "x\x1b[31m"}, docker.ErrInvalid, `invalid container name "x\x1b[31m"`},
		{docker.RunSpec{Name: "ok", Image: "UPPER"}, docker.ErrInvalid, "invalid image reference UPPER"},
		{docker.RunSpec{Name: "ok", Image: "a b"}, docker.ErrInvalid, `invalid image reference "a b"`},
		{docker.RunSpec{Name: "ok", Image: ":tag"}, docker.ErrInvalid, "invalid image reference :tag"},
		{docker.RunSpec{Name: "ok", Image: "nosuch:1"}, docker.ErrNoImage, "image nosuch:1 not found on this server"},
		{docker.RunSpec{Name: "ok", Image: shortID}, docker.ErrNoImage, "image " + shortID + " not found on this server"},
		{docker.RunSpec{Name: "ok", Env: []string{"1X=2"}}, docker.ErrInvalid, "invalid environment variable 1X=2"},
		{docker.RunSpec{Name: "ok", Env: []string{"NOEQ"}}, docker.ErrInvalid, "invalid environment variable NOEQ"},
		{docker.RunSpec{Name: "ok", Env: []string{"A B=c"}}, docker.ErrInvalid, `invalid environment variable "A B=c"`},
		{docker.RunSpec{Name: "ok", Cmd: []string{"echo", "a\x00b"}}, docker.ErrInvalid, "command contains a NUL byte"},
		{docker.RunSpec{Name: "ok", CPUs: -1}, docker.ErrInvalid, "invalid CPU limit -1"},
		{docker.RunSpec{Name: "ok", Memory: 1024}, docker.ErrInvalid, "invalid memory limit 1024 bytes"},
	}
	for _, tc := range cases {
		spec := tc.spec
		if spec.Image == "" {
			spec.Image = r.img
		}
		_, err := r.svc.Run(r.ctx, alice, spec)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") ||
			(tc.kind != nil && !errors.Is(err, tc.kind)) {
			t.Errorf("run %q: %v, want %q...", spec.Name, err, tc.want)
		}
		if cs, _, _ := r.count(); cs != 0 {
			t.Fatalf("run %q left %d containers", spec.Name, cs)
		}
	}
	// Nothing at all was made for bad input before the image check.
	if cs, vs, ns := r.count(); cs+vs+ns > 1 {
		t.Errorf("objects left: %d containers, %d volumes, %d networks", cs, vs, ns)
	}

	r.run(alice, docker.RunSpec{Name: "box"})
	if _, err := r.svc.Run(r.ctx, alice, docker.RunSpec{Name: "box", Image: r.img}); !errors.Is(err, docker.ErrConflict) ||
		err.Error() != "container box already exists" {
		t.Errorf("second box: %v", err)
	}
	if err := r.svc.Remove(r.ctx, alice, "box", false, ""); !errors.Is(err, docker.ErrConflict) ||
		err.Error() != "container box is running; stop it or use -f" {
		t.Errorf("rm running box: %v", err)
	}
	if err := r.svc.Remove(r.ctx, alice, "box", true, ""); err != nil {
		t.Errorf("rm -f box: %v", err)
	}
	// A generated name.
	c := r.run(alice, docker.RunSpec{})
	if !strings.HasPrefix(c.Name, "wm-test-busybox-") || docker.ValidateName(c.Name) != nil {
		t.Errorf("generated name %q", c.Name)
	}
}

// TestLogs: tail, timestamps, follow; TTY (raw) and non-TTY (multiplexed) containers.
func TestLogs(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "talk", Cmd: []string{"sh", "-c",
		"echo one; echo two; echo three; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo late; sleep 3600"}})

	// Follow: the stream stays open and brings what comes later.
	rc, err := r.svc.Logs(r.ctx, alice, "talk", docker.LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- strings.TrimRight(sc.Text(), "\r")
		}
		close(lines)
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case <-time.After(10 * time.Second):
			t.Fatal("no log line in 10s")
		}
		return ""
	}
	for _, want := range []string{"one", "two", "three"} {
		if got := next(); got != want {
			t.Fatalf("followed line %q, want %q", got, want)
		}
	}
	go func() {
		// Nothing in the API lets a user do this; the raw client plays the user typing.
		ex, err := r.cli.ExecCreate(r.ctx, r.mustID(alice, "talk"), client.ExecCreateOptions{Cmd: []string{"touch", "/tmp/go"}})
		if err == nil {
			_, _ = r.cli.ExecStart(r.ctx, ex.ID, client.ExecStartOptions{Detach: true})
		}
	}()
	if got := next(); got != "late" {
		t.Fatalf("followed line %q, want late", got)
	}
	rc.Close()

	if got := r.logs(alice, "talk", docker.LogOptions{}); got != "one\ntwo\nthree\nlate\n" {
		t.Errorf("all logs %q", got)
	}
	if got := r.logs(alice, "talk", docker.LogOptions{Tail: 2}); got != "three\nlate\n" {
		t.Errorf("tail 2: %q", got)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.logs(alice, "talk", docker.LogOptions{Timestamps: true})), "\n") {
		ts, text, _ := strings.Cut(line, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || text == "" {
			t.Errorf("timestamped line %q: %v", line, err)
		}
	}

	// A non-TTY managed container (made here with the raw client): stdout and stderr demultiplexed.
	labels := map[string]string{docker.LabelManaged: "true", docker.LabelKind: docker.KindContainer, docker.LabelOwner: "alice", docker.LabelName: "plain"}
	for k, v := range r.svc.Config().Labels {
		labels[k] = v
	}
	cr, err := r.cli.ContainerCreate(r.ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: r.img, Labels: labels, Cmd: []string{"sh", "-c", "echo out; echo err >&2"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.cli.ContainerStart(r.ctx, cr.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	r.wait(docker.Container{ID: cr.ID, Name: "plain"})
	if got := r.logs(alice, "plain", docker.LogOptions{}); got != "out\nerr\n" && got != "err\nout\n" {
		t.Errorf("non-TTY logs %q", got)
	}
	if got := r.logs(alice, "plain", docker.LogOptions{Follow: true}); got != "out\nerr\n" && got != "err\nout\n" {
		t.Errorf("non-TTY followed logs of an exited container %q", got)
	}
}

func (r *rig) mustID(id backend.Identity, ref string) string {
	d, err := r.svc.Inspect(r.ctx, id, ref)
	if err != nil {
		r.t.Fatal(err)
	}
	return d.ID
}

// TestAudit: every mutating action is recorded with its result.
func TestAudit(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	svc, path := r.auditedService()
	ctx := r.ctx
	if _, err := svc.Run(ctx, alice, docker.RunSpec{Name: "box", Image: r.img}); err != nil {
		t.Fatal(err)
	}
	_ = svc.Stop(ctx, alice, "box", "")
	_ = svc.Start(ctx, alice, "box")
	_ = svc.Restart(ctx, alice, "box")
	_ = svc.Remove(ctx, alice, "box", true, "")
	_ = svc.Remove(ctx, bob, "alice/box", true, "")
	_, _ = svc.Run(ctx, alice, docker.RunSpec{Name: "Bad", Image: r.img})

	got := auditLines(t, path)
	want := []string{
		"alice run alice/box ok", "alice stop alice/box ok", "alice start alice/box ok",
		"alice restart alice/box ok", "alice rm alice/box ok", "bob rm alice/box refused",
		"alice run alice/Bad refused",
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestAPIVersionNotPinnedByEnv: a stray DOCKER_API_VERSION does not pin the client.
func TestAPIVersionNotPinnedByEnv(t *testing.T) {
	// Pinned, every request would go to /v1.99/ and the engine would refuse it.
	t.Setenv("DOCKER_API_VERSION", "1.99")
	svc := dockertest.NewService(t)
	if _, err := svc.List(t.Context(), alice, docker.ListOptions{All: true}); err != nil {
		t.Fatalf("list with DOCKER_API_VERSION=1.99 set: %v", err)
	}
}

func TestConfigDefaultsValid(t *testing.T) {
	if err := docker.DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := dockertest.Config().Validate(); err != nil {
		t.Fatal(err)
	}
}

// TestStoppedOnPurpose: a container the server stopped reads as stopped, with who did it
// and why; a crash keeps its exit code; a TA's stop or removal of a student's container is
// a notice to the student, kept on disk, and the audit line carries the reason.
func TestStoppedOnPurpose(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	svc, path := r.auditedService()
	if err := svc.Watch(r.ctx); err != nil {
		t.Fatal(err)
	}
	if err := svc.SetNoticeDir(filepath.Join(t.TempDir(), "notices")); err != nil {
		t.Fatal(err)
	}
	ctx := r.ctx
	for _, name := range []string{"box", "mine"} {
		if _, err := svc.Run(ctx, alice, docker.RunSpec{Name: name, Image: r.img}); err != nil {
			t.Fatal(err)
		}
	}
	crash, err := svc.Run(ctx, alice, docker.RunSpec{Name: "crash", Image: r.img, Cmd: []string{"sh", "-c", "sleep 1; exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	r.wait(crash)
	if err := svc.Stop(ctx, tina, "alice/box", "bad\nreason"); !errors.Is(err, docker.ErrInvalid) {
		t.Errorf("a reason of two lines: %v", err)
	}
	if err := svc.Stop(ctx, tina, "alice/box", "the exam needs the GPU"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Stop(ctx, alice, "mine", ""); err != nil {
		t.Fatal(err)
	}

	byName := func(cs []docker.Container) map[string]docker.Container {
		m := map[string]docker.Container{}
		for _, c := range cs {
			m[c.Name] = c
		}
		return m
	}
	waitUntil(t, "the snapshot to show the stops", func() bool {
		snap, _ := svc.Snapshot(alice, docker.ListOptions{All: true})
		m := byName(snap)
		return m["box"].Stopped != nil && m["mine"].Stopped != nil && m["crash"].State == "exited"
	})
	snap, _ := svc.Snapshot(alice, docker.ListOptions{All: true})
	listed, err := svc.List(ctx, alice, docker.ListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for what, cs := range map[string][]docker.Container{"snapshot": snap, "list": listed} {
		m := byName(cs)
		if s := m["box"].Stopped; s == nil || s.By != "tina" || s.ByRole != "ta" || s.Reason != "the exam needs the GPU" || m["box"].State != "exited" {
			t.Errorf("%s: box %+v stopped %+v", what, m["box"], s)
		}
		if s := m["mine"].Stopped; s == nil || s.By != "alice" {
			t.Errorf("%s: mine stopped %+v", what, s)
		}
		if c := m["crash"]; c.Stopped != nil || c.ExitCode != 3 {
			t.Errorf("%s: the crash reads as stopped on purpose: %+v", what, c)
		}
	}
	if d, err := svc.Inspect(ctx, alice, "box"); err != nil || d.Stopped == nil || d.Stopped.By != "tina" {
		t.Errorf("inspect: %+v %v", d.Stopped, err)
	}

	// The student hears of the TA's stop (not of her own), and of a removal.
	if err := svc.Remove(ctx, tina, "alice/crash", false, "cleaning up crashed containers"); err != nil {
		t.Fatal(err)
	}
	ns, seen := svc.Notices(alice)
	if seen != 0 || len(ns) != 2 || ns[0].Action != "stop" || ns[0].Container != "box" || ns[0].By != "tina" ||
		ns[0].Reason != "the exam needs the GPU" || ns[1].Action != "rm" || ns[1].Container != "crash" {
		t.Errorf("alice's notices: %+v", ns)
	}
	if ns, _ := svc.Notices(bob); len(ns) != 0 {
		t.Errorf("bob's notices: %+v", ns)
	}

	// Started again: no longer stopped on purpose.
	if err := svc.Start(ctx, tina, "alice/box"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "box running again", func() bool {
		snap, _ := svc.Snapshot(alice, docker.ListOptions{All: true})
		return byName(snap)["box"].State == "running"
	})
	if err := svc.Restart(ctx, alice, "mine"); err != nil {
		t.Fatal(err)
	}
	snap, _ = svc.Snapshot(alice, docker.ListOptions{All: true})
	if byName(snap)["box"].Stopped != nil {
		t.Error("box still marked stopped after it started again")
	}

	var notes []string
	b, _ := os.ReadFile(path)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e struct{ User, Action, Target, Result, Note string }
		if err := json.Unmarshal([]byte(line), &e); err == nil && e.Note != "" {
			notes = append(notes, strings.Join([]string{e.User, e.Action, e.Target, e.Result, e.Note}, " "))
		}
	}
	want := []string{"tina stop alice/box ok the exam needs the GPU", "tina rm alice/crash ok cleaning up crashed containers"}
	if !slices.Equal(notes, want) {
		t.Errorf("audit notes:\n%s\nwant:\n%s", strings.Join(notes, "\n"), strings.Join(want, "\n"))
	}
}

// waitUntil polls cond for up to a minute.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDetailsPortsAndTimes: Inspect says which ports the image exposes, the address on the
// user's own network, and when the container started and exited.
func TestDetailsPortsAndTimes(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	img := dockertest.ImageWith(r.ctx, t, r.cli, "ports", "EXPOSE 8888 80/tcp 53/udp")
	r.run(alice, docker.RunSpec{Name: "web", Image: img})
	d, err := r.svc.Inspect(r.ctx, alice, "web")
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"53/udp", "80/tcp", "8888/tcp"}; !slices.Equal(d.ExposedPorts, want) {
		t.Errorf("exposed ports %q, want %q", d.ExposedPorts, want)
	}
	if d.IPAddress == "" || d.Network == "" || d.StartedAt.IsZero() {
		t.Errorf("address %q on %q, started %v", d.IPAddress, d.Network, d.StartedAt)
	}
	if err := r.svc.Stop(r.ctx, alice, "web", ""); err != nil {
		t.Fatal(err)
	}
	d, err = r.svc.Inspect(r.ctx, alice, "web")
	if err != nil || d.FinishedAt.IsZero() || d.FinishedAt.Before(d.StartedAt) {
		t.Errorf("finished %v after started %v: %v", d.FinishedAt, d.StartedAt, err)
	}
}
