package docker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
	"github.com/sylabs/sif/v2/pkg/sif"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

func TestSIFName(t *testing.T) {
	cases := map[string][2]string{ // short, full
		"ubuntu":                             {"ubuntu_latest.sif", "ubuntu_latest.sif"},
		"ubuntu:24.04":                       {"ubuntu_24.04.sif", "ubuntu_24.04.sif"},
		"docker.io/library/python:3.12-slim": {"python_3.12-slim.sif", "python_3.12-slim.sif"},
		"registry.example.org/alice/proj/img:1.0":    {"img_1.0.sif", "alice_proj_img_1.0.sif"},
		"registry.ie.example/alice/ml:latest":        {"ml_latest.sif", "alice_ml_latest.sif"},
		"localhost:5000/x/y":                         {"y_latest.sif", "x_y_latest.sif"},
		"busybox@sha256:" + strings.Repeat("ab", 32): {"busybox_abababababab.sif", "busybox_abababababab.sif"},
	}
	for in, want := range cases {
		named, err := reference.ParseNormalizedNamed(in)
		if err != nil {
			t.Fatal(err)
		}
		got := [2]string{docker.SIFName(named), docker.SIFFullName(named)}
		if got != want {
			t.Errorf("SIFName, SIFFullName(%s) = %v, want %v", in, got, want)
		}
		for _, n := range got {
			if err := docker.ValidSIFName(n); err != nil {
				t.Errorf("%s: %v", n, err)
			}
		}
	}
	long, _ := reference.ParseNormalizedNamed("example.org/" + strings.Repeat("abcdefghij/", 20) + "z:1")
	if err := docker.ValidSIFName(docker.SIFFullName(long)); err != nil {
		t.Errorf("long name: %v", err)
	}
	for _, bad := range []string{"", "x", "x.tar", "../x.sif", "a/b.sif", ".x.sif", "x\x00.sif", "-x.sif", "x y.sif"} {
		if err := docker.ValidSIFName(bad); !errors.Is(err, docker.ErrInvalid) {
			t.Errorf("ValidSIFName(%q) = %v", bad, err)
		}
	}
}

// checkSIF reads a SIF file back with the SIF library and squashfs-tools-ng.
func checkSIF(t *testing.T, path, source string) {
	t.Helper()
	f, err := sif.LoadContainerFromPath(path, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatalf("load SIF: %v", err)
	}
	defer f.UnloadContainer()
	def, err := f.GetDescriptor(sif.WithDataType(sif.DataDeffile))
	if err != nil {
		t.Fatalf("definition: %v", err)
	}
	if d, _ := def.GetData(); !strings.Contains(string(d), "from: "+source) {
		t.Errorf("definition %q does not name %s", d, source)
	}
	// The JSON descriptors of Apptainer's own SIF files, by name.
	var names []string
	f.WithDescriptors(func(d sif.Descriptor) bool {
		if d.DataType() == sif.DataGenericJSON {
			names = append(names, d.Name())
		}
		return false
	})
	if !slices.Equal(names, []string{"inspect-metadata.json", "oci-config.json"}) {
		t.Errorf("JSON descriptors %q, want inspect-metadata.json and oci-config.json", names)
	}
	part, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		t.Fatalf("primary partition: %v", err)
	}
	fs, _, arch, err := part.PartitionMetadata()
	if err != nil || fs != sif.FsSquash || arch != "amd64" {
		t.Errorf("partition: fs %v arch %q %v", fs, arch, err)
	}
	data, err := part.GetData()
	if err != nil || len(data) < 4 || string(data[:4]) != "hsqs" {
		t.Fatalf("no squashfs magic at the partition offset")
	}
	sq := filepath.Join(t.TempDir(), "p.sqfs")
	if err := os.WriteFile(sq, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{"/bin": "busybox", "/.singularity.d": "runscript"} {
		out, err := exec.Command("rdsquashfs", "-l", dir, sq).CombinedOutput()
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("rdsquashfs -l %s: %v\n%s", dir, err, out)
		}
	}
}

