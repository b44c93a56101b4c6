// Package dockertest is test support for code that uses the real Docker Engine: a client
// that fails the test when the engine is unreachable, a tiny busybox image built in process
// (no registry needed), Services whose every object carries the run's labels, and cleanup
// of those objects, also of runs that crashed.
//
// Tests fail, not skip, when Docker is unreachable, unless WM_SKIP_DOCKER=1 is set.
package dockertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"whalemountain/backend/docker"
)

// Labels on every object a test makes.
const (
	LabelRun     = "whalemountain.testrun" // the process's RunID
	LabelService = "whalemountain.testsvc" // one per NewService, so tests do not see each other
)

// StaleAfter is the age after which objects of other runs are taken for leftovers of a
// crashed run and removed when a test first connects.
const StaleAfter = 2 * time.Hour

var runID = sync.OnceValue(func() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%08x%s", time.Now().Unix(), hex.EncodeToString(b))
})

// RunID names this test process: 8 hex digits of its start time (Unix seconds) and 6 random
// ones. Every object the tests create is labelled with it.
func RunID() string { return runID() }

// runStarted parses the start time out of a run ID.
func runStarted(id string) (time.Time, bool) {
	if len(id) < 8 {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(id[:8], 16, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, 0), true
}

var staleOnce sync.Once

// Client connects to the engine (DOCKER_HOST or the default socket, version negotiated) and
// fails the test if it does not answer; with WM_SKIP_DOCKER=1 it skips instead. The first
// call in a process removes what crashed runs left behind (older than StaleAfter).
func Client(t testing.TB) *client.Client {
	t.Helper()
	cli, err := client.New(client.WithTLSClientConfigFromEnv(), client.WithHostFromEnv())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true})
	}
	if err != nil {
		if os.Getenv("WM_SKIP_DOCKER") == "1" {
			t.Skipf("Docker unreachable, skipped because WM_SKIP_DOCKER=1: %v", err)
		}
		t.Fatalf("Docker unreachable (these tests need a Docker Engine; set WM_SKIP_DOCKER=1 to skip them): %v", err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	staleOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := CleanupStale(ctx, cli, StaleAfter); err != nil {
			t.Logf("removing leftovers of crashed test runs: %v", err)
		}
	})
	return cli
}

var serviceSeq atomic.Int64

// Config returns a policy for one test Service: safe defaults, a short stop timeout, a name
// prefix of its own and labels for this run and this service, so parallel tests (and other
// test processes on the same engine) never see each other's containers, homes or networks.
func Config() docker.Config {
	n := serviceSeq.Add(1)
	cfg := docker.DefaultConfig()
	cfg.NamePrefix = "wt" + RunID()[8:] + strconv.FormatInt(n, 10)
	cfg.Labels = map[string]string{LabelRun: RunID(), LabelService: strconv.FormatInt(n, 10)}
	cfg.StopTimeout = 2 * time.Second
	return cfg
}

// NewService builds a watching Service from Config, changed by configure, and removes it
// and everything it made when the test ends.
func NewService(t testing.TB, configure ...func(*docker.Config)) *docker.Service {
	t.Helper()
	cli := Client(t)
	cfg := Config()
	for _, f := range configure {
		f(&cfg)
	}
	svc, err := docker.New(cfg, nil)
	if err != nil {
		t.Fatalf("docker service: %v", err)
	}
	Track(t, cli, cfg)
	if err := svc.Watch(context.Background()); err != nil {
		t.Fatalf("watch: %v", err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	return svc
}

// Track removes, when the test ends, every object carrying cfg's labels.
func Track(t testing.TB, cli *client.Client, cfg docker.Config) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := Remove(ctx, cli, cfg.Labels); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})
}

// Cleanup removes every container, network, volume and image labelled with runID.
func Cleanup(ctx context.Context, cli *client.Client, runID string) error {
	if runID == "" {
		return errors.New("cleanup: empty run ID")
	}
	return Remove(ctx, cli, map[string]string{LabelRun: runID})
}

// CleanupStale removes the objects of test runs that started more than olderThan ago.
func CleanupStale(ctx context.Context, cli *client.Client, olderThan time.Duration) error {
	f := client.Filters{}.Add("label", LabelRun)
	runs := map[string]bool{}
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	for _, c := range cs.Items {
		runs[c.Labels[LabelRun]] = true
	}
	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return err
	}
	for _, n := range ns.Items {
		runs[n.Labels[LabelRun]] = true
	}
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return err
	}
	for _, v := range vs.Items {
		runs[v.Labels[LabelRun]] = true
	}
	is, err := cli.ImageList(ctx, client.ImageListOptions{Filters: f})
	if err != nil {
		return err
	}
	for _, i := range is.Items {
		runs[i.Labels[LabelRun]] = true
	}
	var errs []error
	for id := range runs {
		if started, ok := runStarted(id); ok && time.Since(started) > olderThan {
			errs = append(errs, Cleanup(ctx, cli, id))
		}
	}
	return errors.Join(errs...)
}

// Remove removes every container, network, volume and image carrying all of labels.
func Remove(ctx context.Context, cli *client.Client, labels map[string]string) error {
	if len(labels) == 0 {
		return errors.New("remove: no labels given")
	}
	f := client.Filters{}
	for k, v := range maps.All(labels) {
		f.Add("label", k+"="+v)
	}
	var errs []error
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	errs = append(errs, err)
	for _, c := range cs.Items {
		errs = append(errs, removeContainer(ctx, cli, c.ID))
	}
	ns, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	errs = append(errs, err)
	for _, n := range ns.Items {
		_, err := cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		errs = append(errs, ignoreNotFound(err))
	}
	vs, err := cli.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	errs = append(errs, err)
	for _, v := range vs.Items {
		_, err := cli.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: true})
		errs = append(errs, ignoreNotFound(err))
	}
	is, err := cli.ImageList(ctx, client.ImageListOptions{Filters: f})
	errs = append(errs, err)
	for _, i := range is.Items {
		_, err := cli.ImageRemove(ctx, i.ID, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		errs = append(errs, ignoreNotFound(err))
	}
	return errors.Join(errs...)
}

// removeContainer force-removes a container. A storage driver that could not remove the root
// filesystem at once ("directory not empty" while the engine still unmounts it, as
// fuse-overlayfs does under load) leaves the container Dead; it is asked again a few times.
func removeContainer(ctx context.Context, cli *client.Client, id string) error {
	var err error
	for try := 1; try <= 5; try++ {
		_, err = cli.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if err = ignoreNotFound(err); err == nil || !strings.Contains(err.Error(), "failed to remove root filesystem") {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Duration(try) * 200 * time.Millisecond):
		}
	}
	return err
}

// SweepRun removes whatever this test process's run still has on the engine (images built
// late by a test, after the cleanups of the tests before it): for a TestMain, after m.Run.
func SweepRun() error {
	cli, err := client.New(client.WithTLSClientConfigFromEnv(), client.WithHostFromEnv())
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return Cleanup(ctx, cli, RunID())
}
