// Package containers is the dashboard's Containers tab: the user's containers (every user's,
// for TAs) as a live table read from the backend's in-memory snapshot, with details, a
// new-container form, start/stop/restart/remove, a filter and a log viewer.
//
// The table costs no Docker API call: it is re-read from Snapshot when SubscribeFor says one
// of the containers it shows changed. While the tab is on screen it wakes when an uptime it
// shows would read differently (each second for a container started seconds ago, each minute
// or day after), never otherwise. CPU and memory of every running container come with the
// snapshot (one reader for the whole server). Every string from outside
// is neutralised before display.
package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/dashboard/logview"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Lister is what the tab needs from a backend: the live list of containers. Every other
// action is a capability of its own (Creator, Starter, Stopper, Restarter, Remover,
// LogReader, Inspector, Noticer, backend.Executor for shells): the tab offers an action
// only when its backend has it. *docker.Service has them all. The backend authorises
// every call against the Identity.
type Lister interface {
	Snapshot(id backend.Identity, opts docker.ListOptions) ([]docker.Container, docker.Health)
	SubscribeFor(id backend.Identity, opts docker.ListOptions) (<-chan struct{}, func())
}

// Creator makes new containers: the form (`n`), its limits, and the course presets id may
// use (RunPreset runs one, as `run --preset`).
type Creator interface {
	Config() docker.Config
	Run(ctx context.Context, id backend.Identity, spec docker.RunSpec) (docker.Container, error)
	Presets(ctx context.Context, id backend.Identity) []docker.Preset
	RunPreset(ctx context.Context, id backend.Identity, preset, name string) (docker.Container, error)
}

// Starter starts a stopped container (`S`, and a shell in a stopped one).
type Starter interface {
	Start(ctx context.Context, id backend.Identity, ref string) error
}

// Stopper stops a running container (`S`); reason is why, for someone else's.
type Stopper interface {
	Stop(ctx context.Context, id backend.Identity, ref, reason string) error
}

// Restarter restarts a container (`r`).
type Restarter interface {
	Restart(ctx context.Context, id backend.Identity, ref string) error
}

// Remover removes a container (`d`); reason is why, for someone else's.
type Remover interface {
	Remove(ctx context.Context, id backend.Identity, ref string, force bool, reason string) error
}

// LogReader streams a container's logs (`l`).
type LogReader interface {
	Logs(ctx context.Context, id backend.Identity, ref string, opts docker.LogOptions) (io.ReadCloser, error)
}

// Inspector reads a container's details (enter).
type Inspector interface {
	Inspect(ctx context.Context, id backend.Identity, ref string) (docker.Details, error)
}

// Noticer tells what others (TAs) did to the user's containers, and up to which one they
// have been shown; MarkNoticesSeen moves that mark.
type Noticer interface {
	Notices(id backend.Identity) ([]docker.Notice, int64)
	MarkNoticesSeen(id backend.Identity, seq int64)
}

var (
	_ Lister           = (*docker.Service)(nil)
	_ Creator          = (*docker.Service)(nil)
	_ Starter          = (*docker.Service)(nil)
	_ Stopper          = (*docker.Service)(nil)
	_ Restarter        = (*docker.Service)(nil)
	_ Remover          = (*docker.Service)(nil)
	_ LogReader        = (*docker.Service)(nil)
	_ Inspector        = (*docker.Service)(nil)
	_ Noticer          = (*docker.Service)(nil)
	_ backend.Executor = (*docker.Service)(nil)
)

// Timings.
const (
	actionTimeout  = 2 * time.Minute
	inspectTimeout = 15 * time.Second
)

// Messages, each carrying the tab it belongs to.
type (
	changedMsg struct{ tab *Tab }
	tickMsg    struct {
		tab *Tab
		seq int
	}
	actionMsg struct {
		tab        *Tab
		ref, shown string
		verb       string
		err        error
	}
	runMsg struct {
		tab *Tab
		c   docker.Container
		w   *docker.Waiting // the request waits for GPUs (the form's wait)
		err error
	}
	inspectMsg struct {
		tab *Tab
		ref string
		d   docker.Details
		err error
	}
)

// confirmation is a question waiting for y/N, or for the reason a TA gives for stopping or
// removing someone else's container (its owner is told).
type confirmation struct {
	c      docker.Container
	verb   string // "remove", "stop", or "shell": start it, then open a shell in it
	force  bool   // remove a running container
	reason *textinput.Model
	empty  bool // enter was pressed without a reason
}

// startedForShellMsg: a container started so that a shell can open in it.
type startedForShellMsg struct {
	tab *Tab
	c   docker.Container
	err error
}

