package containers

import (
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend/docker"
	"whalemountain/tui/dashboard"
)

var t0 = time.Date(2026, 5, 7, 12, 0, 0, 0, time.UTC)

const gib = int64(1) << 30

func plain(s string) string { return ansi.Strip(s) }

func running(owner, name, image string, up time.Duration) docker.Container {
	return docker.Container{Owner: owner, Name: name, Image: image, State: "running", StartedAt: t0.Add(-up), ID: owner + "-" + name}
}

func TestRowCells(t *testing.T) {
	withStats := running("alice", "jupyter", "registry/alice/ml:latest", 2*time.Hour+13*time.Minute)
	withStats.CPUPercent, withStats.MemUsage, withStats.MemLimit, withStats.StatsAt = 12.3, 3*gib+gib/10, 8*gib, t0
	withStats.GPUs = "0"
	small := running("alice", "thesis", "ubuntu:24.04", 5*24*time.Hour)
	small.MemUsage, small.MemLimit, small.StatsAt = 210<<20, 2*gib, t0

	cases := []struct {
		name   string
		c      docker.Container
		owners bool
		want   []string
	}{
		{"running with usage", withStats, false,
			[]string{"jupyter", "registry/alice/ml:latest", "running", "2h13m", "12%", "3.1/8.0 GiB", "0"}},
		{"units differ", small, false,
			[]string{"thesis", "ubuntu:24.04", "running", "5d", "0%", "210 MiB/2.0 GiB", "–"}},
		{"running, not sampled", running("alice", "web", "busybox", 45*time.Second), false,
			[]string{"web", "busybox", "running", "45s", "–", "–", "–"}},
		{"exited", docker.Container{Owner: "alice", Name: "old-lab", Image: "python:3.12", State: "exited", ExitCode: 137}, false,
			[]string{"old-lab", "python:3.12", "exited(137)", "–", "–", "–", "–"}},
		{"created", docker.Container{Owner: "alice", Name: "new", Image: "x", State: "created"}, false,
			[]string{"new", "x", "created", "–", "–", "–", "–"}},
		{"owner first for TAs", docker.Container{Owner: "bob", Name: "b", Image: "x", State: "dead"}, true,
			[]string{"bob", "b", "x", "dead", "–", "–", "–", "–"}},
		{"escapes neutralised", docker.Container{Owner: "e\x1b]0;x\a", Name: "n\x1b[2J", Image: "i\r", State: "exited", GPUs: "0\x1b[2J"}, true,
			[]string{`e\x1b]0;x\x07`, `n\x1b[2J`, `i\x0d`, "exited(0)", "–", "–", "–", `0\x1b[2J`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := rowCells(c.c, t0, c.owners)
			if strings.Join(got, "|") != strings.Join(c.want, "|") {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
		})
	}
}

func TestMemCell(t *testing.T) {
	cases := []struct {
		usage, limit int64
		want         string
	}{
		{3 * gib, 8 * gib, "3.0/8.0 GiB"},
		{210 << 20, 8 * gib, "210 MiB/8.0 GiB"},
		{512, 0, "512 B"},
		{100 << 20, 512 << 20, "100/512 MiB"},
	}
	for _, c := range cases {
		if got := memCell(c.usage, c.limit); got != c.want {
			t.Errorf("memCell(%d, %d) = %q, want %q", c.usage, c.limit, got, c.want)
		}
	}
}

func TestStateKinds(t *testing.T) {
	st := testStyles()
	cases := []struct {
		state string
		kind  stateKind
		style lipgloss.Style
	}{
		{"running", kindRunning, st.Running},
		{"exited", kindStopped, st.Stopped},
		{"created", kindStopped, st.Stopped},
		{"paused", kindStopped, st.Stopped},
		{"dead", kindFailed, st.Failed},
		{"restarting", kindFailed, st.Failed},
		{"", kindFailed, st.Failed},
	}
	for _, c := range cases {
		if got := kindOf(c.state); got != c.kind {
			t.Errorf("kindOf(%q) = %v, want %v", c.state, got, c.kind)
		}
	}
	// Each state is drawn as its word, in its colour.
	for _, c := range cases[:5] {
		ct := docker.Container{Owner: "alice", Name: "x", Image: "i", State: c.state, ExitCode: 3}
		cols := columns(false)
		cells := rowCells(ct, t0, false)
		widths := layoutWidths(cols, [][]string{cells}, 80)
		row := renderRow(st, cols, cells, widths, rowLook{}, 80)
		word := cells[colState]
		if !strings.Contains(plain(row), word) {
			t.Errorf("%s: row %q lacks the word %q", c.state, plain(row), word)
		}
		if want := c.style.Render(fitCell(word, widths[colState], cols[colState])); !strings.Contains(row, want) {
			t.Errorf("%s: state not in its colour: %q", c.state, row)
		}
	}
}

// testStyles are the dashboard's styles; lipgloss renders them in full colour.
func testStyles() dashboard.Styles { return dashboard.DefaultStyles() }

func manyContainers(owners ...string) []docker.Container {
	var out []docker.Container
	for i, o := range owners {
		c := running(o, fmt.Sprintf("container-with-a-long-name-%d", i),
			fmt.Sprintf("registry.gitlab.example.org/group/project/image-%d:v1.2.3", i), time.Duration(i+1)*time.Hour)
		c.CPUPercent, c.MemUsage, c.MemLimit, c.StatsAt = 100, 210<<20, 16*gib, t0
		out = append(out, c)
	}
	out = append(out, docker.Container{Owner: "zed", Name: "x", Image: "busybox", State: "exited", ExitCode: 137})
	return out
}

func TestTableFitsWidth(t *testing.T) {
	st := testStyles()
	for _, owners := range []bool{false, true} {
		for _, width := range []int{40, 60, 80, 100, 160} {
			tv := tableView{list: manyContainers("alice", "bob", "carol"), owners: owners, me: "alice", selected: 1, now: t0}
			lines := renderTable(st, tv, width, 20)
			if len(lines) != 5 {
				t.Fatalf("owners=%v width=%d: %d lines, want header and 4 rows", owners, width, len(lines))
			}
			for _, l := range lines {
				if w := ansi.StringWidth(l); w > width {
					t.Errorf("owners=%v width=%d: line of %d cells: %q", owners, width, w, plain(l))
				}
			}
		}
	}
}

func TestTableAt80ShrinksImageFirst(t *testing.T) {
	st := testStyles()
	list := []docker.Container{
		running("alice", "jupyter", "registry.gitlab.example.org/group/project/ml-notebook:latest", time.Hour),
		running("alice", "thesis", "ubuntu:24.04", time.Hour),
	}
	lines := renderTable(st, tableView{list: list, now: t0}, 80, 10)
	head := plain(lines[0])
	for _, col := range []string{"NAME", "IMAGE", "STATE", "UP", "CPU", "MEM", "GPU"} {
		if !strings.Contains(head, col) {
			t.Errorf("header %q lacks %s", head, col)
		}
	}
	if strings.Contains(head, "OWNER") {
		t.Errorf("students get no OWNER column: %q", head)
	}
	row := plain(lines[1])
	if !strings.Contains(row, "jupyter") || !strings.Contains(row, "running") {
		t.Errorf("row lost name or state: %q", row)
	}
	// The image keeps its end (the tag) and is cut at the front.
	if !strings.Contains(row, "…") || !strings.Contains(row, "notebook:latest") {
		t.Errorf("image not cut at the front: %q", row)
	}
	// Nothing needed cutting at the end of the line.
	if strings.HasSuffix(strings.TrimRight(row, " "), "…") {
		t.Errorf("line cut at the end: %q", row)
	}
	// Wider: the image shows whole.
	lines = renderTable(st, tableView{list: list, now: t0}, 140, 10)
	if !strings.Contains(plain(lines[1]), "registry.gitlab.example.org/group/project/ml-notebook:latest") {
		t.Errorf("140 columns: image still cut: %q", plain(lines[1]))
	}
}

func TestTAOwnerColumn(t *testing.T) {
	st := testStyles()
	list := []docker.Container{running("alice", "a1", "busybox", time.Hour), running("bob", "b1", "busybox", time.Hour)}
	lines := renderTable(st, tableView{list: list, owners: true, me: "tina", now: t0}, 80, 10)
	if h := strings.Fields(plain(lines[0])); h[0] != "OWNER" || h[1] != "NAME" {
		t.Errorf("TA header = %q, want OWNER first", h)
	}
	for i, owner := range []string{"alice", "bob"} {
		if f := strings.Fields(strings.TrimPrefix(plain(lines[i+1]), "▸")); len(f) < 2 || f[0] != owner {
			t.Errorf("row %d = %q, want owner %s first", i, plain(lines[i+1]), owner)
		}
	}
}

func TestSelectedAndDimRows(t *testing.T) {
	st := testStyles()
	list := []docker.Container{running("alice", "a1", "busybox", time.Hour), running("alice", "a2", "busybox", time.Hour)}
	lines := renderTable(st, tableView{list: list, selected: 1, now: t0}, 80, 10)
	if !strings.HasPrefix(plain(lines[2]), "▸ a2") || strings.Contains(plain(lines[1]), "▸") {
		t.Errorf("selection marker: %q / %q", plain(lines[1]), plain(lines[2]))
	}
	if lines[2] != st.Selected.Render(plain(lines[2])) {
		t.Errorf("selected row not highlighted: %q", lines[2])
	}
	if w := ansi.StringWidth(lines[2]); w != 80 {
		t.Errorf("selected bar is %d cells, want the full 80", w)
	}
	dim := renderTable(st, tableView{list: list, selected: 0, dim: true, now: t0}, 80, 10)
	if dim[2] != st.Dim.Render(plain(dim[2])) {
		t.Errorf("row not greyed while Docker is unreachable: %q", dim[2])
	}
	if !strings.Contains(plain(dim[2]), "running") {
		t.Errorf("greyed row lost its state word: %q", plain(dim[2]))
	}
	busy := renderTable(st, tableView{list: list, busy: map[string]string{"alice/a2": "stopping…"}, now: t0}, 80, 10)
	if !strings.Contains(plain(busy[2]), "stopping…") {
		t.Errorf("busy row: %q", plain(busy[2]))
	}
}

func TestScrollKeepsSelectionVisible(t *testing.T) {
	var list []docker.Container
	for i := range 30 {
		list = append(list, running("alice", fmt.Sprintf("c%02d", i), "busybox", time.Hour))
	}
	st := testStyles()
	for _, sel := range []int{0, 5, 9, 10, 29} {
		lines := renderTable(st, tableView{list: list, selected: sel, now: t0}, 80, 11)
		if len(lines) != 11 {
			t.Fatalf("sel %d: %d lines", sel, len(lines))
		}
		want := fmt.Sprintf("▸ c%02d", sel)
		if !strings.Contains(plain(strings.Join(lines, "\n")), want) {
			t.Errorf("sel %d: %q not shown", sel, want)
		}
	}
	cases := []struct{ sel, n, visible, want int }{
		{0, 30, 10, 0}, {9, 30, 10, 0}, {10, 30, 10, 1}, {29, 30, 10, 20}, {3, 2, 10, 0}, {5, 30, 0, 0},
	}
	for _, c := range cases {
		if got := scrollOffset(c.sel, c.n, c.visible); got != c.want {
			t.Errorf("scrollOffset(%d, %d, %d) = %d, want %d", c.sel, c.n, c.visible, got, c.want)
		}
	}
}

func TestFilterMatching(t *testing.T) {
	c := docker.Container{Owner: "alice", Name: "jupyter", Image: "registry/alice/ML:latest"}
	cases := []struct {
		filter string
		want   bool
	}{
		{"", true},
		{"  ", true},
		{"jup", true},
		{"JUP", true},
		{"ml:lat", true},
		{"alice", true},
		{"bob", false},
		{"jupyter2", false},
	}
	for _, k := range cases {
		if got := matches(c, k.filter); got != k.want {
			t.Errorf("matches(%q) = %v, want %v", k.filter, got, k.want)
		}
	}
	list := []docker.Container{c, {Owner: "bob", Name: "train", Image: "pytorch"}}
	if got := filterList(list, "bob"); len(got) != 1 || got[0].Name != "train" {
		t.Errorf("filter by owner: %v", got)
	}
	if got := filterList(list, "torch"); len(got) != 1 || got[0].Name != "train" {
		t.Errorf("filter by image: %v", got)
	}
}

func TestUnreachableLine(t *testing.T) {
	st := testStyles()
	got := plain(unreachableLine(st, "cannot connect to the Docker daemon", 120))
	want := " Docker unreachable: cannot connect to the Docker daemon — showing the last known list"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if w := ansi.StringWidth(unreachableLine(st, strings.Repeat("x", 200), 80)); w > 80 {
		t.Errorf("line of %d cells", w)
	}
	if got := plain(unreachableLine(st, "bad\x1b[2J", 200)); !strings.Contains(got, `bad\x1b[2J`) {
		t.Errorf("reason not neutralised: %q", got)
	}
}

func TestRenderDetails(t *testing.T) {
	st := testStyles()
	live := docker.Container{Owner: "alice", Name: "box", Image: "busybox:latest", State: "exited", ExitCode: 3,
		StartedAt: t0.Add(-2 * time.Hour), CPUs: 1.5, MemLimit: 2 * gib, GPUs: "0,2"}
	d := &docker.Details{Container: live, Home: "/home/alice", PidsLimit: 512, Cmd: []string{"sh", "-c", "echo hi; exit 3"},
		FinishedAt: t0.Add(-time.Hour)}
	d.State = "running" // stale: the live state wins
	lines := renderDetails(st, detailsView{title: "alice/box", live: live, details: d, now: t0}, 80)
	text := plain(strings.Join(lines, "\n"))
	for _, want := range []string{
		"─ alice/box ─", "home /home/alice (persistent)", "home /home/alice (persistent) · GPU 0,2 · limits 1.5 CPUs, 2.0 GiB",
		"state exited(3)", "exit code 3", "started 2h ago", "exited 1h ago", "image busybox:latest",
		"command sh -c 'echo hi; exit 3'",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("details lack %q:\n%s", want, text)
		}
	}
	for _, l := range lines {
		if w := ansi.StringWidth(l); w > 80 {
			t.Errorf("line of %d cells: %q", w, plain(l))
		}
	}
	loading := plain(strings.Join(renderDetails(st, detailsView{live: live, loading: true, now: t0}, 80), "\n"))
	if !strings.Contains(loading, "loading") {
		t.Errorf("no loading note: %q", loading)
	}
	failed := plain(strings.Join(renderDetails(st, detailsView{live: live, err: "no such container: x\x1b[2J", now: t0}, 80), "\n"))
	if !strings.Contains(failed, `✗ no such container: x\x1b[2J`) {
		t.Errorf("error not shown safely: %q", failed)
	}
}

