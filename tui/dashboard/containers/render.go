package containers

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend/docker"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Presentation: pure functions from containers to cells and lines, no state, no I/O.

// column is one column of the table.
type column struct {
	title string
	min   int  // never shrunk below this (the line is cut instead)
	right bool // right-aligned (numbers)
	left  bool // an image: shortened keeping its own name and tag (format.ShortImage)
}

// Column indexes of the cells rowCells returns (with the owner column, shift by one).
const (
	colName = iota
	colImage
	colState
	colUp
	colCPU
	colMem
	colGPU
)

var baseColumns = []column{
	colName:  {title: "NAME", min: 6},
	colImage: {title: "IMAGE", min: 8, left: true},
	colState: {title: "STATE", min: 7},
	colUp:    {title: "UP", min: 2},
	colCPU:   {title: "CPU", min: 3, right: true},
	colMem:   {title: "MEM", min: 3},
	colGPU:   {title: "GPU", min: 3},
}

var ownerColumn = column{title: "OWNER", min: 5}

const (
	gap    = "  " // between columns
	marker = dashboard.Marker
	nomark = dashboard.NoMarker
)

// columns returns the table's columns: OWNER first for TAs.
func columns(owners bool) []column {
	if !owners {
		return baseColumns
	}
	return append([]column{ownerColumn}, baseColumns...)
}

// rowCells is one container as plain, neutralised cells: [owner,] name, image, state, up, CPU,
// memory, GPUs. Usage shows only while it is sampled; a stopped container has none.
func rowCells(c docker.Container, now time.Time, owners bool) []string {
	up, cpu, mem := "–", "–", "–"
	if c.State == "running" {
		if !c.StartedAt.IsZero() {
			up = format.Age(now.Sub(c.StartedAt))
		}
		if !c.StatsAt.IsZero() {
			cpu = format.Percent(c.CPUPercent)
			mem = memCell(c.MemUsage, c.MemLimit)
		}
	}
	gpus := "–"
	if c.GPUs != "" {
		gpus = termsafe.Line(c.GPUs)
	}
	cells := []string{termsafe.Line(c.Name), termsafe.Line(c.Image), stateText(c), up, cpu, mem, gpus}
	if owners {
		cells = append([]string{termsafe.Line(c.Owner)}, cells...)
	}
	return cells
}

// stateText is the word for c's state: "running", "stopped" when the server stopped it on
// purpose, "exited(3)" when it ended by itself.
func stateText(c docker.Container) string {
	return termsafe.Line(format.ContainerState(c.State, c.ExitCode, c.Stopped != nil))
}

// memCell is usage and limit in few cells: "3.1/8.0 GiB" when both share a unit,
// "210 MiB/8.0 GiB" otherwise, just the usage without a limit.
func memCell(usage, limit int64) string {
	u := format.Bytes(usage)
	if limit <= 0 {
		return u
	}
	l := format.Bytes(limit)
	un, uu, _ := strings.Cut(u, " ")
	_, lu, _ := strings.Cut(l, " ")
	if uu == lu {
		return un + "/" + l
	}
	return u + "/" + l
}

// stateKind sorts a state into the three colours; the word is always shown as well.
type stateKind int

const (
	kindStopped stateKind = iota // exited, created, paused, removing: grey
	kindRunning                  // green
	kindFailed                   // dead, restarting (a crash loop), unknown: red
)

func kindOf(state string) stateKind {
	switch state {
	case "running":
		return kindRunning
	case "exited", "stopped", "created", "paused", "removing":
		return kindStopped
	default:
		return kindFailed
	}
}

func stateStyle(st dashboard.Styles, state string) lipgloss.Style {
	switch kindOf(state) {
	case kindRunning:
		return st.Running
	case kindFailed:
		return st.Failed
	default:
		return st.Stopped
	}
}

