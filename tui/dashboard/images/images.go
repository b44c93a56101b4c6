// Package images is the dashboard's Images tab: the images on the server (one row per tag),
// pulling an image with live per-layer progress, removing a tag after a y/N question,
// converting an image into a SIF file to download (f), and the user's own GitLab container
// registry (m), where one key pulls a tag.
//
// The backend applies the pull policy and the removal rules; the tab only shows the result.
// Every string from outside is neutralised before display.
package images

import (
	"context"
	"fmt"
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
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Service is what the tab needs from backend/docker; *docker.ImageService and cli.Images
// satisfy it.
type Service interface {
	Images(ctx context.Context, id backend.Identity) ([]docker.Image, error)
	Pull(ctx context.Context, id backend.Identity, ref string, progress func(docker.PullProgress)) error
	RemoveImage(ctx context.Context, id backend.Identity, ref string) error
}

var _ Service = (*docker.ImageService)(nil)

// Remover is what a Service may also have: the rule that says whose tags the caller may
// remove (*docker.ImageService has it). With it the tab offers d only where removing can
// work; without it every row offers d and the backend answers.
type Remover interface {
	MayRemove(id backend.Identity, ref string) bool
}

var _ Remover = (*docker.ImageService)(nil)

// Deps are what the tab works with; only Images is required for a working tab.
type Deps struct {
	Images Service // nil: images are not configured, the tab says so
	SIFs   SIFs    // nil: no f key
	// Registry lists the user's own GitLab registry; nil: no m key.
	Registry Registry
	// Prefix is how users reach the server ("ssh -p 2222 host"), for the download hint.
	Prefix string
}

const (
	loadTimeout   = 30 * time.Second
	removeTimeout = 2 * time.Minute
	// redraw is the least time between two progress redraws (at most ~10 a second).
	redraw = 100 * time.Millisecond
)

// Messages carry the tab they belong to, so that another tab's replies are ignored.
type (
	loadedMsg struct {
		tab  *Tab
		list []docker.Image
		err  error
	}
	pullTickMsg struct {
		tab *Tab
		seq int
	}
	pullDoneMsg struct {
		tab   *Tab
		seq   int
		shown string
		err   error
	}
	removedMsg struct {
		tab   *Tab
		shown string
		err   error
	}
)

// row is one line of the table: one tag of an image, or the image itself when untagged.
type row struct {
	ref   string // what RemoveImage gets: the tag, or the ID when untagged
	shown string // neutralised IMAGE column
	img   docker.Image
}

// pull is the one pull in flight; the goroutine writes layers under mu.
type pull struct {
	seq   int
	shown string
	mu    sync.Mutex
	order []string
	layer map[string]docker.PullProgress
	line  string // the latest status about the whole image
}

func (p *pull) step(s docker.PullProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s.ID == "" {
		p.line = s.Status
		return
	}
	if _, ok := p.layer[s.ID]; !ok {
		p.order = append(p.order, s.ID)
	}
	p.layer[s.ID] = s
}

// snapshot copies the progress for drawing.
func (p *pull) snapshot() (line string, layers []docker.PullProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, id := range p.order {
		layers = append(layers, p.layer[id])
	}
	return p.line, layers
}

// Tab is the Images tab. Create it with New; call Close when the program has ended.
type Tab struct {
	svc    Service
	sifs   SIFs
	reg    Registry
	prefix string
	id     backend.Identity
	st     dashboard.Styles
	now    func() time.Time

	nav                                                        dashboard.NavKeys
	confirmKeys                                                dashboard.ConfirmKeys
	pullKey, remove, reload, sifKey, regKey, pullSel, viewSIFs key.Binding

	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	started   bool

	rows    []row
	sel     int
	loading bool
	loadErr error

	prompting bool
	input     textinput.Model
	confirm   *row

	seq      int
	pulling  *pull
	pullFail string // why the last pull failed, shown in full until the next key
	// shown by View: copied from pulling on each tick
	pullLine   string
	pullLayers []docker.PullProgress

	building *sifBuild          // the SIF build in flight
	sifShown docker.SIFProgress // its progress, copied on each tick

	registry registryView
	sifList  sifView
}

var _ dashboard.Tab = (*Tab)(nil)

// New builds the tab for one user.
func New(deps Deps, id backend.Identity, styles dashboard.Styles) *Tab {
	b := func(keys []string, help, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := textinput.New()
	in.Prompt = "pull: "
	in.Placeholder = "image, e.g. ubuntu:24.04"
	in.CharLimit = 255
	s := in.Styles()
	s.Cursor.Blink = false
	in.SetStyles(s)
	return &Tab{
		svc: deps.Images, sifs: deps.SIFs, reg: deps.Registry, prefix: deps.Prefix,
		id: id, st: styles, now: time.Now, ctx: ctx, cancel: cancel, input: in,
		nav:         dashboard.DefaultNavKeys(),
		confirmKeys: dashboard.DefaultConfirmKeys(),
		pullKey:     b([]string{"p"}, "p", "pull"),
		remove:      b([]string{"d", "delete"}, "d", "remove"),
		reload:      b([]string{"R"}, "R", "reload"),
		sifKey:      b([]string{"f"}, "f", "make SIF"),
		regKey:      b([]string{"m"}, "m", "my registry"),
		pullSel:     b([]string{"p", "enter"}, "p/enter", "pull"),
		viewSIFs:    b([]string{"v"}, "v", "my SIF files"),
	}
}

// Close cancels the pull and the calls in flight. It is safe to call more than once.
func (t *Tab) Close() { t.closeOnce.Do(t.cancel) }

// Title is the tab's name.
func (t *Tab) Title() string { return "Images" }

// Capturing reports whether the prompt or a question takes the keys.
func (t *Tab) Capturing() bool { return t.prompting || t.confirm != nil || t.sifList.confirm != "" }

// Keys are the bindings for the footer: what can be done on what is on screen.
func (t *Tab) Keys() []key.Binding {
	back := func(keys ...string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(strings.Join(keys, "/"), "back to all images"))
	}
	switch {
	case t.prompting:
		return []key.Binding{
			key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "pull")),
			key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "cancel")),
		}
	case t.confirm != nil, t.sifList.confirm != "":
		return t.confirmKeys.All()
	case t.registry.on:
		return []key.Binding{t.pullSel, t.reload, back("m", "esc")}
	case t.sifList.on:
		keys := []key.Binding{}
		if t.sifList.sel < len(t.sifList.files) {
			keys = append(keys, t.remove)
		}
		return append(keys, t.reload, back("v", "esc"))
	}
	if t.svc == nil {
		return nil
	}
	keys := []key.Binding{t.pullKey}
	if r, ok := t.selected(); ok && t.mayRemove(r) {
		keys = append(keys, t.remove)
	}
	if t.sifs != nil {
		keys = append(keys, t.sifKey, t.viewSIFs)
	}
	if t.reg != nil {
		keys = append(keys, t.regKey)
	}
	return keys
}