// exportContainers lists the SIF export containers this service's labels select.
func exportContainers(t *testing.T, cli *client.Client, cfg docker.Config) int {
	t.Helper()
	f := client.Filters{}.Add("label", docker.LabelKind+"="+docker.KindSIFExport)
	for k, v := range cfg.Labels {
		f = f.Add("label", k+"="+v)
	}
	res, err := cli.ContainerList(context.Background(), client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatal(err)
	}
	return len(res.Items)
}

func TestSIFBuildListRemove(t *testing.T) {
	for _, tool := range []string{"tar2sqfs", "rdsquashfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: apt-get install squashfs-tools-ng", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	svc := dockertest.NewService(t)
	img := dockertest.BusyboxImage(ctx, t, cli)
	dir := t.TempDir()
	ss, err := docker.NewSIFService(svc, docker.SIFOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if ss.ToolsError() != nil {
		t.Fatal(ss.ToolsError())
	}
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	bob := backend.Identity{User: "bob", Role: backend.RoleStudent}
	named, _ := reference.ParseNormalizedNamed(img)
	name := docker.SIFName(named)

	var phases []string
	var last docker.SIFProgress
	var exporting []docker.SIFProgress
	f, cached, err := ss.Build(ctx, alice, img, func(p docker.SIFProgress) {
		if len(phases) == 0 || phases[len(phases)-1] != p.Phase {
			phases = append(phases, p.Phase)
		}
		if p.Phase == "exporting" {
			exporting = append(exporting, p)
		}
		last = p
	})
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	if cached || f.Name != name || f.Size <= 0 || f.Image != img || len(f.ImageID) != 12 {
		t.Errorf("result %+v cached %v, want %s built", f, cached, name)
	}
	if strings.Join(phases, ",") != "exporting,writing" || last.Done <= 0 || last.Total <= 0 {
		t.Errorf("progress phases %v, last %+v", phases, last)
	}
	// A small image (about 2 MiB) shows its progress too: steps through the export, the
	// last of them the whole count.
	tenths := map[int64]bool{}
	for _, p := range exporting {
		tenths[min(p.Done*10/p.Total, 10)] = true
	}
	if n := len(exporting); n == 0 || len(tenths) < 6 || exporting[n-1].Done != last.Done || last.Done < last.Total/2 {
		t.Errorf("exporting progress %+v, then %+v: want steps through the image ending at the whole count", exporting, last)
	}
	stored := filepath.Join(dir, "alice", name)
	checkSIF(t, stored, img)
	if fi, err := os.Stat(stored); err != nil || fi.Size() != f.Size {
		t.Errorf("stored file: %v %v", fi, err)
	}
	if n := exportContainers(t, cli, svc.Config()); n != 0 {
		t.Errorf("%d export containers left", n)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "alice", ".building")); len(ents) != 0 {
		t.Errorf("unfinished files left: %v", ents)
	}

	// Again: the same image ID is not built twice, for alice or for bob.
	builds := 0
	f2, cached, err := ss.Build(ctx, alice, img, func(docker.SIFProgress) { builds++ })
	if err != nil || !cached || f2.Name != name || builds != 0 {
		t.Errorf("second build: %+v cached %v err %v progress calls %d", f2, cached, err, builds)
	}
	// Bob's is linked to alice's file, but reads exactly as a fresh build: nothing tells him
	// that another user made it before.
	var bobPhases []string
	fb, cached, err := ss.Build(ctx, bob, img, func(p docker.SIFProgress) {
		if len(bobPhases) == 0 || bobPhases[len(bobPhases)-1] != p.Phase {
			bobPhases = append(bobPhases, p.Phase)
		}
	})
	if err != nil || cached || fb.Size != f.Size || strings.Join(bobPhases, ",") != "exporting,writing" {
		t.Errorf("bob's build: %+v cached %v err %v phases %v", fb, cached, err, bobPhases)
	}
	if n := exportContainers(t, cli, svc.Config()); n != 0 {
		t.Errorf("%d export containers after a reuse", n)
	}

	for _, id := range []backend.Identity{alice, bob} {
		list, err := ss.List(ctx, id)
		if err != nil || len(list) != 1 || list[0].Name != name || list[0].Image != img || list[0].Size != f.Size {
			t.Errorf("%s: list %+v %v", id.User, list, err)
		}
	}
	if list, err := ss.List(ctx, backend.Identity{User: "carol", Role: backend.RoleStudent}); err != nil || len(list) != 0 {
		t.Errorf("carol sees %+v %v", list, err)
	}

	// Someone else's file is out of reach by any name.
	for _, n := range []string{"../bob/" + name, "bob/" + name, "..", ".meta", filepath.Join(dir, "bob", name)} {
		if _, _, err := ss.Open(ctx, backend.Identity{User: "carol", Role: backend.RoleStudent}, n); !errors.Is(err, docker.ErrNotFound) {
			t.Errorf("carol opens %q: %v", n, err)
		}
	}
	if _, _, err := ss.Open(ctx, backend.Identity{User: "carol", Role: backend.RoleStudent}, name); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("carol opens %s: %v", name, err)
	}
	if err := ss.Remove(ctx, backend.Identity{User: "carol", Role: backend.RoleStudent}, name); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("carol removes %s: %v", name, err)
	}

	// alice removes hers; bob's stays.
	if err := ss.Remove(ctx, alice, name); err != nil {
		t.Fatal(err)
	}
	if err := ss.Remove(ctx, alice, name); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("second remove: %v", err)
	}
	if list, _ := ss.List(ctx, alice); len(list) != 0 {
		t.Errorf("alice still has %+v", list)
	}
	rf, _, err := ss.Open(ctx, bob, name)
	if err != nil {
		t.Fatalf("bob's file after alice removed hers: %v", err)
	}
	rf.Close()

	// Another reference whose short name alice's file already has gets the full name; the
	// same image ID is linked, not built again.
	other := "wmtest/" + img
	if _, err := cli.ImageTag(ctx, client.ImageTagOptions{Source: img, Target: other}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = cli.ImageRemove(context.Background(), other, client.ImageRemoveOptions{}) })
	if _, _, err := ss.Build(ctx, alice, img, nil); err != nil {
		t.Fatal(err)
	}
	otherNamed, _ := reference.ParseNormalizedNamed(other)
	fo, cached, err := ss.Build(ctx, alice, other, nil)
	if err != nil || fo.Name != docker.SIFFullName(otherNamed) || fo.Name == name || !cached || fo.Image != other {
		t.Errorf("build of %s: %+v cached %v err %v, want %s", other, fo, cached, err, docker.SIFFullName(otherNamed))
	}
	if list, _ := ss.List(ctx, alice); len(list) != 2 {
		t.Errorf("alice has %+v, want both files", list)
	}
	for _, n := range []string{name, fo.Name} {
		if err := ss.Remove(ctx, alice, n); err != nil {
			t.Errorf("remove %s: %v", n, err)
		}
	}

	// Bad input changes nothing.
	for _, ref := range []string{"", "UPPER:case", "no-such-image:1", shortIDOf(t, cli, img)} {
		_, _, err := ss.Build(ctx, alice, ref, nil)
		if err == nil || (!errors.Is(err, docker.ErrInvalid) && !errors.Is(err, docker.ErrNoImage)) || strings.Contains(err.Error(), "\n") {
			t.Errorf("build %q: %v", ref, err)
		}
	}
	if list, _ := ss.List(ctx, alice); len(list) != 0 {
		t.Errorf("alice has %+v after bad builds", list)
	}
}

