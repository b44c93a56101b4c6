package images

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/gitlab"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// SIFs makes, lists and removes the user's SIF files (*docker.SIFService).
type SIFs interface {
	Build(ctx context.Context, id backend.Identity, ref string, progress func(docker.SIFProgress)) (docker.SIFFile, bool, error)
	List(ctx context.Context, id backend.Identity) ([]docker.SIFFile, error)
	Remove(ctx context.Context, id backend.Identity, name string) error
	Quota() int64
}

// Registry lists a user's own GitLab container registry (*gitlab.Client).
type Registry interface {
	UserRegistry(ctx context.Context, username string) ([]gitlab.RegistryRepository, error)
}

var (
	_ SIFs     = (*docker.SIFService)(nil)
	_ Registry = (*gitlab.Client)(nil)
)

type (
	sifTickMsg struct {
		tab *Tab
		seq int
	}
	sifDoneMsg struct {
		tab    *Tab
		seq    int
		shown  string
		file   docker.SIFFile
		cached bool
		err    error
	}
	registryMsg struct {
		tab   *Tab
		repos []gitlab.RegistryRepository
		err   error
	}
	sifListMsg struct {
		tab   *Tab
		files []docker.SIFFile
		err   error
	}
	sifRemovedMsg struct {
		tab  *Tab
		name string
		err  error
	}
)

// sifView is the "My SIF files" view.
type sifView struct {
	on      bool
	loading bool
	err     error
	files   []docker.SIFFile
	sel     int
	confirm string // the file asked about, "" when no question is open
}

// sifBuild is the one SIF build in flight; the build writes its progress under mu.
type sifBuild struct {
	seq   int
	shown string
	mu    sync.Mutex
	last  docker.SIFProgress
}

func (b *sifBuild) step(p docker.SIFProgress) {
	b.mu.Lock()
	b.last = p
	b.mu.Unlock()
}

func (b *sifBuild) progress() docker.SIFProgress {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.last
}

// registryView is the "My registry" view: one row per tag of the user's repositories.
type registryView struct {
	on      bool
	loading bool
	err     error
	rows    []regRow
	sel     int
}

type regRow struct {
	project, tag, location string // neutralised for display
	ref                    string // what Pull gets
}

// updateExtra handles the SIF and registry messages.
func (t *Tab) updateExtra(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case sifTickMsg:
		b := t.building
		if msg.tab != t || b == nil || b.seq != msg.seq || t.ctx.Err() != nil {
			return nil
		}
		t.sifShown = b.progress()
		return t.sifTick(b.seq)
	case sifDoneMsg:
		if msg.tab != t || t.ctx.Err() != nil {
			return nil
		}
		if t.building != nil && t.building.seq == msg.seq {
			t.building, t.sifShown = nil, docker.SIFProgress{}
		}
		var reload tea.Cmd
		if t.sifList.on {
			reload = t.loadSIFs()
		}
		if msg.err != nil {
			return tea.Batch(dashboard.ErrorStatus(msg.err), reload)
		}
		name := termsafe.Line(msg.file.Name)
		how := "made"
		if msg.cached {
			how = "ready"
		}
		return tea.Batch(dashboard.Status(fmt.Sprintf("%s %s (%s); download: %s", name, how, format.Bytes(msg.file.Size),
			format.SCPDownload(t.prefix, "/sif/"+name)), false), reload)
	case registryMsg:
		if msg.tab != t || t.ctx.Err() != nil {
			return nil
		}
		r := &t.registry
		r.loading = false
		r.err = nil
		if msg.err != nil {
			r.err = gitlab.UserError(msg.err)
			return nil
		}
		r.rows = r.rows[:0]
		for _, repo := range msg.repos {
			for _, tag := range repo.Tags {
				r.rows = append(r.rows, regRow{project: termsafe.Line(repo.Project), tag: termsafe.Line(tag.Name),
					location: termsafe.Line(tag.Location), ref: tag.Location})
			}
		}
		r.sel = max(0, min(r.sel, len(r.rows)-1))
	case sifListMsg:
		if msg.tab != t || t.ctx.Err() != nil {
			return nil
		}
		v := &t.sifList
		v.loading, v.err = false, msg.err
		if msg.err == nil {
			v.files = msg.files
			v.sel = max(0, min(v.sel, len(v.files)-1))
		}
	case sifRemovedMsg:
		if msg.tab != t || t.ctx.Err() != nil {
			return nil
		}
		if msg.err != nil {
			return tea.Batch(dashboard.ErrorStatus(msg.err), t.loadSIFs())
		}
		return tea.Batch(dashboard.Status("removed "+termsafe.Line(msg.name), false), t.loadSIFs())
	}
	return nil
}