// FullKeys are every key of what is on screen, for the help overlay: moving and reloading
// too, and why a key is not there.
func (t *Tab) FullKeys() []key.Binding {
	if t.prompting || t.confirm != nil || t.sifList.confirm != "" || t.svc == nil {
		return t.Keys()
	}
	n := t.nav
	keys := append([]key.Binding{n.Up, n.Down, n.Top, n.Bottom, n.PageUp, n.PageDown}, t.Keys()...)
	if !t.registry.on && !t.sifList.on {
		if r, ok := t.selected(); !ok || !t.mayRemove(r) {
			keys = append(keys, key.NewBinding(key.WithKeys("d"), key.WithHelp("d", "remove (your own registry tags only)")))
		}
		keys = append(keys, t.reload)
		if t.reg == nil {
			keys = append(keys, key.NewBinding(key.WithKeys("m"), key.WithHelp("m", "my registry (needs GitLab: off here)")))
		}
	}
	return keys
}

// selected is the selected row of the server's images.
func (t *Tab) selected() (row, bool) {
	if t.sel < 0 || t.sel >= len(t.rows) {
		return row{}, false
	}
	return t.rows[t.sel], true
}

// mayRemove reports whether the caller may remove the row's tag, as far as ownership goes
// (in use or not is the backend's answer).
func (t *Tab) mayRemove(r row) bool {
	if len(r.img.Tags) == 0 {
		return false // tags are removed, never images by ID
	}
	rm, ok := t.svc.(Remover)
	return !ok || rm.MayRemove(t.id, r.ref)
}

// Init loads the list.
func (t *Tab) Init() tea.Cmd {
	if t.started || t.svc == nil || t.ctx.Err() != nil {
		return nil
	}
	t.started = true
	return t.load()
}

// load lists the images in a command.
func (t *Tab) load() tea.Cmd {
	if t.svc == nil || t.ctx.Err() != nil {
		return nil
	}
	t.loading = true
	parent := t.ctx
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, loadTimeout)
		defer cancel()
		list, err := t.svc.Images(ctx, t.id)
		return loadedMsg{tab: t, list: list, err: err}
	}
}

