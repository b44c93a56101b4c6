package gpus

import (
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend/gpu"
	"whalemountain/tui/dashboard"
)

// fakeSource is a sampler whose state the test sets, notifying subscribers like gpu.Sampler.
type fakeSource struct {
	mu      sync.Mutex
	state   gpu.State
	ok      bool
	reason  string
	subs    []chan struct{}
	unsubs  int
	snapped int
}

func (f *fakeSource) Snapshot() gpu.State {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.snapped++
	return f.state.Clone()
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
			close(ch)
		})
	}
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
	src := &fakeSource{ok: true, state: sample()}
	tab := New(src, alice, dashboard.DefaultStyles())
	defer tab.Close()
	wait := tab.Init()
	view := ansi.Strip(tab.View(80, 20))
	if !strings.Contains(view, "72%") || !strings.Contains(view, "alice/jupyter") {
		t.Fatalf("first view:\n%s", view)
	}

	next := sample()
	next.GPUs[0].Util = ptr(13)
	next.GPUs[1].Processes = []gpu.Process{{MemUsed: ptr(gib), Where: gpu.WhereContainer, Owner: "bob", ContainerName: "x"}}
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
	if !strings.Contains(view, "in use by another user 1.0 GiB") || strings.Contains(view, "bob/x") {
		t.Errorf("privacy rule not applied after the change:\n%s", view)
	}

	// Another tab's message changes nothing.
	other := New(src, alice, dashboard.DefaultStyles())
	if _, cmd := tab.Update(changedMsg{tab: other}); cmd != nil {
		t.Error("a message for another tab was taken")
	}

	tab.Close()
	tab.Close()
	if src.unsubs != 1 {
		t.Errorf("unsubscribed %d times, want 1", src.unsubs)
	}
	if msg := run(t, wait); msg != nil {
		t.Errorf("after Close the wait returned %#v", msg)
	}
}

func TestTabUnavailable(t *testing.T) {
	src := &fakeSource{ok: false, reason: "NVML library not found"}
	tab := New(src, alice, dashboard.DefaultStyles())
	defer tab.Close()
	tab.Init()
	if got := ansi.Strip(tab.View(80, 24)); got != " No GPUs on this server: NVML library not found" {
		t.Errorf("view = %q", got)
	}
	if got := ansi.Strip(New(nil, alice, dashboard.DefaultStyles()).View(80, 24)); !strings.Contains(got, "No GPUs on this server: GPU monitoring is off") {
		t.Errorf("nil source view = %q", got)
	}
}

func TestTabScrolls(t *testing.T) {
	s := sample()
	for i := 2; i < 10; i++ {
		g := s.GPUs[1]
		g.Index = i
		s.GPUs = append(s.GPUs, g)
	}
	src := &fakeSource{ok: true, state: s}
	tab := New(src, ta, dashboard.DefaultStyles())
	defer tab.Close()
	tab.Init()
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
}
