// Package runners is the dashboard's Runner tab: the user's personal GitLab runners (every
// user's, for TAs) with their project and state, the runner's own log, a hidden token input
// that sets or replaces a runner's token, restart, and remove after a y/N question. The list
// is read from the backend while the tab is on screen (on show, after every action and every
// few seconds), never while it is not.
package runners

import (
	"context"
	"io"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/runner"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/dashboard/logview"
	"whalemountain/tui/termsafe"
)

// Service is what the tab needs of backend/runner; *runner.Service satisfies it.
type Service interface {
	List(ctx context.Context, id backend.Identity, all bool) ([]runner.Runner, error)
	SetToken(ctx context.Context, id backend.Identity, project, token string) (runner.Runner, error)
	Restart(ctx context.Context, id backend.Identity, owner, ref, reason string) error
	Remove(ctx context.Context, id backend.Identity, owner, ref, reason string) error
	Logs(ctx context.Context, id backend.Identity, owner, ref string, follow bool, tail int) (io.ReadCloser, error)
}

var _ Service = (*runner.Service)(nil)

// Jobs is the live list of containers (backend/docker's Service), for the jobs each runner
// runs now: no engine call.
type Jobs interface {
	Snapshot(id backend.Identity, opts docker.ListOptions) ([]docker.Container, docker.Health)
}

// SetJobs lets the tab count each runner's running jobs.
func (t *Tab) SetJobs(j Jobs) { t.jobs = j }

// jobCounts are the running job containers per owner/runner.
func (t *Tab) jobCounts() map[string]int {
	if t.jobs == nil {
		return nil
	}
	cs, _ := t.jobs.Snapshot(t.id, docker.ListOptions{AllUsers: t.id.IsTA()})
	n := map[string]int{}
	for _, c := range cs {
		if c.Runner != "" && c.State == "running" {
			n[c.Owner+"/"+c.Runner]++
		}
	}
	return n
}

const (
	refreshEvery  = 5 * time.Second
	actionTimeout = 2 * time.Minute
)

type (
	loadedMsg struct {
		tab  *Tab
		list []runner.Runner
		err  error
	}
	doneMsg struct {
		tab  *Tab
		text string
		err  error
	}
	tickMsg struct {
		tab *Tab
		seq int
	}
)

// keys are the tab's own bindings.
type keys struct {
	Token, Logs, Restart, Remove key.Binding
}

func defaultKeys() keys {
	b := func(k, desc string) key.Binding { return key.NewBinding(key.WithKeys(k), key.WithHelp(k, desc)) }
	return keys{Token: b("t", "token"), Logs: b("l", "logs"), Restart: b("r", "restart"), Remove: b("d", "remove")}
}

// form is the token input: the project first (kept from the selected runner), then the
// token, never echoed.
type form struct {
	step    int // 0 project, 1 token
	project textinput.Model
	token   textinput.Model
}

// Tab is the Runner tab.
type Tab struct {
	svc  Service
	jobs Jobs
	id   backend.Identity
	st   dashboard.Styles
	keys keys
	nav  dashboard.NavKeys
	yes  dashboard.ConfirmKeys

	ctx    context.Context
	cancel context.CancelFunc

	list    []runner.Runner
	err     error
	loaded  bool
	sel     int
	shown   bool
	seq     int
	busy    string
	form    *form
	confirm *runner.Runner
	logs    *logview.Viewer
	width   int
	height  int
}

// New is the tab for id over svc.
func New(svc Service, id backend.Identity, st dashboard.Styles) *Tab {
	ctx, cancel := context.WithCancel(context.Background())
	return &Tab{svc: svc, id: id, st: st, keys: defaultKeys(), nav: dashboard.DefaultNavKeys(), yes: dashboard.DefaultConfirmKeys(),
		ctx: ctx, cancel: cancel}
}

func (t *Tab) Title() string { return "Runner" }
func (t *Tab) Init() tea.Cmd { return nil }

// Close ends what the tab holds (its log stream, calls in flight).
func (t *Tab) Close() {
	if t.logs != nil {
		t.logs.Close()
	}
	t.cancel()
}

// Show loads the list when the tab comes on screen and keeps it fresh while it stays.
func (t *Tab) Show(on bool) tea.Cmd {
	t.shown = on
	t.seq++
	if !on {
		return nil
	}
	return tea.Batch(t.load(), t.tick())
}

