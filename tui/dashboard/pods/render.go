package pods

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend/kube"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Presentation: pure functions from pods to cells and lines, no state, no I/O.

// column is one column of the table.
type column struct {
	title string
	min   int  // shrunk no further (the line is cut instead)
	right bool // right-aligned (numbers)
}

var baseColumns = []column{
	{title: "NAME", min: 6},
	{title: "IMAGE", min: 8},
	{title: "STATUS", min: 7},
	{title: "READY", min: 5},
	{title: "RESTARTS", min: 3, right: true},
	{title: "AGE", min: 3},
	{title: "NODE", min: 4},
	{title: "GPU", min: 3, right: true},
}

// colStatus is the STATUS column in baseColumns.
const colStatus = 2

const gap = "  "

// columns returns the table's columns: OWNER first for TAs.
func columns(owners bool) []column {
	if !owners {
		return baseColumns
	}
	return append([]column{{title: "OWNER", min: 5}}, baseColumns...)
}

// rowCells is one pod as plain, neutralised cells: [owner,] name, image, status, ready,
// restarts, age, node, GPUs.
func rowCells(p kube.Pod, now time.Time, owners bool) []string {
	ready := "0/1"
	if p.Ready {
		ready = "1/1"
	}
	node, gpus := "–", "–"
	if p.Node != "" {
		node = termsafe.Line(p.Node)
	}
	if p.GPUs > 0 {
		gpus = strconv.FormatInt(p.GPUs, 10)
	}
	age := "–"
	if !p.Created.IsZero() {
		age = format.Age(now.Sub(p.Created))
	}
	cells := []string{termsafe.Line(p.Name), termsafe.Line(p.Image), termsafe.Line(p.Status), ready,
		strconv.Itoa(int(p.Restarts)), age, node, gpus}
	if owners {
		cells = append([]string{termsafe.Line(p.Owner)}, cells...)
	}
	return cells
}

// statusStyle colours a status word; the word is always shown as well.
func statusStyle(st dashboard.Styles, status string) lipgloss.Style {
	switch status {
	case "Running":
		return st.Running
	case "Completed", "Succeeded", "Terminating", "Pending", "ContainerCreating", "PodInitializing":
		return st.Stopped
	}
	return st.Failed
}

// layoutWidths fits the columns into width cells: each as wide as its widest cell, then
// IMAGE, NAME, NODE and OWNER give way, down to their minimums. What still does not fit is
// cut at the end of the line.
func layoutWidths(cols []column, rows [][]string, width int) []int {
	w := make([]int, len(cols))
	for i, c := range cols {
		w[i] = ansi.StringWidth(c.title)
		for _, r := range rows {
			w[i] = max(w[i], ansi.StringWidth(r[i]))
		}
	}
	total := ansi.StringWidth(dashboard.Marker) + len(gap)*(len(cols)-1)
	for _, x := range w {
		total += x
	}
	for _, title := range []string{"IMAGE", "NODE", "NAME", "OWNER"} {
		for i, c := range cols {
			if total <= width || c.title != title || w[i] <= c.min {
				continue
			}
			cut := min(total-width, w[i]-c.min)
			w[i] -= cut
			total -= cut
		}
	}
	return w
}