// TestSIFImageConfig: the image's WorkingDir and User reach the SIF's oci-config.json, and
// the runscript runs the image's command in WorkingDir.
func TestSIFImageConfig(t *testing.T) {
	for _, tool := range []string{"tar2sqfs", "rdsquashfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: apt-get install squashfs-tools-ng", tool)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	svc := dockertest.NewService(t)
	base := dockertest.BusyboxImage(ctx, t, cli)
	cr, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: base, Labels: map[string]string{dockertest.LabelRun: dockertest.RunID()}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(context.Background(), cr.ID, client.ContainerRemoveOptions{Force: true})
	})
	img := "wm-test-sifcfg:" + dockertest.RunID()
	if _, err := cli.ContainerCommit(ctx, cr.ID, client.ContainerCommitOptions{Reference: img,
		Changes: []string{"WORKDIR /srv/app", "USER nobody", `ENV GREETING="it's \\ here"`}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = cli.ImageRemove(context.Background(), img, client.ImageRemoveOptions{Force: true})
	})
	ss, err := docker.NewSIFService(svc, docker.SIFOptions{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	out, _, err := ss.Build(ctx, alice, img, nil)
	if err != nil {
		t.Fatal(err)
	}
	file, _, err := ss.Open(ctx, alice, out.Name)
	if err != nil {
		t.Fatal(err)
	}
	path := file.Name()
	file.Close()
	checkSIF(t, path, img)
	f, err := sif.LoadContainerFromPath(path, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatal(err)
	}
	defer f.UnloadContainer()
	js, err := f.GetDescriptor(sif.WithDataType(sif.DataGenericJSON), func(d sif.Descriptor) (bool, error) {
		return d.Name() == "oci-config.json", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	data, _ := js.GetData()
	var cfg struct {
		User, WorkingDir string
		Env              []string
	}
	if err := json.Unmarshal(data, &cfg); err != nil || cfg.User != "nobody" || cfg.WorkingDir != "/srv/app" ||
		!slices.Contains(cfg.Env, `GREETING=it's \ here`) {
		t.Errorf("oci-config.json: %s %v", data, err)
	}
	part, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		t.Fatal(err)
	}
	pdata, _ := part.GetData()
	sq := filepath.Join(t.TempDir(), "p.sqfs")
	if err := os.WriteFile(sq, pdata, 0o600); err != nil {
		t.Fatal(err)
	}
	rs, err := exec.Command("rdsquashfs", "-c", "/.singularity.d/runscript", sq).Output()
	if err != nil || !strings.Contains(string(rs), "cd /srv/app ") {
		t.Errorf("runscript: %q %v", rs, err)
	}
	if ls, err := exec.Command("rdsquashfs", "-l", "/srv", sq).Output(); err != nil || !strings.Contains(string(ls), "app") {
		t.Errorf("/srv: %s %v", ls, err)
	}
}

func shortIDOf(t *testing.T, cli *client.Client, ref string) string {
	t.Helper()
	ins, err := cli.ImageInspect(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(ins.ID, "sha256:")[:12]
}

func TestSIFQuotaAndTools(t *testing.T) {
	if _, err := exec.LookPath("tar2sqfs"); err != nil {
		t.Fatal("tar2sqfs not installed: apt-get install squashfs-tools-ng")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	svc := dockertest.NewService(t)
	img := dockertest.BusyboxImage(ctx, t, cli)
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}

	dir := t.TempDir()
	ss, err := docker.NewSIFService(svc, docker.SIFOptions{Dir: dir, Quota: 4096})
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = ss.Build(ctx, alice, img, nil)
	if !errors.Is(err, docker.ErrQuota) || !strings.Contains(err.Error(), "over your SIF quota") {
		t.Fatalf("build over quota: %v", err)
	}
	if list, _ := ss.List(ctx, alice); len(list) != 0 {
		t.Errorf("files kept over quota: %+v", list)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "alice", ".building")); len(ents) != 0 {
		t.Errorf("unfinished files left: %v", ents)
	}
	if n := exportContainers(t, cli, svc.Config()); n != 0 {
		t.Errorf("%d export containers left", n)
	}
	// A user already at the quota is refused before anything is built.
	if err := os.WriteFile(filepath.Join(dir, "alice", "old.sif"), make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, _, err = ss.Build(ctx, alice, img, func(docker.SIFProgress) { calls++ })
	if !errors.Is(err, docker.ErrQuota) || !strings.Contains(err.Error(), "SIF quota reached") || calls != 0 {
		t.Errorf("build at quota: %v (progress calls %d)", err, calls)
	}

	noTools, err := docker.NewSIFService(svc, docker.SIFOptions{Dir: t.TempDir(), Tar2sqfs: "/nonexistent/tar2sqfs"})
	if err != nil {
		t.Fatal(err)
	}
	if noTools.ToolsError() == nil {
		t.Fatal("no error for a missing tar2sqfs")
	}
	_, _, err = noTools.Build(ctx, alice, img, nil)
	if !errors.Is(err, docker.ErrUnsupported) || !strings.Contains(err.Error(), "apt-get install squashfs-tools-ng") {
		t.Errorf("build without tar2sqfs: %v", err)
	}
}

// TestSIFBuildLimits holds builds in a gated tar2sqfs to see one build per user and the
// server-wide limit at work.
func TestSIFBuildLimits(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := newHeldTool(ctx, t, "while [ ! -e {gate} ]; do sleep 0.05; done\nexec {tool} \"$@\"")
	cli, svc, img, gate := h.cli, h.svc, h.img, h.gate
	ss, err := docker.NewSIFService(svc, docker.SIFOptions{Dir: filepath.Join(h.dir, "sif"), MaxBuilds: 1, Tar2sqfs: h.script})
	if err != nil {
		t.Fatal(err)
	}
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	bob := backend.Identity{User: "bob", Role: backend.RoleStudent}

	var wg sync.WaitGroup
	var aliceErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _, aliceErr = ss.Build(ctx, alice, img, nil)
	}()
	h.waitStarted(t)
	// alice again while hers runs: refused at once.
	if _, _, err := ss.Build(ctx, alice, img, nil); !errors.Is(err, docker.ErrConflict) || !strings.Contains(err.Error(), "already running") {
		t.Errorf("second build of alice: %v", err)
	}
	// bob waits for the only slot; giving up while queued leaves nothing.
	queued := make(chan docker.SIFProgress, 16)
	qctx, qcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, _, err := ss.Build(qctx, bob, img, func(p docker.SIFProgress) { queued <- p })
		done <- err
	}()
	select {
	case p := <-queued:
		if p.Phase != "queued" || p.Position != 1 {
			t.Errorf("bob's first progress %+v, want queued first", p)
		}
	case <-time.After(time.Minute):
		t.Fatal("bob was not queued")
	}
	qcancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("bob's cancelled build: %v", err)
	}
	// bob queues again, and runs once alice's build ends.
	requeued := make(chan struct{})
	var once sync.Once
	go func() {
		f, _, err := ss.Build(ctx, bob, img, func(p docker.SIFProgress) {
			if p.Phase == "queued" {
				once.Do(func() { close(requeued) })
			}
		})
		if err == nil && f.Size == 0 {
			err = errors.New("empty file")
		}
		done <- err
	}()
	select {
	case <-requeued:
	case <-time.After(time.Minute):
		t.Fatal("bob was not queued again")
	}
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if aliceErr != nil {
		t.Fatalf("alice's build: %v", aliceErr)
	}
	if err := <-done; err != nil {
		t.Fatalf("bob's build: %v", err)
	}
	if n := exportContainers(t, cli, svc.Config()); n != 0 {
		t.Errorf("%d export containers left", n)
	}
}

