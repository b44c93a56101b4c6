package containers

import (
	"slices"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	"go.uber.org/goleak"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/dashboard"
)

// Tests of the tab's own logic against an in-memory service; engine_test.go drives the
// same tab against the real Docker Engine.

var (
	alice = backend.Identity{User: "alice", Role: backend.RoleStudent}
	bob   = backend.Identity{User: "bob", Role: backend.RoleStudent}
	tina  = backend.Identity{User: "tina", Role: backend.RoleTA}
)

func fixedNow() time.Time { return t0 }

func threeOfAlice() []docker.Container {
	return []docker.Container{
		running("alice", "a1", "busybox", time.Hour),
		running("alice", "a2", "busybox:1.36", 2*time.Hour),
		{Owner: "alice", Name: "a3", Image: "python:3.12", State: "exited", ExitCode: 1, ID: "alice-a3"},
	}
}

func TestDegradesAndRecovers(t *testing.T) {
	f := newFake(threeOfAlice()...)
	f.health = docker.Health{OK: false, Err: "cannot connect to the Docker daemon"}
	tab := New(f, alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	d.w = 100
	d.render()
	first := strings.Split(d.screen, "\n")[0]
	if want := " Docker unreachable: cannot connect to the Docker daemon — showing the last known list"; first != want {
		t.Fatalf("first line %q, want %q", first, want)
	}
	raw := strings.Split(tab.View(80, 20), "\n")
	if raw[3] != tab.st.Dim.Render(ansi.Strip(raw[3])) {
		t.Errorf("rows not greyed while unreachable: %q", raw[3])
	}
	if d.row("a2") == "" || !strings.Contains(d.row("a2"), "running") {
		t.Errorf("last known rows not shown:\n%s", d.screen)
	}
	f.set(threeOfAlice(), docker.Health{OK: true})
	d.waitFor("the unreachable line to go", func() bool { return !strings.Contains(d.screen, "unreachable") })
	if !strings.HasPrefix(strings.Split(d.screen, "\n")[0], "  NAME") {
		t.Errorf("table not back on top:\n%s", d.screen)
	}
}

// TestUsageOnEveryRunningRow: CPU and memory come with the snapshot for every running
// container, whichever row the cursor is on; a stopped one shows none.
func TestUsageOnEveryRunningRow(t *testing.T) {
	cs := threeOfAlice()
	for i, pct := range []float64{12, 47} {
		cs[i].CPUPercent, cs[i].MemUsage, cs[i].MemLimit, cs[i].StatsAt = pct, int64(i+1)<<30, 8<<30, fixedNow()
	}
	f := newFake(cs...)
	tab := New(f, alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	d.w = 100
	d.render()
	if !strings.Contains(d.row("a1"), "12%") || !strings.Contains(d.row("a1"), "1.0/8.0 GiB") {
		t.Errorf("a1 (under the cursor) has no usage: %q", d.row("a1"))
	}
	if !strings.Contains(d.row("a2"), "47%") || !strings.Contains(d.row("a2"), "2.0/8.0 GiB") {
		t.Errorf("a2 (not under the cursor) has no usage: %q", d.row("a2"))
	}
	if strings.Contains(d.row("a3"), "%") {
		t.Errorf("the stopped a3 shows usage: %q", d.row("a3"))
	}
}

func TestSelectionFollowsContainerAcrossChanges(t *testing.T) {
	f := newFake(threeOfAlice()...)
	d := newDriver(t, New(f, alice, testStyles(), fixedNow))
	d.press("G")
	if !strings.HasPrefix(d.row("a3"), "▸") {
		t.Fatalf("G did not select the last row:\n%s", d.screen)
	}
	// A new container sorted before a3 appears: the selection stays on a3.
	list := append([]docker.Container{running("alice", "a0", "busybox", time.Minute)}, threeOfAlice()...)
	f.set(list, docker.Health{OK: true})
	d.waitScreen("a0")
	if !strings.HasPrefix(d.row("a3"), "▸") {
		t.Errorf("selection moved off a3:\n%s", d.screen)
	}
	d.press("g")
	if !strings.HasPrefix(d.row("a0"), "▸") {
		t.Errorf("g did not select the first row:\n%s", d.screen)
	}
	// The selected container goes away: the selection stays in place.
	f.set(threeOfAlice(), docker.Health{OK: true})
	d.waitFor("a0 to go", func() bool { return d.row("a0") == "" })
	if !strings.HasPrefix(d.row("a1"), "▸") {
		t.Errorf("selection not on the neighbour:\n%s", d.screen)
	}
}

func TestFilter(t *testing.T) {
	list := append(threeOfAlice(), running("bob", "b1", "pytorch", time.Hour))
	tab := New(newFake(list...), tina, testStyles(), fixedNow)
	d := newDriver(t, tab)
	d.press("/")
	if !tab.Capturing() {
		t.Fatal("not capturing while typing a filter")
	}
	d.typeText("torch")
	if d.row("b1") == "" || d.row("a1") != "" {
		t.Errorf("filter by image:\n%s", d.screen)
	}
	d.press("enter")
	if tab.Capturing() {
		t.Error("still capturing after enter")
	}
	if !strings.Contains(d.screen, "filter: torch") || d.row("a1") != "" {
		t.Errorf("filter not kept:\n%s", d.screen)
	}
	d.press("esc")
	if d.row("a1") == "" || d.row("b1") == "" {
		t.Errorf("esc did not clear the filter:\n%s", d.screen)
	}
	d.press("/")
	d.typeText("nothing-like-it")
	if !strings.Contains(d.screen, `No container matches "nothing-like-it"`) {
		t.Errorf("no-match line:\n%s", d.screen)
	}
	d.press("esc")
	if tab.Capturing() || d.row("a1") == "" {
		t.Errorf("esc while typing did not clear:\n%s", d.screen)
	}
}

func TestFormValidatesAsYouType(t *testing.T) {
	tab := New(newFake(threeOfAlice()...), alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	d.press("n")
	if !tab.Capturing() || !strings.Contains(d.screen, "New container") {
		t.Fatalf("no form:\n%s", d.screen)
	}
	if !strings.Contains(d.screen, "quota: 3 of 5 containers, 2 of 3 running · up to 2 CPUs and 4.0 GiB each") {
		t.Errorf("no quota line:\n%s", d.screen)
	}
	lineAfter := func(label string) string {
		lines := strings.Split(d.screen, "\n")
		for i, l := range lines {
			if strings.Contains(l, " "+label+" ") && i+1 < len(lines) {
				return lines[i+1]
			}
		}
		return ""
	}
	d.typeText("Not An Image")
	if e := lineAfter("image"); !strings.Contains(e, "✗ invalid image reference") {
		t.Errorf("no image error under the field: %q\n%s", e, d.screen)
	}
	for range len("Not An Image") {
		d.press("backspace")
	}
	d.typeText("busybox")
	if e := lineAfter("image"); strings.Contains(e, "✗") {
		t.Errorf("error stays after fixing: %q", e)
	}
	d.press("tab")
	d.typeText("Bad_Name")
	if e := lineAfter("name"); !strings.Contains(e, "✗ invalid container name") {
		t.Errorf("no name error: %q\n%s", e, d.screen)
	}
	d.press("tab", "tab")
	d.typeText("9")
	if e := lineAfter("CPUs"); !strings.Contains(e, "✗ at most 2 CPUs per container") {
		t.Errorf("no CPU error: %q\n%s", e, d.screen)
	}
	d.press("tab")
	d.typeText("lots")
	if e := lineAfter("memory"); !strings.Contains(e, "✗ memory \"lots\" is not a size") {
		t.Errorf("no memory error: %q\n%s", e, d.screen)
	}
	d.press("enter") // refused: focus goes to the first bad field, nothing is created
	if tab.form == nil || tab.form.submitting || tab.form.focus != fName {
		t.Errorf("invalid form submitted or focus not on the name field")
	}
	for _, l := range strings.Split(tab.View(80, 20), "\n") {
		if w := ansi.StringWidth(l); w > 80 {
			t.Errorf("form line of %d cells: %q", w, ansi.Strip(l))
		}
	}
	d.press("esc")
	if tab.form != nil || tab.Capturing() {
		t.Error("esc did not cancel the form")
	}
}

func TestConfirmNamesTheContainer(t *testing.T) {
	tab := New(newFake(threeOfAlice()...), alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	d.press("G", "d")
	if !strings.Contains(d.screen, "remove a3? y/N") {
		t.Errorf("no question for a stopped container:\n%s", d.screen)
	}
	d.press("n")
	if strings.Contains(d.screen, "y/N") || tab.Capturing() {
		t.Errorf("question stays after n:\n%s", d.screen)
	}
	d.press("g", "d")
	if !strings.Contains(d.screen, "a1 is running: stop and remove it? y/N") {
		t.Errorf("no force question for a running container:\n%s", d.screen)
	}
	d.press("y")
	d.waitStatus("a1: removed")
	if got := tab.svc.(*fakeService).actionsDone(); !slices.Equal(got, []string{"rm alice/a1 true"}) {
		t.Errorf("actions %q", got)
	}
}

func TestShellKey(t *testing.T) {
	tab := New(newFake(threeOfAlice()...), alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	d.press("s")
	d.waitStatus("shell: not available on this server")

	opened := make(chan string, 4)
	tab = New(newFake(threeOfAlice()...), alice, testStyles(), fixedNow)
	tab.SetShell(func(sh dashboard.Shell) tea.Cmd {
		opened <- sh.Name + ":" + sh.Back
		return nil
	})
	d = newDriver(t, tab)
	d.press("s") // a1 runs: straight in
	if got := <-opened; got != "a1:alice/a1" {
		t.Fatalf("shell opened for %q", got)
	}
	d.press("G", "s") // a3 exited: asks first
	if !strings.Contains(d.screen, "a3 is exited: start it and open a shell? y/N") {
		t.Fatalf("no question for a stopped container:\n%s", d.screen)
	}
	d.press("n")
	select {
	case got := <-opened:
		t.Fatalf("n opened a shell in %q", got)
	default:
	}
	// y starts it first; when the start fails, no shell opens and the error is shown.
	d.press("s", "y")
	if m := d.waitStatus("not in the fake"); !m.Err {
		t.Errorf("start failure not marked as an error: %+v", m)
	}
	select {
	case got := <-opened:
		t.Fatalf("a shell opened in %q although the start failed", got)
	default:
	}
}

func TestLogViewerWithoutEngine(t *testing.T) {
	f := newFake(threeOfAlice()...)
	var b strings.Builder
	for i := range 100 {
		b.WriteString("line " + strings.Repeat("x", i%7) + " " + string(rune('a'+i%26)) + "\n")
	}
	b.WriteString("evil \x1b[2J\x1b]0;title\x07 end\n")
	f.logs = b.String()
	tab := New(f, alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	d.press("l")
	d.waitScreen(`evil \x1b[2J\x1b]0;title\x07 end`)
	if !tab.Capturing() || !strings.Contains(d.screen, "logs: a1 · following") {
		t.Errorf("log page:\n%s", d.screen)
	}
	d.press("k", "k")
	if !strings.Contains(d.screen, "scrolled") {
		t.Errorf("scrolling up does not stop following:\n%s", d.screen)
	}
	d.press("G")
	if !strings.Contains(d.screen, "following") {
		t.Errorf("G does not follow again:\n%s", d.screen)
	}
	d.press("/")
	d.typeText("evil")
	d.press("enter")
	if !strings.Contains(d.screen, `match 1 of 1 for "evil"`) {
		t.Errorf("search:\n%s", d.screen)
	}
	d.press("w")
	if !strings.Contains(d.screen, "wrap") {
		t.Errorf("wrap not shown:\n%s", d.screen)
	}
	for _, l := range strings.Split(tab.View(80, 20), "\n") {
		if w := ansi.StringWidth(l); w > 80 {
			t.Errorf("log line of %d cells: %q", w, ansi.Strip(l))
		}
	}
	stream := tab.logs.Done()
	d.press("t") // re-opens the stream with timestamps; the first one ends
	select {
	case <-stream:
	case <-time.After(waitLimit):
		t.Fatal("the first stream's reader did not end")
	}
	stream = tab.logs.Done()
	d.press("q")
	if tab.logs != nil || tab.Capturing() {
		t.Fatal("q did not go back to the table")
	}
	select {
	case <-stream:
	case <-time.After(waitLimit):
		t.Fatal("the stream's reader did not end")
	}
	d.waitFor("the fake's log streams to close", func() bool { return f.openLogs() == 0 })
}

func TestKeysFitTheFooter(t *testing.T) {
	footers := []string{""}
	for _, width := range []int{80, 120} {
		tab := New(newFake(threeOfAlice()...), alice, testStyles(), fixedNow)
		tab.Init()
		defer tab.Close()
		tab.View(width, 20)
		var parts []string
		for _, b := range tab.Keys() {
			parts = append(parts, b.Help().Key+" "+b.Help().Desc)
		}
		// What the root adds: "? help" after the tab's keys and " q quit " on the right.
		footer := " " + strings.Join(append(parts, "? help"), "  ") + " " + "q quit "
		if w := ansi.StringWidth(footer); w > width {
			t.Errorf("width %d: footer of %d cells: %q", width, w, footer)
		}
		if !strings.Contains(footer, "S stop") {
			t.Errorf("S is not labelled for the running selection: %q", footer)
		}
		for _, k := range []string{"n new", "s shell", "l logs", "r restart", "d delete", "/ filter"} {
			if !strings.Contains(footer, k) {
				t.Errorf("footer lacks %q: %q", k, footer)
			}
		}
		if footers[0] != "" && footer != footers[0] {
			t.Errorf("the footer differs with the width:\n%q\n%q", footers[0], footer)
		}
		footers[0] = footer
		var help []string
		for _, b := range tab.FullKeys() {
			help = append(help, b.Help().Key+" "+b.Help().Desc)
		}
		for _, k := range []string{"j/↓ down", "k/↑ up", "enter details", "g first", "G last"} {
			if !slices.Contains(help, k) {
				t.Errorf("help lacks %q: %q", k, help)
			}
		}
	}
}

func TestViewFits(t *testing.T) {
	var list []docker.Container
	for i := range 40 {
		c := running("alice", "container-"+strings.Repeat("x", i%20), "registry.example/alice/"+strings.Repeat("y", i)+":latest", time.Hour)
		c.Name = c.Name[:min(len(c.Name), 32)]
		list = append(list, c)
	}
	f := newFake(list...)
	f.health = docker.Health{Err: "down"}
	tab := New(f, alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	tab.detailsOpen = true
	d.press("j", "d")
	for _, size := range [][2]int{{80, 20}, {80, 8}, {120, 40}, {40, 10}} {
		out := tab.View(size[0], size[1])
		lines := strings.Split(out, "\n")
		if len(lines) > size[1] {
			t.Errorf("%v: %d lines", size, len(lines))
		}
		for _, l := range lines {
			if w := ansi.StringWidth(l); w > size[0] {
				t.Errorf("%v: line of %d cells: %q", size, w, ansi.Strip(l))
			}
		}
		if !strings.Contains(ansi.Strip(out), "▸") || size[0] >= 80 && !strings.Contains(ansi.Strip(out), "y/N") {
			t.Errorf("%v: selection or question not visible:\n%s", size, ansi.Strip(out))
		}
	}
}

func TestNoGoroutineLeft(t *testing.T) {
	// Only what the tab starts counts: every goroutine running now may stay.
	before := goleak.IgnoreCurrent()
	f := newFake(threeOfAlice()...)
	f.logs = "hello\n"
	tab := New(f, alice, testStyles(), fixedNow)
	d := &driver{t: t, tab: tab, msgs: make(chan tea.Msg, 256), done: make(chan struct{}), w: 80, h: 20}
	d.exec(tab.Init())
	d.render()
	d.press("l")
	d.waitScreen("hello")
	d.press("esc", "j", "l")
	d.waitScreen("logs: a2")
	d.press("t", "t", "/")
	d.typeText("hel")
	d.press("enter", "q", "enter", "n")
	tab.Close()
	close(d.done)
	// Find waits a second or so by itself; a loaded machine may need longer.
	for deadline := time.Now().Add(30 * time.Second); goleak.Find(before) != nil && time.Now().Before(deadline); {
	}
	goleak.VerifyNone(t, before)
	if f.openLogs() != 0 || f.subscribers() != 0 {
		t.Errorf("left open: %d log streams, %d subscriptions", f.openLogs(), f.subscribers())
	}
}

// TestFormOffersPresetsFirst: with presets for the user, n opens them first; one is taken
// with only a name, and "custom" opens the fields.
func TestFormOffersPresetsFirst(t *testing.T) {
	f := newFake(threeOfAlice()...)
	f.presets = []docker.Preset{
		{Name: "lab1", Description: "Python for lab 1", Image: "python:3.12", CPUs: 2, Memory: 4 << 30, GPUs: "1"},
		{Name: "os", Image: "ubuntu:24.04"},
	}
	tab := New(f, alice, testStyles(), fixedNow)
	d := newDriver(t, tab)
	d.waitFor("the presets", func() bool { return len(tab.presets) == 2 })
	d.press("n")
	for _, want := range []string{"▸ lab1 · Python for lab 1 · python:3.12 · 2 CPUs, 4.0 GiB, GPUs 1", "  os · ubuntu:24.04", "custom container"} {
		if !strings.Contains(d.screen, want) {
			t.Fatalf("the presets do not come first (%q):\n%s", want, d.screen)
		}
	}
	if strings.Contains(d.screen, "memory") || strings.Contains(d.screen, "GPUs  ") {
		t.Errorf("the fields show before a choice:\n%s", d.screen)
	}
	d.press("j", "enter")
	if !strings.Contains(d.screen, "preset    os · ubuntu:24.04") || strings.Contains(d.screen, "memory") {
		t.Fatalf("after choosing os:\n%s", d.screen)
	}
	d.typeText("Bad Name")
	d.press("enter")
	if len(f.actionsDone()) != 0 || !strings.Contains(d.screen, "invalid container name") {
		t.Fatalf("a bad name was taken: %q\n%s", f.actionsDone(), d.screen)
	}
	for range len("Bad Name") {
		d.press("backspace")
	}
	d.typeText("mylab")
	d.press("enter")
	d.waitStatus("mylab: created and started")
	if got := f.actionsDone(); !slices.Equal(got, []string{"preset os mylab"}) {
		t.Errorf("actions %q", got)
	}

	// The last choice is the form of old.
	d.press("n", "k", "enter")
	if !strings.Contains(d.screen, "image") || !strings.Contains(d.screen, "command") || strings.Contains(d.screen, "preset ") {
		t.Fatalf("custom container:\n%s", d.screen)
	}
	d.press("esc")
	if tab.form != nil {
		t.Error("esc kept the form")
	}
}
