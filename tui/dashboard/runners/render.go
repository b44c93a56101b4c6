package runners

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend/runner"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/termsafe"
)

// View is what the tab shows, for Render.
type View struct {
	List      []runner.Runner
	Sel       int
	Loaded    bool
	Err       error
	WithOwner bool   // a TA's view: an OWNER column
	Bottom    string // a question or an input line, drawn last
	// Jobs are the running job containers per "owner/runner"; nil when not known.
	Jobs map[string]int
	Now  time.Time // for "last contact 4s ago"
}

// columns of the table: name, project, state, jobs, online, last contact, status (owner
// first for TAs).
func row(r runner.Runner, withOwner bool, widths []int, jobs map[string]int, now time.Time) string {
	project := r.Project
	if project == "" {
		project = "-"
	}
	n := fmt.Sprint(len(r.JobsNow))
	if jobs != nil {
		n = fmt.Sprint(jobs[r.Owner+"/"+r.Name])
	}
	cells := []string{termsafe.Line(r.Name), termsafe.Line(project), stateWord(r.State), n,
		runner.OnlineWord(r), runner.ContactWord(r, now), termsafe.Line(r.Status)}
	if withOwner {
		cells = append([]string{termsafe.Line(r.Owner)}, cells...)
	}
	var b strings.Builder
	for i, c := range cells {
		if i < len(widths) {
			c = ansi.Truncate(c, widths[i], "…")
			b.WriteString(c + strings.Repeat(" ", max(0, widths[i]-ansi.StringWidth(c))+2))
		} else {
			b.WriteString(c)
		}
	}
	return strings.TrimRight(b.String(), " ")
}

// Details are the lines under the table on the selected runner at now: what its jobs are
// and where GitLab's view of it came from, its engine status, its jobs now and its last few.
func Details(r runner.Runner, now time.Time) []string {
	from := "not known yet"
	switch r.ViewFrom {
	case runner.FromGitLab:
		from = "from GitLab"
	case runner.FromLog:
		from = "from its log"
	}
	out := []string{
		fmt.Sprintf("%s: jobs run as containers of %s through %s's own Docker API", r.Name, r.Owner, r.Owner),
		fmt.Sprintf("GitLab's view (%s): %s, last contact %s; engine: %s", from, runner.OnlineWord(r), runner.ContactWord(r, now), stateWord(r.Status)),
	}
	if len(r.JobsNow) == 0 && len(r.RecentJobs) == 0 {
		return append(out, "jobs: none seen yet")
	}
	now1 := "none"
	if len(r.JobsNow) > 0 {
		var ns []string
		for _, j := range r.JobsNow {
			ns = append(ns, j.Name+" (started "+runner.ContactWord(runner.Runner{LastContact: j.StartedAt}, now)+")")
		}
		now1 = strings.Join(ns, ", ")
	}
	out = append(out, "jobs now: "+now1)
	if len(r.RecentJobs) > 0 {
		out = append(out, "last jobs:")
	}
	for _, j := range r.RecentJobs {
		w := j.State
		if j.State == "exited" {
			w = fmt.Sprintf("exited %d", j.ExitCode)
		}
		out = append(out, fmt.Sprintf("  %-10s started %-8s %s", w, runner.ContactWord(runner.Runner{LastContact: j.Created}, now), j.Name))
	}
	return out
}

func stateWord(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// Render draws the tab in width x height cells: the table, a line on what the selected
// runner is, and the bottom line.
func Render(st dashboard.Styles, v View, width, height int) string {
	var lines []string
	switch {
	case v.Err != nil:
		lines = append(lines, st.StatusErr.Render(ansi.Truncate(" "+termsafe.Line(v.Err.Error()), width, "…")))
	case !v.Loaded:
		lines = append(lines, st.Dim.Render(" loading runners..."))
	}
	if v.Loaded && len(v.List) == 0 && v.Err == nil {
		lines = append(lines,
			st.Notice.Render(ansi.Truncate(" No runner yet. Create one in GitLab (project -> Settings -> CI/CD -> Runners),", width, "…")),
			st.Notice.Render(ansi.Truncate(" then press t and paste its token (it is not shown), or: runner token < token.txt", width, "…")))
	}
	if len(v.List) > 0 {
		widths := []int{14, 14, 10, 4, 7, 12}
		head := "NAME            PROJECT         STATE       JOBS  ONLINE   LAST CONTACT  STATUS"
		if v.WithOwner {
			widths = []int{8, 12, 12, 10, 4, 7, 12}
			head = "OWNER     NAME          PROJECT       STATE       JOBS  ONLINE   LAST CONTACT  STATUS"
		}
		lines = append(lines, st.ColumnHead.Render(ansi.Truncate(dashboard.NoMarker+head, width, "")))
		for i, r := range v.List {
			text := row(r, v.WithOwner, widths, v.Jobs, v.Now)
			if i == v.Sel {
				lines = append(lines, st.SelectedRow(text, width))
				continue
			}
			style := st.Stopped
			switch r.State {
			case "running":
				style = st.Running
			case "missing", "dead":
				style = st.Failed
			}
			lines = append(lines, style.Render(ansi.Truncate(dashboard.NoMarker+text, width, "…")))
		}
		r := v.List[min(max(v.Sel, 0), len(v.List)-1)]
		lines = append(lines, "")
		for _, l := range Details(r, v.Now) {
			lines = append(lines, st.Dim.Render(ansi.Truncate(" "+termsafe.Line(l), width, "…")))
		}
	}
	for len(lines) < height-1 {
		lines = append(lines, "")
	}
	if len(lines) > height-1 {
		lines = lines[:max(height-1, 0)]
	}
	if height > 0 {
		lines = append(lines, ansi.Truncate(v.Bottom, width, ""))
	}
	return strings.Join(lines, "\n")
}