// Tab is the Containers tab. Create it with New; call Close when the program has ended.
type Tab struct {
	svc    Lister
	id     backend.Identity
	st     dashboard.Styles
	now    func() time.Time
	keys   keyMap
	ctx    context.Context // ends with Close: cancels calls in flight and the log stream
	cancel context.CancelFunc
	shell  dashboard.ShellFunc

	started   bool
	unsub     func()
	sub       <-chan struct{}
	closeOnce sync.Once

	all    []docker.Container // the snapshot
	health docker.Health
	list   []docker.Container // what the table shows (filtered)
	sel    int
	selRef string
	goTo   string // select this container once it shows up (after creating it)

	presets []docker.Preset // what the user may use, as last asked

	filter    textinput.Model
	filtering bool

	detailsOpen    bool
	detailsRef     string
	details        *docker.Details
	detailsErr     string
	detailsLoading bool

	confirm *confirmation
	busy    map[string]string // ref -> "stopping…" while an action runs

	form *form
	logs *logview.Viewer

	noticeSeq   int64 // the last notice shown
	noticesRead bool  // noticeSeq has been read from the backend

	prefix string // how users reach the server ("ssh -p 2222 host"), for the ssh -L line

	hours GPUHours  // GPU-hours, for the usage line; nil: none kept
	fair  fairState // the waiting list, idle stops and GPU-hours at the last reload

	shown   bool // the tab is on screen (Show)
	tickSeq int  // the uptime tick that counts; older ones are dropped

	width, height int
}

var (
	_ dashboard.Tab      = (*Tab)(nil)
	_ dashboard.Shower   = (*Tab)(nil)
	_ dashboard.Filterer = (*Tab)(nil)
)

// New builds the tab for one session. now is the clock for uptimes (time.Now in production).
// It does not subscribe until Init; Close releases what Init and the tab took.
// Keys for actions svc does not have are neither shown nor taken.
func New(svc Lister, id backend.Identity, styles dashboard.Styles, now func() time.Time) *Tab {
	if now == nil {
		now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := textinput.New()
	f.Prompt = "/"
	f.Placeholder = "name, image or owner"
	f.CharLimit = 64
	s := f.Styles()
	s.Cursor.Blink = false
	f.SetStyles(s)
	return &Tab{
		svc: svc, id: id, st: styles, now: now, keys: keysFor(svc),
		ctx: ctx, cancel: cancel, filter: f, busy: map[string]string{},
		width: 80, height: 20,
	}
}

// SetShell installs what `s` does; without it `s` says the shell is not available.
func (t *Tab) SetShell(fn dashboard.ShellFunc) { t.shell = fn }

// SetPrefix is how users reach the server ("ssh -p 2222 host"): the details show the
// `ssh -L` line for a container's ports with it.
func (t *Tab) SetPrefix(prefix string) { t.prefix = prefix }

// Select moves the selection to the container ref ("owner/name") as soon as it is listed.
func (t *Tab) Select(ref string) {
	t.goTo = ref
	t.refilter()
}

// SetFilter replaces the filter ("owner:ann" keeps exactly ann's containers), as if typed and
// kept with enter; the Class tab opens a user's containers with it.
func (t *Tab) SetFilter(filter string) tea.Cmd {
	t.filtering = false
	t.filter.Blur()
	t.filter.SetValue(termsafe.Line(filter))
	t.refilter()
	return nil
}

// Selected is the ref ("owner/name") of the selected container, if any.
func (t *Tab) Selected() string { return t.selRef }

// Close releases the subscription and the log stream, and cancels calls
// in flight. Call it once the program has ended; it is safe to call more than once.
func (t *Tab) Close() {
	t.closeOnce.Do(func() {
		t.cancel()
		if t.unsub != nil {
			t.unsub()
		}
		if t.logs != nil {
			t.logs.Close()
		}
	})
}

// Title is the tab's name.
func (t *Tab) Title() string { return "Containers" }

// Init subscribes to the snapshot, reads it and starts the refresh tick.
func (t *Tab) Init() tea.Cmd {
	if t.started || t.ctx.Err() != nil {
		return nil
	}
	t.started = true
	t.sub, t.unsub = t.svc.SubscribeFor(t.id, t.listOptions())
	t.reload()
	return tea.Batch(t.waitChange(), t.notices(), t.loadPresets())
}

// loadPresets asks which presets the user may use (it can take asking the group
// directory); the new-container form offers what the last answer said, so it never waits.
func (t *Tab) loadPresets() tea.Cmd {
	svc, ok := t.svc.(Creator)
	if !ok {
		return nil
	}
	id, parent := t.id, t.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, inspectTimeout)
		defer cancel()
		return presetsMsg{tab: t, presets: svc.Presets(ctx, id)}
	}
}

