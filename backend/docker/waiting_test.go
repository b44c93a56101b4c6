package docker_test

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"

	"whalemountain/backend"
	"whalemountain/backend/audit"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
	"whalemountain/backend/gpu"
)

// mockGPUs is go-nvml's mock DGX A100 cut down to n GPUs, read by the server's sampler, as
// the allocation's inventory (what the server's wiring does with the real NVML).
func mockGPUs(t *testing.T, n int) (*gpu.Sampler, docker.GPUInventory) {
	t.Helper()
	srv := dgxa100.New()
	srv.Devices = srv.Devices[:n]
	for _, d := range srv.Devices {
		dev := d.(*server.Device)
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.SUCCESS }
		dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
		dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 40, nvml.SUCCESS }
		dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 60_000, nvml.SUCCESS }
	}
	s := gpu.New(srv, nil, gpu.Options{Interval: time.Hour})
	s.Start(t.Context())
	t.Cleanup(s.Close)
	reader := backend.Identity{User: "whalemountain", Role: backend.RoleTA}
	return s, docker.GPUInventoryFunc(func() []docker.GPUInfo {
		var out []docker.GPUInfo
		for _, g := range s.Snapshot(reader).GPUs {
			info := docker.GPUInfo{Index: g.Index, UUID: g.UUID}
			if g.Util != nil {
				info.Util = uint32(*g.Util)
			}
			out = append(out, info)
		}
		return out
	})
}

// waitRig is a service on the GPU proxy with one mock GPU, an audit log and a state
// directory, and a second one like it for the restart.
type waitRig struct {
	*rig
	cfg   docker.Config
	inv   docker.GPUInventory
	state string
	audit string
	held  map[string]float64
}

func newWaitRig(t *testing.T) *waitRig {
	t.Helper()
	host, _ := dockertest.GPUEngine(t)
	_, inv := mockGPUs(t, 1)
	r := newRig(t, func(c *docker.Config) { c.Host = host })
	w := &waitRig{rig: r, inv: inv, state: t.TempDir(), audit: filepath.Join(t.TempDir(), "audit.log"),
		held: map[string]float64{"bob": 3, "carol": 1}}
	w.cfg = r.svc.Config()
	w.cfg.Labels["whalemountain.test-waiting"] = "1" // its own objects, removed with the rig's
	dockertest.Track(t, r.cli, w.cfg)
	r.svc = w.start()
	return w
}

// start is a fresh Service over the same engine, state and audit log: a server (re)start.
func (w *waitRig) start() *docker.Service {
	w.t.Helper()
	log, err := audit.Open(w.audit)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { log.Close() })
	svc, err := docker.New(w.cfg, log)
	if err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { svc.Close() })
	if err := svc.SetStateDir(w.state); err != nil {
		w.t.Fatal(err)
	}
	svc.SetGPUs(w.inv)
	svc.SetFairShare(func(time.Time) map[string]float64 { return w.held })
	if err := svc.Watch(context.Background()); err != nil {
		w.t.Fatal(err)
	}
	return svc
}

func places(ws []docker.Waiting) string {
	var b []string
	for _, w := range ws {
		b = append(b, strconv.Itoa(w.Position)+":"+w.Ref())
	}
	return strings.Join(b, " ")
}

var (
	dave = backend.Identity{User: "dave", Role: backend.RoleStudent}
	eve  = backend.Identity{User: "eve", Role: backend.RoleStudent}
)