// Update handles the tab's messages and keys.
func (t *Tab) Update(msg tea.Msg) (dashboard.Tab, tea.Cmd) {
	switch msg := msg.(type) {
	case loadedMsg:
		if msg.tab != t || t.ctx.Err() != nil {
			return t, nil
		}
		t.loading = false
		t.loadErr = msg.err
		if msg.err == nil {
			t.setRows(msg.list)
		}
		return t, nil
	case pullTickMsg:
		p := t.pulling
		if msg.tab != t || p == nil || p.seq != msg.seq || t.ctx.Err() != nil {
			return t, nil
		}
		t.pullLine, t.pullLayers = p.snapshot()
		return t, t.tick(p.seq)
	case pullDoneMsg:
		if msg.tab != t || t.ctx.Err() != nil {
			return t, nil
		}
		if t.pulling != nil && t.pulling.seq == msg.seq {
			t.pulling, t.pullLine, t.pullLayers = nil, "", nil
		}
		if msg.err != nil {
			t.pullFail = "pull of " + msg.shown + " failed: " + termsafe.Line(msg.err.Error())
			return t, tea.Batch(dashboard.Status(t.pullFail, true), t.load())
		}
		return t, tea.Batch(dashboard.Status("pulled "+msg.shown, false), t.load())
	case removedMsg:
		if msg.tab != t || t.ctx.Err() != nil {
			return t, nil
		}
		if msg.err != nil {
			return t, tea.Batch(dashboard.ErrorStatus(msg.err), t.load())
		}
		return t, tea.Batch(dashboard.Status("removed "+msg.shown, false), t.load())
	case sifTickMsg, sifDoneMsg, registryMsg, sifListMsg, sifRemovedMsg:
		return t, t.updateExtra(msg)
	case tea.PasteMsg:
		if t.prompting {
			var cmd tea.Cmd
			t.input, cmd = t.input.Update(tea.PasteMsg{Content: termsafe.Line(msg.Content)})
			return t, cmd
		}
	case tea.KeyPressMsg:
		return t, t.key(msg)
	}
	return t, nil
}

// setRows makes one row per tag and keeps the selection on the same ref where it can.
func (t *Tab) setRows(list []docker.Image) {
	var was string
	if t.sel < len(t.rows) {
		was = t.rows[t.sel].ref
	}
	t.rows = t.rows[:0]
	for _, im := range list {
		if len(im.Tags) == 0 {
			t.rows = append(t.rows, row{ref: im.ID, shown: "<none>", img: im})
			continue
		}
		for _, tag := range im.Tags {
			t.rows = append(t.rows, row{ref: tag, shown: termsafe.Line(tag), img: im})
		}
	}
	for i, r := range t.rows {
		if r.ref == was {
			t.sel = i
		}
	}
	t.sel = max(0, min(t.sel, len(t.rows)-1))
}

func (t *Tab) key(msg tea.KeyPressMsg) tea.Cmd {
	t.pullFail = "" // read: the next key puts it away
	switch {
	case t.confirm != nil:
		r := *t.confirm
		t.confirm = nil
		if !key.Matches(msg, t.confirmKeys.Yes) {
			return dashboard.Status("kept "+r.shown, false)
		}
		return t.removeCmd(r)
	case t.prompting:
		return t.promptKey(msg)
	}
	if t.svc == nil {
		return nil
	}
	if t.registry.on {
		return t.registryKey(msg)
	}
	if t.sifList.on {
		return t.sifListKey(msg)
	}
	if sel, ok := t.move(msg, t.sel, len(t.rows)); ok {
		t.sel = sel
		return nil
	}
	switch {
	case key.Matches(msg, t.sifKey) && t.sifs != nil:
		return t.startSIF()
	case key.Matches(msg, t.viewSIFs) && t.sifs != nil:
		t.sifList.on = true
		return t.loadSIFs()
	case key.Matches(msg, t.regKey):
		if t.reg == nil {
			return dashboard.Status("no registry view: this server has no GitLab (gitlab.url is not set)", true)
		}
		return t.openRegistry()
	case key.Matches(msg, t.reload):
		return t.load()
	case key.Matches(msg, t.pullKey):
		if t.pulling != nil {
			return dashboard.Status("already pulling "+t.pulling.shown, false)
		}
		t.prompting = true
		t.input.SetValue("")
		return t.input.Focus()
	case key.Matches(msg, t.remove):
		r, ok := t.selected()
		if !ok {
			return nil
		}
		if len(r.img.Tags) == 0 {
			return dashboard.Status("an untagged image has no tag to remove; the engine's prune clears it once nothing uses it", true)
		}
		if !t.mayRemove(r) {
			return dashboard.Status(r.shown+" is not yours to remove: students remove only tags of their own registry namespace", true)
		}
		t.confirm = &r
	}
	return nil
}