// layoutWidths fits the columns into width cells: each column as wide as its widest cell,
// then, while the line is too long, IMAGE shrinks to 16, NAME to 12, OWNER to 8, then each
// of them and MEM to its minimum. What still does not fit is cut at the end of the line.
func layoutWidths(cols []column, rows [][]string, width int) []int {
	w := make([]int, len(cols))
	for i, c := range cols {
		w[i] = ansi.StringWidth(c.title)
	}
	for _, r := range rows {
		for i := range cols {
			w[i] = max(w[i], ansi.StringWidth(r[i]))
		}
	}
	total := ansi.StringWidth(marker) + ansi.StringWidth(gap)*(len(cols)-1)
	for _, x := range w {
		total += x
	}
	// First down to what still reads well (an image's own name and tag, a name), then to
	// the minimums.
	steps := []struct {
		title string
		floor int // 0: the column's minimum
	}{{"IMAGE", 16}, {"NAME", 12}, {"OWNER", 8}, {"IMAGE", 0}, {"NAME", 0}, {"OWNER", 0}, {"MEM", 0}}
	for _, step := range steps {
		if total <= width {
			break
		}
		for i, c := range cols {
			floor := max(c.min, step.floor)
			if c.title != step.title || w[i] <= floor {
				continue
			}
			cut := min(total-width, w[i]-floor)
			w[i] -= cut
			total -= cut
		}
	}
	// An image shortened by whole path components may need less than its column got.
	for i, c := range cols {
		if !c.left {
			continue
		}
		need := ansi.StringWidth(c.title)
		for _, r := range rows {
			need = max(need, ansi.StringWidth(format.ShortImage(r[i], w[i])))
		}
		w[i] = min(w[i], need)
	}
	return w
}

// fitCell cuts s to w cells (with "…") and pads it to exactly w cells.
func fitCell(s string, w int, c column) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		if c.left {
			s = format.ShortImage(s, w)
		} else {
			s = ansi.Truncate(s, w, "…")
		}
	}
	pad := strings.Repeat(" ", max(0, w-ansi.StringWidth(s)))
	if c.right {
		return pad + s
	}
	return s + pad
}

// rowLook is how one row is drawn.
type rowLook struct {
	selected bool
	dim      bool // Docker is unreachable: the row is from the last known list
	busy     bool // an action is in flight: the state cell says which ("stopping…")
	own      bool // a TA's own container (bold owner)
}

// renderRow lays out one row's cells in widths. The state word carries its colour; a
// selected row is highlighted as a whole and marked with "▸"; a dim row is grey.
func renderRow(st dashboard.Styles, cols []column, cells []string, widths []int, look rowLook, width int) string {
	stateCol := len(cols) - len(baseColumns) + colState
	ownerCol := -1
	if len(cols) > len(baseColumns) {
		ownerCol = 0
	}
	state := cells[stateCol]
	plain := make([]string, len(cells))
	for i := range cells {
		plain[i] = fitCell(cells[i], widths[i], cols[i])
	}
	if look.selected || look.dim {
		line := nomark
		if look.selected {
			line = marker
		}
		line = ansi.Truncate(line+strings.Join(plain, gap), width, "…")
		if look.selected {
			line += strings.Repeat(" ", max(0, width-ansi.StringWidth(line)))
			return st.Selected.Render(line)
		}
		return st.Dim.Render(line)
	}
	styled := make([]string, len(plain))
	copy(styled, plain)
	switch {
	case look.busy:
		styled[stateCol] = st.Dim.Render(plain[stateCol])
	default:
		styled[stateCol] = stateStyle(st, stateWord(state)).Render(plain[stateCol])
	}
	if ownerCol >= 0 && look.own {
		styled[ownerCol] = st.ColumnHead.Render(plain[ownerCol])
	}
	return ansi.Truncate(nomark+strings.Join(styled, gap), width, "…")
}

// stateWord is the engine state in a State cell ("exited(0)" -> "exited").
func stateWord(cell string) string {
	w, _, _ := strings.Cut(cell, "(")
	return w
}

// renderHeader is the column titles.
func renderHeader(st dashboard.Styles, cols []column, widths []int, width int) string {
	cells := make([]string, len(cols))
	for i, c := range cols {
		cells[i] = fitCell(c.title, widths[i], c)
	}
	return st.ColumnHead.Render(ansi.Truncate(nomark+strings.Join(cells, gap), width, "…"))
}

// tableView is what renderTable needs.
type tableView struct {
	list     []docker.Container
	owners   bool   // OWNER column (TAs)
	me       string // the viewer, to mark a TA's own containers
	selected int
	dim      bool
	busy     map[string]string // by ref
	now      time.Time
}

// renderTable is the header and the rows that fit in height lines, scrolled so the
// selected row is visible.
func renderTable(st dashboard.Styles, tv tableView, width, height int) []string {
	if height <= 0 {
		return nil
	}
	cols := columns(tv.owners)
	rows := make([][]string, len(tv.list))
	stateCol := len(cols) - len(baseColumns) + colState
	for i, c := range tv.list {
		rows[i] = rowCells(c, tv.now, tv.owners)
		if b := tv.busy[refOf(c)]; b != "" {
			rows[i][stateCol] = b
		}
	}
	widths := layoutWidths(cols, rows, width)
	lines := []string{renderHeader(st, cols, widths, width)}
	visible := height - 1
	first := scrollOffset(tv.selected, len(rows), visible)
	for i := first; i < len(rows) && i < first+visible; i++ {
		c := tv.list[i]
		look := rowLook{selected: i == tv.selected, dim: tv.dim, busy: tv.busy[refOf(c)] != "", own: tv.owners && c.Owner == tv.me}
		lines = append(lines, renderRow(st, cols, rows[i], widths, look, width))
	}
	return lines
}

