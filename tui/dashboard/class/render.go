package class

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend/docker"
	"whalemountain/backend/kube"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Row is one user: what they hold now.
type Row struct {
	User     string
	TA       bool // known only while they have a session open; else the student quota counts
	Sessions int
	Running  int     // containers running
	Total    int     // containers in any state
	Pods     int     // pods running
	PodTotal int     // pods in any phase
	GPUs     int     // GPUs held by their running containers and pods
	GPUHours float64 // GPU-hours held in the fair-share window
	CPU      float64
	Mem      int64    // bytes in use by their running containers
	Quota    int      // the role's MaxContainers (0: none)
	Presets  []string // course presets of their containers, sorted
	Sharing  bool     // shares a shell with TAs now (w joins it)
}

// Column is what the rows sort by.
type Column int

// The sort keys, in the order o cycles through them. User sorts A to Z, the others biggest
// first (ties by user).
const (
	ByUser Column = iota
	BySessions
	ByContainers
	ByPods
	ByGPUs
	ByGPUHours
	ByCPU
	ByMem
	ByQuota
	numColumns
)

var headers = [numColumns]string{"USER", "SESSIONS", "CONTAINERS", "PODS", "GPUS", "GPU-H", "CPU", "MEMORY", "QUOTA"}

// Rows folds containers, pods (nil where pods are off), sessions and GPU-hours (held in the
// fair-share window, by user; nil for none) into one row per user, keeps those matching
// filter (a substring of the user or of one of their presets) and sorts them by col.
func Rows(conts []docker.Container, pods []kube.Pod, pres map[string]Presence, hours map[string]float64, quota func(ta bool) int, filter string, col Column) []Row {
	by := map[string]*Row{}
	get := func(user string) *Row {
		r := by[user]
		if r == nil {
			p := pres[user]
			r = &Row{User: user, TA: p.TA, Sessions: p.Sessions}
			if quota != nil {
				r.Quota = quota(p.TA)
			}
			by[user] = r
		}
		return r
	}
	for u, p := range pres {
		if p.Sessions > 0 {
			get(u)
		}
	}
	for _, c := range conts {
		r := get(c.Owner)
		r.GPUHours = hours[c.Owner]
		r.Total++
		if c.Preset != "" && !slices.Contains(r.Presets, c.Preset) {
			r.Presets = append(r.Presets, c.Preset)
		}
		if c.State != "running" {
			continue
		}
		r.Running++
		r.GPUs += countGPUs(c.GPUs)
		r.CPU += c.CPUPercent
		r.Mem += c.MemUsage
	}
	for _, p := range pods {
		r := get(p.Owner)
		r.GPUHours = hours[p.Owner]
		r.PodTotal++
		if p.Phase == "Running" {
			r.Pods++
			r.GPUs += int(p.GPUs)
		}
	}
	f := strings.ToLower(strings.TrimSpace(filter))
	rows := make([]Row, 0, len(by))
	for _, r := range by {
		slices.Sort(r.Presets)
		if f == "" || strings.Contains(strings.ToLower(r.User), f) ||
			slices.ContainsFunc(r.Presets, func(p string) bool { return strings.Contains(strings.ToLower(p), f) }) {
			rows = append(rows, *r)
		}
	}
	slices.SortFunc(rows, func(a, b Row) int {
		if c := compare(a, b, col); c != 0 {
			return c
		}
		return strings.Compare(a.User, b.User)
	})
	return rows
}

// compare orders a before b (negative) when a comes first under col.
func compare(a, b Row, col Column) int {
	desc := func(x, y float64) int {
		switch {
		case x > y:
			return -1
		case x < y:
			return 1
		}
		return 0
	}
	switch col {
	case BySessions:
		return desc(float64(a.Sessions), float64(b.Sessions))
	case ByContainers:
		if c := desc(float64(a.Running), float64(b.Running)); c != 0 {
			return c
		}
		return desc(float64(a.Total), float64(b.Total))
	case ByPods:
		if c := desc(float64(a.Pods), float64(b.Pods)); c != 0 {
			return c
		}
		return desc(float64(a.PodTotal), float64(b.PodTotal))
	case ByGPUs:
		return desc(float64(a.GPUs), float64(b.GPUs))
	case ByGPUHours:
		return desc(a.GPUHours, b.GPUHours)
	case ByCPU:
		return desc(a.CPU, b.CPU)
	case ByMem:
		return desc(float64(a.Mem), float64(b.Mem))
	case ByQuota:
		return desc(quotaUse(a), quotaUse(b))
	}
	return 0
}