// fitCell cuts s to w cells (with "…") and pads it to exactly w cells.
func fitCell(s string, w int, c column) string {
	if w <= 0 {
		return ""
	}
	if ansi.StringWidth(s) > w {
		if c.title == "IMAGE" {
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

// tableView is what renderTable needs.
type tableView struct {
	list     []kube.Pod
	owners   bool // OWNER column (TAs)
	selected int
	dim      bool              // the cluster is unreachable: the last known list, greyed
	busy     map[string]string // by ref: "deleting…"
	now      time.Time
}

// renderTable is the header and the rows that fit in height lines, scrolled so that the
// selected row is visible.
func renderTable(st dashboard.Styles, tv tableView, width, height int) []string {
	if height <= 0 {
		return nil
	}
	cols := columns(tv.owners)
	status := colStatus + len(cols) - len(baseColumns)
	rows := make([][]string, len(tv.list))
	for i, p := range tv.list {
		rows[i] = rowCells(p, tv.now, tv.owners)
		if b := tv.busy[p.Ref()]; b != "" {
			rows[i][status] = b
		}
	}
	widths := layoutWidths(cols, rows, width)
	head := make([]string, len(cols))
	for i, c := range cols {
		head[i] = fitCell(c.title, widths[i], c)
	}
	lines := []string{st.ColumnHead.Render(ansi.Truncate(dashboard.NoMarker+strings.Join(head, gap), width, "…"))}
	visible := height - 1
	first := 0
	if tv.selected >= visible && len(rows) > visible {
		first = min(tv.selected-visible+1, len(rows)-visible)
	}
	for i := first; i < len(rows) && i < first+visible; i++ {
		cells := make([]string, len(cols))
		for j := range cols {
			cells[j] = fitCell(rows[i][j], widths[j], cols[j])
		}
		switch {
		case i == tv.selected:
			line := ansi.Truncate(dashboard.Marker+strings.Join(cells, gap), width, "…")
			lines = append(lines, st.Selected.Render(line+strings.Repeat(" ", max(0, width-ansi.StringWidth(line)))))
		case tv.dim:
			lines = append(lines, st.Dim.Render(ansi.Truncate(dashboard.NoMarker+strings.Join(cells, gap), width, "…")))
		default:
			if tv.busy[tv.list[i].Ref()] != "" {
				cells[status] = st.Dim.Render(cells[status])
			} else {
				cells[status] = statusStyle(st, tv.list[i].Status).Render(cells[status])
			}
			lines = append(lines, ansi.Truncate(dashboard.NoMarker+strings.Join(cells, gap), width, "…"))
		}
	}
	return lines
}

// matches reports whether a pod matches a filter: a case-insensitive substring of its name,
// image, status, node or owner, or "owner:NAME" for exactly that owner's.
func matches(p kube.Pod, filter string) bool {
	f := strings.ToLower(strings.TrimSpace(filter))
	if f == "" {
		return true
	}
	if owner, ok := strings.CutPrefix(f, "owner:"); ok {
		return strings.EqualFold(p.Owner, strings.TrimSpace(owner))
	}
	for _, s := range []string{p.Name, p.Image, p.Owner, p.Status, p.Node} {
		if strings.Contains(strings.ToLower(s), f) {
			return true
		}
	}
	return false
}

// detailsView is what the details pane shows: the live row and, once Inspect answered, the
// details.
type detailsView struct {
	title   string
	live    kube.Pod
	details *kube.Details
	loading bool
	err     string
	forward string // the ssh -L line for a port, for the pod's owner; empty for others
	now     time.Time
}

// renderDetails is the details pane: limits, status and why, the newest warnings, and how
// to reach a port.
func renderDetails(st dashboard.Styles, dv detailsView, width int) []string {
	p := dv.live
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	lines := []string{dashboard.RuleLine(st, dv.title, width)}
	first := []string{"namespace " + termsafe.Line(p.Namespace), "limits " + limitsText(p)}
	if p.GPUs > 0 {
		first = append(first, fmt.Sprintf("%d GPU", p.GPUs))
	}
	lines = append(lines, cut("  "+strings.Join(first, " · ")))
	second := "  status " + statusStyle(st, p.Status).Render(termsafe.Line(p.Status))
	if p.Reason != "" {
		second += " · " + termsafe.Line(p.Reason)
	}
	lines = append(lines, cut(second))
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
	if d.Home != "" {
		home := "home " + termsafe.Line(d.Home)
		if d.HomeClaim != "" {
			home += " (persistent)"
		} else {
			home += " (lasts as long as the pod)"
		}
		lines = append(lines, cut("  "+home))
	}
	if len(d.Data) > 0 {
		lines = append(lines, cut("  data "+termsafe.Line(strings.Join(d.Data, " · "))))
	}
	for _, e := range d.Events {
		var when []string
		if e.Count > 1 {
			when = append(when, fmt.Sprintf("×%d", e.Count))
		}
		if !e.Last.IsZero() {
			when = append(when, format.Age(dv.now.Sub(e.Last))+" ago")
		}
		line := "  " + termsafe.Line(e.Reason)
		if len(when) > 0 {
			line += " (" + strings.Join(when, ", ") + ")"
		}
		lines = append(lines, st.Failed.Render(cut(line+": "+termsafe.Line(e.Message))))
	}
	if dv.forward != "" {
		lines = append(lines, cut("  ports: "+dv.forward))
	}
	return lines
}

func limitsText(p kube.Pod) string {
	var parts []string
	if p.CPUs > 0 {
		parts = append(parts, format.CPUs(p.CPUs)+" CPU")
	}
	if p.Memory > 0 {
		parts = append(parts, format.Bytes(p.Memory))
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// quotaText is the line above the new-pod form.
func quotaText(q kube.Quota, have int) string {
	s := fmt.Sprintf("quota: %d of %d pods · up to %s CPUs and %s in all", have, q.Pods, format.CPUs(q.CPUs), format.Bytes(q.Memory))
	if q.GPUs > 0 {
		s += fmt.Sprintf(", %d GPU", q.GPUs)
	}
	return s
}

// unreachableLine is the one line shown while the snapshot is not current.
func unreachableLine(st dashboard.Styles, reason string, width int) string {
	if reason == "" {
		reason = "no answer"
	}
	return st.Failed.Render(ansi.Truncate(" Kubernetes unreachable: "+termsafe.Line(reason)+" — showing the last known list", width, "…"))
}
