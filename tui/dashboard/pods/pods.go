// Package pods is the dashboard's Pods tab: the user's pods on the Kubernetes cluster
// (every user's, for TAs) as a live table read from the backend's in-memory snapshot, with
// details (the reason a pod waits or fails, its newest warnings, how to reach a port), a
// new-pod form, delete, a filter, the shared log viewer and a shell through the session.
//
// The table costs no API call: it is re-read from Snapshot when SubscribeFor says something
// it shows changed. While the cluster is unreachable the last known list stays, greyed,
// under one line saying so, and the tab recovers by itself. Every string from outside is
// neutralised before display.
package pods

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	units "github.com/docker/go-units"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/kube"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/dashboard/logview"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Service is what the tab needs from backend/kube; *kube.Service satisfies it. The backend
// authorises every call against the Identity.
type Service interface {
	Snapshot(id backend.Identity, opts kube.ListOptions) ([]kube.Pod, kube.Health)
	SubscribeFor(id backend.Identity, opts kube.ListOptions) (<-chan struct{}, func())
	Config() kube.Config
	Run(ctx context.Context, id backend.Identity, spec kube.RunSpec) (kube.Pod, error)
	Remove(ctx context.Context, id backend.Identity, ref string) error
	Logs(ctx context.Context, id backend.Identity, ref string, opts kube.LogOptions) (io.ReadCloser, error)
	Inspect(ctx context.Context, id backend.Identity, ref string) (kube.Details, error)
	backend.Executor
}

var _ Service = (*kube.Service)(nil)

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
	removedMsg struct {
		tab        *Tab
		ref, shown string
		err        error
	}
	runMsg struct {
		tab *Tab
		p   kube.Pod
		err error
	}
	inspectMsg struct {
		tab *Tab
		ref string
		d   kube.Details
		err error
	}
)

// Form fields.
const (
	fImage = iota
	fName
	fCPUs
	fMemory
	fGPUs
	numFields
)

var fieldLabels = [numFields]string{"image", "name", "CPUs", "memory", "GPUs"}

// fPreset is the focus on the form's preset line (shown only when the course offers presets).
const fPreset = numFields

// Presets are the course presets a user may use (docker.Service): the new-pod form offers
// them first, filling its fields from the one chosen.
type Presets interface {
	Presets(ctx context.Context, id backend.Identity) []docker.Preset
}

// presetsMsg are the presets the user may use, as read off the event loop.
type presetsMsg struct {
	tab     *Tab
	presets []docker.Preset
}

// Tab is the Pods tab. Create it with New; the dashboard closes it.
type Tab struct {
	svc    Service
	id     backend.Identity
	st     dashboard.Styles
	now    func() time.Time
	prefix string
	keys   keyMap
	ctx    context.Context
	cancel context.CancelFunc
	shell  dashboard.ShellFunc

	started   bool
	shown     bool
	tickSeq   int
	sub       <-chan struct{}
	unsub     func()
	closeOnce sync.Once

	all    []kube.Pod
	health kube.Health
	list   []kube.Pod
	sel    int
	selRef string
	goTo   string

	filter    textinput.Model
	filtering bool

	detailsOpen    bool
	detailsRef     string
	details        *kube.Details
	detailsErr     string
	detailsLoading bool

	confirm *kube.Pod // waiting for y/N to delete it
	busy    map[string]string

	form       *[numFields]textinput.Model
	focus      int // a field, or fPreset
	presetSrc  Presets
	presets    []docker.Preset // as last read
	pick       int             // 0: none; i: presets[i-1]
	picked     *docker.Preset  // the one the form was filled from, for its environment and command
	formErr    string
	submitting bool

	logs          *logview.Viewer
	width, height int
}

// keyMap holds the tab's bindings.
type keyMap struct {
	nav                                     dashboard.NavKeys
	yn                                      dashboard.ConfirmKeys
	New, Shell, Logs, Delete, Filter, Enter key.Binding
	Clear, Submit, NextField, Cancel        key.Binding
}