// The waiting list on the real engine and the mock GPU: fair-share order, the limits, cancel,
// a TA's move, a restart, and the hand-over when the GPU frees.
func TestWaitingListFairShareHandOver(t *testing.T) {
	w := newWaitRig(t)
	ctx := w.ctx
	svc := w.svc
	// alice holds the one GPU.
	c, q, err := svc.RunOrWait(ctx, alice, docker.RunSpec{Name: "holder", Image: w.img, GPUs: "1"}, "")
	if err != nil || q != nil || c.State != "running" || c.GPUs != "0" {
		t.Fatalf("first run with the GPU free: %+v %+v %v", c, q, err)
	}
	// bob, carol and dave wait, in that order; fair share puts dave (0 h) first, carol (1 h),
	// then bob (3 h).
	for _, id := range []backend.Identity{bob, carol, dave} {
		c, q, err := svc.RunOrWait(ctx, id, docker.RunSpec{Name: "train", Image: w.img, GPUs: "1"}, "")
		if err != nil || q == nil || c.ID != "" {
			t.Fatalf("%s --wait: %+v %+v %v", id.User, c, q, err)
		}
	}
	if got := places(svc.WaitingList(tina)); got != "1:dave/train 2:carol/train 3:bob/train" {
		t.Fatalf("order %q", got)
	}
	if got := places(svc.WaitingList(bob)); got != "3:bob/train" {
		t.Fatalf("bob sees %q, want only his own with its place", got)
	}
	// Limits: one waiting request each; --wait needs GPUs; a plain GPU run would jump the line.
	for _, tc := range []struct {
		id   backend.Identity
		spec docker.RunSpec
		wait bool
		want string
		kind error
	}{
		{bob, docker.RunSpec{Name: "again", GPUs: "1"}, true, "quota: at most 1 waiting request per user (see waiting)", docker.ErrQuota},
		{alice, docker.RunSpec{Name: "cpu"}, true, "--wait is for GPUs: add --gpus N", docker.ErrInvalid},
		{eve, docker.RunSpec{Name: "jump", GPUs: "1"}, false, "3 requests wait for GPUs; add --wait to join the waiting list", docker.ErrConflict},
		{eve, docker.RunSpec{Name: "x", GPUs: "2"}, true, "quota: at most 1 GPU per container for students", docker.ErrQuota},
	} {
		tc.spec.Image = w.img
		var err error
		if tc.wait {
			_, _, err = svc.RunOrWait(ctx, tc.id, tc.spec, "")
		} else {
			_, err = svc.Run(ctx, tc.id, tc.spec)
		}
		if err == nil || err.Error() != tc.want || !errors.Is(err, tc.kind) {
			t.Errorf("%s %+v: %v, want %q", tc.id.User, tc.spec, err, tc.want)
		}
	}
	// The Docker API's create cannot jump the line either.
	body := `{"Image":"` + w.img + `","HostConfig":{"DeviceRequests":[{"Driver":"","Count":1,"Capabilities":[["gpu"]]}]}}`
	if _, err := svc.CreateFromAPI(ctx, eve, "api", []byte(body)); err == nil || err.Error() != "requests wait for GPUs; join them over ssh with run --gpus N --wait" {
		t.Errorf("a GPU create through the Docker API while others wait: %v", err)
	}
	// Nobody reaches another's request: cancel and move answer as for one that does not exist.
	for _, ref := range []string{"dave/train", "carol/train", "nobody/train", "ghost"} {
		err := svc.CancelWaiting(bob, ref, "")
		want := "no waiting request: " + ref
		if err == nil || err.Error() != want {
			t.Errorf("bob cancels %s: %v, want %q", ref, err, want)
		}
	}
	if err := svc.MoveWaiting(bob, "train", 1, ""); err == nil || !errors.Is(err, docker.ErrPermission) {
		t.Errorf("bob moves his own: %v", err)
	}
	if got := places(svc.WaitingList(tina)); got != "1:dave/train 2:carol/train 3:bob/train" {
		t.Fatalf("order after refusals %q", got)
	}
	// carol cancels her own; the TA moves bob to the front.
	if err := svc.CancelWaiting(carol, "train", ""); err != nil {
		t.Fatal(err)
	}
	if err := svc.MoveWaiting(tina, "bob/train", 1, "thesis deadline"); err != nil {
		t.Fatal(err)
	}
	if got := places(svc.WaitingList(tina)); got != "1:bob/train 2:dave/train" {
		t.Fatalf("after cancel and move %q", got)
	}
	// A restart keeps owners, order and the move.
	svc.Close()
	svc = w.start()
	if got := places(svc.WaitingList(tina)); got != "1:bob/train 2:dave/train" {
		t.Fatalf("after a restart %q", got)
	}
	// Nothing happens while the GPU is held.
	svc.ScheduleRound(ctx)
	if got := places(svc.WaitingList(tina)); got != "1:bob/train 2:dave/train" {
		t.Fatalf("a round while the GPU is held changed the list: %q", got)
	}
	// alice stops hers: the next round creates and starts bob's with the GPU.
	if err := svc.Stop(ctx, alice, "holder", ""); err != nil {
		t.Fatal(err)
	}
	until(t, svc, "the stop in the snapshot", func() bool {
		cs, _ := svc.Snapshot(alice, docker.ListOptions{All: true})
		c, ok := find(cs, "alice", "holder")
		return ok && c.State == "exited"
	})
	svc.ScheduleRound(ctx)
	cs, _ := svc.Snapshot(bob, docker.ListOptions{All: true})
	got, ok := find(cs, "bob", "train")
	if !ok {
		got2, err := svc.List(ctx, bob, docker.ListOptions{All: true})
		t.Fatalf("bob's container was not made: %+v %v", got2, err)
	}
	ins, err := svc.Inspect(ctx, bob, "train")
	if err != nil || ins.State != "running" || ins.Labels[docker.LabelGPUs] == "" || ins.GPUs != "0" {
		t.Fatalf("bob's container: %+v %v (%+v)", ins, err, got)
	}
	if got := places(svc.WaitingList(tina)); got != "1:dave/train" {
		t.Fatalf("after the hand-over %q", got)
	}
	ns, _ := svc.Notices(bob)
	if len(ns) == 0 || ns[len(ns)-1].Action != docker.NoticeWaitStart || ns[len(ns)-1].Container != "train" {
		t.Fatalf("bob's notices %+v", ns)
	}
	// Starting alice's again is refused while bob holds the GPU; the list goes on waiting.
	if err := svc.Start(ctx, alice, "holder"); err == nil || !errors.Is(err, docker.ErrConflict) {
		t.Fatalf("start of the old holder: %v", err)
	}
	lines := strings.Join(auditLines(t, w.audit), "\n")
	for _, want := range []string{"bob wait bob/train ok", "carol wait-cancel carol/train ok", "tina wait-move bob/train ok",
		"bob wait-start bob/train ok", "bob wait-cancel dave/train refused"} {
		if !strings.Contains(lines, want) {
			t.Errorf("audit lacks %q:\n%s", want, lines)
		}
	}
}

