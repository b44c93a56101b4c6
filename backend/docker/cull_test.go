package docker_test

import (
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"whalemountain/backend/docker"
)

// Idle culling on a fake clock against the real engine: the GPU container (shorter limit) is
// warned, a session resets it, then it is warned again and stopped — never removed, and
// `start` brings it back; the CPU-only one lasts longer; a preset's exemption and a TA's keep
// hold; a student cannot keep.
func TestIdleCulling(t *testing.T) {
	w := newWaitRig(t)
	w.cfg.IdleStudent = docker.IdlePolicy{After: 4 * time.Hour, GPUAfter: time.Hour, CPUBelow: 50, GPUBelow: 5, WarnBefore: 10 * time.Minute}
	w.svc.Close()
	svc := w.start()
	if err := svc.SetPresets([]docker.Preset{{Name: "exam", Image: w.img, IdleExempt: true}}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	docker.SetClock(svc, clock)
	inUse := map[string]bool{}
	svc.SetSessionUse(func(owner, name string) bool { mu.Lock(); defer mu.Unlock(); return inUse[owner+"/"+name] })

	ctx := w.ctx
	for _, spec := range []docker.RunSpec{{Name: "gpu", GPUs: "1"}, {Name: "cpu"}} {
		spec.Image = w.img
		if _, err := svc.Run(ctx, alice, spec); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.RunPreset(ctx, alice, "exam", "exam"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Run(ctx, bob, docker.RunSpec{Name: "kept", Image: w.img}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Keep(ctx, alice, "bob/kept", 48*time.Hour, ""); err == nil || !errors.Is(err, docker.ErrPermission) {
		t.Fatalf("a student keeps: %v", err)
	}
	if _, err := svc.Keep(ctx, alice, "cpu", 48*time.Hour, ""); err == nil || err.Error() != "only TAs keep containers from idle stops" {
		t.Fatalf("a student keeps her own: %v", err)
	}
	if _, err := svc.Keep(ctx, tina, "bob/kept", 48*time.Hour, "long training run"); err != nil {
		t.Fatal(err)
	}
	state := func(owner, name string) docker.Container {
		cs, _ := svc.Snapshot(tina, docker.ListOptions{All: true, AllUsers: true})
		c, _ := find(cs, owner, name)
		return c
	}
	until(t, svc, "four running containers", func() bool {
		return state("alice", "gpu").State == "running" && state("alice", "cpu").State == "running" &&
			state("alice", "exam").State == "running" && state("bob", "kept").State == "running"
	})
	lastNotice := func() docker.Notice {
		ns, _ := svc.Notices(alice)
		if len(ns) == 0 {
			return docker.Notice{}
		}
		return ns[len(ns)-1]
	}

	svc.ScheduleRound(ctx) // the clocks start
	advance(51 * time.Minute)
	svc.ScheduleRound(ctx)
	if n := lastNotice(); n.Action != docker.NoticeIdleWarn || n.Container != "gpu" || !strings.Contains(n.Reason, "stopped (not removed)") {
		t.Fatalf("after 51 idle minutes: %+v", n)
	}
	if svc.IdleStop(state("alice", "gpu")).IsZero() || !svc.IdleStop(state("alice", "cpu")).IsZero() {
		t.Fatal("the GPU container should be due a stop, the CPU one not")
	}
	// A shell resets the clock.
	mu.Lock()
	inUse["alice/gpu"] = true
	mu.Unlock()
	advance(4 * time.Minute)
	svc.ScheduleRound(ctx)
	mu.Lock()
	inUse["alice/gpu"] = false
	mu.Unlock()
	if !svc.IdleStop(state("alice", "gpu")).IsZero() {
		t.Fatal("a session did not reset the clock")
	}
	advance(15 * time.Minute) // 55m idle for the old clock, 15m for the reset one
	svc.ScheduleRound(ctx)
	if c := state("alice", "gpu"); c.State != "running" {
		t.Fatalf("stopped although used 15 minutes ago: %+v", c)
	}
	advance(36 * time.Minute) // 51m since the shell
	svc.ScheduleRound(ctx)
	if !svc.IdleStop(state("alice", "gpu")).After(clock()) {
		t.Fatal("no new warning after 51 idle minutes")
	}
	advance(10 * time.Minute)
	svc.ScheduleRound(ctx)
	until(t, svc, "the GPU container stopped", func() bool { return state("alice", "gpu").State == "exited" })
	c := state("alice", "gpu")
	if c.Stopped == nil || c.Stopped.By != "whalemountain" || !strings.Contains(c.Stopped.Reason, "idle for 1h1m") {
		t.Fatalf("stopped as %+v", c.Stopped)
	}
	if culls := svc.Culls(tina); len(culls) != 1 || culls[0].Owner != "alice" || culls[0].Name != "gpu" {
		t.Fatalf("TA's culls %+v", culls)
	}
	if culls := svc.Culls(bob); len(culls) != 0 {
		t.Fatalf("bob sees alice's culls: %+v", culls)
	}
	// Past the four hours only the CPU container goes; the preset's and the kept one stay.
	advance(4 * time.Hour)
	svc.ScheduleRound(ctx)
	advance(11 * time.Minute)
	svc.ScheduleRound(ctx)
	until(t, svc, "the CPU container stopped", func() bool { return state("alice", "cpu").State == "exited" })
	for _, ref := range [][2]string{{"alice", "exam"}, {"bob", "kept"}} {
		if c := state(ref[0], ref[1]); c.State != "running" {
			t.Fatalf("%s/%s: %s", ref[0], ref[1], c.State)
		}
	}
	// Stopped, never removed: start brings it back.
	if err := svc.Start(ctx, alice, "gpu"); err != nil {
		t.Fatal(err)
	}
	lines := strings.Join(auditLines(t, w.audit), "\n")
	for _, want := range []string{"whalemountain idle-warn alice/gpu ok", "whalemountain cull alice/gpu ok", "whalemountain cull alice/cpu ok",
		"tina keep bob/kept ok", "alice keep bob/kept refused"} {
		if !strings.Contains(lines, want) {
			t.Errorf("audit lacks %q:\n%s", want, lines)
		}
	}
	if strings.Contains(lines, "cull alice/exam") || strings.Contains(lines, "cull bob/kept") {
		t.Errorf("an exempt container was culled:\n%s", lines)
	}
}