func defaultKeyMap() keyMap {
	b := func(keys []string, help, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	return keyMap{
		nav: dashboard.DefaultNavKeys(), yn: dashboard.DefaultConfirmKeys(),
		New:       b([]string{"n"}, "n", "new"),
		Shell:     b([]string{"s"}, "s", "shell"),
		Logs:      b([]string{"l"}, "l", "logs"),
		Delete:    b([]string{"d", "delete"}, "d", "delete"),
		Filter:    b([]string{"/"}, "/", "filter"),
		Enter:     b([]string{"enter"}, "enter", "details"),
		Clear:     b([]string{"esc"}, "esc", "clear filter, close details"),
		Submit:    b([]string{"enter"}, "enter", "create"),
		NextField: b([]string{"tab", "down"}, "tab", "next field"),
		Cancel:    b([]string{"esc"}, "esc", "cancel"),
	}
}

// New builds the tab for id; prefix is how users reach the server ("ssh -p 2222 host"), for
// the forward hint.
func New(svc Service, id backend.Identity, st dashboard.Styles, now func() time.Time, prefix string) *Tab {
	ctx, cancel := context.WithCancel(context.Background())
	f := textinput.New()
	f.Prompt = "/"
	f.Placeholder = "filter: name, image, status, node" + map[bool]string{true: ", owner:NAME", false: ""}[id.IsTA()]
	return &Tab{svc: svc, id: id, st: st, now: now, prefix: prefix, keys: defaultKeyMap(), ctx: ctx, cancel: cancel,
		filter: f, busy: map[string]string{}}
}

// SetPresets makes the new-pod form offer the course presets id may use.
func (t *Tab) SetPresets(p Presets) { t.presetSrc = p }

// loadPresets reads the presets off the event loop (asking GitLab for groups can take time).
func (t *Tab) loadPresets() tea.Cmd {
	src, id, ctx := t.presetSrc, t.id, t.ctx
	if src == nil {
		return nil
	}
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
		defer cancel()
		return presetsMsg{tab: t, presets: src.Presets(ctx, id)}
	}
}

// SetShell installs what `s` does.
func (t *Tab) SetShell(fn dashboard.ShellFunc) { t.shell = fn }

// Select puts the selection on the pod ref ("owner/name") once it shows.
func (t *Tab) Select(ref string) {
	t.goTo = ref
	t.refilter()
}

// SetFilter replaces the filter, as if typed and kept with enter.
func (t *Tab) SetFilter(filter string) tea.Cmd {
	t.filtering = false
	t.filter.Blur()
	t.filter.SetValue(filter)
	t.refilter()
	return t.afterSelect()
}

// Close releases the subscription and the log stream and cancels calls in flight.
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
func (t *Tab) Title() string { return "Pods" }

// Init subscribes to the snapshot and reads it.
func (t *Tab) Init() tea.Cmd {
	if t.started || t.ctx.Err() != nil {
		return nil
	}
	t.started = true
	t.sub, t.unsub = t.svc.SubscribeFor(t.id, t.listOptions())
	t.reload()
	return tea.Batch(t.waitChange(), t.loadPresets())
}

// Show starts or stops the age tick, which matters only on screen.
func (t *Tab) Show(on bool) tea.Cmd {
	t.shown = on
	return t.tick()
}

func (t *Tab) listOptions() kube.ListOptions { return kube.ListOptions{AllUsers: t.id.IsTA()} }

func (t *Tab) waitChange() tea.Cmd {
	ch := t.sub
	return func() tea.Msg {
		if _, ok := <-ch; !ok {
			return nil
		}
		return changedMsg{tab: t}
	}
}

// tick schedules a redraw when the first age on screen would read differently.
func (t *Tab) tick() tea.Cmd {
	t.tickSeq++
	if !t.shown || t.ctx.Err() != nil {
		return nil
	}
	now, next := t.now(), time.Duration(0)
	for _, p := range t.list {
		if d := format.AgeChangesIn(now.Sub(p.Created)); next == 0 || d < next {
			next = d
		}
	}
	if next == 0 {
		return nil
	}
	seq := t.tickSeq
	return tea.Tick(next+20*time.Millisecond, func(time.Time) tea.Msg { return tickMsg{tab: t, seq: seq} })
}

