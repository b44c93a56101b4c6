package class

import (
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/kube"
	"whalemountain/tui/dashboard"
)

var ta = backend.Identity{User: "tina", Role: backend.RoleTA}

type fakeSvc struct {
	mu    sync.Mutex
	conts []docker.Container
	subs  map[chan struct{}]bool
	psubs wakeSet // session watchers
	pres  map[string]Presence
	reads int // Sessions calls
}

func newFake() *fakeSvc {
	conts, pres := sample()
	return &fakeSvc{conts: conts, pres: pres, subs: map[chan struct{}]bool{}}
}

func (f *fakeSvc) Snapshot(backend.Identity, docker.ListOptions) ([]docker.Container, docker.Health) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]docker.Container(nil), f.conts...), docker.Health{OK: true}
}

func (f *fakeSvc) SubscribeFor(id backend.Identity, opts docker.ListOptions) (<-chan struct{}, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{}, 1)
	f.subs[ch] = true
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, ch)
			f.mu.Unlock()
			close(ch)
		})
	}
}

func (f *fakeSvc) Config() docker.Config {
	return docker.Config{Student: docker.Quota{MaxContainers: 5}, TA: docker.Quota{MaxContainers: 20}}
}

func (f *fakeSvc) Sessions() map[string]Presence {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads++
	out := map[string]Presence{}
	for k, v := range f.pres {
		out[k] = v
	}
	return out
}

func (f *fakeSvc) SubscribeSessions() (<-chan struct{}, func()) { return f.psubs.subscribe() }

// login changes who is connected and tells the session watchers only, as the SSH server does.
func (f *fakeSvc) login(user string, p Presence) {
	f.mu.Lock()
	if p.Sessions == 0 {
		delete(f.pres, user)
	} else {
		f.pres[user] = p
	}
	f.mu.Unlock()
	f.psubs.wake()
}

// wakeSet is the channels of subscribers, each woken without waiting (a wake-up may stand
// for several changes), as the server's notifiers do.
type wakeSet struct {
	mu  sync.Mutex
	chs map[chan struct{}]bool
}

func (w *wakeSet) subscribe() (<-chan struct{}, func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.chs == nil {
		w.chs = map[chan struct{}]bool{}
	}
	ch := make(chan struct{}, 1)
	w.chs[ch] = true
	return ch, func() {
		w.mu.Lock()
		delete(w.chs, ch)
		w.mu.Unlock()
	}
}

func (w *wakeSet) wake() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for ch := range w.chs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (w *wakeSet) len() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.chs)
}

func (f *fakeSvc) change(fn func()) {
	f.mu.Lock()
	fn()
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	f.mu.Unlock()
}

func (f *fakeSvc) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// await runs cmd (a wait for a change) with a bound.
func await(t *testing.T, cmd tea.Cmd) tea.Msg {
	t.Helper()
	if cmd == nil {
		t.Fatal("no command to wait on")
	}
	got := make(chan tea.Msg, 1)
	go func() { got <- cmd() }()
	select {
	case m := <-got:
		return m
	case <-time.After(30 * time.Second):
		t.Fatal("no change came")
		return nil
	}
}

func press(tab *Tab, s string) tea.Cmd {
	var msg tea.KeyPressMsg
	switch s {
	case "enter":
		msg = tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		msg = tea.KeyPressMsg{Code: tea.KeyEscape}
	default:
		msg = tea.KeyPressMsg{Code: rune(s[0]), Text: s}
	}
	_, cmd := tab.Update(msg)
	return cmd
}

