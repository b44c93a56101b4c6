// Package class is the dashboard's Class tab, for TAs only: one row per user with anything
// on the server or a session open — sessions now, containers running of all, GPUs held, CPU
// and memory in use (summed over their running containers) and how much of the role's
// container quota they use. Rows sort by any column (o), filter by user or preset (/), and
// enter opens the Containers tab filtered to that user.
//
// The table costs no Docker API call: it is re-read from the backend's snapshot when
// SubscribeFor says something changed, and only while the tab is on screen (it subscribes
// on Show(true) and lets go on Show(false)). Session counts and who shares a shell (marked
// ●; w joins the shell) are read when the tab is shown, with each change of the snapshot and
// each time a session opens or closes or a shell is shared or no longer (the SSH server and
// the sharing hub say so); nothing polls.
package class

import (
	"context"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/kube"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/termsafe"
)

// Service is what the tab needs from backend/docker; *docker.Service satisfies it.
type Service interface {
	Snapshot(id backend.Identity, opts docker.ListOptions) ([]docker.Container, docker.Health)
	SubscribeFor(id backend.Identity, opts docker.ListOptions) (<-chan struct{}, func())
	Config() docker.Config
}

var _ Service = (*docker.Service)(nil)

// Fair is what the tab shows of the GPU waiting list and the idle culler when the service
// keeps them (docker.Service): GPU-hours held in the fair-share window per user, the
// waiting requests, the latest idle stops.
type Fair interface {
	WaitingList(id backend.Identity) []docker.Waiting
	Culls(id backend.Identity) []docker.Cull
}

var _ Fair = (*docker.Service)(nil)

var _ PodSource = (*kube.Service)(nil)

// Hours gives each user's GPU-hours held since a time; *gpuhours.Meter gives it as Since.
type Hours func(since time.Time) map[string]float64

// SetHours gives the tab each user's GPU-hours held in a window (the config's fair-share
// window).
func (t *Tab) SetHours(h Hours, window time.Duration) { t.hours, t.window = h, window }

// Presence is one user's open sessions now; TA when one of them is a TA's.
type Presence struct {
	Sessions int
	TA       bool
}

// Sessions lists who is connected, and says when that changes; the SSH server provides it.
type Sessions interface {
	Sessions() map[string]Presence
	SubscribeSessions() (<-chan struct{}, func())
}

// ContainersTab is the title of the tab enter opens; PodsTab is filtered to the same user.
const (
	ContainersTab = "Containers"
	PodsTab       = "Pods"
)

type changedMsg struct {
	tab *Tab
	gen int
}

type keyMap struct {
	Sort, Filter, Open, Join, Clear, Submit, Cancel key.Binding
	nav                                             dashboard.NavKeys
}

func defaultKeyMap() keyMap {
	return keyMap{
		Sort:   key.NewBinding(key.WithKeys("o"), key.WithHelp("o", "sort")),
		Filter: key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Open:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "containers")),
		Join:   key.NewBinding(key.WithKeys("w"), key.WithHelp("w", "join shell")),
		Clear:  key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
		Submit: key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "keep filter")),
		Cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear")),
		nav:    dashboard.DefaultNavKeys(),
	}
}

// Tab is the Class tab. Build it with New only for a TA; Close releases the subscription.
type Tab struct {
	svc   Service
	who   Sessions // nil: no session counts
	id    backend.Identity
	st    dashboard.Styles
	keys  keyMap
	quota func(ta bool) int

	shell   dashboard.ShellFunc // asks the session for a terminal; nil: w does nothing
	joiner  Joiner              // nil: no shell sharing on this server
	sharers Sharers             // nil: nobody is marked as sharing

	shown  bool
	gen    int // the subscription that counts; a change of an older one is dropped
	sub    <-chan struct{}
	unsub  func()
	psub   <-chan struct{} // sessions opening and closing
	punsub func()
	ksub   <-chan struct{} // pods changing
	kunsub func()
	ssub   <-chan struct{} // shells shared and no longer
	sunsub func()
	closed bool

	conts  []docker.Container
	health docker.Health
	pods   PodSource // nil: no pods on this server
	podsOf []kube.Pod
	pres   map[string]Presence
	shares map[string]bool // who shares a shell now
	rows   []Row           // filtered and sorted
	sortBy Column
	sel    int
	selUsr string

	filter    textinput.Model
	filtering bool

	pageRows int // table rows on screen, for page up and down

	shared string // the line about datasets and group workspaces, once read

	hours   Hours
	window  time.Duration
	held    map[string]float64
	waiting int
	culls   []docker.Cull
}