func (t *Tab) tick() tea.Cmd {
	seq := t.seq
	return tea.Tick(refreshEvery, func(time.Time) tea.Msg { return tickMsg{tab: t, seq: seq} })
}

func (t *Tab) load() tea.Cmd {
	svc, id, ctx := t.svc, t.id, t.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, actionTimeout)
		defer cancel()
		list, err := svc.List(ctx, id, id.IsTA())
		return loadedMsg{tab: t, list: list, err: err}
	}
}

// Capturing reports whether the token form, a question or the log viewer takes the keys.
func (t *Tab) Capturing() bool { return t.form != nil || t.confirm != nil || t.logs != nil }

// Keys are the footer's bindings for what is on screen.
func (t *Tab) Keys() []key.Binding {
	switch {
	case t.logs != nil:
		return t.logs.Keys()
	case t.confirm != nil:
		return t.yes.All()
	case t.form != nil:
		return []key.Binding{key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "next")),
			key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel"))}
	}
	return []key.Binding{t.keys.Token, t.keys.Logs, t.keys.Restart, t.keys.Remove}
}

// FullKeys are every binding, for the help overlay.
func (t *Tab) FullKeys() []key.Binding {
	if t.logs != nil {
		return t.logs.FullKeys()
	}
	return append(t.Keys(), t.nav.Up, t.nav.Down)
}

func (t *Tab) selected() (runner.Runner, bool) {
	if t.sel < 0 || t.sel >= len(t.list) {
		return runner.Runner{}, false
	}
	return t.list[t.sel], true
}

// Update handles the tab's messages and, when it is active, key presses.
func (t *Tab) Update(msg tea.Msg) (dashboard.Tab, tea.Cmd) {
	if t.logs != nil {
		if cmd := t.logs.Update(msg); cmd != nil {
			return t, cmd
		}
	}
	switch m := msg.(type) {
	case tea.WindowSizeMsg:
		t.width, t.height = m.Width, m.Height
	case loadedMsg:
		if m.tab != t {
			return t, nil
		}
		t.loaded, t.err = true, m.err
		if m.err == nil {
			t.list = m.list
		}
		t.sel = min(max(t.sel, 0), max(len(t.list)-1, 0))
	case doneMsg:
		if m.tab != t {
			return t, nil
		}
		t.busy = ""
		if m.err != nil {
			return t, tea.Batch(dashboard.ErrorStatus(m.err), t.load())
		}
		return t, tea.Batch(dashboard.Status(m.text, false), t.load())
	case tickMsg:
		if m.tab != t || m.seq != t.seq || !t.shown {
			return t, nil
		}
		return t, tea.Batch(t.load(), t.tick())
	case tea.KeyPressMsg:
		return t, t.key(m)
	case tea.PasteMsg:
		if t.form != nil {
			return t, t.typeInForm(m)
		}
	}
	return t, nil
}

func (t *Tab) key(msg tea.KeyPressMsg) tea.Cmd {
	switch {
	case t.logs != nil:
		next, _, cmd := t.logs.HandleKey(t.ctx, msg)
		t.logs = next
		return cmd
	case t.confirm != nil:
		r := *t.confirm
		t.confirm = nil
		if key.Matches(msg, t.yes.Yes) {
			return t.act("remove", r, func(ctx context.Context) (string, error) {
				return "runner " + r.Name + " removed", t.svc.Remove(ctx, t.id, r.Owner, r.Name, reasonFor(t.id, r))
			})
		}
		return nil
	case t.form != nil:
		return t.formKey(msg)
	}
	switch {
	case key.Matches(msg, t.nav.Up):
		t.sel = max(t.sel-1, 0)
	case key.Matches(msg, t.nav.Down):
		t.sel = min(t.sel+1, max(len(t.list)-1, 0))
	case key.Matches(msg, t.keys.Token):
		t.openForm()
		return nil
	case key.Matches(msg, t.keys.Logs):
		r, ok := t.selected()
		if !ok {
			return nil
		}
		svc, id := t.svc, t.id
		open := func(ctx context.Context, _ bool) (io.ReadCloser, error) {
			return svc.Logs(ctx, id, r.Owner, r.Name, true, logview.Tail)
		}
		var cmd tea.Cmd
		t.logs, cmd = logview.Open(t.ctx, t.logs, r.Owner+"/"+r.Name, "runner "+r.Name, open, false, t.st, t.width, t.height)
		return cmd
	case key.Matches(msg, t.keys.Restart):
		if r, ok := t.selected(); ok {
			return t.act("restart", r, func(ctx context.Context) (string, error) {
				return "runner " + r.Name + " restarted", t.svc.Restart(ctx, t.id, r.Owner, r.Name, reasonFor(t.id, r))
			})
		}
	case key.Matches(msg, t.keys.Remove):
		if r, ok := t.selected(); ok {
			t.confirm = &r
		}
	}
	return nil
}