func (t *Tab) reload() {
	t.all, t.health = t.svc.Snapshot(t.id, t.listOptions())
	t.refilter()
}

// refilter recomputes the shown list, keeping the selection on the same pod.
func (t *Tab) refilter() {
	t.list = t.list[:0:0]
	for _, p := range t.all {
		if matches(p, t.filter.Value()) {
			t.list = append(t.list, p)
		}
	}
	want := t.selRef
	if t.goTo != "" {
		want = t.goTo
	}
	t.sel = min(t.sel, max(0, len(t.list)-1))
	for i, p := range t.list {
		if p.Ref() == want {
			t.sel = i
			if want == t.goTo {
				t.goTo = ""
			}
			break
		}
	}
	t.selRef = ""
	if p, ok := t.current(); ok {
		t.selRef = p.Ref()
	}
}

func (t *Tab) current() (kube.Pod, bool) {
	if t.sel < 0 || t.sel >= len(t.list) {
		return kube.Pod{}, false
	}
	return t.list[t.sel], true
}

// shownName is the pod as the user names it: "lab", or "alice/lab" for someone else's.
func (t *Tab) shownName(p kube.Pod) string {
	if p.Owner == t.id.User {
		return termsafe.Line(p.Name)
	}
	return termsafe.Line(p.Ref())
}

// afterSelect loads the details of the selected pod when the pane is open.
func (t *Tab) afterSelect() tea.Cmd {
	if !t.detailsOpen {
		return nil
	}
	p, ok := t.current()
	if !ok || t.detailsRef == p.Ref() {
		return nil
	}
	return t.inspect(p)
}

func (t *Tab) inspect(p kube.Pod) tea.Cmd {
	ref, svc, id, ctx := p.Ref(), t.svc, t.id, t.ctx
	t.detailsRef, t.details, t.detailsErr, t.detailsLoading = ref, nil, "", true
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, inspectTimeout)
		defer cancel()
		d, err := svc.Inspect(ctx, id, ref)
		return inspectMsg{tab: t, ref: ref, d: d, err: err}
	}
}

// Capturing reports whether keys such as q, ? and digits belong to the tab.
func (t *Tab) Capturing() bool {
	return t.filtering || t.form != nil || t.logs != nil || t.confirm != nil
}

// Keys are the footer's bindings for what is on screen.
func (t *Tab) Keys() []key.Binding {
	k := t.keys
	switch {
	case t.logs != nil:
		return t.logs.Keys()
	case t.confirm != nil:
		return k.yn.All()
	case t.form != nil:
		return []key.Binding{k.Submit, k.NextField, k.Cancel}
	case t.filtering:
		return []key.Binding{withHelp(k.Submit, "enter", "keep filter"), withHelp(k.Cancel, "esc", "clear")}
	}
	return []key.Binding{k.New, k.Shell, k.Logs, k.Delete, k.Filter, k.Enter}
}