func quotaUse(r Row) float64 {
	if r.Quota <= 0 {
		return float64(r.Total)
	}
	return float64(r.Total) / float64(r.Quota)
}

func countGPUs(s string) int {
	n := 0
	for p := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(p) != "" {
			n++
		}
	}
	return n
}

// View is everything Render draws.
type View struct {
	Rows      []Row
	Sel       int
	SortBy    Column
	Filter    string // the filter line (the input while typing), "" for none
	Filtering bool
	Empty     bool // a filter is set: an empty table says nothing matches
	Health    docker.Health
	Shared    string        // datasets and group workspaces in one line (SharedSummary); "" for none
	Waiting   int           // requests waiting for GPUs
	Culls     []docker.Cull // the latest idle stops, newest first
	Now       time.Time
}

// Column widths after USER; USER takes what is left (8 to 24 cells).
var widths = [numColumns]int{0, 8, 10, 5, 4, 5, 5, 8, 7}

// Render draws the tab's body in width x height cells: a summary line (or the filter),
// the header with the sort column marked, then as many rows as fit around the selection.
func Render(st dashboard.Styles, v View, width, height int) string {
	if width <= 0 || height <= 0 {
		return ""
	}
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	var lines []string
	if !v.Health.OK && !v.Health.Since.IsZero() {
		reason := v.Health.Err
		if reason == "" {
			reason = "no answer"
		}
		lines = append(lines, st.Failed.Render(cut(" Docker unreachable: "+termsafe.Line(reason)+" — showing the last known containers")))
	}
	switch {
	case v.Filtering:
		lines = append(lines, cut(" "+v.Filter))
	case v.Filter != "":
		lines = append(lines, st.Dim.Render(cut(" "+v.Filter)))
	default:
		sum := summary(v.Rows)
		if v.Waiting > 0 {
			sum += fmt.Sprintf(" · %d waiting", v.Waiting)
		}
		lines = append(lines, st.Dim.Render(cut(" "+sum+" · sorted by "+strings.ToLower(headers[v.SortBy]))))
	}
	if l := cullsLine(v.Culls, v.Now); l != "" {
		lines = append(lines, st.Dim.Render(cut(" "+l)))
	}
	if v.Shared != "" {
		lines = append(lines, st.Dim.Render(cut(" "+termsafe.Line(v.Shared))))
	}
	userW := width - 1
	for _, w := range widths[1:] {
		userW -= w + 2
	}
	userW = min(max(userW, 8), 24)
	head := make([]string, numColumns)
	for i, h := range headers {
		if Column(i) == v.SortBy {
			h += "↓"
			if Column(i) == ByUser {
				h = headers[i] + "↑"
			}
		}
		head[i] = h
	}
	lines = append(lines, st.ColumnHead.Render(cut(line(" ", head, userW))))
	if len(v.Rows) == 0 {
		msg := "  Nobody has a container or a session open."
		if v.Empty {
			msg = "  Nobody matches the filter. esc clears it."
		}
		lines = append(lines, st.Notice.Render(cut(msg)))
		return strings.Join(lines, "\n")
	}
	room := max(1, height-len(lines))
	first := 0
	if v.Sel >= room {
		first = v.Sel - room + 1
	}
	for i := first; i < len(v.Rows) && i < first+room; i++ {
		mark := " "
		if v.Rows[i].Sharing {
			mark = SharingMark
		}
		l := cut(line(mark, Cells(v.Rows[i]), userW))
		if i == v.Sel {
			l = st.SelectedRow(l, width)
		}
		lines = append(lines, l)
	}
	return strings.Join(lines, "\n")
}

// Cells is a row's text, column by column.
func Cells(r Row) []string {
	user := termsafe.Line(r.User)
	if r.TA {
		user += " (TA)"
	}
	cpu, mem := "-", "-"
	if r.Running > 0 {
		cpu, mem = format.Percent(r.CPU), format.Bytes(r.Mem)
	}
	quota := strconv.Itoa(r.Total)
	if r.Quota > 0 {
		quota = fmt.Sprintf("%d/%d", r.Total, r.Quota)
	}
	hours := "-"
	if r.GPUHours >= 0.05 {
		hours = strconv.FormatFloat(r.GPUHours, 'f', 1, 64)
	}
	return []string{user, strconv.Itoa(r.Sessions), fmt.Sprintf("%d/%d", r.Running, r.Total),
		fmt.Sprintf("%d/%d", r.Pods, r.PodTotal), strconv.Itoa(r.GPUs), hours, cpu, mem, quota}
}

