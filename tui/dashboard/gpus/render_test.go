package gpus

import (
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/gpu"
	"whalemountain/tui/dashboard"
)

func ptr[T any](v T) *T { return &v }

var (
	alice = backend.Identity{User: "alice", Role: backend.RoleStudent}
	bob   = backend.Identity{User: "bob", Role: backend.RoleStudent}
	ta    = backend.Identity{User: "tina", Role: backend.RoleTA}
)

// sample is two A100s: GPU 0 busy with alice's and bob's containers, GPU 1 free.
func sample() gpu.State {
	hist := []gpu.Point{}
	for i, u := range []int{10, -1, 30, 50, 72, 100} {
		hist = append(hist, gpu.Point{At: time.Unix(int64(i), 0), Util: u})
	}
	return gpu.State{
		Available: true,
		At:        time.Unix(100, 0),
		GPUs: []gpu.GPU{
			{
				Index: 0, Name: "A100-SXM4-40GB", Util: ptr(72),
				MemUsed: ptr(gibs(27.1)), MemTotal: ptr(40 * gib),
				TempC: ptr(61), PowerW: ptr(231.4), ProcessesKnown: true, History: hist,
				Processes: []gpu.Process{
					{PID: 11, MemUsed: ptr(gibs(26.8)), Where: gpu.WhereContainer, ContainerID: "c1", Owner: "alice", ContainerName: "jupyter"},
					{PID: 12, MemUsed: ptr(gib), Where: gpu.WhereContainer, ContainerID: "c2", Owner: "bob", ContainerName: "train"},
				},
			},
			{
				Index: 1, Name: "A100-SXM4-40GB", Util: ptr(0),
				MemUsed: ptr(int64(0)), MemTotal: ptr(40 * gib),
				TempC: ptr(34), PowerW: ptr(52.0), ProcessesKnown: true,
			},
		},
	}
}

// seenBy is sample as gpu.Sampler.Snapshot hands it to id, written out by hand: a student's
// view hides the other student's process down to its memory; a TA's adds the summary.
func seenBy(id backend.Identity) gpu.State {
	s := sample()
	procs := s.GPUs[0].Processes
	switch id {
	case alice:
		procs[1] = gpu.Process{MemUsed: procs[1].MemUsed, Where: gpu.WhereHidden}
	case bob:
		procs[0] = gpu.Process{MemUsed: procs[0].MemUsed, Where: gpu.WhereHidden}
	case ta:
		s.Users = []gpu.UserSummary{
			{User: "alice", GPUs: []int{0}, MemUsed: gibs(26.8), MeanUtil: ptr(72)},
			{User: "bob", GPUs: []int{0}, MemUsed: gib, MeanUtil: ptr(72)},
		}
	default:
		panic("no view written for " + id.String())
	}
	return s
}

func plain(lines []string) string { return ansi.Strip(strings.Join(lines, "\n")) }

func TestBar(t *testing.T) {
	st := dashboard.DefaultStyles()
	for _, c := range []struct {
		pct         *int
		width       int
		full, empty int
	}{
		{ptr(0), 10, 0, 10},
		{ptr(72), 10, 7, 3},
		{ptr(100), 10, 10, 0},
		{ptr(150), 4, 4, 0},
		{ptr(-5), 4, 0, 4},
		{nil, 5, 0, 5},
	} {
		got := ansi.Strip(bar(st, c.pct, c.width))
		want := strings.Repeat("█", c.full) + strings.Repeat("░", c.empty)
		if got != want {
			t.Errorf("bar(%v, %d) = %q, want %q", c.pct, c.width, got, want)
		}
	}
	if bar(st, ptr(50), 0) != "" {
		t.Error("a bar of width 0 is not empty")
	}
}

func TestSparkline(t *testing.T) {
	pts := func(us ...int) []gpu.Point {
		out := make([]gpu.Point, len(us))
		for i, u := range us {
			out[i] = gpu.Point{Util: u}
		}
		return out
	}
	if got, want := sparkline(pts(0, -1, 50, 100, -1), 10), "▁ ▄█ "; got != want {
		t.Errorf("sparkline = %q, want %q", got, want)
	}
	// Only the newest points that fit.
	if got, want := sparkline(pts(0, 0, 100, 100), 2), "██"; got != want {
		t.Errorf("sparkline cut = %q, want %q", got, want)
	}
	if got := sparkline(nil, 5); got != "" {
		t.Errorf("empty history = %q", got)
	}
}

