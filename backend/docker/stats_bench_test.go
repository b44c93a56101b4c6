package docker_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// BenchmarkUsageRound: one round of the server-wide usage reader over N running containers
// (default 300; WM_BENCH_CONTAINERS changes it), read from the cgroup files, beside the same
// round over the engine's stats API (what `docker stats --no-stream` asks), in one run:
// wall time and this process's CPU per round, and per container.
func BenchmarkUsageRound(b *testing.B) {
	n := 300
	if v, err := strconv.Atoi(os.Getenv("WM_BENCH_CONTAINERS")); err == nil && v > 0 {
		n = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	cli := dockertest.Client(b)
	img := dockertest.BusyboxImage(ctx, b, cli)
	svc := dockertest.NewService(b)
	labels := map[string]string{docker.LabelManaged: "true", docker.LabelKind: docker.KindContainer}
	for k, v := range svc.Config().Labels {
		labels[k] = v
	}
	sem := make(chan struct{}, 4)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			l := map[string]string{docker.LabelOwner: fmt.Sprintf("u%03d", i%100), docker.LabelName: fmt.Sprintf("c%d", i)}
			for k, v := range labels {
				l[k] = v
			}
			res, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
				Config:     &container.Config{Image: img, Cmd: []string{"sleep", "3600"}, Labels: l},
				HostConfig: &container.HostConfig{NetworkMode: "none"},
			})
			if err == nil {
				_, err = cli.ContainerStart(ctx, res.ID, client.ContainerStartOptions{})
			}
			if err != nil {
				b.Error(err)
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		return
	}
	for deadline := time.Now().Add(5 * time.Minute); ; time.Sleep(time.Second) {
		if cs, _ := svc.Snapshot(tina, docker.ListOptions{AllUsers: true}); len(cs) >= n {
			break
		}
		if time.Now().After(deadline) {
			b.Fatal("the snapshot never held every container")
		}
	}
	round := func(root string) (wall, cpu time.Duration, calls int64) {
		docker.SetCgroupRoot(svc, root)
		docker.SampleRound(svc, ctx) // warm: the first round has no previous counters
		const rounds = 5
		c0, a0, t0 := processCPU(), svc.APICalls(), time.Now()
		for range rounds {
			docker.SampleRound(svc, ctx)
		}
		return time.Since(t0) / rounds, (processCPU() - c0) / rounds, (svc.APICalls() - a0) / rounds
	}
	cgWall, cgCPU, cgCalls := round("/sys/fs/cgroup")
	apiWall, apiCPU, apiCalls := round("")
	cs, _ := svc.Snapshot(tina, docker.ListOptions{AllUsers: true})
	withUsage := 0
	for _, c := range cs {
		if !c.StatsAt.IsZero() {
			withUsage++
		}
	}
	per := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) / float64(n) }
	fmt.Printf("\nusage round over %d running containers (%d with usage in the snapshot):\n", n, withUsage)
	fmt.Printf("  %-12s %10s %10s %12s %12s %8s\n", "from", "wall", "CPU", "CPU/ctr", "API calls", "ratio")
	fmt.Printf("  %-12s %10s %10s %10.1fµs %12d %7.2fx\n", "cgroup files", cgWall.Round(time.Millisecond), cgCPU.Round(time.Millisecond), per(cgCPU), cgCalls, float64(cgCPU)/float64(apiCPU))
	fmt.Printf("  %-12s %10s %10s %10.1fµs %12d %7.2fx\n", "stats API", apiWall.Round(time.Millisecond), apiCPU.Round(time.Millisecond), per(apiCPU), apiCalls, 1.0)
	b.ReportMetric(per(cgCPU), "µs-cpu/container/round")
	b.ReportMetric(float64(cgWall)/float64(time.Millisecond), "ms-wall/round")
	b.ReportMetric(float64(apiWall)/float64(time.Millisecond), "ms-wall/round-api")
}

// processCPU is this process's user and system time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