// FullKeys are every key of what is on screen, for the help overlay.
func (t *Tab) FullKeys() []key.Binding {
	if t.logs != nil {
		return t.logs.FullKeys()
	}
	if t.Capturing() {
		return append(t.Keys(), key.NewBinding(key.WithHelp("ctrl+c", "quit")))
	}
	return append(t.keys.nav.All(), append(t.Keys(), t.keys.Clear)...)
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
	case presetsMsg:
		if msg.tab == t {
			t.presets = msg.presets
			if t.pick > len(t.presets) {
				t.pick, t.picked = 0, nil
			}
			if t.form != nil && t.focus == fPreset && len(t.presets) == 0 {
				t.focus = fImage
				return t, t.form[fImage].Focus()
			}
		}
		return t, nil
	case changedMsg:
		if msg.tab != t || t.ctx.Err() != nil {
			return t, nil
		}
		t.reload()
		return t, tea.Batch(t.waitChange(), t.tick(), t.afterSelect())
	case tickMsg:
		if msg.tab != t || msg.seq != t.tickSeq {
			return t, nil
		}
		return t, t.tick()
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
		return t, nil
	case removedMsg:
		if msg.tab != t {
			return t, nil
		}
		delete(t.busy, msg.ref)
		if msg.err != nil {
			return t, dashboard.ErrorStatus(msg.err)
		}
		return t, dashboard.Status("pod "+msg.shown+": deleted", false)
	case runMsg:
		if msg.tab != t {
			return t, nil
		}
		t.submitting = false
		if msg.err != nil {
			t.formErr = termsafe.Line(msg.err.Error())
			return t, nil
		}
		t.form = nil
		t.goTo = msg.p.Ref()
		t.reload()
		return t, tea.Batch(dashboard.Status(t.shownName(msg.p)+": created", false), t.afterSelect())
	case tea.PasteMsg:
		return t, t.typeText(msg)
	case tea.KeyPressMsg:
		return t, t.key(msg)
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
		p := *t.confirm
		t.confirm = nil
		if key.Matches(msg, t.keys.yn.Yes) {
			return t.remove(p)
		}
		return nil
	case t.form != nil:
		return t.formKey(msg)
	case t.filtering:
		switch {
		case key.Matches(msg, t.keys.Submit):
			t.filtering = false
			t.filter.Blur()
			return nil
		case key.Matches(msg, t.keys.Cancel):
			t.filtering = false
			t.filter.Blur()
			t.filter.SetValue("")
			t.refilter()
			return t.afterSelect()
		}
		return t.typeText(msg)
	}
	return t.tableKey(msg)
}

// typeText gives a key or a paste to whatever takes text.
func (t *Tab) typeText(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	switch {
	case t.logs != nil && t.logs.Searching():
		return t.logs.TypeSearch(msg)
	case t.form != nil && !t.submitting && t.focus == fPreset:
		return nil // the preset line takes no text
	case t.form != nil && !t.submitting:
		t.form[t.focus], cmd = t.form[t.focus].Update(msg)
		t.formErr = ""
	case t.filtering:
		t.filter, cmd = t.filter.Update(msg)
		t.refilter()
		return tea.Batch(cmd, t.afterSelect())
	}
	return cmd
}

func (t *Tab) tableKey(msg tea.KeyPressMsg) tea.Cmd {
	k := t.keys
	move := func(to int) tea.Cmd {
		t.sel = max(0, min(to, len(t.list)-1))
		if p, ok := t.current(); ok {
			t.selRef = p.Ref()
		}
		return t.afterSelect()
	}
	page := max(1, t.height-4)
	switch {
	case key.Matches(msg, k.nav.Up):
		return move(t.sel - 1)
	case key.Matches(msg, k.nav.Down):
		return move(t.sel + 1)
	case key.Matches(msg, k.nav.Top):
		return move(0)
	case key.Matches(msg, k.nav.Bottom):
		return move(len(t.list) - 1)
	case key.Matches(msg, k.nav.PageUp):
		return move(t.sel - page)
	case key.Matches(msg, k.nav.PageDown):
		return move(t.sel + page)
	case key.Matches(msg, k.New):
		return t.openForm()
	case key.Matches(msg, k.Filter):
		t.filtering = true
		t.filter.CursorEnd()
		return t.filter.Focus()
	case key.Matches(msg, k.Clear):
		switch {
		case t.detailsOpen:
			t.detailsOpen = false
		case t.filter.Value() != "":
			t.filter.SetValue("")
			t.refilter()
		}
		return nil
	}
	p, ok := t.current()
	if !ok {
		return nil
	}
	switch {
	case key.Matches(msg, k.Enter):
		t.detailsOpen = !t.detailsOpen
		if t.detailsOpen {
			return t.inspect(p)
		}
	case key.Matches(msg, k.Logs):
		return t.openLogs(p)
	case key.Matches(msg, k.Shell):
		switch {
		case t.shell == nil:
			return dashboard.Status("shell: not available on this server", false)
		case !p.Running():
			return dashboard.Status(t.shownName(p)+" is "+termsafe.Line(p.Status)+": a shell needs it running", true)
		}
		return t.shell(t.shellIn(p))
	case key.Matches(msg, k.Delete):
		if t.busy[p.Ref()] == "" {
			t.confirm = &p
		}
	}
	return nil
}