func (t *Tab) loadSIFs() tea.Cmd {
	if t.ctx.Err() != nil {
		return nil
	}
	t.sifList.loading = true
	parent, sifs, id := t.ctx, t.sifs, t.id
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, loadTimeout)
		defer cancel()
		files, err := sifs.List(ctx, id)
		return sifListMsg{tab: t, files: files, err: err}
	}
}

func (t *Tab) sifListKey(msg tea.KeyPressMsg) tea.Cmd {
	v := &t.sifList
	if v.confirm != "" {
		name := v.confirm
		v.confirm = ""
		if !key.Matches(msg, t.confirmKeys.Yes) {
			return dashboard.Status("kept "+termsafe.Line(name), false)
		}
		parent, sifs, id := t.ctx, t.sifs, t.id
		return func() tea.Msg {
			ctx, cancel := context.WithTimeout(parent, removeTimeout)
			defer cancel()
			return sifRemovedMsg{tab: t, name: name, err: sifs.Remove(ctx, id, name)}
		}
	}
	if sel, ok := t.move(msg, v.sel, len(v.files)); ok {
		v.sel = sel
		return nil
	}
	switch {
	case msg.String() == "esc" || key.Matches(msg, t.viewSIFs):
		v.on = false
	case key.Matches(msg, t.reload):
		return t.loadSIFs()
	case key.Matches(msg, t.remove):
		if v.sel < len(v.files) {
			v.confirm = v.files[v.sel].Name
		}
	}
	return nil
}

// sifTable renders the SIF files view in height lines: the files, then the quota used and
// how to download the selected one.
func (t *Tab) sifTable(width, height int) []string {
	if height <= 0 {
		return nil
	}
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	v := &t.sifList
	title := t.st.Header.Render(cut(" My SIF files · v/esc: back to all images"))
	var used int64
	for _, f := range v.files {
		used += f.Size
	}
	var foot []string
	switch {
	case v.confirm != "":
		foot = []string{t.st.Question("remove "+termsafe.Line(v.confirm)+"?", width)}
	case v.sel < len(v.files):
		foot = []string{t.st.Dim.Render(cut(fmt.Sprintf(" %s of %s used · download: %s", format.Bytes(used), format.Bytes(t.sifs.Quota()),
			format.SCPDownload(t.prefix, "/sif/"+termsafe.Line(v.files[v.sel].Name)))))}
	}
	if l := t.placeholder(width, v.err, v.loading, len(v.files), "Loading…", "No SIF files yet. Press f on an image to make one."); l != "" {
		return []string{title, l}
	}
	const sizeW, createdW = 9, 10
	nameW := max(8, (width-sizeW-createdW-8)/2)
	widths := []int{nameW, max(8, width-2-nameW-sizeW-createdW-6), sizeW, createdW}
	now := t.now()
	rows := make([][]string, len(v.files))
	for i, f := range v.files {
		created := "–"
		if !f.Created.IsZero() {
			created = format.Age(now.Sub(f.Created)) + " ago"
		}
		img := termsafe.Line(f.Image)
		if img == "" {
			img = "–"
		}
		rows[i] = []string{termsafe.Line(f.Name), img, format.Bytes(f.Size), created}
	}
	out := append([]string{title}, t.grid(width, height-1-len(foot), v.sel, widths, []string{"NAME", "IMAGE", "SIZE", "CREATED"}, rows)...)
	return append(out, foot...)
}

// startSIF makes a SIF of the selected tag in a command, under the tab's context: leaving
// the tab does not stop it, closing the session does.
func (t *Tab) startSIF() tea.Cmd {
	if t.ctx.Err() != nil || t.sel >= len(t.rows) {
		return nil
	}
	if t.building != nil {
		return dashboard.Status("already making a SIF of "+t.building.shown+"; one at a time", false)
	}
	r := t.rows[t.sel]
	if len(r.img.Tags) == 0 {
		return dashboard.Status("choose a tagged image to make a SIF of", true)
	}
	t.seq++
	b := &sifBuild{seq: t.seq, shown: r.shown}
	t.building, t.sifShown = b, docker.SIFProgress{}
	ctx, sifs, id, ref := t.ctx, t.sifs, t.id, r.ref
	run := func() tea.Msg {
		f, cached, err := sifs.Build(ctx, id, ref, b.step)
		return sifDoneMsg{tab: t, seq: b.seq, shown: b.shown, file: f, cached: cached, err: err}
	}
	return tea.Batch(run, t.sifTick(b.seq), dashboard.Status("making a SIF of "+b.shown+"…", false))
}