// notices puts in the status line what others did to the user's containers since they
// last saw it: at once while a dashboard is open, at the next login otherwise.
func (t *Tab) notices() tea.Cmd {
	nt, ok := t.svc.(Noticer)
	if !ok {
		return nil
	}
	ns, seen := nt.Notices(t.id)
	if !t.noticesRead {
		t.noticeSeq, t.noticesRead = seen, true
	}
	var fresh []docker.Notice
	var cmds []tea.Cmd
	last := t.noticeSeq
	for _, n := range ns {
		if n.Seq <= t.noticeSeq {
			continue
		}
		last = n.Seq
		if n.Action == docker.NoticeWall {
			// A TA's message to everyone: a banner until dismissed.
			cmds = append(cmds, dashboard.Wall(dashboard.WallMsg{From: n.By, Role: n.ByRole, Text: n.Message, At: n.At}))
			continue
		}
		fresh = append(fresh, n)
	}
	if last == t.noticeSeq {
		return nil
	}
	t.noticeSeq = last
	nt.MarkNoticesSeen(t.id, t.noticeSeq)
	if len(fresh) > 0 {
		cmds = append(cmds, dashboard.Status(noticeLine(fresh, t.now()), false))
	}
	return tea.Sequence(cmds...)
}

// Show starts or stops what only matters on screen: the uptime tick.
func (t *Tab) Show(on bool) tea.Cmd {
	t.shown = on
	return t.tick()
}

// waitChange waits for the next change of the snapshot; nothing once unsubscribed.
func (t *Tab) waitChange() tea.Cmd {
	ch := t.sub
	return func() tea.Msg {
		if _, ok := <-ch; !ok {
			return nil
		}
		return changedMsg{tab: t}
	}
}

// tick schedules the next uptime refresh, replacing any pending one: when the first uptime
// on screen would read differently; none while hidden or when no uptime is shown.
func (t *Tab) tick() tea.Cmd {
	t.tickSeq++
	if !t.shown || t.ctx.Err() != nil {
		return nil
	}
	now := t.now()
	next := time.Duration(0)
	consider := func(since time.Time) {
		if since.IsZero() {
			return
		}
		if d := format.AgeChangesIn(now.Sub(since)); next == 0 || d < next {
			next = d
		}
	}
	for _, c := range t.list {
		if c.State == "running" {
			consider(c.StartedAt)
		}
	}
	if t.detailsOpen && t.details != nil {
		consider(t.details.Created)
		consider(t.details.StartedAt)
		consider(t.details.FinishedAt)
	}
	if next == 0 {
		return nil
	}
	seq := t.tickSeq
	// A little after the change, so the new text is there when it draws.
	return tea.Tick(next+20*time.Millisecond, func(time.Time) tea.Msg { return tickMsg{tab: t, seq: seq} })
}

// Capturing reports whether keys such as q, ? and digits belong to the tab: while typing,
// answering a question or reading logs.
func (t *Tab) Capturing() bool {
	return t.filtering || t.form != nil || t.logs != nil || t.confirm != nil
}

// Keys are the footer's bindings for what is on screen: the same at every width.
func (t *Tab) Keys() []key.Binding {
	k := t.keys
	switch {
	case t.confirm != nil && t.confirm.reason != nil:
		return []key.Binding{withHelp(k.Give, "enter", t.confirm.verb), k.Keep}
	case t.confirm != nil:
		return []key.Binding{k.Yes, k.No}
	case t.form != nil && t.form.picking:
		return []key.Binding{withHelp(k.Submit, "enter", "choose"), withHelp(k.NextField, "j/k", "move"), k.Cancel}
	case t.form != nil && t.form.preset != nil:
		return []key.Binding{k.Submit, k.Cancel}
	case t.form != nil:
		return []key.Binding{k.Submit, k.NextField, k.Cancel}
	case t.logs != nil:
		return t.logs.Keys()
	case t.filtering:
		return []key.Binding{withHelp(k.Submit, "enter", "keep filter"), withHelp(k.Cancel, "esc", "clear")}
	}
	ss := k.StartStop
	if c, ok := t.current(); ok {
		if c.State == "running" || c.State == "restarting" {
			ss = withHelp(ss, "S", "stop")
		} else {
			ss = withHelp(ss, "S", "start")
		}
	}
	return []key.Binding{k.New, k.Shell, k.Logs, ss, k.Restart, k.Delete, k.Filter}
}

// FullKeys are every key of what is on screen, for the help overlay.
func (t *Tab) FullKeys() []key.Binding {
	k := t.keys
	switch {
	case t.logs != nil:
		return t.logs.FullKeys()
	case t.confirm != nil, t.form != nil, t.filtering:
		return append(t.Keys(), key.NewBinding(key.WithHelp("ctrl+c", "quit")))
	}
	return append([]key.Binding{k.Up, k.Down, k.Top, k.Bottom, k.PageUp, k.PageDown, k.Details, k.Clear}, t.Keys()...)
}

