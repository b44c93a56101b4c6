package containers

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend/docker"
	"whalemountain/tui/format"
)

// A TA stopping or removing a student's container says why; the student reads it.

func TestTAGivesAReasonForAnotherUsersContainer(t *testing.T) {
	f := newFake(threeOfAlice()...)
	tab := New(f, tina, testStyles(), fixedNow)
	d := newDriver(t, tab)

	d.press("S") // alice/a1 runs: why?
	if !strings.Contains(d.screen, "stop alice/a1: why? alice reads this") || !tab.Capturing() {
		t.Fatalf("no question asking why:\n%s", d.screen)
	}
	d.press("enter") // no reason yet: nothing happens, it says what is missing
	if !strings.Contains(d.screen, "say why in a few words") || len(f.actionsDone()) != 0 {
		t.Errorf("an empty reason was taken: %q\n%s", f.actionsDone(), d.screen)
	}
	d.press("esc")
	if tab.confirm != nil || len(f.actionsDone()) != 0 {
		t.Errorf("esc did not keep it: %q", f.actionsDone())
	}
	d.press("S")
	d.typeText("the exam needs the GPU")
	d.press("enter")
	d.waitStatus("alice/a1: stopped")

	d.press("G", "d") // alice/a3 (exited): why, no y/N
	if !strings.Contains(d.screen, "remove alice/a3: why?") || strings.Contains(d.screen, "y/N") {
		t.Fatalf("no reason asked for removing:\n%s", d.screen)
	}
	d.typeText("crashed for a week")
	d.press("enter")
	d.waitStatus("alice/a3: removed")
	want := []string{"stop alice/a1 the exam needs the GPU", "rm alice/a3 false crashed for a week"}
	if got := f.actionsDone(); !slices.Equal(got, want) {
		t.Errorf("actions %q, want %q", got, want)
	}
}

func TestOwnContainersNeedNoReason(t *testing.T) {
	f := newFake(append(threeOfAlice(), running("tina", "mine", "busybox", time.Minute))...)
	tab := New(f, tina, testStyles(), fixedNow)
	d := newDriver(t, tab)
	d.press("G", "S") // tina/mine is the TA's own: stopped at once
	d.waitStatus("mine: stopped")
	student := New(f, alice, testStyles(), fixedNow)
	ds := newDriver(t, student)
	ds.press("S")
	ds.waitStatus("a1: stopped")
	if got := f.actionsDone(); !slices.Equal(got, []string{"stop tina/mine", "stop alice/a1"}) {
		t.Errorf("actions %q", got)
	}
}

