package class

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend/docker"
	"whalemountain/backend/kube"
	"whalemountain/tui/dashboard"
)

const gib = int64(1) << 30

func quota(ta bool) int {
	if ta {
		return 20
	}
	return 5
}

func sample() ([]docker.Container, map[string]Presence) {
	conts := []docker.Container{
		{Owner: "alice", Name: "a1", State: "running", GPUs: "0,2", CPUPercent: 150, MemUsage: 2 * gib, Preset: "ml101"},
		{Owner: "alice", Name: "a2", State: "running", CPUPercent: 50, MemUsage: gib},
		{Owner: "alice", Name: "a3", State: "exited", GPUs: "1", MemUsage: 9 * gib},
		{Owner: "bob", Name: "b1", State: "exited", Preset: "os202"},
		{Owner: "carol", Name: "c1", State: "running", CPUPercent: 5, MemUsage: 512 << 20},
	}
	pres := map[string]Presence{"bob": {Sessions: 2}, "tina": {Sessions: 1, TA: true}, "gone": {}}
	return conts, pres
}

func users(rows []Row) []string {
	var out []string
	for _, r := range rows {
		out = append(out, r.User)
	}
	return out
}

func TestRowsSumsPerUser(t *testing.T) {
	conts, pres := sample()
	rows := Rows(conts, nil, pres, map[string]float64{"alice": 2.25}, quota, "", ByUser)
	if got, want := users(rows), []string{"alice", "bob", "carol", "tina"}; !slices.Equal(got, want) {
		t.Fatalf("users %v, want %v (a user without containers or sessions has no row)", got, want)
	}
	a := rows[0]
	if a.Running != 2 || a.Total != 3 || a.GPUs != 2 || a.CPU != 200 || a.Mem != 3*gib || a.Quota != 5 || a.Sessions != 0 {
		t.Errorf("alice %+v: only running containers count for GPUs, CPU and memory", a)
	}
	if got := Cells(a); !slices.Equal(got, []string{"alice", "0", "2/3", "0/0", "2", "2.2", "200%", "3.0 GiB", "3/5"}) {
		t.Errorf("alice cells %q", got)
	}
	if got := Cells(rows[1]); !slices.Equal(got, []string{"bob", "2", "0/1", "0/0", "0", "-", "-", "-", "1/5"}) {
		t.Errorf("bob cells %q", got)
	}
	if got := Cells(rows[3]); !slices.Equal(got, []string{"tina (TA)", "1", "0/0", "0/0", "0", "-", "-", "-", "0/20"}) {
		t.Errorf("tina cells %q: a TA's row counts against the TA quota", got)
	}
}

func TestRowsSortAndFilter(t *testing.T) {
	conts, pres := sample()
	cases := []struct {
		col    Column
		filter string
		want   []string
	}{
		{ByUser, "", []string{"alice", "bob", "carol", "tina"}},
		{BySessions, "", []string{"bob", "tina", "alice", "carol"}},
		{ByContainers, "", []string{"alice", "carol", "bob", "tina"}},
		{ByGPUs, "", []string{"alice", "bob", "carol", "tina"}},
		{ByCPU, "", []string{"alice", "carol", "bob", "tina"}},
		{ByMem, "", []string{"alice", "carol", "bob", "tina"}},
		{ByQuota, "", []string{"alice", "bob", "carol", "tina"}},
		{ByUser, "ML1", []string{"alice"}}, // a preset
		{ByUser, "OS2", []string{"bob"}},
		{ByUser, "o", []string{"bob", "carol"}},
		{ByUser, "nobody", nil},
	}
	for _, c := range cases {
		if got := users(Rows(conts, nil, pres, nil, quota, c.filter, c.col)); !slices.Equal(got, c.want) {
			t.Errorf("sort %s filter %q: %v, want %v", headers[c.col], c.filter, got, c.want)
		}
	}
}