func withHelp(b key.Binding, k, desc string) key.Binding {
	b.SetHelp(k, desc)
	return b
}

// Update handles the tab's messages and, when it is active, key presses.
func (t *Tab) Update(msg tea.Msg) (dashboard.Tab, tea.Cmd) {
	if t.logs != nil {
		if cmd := t.logs.Update(msg); cmd != nil {
			return t, cmd
		}
	}
	switch msg := msg.(type) {
	case changedMsg:
		if msg.tab != t || t.ctx.Err() != nil {
			return t, nil
		}
		t.reload()
		return t, tea.Batch(t.waitChange(), t.afterSelect(), t.tick(), t.notices())
	case tickMsg:
		if msg.tab != t || msg.seq != t.tickSeq || t.ctx.Err() != nil {
			return t, nil
		}
		return t, t.tick()
	case actionMsg:
		if msg.tab != t {
			return t, nil
		}
		return t, t.actionDone(msg)
	case startedForShellMsg:
		if msg.tab != t || t.ctx.Err() != nil {
			return t, nil
		}
		if msg.err != nil {
			return t, dashboard.ErrorStatus(msg.err)
		}
		return t, t.shell(t.shellIn(msg.c))
	case runMsg:
		if msg.tab != t {
			return t, nil
		}
		return t, t.runDone(msg)
	case sharedMsg:
		if t.form != nil {
			t.form.shared = string(msg)
		}
		return t, nil
	case presetsMsg:
		if msg.tab == t {
			t.presets = msg.presets
		}
		return t, nil
	case inspectMsg:
		if msg.tab != t || msg.ref != t.detailsRef {
			return t, nil
		}
		t.detailsLoading = false
		if msg.err != nil {
			t.details, t.detailsErr = nil, msg.err.Error()
		} else {
			d := msg.d
			t.details, t.detailsErr = &d, ""
		}
		return t, t.tick() // the details' times may want an earlier tick
	case tea.PasteMsg:
		return t, t.paste(msg)
	case tea.KeyPressMsg:
		return t, t.key(msg)
	}
	return t, nil
}

// paste gives pasted text, without control characters, to the input being typed in.
func (t *Tab) paste(msg tea.PasteMsg) tea.Cmd {
	msg.Content = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 {
			return -1
		}
		return r
	}, msg.Content)
	var cmd tea.Cmd
	switch {
	case t.confirm != nil && t.confirm.reason != nil:
		*t.confirm.reason, cmd = t.confirm.reason.Update(msg)
		t.confirm.empty = false
	case t.form != nil && !t.form.submitting && !t.form.picking:
		f := t.form
		f.inputs[f.focus], cmd = f.inputs[f.focus].Update(msg)
		f.touched[f.focus] = true
		f.validate()
	case t.logs != nil && t.logs.Searching():
		cmd = t.logs.TypeSearch(msg)
	case t.filtering:
		t.filter, cmd = t.filter.Update(msg)
		t.refilter()
		return tea.Batch(cmd, t.afterSelect())
	}
	return cmd
}

// reload re-reads the snapshot (no API call).
func (t *Tab) reload() {
	t.all, t.health = t.svc.Snapshot(t.id, t.listOptions())
	t.refilter()
	t.reloadFair()
}

// listOptions is what the table shows: every state; everyone's for a TA.
func (t *Tab) listOptions() docker.ListOptions {
	return docker.ListOptions{All: true, AllUsers: t.id.IsTA()}
}

// refilter applies the filter and keeps the selection on the same container.
func (t *Tab) refilter() {
	t.list = filterList(t.all, t.filter.Value())
	want := t.selRef
	if t.goTo != "" {
		for _, c := range t.list {
			if refOf(c) == t.goTo {
				want, t.goTo = t.goTo, ""
				break
			}
		}
	}
	found := false
	for i, c := range t.list {
		if refOf(c) == want {
			t.sel, found = i, true
			break
		}
	}
	if !found {
		t.sel = min(t.sel, len(t.list)-1)
	}
	t.sel = max(t.sel, 0)
	t.selRef = ""
	if c, ok := t.current(); ok {
		t.selRef = refOf(c)
	}
}

// current is the selected container.
func (t *Tab) current() (docker.Container, bool) {
	if t.sel < 0 || t.sel >= len(t.list) {
		return docker.Container{}, false
	}
	return t.list[t.sel], true
}