func TestSplitCommand(t *testing.T) {
	cases := []struct {
		in      string
		want    []string
		wantErr bool
	}{
		{"sleep 3600", []string{"sleep", "3600"}, false},
		{`sh -c "echo hi; sleep 1"`, []string{"sh", "-c", "echo hi; sleep 1"}, false},
		{`sh -c 'echo "x" $HOME'`, []string{"sh", "-c", `echo "x" $HOME`}, false},
		{`echo a\ b "c\"d" "e\f"`, []string{"echo", "a b", `c"d`, `e\f`}, false},
		{`  spaced   out  `, []string{"spaced", "out"}, false},
		{`echo ""`, []string{"echo", ""}, false},
		{`echo "open`, nil, true},
		{`echo 'open`, nil, true},
		{`echo \`, nil, true},
	}
	for _, c := range cases {
		got, err := splitCommand(c.in)
		if (err != nil) != c.wantErr {
			t.Errorf("splitCommand(%q) error = %v", c.in, err)
			continue
		}
		if !c.wantErr && strings.Join(got, "\x00") != strings.Join(c.want, "\x00") {
			t.Errorf("splitCommand(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestParseLimits(t *testing.T) {
	for _, c := range []struct {
		in   string
		want float64
		err  string
	}{
		{"2", 2, ""}, {"0.5", 0.5, ""}, {"3", 0, "at most 2 CPUs"}, {"x", 0, "not a number"}, {"0", 0, "at least"}, {"NaN", 0, "not a number"},
	} {
		got, err := parseCPUs(c.in, 2)
		if c.err == "" && (err != nil || got != c.want) || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("parseCPUs(%q) = %v, %v", c.in, got, err)
		}
	}
	for _, c := range []struct {
		in   string
		want int64
		err  string
	}{
		{"512m", 512 << 20, ""}, {"2g", 2 * gib, ""}, {"5g", 0, "at most 4.0 GiB"}, {"lots", 0, "not a size"}, {"1k", 0, "at least"},
	} {
		got, err := parseMemory(c.in, 4*gib)
		if c.err == "" && (err != nil || got != c.want) || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("parseMemory(%q) = %v, %v", c.in, got, err)
		}
	}
}

func TestQuotaText(t *testing.T) {
	q := docker.Quota{MaxContainers: 5, MaxRunning: 3, MaxCPUs: 2, MaxMemory: 4 * gib}
	want := "quota: 2 of 5 containers, 1 of 3 running · up to 2 CPUs and 4.0 GiB each"
	if got := quotaText(q, 2, 1); got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

func TestFormGPUsField(t *testing.T) {
	cases := []struct {
		in      string
		want    string
		wantErr bool
	}{
		{"", "", false},
		{"1", "1", false},
		{"0,2", "0,2", false},
		{"all", "", true},
		{"0,0", "", true},
	}
	for _, c := range cases {
		f := newForm(formLimits{defaultCPUs: 1, maxCPUs: 2, defaultMem: 1 << 30, maxMem: 4 << 30})
		f.setPresets(nil)
		f.inputs[fImage].SetValue("busybox")
		f.inputs[fGPUs].SetValue(c.in)
		spec, errs := f.parse()
		if (errs[fGPUs] != "") != c.wantErr || spec.GPUs != c.want {
			t.Errorf("GPUs %q: spec %q, error %q", c.in, spec.GPUs, errs[fGPUs])
		}
	}
}

func TestOwnerFilter(t *testing.T) {
	list := []docker.Container{running("ann", "a", "img", time.Hour), running("joann", "b", "ann/img", time.Hour)}
	if got := filterList(list, "owner:Ann"); len(got) != 1 || got[0].Owner != "ann" {
		t.Errorf("owner:Ann keeps %v", got)
	}
	if got := filterList(list, "ann"); len(got) != 2 {
		t.Errorf("ann keeps %d", len(got))
	}
}

func TestPresetFormFits(t *testing.T) {
	presets := []docker.Preset{
		{Name: "lab1", Description: "a very long description \x1b[31mred\x1b[0m " + strings.Repeat("word ", 40), Image: "python:3.12", CPUs: 2, Memory: 4 << 30},
		{Name: "os", Image: "ubuntu:24.04"},
	}
	lim := formLimits{defaultCPUs: 1, maxCPUs: 2, defaultMem: 1 << 30, maxMem: 4 << 30}
	for _, size := range [][2]int{{80, 24}, {200, 60}, {40, 10}} {
		for _, chosen := range []bool{false, true} {
			f := newForm(lim)
			f.setPresets(presets)
			if chosen {
				f.pickKey(tea.KeyPressMsg{Code: tea.KeyEnter})
			}
			f.resize(size[0])
			lines := renderForm(testStyles(), f, "quota: 1 of 5 containers", size[0])
			if len(lines) > size[1] {
				t.Errorf("%dx%d chosen %v: %d lines", size[0], size[1], chosen, len(lines))
			}
			for _, l := range lines {
				if w := ansi.StringWidth(l); w > size[0] {
					t.Errorf("%dx%d chosen %v: line %d cells wide: %q", size[0], size[1], chosen, w, ansi.Strip(l))
				}
				if strings.Contains(ansi.Strip(l), "\x1b") {
					t.Errorf("an escape from a preset reached the screen: %q", l)
				}
			}
		}
	}
}