// move answers the list keys: the new selection among n rows, and whether msg was one.
func (t *Tab) move(msg tea.KeyPressMsg, sel, n int) (int, bool) {
	page := 10
	switch k := t.nav; {
	case key.Matches(msg, k.Up):
		sel--
	case key.Matches(msg, k.Down):
		sel++
	case key.Matches(msg, k.Top):
		sel = 0
	case key.Matches(msg, k.Bottom):
		sel = n - 1
	case key.Matches(msg, k.PageUp):
		sel -= page
	case key.Matches(msg, k.PageDown):
		sel += page
	default:
		return sel, false
	}
	return max(0, min(sel, n-1)), true
}

func (t *Tab) promptKey(msg tea.KeyPressMsg) tea.Cmd {
	switch msg.String() {
	case "esc":
		t.prompting = false
		t.input.Blur()
		return nil
	case "enter":
		t.prompting = false
		t.input.Blur()
		ref := strings.TrimSpace(t.input.Value())
		if ref == "" {
			return nil
		}
		return t.startPull(ref)
	}
	var cmd tea.Cmd
	t.input, cmd = t.input.Update(msg)
	return cmd
}

// startPull runs the pull in a command (its own goroutine) under the tab's context, which
// only Close cancels; progress is redrawn on a tick, at most every redraw.
func (t *Tab) startPull(ref string) tea.Cmd {
	if t.ctx.Err() != nil {
		return nil
	}
	shown := ref
	if n, err := docker.ParseImage(ref); err == nil {
		shown = n
	}
	t.seq++
	p := &pull{seq: t.seq, shown: termsafe.Line(shown), layer: map[string]docker.PullProgress{}}
	t.pulling, t.pullLine, t.pullLayers = p, "", nil
	ctx, svc, id := t.ctx, t.svc, t.id
	run := func() tea.Msg {
		err := svc.Pull(ctx, id, ref, p.step)
		return pullDoneMsg{tab: t, seq: p.seq, shown: p.shown, err: err}
	}
	return tea.Batch(run, t.tick(p.seq), dashboard.Status("pulling "+p.shown+"…", false))
}

func (t *Tab) tick(seq int) tea.Cmd {
	return tea.Tick(redraw, func(time.Time) tea.Msg { return pullTickMsg{tab: t, seq: seq} })
}

func (t *Tab) removeCmd(r row) tea.Cmd {
	if t.ctx.Err() != nil {
		return nil
	}
	parent := t.ctx
	return tea.Batch(dashboard.Status("removing "+r.shown+"…", false), func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, removeTimeout)
		defer cancel()
		return removedMsg{tab: t, shown: r.shown, err: t.svc.RemoveImage(ctx, t.id, r.ref)}
	})
}

// View draws the table, then the pull's progress, then the prompt or the question.
func (t *Tab) View(width, height int) string {
	if width <= 0 || height <= 0 {
		return ""
	}
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	if t.svc == nil {
		return t.st.Notice.Render(cut(" Images are not available on this server (no Docker Engine configured)."))
	}
	var bottom []string
	if t.pulling != nil {
		bottom = append(bottom, "")
		bottom = append(bottom, progressLines(t.st, t.pulling.shown, t.pullLine, t.pullLayers, width)...)
	}
	if t.building != nil {
		bottom = append(bottom, "", sifLine(t.st, t.building.shown, t.sifShown, width))
	}
	switch {
	case t.prompting:
		t.input.SetWidth(max(1, width-len(t.input.Prompt)-3))
		bottom = append(bottom, cut(" "+t.input.View()))
	case t.confirm != nil:
		bottom = append(bottom, t.st.Question("remove "+format.ShortImage(t.confirm.shown, width-14)+"?", width))
	case t.pullFail != "":
		bottom = append(bottom, "")
		for _, l := range wrap(" ✗ "+t.pullFail, width, maxFailLines) {
			bottom = append(bottom, t.st.Failed.Render(l))
		}
	}
	// The table keeps its header and two rows; the progress gives way (keeping its end).
	room := height - len(bottom)
	if room < 3 && len(bottom) > 0 {
		keep := max(0, min(len(bottom), height-3))
		bottom = bottom[len(bottom)-keep:]
		room = height - len(bottom)
	}
	var middle []string
	switch {
	case t.registry.on:
		middle = t.registryTable(width, room)
	case t.sifList.on:
		middle = t.sifTable(width, room)
	case t.loadErr != nil && len(t.rows) == 0:
		middle = []string{t.st.Failed.Render(cut(" " + termsafe.Line(t.loadErr.Error())))}
	case len(t.rows) == 0 && t.loading:
		middle = []string{t.st.Notice.Render(cut("  Loading images…"))}
	case len(t.rows) == 0:
		middle = []string{t.st.Notice.Render(cut("  No images yet. Press p to pull one."))}
	default:
		middle = t.table(width, room)
	}
	out := append(middle, bottom...)
	if len(out) > height {
		out = out[:height]
	}
	return strings.Join(out, "\n")
}