func TestLiveOnlyOnScreen(t *testing.T) {
	f := newFake()
	tab := New(f, f, ta, dashboard.DefaultStyles())
	defer tab.Close()
	if tab.Init() != nil || f.subscribers() != 0 {
		t.Fatal("the tab subscribes before it is on screen")
	}
	wait := tab.Show(true)
	if f.subscribers() != 1 || f.reads != 1 {
		t.Fatalf("on screen: %d subscriptions, %d session reads", f.subscribers(), f.reads)
	}
	if !strings.Contains(tab.View(80, 20), "4 users") {
		t.Fatalf("first read:\n%s", tab.View(80, 20))
	}
	f.change(func() {
		f.conts = append(f.conts, docker.Container{Owner: "dave", Name: "d", State: "running"})
		f.pres["erin"] = Presence{Sessions: 3}
	})
	msg := await(t, wait)
	_, wait = tab.Update(msg)
	view := ansi.Strip(tab.View(80, 20))
	if !strings.Contains(view, "dave") || !strings.Contains(view, "erin") || f.reads != 2 {
		t.Fatalf("after a change (session reads %d):\n%s", f.reads, view)
	}
	tab.Show(false)
	if f.subscribers() != 0 {
		t.Fatal("off screen the subscription stays")
	}
	if m := await(t, wait); m != nil {
		if _, cmd := tab.Update(m); cmd != nil {
			t.Fatal("a change after leaving the screen still waits for more")
		}
	}
	tab.Show(true)
	if f.subscribers() != 1 || f.reads != 3 {
		t.Fatalf("shown again: %d subscriptions, %d session reads", f.subscribers(), f.reads)
	}
	tab.Close()
	if f.subscribers() != 0 {
		t.Fatal("Close keeps the subscription")
	}
}

func TestKeys(t *testing.T) {
	f := newFake()
	tab := New(f, f, ta, dashboard.DefaultStyles())
	defer tab.Close()
	tab.Show(true)
	if tab.sortBy != ByUser {
		t.Fatal("the first sort is by user")
	}
	for want := BySessions; want < numColumns; want++ {
		press(tab, "o")
		if tab.sortBy != want {
			t.Fatalf("o: sort %d, want %d", tab.sortBy, want)
		}
	}
	press(tab, "o")
	if tab.sortBy != ByUser {
		t.Fatal("o does not come back to user")
	}
	press(tab, "j")
	if tab.selUsr != "bob" {
		t.Fatalf("j selects %q", tab.selUsr)
	}
	cmd := press(tab, "enter")
	if cmd == nil {
		t.Fatal("enter does nothing")
	}
	if got := cmd(); !reflect.DeepEqual(got, dashboard.OpenMsg{Tab: "Containers", Filter: "owner:bob", Also: []string{"Pods"}}) {
		t.Fatalf("enter sends %#v", got)
	}
	press(tab, "/")
	if !tab.Capturing() {
		t.Fatal("/ does not start the filter")
	}
	for _, r := range "ml1" {
		press(tab, string(r))
	}
	press(tab, "enter")
	if tab.Capturing() || len(tab.rows) != 1 || tab.rows[0].User != "alice" {
		t.Fatalf("filter by preset: %+v", tab.rows)
	}
	press(tab, "esc")
	if len(tab.rows) != 4 {
		t.Fatalf("esc keeps the filter: %d rows", len(tab.rows))
	}
}