// afterSelect follows the selection with the details, when they are open: another
// container, or the same one since it started or ended (the inspect's times are stale).
func (t *Tab) afterSelect() tea.Cmd {
	if !t.detailsOpen {
		return nil
	}
	c, ok := t.current()
	if !ok {
		t.detailsRef, t.details, t.detailsErr, t.detailsLoading = "", nil, "", false
		return nil
	}
	if refOf(c) == t.detailsRef && (t.detailsLoading || t.details == nil ||
		t.details.State == c.State && t.details.StartedAt.Equal(c.StartedAt)) {
		return nil
	}
	return t.inspect(c)
}

// shownName is how the tab names a container to its viewer: "box" for one's own,
// "bob/box" for someone else's; neutralised.
func (t *Tab) shownName(c docker.Container) string {
	if c.Owner == t.id.User {
		return termsafe.Line(c.Name)
	}
	return termsafe.Line(c.Owner) + "/" + termsafe.Line(c.Name)
}

// key handles a key press for whatever is on screen.
func (t *Tab) key(msg tea.KeyPressMsg) tea.Cmd {
	switch {
	case t.confirm != nil:
		return t.confirmKey(msg)
	case t.form != nil:
		return t.formKey(msg)
	case t.logs != nil:
		return t.logsKey(msg)
	case t.filtering:
		return t.filterKey(msg)
	}
	return t.tableKey(msg)
}

func (t *Tab) tableKey(msg tea.KeyPressMsg) tea.Cmd {
	k := t.keys
	move := func(to int) tea.Cmd {
		t.goTo = ""
		t.sel = max(0, min(to, len(t.list)-1))
		t.selRef = ""
		if c, ok := t.current(); ok {
			t.selRef = refOf(c)
		}
		return t.afterSelect()
	}
	page := max(1, t.height-4)
	switch {
	case key.Matches(msg, k.Up):
		return move(t.sel - 1)
	case key.Matches(msg, k.Down):
		return move(t.sel + 1)
	case key.Matches(msg, k.Top):
		return move(0)
	case key.Matches(msg, k.Bottom):
		return move(len(t.list) - 1)
	case key.Matches(msg, k.PageUp):
		return move(t.sel - page)
	case key.Matches(msg, k.PageDown):
		return move(t.sel + page)
	case key.Matches(msg, k.Filter):
		t.filtering = true
		t.filter.CursorEnd()
		return t.filter.Focus()
	case key.Matches(msg, k.Clear):
		if t.filter.Value() != "" {
			t.filter.SetValue("")
			t.refilter()
			return t.afterSelect()
		}
		t.detailsOpen = false
		return nil
	case key.Matches(msg, k.New):
		return t.openForm()
	}
	c, ok := t.current()
	if !ok {
		return nil
	}
	switch {
	case key.Matches(msg, k.Details):
		if t.detailsOpen {
			t.detailsOpen = false
			return nil
		}
		t.detailsOpen = true
		return t.inspect(c)
	case key.Matches(msg, k.Shell):
		if t.shell == nil {
			return dashboard.Status("shell: not available on this server", false)
		}
		if c.State != "running" {
			if _, ok := t.svc.(Starter); !ok {
				return dashboard.Status(t.shownName(c)+" is "+stateWord(stateText(c))+": no shell", false)
			}
			t.confirm = &confirmation{c: c, verb: "shell"}
			return nil
		}
		return t.shell(t.shellIn(c))
	case key.Matches(msg, k.Logs):
		return t.openLogs(c)
	case key.Matches(msg, k.StartStop):
		if c.State == "running" || c.State == "restarting" {
			if _, ok := t.svc.(Stopper); !ok {
				return dashboard.Status("stop: not available on this server", false)
			}
			if c.Owner != t.id.User {
				return t.askWhy(&confirmation{c: c, verb: "stop"})
			}
			return t.stop(c, "")
		}
		st, ok := t.svc.(Starter)
		if !ok {
			return dashboard.Status("start: not available on this server", false)
		}
		return t.action(c, "start", "starting…", func(ctx context.Context, ref string) error {
			return st.Start(ctx, t.id, ref)
		})
	case key.Matches(msg, k.Restart):
		rs := t.svc.(Restarter) // the key is enabled only when it is one
		return t.action(c, "restart", "restarting…", func(ctx context.Context, ref string) error {
			return rs.Restart(ctx, t.id, ref)
		})
	case key.Matches(msg, k.Delete):
		q := &confirmation{c: c, verb: "remove", force: c.State == "running" || c.State == "restarting" || c.State == "paused"}
		if c.Owner != t.id.User {
			return t.askWhy(q)
		}
		t.confirm = q
		return nil
	}
	return nil
}