// reasonFor is what a TA's action on a student's runner says in the audit log.
func reasonFor(id backend.Identity, r runner.Runner) string {
	if r.Owner != id.User {
		return "from the dashboard's Runner tab"
	}
	return ""
}

// act runs one action in the background and reports it on the status line.
func (t *Tab) act(what string, r runner.Runner, do func(ctx context.Context) (string, error)) tea.Cmd {
	if t.busy != "" {
		return dashboard.Status("wait: "+t.busy+" is still running", true)
	}
	t.busy = what + " " + r.Name
	ctx := t.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, actionTimeout)
		defer cancel()
		text, err := do(ctx)
		return doneMsg{tab: t, text: text, err: err}
	}
}

func (t *Tab) openForm() {
	f := &form{project: textinput.New(), token: textinput.New()}
	f.project.Placeholder = "alice/demo (empty: none)"
	f.project.CharLimit = 255
	if r, ok := t.selected(); ok && r.Owner == t.id.User {
		f.project.SetValue(r.Project)
	}
	f.token.Placeholder = "glrt-..."
	f.token.EchoMode = textinput.EchoNone
	f.token.CharLimit = 256
	// A steady cursor: no blink ticks while the form waits.
	for _, in := range []*textinput.Model{&f.project, &f.token} {
		sty := in.Styles()
		sty.Cursor.Blink = false
		in.SetStyles(sty)
	}
	f.project.Focus()
	t.form = f
}

func (t *Tab) formKey(msg tea.KeyPressMsg) tea.Cmd {
	f := t.form
	switch msg.String() {
	case "esc":
		t.form = nil
		return nil
	case "enter":
		if f.step == 0 {
			f.step = 1
			f.project.Blur()
			return f.token.Focus()
		}
		project, token := f.project.Value(), f.token.Value()
		t.form = nil
		if token == "" {
			return dashboard.Status("no token given", true)
		}
		r := runner.Runner{Name: runner.NameFor(project), Owner: t.id.User}
		return t.act("token", r, func(ctx context.Context) (string, error) {
			got, err := t.svc.SetToken(ctx, t.id, project, token)
			return "runner " + got.Name + ": token accepted by GitLab; runner " + got.State, err
		})
	}
	return t.typeInForm(msg)
}

func (t *Tab) typeInForm(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	if t.form.step == 0 {
		t.form.project, cmd = t.form.project.Update(msg)
	} else {
		t.form.token, cmd = t.form.token.Update(msg)
	}
	return cmd
}

// View draws the tab in width x height cells.
func (t *Tab) View(width, height int) string {
	t.width, t.height = width, height
	if t.logs != nil {
		return t.logs.View(width, height)
	}
	var bottom string
	switch {
	case t.confirm != nil:
		bottom = t.st.Question("remove runner "+termsafe.Line(t.confirm.Name)+" (unregistered from GitLab, token deleted)?", width)
	case t.form != nil && t.form.step == 0:
		bottom = " project: " + t.form.project.View()
	case t.form != nil:
		bottom = " token for " + termsafe.Line(t.form.project.Value()) + " (not shown): " + t.form.token.View()
	case t.busy != "":
		bottom = t.st.Dim.Render(" " + t.busy + "...")
	}
	return Render(t.st, View{List: t.list, Sel: t.sel, Loaded: t.loaded, Err: t.err, WithOwner: t.id.IsTA(), Bottom: bottom, Now: time.Now(),
		Jobs: t.jobCounts()}, width, height)
}