// The root: the footer's keys fit 80 columns, and enter opens the Containers tab filtered.
func TestInDashboard(t *testing.T) {
	f := newFake()
	tab := New(f, f, ta, dashboard.DefaultStyles())
	defer tab.Close()
	ctr := &filterTab{title: "Containers"}
	pods := &filterTab{title: "Pods"}
	m := dashboard.New(dashboard.Info{User: "tina", Role: "ta"}, dashboard.DefaultStyles(),
		ctr, dashboard.Notice{Name: "Images"}, dashboard.Notice{Name: "GPUs"}, pods, dashboard.Notice{Name: "Runner"}, tab)
	m.Init()
	for _, size := range [][2]int{{80, 24}, {200, 60}} {
		m.Update(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		m.Update(tea.KeyPressMsg{Code: '6', Text: "6"})
		lines := strings.Split(m.View().Content, "\n")
		if len(lines) != size[1] {
			t.Fatalf("%dx%d: %d lines", size[0], size[1], len(lines))
		}
		for _, l := range lines {
			if ansi.StringWidth(l) > size[0] {
				t.Errorf("%dx%d: line too wide: %q", size[0], size[1], ansi.Strip(l))
			}
		}
		plain := ansi.Strip(m.View().Content)
		if !strings.Contains(lines[1], "[5 Runner]") || !strings.Contains(lines[1], "[6 Class]") || !strings.Contains(plain, "USER") {
			t.Fatalf("%dx%d: tab bar or header missing:\n%s", size[0], size[1], plain)
		}
		footer := ansi.Strip(lines[len(lines)-1])
		for _, k := range []string{"enter containers", "o sort", "/ filter", "? help", "q quit"} {
			if !strings.Contains(footer, k) {
				t.Errorf("%dx%d: footer %q lacks %q", size[0], size[1], footer, k)
			}
		}
	}
	_, cmd := m.Update(tea.KeyPressMsg{Code: tea.KeyEnter})
	m.Update(cmd())
	if m.Active() != 0 || ctr.filter != "owner:alice" || pods.filter != "owner:alice" {
		t.Fatalf("enter: active %d, containers filter %q, pods filter %q", m.Active(), ctr.filter, pods.filter)
	}
}

type filterTab struct {
	dashboard.Notice
	title, filter string
}

func (f *filterTab) Title() string                           { return f.title }
func (f *filterTab) Update(tea.Msg) (dashboard.Tab, tea.Cmd) { return f, nil }
func (f *filterTab) SetFilter(s string) tea.Cmd              { f.filter = s; return nil }

// TestSessionsWakeTheTab: a login or a logout changes the table at once, with no change of
// the containers; off screen nothing is watched.
func TestSessionsWakeTheTab(t *testing.T) {
	f := newFake()
	tab := New(f, f, ta, dashboard.DefaultStyles())
	defer tab.Close()
	wait := tab.Show(true)
	if f.psubs.len() != 1 {
		t.Fatalf("on screen: %d session watchers", f.psubs.len())
	}
	f.login("zed", Presence{Sessions: 1})
	_, wait = tab.Update(await(t, wait))
	if view := ansi.Strip(tab.View(100, 20)); !strings.Contains(view, "zed") {
		t.Fatalf("after zed logged in:\n%s", view)
	}
	f.login("zed", Presence{})
	_, wait = tab.Update(await(t, wait))
	if view := ansi.Strip(tab.View(100, 20)); strings.Contains(view, "zed") {
		t.Fatalf("after zed logged out:\n%s", view)
	}
	tab.Show(false)
	if f.psubs.len() != 0 {
		t.Fatal("off screen the session watch stays")
	}
	if m := await(t, wait); m != nil {
		if _, cmd := tab.Update(m); cmd != nil {
			t.Fatal("a wake-up after leaving the screen still waits for more")
		}
	}
}

// fakePods is a pods snapshot that tells its subscribers when it changes.
type fakePods struct {
	mu   sync.Mutex
	pods []kube.Pod
	subs map[chan struct{}]bool
	opts []kube.ListOptions // what each read asked for
}

func (f *fakePods) Snapshot(_ backend.Identity, opts kube.ListOptions) ([]kube.Pod, kube.Health) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.opts = append(f.opts, opts)
	return append([]kube.Pod(nil), f.pods...), kube.Health{OK: true}
}

func (f *fakePods) SubscribeFor(backend.Identity, kube.ListOptions) (<-chan struct{}, func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan struct{}, 1)
	f.subs[ch] = true
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