func (t *Tab) filterKey(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "enter":
		t.filtering = false
		t.filter.Blur()
		return nil
	case "esc":
		t.filtering = false
		t.filter.Blur()
		t.filter.SetValue("")
		t.refilter()
		return t.afterSelect()
	}
	var cmd tea.Cmd
	t.filter, cmd = t.filter.Update(msg)
	t.refilter()
	return tea.Batch(cmd, t.afterSelect())
}

// askWhy opens q with a line for the reason: a TA stopping or removing someone else's
// container says why, and the owner is told.
func (t *Tab) askWhy(q *confirmation) tea.Cmd {
	in := textinput.New()
	in.Prompt = ""
	in.Placeholder = "why? " + termsafe.Line(q.c.Owner) + " is told"
	in.CharLimit = 200
	st := in.Styles()
	st.Cursor.Blink = false
	in.SetStyles(st)
	q.reason = &in
	t.confirm = q
	return in.Focus()
}

func (t *Tab) confirmKey(msg tea.KeyPressMsg) tea.Cmd {
	q := t.confirm
	if q.reason != nil {
		switch {
		case key.Matches(msg, t.keys.Keep):
			t.confirm = nil
			return dashboard.Status("kept "+t.shownName(q.c), false)
		case key.Matches(msg, t.keys.Give):
			why := strings.TrimSpace(q.reason.Value())
			if why == "" {
				q.empty = true
				return nil
			}
			t.confirm = nil
			if q.verb == "stop" {
				return t.stop(q.c, why)
			}
			return t.remove(q.c, q.force, why)
		}
		var cmd tea.Cmd
		*q.reason, cmd = q.reason.Update(msg)
		q.empty = false
		return cmd
	}
	t.confirm = nil
	if q.verb == "shell" {
		if !key.Matches(msg, t.keys.Yes) {
			return dashboard.Status(t.shownName(q.c)+" left "+stateWord(stateText(q.c)), false)
		}
		ref, parent := refOf(q.c), t.ctx
		return func() tea.Msg {
			ctx, cancel := context.WithTimeout(parent, actionTimeout)
			defer cancel()
			return startedForShellMsg{tab: t, c: q.c, err: t.svc.(Starter).Start(ctx, t.id, ref)}
		}
	}
	if !key.Matches(msg, t.keys.Yes) {
		return dashboard.Status("kept "+t.shownName(q.c), false)
	}
	return t.remove(q.c, q.force, "")
}

// stop stops c; reason is why, for someone else's container.
func (t *Tab) stop(c docker.Container, reason string) tea.Cmd {
	return t.action(c, "stop", "stopping…", func(ctx context.Context, ref string) error {
		return t.svc.(Stopper).Stop(ctx, t.id, ref, reason)
	})
}

// remove removes c; reason is why, for someone else's container.
func (t *Tab) remove(c docker.Container, force bool, reason string) tea.Cmd {
	return t.action(c, "remove", "removing…", func(ctx context.Context, ref string) error {
		return t.svc.(Remover).Remove(ctx, t.id, ref, force, reason)
	})
}

// question is the line the open question shows: y/N, or the reason being typed.
func (t *Tab) question(width int) []string {
	q := t.confirm
	name := t.shownName(q.c)
	if q.reason == nil {
		text := "remove " + name + "?"
		switch {
		case q.verb == "shell":
			text = name + " is " + stateWord(stateText(q.c)) + ": start it and open a shell?"
		case q.force:
			text = name + " is " + stateWord(stateText(q.c)) + ": stop and remove it?"
		}
		return []string{t.st.Question(text, width)}
	}
	what := q.verb + " " + name
	if q.force {
		what = "stop and remove " + name
	}
	head := " " + what + ": why? " + termsafe.Line(q.c.Owner) + " reads this"
	lines := []string{t.st.Failed.Bold(true).Render(ansi.Truncate(head, width, "…"))}
	q.reason.SetWidth(max(1, width-4))
	lines = append(lines, ansi.Truncate(" > "+q.reason.View(), width, "…"))
	if q.empty {
		lines = append(lines, t.st.Dim.Render(ansi.Truncate("   say why in a few words; esc keeps "+name, width, "…")))
	}
	return lines
}

// action runs one lifecycle call in a command; the row shows busy until it returns.
func (t *Tab) action(c docker.Container, verb, busy string, do func(ctx context.Context, ref string) error) tea.Cmd {
	ref := refOf(c)
	if t.busy[ref] != "" {
		return dashboard.Status(t.shownName(c)+" is busy: "+t.busy[ref], false)
	}
	t.busy[ref] = busy
	shown, parent := t.shownName(c), t.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, actionTimeout)
		defer cancel()
		err := do(ctx, ref)
		return actionMsg{tab: t, ref: ref, shown: shown, verb: verb, err: err}
	}
}

var pastTense = map[string]string{"start": "started", "stop": "stopped", "restart": "restarted", "remove": "removed (your home is kept)"}