// table renders the header and the rows that fit in height, scrolled to the selection.
func (t *Tab) table(width, height int) []string {
	const idW, createdW, sizeW, usedW = 12, 10, 9, 11
	widths := []int{max(8, width-2-8-idW-createdW-sizeW-usedW), idW, createdW, sizeW, usedW}
	now := t.now()
	rows := make([][]string, len(t.rows))
	for i, r := range t.rows {
		created := "–"
		if !r.img.Created.IsZero() {
			created = format.Age(now.Sub(r.img.Created)) + " ago"
		}
		used := "–"
		if r.img.InUseByYou {
			used = "yes"
		}
		rows[i] = []string{format.ShortImage(r.shown, widths[0]), termsafe.Line(r.img.ID), created, format.Bytes(r.img.Size), used}
	}
	return t.grid(width, height, t.sel, widths, []string{"IMAGE", "ID", "CREATED", "SIZE", "USED BY YOU"}, rows)
}

// grid draws a table in at most height lines: the header, then the rows that fit, scrolled
// so that row sel shows, marked and highlighted. Cells are cut to their column's width; the
// last column is not padded. Cells must be neutralised already.
func (t *Tab) grid(width, height, sel int, widths []int, head []string, rows [][]string) []string {
	if height <= 0 {
		return nil
	}
	line := func(cells []string) string {
		var b strings.Builder
		for i, c := range cells {
			c = ansi.Truncate(c, widths[i], "…")
			if i > 0 {
				b.WriteString("  ")
			}
			b.WriteString(c)
			if i < len(cells)-1 {
				b.WriteString(strings.Repeat(" ", max(0, widths[i]-ansi.StringWidth(c))))
			}
		}
		return b.String()
	}
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	out := []string{t.st.ColumnHead.Render(cut(dashboard.NoMarker + line(head)))}
	n := height - 1
	first := 0
	if sel >= n && n > 0 {
		first = sel - n + 1
	}
	for i := first; i < len(rows) && i < first+n; i++ {
		if i == sel {
			out = append(out, t.st.SelectedRow(line(rows[i]), width))
			continue
		}
		out = append(out, cut(dashboard.NoMarker+line(rows[i])))
	}
	return out
}

// maxFailLines is how many lines the reason of a failed pull may take.
const maxFailLines = 4

// wrap breaks s into lines of at most width cells, at most n of them (the last cut).
func wrap(s string, width, n int) []string {
	if width <= 2 {
		return []string{ansi.Truncate(s, width, "…")}
	}
	lines := strings.Split(ansi.Wrap(s, width-2, ""), "\n")
	for i := range lines {
		if i > 0 {
			lines[i] = "   " + lines[i]
		}
	}
	if len(lines) > n {
		lines = lines[:n]
		lines[n-1] = ansi.Truncate(lines[n-1]+" …", width, "…")
	}
	for i := range lines {
		lines[i] = ansi.Truncate(lines[i], width, "…")
	}
	return lines
}

// progressLines are the pull's title and one line per layer: id, status, bar, current/total.
func progressLines(st dashboard.Styles, shown, line string, layers []docker.PullProgress, width int) []string {
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	title := " pulling " + shown
	if line != "" {
		title += ": " + termsafe.Line(line)
	}
	out := []string{st.Header.Render(cut(title))}
	const barW = 20
	for _, l := range layers {
		id := termsafe.Line(l.ID)
		if len(id) > 12 {
			id = id[:12]
		}
		s := fmt.Sprintf("  %-12s %-16s", id, ansi.Truncate(termsafe.Line(l.Status), 16, "…"))
		if l.Total > 0 {
			cur := max(0, min(l.Current, l.Total))
			fill := int(cur * barW / l.Total)
			s += " [" + strings.Repeat("█", fill) + strings.Repeat("░", barW-fill) + "] " +
				format.Bytes(cur) + "/" + format.Bytes(l.Total)
		}
		out = append(out, cut(s))
	}
	return out
}
