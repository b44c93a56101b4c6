package docker_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"go.uber.org/goleak"

	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// TestEngineCutAndStalled puts a proxy between the Service and dockerd and cuts it, then
// stalls it. Each time the snapshot says so in one line and keeps the last known list,
// commands fail with one line instead of hanging, and when the engine comes back the event
// stream resumes and the snapshot is read again whole: containers stopped, removed and made
// while the connection was down (what a dockerd restart does behind the server's back) show
// as they are, once each. Afterwards no goroutine and no connection is left behind.
//
// Not parallel: the leak check counts every goroutine started while it runs.
func TestEngineCutAndStalled(t *testing.T) {
	leaks := goleak.IgnoreCurrent()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cli := dockertest.Client(t)
	img := dockertest.BusyboxImage(ctx, t, cli)
	proxy := dockertest.NewProxy(t)

	cfg := dockertest.Config()
	dockertest.Track(t, cli, cfg)
	cfg.Host = proxy.Host()
	const answer = 5 * time.Second
	svc, err := docker.NewWithTimings(cfg, nil, answer, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	if err := svc.Watch(context.Background()); err != nil {
		t.Fatal(err)
	}
	// direct is a second Service on the engine itself: what changes behind the cut.
	direct := cfg
	direct.Host = ""
	behind, err := docker.New(direct, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = behind.Close() })

	for _, name := range []string{"box", "gone"} {
		if _, err := svc.Run(ctx, alice, docker.RunSpec{Name: name, Image: img}); err != nil {
			t.Fatalf("run %s: %v", name, err)
		}
	}
	names := func() []string {
		cs, _ := svc.Snapshot(alice, docker.ListOptions{All: true})
		var out []string
		for _, c := range cs {
			out = append(out, c.Name+" "+c.State)
		}
		return out
	}
	healthy := func(want ...string) func() bool {
		return func() bool {
			_, h := svc.Snapshot(alice, docker.ListOptions{})
			return h.OK && slices.Equal(names(), want)
		}
	}
	unhealthy := func(reason string) func() bool {
		return func() bool {
			_, h := svc.Snapshot(alice, docker.ListOptions{})
			return !h.OK && h.Err == reason
		}
	}
	until(t, svc, "box and gone running", healthy("box running", "gone running"))
	oneLine := func(what string, err error, says string) {
		t.Helper()
		if err == nil {
			t.Fatalf("%s succeeded with the engine out of reach", what)
		}
		if !errors.Is(err, docker.ErrUnavailable) || strings.Contains(err.Error(), "\n") || !strings.HasSuffix(err.Error(), ": "+says) {
			t.Errorf("%s: %q (unavailable: %v), want one line ending %q", what, err, errors.Is(err, docker.ErrUnavailable), says)
		}
	}

	// Cut: dockerd gone.
	proxy.Cut()
	until(t, svc, "the snapshot to say Docker is unreachable", unhealthy("cannot connect to the Docker daemon"))
	if got := names(); !slices.Equal(got, []string{"box running", "gone running"}) {
		t.Errorf("last known list while cut: %q", got)
	}
	oneLine("stop while cut", svc.Stop(ctx, alice, "box", ""), "Docker unreachable")
	_, err = svc.Run(ctx, alice, docker.RunSpec{Name: "more", Image: img})
	oneLine("run while cut", err, "Docker unreachable")

	// Behind the cut, as across a dockerd restart: one stopped, one removed, one made.
	zero := 0
	if _, err := cli.ContainerStop(ctx, cfg.NamePrefix+"-alice-box", client.ContainerStopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ContainerRemove(ctx, cfg.NamePrefix+"-alice-gone", client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := behind.Run(ctx, alice, docker.RunSpec{Name: "fresh", Image: img}); err != nil {
		t.Fatal(err)
	}
	if err := proxy.Resume(); err != nil {
		t.Fatal(err)
	}
	until(t, svc, "the snapshot resynced after the cut", healthy("box exited", "fresh running"))

	// The event stream is back: a change made now is seen.
	if err := svc.Start(ctx, alice, "box"); err != nil {
		t.Fatalf("start after the cut: %v", err)
	}
	until(t, svc, "box running again", healthy("box running", "fresh running"))

	// Stall: dockerd hangs, the connection stays open.
	proxy.Stall()
	until(t, svc, "the snapshot to say Docker is not answering", unhealthy("the Docker daemon is not answering"))
	oneLine("start while stalled", svc.Start(ctx, alice, "fresh"), "Docker is not answering")
	if _, err := cli.ContainerStop(ctx, cfg.NamePrefix+"-alice-fresh", client.ContainerStopOptions{Timeout: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := proxy.Resume(); err != nil {
		t.Fatal(err)
	}
	until(t, svc, "the snapshot resynced after the stall", healthy("box running", "fresh exited"))

	// Nothing duplicated on the engine either.
	mine := client.Filters{}
	for k, v := range cfg.Labels {
		mine.Add("label", k+"="+v)
	}
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: mine})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Items) != 2 {
		t.Errorf("%d containers on the engine, want box and fresh", len(res.Items))
	}

	// Nothing left behind: the proxy sees every connection closed, no goroutine remains.
	if err := svc.Close(); err != nil {
		t.Error(err)
	}
	_ = behind.Close()
	if !pollFor(10*time.Second, func() bool { return proxy.Open() == 0 }) {
		t.Errorf("%d connections to the engine left open after Close", proxy.Open())
	}
	proxy.Close()
	_ = cli.Close()
	// Find waits a second or so by itself; a loaded machine may need longer.
	for deadline := time.Now().Add(30 * time.Second); goleak.Find(leaks) != nil && time.Now().Before(deadline); {
	}
	goleak.VerifyNone(t, leaks)
}

// pollFor checks cond every few milliseconds until it holds or d has passed; for what
// gives no signal to wait on (a peer closing its side).
func pollFor(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}