func (t *Tab) actionDone(msg actionMsg) tea.Cmd {
	delete(t.busy, msg.ref)
	if t.ctx.Err() != nil {
		return nil
	}
	if msg.err != nil {
		return dashboard.ErrorStatus(msg.err)
	}
	return dashboard.Status(msg.shown+": "+pastTense[msg.verb], false)
}

// inspect opens the details of c: one Inspect call, in a command.
func (t *Tab) inspect(c docker.Container) tea.Cmd {
	ref := refOf(c)
	if ref != t.detailsRef {
		t.details = nil // the same container's stay until the new ones come
	}
	t.detailsRef, t.detailsErr, t.detailsLoading = ref, "", true
	svc, ok := t.svc.(Inspector)
	if !ok {
		t.detailsLoading = false
		return nil
	}
	id, parent := t.id, t.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, inspectTimeout)
		defer cancel()
		d, err := svc.Inspect(ctx, id, ref)
		return inspectMsg{tab: t, ref: ref, d: d, err: err}
	}
}

// quota is the per-role quota from the service's policy.
func (t *Tab) quota() docker.Quota {
	cr, ok := t.svc.(Creator)
	if !ok {
		return docker.Quota{}
	}
	cfg := cr.Config()
	if t.id.IsTA() {
		return cfg.TA
	}
	return cfg.Student
}

// own counts the viewer's own containers, and the running ones.
func (t *Tab) own() (have, running int) {
	for _, c := range t.all {
		if c.Owner != t.id.User {
			continue
		}
		have++
		if c.State == "running" || c.State == "restarting" {
			running++
		}
	}
	return have, running
}

func (t *Tab) openForm() tea.Cmd {
	cfg := t.svc.(Creator).Config() // the key is enabled only when it is one
	q := t.quota()
	t.form = newForm(formLimits{defaultCPUs: cfg.DefaultCPUs, defaultMem: cfg.DefaultMemory, maxCPUs: q.MaxCPUs, maxMem: q.MaxMemory})
	t.form.resize(t.width)
	t.confirm = nil
	t.form.setPresets(t.presets)
	refresh := t.loadPresets() // for the next form
	sh, ok := t.svc.(sharedLister)
	if !ok {
		return refresh
	}
	id, parent := t.id, t.ctx
	return tea.Batch(refresh, func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, actionTimeout)
		defer cancel()
		ds, err := sh.Datasets(ctx, id)
		if err != nil {
			return sharedMsg("datasets and group workspaces: " + err.Error())
		}
		gs, err := sh.Groups(ctx, id)
		if err != nil {
			return sharedMsg("group workspaces: " + err.Error())
		}
		return sharedMsg(sharedText(ds, gs))
	})
}

func (t *Tab) formKey(msg tea.KeyPressMsg) tea.Cmd {
	t.form.resize(t.width)
	res, cmd := t.form.key(msg)
	switch res {
	case formCancel:
		t.form = nil
		return nil
	case formSubmit:
		svc := t.svc.(Creator) // the form opens only when it is one
		if preset, name, ok := t.form.presetRun(); ok {
			id, parent := t.id, t.ctx
			return func() tea.Msg {
				ctx, cancel := context.WithTimeout(parent, actionTimeout)
				defer cancel()
				c, err := svc.RunPreset(ctx, id, preset, name)
				return runMsg{tab: t, c: c, err: err}
			}
		}
		spec, ok := t.form.spec()
		if !ok {
			t.form.submitting = false
			return nil
		}
		id, parent := t.id, t.ctx
		wait, _ := t.form.wait()
		return func() tea.Msg {
			ctx, cancel := context.WithTimeout(parent, actionTimeout)
			defer cancel()
			if f, ok := svc.(fairService); ok && wait {
				c, w, err := f.RunOrWait(ctx, id, spec, "")
				return runMsg{tab: t, c: c, w: w, err: err}
			}
			c, err := svc.Run(ctx, id, spec)
			return runMsg{tab: t, c: c, err: err}
		}
	}
	return cmd
}

func (t *Tab) runDone(msg runMsg) tea.Cmd {
	if t.ctx.Err() != nil {
		return nil
	}
	if msg.err != nil {
		if t.form != nil {
			t.form.submitting = false
		}
		return dashboard.ErrorStatus(msg.err)
	}
	t.form = nil
	if w := msg.w; w != nil {
		t.reload()
		return dashboard.Status(fmt.Sprintf("%s: waiting for GPUs, %s of %d in line; it starts when they free", termsafe.Line(w.Name), ordinal(w.Position), w.Of), false)
	}
	t.goTo = refOf(msg.c)
	t.reload()
	return tea.Batch(dashboard.Status(t.shownName(msg.c)+": created and started", false), t.afterSelect())
}