// scrollOffset is the first row shown so that selected is within visible rows.
func scrollOffset(selected, n, visible int) int {
	if visible <= 0 || n <= visible || selected < visible {
		return 0
	}
	return min(selected-visible+1, n-visible)
}

// refOf is how the backend names a container: "owner/name" (students may use it for their
// own as well).
func refOf(c docker.Container) string { return c.Owner + "/" + c.Name }

// matches reports whether a container matches a filter: a case-insensitive substring of
// its name, image or owner, or "owner:NAME" for exactly that owner's. The empty filter
// matches everything.
func matches(c docker.Container, filter string) bool {
	f := strings.ToLower(strings.TrimSpace(filter))
	if f == "" {
		return true
	}
	if owner, ok := strings.CutPrefix(f, "owner:"); ok {
		return strings.EqualFold(c.Owner, strings.TrimSpace(owner))
	}
	for _, s := range []string{c.Name, c.Image, c.Owner} {
		if strings.Contains(strings.ToLower(s), f) {
			return true
		}
	}
	return false
}

// filterList keeps the containers that match.
func filterList(list []docker.Container, filter string) []docker.Container {
	if strings.TrimSpace(filter) == "" {
		return list
	}
	out := make([]docker.Container, 0, len(list))
	for _, c := range list {
		if matches(c, filter) {
			out = append(out, c)
		}
	}
	return out
}

// unreachableLine is the one line shown while the snapshot is not current.
func unreachableLine(st dashboard.Styles, reason string, width int) string {
	if reason == "" {
		reason = "no answer"
	}
	line := " Docker unreachable: " + termsafe.Line(reason) + " — showing the last known list"
	return st.Failed.Render(ansi.Truncate(line, width, "…"))
}

// detailsView is what the details pane shows: the live row and, once Inspect answered,
// the details.
type detailsView struct {
	title   string // the container as the viewer names it, neutralised
	live    docker.Container
	details *docker.Details
	loading bool
	err     string
	now     time.Time
	// forward is the ssh -L line for a port ("" when the viewer cannot forward to it: the
	// container is someone else's).
	forward func(port int) string
}

// renderDetails is the pane under the table: a rule with the name, then home and limits;
// state, when it started and exited (and who stopped it, why); image and command; its
// address on the user's network and its ports with the ssh -L line that reaches each.
// Every line fits width.
func renderDetails(st dashboard.Styles, dv detailsView, width int) []string {
	c := dv.live
	lines := []string{dashboard.RuleLine(st, dv.title, width)}
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	if dv.err != "" {
		lines = append(lines, st.Failed.Render(cut("  ✗ "+termsafe.Line(dv.err))))
	}
	if dv.details == nil {
		if dv.loading {
			lines = append(lines, st.Dim.Render(cut("  loading details…")))
		}
		return lines
	}
	d := *dv.details
	// The snapshot is newer than the inspect for what changes: state, start, limits.
	d.State, d.ExitCode, d.StartedAt, d.Stopped = c.State, c.ExitCode, c.StartedAt, c.Stopped
	if c.CPUs > 0 {
		d.CPUs = c.CPUs
	}
	if c.MemLimit > 0 {
		d.MemLimit = c.MemLimit
	}

	first := []string{}
	if d.Home != "" {
		first = append(first, "home "+termsafe.Line(d.Home)+" (persistent)")
	}
	if c.GPUs != "" {
		first = append(first, "GPU "+termsafe.Line(c.GPUs))
	}
	first = append(first, "limits "+limitsText(d.CPUs, d.MemLimit, d.PidsLimit))
	lines = append(lines, cut("  "+strings.Join(first, " · ")))

	word := stateText(d.Container)
	second := []string{"state " + stateStyle(st, stateWord(word)).Render(word)}
	if !d.StartedAt.IsZero() {
		second = append(second, "started "+ago(dv.now, d.StartedAt))
	}
	if d.State != "running" && !d.FinishedAt.IsZero() && !d.FinishedAt.Before(d.StartedAt) {
		ended := "exited "
		if d.Stopped != nil {
			ended = "stopped "
		}
		second = append(second, ended+ago(dv.now, d.FinishedAt))
	}
	if d.State == "exited" && d.Stopped == nil || d.State == "dead" {
		second = append(second, fmt.Sprintf("exit code %d", d.ExitCode))
	}
	if d.OOMKilled {
		second = append(second, st.Failed.Render("killed: out of memory"))
	}
	lines = append(lines, cut("  "+strings.Join(second, " · ")))
	if s := d.Stopped; s != nil && d.State == "exited" {
		by := termsafe.Line(s.By)
		if s.By == c.Owner {
			by = "its owner"
		} else if s.ByRole != "" {
			by += " (" + termsafe.Line(roleName(s.ByRole)) + ")"
		}
		line := "  stopped by " + by
		if s.Reason != "" {
			line += ": " + termsafe.Line(s.Reason)
		}
		lines = append(lines, cut(line))
	}

	third := []string{"image " + termsafe.Line(d.Image)}
	if cmd := append(append([]string{}, d.Entrypoint...), d.Cmd...); len(cmd) > 0 {
		third = append(third, "command "+termsafe.Line(joinCommand(cmd)))
	}
	lines = append(lines, cut("  "+strings.Join(third, " · ")))
	if d.IPAddress != "" {
		lines = append(lines, cut("  address "+termsafe.Line(d.IPAddress)+" on "+termsafe.Line(d.Network)))
	}
	forward := dv.forward
	if d.State != "running" {
		forward = nil // nothing to reach until it runs
	}
	lines = append(lines, portLines(d.ExposedPorts, forward, width)...)
	if d.Error != "" {
		lines = append(lines, st.Failed.Render(cut("  ✗ error: "+termsafe.Line(d.Error))))
	}
	return lines
}

