package containers

import (
	"strings"
	"testing"

	"charm.land/bubbles/v2/key"

	"whalemountain/backend"
	"whalemountain/backend/docker"
)

// listOnly is a backend that can only list: every other capability of fakeService hidden.
type listOnly struct{ f *fakeService }

func (l listOnly) Snapshot(id backend.Identity, opts docker.ListOptions) ([]docker.Container, docker.Health) {
	return l.f.Snapshot(id, opts)
}

func (l listOnly) SubscribeFor(id backend.Identity, opts docker.ListOptions) (<-chan struct{}, func()) {
	return l.f.SubscribeFor(id, opts)
}

// listAndStop can list and stop, nothing else.
type listAndStop struct {
	listOnly
	Stopper
}

func helpOf(bs []key.Binding) string {
	var out []string
	for _, b := range bs {
		if b.Enabled() {
			out = append(out, b.Help().Key+" "+b.Help().Desc)
		}
	}
	return strings.Join(out, ", ")
}

// TestOffersOnlyWhatTheBackendHas: the keys of actions a backend does not have are neither
// shown nor taken; the full docker-like backend is offered everything.
func TestOffersOnlyWhatTheBackendHas(t *testing.T) {
	full := New(newFake(threeOfAlice()...), alice, testStyles(), fixedNow)
	newDriver(t, full)
	if got, want := helpOf(full.Keys()), "n new, s shell, l logs, S stop, r restart, d delete, / filter"; got != want {
		t.Errorf("full backend offers %q, want %q", got, want)
	}

	f := newFake(threeOfAlice()...)
	tab := New(listOnly{f}, alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	if got, want := helpOf(tab.Keys()), "s shell, / filter"; got != want {
		t.Errorf("list-only backend offers %q, want %q", got, want)
	}
	d.press("n", "l", "d", "r", "S", "enter")
	d.settle(0)
	if tab.form != nil || tab.logs != nil || tab.confirm != nil || tab.detailsOpen || len(tab.busy) != 0 {
		t.Errorf("a key of an action the backend lacks was taken: form %v logs %v confirm %v details %v busy %v",
			tab.form != nil, tab.logs != nil, tab.confirm != nil, tab.detailsOpen, tab.busy)
	}
	if n := len(f.actionsDone()); n != 0 {
		t.Errorf("backend called: %v", f.actionsDone())
	}
	if d.row("a1") == "" {
		t.Errorf("the list is not shown:\n%s", d.screen)
	}

	// A backend that stops but cannot start: S stops a running container, and says so on
	// a stopped one.
	g := newFake(threeOfAlice()...)
	st := New(listAndStop{listOnly{g}, g}, alice, testStyles(), fixedNow)
	e := newDriver(t, st)
	if got, want := helpOf(st.Keys()), "s shell, S stop, / filter"; got != want {
		t.Errorf("list-and-stop backend offers %q, want %q", got, want)
	}
	e.press("G", "S")
	e.waitStatus("start: not available on this server")
}