func (t *Tab) sifTick(seq int) tea.Cmd {
	return tea.Tick(redraw, func(time.Time) tea.Msg { return sifTickMsg{tab: t, seq: seq} })
}

// sifLine is the build's one line of progress: phase, bar, bytes.
func sifLine(st dashboard.Styles, shown string, p docker.SIFProgress, width int) string {
	s := " SIF of " + shown + ": "
	switch p.Phase {
	case "":
		s += "starting"
	case "queued":
		s += fmt.Sprintf("waiting for a free build slot (%d in line)", p.Position)
	case "exporting":
		s += "exporting"
		if p.Total > 0 {
			const barW = 20
			fill := int(min(p.Done, p.Total) * barW / p.Total)
			s += " [" + strings.Repeat("█", fill) + strings.Repeat("░", barW-fill) + "] " +
				format.Bytes(p.Done) + " of about " + format.Bytes(p.Total)
		}
	case "writing":
		s += "writing the SIF file"
	default:
		s += termsafe.Line(p.Phase)
	}
	return st.Header.Render(ansi.Truncate(s, width, "…"))
}

// openRegistry switches to the registry view and loads it.
func (t *Tab) openRegistry() tea.Cmd {
	t.registry.on = true
	return t.loadRegistry()
}

func (t *Tab) loadRegistry() tea.Cmd {
	if t.ctx.Err() != nil {
		return nil
	}
	t.registry.loading = true
	parent, reg, user := t.ctx, t.reg, t.id.User
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(parent, loadTimeout)
		defer cancel()
		repos, err := reg.UserRegistry(ctx, user)
		return registryMsg{tab: t, repos: repos, err: err}
	}
}

func (t *Tab) registryKey(msg tea.KeyPressMsg) tea.Cmd {
	r := &t.registry
	if sel, ok := t.move(msg, r.sel, len(r.rows)); ok {
		r.sel = sel
		return nil
	}
	switch {
	case msg.String() == "esc" || key.Matches(msg, t.regKey):
		r.on = false
	case key.Matches(msg, t.reload):
		return t.loadRegistry()
	case key.Matches(msg, t.pullSel):
		if r.sel >= len(r.rows) {
			return nil
		}
		if t.pulling != nil {
			return dashboard.Status("already pulling "+t.pulling.shown, false)
		}
		return t.startPull(r.rows[r.sel].ref)
	}
	return nil
}

// onServer reports whether the tag ref is among the server's images.
func (t *Tab) onServer(ref string) bool {
	want, err := docker.ParseImage(ref)
	if err != nil {
		return false
	}
	for _, r := range t.rows {
		if r.ref == want {
			return true
		}
	}
	return false
}

// registryTable renders the registry view in height lines.
func (t *Tab) registryTable(width, height int) []string {
	if height <= 0 {
		return nil
	}
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	r := &t.registry
	title := t.st.Header.Render(cut(" My registry: your GitLab projects' images · m/esc: back to all images"))
	if l := t.placeholder(width, r.err, r.loading, len(r.rows), "Asking GitLab…", "No images in the registries of your GitLab projects."); l != "" {
		return []string{title, l}
	}
	const tagW, onW = 16, 9
	projW := max(8, min(28, (width-tagW-onW-8)/3))
	widths := []int{projW, tagW, max(8, width-2-projW-tagW-onW-6), onW}
	rows := make([][]string, len(r.rows))
	for i, row := range r.rows {
		on := "–"
		if t.onServer(row.ref) {
			on = "yes"
		}
		rows[i] = []string{row.project, row.tag, row.location, on}
	}
	out := append([]string{title}, t.grid(width, height-1, r.sel, widths, []string{"PROJECT", "TAG", "LOCATION", "ON SERVER"}, rows)...)
	return out
}

// placeholder is the line a view shows instead of its n rows: its error, that it is
// loading, or that it is empty; "" when there are rows to show.
func (t *Tab) placeholder(width int, err error, loading bool, n int, loadingText, emptyText string) string {
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	switch {
	case err != nil:
		return t.st.Failed.Render(cut(" " + termsafe.Line(err.Error())))
	case n == 0 && loading:
		return t.st.Notice.Render(cut("  " + loadingText))
	case n == 0:
		return t.st.Notice.Render(cut("  " + emptyText))
	}
	return ""
}