// The hold limit on a fake clock: while bob waits, alice's container that held the GPU past
// max_hold is warned, then stopped (not removed), and bob's starts.
func TestWaitingHoldLimit(t *testing.T) {
	w := newWaitRig(t)
	w.cfg.Waiting.MaxHold, w.cfg.Waiting.HoldWarning = 2*time.Hour, 10*time.Minute
	w.svc.Close()
	svc := w.start()
	var mu sync.Mutex
	now := time.Now()
	docker.SetClock(svc, func() time.Time { mu.Lock(); defer mu.Unlock(); return now })
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	ctx := w.ctx
	if _, _, err := svc.RunOrWait(ctx, alice, docker.RunSpec{Name: "holder", Image: w.img, GPUs: "1"}, ""); err != nil {
		t.Fatal(err)
	}
	if _, q, err := svc.RunOrWait(ctx, bob, docker.RunSpec{Name: "next", Image: w.img, GPUs: "1"}, ""); err != nil || q == nil {
		t.Fatalf("bob waits: %+v %v", q, err)
	}
	state := func(owner, name string) docker.Container {
		cs, _ := svc.Snapshot(tina, docker.ListOptions{All: true, AllUsers: true})
		c, _ := find(cs, owner, name)
		return c
	}
	until(t, svc, "alice's holder running", func() bool { return state("alice", "holder").State == "running" })
	advance(time.Hour)
	svc.ScheduleRound(ctx)
	if ns, _ := svc.Notices(alice); len(ns) != 0 {
		t.Fatalf("warned after an hour: %+v", ns)
	}
	advance(51 * time.Minute)
	svc.ScheduleRound(ctx)
	ns, _ := svc.Notices(alice)
	if len(ns) != 1 || ns[0].Action != docker.NoticeHoldWarn || !strings.Contains(ns[0].Reason, "stopped (not removed)") {
		t.Fatalf("no hold warning: %+v", ns)
	}
	advance(5 * time.Minute)
	svc.ScheduleRound(ctx)
	if c := state("alice", "holder"); c.State != "running" {
		t.Fatalf("stopped before the warning's time: %s", c.State)
	}
	advance(5 * time.Minute)
	svc.ScheduleRound(ctx)
	until(t, svc, "alice's holder stopped", func() bool { return state("alice", "holder").State == "exited" })
	if c := state("alice", "holder"); c.Stopped == nil || !strings.Contains(c.Stopped.Reason, "held GPUs longer than 2h0m0s while others waited") {
		t.Fatalf("stopped as %+v", c.Stopped)
	}
	// Its GPU is free, but bob is first in line: starting it again is refused.
	if err := svc.Start(ctx, alice, "holder"); err == nil || err.Error() != "requests wait for GPUs: holder can start once none wait, or run a new one with --wait" {
		t.Fatalf("start while bob waits: %v", err)
	}
	svc.ScheduleRound(ctx)
	until(t, svc, "bob's container running", func() bool { return state("bob", "next").State == "running" })
	if got := svc.WaitingList(tina); len(got) != 0 {
		t.Fatalf("still waiting: %+v", got)
	}
	lines := strings.Join(auditLines(t, w.audit), "\n")
	for _, want := range []string{"whalemountain hold-warn alice/holder ok", "whalemountain hold-stop alice/holder ok", "bob wait-start bob/next ok"} {
		if !strings.Contains(lines, want) {
			t.Errorf("audit lacks %q:\n%s", want, lines)
		}
	}
}