// shellIn is a shell in p, for the session: through the service's Exec, coming back to p.
func (t *Tab) shellIn(p kube.Pod) dashboard.Shell {
	ref, svc, id := p.Ref(), t.svc, t.id
	name := "pod/" + t.shownName(p)
	return dashboard.Shell{Name: name, Back: ref, Open: func(ctx context.Context, spec backend.ExecSpec) (backend.Execution, error) {
		return svc.Exec(ctx, id, ref, spec)
	}}
}

func (t *Tab) openLogs(p kube.Pod) tea.Cmd {
	ref, svc, id := p.Ref(), t.svc, t.id
	open := func(ctx context.Context, timestamps bool) (io.ReadCloser, error) {
		return svc.Logs(ctx, id, ref, kube.LogOptions{Follow: true, Tail: logview.Tail, Timestamps: timestamps})
	}
	var cmd tea.Cmd
	t.logs, cmd = logview.Open(t.ctx, t.logs, ref, "pod "+t.shownName(p), open, false, t.st, t.width, t.height)
	return cmd
}

func (t *Tab) remove(p kube.Pod) tea.Cmd {
	ref, svc, id, ctx := p.Ref(), t.svc, t.id, t.ctx
	t.busy[ref] = "deleting…"
	shown := t.shownName(p)
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(ctx, actionTimeout)
		defer cancel()
		return removedMsg{tab: t, ref: ref, shown: shown, err: svc.Remove(ctx, id, ref)}
	}
}

func (t *Tab) quota() kube.Quota {
	cfg := t.svc.Config()
	if t.id.IsTA() {
		return cfg.TA
	}
	return cfg.Student
}

func (t *Tab) openForm() tea.Cmd {
	var f [numFields]textinput.Model
	cfg := t.svc.Config()
	placeholder := [numFields]string{"python:3.12", "lab", format.CPUs(cfg.DefaultCPUs), format.Bytes(cfg.DefaultMemory), "0"}
	for i := range f {
		f[i] = textinput.New()
		f[i].Prompt = ""
		f[i].Placeholder = placeholder[i]
		f[i].CharLimit = 200
	}
	t.form, t.focus, t.formErr, t.submitting = &f, 0, "", false
	t.pick, t.picked = 0, nil
	refresh := t.loadPresets() // for the next form
	if len(t.presets) > 0 {
		t.focus = fPreset
		return refresh
	}
	return tea.Batch(t.form[0].Focus(), refresh)
}

// positions are the form's focus stops in order: the preset line first when there is one.
func (t *Tab) positions() []int {
	ps := []int{fImage, fName, fCPUs, fMemory, fGPUs}
	if len(t.presets) > 0 {
		ps = append([]int{fPreset}, ps...)
	}
	return ps
}

// choosePreset moves the preset line's choice by d and fills the fields from it.
func (t *Tab) choosePreset(d int) {
	n := len(t.presets) + 1
	t.pick = ((t.pick+d)%n + n) % n
	t.picked = nil
	if t.pick == 0 {
		return
	}
	p := t.presets[t.pick-1]
	t.picked = &p
	gpus := ""
	if c, _, err := docker.ParseGPUs(p.GPUs); err == nil && c > 0 {
		gpus = strconv.Itoa(c)
	}
	cpus, mem := "", ""
	if p.CPUs > 0 {
		cpus = format.CPUs(p.CPUs)
	}
	if p.Memory > 0 {
		mem = format.Bytes(p.Memory)
	}
	t.form[fImage].SetValue(p.Image)
	t.form[fCPUs].SetValue(cpus)
	t.form[fMemory].SetValue(mem)
	t.form[fGPUs].SetValue(gpus)
	if t.form[fName].Value() == "" {
		t.form[fName].SetValue(p.Name)
	}
}