// sharedLister is what a service offers when it mounts shared data (docker.Service): the tab
// then says what there is and how much of it is used.
type sharedLister interface {
	Datasets(ctx context.Context, id backend.Identity) ([]docker.DatasetInfo, error)
	Groups(ctx context.Context, id backend.Identity) ([]docker.GroupInfo, error)
}

// sharedMsg is the shared-data line for tab.
type sharedMsg struct {
	tab  *Tab
	line string
}

// readShared reads the datasets and workspaces (GitLab and the volumes' sizes: off the
// event loop).
func (t *Tab) readShared() tea.Cmd {
	sh, ok := t.svc.(sharedLister)
	if !ok || len(t.svc.Config().Datasets)+len(t.svc.Config().Groups) == 0 {
		return nil
	}
	id := t.id
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		ds, err := sh.Datasets(ctx, id)
		if err != nil {
			return sharedMsg{tab: t, line: "shared data: " + err.Error()}
		}
		gs, err := sh.Groups(ctx, id)
		if err != nil {
			return sharedMsg{tab: t, line: "group workspaces: " + err.Error()}
		}
		return sharedMsg{tab: t, line: SharedSummary(ds, gs)}
	}
}

var (
	_ dashboard.Tab        = (*Tab)(nil)
	_ dashboard.Shower     = (*Tab)(nil)
	_ dashboard.FullHelper = (*Tab)(nil)
)

// Joiner opens a TA's view of the shell a user shares (share.Hub), in the shape of a
// process the session's terminal runs.
type Joiner interface {
	JoinView(id backend.Identity, target string, width, height int) (backend.Execution, error)
}

// Sharers says who shares a shell with TAs now, and when that changes (share.Hub).
type Sharers interface {
	Sharing(id backend.Identity) map[string]bool
	SubscribeShares() (<-chan struct{}, func())
}

// SetSharers marks the users who share a shell now, live.
func (t *Tab) SetSharers(s Sharers) { t.sharers = s }

// SetShell installs how the tab asks the session for a terminal (the view of a shared shell).
func (t *Tab) SetShell(fn dashboard.ShellFunc) { t.shell = fn }

// PodSource is the pods' live snapshot (kube.Service), read like the containers' one.
type PodSource interface {
	Snapshot(id backend.Identity, opts kube.ListOptions) ([]kube.Pod, kube.Health)
	SubscribeFor(id backend.Identity, opts kube.ListOptions) (<-chan struct{}, func())
}

// SetPods adds everyone's pods to the rows (a PODS column) and follows their changes.
func (t *Tab) SetPods(p PodSource) { t.pods = p }

// SetJoiner turns on w: join the shell the selected user shares.
func (t *Tab) SetJoiner(j Joiner) { t.joiner = j }

// Select puts the selection on user's row again, after a view of their shell.
func (t *Tab) Select(user string) { t.selUsr = user }

// New builds the tab for a TA's session; who may be nil.
func New(svc Service, who Sessions, id backend.Identity, st dashboard.Styles) *Tab {
	f := textinput.New()
	f.Prompt = "/"
	f.Placeholder = "user or preset"
	f.CharLimit = 64
	s := f.Styles()
	s.Cursor.Blink = false
	f.SetStyles(s)
	cfg := svc.Config()
	return &Tab{svc: svc, who: who, id: id, st: st, keys: defaultKeyMap(), filter: f,
		quota: func(ta bool) int {
			if ta {
				return cfg.TA.MaxContainers
			}
			return cfg.Student.MaxContainers
		}}
}

// Title is the tab's name.
func (t *Tab) Title() string { return "Class" }

// Init does nothing: the tab reads and subscribes only while on screen.
func (t *Tab) Init() tea.Cmd { return nil }

