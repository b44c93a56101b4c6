package docker_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// forgedLabels are what a crafted image of bob's says: every label key the server reads,
// with values that would hand his container to alice as "box", mark it a SIF export, claim
// both GPUs and the shared data of others.
func forgedLabels(cfg docker.Config) map[string]string {
	m := map[string]string{
		docker.LabelManaged:       "true",
		docker.LabelKind:          docker.KindContainer,
		docker.LabelOwner:         "alice",
		docker.LabelName:          "box",
		docker.LabelGPUs:          "GPU-1111,GPU-2222",
		docker.LabelGPUIndices:    "0,1",
		docker.LabelSIFExport:     "alice",
		docker.LabelPreset:        "oslab",
		docker.LabelDatasets:      "secret",
		docker.LabelGroups:        "os/team-a",
		docker.LabelRunnerProject: "alice/demo",
		docker.LabelRunner:        "alice-demo",
	}
	for k, v := range cfg.Labels {
		m[k] = v // the site's selectors too
	}
	return m
}

// TestForgedImageLabelsRun: a container made from an image that carries every server label
// with forged values is its maker's, named as asked, with no GPUs, and hardened; alice sees
// nothing of it and GPUs stay free.
func TestForgedImageLabelsRun(t *testing.T) {
	r := newRig(t)
	cfg := r.svc.Config()
	for _, k := range docker.ServerLabelKeys {
		if _, ok := forgedLabels(cfg)[k]; !ok {
			t.Fatalf("the forged image does not forge the server label %s", k)
		}
	}
	forged := dockertest.LabelledImage(r.ctx, t, r.cli, "forged-run", forgedLabels(cfg))
	two := []docker.GPUInfo{{Index: 0, UUID: "GPU-1111"}, {Index: 1, UUID: "GPU-2222"}}
	r.svc.SetGPUs(docker.GPUInventoryFunc(func() []docker.GPUInfo { return two }))

	evil := r.run(bob, docker.RunSpec{Name: "evil", Image: forged})
	if evil.Owner != "bob" || evil.Name != "evil" || evil.GPUs != "" {
		t.Errorf("run from the forged image: %+v, want bob's evil without GPUs", evil)
	}
	ins, err := r.cli.ContainerInspect(r.ctx, evil.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{docker.LabelManaged: "true", docker.LabelKind: docker.KindContainer, docker.LabelOwner: "bob",
		docker.LabelName: "evil", docker.LabelGPUs: "", docker.LabelGPUIndices: "", docker.LabelSIFExport: ""}
	for _, k := range docker.ServerLabelKeys {
		if got, ok := ins.Container.Config.Labels[k]; !ok || got != want[k] {
			t.Errorf("label %s = %q (set %v), want %q set by the server", k, got, ok, want[k])
		}
	}
	checkHardened(t, ins.Container)

	// Alice has no box: every lookup of hers misses bob's container.
	if _, err := r.svc.Inspect(r.ctx, alice, "box"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("alice's inspect box: %v, want not found", err)
	}
	if l, err := r.svc.List(r.ctx, alice, docker.ListOptions{All: true}); err != nil || len(l) != 0 {
		t.Errorf("alice's list: %+v %v, want empty", l, err)
	}
	if l, _ := r.svc.Snapshot(alice, docker.ListOptions{All: true}); len(l) != 0 {
		t.Errorf("alice's snapshot: %+v, want empty", l)
	}
	// With her own box, alice's lookups still reach hers alone.
	box := r.run(alice, docker.RunSpec{Name: "box"})
	if d, err := r.svc.Inspect(r.ctx, alice, "box"); err != nil || d.ID != box.ID {
		t.Errorf("alice's inspect box: %v, %s, want her own %s", err, d.ID, box.ID)
	}
	// The forged allocation blocks no GPU: a TA's run gets as far as the engine (which has
	// no NVIDIA runtime here) instead of "in use".
	if _, err := r.svc.Run(r.ctx, tina, docker.RunSpec{Image: r.img, GPUs: "0,1"}); err == nil ||
		err.Error() != "this server has no NVIDIA container runtime" {
		t.Errorf("a TA's run of GPUs 0,1 beside the forged container: %v", err)
	}
}

// TestForgedImageLabelsSIFExport: the container a SIF build makes of a crafted image is never
// anyone's container while it exists — not alice's "box" for inspect, start, exec or files —
// and it is hardened; the start-up sweep clears export containers only, never a user's
// container whose image says it is one.
func TestForgedImageLabelsSIFExport(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	h := newHeldTool(ctx, t, "while [ ! -e {gate} ]; do sleep 0.05; done\nexec {tool} \"$@\"")
	cfg := h.svc.Config()
	forged := dockertest.LabelledImage(ctx, t, h.cli, "forged-sif", forgedLabels(cfg))
	ss, err := docker.NewSIFService(h.svc, docker.SIFOptions{Dir: filepath.Join(h.dir, "sif"), Tar2sqfs: h.script})
	if err != nil {
		t.Fatal(err)
	}
	// Bob's ordinary container from the same image (it says it is a SIF export of alice's).
	if _, err := h.svc.Run(ctx, bob, docker.RunSpec{Name: "keep", Image: forged}); err != nil {
		t.Fatal(err)
	}

	done := make(chan error, 1)
	go func() {
		_, _, err := ss.Build(ctx, bob, forged, nil)
		done <- err
	}()
	h.waitStarted(t)

	// During the export: the export container is nobody's box.
	f := client.Filters{}.Add("label", docker.LabelKind+"="+docker.KindSIFExport)
	for k, v := range cfg.Labels {
		f.Add("label", k+"="+v)
	}
	exports, err := h.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil || len(exports.Items) != 1 {
		t.Fatalf("export containers during the build: %d, %v", len(exports.Items), err)
	}
	ins, err := h.cli.ContainerInspect(ctx, exports.Items[0].ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l := ins.Container.Config.Labels; l[docker.LabelOwner] != "" || l[docker.LabelName] != "" || l[docker.LabelGPUs] != "" ||
		l[docker.LabelSIFExport] != "bob" {
		t.Errorf("export container labels %v: want no owner, name or GPUs, made for bob", l)
	}
	checkHardened(t, ins.Container)
	if _, err := h.svc.Inspect(ctx, alice, "box"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("alice's inspect box during bob's export: %v", err)
	}
	if err := h.svc.Start(ctx, alice, "box"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("alice's start box during bob's export: %v", err)
	}
	if err := h.svc.Start(ctx, tina, "alice/box"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("a TA's start alice/box during bob's export: %v", err)
	}
	if l, err := h.svc.List(ctx, tina, docker.ListOptions{All: true, AllUsers: true}); err != nil || len(l) != 1 || l[0].Ref() != "bob/keep" {
		t.Errorf("a TA's list during the export: %+v %v, want bob/keep alone", l, err)
	}
	if err := os.WriteFile(h.gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("bob's SIF build: %v", err)
	}

	// The sweep clears export containers by the server's own marks, not the image's.
	if err := ss.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Inspect(ctx, bob, "keep"); err != nil {
		t.Errorf("bob's container after the sweep: %v", err)
	}
}

// TestTwoClaimantsResolveToNeither: a second container that claims alice/box (made behind the
// server's back, with every server label right) makes "box" an error, not the newer one.
func TestTwoClaimantsResolveToNeither(t *testing.T) {
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "box"})
	labels := map[string]string{docker.LabelManaged: "true", docker.LabelKind: docker.KindContainer,
		docker.LabelOwner: "alice", docker.LabelName: "box"}
	for k, v := range r.svc.Config().Labels {
		labels[k] = v
	}
	if _, err := r.cli.ContainerCreate(r.ctx, client.ContainerCreateOptions{
		Config: &container.Config{Image: r.img, Labels: labels, Cmd: []string{"sleep", "600"}},
	}); err != nil {
		t.Fatal(err)
	}
	_, err := r.svc.Inspect(r.ctx, alice, "box")
	if !errors.Is(err, docker.ErrConflict) || !strings.Contains(err.Error(), "more than one container is called box") {
		t.Errorf("inspect of a doubly claimed name: %v", err)
	}
	if err := r.svc.Remove(r.ctx, alice, "box", true, ""); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("rm of a doubly claimed name: %v", err)
	}
}

// checkHardened fails unless c has the default hardening.
func checkHardened(t *testing.T, c container.InspectResponse) {
	t.Helper()
	hc := c.HostConfig
	if hc.Privileged || len(hc.CapDrop) != 1 || hc.CapDrop[0] != "ALL" || len(hc.SecurityOpt) != 1 ||
		hc.SecurityOpt[0] != "no-new-privileges:true" || hc.PidsLimit == nil || *hc.PidsLimit <= 0 ||
		hc.Memory <= 0 || hc.MemorySwap != hc.Memory || hc.NanoCPUs <= 0 || len(hc.Binds) != 0 {
		t.Errorf("%s is not hardened: privileged %v capdrop %v secopt %v pids %v memory %d/%d cpus %d binds %v",
			c.Name, hc.Privileged, hc.CapDrop, hc.SecurityOpt, hc.PidsLimit, hc.Memory, hc.MemorySwap, hc.NanoCPUs, hc.Binds)
	}
}