func (f *fakePods) add(p kube.Pod) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods = append(f.pods, p)
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func TestPodsWakeTheTab(t *testing.T) {
	f := newFake()
	p := &fakePods{subs: map[chan struct{}]bool{}, pods: []kube.Pod{{Name: "lab", Owner: "alice", Phase: "Running", GPUs: 1}}}
	tab := New(f, f, ta, dashboard.DefaultStyles())
	tab.SetPods(p)
	defer tab.Close()
	wait := tab.Show(true)
	if len(p.subs) != 1 || len(p.opts) != 1 || !p.opts[0].AllUsers {
		t.Fatalf("on screen: %d pod subscriptions, reads %v (want everyone's)", len(p.subs), p.opts)
	}
	view := ansi.Strip(tab.View(80, 20))
	if !strings.Contains(view, "PODS") || !strings.Contains(view, "1/1 pods") {
		t.Fatalf("first read:\n%s", view)
	}
	p.add(kube.Pod{Name: "nb", Owner: "pat", Phase: "Pending"})
	_, wait = tab.Update(await(t, wait))
	view = ansi.Strip(tab.View(80, 20))
	if !strings.Contains(view, "pat") || !strings.Contains(view, "1/2 pods") {
		t.Fatalf("after pat's pod (a user with only a pod has a row):\n%s", view)
	}
	tab.Show(false)
	if len(p.subs) != 0 {
		t.Fatal("off screen the pods subscription stays")
	}
	if m := await(t, wait); m != nil {
		if _, cmd := tab.Update(m); cmd != nil {
			t.Fatal("a wake-up after leaving the screen still waits for more")
		}
	}
}

// fakeSharers is who shares a shell; it tells its subscribers when that changes, as the
// sharing hub does.
type fakeSharers struct {
	mu    sync.Mutex
	users map[string]bool
	subs  wakeSet
}

func (f *fakeSharers) Sharing(id backend.Identity) map[string]bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := map[string]bool{}
	for u, v := range f.users {
		out[u] = v
	}
	return out
}

func (f *fakeSharers) SubscribeShares() (<-chan struct{}, func()) { return f.subs.subscribe() }

func (f *fakeSharers) set(user string, on bool) {
	f.mu.Lock()
	if on {
		f.users[user] = true
	} else {
		delete(f.users, user)
	}
	f.mu.Unlock()
	f.subs.wake()
}

// TestSharingMark: a user who shares a shell is marked the moment sharing starts and
// unmarked when it stops, woken by the hub (nothing polls); w on the row joins.
func TestSharingMark(t *testing.T) {
	f := newFake()
	sh := &fakeSharers{users: map[string]bool{}}
	tab := New(f, f, ta, dashboard.DefaultStyles())
	tab.SetSharers(sh)
	defer tab.Close()
	wait := tab.Show(true)
	if sh.subs.len() != 1 {
		t.Fatalf("on screen: %d share watchers", sh.subs.len())
	}
	row := func(user string) string {
		for _, l := range strings.Split(ansi.Strip(tab.View(100, 20)), "\n") {
			if strings.Contains(l, " "+user+" ") || strings.HasPrefix(l, SharingMark+user) {
				return l
			}
		}
		t.Fatalf("no row for %s:\n%s", user, ansi.Strip(tab.View(100, 20)))
		return ""
	}
	if l := row("bob"); strings.HasPrefix(l, SharingMark) {
		t.Fatalf("bob is marked before sharing: %q", l)
	}
	sh.set("bob", true)
	_, wait = tab.Update(await(t, wait))
	if l := row("bob"); !strings.HasPrefix(l, SharingMark+"bob") {
		t.Errorf("bob shares but is not marked: %q", l)
	}
	if l := row("alice"); strings.HasPrefix(l, SharingMark) {
		t.Errorf("alice is marked: %q", l)
	}
	if v := ansi.Strip(tab.View(100, 20)); !strings.Contains(v, SharingMark+" 1 sharing a shell (w joins)") {
		t.Errorf("the summary does not say who shares:\n%s", v)
	}
	sh.set("bob", false)
	_, wait = tab.Update(await(t, wait))
	if l := row("bob"); strings.HasPrefix(l, SharingMark) {
		t.Errorf("bob stopped sharing but is still marked: %q", l)
	}
	tab.Show(false)
	if sh.subs.len() != 0 {
		t.Fatal("off screen the share watch stays")
	}
	if m := await(t, wait); m != nil {
		if _, cmd := tab.Update(m); cmd != nil {
			t.Fatal("a wake-up after leaving the screen still waits for more")
		}
	}
}