func TestRenderFits(t *testing.T) {
	conts, pres := sample()
	for i := range 40 {
		conts = append(conts, docker.Container{Owner: strings.Repeat("x", i%30+1) + "\x1b[31mred", Name: "n", State: "running", CPUPercent: 12345, MemUsage: 1 << 50})
	}
	rows := Rows(conts, nil, pres, nil, quota, "", ByCPU)
	st := dashboard.DefaultStyles()
	for _, size := range [][2]int{{80, 24}, {200, 60}, {40, 10}} {
		w, h := size[0], size[1]
		for _, v := range []View{
			{Rows: rows, Sel: len(rows) - 1, SortBy: ByCPU},
			{Rows: nil, Empty: true, Filter: "filter: zz · esc clears"},
			{Rows: rows[:2], Filtering: true, Filter: "/al", Health: docker.Health{Err: "dial unix: no such file", Since: time.Unix(1, 0)}},
		} {
			out := Render(st, v, w, h)
			lines := strings.Split(out, "\n")
			if len(lines) > h {
				t.Errorf("%dx%d: %d lines", w, h, len(lines))
			}
			for _, l := range lines {
				if lw := ansi.StringWidth(l); lw > w {
					t.Errorf("%dx%d: line %d cells wide: %q", w, h, lw, ansi.Strip(l))
				}
				if strings.Contains(ansi.Strip(l), "\x1b") {
					t.Errorf("%dx%d: escape from a user name reached the screen: %q", w, h, l)
				}
			}
			plain := ansi.Strip(out)
			if !strings.Contains(plain, "USER") || !strings.Contains(plain, "SESSIONS") {
				t.Errorf("%dx%d: no header:\n%s", w, h, plain)
			}
			if w >= 80 {
				for _, col := range headers {
					if !strings.Contains(plain, col) {
						t.Errorf("%dx%d: column %s missing:\n%s", w, h, col, plain)
					}
				}
			}
		}
		// The selected last row is on screen.
		out := ansi.Strip(Render(st, View{Rows: rows, Sel: len(rows) - 1, SortBy: ByUser}, w, h))
		if last := termsafeUser(rows[len(rows)-1]); !strings.Contains(out, last[:min(len(last), 6)]) {
			t.Errorf("%dx%d: selected last row %q not shown:\n%s", w, h, last, out)
		}
	}
	out := ansi.Strip(Render(st, View{Rows: rows, SortBy: ByCPU}, 80, 24))
	if !strings.Contains(out, "CPU↓") || !strings.Contains(out, "sorted by cpu") {
		t.Errorf("the sort column is not marked:\n%s", out)
	}
	if out := ansi.Strip(Render(st, View{Empty: true}, 80, 24)); !strings.Contains(out, "Nobody matches the filter") {
		t.Errorf("empty filtered table:\n%s", out)
	}
}

func termsafeUser(r Row) string { return Cells(r)[0] }

// TestRenderSharing: a user who shares a shell is marked before the name, at 80x24 and at
// 200x60, and the summary says how many share (and that w joins).
func TestRenderSharing(t *testing.T) {
	conts, pres := sample()
	rows := Rows(conts, nil, pres, nil, quota, "", ByUser)
	for i := range rows {
		rows[i].Sharing = rows[i].User == "bob"
	}
	st := dashboard.DefaultStyles()
	for _, size := range [][2]int{{80, 24}, {200, 60}} {
		w, h := size[0], size[1]
		out := Render(st, View{Rows: rows, SortBy: ByUser}, w, h)
		lines := strings.Split(ansi.Strip(out), "\n")
		if len(lines) > h {
			t.Errorf("%dx%d: %d lines", w, h, len(lines))
		}
		marked := 0
		for _, l := range lines {
			if lw := ansi.StringWidth(l); lw > w {
				t.Errorf("%dx%d: line %d cells wide: %q", w, h, lw, l)
			}
			if strings.HasPrefix(l, SharingMark) {
				marked++
				if !strings.HasPrefix(l, SharingMark+"bob ") {
					t.Errorf("%dx%d: the wrong row is marked: %q", w, h, l)
				}
			}
		}
		if marked != 1 {
			t.Errorf("%dx%d: %d rows marked, want bob's:\n%s", w, h, marked, strings.Join(lines, "\n"))
		}
		if !strings.Contains(lines[0], SharingMark+" 1 sharing a shell (w joins)") {
			t.Errorf("%dx%d: the summary: %q", w, h, lines[0])
		}
		// The other rows keep their place: the mark takes the first cell.
		for _, l := range lines[1:] {
			if strings.Contains(l, "carol") && !strings.HasPrefix(l, " carol ") {
				t.Errorf("%dx%d: carol's row moved: %q", w, h, l)
			}
		}
		// Selected, the row keeps its mark after the selection's.
		sel := ansi.Strip(Render(st, View{Rows: rows, Sel: 1, SortBy: ByUser}, w, h))
		if !strings.Contains(sel, dashboard.Marker+SharingMark+"bob ") {
			t.Errorf("%dx%d: the selected sharing row:\n%s", w, h, sel)
		}
	}
}

