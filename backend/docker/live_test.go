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
	// The run's last events settle first (a second without any call), so what is counted
	// below is the reads' doing alone.
	for settled, last := 0, r.svc.APICalls(); settled < 4; {
		time.Sleep(250 * time.Millisecond)
		if now := r.svc.APICalls(); now == last {
			settled++
		} else {
			settled, last = 0, now
		}
	}
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

// TestUsageOfEveryRunningContainer: CPU and memory of every running container land in the
// snapshot without anyone asking, from the cgroup files here (no API call for them) and from
// the stats API where those are not found; a stopped container has none.
func TestUsageOfEveryRunningContainer(t *testing.T) {
	t.Parallel()
	for _, via := range []string{"cgroup files", "stats API"} {
		t.Run(via, func(t *testing.T) {
			t.Parallel()
			r := newRig(t)
			if via == "stats API" {
				docker.SetCgroupRoot(r.svc, "")
			}
			r.run(alice, docker.RunSpec{Name: "busy", CPUs: 0.2, Cmd: []string{"sh", "-c", "while :; do :; done"}})
			r.run(bob, docker.RunSpec{Name: "idle"})
			stopped := r.run(bob, docker.RunSpec{Name: "stopped"})
			if err := r.svc.Stop(r.ctx, bob, "stopped", ""); err != nil {
				t.Fatal(err)
			}
			var busy, idle docker.Container
			until(t, r.svc, "usage of both running containers", func() bool {
				cs, _ := r.svc.Snapshot(tina, docker.ListOptions{All: true, AllUsers: true})
				busy, _ = find(cs, "alice", "busy")
				idle, _ = find(cs, "bob", "idle")
				st, _ := find(cs, "bob", "stopped")
				return busy.CPUPercent > 0 && !idle.StatsAt.IsZero() && st.State == "exited"
			})
			if busy.MemUsage <= 0 || busy.MemLimit != r.svc.Config().DefaultMemory || busy.CPUPercent > 100 {
				t.Errorf("busy: %+v", busy)
			}
			if idle.MemUsage <= 0 || idle.CPUPercent > 5 {
				t.Errorf("idle: cpu %v mem %d", idle.CPUPercent, idle.MemUsage)
			}
			cs, _ := r.svc.Snapshot(bob, docker.ListOptions{All: true})
			if st, _ := find(cs, "bob", "stopped"); !st.StatsAt.IsZero() || st.ID != stopped.ID {
				t.Errorf("the stopped container has usage: %+v", st)
			}
			// Rounds go on at their fixed rate; from the cgroup files they ask the engine nothing.
			// First the last events of the runs and the stop settle (a round's worth of quiet),
			// then one long window — four rounds — may hold at most the snapshot's once-a-minute
			// resync: a stats call every round, or anything polling every few seconds, shows.
			quiet := func(d time.Duration) int64 {
				before := r.svc.APICalls()
				time.Sleep(d)
				return r.svc.APICalls() - before
			}
			if via == "cgroup files" {
				for try := 0; try < 5 && quiet(2500*time.Millisecond) != 0; try++ {
				}
				if calls := quiet(8500 * time.Millisecond); calls > 1 {
					t.Errorf("%d API calls in four rounds read from the cgroup files", calls)
				}
			} else if calls := quiet(4500 * time.Millisecond); calls < 4 {
				t.Errorf("%d API calls in two rounds over the stats API, want 2 a round", calls)
			}
		})
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