// Close lets go of the subscription; safe to call more than once.
func (t *Tab) Close() {
	t.closed = true
	t.stop()
}

func (t *Tab) stop() {
	t.gen++
	if t.unsub != nil {
		t.unsub()
	}
	t.sub, t.unsub = nil, nil
	if t.punsub != nil {
		t.punsub()
	}
	t.psub, t.punsub = nil, nil
	if t.kunsub != nil {
		t.kunsub()
	}
	t.ksub, t.kunsub = nil, nil
	if t.sunsub != nil {
		t.sunsub()
	}
	t.ssub, t.sunsub = nil, nil
}

// Show subscribes to the snapshot and reads it while the tab is on screen.
func (t *Tab) Show(on bool) tea.Cmd {
	t.shown = on
	if !on || t.closed {
		t.stop()
		return nil
	}
	if t.sub == nil {
		t.gen++
		t.sub, t.unsub = t.svc.SubscribeFor(t.id, t.opts())
		if t.who != nil {
			t.psub, t.punsub = t.who.SubscribeSessions()
		}
		if t.pods != nil {
			t.ksub, t.kunsub = t.pods.SubscribeFor(t.id, kube.ListOptions{AllUsers: true})
		}
		if t.sharers != nil {
			t.ssub, t.sunsub = t.sharers.SubscribeShares()
		}
	}
	t.reload()
	return tea.Batch(t.wait(), t.readShared())
}

func (t *Tab) opts() docker.ListOptions { return docker.ListOptions{All: true, AllUsers: true} }

// wait is one wake-up: a snapshot changed, a session opened or closed, a shell was shared or
// no longer.
func (t *Tab) wait() tea.Cmd {
	ch, pch, kch, sch, gen := t.sub, t.psub, t.ksub, t.ssub, t.gen
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		select {
		case _, ok := <-ch:
			if !ok {
				return nil
			}
		case _, ok := <-pch: // nil without session counts: never ready
			if !ok {
				return nil
			}
		case _, ok := <-kch: // nil without pods: never ready
			if !ok {
				return nil
			}
		case _, ok := <-sch: // nil without sharing: never ready
			if !ok {
				return nil
			}
		}
		return changedMsg{tab: t, gen: gen}
	}
}

// reload re-reads the snapshot and the session counts (no API call).
func (t *Tab) reload() {
	t.conts, t.health = t.svc.Snapshot(t.id, t.opts())
	t.podsOf = nil
	if t.pods != nil {
		t.podsOf, _ = t.pods.Snapshot(t.id, kube.ListOptions{AllUsers: true})
	}
	t.pres = nil
	if t.who != nil {
		t.pres = t.who.Sessions()
	}
	t.shares = nil
	if t.sharers != nil {
		t.shares = t.sharers.Sharing(t.id)
	}
	t.held, t.waiting, t.culls = nil, 0, nil
	if t.hours != nil {
		t.held = t.hours(time.Now().Add(-t.window))
	}
	if f, ok := t.svc.(Fair); ok {
		t.waiting = len(f.WaitingList(t.id))
		t.culls = f.Culls(t.id)
	}
	t.refresh()
}

// refresh rebuilds the rows and keeps the selection on the same user.
func (t *Tab) refresh() {
	t.rows = Rows(t.conts, t.podsOf, t.pres, t.held, t.quota, t.filter.Value(), t.sortBy)
	for i := range t.rows {
		t.rows[i].Sharing = t.shares[t.rows[i].User]
	}
	t.sel = 0
	for i, r := range t.rows {
		if r.User == t.selUsr {
			t.sel = i
			break
		}
	}
	t.selUsr = ""
	if len(t.rows) > 0 {
		t.selUsr = t.rows[t.sel].User
	}
}

// Capturing is true while typing the filter.
func (t *Tab) Capturing() bool { return t.filtering }

// Keys are the footer's bindings.
func (t *Tab) Keys() []key.Binding {
	if t.filtering {
		return []key.Binding{t.keys.Submit, t.keys.Cancel}
	}
	if t.joiner != nil {
		return []key.Binding{t.keys.Open, t.keys.Join, t.keys.Sort, t.keys.Filter}
	}
	return []key.Binding{t.keys.Open, t.keys.Sort, t.keys.Filter}
}