func TestCullsAndHours(t *testing.T) {
	now := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	cs := []docker.Cull{
		{Owner: "alice", Name: "gpu", At: now.Add(-5 * time.Minute)},
		{Owner: "bob", Name: "x\x1b]0;", At: now.Add(-2 * time.Hour)},
		{Owner: "carol", Name: "old", At: now.Add(-25 * time.Hour)},
	}
	if got := cullsLine(cs, now); !strings.HasPrefix(got, "idle stops: alice/gpu 5m ago, bob/x") ||
		!strings.HasSuffix(got, " 2h ago (audit --action cull)") || strings.Contains(got, "\x1b") || strings.Contains(got, "carol") {
		t.Errorf("cullsLine = %q", got)
	}
	if got := cullsLine(cs[2:], now); got != "" {
		t.Errorf("a day-old stop: %q", got)
	}
	conts := []docker.Container{{Owner: "a", State: "running"}, {Owner: "b", State: "running"}, {Owner: "c", State: "exited"}}
	rows := Rows(conts, nil, nil, map[string]float64{"a": 1, "b": 5}, nil, "", ByGPUHours)
	if got := []string{rows[0].User, rows[1].User, rows[2].User}; !slices.Equal(got, []string{"b", "a", "c"}) {
		t.Errorf("by GPU-hours: %v", got)
	}
}

func TestRowsWithPods(t *testing.T) {
	conts := []docker.Container{{Owner: "alice", State: "running", GPUs: "0"}}
	pods := []kube.Pod{
		{Owner: "alice", Phase: "Running", GPUs: 2},
		{Owner: "bob", Phase: "Running"},
		{Owner: "bob", Phase: "Running"},
		{Owner: "bob", Phase: "Failed", GPUs: 1}, // ended: holds nothing
		{Owner: "carol", Phase: "Pending", GPUs: 1},
	}
	rows := Rows(conts, pods, nil, nil, nil, "", ByPods)
	if got := users(rows); !slices.Equal(got, []string{"bob", "alice", "carol"}) {
		t.Fatalf("by pods: %v, want bob (2 running), alice (1), carol (0 running)", got)
	}
	for _, c := range []struct {
		row        Row
		pods, gpus string
	}{{rows[0], "2/3", "0"}, {rows[1], "1/1", "3"}, {rows[2], "0/1", "0"}} {
		cells := Cells(c.row)
		if cells[3] != c.pods || cells[4] != c.gpus {
			t.Errorf("%s: pods %q GPUs %q, want %q %q", c.row.User, cells[3], cells[4], c.pods, c.gpus)
		}
	}
	if got := summary(rows); !strings.Contains(got, "3 users") || !strings.Contains(got, "1/1 containers running · 3/5 pods · 3 GPUs") {
		t.Errorf("summary %q", got)
	}
	if got := summary(Rows(conts, nil, nil, nil, nil, "", ByUser)); strings.Contains(got, "pods") {
		t.Errorf("without pods the summary speaks of them: %q", got)
	}
}