func (t *Tab) formKey(msg tea.KeyPressMsg) tea.Cmd {
	if t.submitting {
		return nil
	}
	k := t.keys
	switch {
	case key.Matches(msg, k.Cancel):
		t.form = nil
		return nil
	case key.Matches(msg, k.NextField), msg.String() == "shift+tab" || msg.String() == "up":
		if t.focus != fPreset {
			t.form[t.focus].Blur()
		}
		ps := t.positions()
		d := 1
		if !key.Matches(msg, k.NextField) {
			d = len(ps) - 1
		}
		t.focus = ps[(slices.Index(ps, t.focus)+d)%len(ps)]
		if t.focus == fPreset {
			return nil
		}
		return t.form[t.focus].Focus()
	case t.focus == fPreset && (msg.String() == "left" || msg.String() == "right" || msg.String() == "space"):
		d := 1
		if msg.String() == "left" {
			d = -1
		}
		t.choosePreset(d)
		return nil
	case key.Matches(msg, k.Submit):
		spec, err := t.spec()
		if err != nil {
			t.formErr = err.Error()
			return nil
		}
		t.submitting, t.formErr = true, ""
		svc, id, ctx := t.svc, t.id, t.ctx
		return func() tea.Msg {
			ctx, cancel := context.WithTimeout(ctx, actionTimeout)
			defer cancel()
			p, err := svc.Run(ctx, id, spec)
			return runMsg{tab: t, p: p, err: err}
		}
	}
	return t.typeText(msg)
}

// spec reads the form; the backend checks names, images and the quota again.
func (t *Tab) spec() (kube.RunSpec, error) {
	v := func(i int) string { return strings.TrimSpace(t.form[i].Value()) }
	spec := kube.RunSpec{Image: v(fImage), Name: v(fName)}
	if p := t.picked; p != nil && p.Image == spec.Image {
		spec.Env, spec.Cmd = p.Env, p.Cmd // the preset's, unless its image was changed
	}
	if spec.Image == "" {
		return spec, errors.New("an image is needed, such as python:3.12")
	}
	if spec.Name == "" {
		return spec, errors.New("a name is needed: lower-case letters, digits and '-'")
	}
	if s := v(fCPUs); s != "" {
		c, err := strconv.ParseFloat(s, 64)
		if err != nil || !(c > 0) {
			return spec, errors.New("CPUs: a number such as 2 or 0.5")
		}
		spec.CPUs = c
	}
	if s := v(fMemory); s != "" {
		m, err := units.RAMInBytes(s)
		if err != nil || m <= 0 {
			return spec, errors.New("memory: a size such as 512m or 4g")
		}
		spec.Memory = m
	}
	if s := v(fGPUs); s != "" {
		g, err := strconv.Atoi(s)
		if err != nil || g < 0 {
			return spec, errors.New("GPUs: a whole number")
		}
		spec.GPUs = g
	}
	return spec, nil
}

// View draws the tab's body in width x height cells.
func (t *Tab) View(width, height int) string {
	t.width, t.height = width, height
	if t.logs != nil {
		return t.logs.View(width, height)
	}
	if t.form != nil {
		return strings.Join(t.formLines(width), "\n")
	}
	return strings.Join(t.tableLines(width, height), "\n")
}

