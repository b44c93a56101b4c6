package docker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// fakeEngine is an engine whose event stream and list the test controls; any method the
// watcher should not need panics (the embedded nil interface).
type fakeEngine struct {
	engine

	mu      sync.Mutex
	down    error
	items   []container.Summary
	lists   int
	msgs    chan events.Message
	errs    chan error
	streams int
}

func (f *fakeEngine) Events(ctx context.Context, _ client.EventsListOptions) client.EventsResult {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams++
	msgs, errs := make(chan events.Message), make(chan error, 1)
	if f.down != nil {
		errs <- f.down
		return client.EventsResult{Messages: msgs, Err: errs}
	}
	f.msgs, f.errs = msgs, errs
	return client.EventsResult{Messages: msgs, Err: errs}
}

func (f *fakeEngine) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists++
	if f.down != nil {
		return client.ContainerListResult{}, f.down
	}
	return client.ContainerListResult{Items: append([]container.Summary(nil), f.items...)}, nil
}

func (f *fakeEngine) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, it := range f.items {
		if it.ID == id {
			return client.ContainerInspectResult{Container: container.InspectResponse{
				ID:         id,
				State:      &container.State{Status: it.State, StartedAt: "2026-01-02T03:04:05Z"},
				Config:     &container.Config{Labels: it.Labels, Image: it.Image},
				HostConfig: &container.HostConfig{Resources: container.Resources{NanoCPUs: 2e9, Memory: 1 << 30}},
			}}, nil
		}
	}
	return client.ContainerInspectResult{}, errors.New("no such container")
}

func (f *fakeEngine) Close() error { return nil }

// ContainerStats has nothing to say: usage is not what these tests are about.
func (f *fakeEngine) ContainerStats(context.Context, string, client.ContainerStatsOptions) (client.ContainerStatsResult, error) {
	return client.ContainerStatsResult{}, errors.New("no stats from the fake engine")
}

func (f *fakeEngine) set(down error, items ...container.Summary) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down = down
	if items != nil {
		f.items = items
	}
}

// send delivers an event on the current stream.
func (f *fakeEngine) send(t *testing.T, id string) {
	t.Helper()
	f.mu.Lock()
	ch := f.msgs
	f.mu.Unlock()
	select {
	case ch <- events.Message{Type: events.ContainerEventType, Action: events.ActionDie, Actor: events.Actor{ID: id}}:
	case <-time.After(10 * time.Second):
		t.Fatal("watcher does not read events")
	}
}

// breakStream ends the current stream with err.
func (f *fakeEngine) breakStream(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs <- err
}

func summary(id, owner, name string, state container.ContainerState) container.Summary {
	return container.Summary{ID: id, Image: "busybox", State: state, Status: string(state), Created: 1,
		Labels: map[string]string{LabelManaged: "true", LabelKind: KindContainer, LabelOwner: owner, LabelName: name}}
}