func TestCardStudentSeesOwnOnly(t *testing.T) {
	st := dashboard.DefaultStyles()
	v := seenBy(alice)
	out := plain(card(st, v.GPUs[0], alice, 14, 80))
	for _, want := range []string{"GPU 0", "A100-SXM4-40GB", "72%", "27.1/40 GiB", "61°C", "231 W",
		"alice/jupyter 26.8 GiB", "in use by another user 1.0 GiB", "▁ ▃▄▆█"} {
		if !strings.Contains(out, want) {
			t.Errorf("card lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "bob") || strings.Contains(out, "train") {
		t.Errorf("a student sees another user's process:\n%s", out)
	}
	free := plain(card(st, v.GPUs[1], alice, 14, 80))
	if !strings.Contains(free, "free") || !strings.Contains(free, "0.0/40 GiB") {
		t.Errorf("free GPU card:\n%s", free)
	}
}

func TestCardTASeesAllAndSummary(t *testing.T) {
	st := dashboard.DefaultStyles()
	v := seenBy(ta)
	out := plain(render(st, v, ta, 80))
	for _, want := range []string{"alice/jupyter 26.8 GiB", "bob/train 1.0 GiB", "USER", "MEAN UTIL"} {
		if !strings.Contains(out, want) {
			t.Errorf("TA view lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, gpu.WhereHidden) {
		t.Errorf("a TA sees hidden processes:\n%s", out)
	}
	var aliceRow string
	for l := range strings.SplitSeq(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "alice ") {
			aliceRow = l
		}
	}
	if !strings.Contains(aliceRow, "26.8 GiB") || !strings.Contains(aliceRow, "72%") || !strings.Contains(aliceRow, " 0 ") {
		t.Errorf("alice's summary row = %q", aliceRow)
	}
	// Students get no summary.
	if s := plain(render(st, seenBy(bob), bob, 80)); strings.Contains(s, "MEAN UTIL") {
		t.Errorf("a student gets the summary:\n%s", s)
	}
}

func TestFitsWidth(t *testing.T) {
	st := dashboard.DefaultStyles()
	s := seenBy(ta)
	s.GPUs[0].Name = "NVIDIA A100-SXM4-80GB with a very long marketing name indeed"
	s.GPUs[0].Processes = append(s.GPUs[0].Processes,
		gpu.Process{MemUsed: ptr(int64(5 * gib)), Where: gpu.WhereContainer, Owner: "carol", ContainerName: "a-rather-long-container-name"},
		gpu.Process{PID: 4242, Where: gpu.WhereHost})
	s.GPUs[1].Util, s.GPUs[1].MemUsed, s.GPUs[1].TempC, s.GPUs[1].PowerW = nil, nil, nil, nil
	s.Users = append(s.Users, gpu.UserSummary{User: "carol", GPUs: []int{0}, MemUsed: 5 * gib, MeanUtil: ptr(72)})
	for _, w := range []int{80, 60, 40} {
		lines := render(st, s, ta, w)
		for _, l := range lines {
			if got := ansi.StringWidth(l); got > w {
				t.Errorf("width %d: line is %d cells: %q", w, got, ansi.Strip(l))
			}
		}
		if w == 80 && len(lines) > 24 {
			t.Errorf("two GPUs take %d lines", len(lines))
		}
	}
	out := plain(render(st, s, ta, 80))
	if !strings.Contains(out, "carol/a-rather-long-container-name 5.0 GiB") || !strings.Contains(out, "host pid 4242") {
		t.Errorf("wrapped processes missing:\n%s", out)
	}
	if !strings.Contains(out, "GPU 1") || !strings.Contains(out, "util ") || !strings.Contains(out, "–") {
		t.Errorf("unknown readings not shown as –:\n%s", out)
	}
}

func TestUnavailableLine(t *testing.T) {
	st := dashboard.DefaultStyles()
	got := plain(render(st, gpu.State{Reason: "NVML not found\x1b[2J"}, alice, 80))
	if !strings.Contains(got, "No GPUs on this server: NVML not found") || strings.Contains(got, "\x1b") {
		t.Errorf("unavailable = %q", got)
	}
	if strings.Count(got, "\n") != 0 {
		t.Errorf("unavailable is more than one line: %q", got)
	}
}

func TestNamesNeutralised(t *testing.T) {
	st := dashboard.DefaultStyles()
	s := seenBy(alice)
	s.GPUs[0].Name = "evil\x1b]0;pwned\x07"
	s.GPUs[0].Processes[0].ContainerName = "box\x1b[31m"
	out := strings.Join(render(st, s, alice, 80), "\n")
	if strings.Contains(out, "\x1b]0;") || strings.Contains(out, "\x1b[31m") || strings.Contains(out, "\x07") {
		t.Errorf("control sequences from outside reach the screen: %q", out)
	}
}

func gibs(f float64) int64 { return int64(f * float64(gib)) }