// SharingMark is the mark before a user who shares a shell now.
const SharingMark = "●"

// line lays out cells after a one-cell mark: USER left-aligned in userW cells, the numbers
// right-aligned.
func line(mark string, cells []string, userW int) string {
	var b strings.Builder
	b.WriteString(mark)
	b.WriteString(pad(ansi.Truncate(cells[0], userW, "…"), userW, false))
	for i := 1; i < len(cells); i++ {
		b.WriteString("  ")
		b.WriteString(pad(ansi.Truncate(cells[i], widths[i], "…"), widths[i], true))
	}
	return b.String()
}

func pad(s string, w int, right bool) string {
	gap := strings.Repeat(" ", max(0, w-ansi.StringWidth(s)))
	if right {
		return gap + s
	}
	return s + gap
}

// SharedSummary is the datasets and group workspaces for TAs in one line: "datasets:
// imagenet 3.1 GiB, coco missing · 12 group workspaces, 4.2 GiB used · 1 container of a
// former member still mounts one".
func SharedSummary(ds []docker.DatasetInfo, gs []docker.GroupInfo) string {
	var parts []string
	if len(ds) > 0 {
		var d []string
		for _, x := range ds {
			size := "?"
			switch {
			case !x.Available:
				size = "missing"
			case x.Size >= 0:
				size = format.Bytes(x.Size)
			}
			d = append(d, x.Name+" "+size)
		}
		parts = append(parts, "datasets: "+strings.Join(d, ", "))
	}
	if len(gs) > 0 {
		var used int64
		known, former := true, 0
		for _, g := range gs {
			if g.Used < 0 {
				known = false
			} else {
				used += g.Used
			}
			former += len(g.Former)
		}
		w := fmt.Sprintf("%d group workspaces", len(gs))
		if len(gs) == 1 {
			w = "1 group workspace"
		}
		if known {
			w += ", " + format.Bytes(used) + " used"
		}
		parts = append(parts, w)
		switch former {
		case 0:
		case 1:
			parts = append(parts, "1 container of a former member still mounts one (groups)")
		default:
			parts = append(parts, fmt.Sprintf("%d containers of former members still mount one (groups)", former))
		}
	}
	return strings.Join(parts, " · ")
}

// summary is "12 users · 5 connected · ● 1 sharing a shell (w joins) · 9/14 containers
// running · 3 GPUs".
func summary(rows []Row) string {
	var conn, sharing, run, total, pods, podTotal, gpus int
	for _, r := range rows {
		if r.Sessions > 0 {
			conn++
		}
		if r.Sharing {
			sharing++
		}
		run += r.Running
		total += r.Total
		pods += r.Pods
		podTotal += r.PodTotal
		gpus += r.GPUs
	}
	s := fmt.Sprintf("%d users · %d connected", len(rows), conn)
	if sharing > 0 {
		s += fmt.Sprintf(" · %s %d sharing a shell (w joins)", SharingMark, sharing)
	}
	s += fmt.Sprintf(" · %d/%d containers running", run, total)
	if podTotal > 0 {
		s += fmt.Sprintf(" · %d/%d pods", pods, podTotal)
	}
	return s + fmt.Sprintf(" · %d GPUs", gpus)
}

// cullsLine is the latest idle stops of the last day in one line: "idle stops: alice/gpu 5m
// ago, bob/x 2h ago (audit --action cull)"; "" for none.
func cullsLine(cs []docker.Cull, now time.Time) string {
	var parts []string
	for _, c := range cs {
		if now.Sub(c.At) > 24*time.Hour || len(parts) == 3 {
			break
		}
		parts = append(parts, termsafe.Line(c.Owner+"/"+c.Name)+" "+format.Age(now.Sub(c.At))+" ago")
	}
	if len(parts) == 0 {
		return ""
	}
	return "idle stops: " + strings.Join(parts, ", ") + " (audit --action cull)"
}