func waitFor(t *testing.T, s *Service, what string, cond func() bool) {
	t.Helper()
	ch, cancel := s.Subscribe()
	defer cancel()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func fakeService(t *testing.T, f *fakeEngine) *Service {
	s := newService(DefaultConfig(), f, nil)
	if err := s.Watch(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.Watch(context.Background()); err == nil {
		t.Error("a second Watch was accepted")
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

var alice = backend.Identity{User: "alice", Role: backend.RoleStudent}

// TestHealthDegradesAndRecovers: a broken event stream turns Health bad, keeps the last known
// list, and the watcher reconnects and resyncs by itself.
func TestHealthDegradesAndRecovers(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{}
	f.set(nil, summary("c1", "alice", "box", container.StateRunning))
	s := fakeService(t, f)

	snap := func() ([]Container, Health) { return s.Snapshot(alice, ListOptions{All: true}) }
	waitFor(t, s, "healthy snapshot", func() bool { cs, h := snap(); return h.OK && len(cs) == 1 })
	cs, h := snap()
	if cs[0].Name != "box" || cs[0].CPUs != 2 || cs[0].StartedAt.IsZero() || h.Since.IsZero() {
		t.Errorf("snapshot %+v %+v", cs, h)
	}

	f.set(errors.New("dial unix /var/run/docker.sock: connect: connection refused"))
	f.breakStream(errors.New("unexpected EOF"))
	waitFor(t, s, "unhealthy", func() bool { _, h := snap(); return !h.OK })
	cs, h = snap()
	if len(cs) != 1 || cs[0].Name != "box" {
		t.Errorf("last known list lost while unhealthy: %+v", cs)
	}
	if h.Err == "" || strings.Contains(h.Err, "\n") {
		t.Errorf("health error %q", h.Err)
	}

	// Docker comes back with a different picture: reconnect, full resync.
	f.set(nil, summary("c1", "alice", "box", container.StateExited), summary("c2", "alice", "new", container.StateRunning))
	waitFor(t, s, "recovered", func() bool { cs, h := snap(); return h.OK && len(cs) == 2 })
	cs, _ = snap()
	if cs[0].Name != "box" || cs[0].State != "exited" {
		t.Errorf("after recovery %+v", cs)
	}
	f.mu.Lock()
	streams := f.streams
	f.mu.Unlock()
	if streams < 2 {
		t.Errorf("%d event streams: no reconnect", streams)
	}
}

// TestEventBurstCoalesced: a burst of events costs a handful of resyncs, not one each.
func TestEventBurstCoalesced(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{}
	f.set(nil, summary("c1", "alice", "box", container.StateRunning))
	s := fakeService(t, f)
	waitFor(t, s, "healthy", func() bool { _, h := s.Snapshot(alice, ListOptions{}); return h.OK })

	f.mu.Lock()
	before := f.lists
	f.mu.Unlock()
	f.set(nil, summary("c1", "alice", "box", container.StateExited))
	for range 200 {
		f.send(t, "c1")
	}
	waitFor(t, s, "exited", func() bool {
		cs, _ := s.Snapshot(alice, ListOptions{All: true})
		return len(cs) == 1 && cs[0].State == "exited"
	})
	time.Sleep(3 * coalesce)
	f.mu.Lock()
	n := f.lists - before
	f.mu.Unlock()
	if n < 1 || n > 10 {
		t.Errorf("200 events caused %d list calls", n)
	}
}

// TestSubscribeCoalescesAndCancels: a slow subscriber gets one pending notification, never
// blocks the service, and cancel closes its channel.
func TestSubscribeCoalescesAndCancels(t *testing.T) {
	s := newService(DefaultConfig(), &fakeEngine{}, nil)
	ch, cancel := s.Subscribe()
	s.live.mu.Lock()
	for range 100 {
		s.live.notifyLocked(nil)
	}
	s.live.mu.Unlock()
	if len(ch) != 1 {
		t.Errorf("%d pending notifications", len(ch))
	}
	cancel()
	cancel()
	<-ch
	if _, ok := <-ch; ok {
		t.Error("channel open after cancel")
	}
	if cs, h := s.Snapshot(backend.Identity{}, ListOptions{}); cs != nil || h.OK {
		t.Errorf("nobody's snapshot %v %+v", cs, h)
	}
}

// TestSubscribeForWakesOnlyWhoseContainersChanged: a change to bob's container wakes bob's
// and the all-users TA's subscriptions, not alice's; a change of health wakes everyone.
func TestSubscribeForWakesOnlyWhoseContainersChanged(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{}
	f.set(nil, summary("c1", "alice", "box", container.StateRunning), summary("c2", "bob", "box", container.StateRunning))
	s := fakeService(t, f)
	bob := backend.Identity{User: "bob", Role: backend.RoleStudent}
	tina := backend.Identity{User: "tina", Role: backend.RoleTA}
	waitFor(t, s, "both containers", func() bool { cs, _ := s.Snapshot(tina, ListOptions{All: true, AllUsers: true}); return len(cs) == 2 })

	subs := map[string]<-chan struct{}{}
	for name, sub := range map[string]struct {
		id   backend.Identity
		opts ListOptions
	}{
		"alice":      {alice, ListOptions{All: true, AllUsers: true}}, // a student's AllUsers means her own
		"bob":        {bob, ListOptions{All: true}},
		"tina":       {tina, ListOptions{All: true, AllUsers: true}},
		"tina's own": {tina, ListOptions{All: true}},
		"nobody":     {backend.Identity{}, ListOptions{All: true}},
	} {
		ch, cancel := s.SubscribeFor(sub.id, sub.opts)
		t.Cleanup(cancel)
		subs[name] = ch
	}
	woken := func() map[string]bool {
		time.Sleep(3 * coalesce)
		out := map[string]bool{}
		for name, ch := range subs {
			select {
			case <-ch:
				out[name] = true
			default:
			}
		}
		return out
	}
	_ = woken() // start from quiet

	f.set(nil, summary("c1", "alice", "box", container.StateRunning), summary("c2", "bob", "box", container.StateExited))
	f.send(t, "c2")
	waitFor(t, s, "bob's box exited", func() bool {
		cs, _ := s.Snapshot(bob, ListOptions{All: true})
		return len(cs) == 1 && cs[0].State == "exited"
	})
	if got := woken(); !got["bob"] || !got["tina"] || got["alice"] || got["tina's own"] || got["nobody"] {
		t.Errorf("bob's change woke %v, want bob and tina (all users) only", got)
	}

	f.set(nil, summary("c2", "bob", "box", container.StateExited))
	f.send(t, "c1")
	waitFor(t, s, "alice's box gone", func() bool { cs, _ := s.Snapshot(alice, ListOptions{All: true}); return len(cs) == 0 })
	if got := woken(); !got["alice"] || !got["tina"] || got["bob"] || got["tina's own"] {
		t.Errorf("alice's removal woke %v, want alice and tina (all users) only", got)
	}

	f.set(errors.New("connection refused"))
	f.breakStream(errors.New("unexpected EOF"))
	waitFor(t, s, "unhealthy", func() bool { _, h := s.Snapshot(alice, ListOptions{}); return !h.OK })
	if got := woken(); len(got) != len(subs) {
		t.Errorf("a change of health woke %v, want everyone", got)
	}
}