// maxPortLines is how many ports get an ssh -L line of their own.
const maxPortLines = 3

// portLines are the container's ports: "ports: ssh -L 8888:box:8888 -p 2222 alice@host"
// for each TCP port (the first few), then the others by number.
func portLines(ports []string, forward func(int) string, width int) []string {
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	var lines, rest []string
	for _, p := range ports {
		num, proto, _ := strings.Cut(p, "/")
		n, err := strconv.Atoi(num)
		if err != nil || proto != "tcp" || forward == nil || len(lines) == maxPortLines {
			rest = append(rest, termsafe.Line(p))
			continue
		}
		label := "  ports: "
		if len(lines) > 0 {
			label = "         "
		}
		lines = append(lines, cut(label+forward(n)))
	}
	if len(rest) > 0 {
		label := "  ports "
		if len(lines) > 0 {
			label = "  also "
		}
		lines = append(lines, cut(label+strings.Join(rest, ", ")))
	}
	return lines
}

// roleName is how a role reads after a name: "TA", "student".
func roleName(role string) string {
	if role == "ta" {
		return "TA"
	}
	return role
}

// noticeLine words what others did to the user's containers, newest last, in one line:
// "tina (TA) stopped box 2m ago: the exam needs the GPU".
func noticeLine(ns []docker.Notice, now time.Time) string {
	parts := make([]string, 0, len(ns))
	for _, n := range ns {
		if text, ok := n.ServerText(); ok {
			parts = append(parts, termsafe.Line(text))
			continue
		}
		verb := "stopped"
		if n.Action == "rm" {
			verb = "removed"
		}
		p := termsafe.Line(n.By)
		if n.ByRole != "" {
			p += " (" + termsafe.Line(roleName(n.ByRole)) + ")"
		}
		p += " " + verb + " your container " + termsafe.Line(n.Container)
		if !n.At.IsZero() && now.Sub(n.At) >= time.Minute {
			p += " " + ago(now, n.At)
		}
		if n.Reason != "" {
			p += ": " + termsafe.Line(n.Reason)
		} else {
			p += " (no reason given)"
		}
		parts = append(parts, p)
	}
	return strings.Join(parts, " · ")
}

// limitsText is "1 CPU, 2.0 GiB, 512 processes".
func limitsText(cpus float64, mem, pids int64) string {
	var parts []string
	if cpus > 0 {
		unit := " CPUs"
		if cpus == 1 {
			unit = " CPU"
		}
		parts = append(parts, format.CPUs(cpus)+unit)
	}
	if mem > 0 {
		parts = append(parts, format.Bytes(mem))
	}
	if pids > 0 {
		parts = append(parts, fmt.Sprintf("%d processes", pids))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// ago is "2h13m ago".
func ago(now, t time.Time) string {
	return format.Age(now.Sub(t)) + " ago"
}

// joinCommand shows a command line with arguments quoted where needed.
func joinCommand(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\"'\\$;&|<>*?()`") {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		} else {
			out[i] = a
		}
	}
	return strings.Join(out, " ")
}
