package containers

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/gpuhours"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Fair GPUs in the Containers tab: the user's requests waiting for GPUs with their places
// (read again whenever the snapshot says something of theirs changed: the waiting list wakes
// the dashboards of everyone in it), the containers due an idle stop, and for students one
// usage line (quota, GPU-hours).

// fairService is what a service offers when it keeps a GPU waiting list and stops idle
// containers (docker.Service).
type fairService interface {
	RunOrWait(ctx context.Context, id backend.Identity, spec docker.RunSpec, preset string) (docker.Container, *docker.Waiting, error)
	WaitingList(id backend.Identity) []docker.Waiting
	IdleStop(c docker.Container) time.Time
}

var _ fairService = (*docker.Service)(nil)

// GPUHours is the GPU-hours ledger as the tab reads it; *gpuhours.Meter is one.
type GPUHours interface {
	Since(since time.Time) map[string]gpuhours.Usage
}

// SetGPUHours gives the tab the GPU-hours ledger, for the student's usage line.
func (t *Tab) SetGPUHours(h GPUHours) { t.hours = h }

// fairState is what the tab read of the waiting list, idle stops and GPU-hours at its last
// reload.
type fairState struct {
	waiting []docker.Waiting
	idle    []idleDue
	today   gpuhours.Usage
	week    gpuhours.Usage
}

// idleDue is one of the user's containers due an idle stop.
type idleDue struct {
	name string
	at   time.Time
}

// reloadFair reads the waiting list, the idle stops and the GPU-hours (no engine call).
func (t *Tab) reloadFair() {
	f, ok := t.svc.(fairService)
	if !ok {
		return
	}
	t.fair = fairState{waiting: f.WaitingList(t.id)}
	for _, c := range t.all {
		if c.Owner != t.id.User || c.State != "running" {
			continue
		}
		if at := f.IdleStop(c); !at.IsZero() {
			t.fair.idle = append(t.fair.idle, idleDue{name: c.Name, at: at})
		}
	}
	if t.hours != nil && !t.id.IsTA() {
		now := t.now()
		t.fair.today = t.hours.Since(now.UTC().Truncate(24 * time.Hour))[t.id.User]
		t.fair.week = t.hours.Since(now.Add(-7 * 24 * time.Hour))[t.id.User]
	}
}

// fairLines are the lines above the table: the usage line (students), each waiting request
// with its place, each container due an idle stop.
func fairLines(f fairState, student bool, q docker.Quota, have, running int, ta bool, now time.Time) []string {
	var out []string
	if student {
		out = append(out, usageText(q, have, running, f.today, f.week))
	}
	switch {
	case ta && len(f.waiting) > 0:
		refs := make([]string, 0, min(3, len(f.waiting)))
		for _, w := range f.waiting[:min(3, len(f.waiting))] {
			refs = append(refs, termsafe.Line(w.Ref()))
		}
		more := ""
		if len(f.waiting) > 3 {
			more = ", …"
		}
		out = append(out, fmt.Sprintf("%d waiting for GPUs: %s%s (waiting)", len(f.waiting), strings.Join(refs, ", "), more))
	case !ta:
		for _, w := range f.waiting {
			out = append(out, fmt.Sprintf("%s waits for GPUs (%s): %s of %d in line, for %s",
				termsafe.Line(w.Name), termsafe.Line(w.GPUs), ordinal(w.Position), w.Of, format.Age(now.Sub(w.Since))))
		}
	}
	for _, d := range f.idle {
		out = append(out, fmt.Sprintf("%s is idle: it stops at %s unless you use it (shell, exec, a forward)", termsafe.Line(d.name), d.at.Local().Format("15:04")))
	}
	return out
}

// usageText is a student's usage line: "usage: 2 of 5 containers, 1 of 3 running · GPU-hours
// today 1.25 held, 0.40 used · 7 days 3.10 held".
func usageText(q docker.Quota, have, running int, today, week gpuhours.Usage) string {
	return fmt.Sprintf("usage: %d of %d containers, %d of %d running · GPU-hours today %.2f held, %.2f used · 7 days %.2f held",
		have, q.MaxContainers, running, q.MaxRunning, today.Held, today.Used, week.Held)
}

// ordinal is "1st", "2nd", "3rd", "11th".
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}
