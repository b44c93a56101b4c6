package gpus

import (
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/gpu"
	"whalemountain/tui/dashboard"
)

// fakeSource is a sampler whose state the test sets, notifying subscribers like gpu.Sampler.
// The state set is what the sampler hands out already cut down for the tab's user; it
// records who asked.
type fakeSource struct {
	mu     sync.Mutex
	state  gpu.State
	ok     bool
	reason string
	subs   []chan struct{}
	unsubs int
	asked  []backend.Identity
}

func (f *fakeSource) Snapshot(id backend.Identity) gpu.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked = append(f.asked, id)
	return f.state.Clone()
}

// askedOnlyAs fails unless every snapshot was asked for as id, and at least one was.
func (f *fakeSource) askedOnlyAs(t *testing.T, id backend.Identity) {
	t.Helper()
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.asked) == 0 {
		t.Errorf("no snapshot was read")
	}
	for _, a := range f.asked {
		if a != id {
			t.Errorf("a snapshot was read as %v, want %v", a, id)
		}
	}
}

func (f *fakeSource) Available() (bool, string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ok, f.reason
}

func (f *fakeSource) Subscribe() (<-chan struct{}, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{}, 1)
	f.subs = append(f.subs, ch)
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			defer f.mu.Unlock()
			f.unsubs++
			f.subs = slices.DeleteFunc(f.subs, func(c chan struct{}) bool { return c == ch })
			close(ch)
		})
	}
}

// subscribed reports whether any subscription is open.
func (f *fakeSource) subscribed() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs) > 0
}

func (f *fakeSource) set(s gpu.State) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state = s
	for _, ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// run runs cmd with a deadline; nil when it returns nothing in time.
func run(t *testing.T, cmd tea.Cmd) tea.Msg {
	t.Helper()
	if cmd == nil {
		t.Fatal("no command")
	}
	done := make(chan tea.Msg, 1)
	go func() { done <- cmd() }()
	select {
	case m := <-done:
		return m
	case <-time.After(2 * time.Second):
		t.Fatal("command did not return")
		return nil
	}
}

func TestTabUpdatesOnChange(t *testing.T) {
	src := &fakeSource{ok: true, state: seenBy(alice)}
	tab := New(src, alice, dashboard.DefaultStyles())
	defer tab.Close()
	if tab.Init() != nil || src.subscribed() {
		t.Fatal("the tab follows the sampler before it is on screen")
	}
	wait := tab.Show(true)
	view := ansi.Strip(tab.View(80, 20))
	if !strings.Contains(view, "72%") || !strings.Contains(view, "alice/jupyter") {
		t.Fatalf("first view:\n%s", view)
	}

	next := seenBy(alice)
	next.GPUs[0].Util = ptr(13)
	next.GPUs[1].Processes = []gpu.Process{{MemUsed: ptr(gib), Where: gpu.WhereHidden}}
	src.set(next)

	msg := run(t, wait)
	if _, ok := msg.(changedMsg); !ok {
		t.Fatalf("message = %#v, want changedMsg", msg)
	}
	_, wait = tab.Update(msg)
	if wait == nil {
		t.Fatal("the tab stopped listening after a change")
	}
	view = ansi.Strip(tab.View(80, 20))
	if !strings.Contains(view, " 13%") || strings.Contains(view, "72%") {
		t.Errorf("view did not follow the change:\n%s", view)
	}
	if !strings.Contains(view, "in use by another user 1.0 GiB") {
		t.Errorf("the hidden process is not shown after the change:\n%s", view)
	}
	// Every read, the first and the one after the change, asked as the tab's user.
	src.askedOnlyAs(t, alice)

	// Another tab's message changes nothing.
	other := New(src, alice, dashboard.DefaultStyles())
	if _, cmd := tab.Update(changedMsg{tab: other}); cmd != nil {
		t.Error("a message for another tab was taken")
	}

	// Hidden, it stops following the readings (and takes no change message); shown again,
	// it reads them afresh.
	tab.Show(false)
	if src.unsubs != 1 || src.subscribed() {
		t.Errorf("hidden: unsubscribed %d times, still subscribed %v", src.unsubs, src.subscribed())
	}
	if msg := run(t, wait); msg != nil {
		t.Errorf("after hiding the wait returned %#v", msg)
	}
	if _, cmd := tab.Update(changedMsg{tab: tab}); cmd != nil {
		t.Error("a hidden tab took a change")
	}
	next.GPUs[0].Util = ptr(55)
	src.set(next)
	wait = tab.Show(true)
	if view := ansi.Strip(tab.View(80, 20)); !strings.Contains(view, " 55%") {
		t.Errorf("shown again, the view is not current:\n%s", view)
	}

	tab.Close()
	tab.Close()
	if src.unsubs != 2 {
		t.Errorf("unsubscribed %d times, want 2", src.unsubs)
	}
	if msg := run(t, wait); msg != nil {
		t.Errorf("after Close the wait returned %#v", msg)
	}
}

func TestTabUnavailable(t *testing.T) {
	src := &fakeSource{ok: false, reason: "NVML library not found"}
	tab := New(src, alice, dashboard.DefaultStyles())
	defer tab.Close()
	tab.Show(true)
	if got := ansi.Strip(tab.View(80, 24)); got != " No GPUs on this server: NVML library not found" {
		t.Errorf("view = %q", got)
	}
	if got := ansi.Strip(New(nil, alice, dashboard.DefaultStyles()).View(80, 24)); !strings.Contains(got, "No GPUs on this server: GPU monitoring is off") {
		t.Errorf("nil source view = %q", got)
	}
}

func TestTabScrolls(t *testing.T) {
	s := seenBy(ta)
	for i := 2; i < 10; i++ {
		g := s.GPUs[1]
		g.Index = i
		s.GPUs = append(s.GPUs, g)
	}
	src := &fakeSource{ok: true, state: s}
	tab := New(src, ta, dashboard.DefaultStyles())
	defer tab.Close()
	tab.Show(true)
	press := func(code rune) { tab.Update(tea.KeyPressMsg{Code: code, Text: string(code)}) }

	first := ansi.Strip(tab.View(80, 5))
	if n := strings.Count(first, "\n") + 1; n != 5 {
		t.Fatalf("view has %d lines, want 5", n)
	}
	if !strings.HasPrefix(first, " GPU 0") {
		t.Fatalf("top:\n%s", first)
	}
	press('j')
	press('j')
	if got := ansi.Strip(tab.View(80, 5)); !strings.HasPrefix(got, " GPU 1") {
		t.Errorf("after jj:\n%s", got)
	}
	press('k')
	if got := ansi.Strip(tab.View(80, 5)); strings.HasPrefix(got, " GPU") {
		t.Errorf("after jjk the first line is a head line:\n%s", got)
	}
	press('G')
	last := ansi.Strip(tab.View(80, 5))
	if !strings.Contains(last, "bob") {
		t.Errorf("bottom lacks the summary:\n%s", last)
	}
	press('j') // past the end: stays
	if got := ansi.Strip(tab.View(80, 5)); got != last {
		t.Errorf("scrolled past the end:\n%s", got)
	}
	press('g')
	if got := ansi.Strip(tab.View(80, 5)); got != first {
		t.Errorf("g did not go back to the top:\n%s", got)
	}
	src.askedOnlyAs(t, ta)
}