// shellIn is a shell in c, for the session: through the service's Exec, coming back to c.
func (t *Tab) shellIn(c docker.Container) dashboard.Shell {
	ref := c.Name
	if c.Owner != t.id.User {
		ref = c.Ref()
	}
	svc, id := t.svc, t.id
	return dashboard.Shell{Name: ref, Back: refOf(c), Open: func(ctx context.Context, spec backend.ExecSpec) (backend.Execution, error) {
		ex, ok := svc.(backend.Executor)
		if !ok {
			return nil, errors.New("shells are not available on this server")
		}
		return ex.Exec(ctx, id, ref, spec)
	}}
}

// openLogs starts the log viewer on c, ending any stream that was open.
func (t *Tab) openLogs(c docker.Container) tea.Cmd {
	ref, svc, id := refOf(c), t.svc.(LogReader), t.id // the key is enabled only when it is one
	open := func(ctx context.Context, timestamps bool) (io.ReadCloser, error) {
		return svc.Logs(ctx, id, ref, docker.LogOptions{Follow: true, Tail: logview.Tail, Timestamps: timestamps})
	}
	var cmd tea.Cmd
	t.logs, cmd = logview.Open(t.ctx, t.logs, ref, t.shownName(c), open, false, t.st, t.width, t.height)
	return cmd
}

func (t *Tab) logsKey(msg tea.KeyPressMsg) tea.Cmd {
	next, _, cmd := t.logs.HandleKey(t.ctx, msg)
	t.logs = next
	return cmd
}

// View draws the tab's body in width x height cells.
func (t *Tab) View(width, height int) string {
	t.width, t.height = width, height
	if t.logs != nil {
		return t.logs.View(width, height)
	}
	if t.form != nil {
		have, running := t.own()
		t.form.resize(width)
		return strings.Join(renderForm(t.st, t.form, quotaText(t.quota(), have, running), width), "\n")
	}
	return strings.Join(t.tableLines(width, height), "\n")
}

// tableLines is the table page: the Docker line and the filter on top, the table, then
// the details and the question below.
func (t *Tab) tableLines(width, height int) []string {
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	var top, bottom []string
	if !t.health.OK {
		top = append(top, unreachableLine(t.st, t.health.Err, width))
	}
	if _, ok := t.svc.(fairService); ok {
		have, running := t.own()
		for _, l := range fairLines(t.fair, !t.id.IsTA() && t.hours != nil, t.quota(), have, running, t.id.IsTA(), t.now()) {
			top = append(top, t.st.Dim.Render(cut(" "+l)))
		}
	}
	switch {
	case t.filtering:
		t.filter.SetWidth(max(1, width-4))
		top = append(top, cut(" "+t.filter.View()))
	case t.filter.Value() != "":
		top = append(top, t.st.Dim.Render(cut(" filter: "+termsafe.Line(t.filter.Value())+" · esc clears")))
	}
	if t.detailsOpen {
		if c, ok := t.current(); ok {
			dv := detailsView{title: t.shownName(c), live: c, loading: t.detailsLoading, err: t.detailsErr, now: t.now()}
			if c.Owner == t.id.User {
				dv.forward = func(port int) string { return format.ForwardLine(t.prefix, t.id.User, c.Name, port) }
			}
			if t.detailsRef == refOf(c) {
				dv.details = t.details
			}
			bottom = append(bottom, "")
			bottom = append(bottom, renderDetails(t.st, dv, width)...)
		}
	}
	if t.confirm != nil {
		bottom = append(bottom, t.question(width)...)
	}
	// The table keeps at least its header and two rows; the details give way.
	room := height - len(top) - len(bottom)
	if room < 3 && len(bottom) > 0 {
		keep := max(0, min(len(bottom), height-len(top)-3))
		bottom = bottom[len(bottom)-keep:]
		room = height - len(top) - len(bottom)
	}

	var middle []string
	switch {
	case len(t.all) == 0:
		msg := "  No containers yet. Press n to create one."
		if t.id.IsTA() {
			msg = "  No containers on this server yet. Press n to create one."
		}
		middle = []string{t.st.Notice.Render(cut(msg))}
	case len(t.list) == 0:
		middle = []string{t.st.Notice.Render(cut("  No container matches \"" + termsafe.Line(t.filter.Value()) + "\". esc clears the filter."))}
	default:
		middle = renderTable(t.st, tableView{
			list: t.list, owners: t.id.IsTA(), me: t.id.User, selected: t.sel,
			dim: !t.health.OK, busy: t.busy, now: t.now(),
		}, width, room)
	}
	out := append(top, middle...)
	return append(out, bottom...)
}