func TestNoticesShownOnceAtOnceAndAtLogin(t *testing.T) {
	f := newFake(threeOfAlice()...)
	f.notices = []docker.Notice{{Seq: 1, At: t0.Add(-5 * time.Minute), Container: "a3", Action: "stop", By: "tina", ByRole: "ta", Reason: "the exam needs the GPU"}}
	tab := New(f, alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	st := d.waitStatus("tina (TA) stopped your container a3 5m ago: the exam needs the GPU")
	if st.Err {
		t.Errorf("a notice is not an error: %+v", st)
	}
	if _, seen := f.Notices(alice); seen != 1 {
		t.Errorf("seen mark %d, want 1", seen)
	}
	// While the dashboard is open: a new one comes with the change it made.
	f.mu.Lock()
	f.notices = append(f.notices, docker.Notice{Seq: 2, At: t0, Container: "a2", Action: "rm", By: "tina", ByRole: "ta"})
	f.mu.Unlock()
	f.set(threeOfAlice()[0:1], docker.Health{OK: true})
	d.waitStatus("tina (TA) removed your container a2 (no reason given)")
	// The next login shows nothing again.
	n := len(d.status)
	again := newDriver(t, New(f, alice, testStyles(), fixedNow))
	again.settle(100 * time.Millisecond)
	if len(again.status) != 0 || len(d.status) != n {
		t.Errorf("notices shown twice: %+v", again.status)
	}
}

func TestStoppedOnPurposeReadsStopped(t *testing.T) {
	stopped := docker.Container{Owner: "alice", Name: "box", Image: "busybox", State: "exited", ExitCode: 143, ID: "i1",
		StartedAt: t0.Add(-time.Hour), Stopped: &docker.StopInfo{By: "tina", ByRole: "ta", Reason: "exam", At: t0.Add(-time.Minute)}}
	crash := docker.Container{Owner: "alice", Name: "crash", Image: "busybox", State: "exited", ExitCode: 143, ID: "i2"}
	f := newFake(stopped, crash)
	f.details = docker.Details{Container: stopped, FinishedAt: t0.Add(-time.Minute), Home: "/home/alice"}
	tab := New(f, alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	if r := d.row("box"); !strings.Contains(r, "stopped") || strings.Contains(r, "exited") {
		t.Errorf("box row %q", r)
	}
	if r := d.row("crash"); !strings.Contains(r, "exited(143)") {
		t.Errorf("crash row %q", r)
	}
	d.press("enter")
	d.waitFor("the details", func() bool { return strings.Contains(d.screen, "stopped by") })
	for _, want := range []string{"state stopped", "stopped 1m ago", "stopped by tina (TA): exam"} {
		if !strings.Contains(d.screen, want) {
			t.Errorf("details lack %q:\n%s", want, d.screen)
		}
	}
	if strings.Contains(d.screen, "exit code") {
		t.Errorf("a stop on purpose shows an exit code:\n%s", d.screen)
	}
}

func TestDetailsShowPortsAddressAndTimes(t *testing.T) {
	st := testStyles()
	live := docker.Container{Owner: "alice", Name: "jupyter", Image: "registry/alice/ml:latest", State: "running",
		StartedAt: t0.Add(-2*time.Hour - 13*time.Minute)}
	d := &docker.Details{Container: live, Home: "/home/alice", IPAddress: "172.18.0.2", Network: "wm-net-alice",
		ExposedPorts: []string{"53/udp", "8080/tcp", "8888/tcp"}}
	forward := func(port int) string {
		return strings.ReplaceAll("ssh -L P:jupyter:P -p 2222 alice@gpu1.ie.example", "P", strconv.Itoa(port))
	}
	lines := renderDetails(st, detailsView{title: "jupyter", live: live, details: d, now: t0, forward: forward}, 80)
	text := plain(strings.Join(lines, "\n"))
	for _, want := range []string{
		"started 2h13m ago", "address 172.18.0.2 on wm-net-alice",
		"ports: ssh -L 8080:jupyter:8080 -p 2222 alice@gpu1.ie.example",
		"       ssh -L 8888:jupyter:8888 -p 2222 alice@gpu1.ie.example",
		"also 53/udp",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("details lack %q:\n%s", want, text)
		}
	}
	// Not running: nothing to forward to yet.
	stopped := live
	stopped.State = "exited"
	text = plain(strings.Join(renderDetails(st, detailsView{title: "jupyter", live: stopped, details: d, now: t0, forward: forward}, 80), "\n"))
	if strings.Contains(text, "ssh -L") || !strings.Contains(text, "ports 53/udp, 8080/tcp, 8888/tcp") {
		t.Errorf("a stopped container's details:\n%s", text)
	}
	// Someone else's container (a TA looking): the ports, no ssh line.
	other := plain(strings.Join(renderDetails(st, detailsView{title: "alice/jupyter", live: live, details: d, now: t0}, 80), "\n"))
	if strings.Contains(other, "ssh -L") || !strings.Contains(other, "ports 53/udp, 8080/tcp, 8888/tcp") {
		t.Errorf("another's details:\n%s", other)
	}
}

func TestNamesShownAsTyped(t *testing.T) {
	c := running("alice", "ゆきの箱", "registry.example.org/ゆき/ノート:latest", time.Hour)
	c2 := running("alice", "café-\x1b[2J", "busybox", time.Hour)
	tab := New(newFake(c, c2), alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	if !strings.Contains(d.screen, "ゆきの箱") || !strings.Contains(d.screen, "ノート:latest") {
		t.Errorf("a name with non-ASCII letters is not shown as typed:\n%s", d.screen)
	}
	if !strings.Contains(d.screen, `café-\x1b[2J`) {
		t.Errorf("control characters not escaped, or é not kept:\n%s", d.screen)
	}
	d.press("/")
	d.typeText("ゆき")
	if !strings.Contains(d.screen, "/ゆき") || d.row("ゆきの箱") == "" || d.row(`café-\x1b[2J`) != "" {
		t.Errorf("filter by a non-ASCII name:\n%s", d.screen)
	}
}

func TestTAViewShortensImagesFromTheLeft(t *testing.T) {
	c := running("alice", "jupyter-notebook", "registry.example.org/group/alice/ml:latest", time.Hour)
	c.GPUs, c.StatsAt, c.CPUPercent, c.MemUsage, c.MemLimit = "0,1", t0, 12, 3<<30, 8<<30
	c2 := running("bob", "train", "registry.example.org/group/bob/pytorch-cuda:2.3-cudnn9", time.Hour)
	tab := New(newFake(c, c2), tina, testStyles(), fixedNow)
	d := newDriver(t, tab)
	lines := strings.Split(ansi.Strip(tab.View(80, 20)), "\n")
	for _, l := range lines {
		if ansi.StringWidth(l) > 80 {
			t.Errorf("line of %d cells: %q", ansi.StringWidth(l), l)
		}
	}
	if !strings.Contains(d.row("jupyter-notebook"), " …/alice/ml:latest ") {
		t.Errorf("image not shortened to its own name:\n%s", strings.Join(lines, "\n"))
	}
}

func TestShortenedImageColumnTakesWhatItNeeds(t *testing.T) {
	// 3 cells too wide: the image loses its registry host, and its column only what it needs.
	c := running("alice", "notebook-of-alice-2024", "registry.example.org/group/alice/ml:latest", time.Hour)
	cols := columns(false)
	rows := [][]string{rowCells(c, t0, false)}
	full := layoutWidths(cols, rows, 200)
	total := ansi.StringWidth(marker) + ansi.StringWidth(gap)*(len(cols)-1)
	for _, w := range full {
		total += w
	}
	w := layoutWidths(cols, rows, total-3)
	if w[colImage] != ansi.StringWidth("…/group/alice/ml:latest") {
		t.Errorf("IMAGE column %d cells for %q", w[colImage], format.ShortImage(rows[0][colImage], full[colImage]-3))
	}
}
