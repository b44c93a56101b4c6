package containers

import (
	"strings"
	"testing"
	"time"

	"whalemountain/backend/docker"
	"whalemountain/backend/gpuhours"
)

func TestFairLines(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.Local)
	q := docker.Quota{MaxContainers: 5, MaxRunning: 3}
	f := fairState{
		waiting: []docker.Waiting{{Owner: "alice", Name: "train", GPUs: "1", Position: 2, Of: 3, Since: now.Add(-12 * time.Minute)}},
		idle:    []idleDue{{name: "box", at: time.Date(2026, 12, 2, 10, 30, 0, 0, time.Local)}},
		today:   gpuhours.Usage{Held: 1.25, Used: 0.4},
		week:    gpuhours.Usage{Held: 3.1},
	}
	got := strings.Join(fairLines(f, true, q, 2, 1, false, now), "\n")
	want := "usage: 2 of 5 containers, 1 of 3 running · GPU-hours today 1.25 held, 0.40 used · 7 days 3.10 held\n" +
		"train waits for GPUs (1): 2nd of 3 in line, for 12m\n" +
		"box is idle: it stops at 10:30 unless you use it (shell, exec, a forward)"
	if got != want {
		t.Errorf("student:\n%s\nwant:\n%s", got, want)
	}
	ta := fairState{waiting: []docker.Waiting{{Owner: "a", Name: "x"}, {Owner: "b", Name: "y"}, {Owner: "c", Name: "z"}, {Owner: "d", Name: "w\x1b"}}}
	if got := strings.Join(fairLines(ta, false, q, 0, 0, true, now), "\n"); got != "4 waiting for GPUs: a/x, b/y, c/z, … (waiting)" {
		t.Errorf("TA: %q", got)
	}
	if got := fairLines(fairState{}, false, q, 0, 0, false, now); len(got) != 0 {
		t.Errorf("nothing to say: %q", got)
	}
}

func TestFormWait(t *testing.T) {
	for _, c := range []struct {
		gpus, wait string
		err        string
		yes        bool
	}{
		{"", "", "", false},
		{"1", "y", "", true},
		{"1", "Yes", "", true},
		{"1", "no", "", false},
		{"", "y", "waiting is for GPUs: give the GPUs above", true},
		{"1", "maybe", "y to wait for the GPUs, n (or nothing) not to", false},
	} {
		f := newForm(formLimits{defaultCPUs: 1, defaultMem: 1 << 30, maxCPUs: 2, maxMem: 4 << 30})
		f.inputs[fImage].SetValue("busybox")
		f.inputs[fGPUs].SetValue(c.gpus)
		f.inputs[fWait].SetValue(c.wait)
		_, errs := f.parse()
		yes, _ := f.wait()
		if errs[fWait] != c.err || yes != c.yes {
			t.Errorf("gpus %q wait %q: error %q, yes %v", c.gpus, c.wait, errs[fWait], yes)
		}
	}
}