// FullKeys are every key, for the help overlay.
func (t *Tab) FullKeys() []key.Binding {
	if t.filtering {
		return t.Keys()
	}
	n := t.keys.nav
	return append([]key.Binding{n.Up, n.Down, n.Top, n.Bottom, n.PageUp, n.PageDown, t.keys.Clear}, t.Keys()...)
}

// Update handles the tab's messages and, when it is active, key presses.
func (t *Tab) Update(msg tea.Msg) (dashboard.Tab, tea.Cmd) {
	switch msg := msg.(type) {
	case changedMsg:
		if msg.tab != t || msg.gen != t.gen || !t.shown {
			return t, nil
		}
		t.reload()
		return t, t.wait()
	case sharedMsg:
		if msg.tab == t {
			t.shared = msg.line
		}
		return t, nil
	case tea.KeyPressMsg:
		return t, t.key(msg)
	}
	return t, nil
}

func (t *Tab) key(msg tea.KeyPressMsg) tea.Cmd {
	k := t.keys
	if t.filtering {
		switch {
		case key.Matches(msg, k.Submit):
			t.filtering = false
			t.filter.Blur()
			return nil
		case key.Matches(msg, k.Cancel):
			t.filtering = false
			t.filter.Blur()
			t.filter.SetValue("")
			t.refresh()
			return nil
		}
		var cmd tea.Cmd
		t.filter, cmd = t.filter.Update(msg)
		t.refresh()
		return cmd
	}
	page := max(1, t.pageRows)
	move := func(to int) {
		if len(t.rows) == 0 {
			return
		}
		t.sel = min(max(to, 0), len(t.rows)-1)
		t.selUsr = t.rows[t.sel].User
	}
	switch {
	case key.Matches(msg, k.Sort):
		t.sortBy = (t.sortBy + 1) % numColumns
		t.refresh()
	case key.Matches(msg, k.Filter):
		t.filtering = true
		t.filter.CursorEnd()
		return t.filter.Focus()
	case key.Matches(msg, k.Clear):
		if t.filter.Value() != "" {
			t.filter.SetValue("")
			t.refresh()
		}
	case key.Matches(msg, k.Open):
		if t.selUsr != "" {
			return dashboard.Open(ContainersTab, "owner:"+t.selUsr, PodsTab)
		}
	case key.Matches(msg, k.Join):
		if user, j := t.selUsr, t.joiner; user != "" && j != nil && t.shell != nil {
			return t.shell(dashboard.Shell{Name: user + "'s shared shell", Back: user,
				Open: func(_ context.Context, spec backend.ExecSpec) (backend.Execution, error) {
					return j.JoinView(t.id, user, spec.Width, spec.Height)
				}})
		}
	case key.Matches(msg, k.nav.Up):
		move(t.sel - 1)
	case key.Matches(msg, k.nav.Down):
		move(t.sel + 1)
	case key.Matches(msg, k.nav.Top):
		move(0)
	case key.Matches(msg, k.nav.Bottom):
		move(len(t.rows) - 1)
	case key.Matches(msg, k.nav.PageUp):
		move(t.sel - page)
	case key.Matches(msg, k.nav.PageDown):
		move(t.sel + page)
	}
	return nil
}

// View renders the body.
func (t *Tab) View(width, height int) string {
	filter := ""
	if t.filtering {
		t.filter.SetWidth(max(1, width-4))
		filter = t.filter.View()
	} else if v := t.filter.Value(); v != "" {
		filter = "filter: " + termsafe.Line(v) + " · esc clears"
	}
	t.pageRows = max(1, height-3)
	return Render(t.st, View{
		Rows: t.rows, Sel: t.sel, SortBy: t.sortBy, Filter: filter, Filtering: t.filtering,
		Empty: strings.TrimSpace(t.filter.Value()) != "", Health: t.health, Shared: t.shared,
		Waiting: t.waiting, Culls: t.culls, Now: time.Now(),
	}, width, height)
}
