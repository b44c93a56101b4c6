package gpus

import (
	"fmt"
	"strconv"
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/gpu"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

const (
	indent       = "        " // under the GPU's name
	maxNameWidth = 20
	minNameWidth = 8
	minBar       = 3
	maxBar       = 20
	maxSpark     = 30
	unknown      = "–"
	gib          = int64(1) << 30
)

// warn is the colour of a load that is high but not yet full.
var warn = lipgloss.NewStyle().Foreground(lipgloss.Color("#FFD75F"))

// sparkLevels are the sparkline's eight heights.
var sparkLevels = []rune("▁▂▃▄▅▆▇█")

// unavailableLine is the one line shown when the server has no GPUs to show.
func unavailableLine(st dashboard.Styles, reason string, width int) string {
	reason = termsafe.Line(reason)
	if reason == "" {
		reason = "none found"
	}
	return st.Notice.Render(ansi.Truncate(" No GPUs on this server: "+reason, width, "…"))
}

// loadStyle is the colour of a load in percent: green, yellow from 70%, red from 90%.
func loadStyle(st dashboard.Styles, pct int) lipgloss.Style {
	switch {
	case pct >= 90:
		return st.Failed
	case pct >= 70:
		return warn
	}
	return st.Running
}

// filled is how many of width cells a bar of pct percent fills (rounded, 0..width).
func filled(pct, width int) int {
	pct = min(max(pct, 0), 100)
	return min(width, (pct*width+50)/100)
}

// bar is a width-cell bar of █ (coloured by load) and ░; nil pct (unknown) is all ░.
func bar(st dashboard.Styles, pct *int, width int) string {
	if width <= 0 {
		return ""
	}
	if pct == nil {
		return st.Dim.Render(strings.Repeat("░", width))
	}
	n := filled(*pct, width)
	out := ""
	if n > 0 {
		out = loadStyle(st, *pct).Render(strings.Repeat("█", n))
	}
	if n < width {
		out += st.Dim.Render(strings.Repeat("░", width-n))
	}
	return out
}

// sparkline is the utilisation history, oldest first, as at most width cells (the newest
// points); an unknown point (-1) is a space.
func sparkline(points []gpu.Point, width int) string {
	if width <= 0 {
		return ""
	}
	if len(points) > width {
		points = points[len(points)-width:]
	}
	var b strings.Builder
	for _, p := range points {
		if p.Util < 0 {
			b.WriteByte(' ')
			continue
		}
		u := min(p.Util, 100)
		b.WriteRune(sparkLevels[min(len(sparkLevels)-1, u*len(sparkLevels)/101)])
	}
	return b.String()
}

// gibText is a size in GiB with one decimal ("26.8 GiB"), or smaller units below 1 GiB.
func gibText(n int64) string {
	if n < gib {
		return format.Bytes(n)
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/float64(gib))
}

// memText is "27.1/40 GiB", or "–" when either is unknown.
func memText(used, total *int64) string {
	if used == nil || total == nil {
		return unknown
	}
	if *total < gib {
		return format.Bytes(*used) + "/" + format.Bytes(*total)
	}
	t := strconv.FormatFloat(float64(*total)/float64(gib), 'f', 1, 64)
	t = strings.TrimSuffix(t, ".0")
	return fmt.Sprintf("%.1f/%s GiB", float64(*used)/float64(gib), t)
}

func pctText(p *int) string {
	if p == nil {
		return "  " + unknown
	}
	return fmt.Sprintf("%3d%%", *p)
}

func memPct(used, total *int64) *int {
	if used == nil || total == nil || *total <= 0 {
		return nil
	}
	p := int(*used * 100 / *total)
	return &p
}

// headLine is "GPU 0  A100-SXM4-40GB  util ███░░ 72%  mem ██░░ 27.1/40 GiB  61°C 231 W",
// with the bars and the name shrunk to fit width.
// nameW is the width the names of every card share (at most maxNameWidth), so that the
// cards' columns line up.
func headLine(st dashboard.Styles, g gpu.GPU, nameW, width int) string {
	name := gpuName(g)
	temp := unknown
	if g.TempC != nil {
		temp = strconv.Itoa(*g.TempC) + "°C"
	}
	power := unknown
	if g.PowerW != nil {
		power = fmt.Sprintf("%.0f W", *g.PowerW)
	}
	idx := fmt.Sprintf(" GPU %d  ", g.Index)
	util := " " + pctText(g.Util)
	mem := fmt.Sprintf(" %-12s", memText(g.MemUsed, g.MemTotal))
	tail := fmt.Sprintf(" %5s %6s", temp, power)
	fixed := ansi.StringWidth(idx) + len("  util ") + ansi.StringWidth(util) + len("  mem ") +
		ansi.StringWidth(mem) + ansi.StringWidth(tail)

	nameW = min(nameW, maxNameWidth)
	barW := (width - fixed - nameW) / 2
	if barW < minBar*2 { // give the bars room before the name
		nameW = max(min(nameW, minNameWidth), width-fixed-2*minBar*2)
		barW = (width - fixed - nameW) / 2
	}
	if barW < minBar { // too narrow for bars: the numbers alone
		barW = 0
	}
	barW = min(barW, maxBar)
	name = ansi.Truncate(name, nameW, "…")
	name += strings.Repeat(" ", max(0, nameW-ansi.StringWidth(name)))

	line := st.Header.Render(idx) + name + "  util " + bar(st, g.Util, barW) + util +
		"  mem " + bar(st, memPct(g.MemUsed, g.MemTotal), barW) + mem + tail
	return ansi.Truncate(strings.TrimRight(line, " "), width, "…")
}

// gpuName is the GPU's name, neutralised; "–" when unknown.
func gpuName(g gpu.GPU) string {
	if name := termsafe.Line(g.Name); name != "" {
		return name
	}
	return unknown
}

// processText is "alice/jupyter 26.8 GiB", "in use by another user 1.0 GiB", "host pid 42"…
func processText(p gpu.Process) string {
	var s string
	switch p.Where {
	case gpu.WhereContainer:
		s = termsafe.Line(p.Owner) + "/" + termsafe.Line(p.ContainerName)
	case gpu.WhereOtherContainer:
		s = "other container"
		if id := termsafe.Line(p.ContainerID); len(id) >= 12 {
			s += " " + id[:12]
		}
	case gpu.WhereHost:
		s = "host"
		if p.PID > 0 {
			s += " pid " + strconv.Itoa(p.PID)
		}
	default:
		s = gpu.WhereHidden
	}
	if p.MemUsed != nil {
		s += " " + gibText(*p.MemUsed)
	}
	return s
}

// processItems are the GPU's processes as styled pieces: the viewer's own in bold, hidden
// ones dim; "free" or "processes unknown" when there are none to list.
func processItems(st dashboard.Styles, g gpu.GPU, id backend.Identity) []string {
	if !g.ProcessesKnown {
		return []string{st.Dim.Render("processes unknown")}
	}
	if len(g.Processes) == 0 {
		return []string{st.Running.Render("free")}
	}
	out := make([]string, 0, len(g.Processes))
	for _, p := range g.Processes {
		s := processText(p)
		switch {
		case p.Where == gpu.WhereHidden:
			s = st.Dim.Render(s)
		case p.Where == gpu.WhereContainer && id.Valid() && p.Owner == id.User:
			s = st.Header.Render(s)
		}
		out = append(out, s)
	}
	return out
}

// card is one GPU: the head line, then the sparkline followed by the processes, wrapped at
// width under the name.
func card(st dashboard.Styles, g gpu.GPU, id backend.Identity, nameW, width int) []string {
	lines := []string{headLine(st, g, nameW, width)}
	sparkW := min(maxSpark, max(0, width-len(indent)-20))
	spark := sparkline(g.History, sparkW)
	cur := indent
	if spark != "" {
		cur += st.Dim.Render(spark) + "   "
	}
	const sep = " · "
	items := processItems(st, g, id)
	first := true
	for _, it := range items {
		add := it
		if !first {
			add = sep + it
		}
		if !first && ansi.StringWidth(cur+add) > width {
			lines = append(lines, ansi.Truncate(cur, width, "…"))
			cur, add = indent, it
		}
		cur += add
		first = false
	}
	return append(lines, ansi.Truncate(cur, width, "…"))
}

// usersSection is the TAs' summary: one row per user with the GPUs held, their memory and
// mean utilisation.
func usersSection(st dashboard.Styles, users []gpu.UserSummary, width int) []string {
	if len(users) == 0 {
		return nil
	}
	userW := len("USER")
	for _, u := range users {
		userW = max(userW, ansi.StringWidth(termsafe.Line(u.User)))
	}
	userW = min(userW, 24)
	row := func(user, gpus, mem, util string) string {
		user = ansi.Truncate(user, userW, "…")
		return fmt.Sprintf(" %-*s  %-10s  %10s  %9s", userW, user, gpus, mem, util)
	}
	// %-*s pads by bytes; pad names by cells instead.
	pad := func(s string) string { return s + strings.Repeat(" ", max(0, userW-ansi.StringWidth(s))) }
	lines := []string{"", st.ColumnHead.Render(ansi.Truncate(row("USER", "GPUS", "MEMORY", "MEAN UTIL"), width, "…"))}
	for _, u := range users {
		idx := make([]string, len(u.GPUs))
		for i, n := range u.GPUs {
			idx[i] = strconv.Itoa(n)
		}
		util := unknown
		if u.MeanUtil != nil {
			util = strconv.Itoa(*u.MeanUtil) + "%"
		}
		name := pad(ansi.Truncate(termsafe.Line(u.User), userW, "…"))
		line := " " + name + fmt.Sprintf("  %-10s  %10s  %9s", strings.Join(idx, ","), gibText(u.MemUsed), util)
		lines = append(lines, ansi.Truncate(line, width, "…"))
	}
	return lines
}

// render is the whole body for a state already cut down by the sampler, one string per line,
// each at most width cells.
func render(st dashboard.Styles, s gpu.State, id backend.Identity, width int) []string {
	if !s.Available || len(s.GPUs) == 0 {
		return []string{unavailableLine(st, s.Reason, width)}
	}
	nameW := 0
	for _, g := range s.GPUs {
		nameW = max(nameW, ansi.StringWidth(gpuName(g)))
	}
	var lines []string
	for _, g := range s.GPUs {
		lines = append(lines, card(st, g, id, nameW, width)...)
	}
	return append(lines, usersSection(st, s.Users, width)...)
}
