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

// SIFs makes SIF files of images (*docker.SIFService).
type SIFs interface {
	Build(ctx context.Context, id backend.Identity, ref string, progress func(docker.SIFProgress)) (docker.SIFFile, bool, error)
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
)

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
		if msg.err != nil {
			return dashboard.ErrorStatus(msg.err)
		}
		name := termsafe.Line(msg.file.Name)
		how := "made"
		if msg.cached {
			how = "ready"
		}
		return dashboard.Status(fmt.Sprintf("%s %s (%s); download: %s", name, how, format.Bytes(msg.file.Size),
			format.SCPDownload(t.prefix, "/sif/"+name)), false)
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
	}
	return nil
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
	switch {
	case msg.String() == "esc" || key.Matches(msg, t.regKey):
		r.on = false
	case key.Matches(msg, t.up):
		r.sel = max(0, r.sel-1)
	case key.Matches(msg, t.down):
		r.sel = max(0, min(r.sel+1, len(r.rows)-1))
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
	title := t.st.Header.Render(cut(" My registry: your GitLab projects' images (m/esc: back to the server's images)"))
	switch {
	case r.err != nil:
		return []string{title, t.st.Failed.Render(cut(" " + termsafe.Line(r.err.Error())))}
	case len(r.rows) == 0 && r.loading:
		return []string{title, t.st.Notice.Render(cut("  Asking GitLab…"))}
	case len(r.rows) == 0:
		return []string{title, t.st.Notice.Render(cut("  No images in the registries of your GitLab projects."))}
	}
	const tagW, onW = 16, 9
	projW := max(8, min(28, (width-tagW-onW-8)/3))
	locW := max(8, width-2-projW-tagW-onW-6)
	cell := func(s string, w int) string {
		s = ansi.Truncate(s, w, "…")
		return s + strings.Repeat(" ", max(0, w-ansi.StringWidth(s)))
	}
	line := func(p, tag, loc, on string) string {
		return "  " + cell(p, projW) + "  " + cell(tag, tagW) + "  " + cell(loc, locW) + "  " + ansi.Truncate(on, onW, "…")
	}
	out := []string{title, t.st.ColumnHead.Render(cut(line("PROJECT", "TAG", "LOCATION", "ON SERVER")))}
	n := height - 2
	first := 0
	if r.sel >= n && n > 0 {
		first = r.sel - n + 1
	}
	for i := first; i < len(r.rows) && i < first+n; i++ {
		row := r.rows[i]
		on := "–"
		if t.onServer(row.ref) {
			on = "yes"
		}
		l := cut(line(row.project, row.tag, row.location, on))
		if i == r.sel {
			l = t.st.Selected.Render(l + strings.Repeat(" ", max(0, width-ansi.StringWidth(l))))
		}
		out = append(out, l)
	}
	return out
}