// TestSIFBuildCancelled ends a build while tar2sqfs runs: nothing is left behind.
func TestSIFBuildCancelled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	// The real tool runs on what it gets, then hangs as a very large image would.
	h := newHeldTool(ctx, t, "{tool} \"$@\"\nexec sleep 600")
	cli, svc, img := h.cli, h.svc, h.img
	dir := filepath.Join(h.dir, "sif")
	ss, err := docker.NewSIFService(svc, docker.SIFOptions{Dir: dir, Tar2sqfs: h.script})
	if err != nil {
		t.Fatal(err)
	}
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	bctx, bcancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, _, err := ss.Build(bctx, alice, img, nil)
		done <- err
	}()
	h.waitStarted(t)
	bcancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled build: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Build did not return after its context ended")
	}
	if list, _ := ss.List(ctx, alice); len(list) != 0 {
		t.Errorf("files after a cancelled build: %+v", list)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "alice", ".building")); len(ents) != 0 {
		t.Errorf("unfinished files left: %v", ents)
	}
	if n := exportContainers(t, cli, svc.Config()); n != 0 {
		t.Errorf("%d export containers left", n)
	}
	// The user may build again at once.
	ok, err := docker.NewSIFService(svc, docker.SIFOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := ok.Build(ctx, alice, img, nil); err != nil {
		t.Errorf("build after the cancelled one: %v", err)
	}
	if _, _, err := ss.Build(ctx, alice, img, nil); err != nil {
		t.Errorf("the first service refuses alice after her cancelled build: %v", err)
	}
}