func (t *Tab) formLines(width int) []string {
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	own := 0
	for _, p := range t.all {
		if p.Owner == t.id.User {
			own++
		}
	}
	lines := []string{dashboard.RuleLine(t.st, "New pod", width), t.st.Dim.Render(cut("  " + quotaText(t.quota(), own))), ""}
	if len(t.presets) > 0 {
		mark := "  "
		if t.focus == fPreset {
			mark = dashboard.Marker
		}
		lines = append(lines, cut(mark+"preset    "+PresetChoice(t.presets, t.pick)), "")
	}
	for i := range t.form {
		label := fieldLabels[i] + strings.Repeat(" ", 8-len(fieldLabels[i]))
		mark := "  "
		if i == t.focus {
			mark = dashboard.Marker
		}
		t.form[i].SetWidth(max(1, width-14))
		lines = append(lines, cut(mark+label+"  "+t.form[i].View()))
	}
	lines = append(lines, "")
	switch {
	case t.submitting:
		lines = append(lines, t.st.Dim.Render(cut("  creating…")))
	case t.formErr != "":
		lines = append(lines, t.st.Failed.Render(cut("  ✗ "+termsafe.Line(t.formErr))))
	}
	return lines
}

// tableLines is the table page: the cluster line and the filter on top, the table, then
// the details and the question below.
func (t *Tab) tableLines(width, height int) []string {
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	var top, bottom []string
	if !t.health.OK {
		top = append(top, unreachableLine(t.st, t.health.Err, width))
	}
	switch {
	case t.filtering:
		t.filter.SetWidth(max(1, width-4))
		top = append(top, cut(" "+t.filter.View()))
	case t.filter.Value() != "":
		top = append(top, t.st.Dim.Render(cut(" filter: "+termsafe.Line(t.filter.Value())+" · esc clears")))
	}
	if p, ok := t.current(); ok && t.detailsOpen {
		dv := detailsView{title: "pod " + t.shownName(p), live: p, loading: t.detailsLoading, err: t.detailsErr, now: t.now()}
		if t.detailsRef == p.Ref() {
			dv.details = t.details
		}
		if p.Owner == t.id.User {
			port := 8888
			if dv.details != nil && len(dv.details.Ports) > 0 {
				port = int(dv.details.Ports[0])
			}
			dv.forward = format.ForwardLine(t.prefix, t.id.User, "pod/"+p.Name, port)
		}
		bottom = append(append(bottom, ""), renderDetails(t.st, dv, width)...)
	}
	if t.confirm != nil {
		bottom = append(bottom, t.st.Question("delete pod "+t.shownName(*t.confirm)+"?", width))
	}
	room := height - len(top) - len(bottom)
	if room < 3 && len(bottom) > 0 {
		keep := max(0, min(len(bottom), height-len(top)-3))
		bottom = bottom[len(bottom)-keep:]
		room = height - len(top) - len(bottom)
	}
	var middle []string
	switch {
	case len(t.all) == 0 && !t.health.OK:
		middle = []string{t.st.Notice.Render(cut("  No pods to show until the cluster answers."))}
	case len(t.all) == 0:
		middle = []string{t.st.Notice.Render(cut("  No pods yet. Press n to create one."))}
	case len(t.list) == 0:
		middle = []string{t.st.Notice.Render(cut("  No pod matches \"" + termsafe.Line(t.filter.Value()) + "\". esc clears the filter."))}
	default:
		middle = renderTable(t.st, tableView{list: t.list, owners: t.id.IsTA(), selected: t.sel,
			dim: !t.health.OK, busy: t.busy, now: t.now()}, width, room)
	}
	return append(append(top, middle...), bottom...)
}

// PresetChoice is the preset line's text: "‹ ml: PyTorch for the ML course ›  (1/3, ←/→)";
// pick 0 is "none: fill in the fields".
func PresetChoice(ps []docker.Preset, pick int) string {
	text := "none: fill in the fields"
	if pick < 0 || pick > len(ps) {
		pick = 0
	}
	if pick > 0 {
		p := ps[pick-1]
		text = termsafe.Line(p.Name)
		if p.Description != "" {
			text += ": " + termsafe.Line(p.Description)
		}
	}
	return fmt.Sprintf("‹ %s ›  (%d/%d, ←/→)", text, pick, len(ps))
}
