package docker_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// TestSnapshotSeesOutsideStop: a container stopped behind the service's back shows as
// exited in the snapshot, after a notification.
func TestSnapshotSeesOutsideStop(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	c := r.run(alice, docker.RunSpec{Name: "box"})
	state := func() string {
		cs, h := r.svc.Snapshot(alice, docker.ListOptions{All: true})
		if !h.OK {
			return "unhealthy: " + h.Err
		}
		got, _ := find(cs, "alice", "box")
		return got.State
	}
	until(t, r.svc, "box running in the snapshot", func() bool { return state() == "running" })
	cs, _ := r.svc.Snapshot(alice, docker.ListOptions{})
	if got, _ := find(cs, "alice", "box"); got.StartedAt.IsZero() || got.CPUs != 1 || got.MemLimit == 0 {
		t.Errorf("snapshot entry lacks details: %+v", got)
	}

	zero := 0
	if _, err := r.cli.ContainerStop(r.ctx, c.ID, client.ContainerStopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	until(t, r.svc, "box exited in the snapshot", func() bool { return state() == "exited" })
	if cs, _ := r.svc.Snapshot(alice, docker.ListOptions{}); len(cs) != 0 {
		t.Errorf("running-only snapshot still lists %v", cs)
	}
	if cs, _ := r.svc.Snapshot(bob, docker.ListOptions{All: true, AllUsers: true}); len(cs) != 0 {
		t.Errorf("bob's snapshot lists %v", cs)
	}
	if cs, _ := r.svc.Snapshot(tina, docker.ListOptions{All: true, AllUsers: true}); len(cs) != 1 {
		t.Errorf("TA's snapshot lists %v", cs)
	}

	if _, err := r.cli.ContainerRemove(r.ctx, c.ID, client.ContainerRemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	until(t, r.svc, "box gone from the snapshot", func() bool { return state() == "" })
}

// TestSnapshotCostsNoAPICalls: many sessions reading the snapshot cost the engine nothing.
func TestSnapshotCostsNoAPICalls(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "box"})
	until(t, r.svc, "box in the snapshot", func() bool {
		cs, h := r.svc.Snapshot(alice, docker.ListOptions{})
		return h.OK && len(cs) == 1
	})
	before := r.svc.APICalls()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ch, cancel := r.svc.Subscribe()
			defer cancel()
			id := backend.Identity{User: fmt.Sprintf("user%d", i), Role: backend.RoleStudent}
			if i%2 == 0 {
				id = alice
			}
			for range 10 {
				r.svc.Snapshot(id, docker.ListOptions{All: true})
				select {
				case <-ch:
				default:
				}
			}
		}()
	}
	wg.Wait()
	if d := r.svc.APICalls() - before; d != 0 {
		t.Errorf("200 sessions x 10 snapshots made %d API calls", d)
	}
}

// TestWatchStats: usage is sampled only while watched, and lands in the snapshot.
func TestWatchStats(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	c := r.run(alice, docker.RunSpec{Name: "busy", CPUs: 0.2, Cmd: []string{"sh", "-c", "while :; do :; done"}})
	until(t, r.svc, "busy in the snapshot", func() bool {
		cs, _ := r.svc.Snapshot(alice, docker.ListOptions{})
		return len(cs) == 1
	})
	// Once the events of the run have been folded in, nothing happens and nothing is asked.
	quiet := false
	for try := 0; try < 3 && !quiet; try++ {
		before := r.svc.APICalls()
		time.Sleep(2500 * time.Millisecond)
		quiet = r.svc.APICalls() == before
	}
	if !quiet {
		t.Error("API calls keep coming with nothing watched and nothing happening")
	}

	release := r.svc.WatchStats(c.ID)
	release2 := r.svc.WatchStats(c.ID)
	var got docker.Container
	until(t, r.svc, "CPU and memory in the snapshot", func() bool {
		cs, _ := r.svc.Snapshot(alice, docker.ListOptions{})
		got, _ = find(cs, "alice", "busy")
		return !got.StatsAt.IsZero() && got.CPUPercent > 0
	})
	if got.MemUsage <= 0 || got.MemLimit != r.svc.Config().DefaultMemory || got.CPUPercent > 100 {
		t.Errorf("usage %+v", got)
	}
	release()
	release() // idempotent
	cs, _ := r.svc.Snapshot(alice, docker.ListOptions{})
	if got, _ = find(cs, "alice", "busy"); got.StatsAt.IsZero() {
		t.Error("one release dropped the stats while another watcher remains")
	}
	release2()
	cs, _ = r.svc.Snapshot(alice, docker.ListOptions{})
	if got, _ = find(cs, "alice", "busy"); !got.StatsAt.IsZero() {
		t.Errorf("stats kept after the last release: %+v", got)
	}
}

// BenchmarkSnapshot reports the engine calls per dashboard read (zero).
func BenchmarkSnapshot(b *testing.B) {
	svc := dockertest.NewService(b)
	ch, cancel := svc.Subscribe()
	defer cancel()
	deadline := time.After(10 * time.Second)
	for _, h := svc.Snapshot(tina, docker.ListOptions{}); !h.OK; _, h = svc.Snapshot(tina, docker.ListOptions{}) {
		select {
		case <-ch:
		case <-deadline:
			b.Fatal("snapshot not healthy")
		}
	}
	before := svc.APICalls()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			svc.Snapshot(tina, docker.ListOptions{All: true, AllUsers: true})
		}
	})
	b.ReportMetric(float64(svc.APICalls()-before)/float64(b.N), "api-calls/op")
}