// heldTool is a tar2sqfs wrapper that marks when a build reaches it, then runs a script,
// with a service and the test image to build from.
type heldTool struct {
	cli                        *client.Client
	svc                        *docker.Service
	img                        string
	dir, script, started, gate string
}

// newHeldTool writes the wrapper: {tool} in body is the real tar2sqfs, {gate} a file the
// test creates to let a waiting script go on.
func newHeldTool(ctx context.Context, t *testing.T, body string) *heldTool {
	t.Helper()
	real, err := exec.LookPath("tar2sqfs")
	if err != nil {
		t.Fatal("tar2sqfs not installed: apt-get install squashfs-tools-ng")
	}
	h := &heldTool{cli: dockertest.Client(t), svc: dockertest.NewService(t), dir: t.TempDir()}
	h.img = dockertest.BusyboxImage(ctx, t, h.cli)
	h.script, h.started, h.gate = filepath.Join(h.dir, "tar2sqfs"), filepath.Join(h.dir, "started"), filepath.Join(h.dir, "open")
	body = strings.NewReplacer("{tool}", real, "{gate}", h.gate).Replace(body)
	if err := os.WriteFile(h.script, []byte(fmt.Sprintf("#!/bin/sh\ntouch %s\n%s\n", h.started, body)), 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

// waitStarted waits until a build has reached the wrapper.
func (h *heldTool) waitStarted(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(h.started); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no build reached tar2sqfs")
		}
	}
}

// TestSIFSweep: what a build interrupted by a crash left (its export container, its
// unfinished file) goes at the next start; other containers stay.
func TestSIFSweep(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	svc := dockertest.NewService(t)
	img := dockertest.BusyboxImage(ctx, t, cli)
	cfg := svc.Config()
	mk := func(labels map[string]string) string {
		t.Helper()
		res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
			Config: &container.Config{Image: img, Labels: labels},
		})
		if err != nil {
			t.Fatal(err)
		}
		return res.ID
	}
	withExport := map[string]string{docker.LabelManaged: "true", docker.LabelKind: docker.KindSIFExport, docker.LabelSIFExport: "alice"}
	for k, v := range cfg.Labels {
		withExport[k] = v
	}
	leftover := mk(withExport)
	// Another server's export container (no labels of this service) is not this one's to clear.
	foreign := mk(map[string]string{docker.LabelManaged: "true", docker.LabelKind: docker.KindSIFExport,
		docker.LabelSIFExport: "alice", dockertest.LabelRun: dockertest.RunID()})
	t.Cleanup(func() {
		_, _ = cli.ContainerRemove(context.Background(), foreign, client.ContainerRemoveOptions{Force: true})
	})

	dir := t.TempDir()
	unfinished := filepath.Join(dir, "alice", ".building", "x_1.sif.partial")
	if err := os.MkdirAll(filepath.Dir(unfinished), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(unfinished, []byte("half"), 0o600); err != nil {
		t.Fatal(err)
	}
	kept := filepath.Join(dir, "alice", "kept.sif")
	if err := os.WriteFile(kept, []byte("whole"), 0o600); err != nil {
		t.Fatal(err)
	}
	ss, err := docker.NewSIFService(svc, docker.SIFOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if err := ss.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerInspect(ctx, leftover, client.ContainerInspectOptions{}); err == nil {
		t.Error("the leftover export container is still there")
	}
	if _, err := cli.ContainerInspect(ctx, foreign, client.ContainerInspectOptions{}); err != nil {
		t.Errorf("another server's container was removed: %v", err)
	}
	if _, err := os.Stat(unfinished); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the unfinished file is still there: %v", err)
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("a finished file went: %v", err)
	}
}
