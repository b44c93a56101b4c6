package containers

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
	"whalemountain/tui/dashboard"
)

// These tests drive the tab against the real Docker Engine through backend/docker and its
// one live snapshot. They fail when Docker is unreachable, unless WM_SKIP_DOCKER=1.

// engine is one test's busybox image and watching Service.
type engine struct {
	ctx context.Context
	img string
	svc *docker.Service
}

func newEngine(t *testing.T) *engine {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	cli := dockertest.Client(t)
	// The image first: cleanups run last-in first-out, so the service's objects go before it.
	img := dockertest.BusyboxImage(ctx, t, cli)
	return &engine{ctx: ctx, img: img, svc: dockertest.NewService(t)}
}

func (e *engine) run(t *testing.T, id backend.Identity, name string, cmd ...string) docker.Container {
	t.Helper()
	c, err := e.svc.Run(e.ctx, id, docker.RunSpec{Name: name, Image: e.img, Cmd: cmd})
	if err != nil {
		t.Fatalf("run %s for %s: %v", name, id.User, err)
	}
	return c
}

// tab opens the tab for id and waits until it shows a current snapshot.
func (e *engine) tab(t *testing.T, id backend.Identity) (*Tab, *driver) {
	t.Helper()
	tab := New(e.svc, id, dashboard.DefaultStyles(), time.Now)
	d := newDriver(t, tab)
	d.waitFor("a current snapshot", func() bool { return tab.health.OK })
	return tab, d
}

func TestEngineCreateStopRemove(t *testing.T) {
	e := newEngine(t)
	tab, d := e.tab(t, alice)
	if !strings.Contains(d.screen, "No containers yet") {
		t.Errorf("empty list not said:\n%s", d.screen)
	}

	d.press("n")
	d.typeText(e.img)
	d.press("tab")
	d.typeText("box")
	d.press("tab")
	d.typeText(`sh -c "echo hello-from-box; while :; do sleep 1; done"`)
	d.press("tab")
	d.typeText("0.5")
	d.press("tab")
	d.typeText("64m")
	d.press("enter")
	if !strings.Contains(d.screen, "creating") {
		t.Errorf("no note while creating:\n%s", d.screen)
	}
	if st := d.waitStatus("box: "); st.Err || st.Text != "box: created and started" {
		t.Fatalf("create: %+v", st)
	}
	if tab.form != nil {
		t.Error("form still open after creating")
	}
	d.waitFor("box running in the table", func() bool { return strings.Contains(d.row("box"), "running") })
	if row := d.row("box"); !strings.HasPrefix(row, "▸") || !strings.Contains(row, e.img[len(e.img)-6:]) {
		t.Errorf("new container not selected or image missing: %q", row)
	}

	d.press("enter")
	d.waitScreen("home /home/alice (persistent)")
	for _, want := range []string{"limits 0.5 CPUs, 64 MiB", "state running", "started", "image " + e.img} {
		if !strings.Contains(d.screen, want) {
			t.Errorf("details lack %q:\n%s", want, d.screen)
		}
	}

	d.press("S")
	d.waitFor("box stopped", func() bool { return strings.Contains(d.row("box"), "stopped") })
	d.waitStatus("box: stopped")
	// Stopped on purpose: no exit code (that of the signal), but when, and by whom.
	d.waitScreen("state stopped")
	d.waitScreen("stopped by its owner")
	d.waitFor("when it stopped, from a new inspect", func() bool { return strings.Contains(d.screen, "· stopped ") })
	if strings.Contains(d.screen, "exit code") {
		t.Errorf("a container stopped on purpose shows an exit code:\n%s", d.screen)
	}

	d.press("S")
	d.waitFor("box running again", func() bool { return strings.Contains(d.row("box"), "running") })
	d.waitStatus("box: started")

	d.press("d")
	if !strings.Contains(d.screen, "box is running: stop and remove it? y/N") {
		t.Fatalf("no question:\n%s", d.screen)
	}
	d.press("y")
	d.waitStatus("box: removed")
	d.waitFor("box gone from the table", func() bool { return d.row("box") == "" })
	if list, _ := e.svc.Snapshot(alice, docker.ListOptions{All: true}); len(list) != 0 {
		t.Errorf("still there: %v", list)
	}
}

func TestEngineErrorsGoToTheStatusLine(t *testing.T) {
	e := newEngine(t)
	_, d := e.tab(t, alice)
	d.press("n")
	d.typeText("no-such-image:here")
	d.press("enter")
	st := d.waitStatus("not found")
	if !st.Err || strings.Contains(st.Text, "\n") {
		t.Errorf("error status: %+v", st)
	}
	if !strings.Contains(d.screen, "New container") {
		t.Errorf("form closed on error (the input is lost):\n%s", d.screen)
	}
}

func TestEngineStudentSeesOwnTASeesAll(t *testing.T) {
	// Names with a letter outside hex: the image column shows a hex run ID, which the filter also reads.
	e := newEngine(t)
	// Bob's first: when Alice's tab shows her container, the snapshot it read had Bob's too.
	e.run(t, bob, "kb1")
	e.run(t, alice, "ka1")

	aliceTab, ad := e.tab(t, alice)
	ad.waitFor("ka1 in Alice's tab", func() bool { return ad.row("ka1") != "" })
	for _, c := range aliceTab.all {
		if c.Owner != "alice" {
			t.Errorf("Alice's tab holds %s/%s", c.Owner, c.Name)
		}
	}
	if ad.row("kb1") != "" || strings.Contains(ad.screen, "bob") || strings.Contains(ad.screen, "OWNER") {
		t.Errorf("Alice sees Bob's container or an owner column:\n%s", ad.screen)
	}
	// Nor can she reach it by filtering for it.
	ad.press("/")
	ad.typeText("kb1")
	if ad.row("kb1") != "" {
		t.Errorf("filter reveals Bob's container:\n%s", ad.screen)
	}

	_, td := e.tab(t, tina)
	td.waitFor("both containers in the TA's tab", func() bool { return td.row("ka1") != "" && td.row("kb1") != "" })
	if !strings.HasPrefix(strings.TrimSpace(td.screen), "OWNER") {
		t.Errorf("TA table without OWNER first:\n%s", td.screen)
	}
	if f := strings.Fields(strings.TrimPrefix(td.row("kb1"), "▸")); f[0] != "bob" {
		t.Errorf("owner of kb1 = %q", f[0])
	}
	// A TA acts on someone else's container by owner/name.
	td.press("/")
	td.typeText("kb1")
	td.waitFor("the filter to leave only kb1", func() bool { return td.row("ka1") == "" && td.row("kb1") != "" })
	td.press("enter", "S")
	td.typeText("the exam needs the CPUs") // someone else's: the TA says why
	td.press("enter")
	td.waitFor("kb1 stopped", func() bool { return strings.Contains(td.row("kb1"), "stopped") })
	td.waitStatus("bob/kb1: stopped")
	// Bob, with his dashboard open, is told at once who stopped it and why.
	_, bd := e.tab(t, bob)
	if st := bd.waitStatus("tina (TA) stopped your container kb1"); !strings.Contains(st.Text, "the exam needs the CPUs") {
		t.Errorf("bob's notice: %+v", st)
	}
}

func TestEngineLogViewer(t *testing.T) {
	e := newEngine(t)
	e.run(t, alice, "talker", "sh", "-c",
		`echo hello-from-logs; printf 'evil \033[2J\033]0;pwned\007 end\n'; i=0; while :; do i=$((i+1)); echo tick $i; sleep 1; done`)
	tab, d := e.tab(t, alice)
	d.waitFor("talker in the table", func() bool { return d.row("talker") != "" })
	d.press("l")
	d.waitScreen("hello-from-logs")
	if !strings.Contains(d.screen, `evil \x1b[2J\x1b]0;pwned\x07 end`) {
		t.Errorf("escape sequences not neutralised:\n%s", d.screen)
	}
	d.waitScreen("tick 2") // followed: new lines arrive

	d.press("/")
	d.typeText("hello-from")
	d.press("enter")
	d.waitScreen(`match 1 of 1 for "hello-from"`)

	first := tab.logs.Done()
	d.press("t")
	stamp := regexp.MustCompile(`(?m)^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z hello-from-logs`)
	d.waitFor("timestamped lines", func() bool { return stamp.MatchString(d.screen) })
	select {
	case <-first:
	case <-time.After(waitLimit):
		t.Fatal("the first stream's reader did not end")
	}
	if !strings.Contains(d.screen, "timestamps") {
		t.Errorf("title does not say timestamps:\n%s", d.screen)
	}

	second := tab.logs.Done()
	d.press("esc")
	if tab.logs != nil {
		t.Fatal("esc did not close the log viewer")
	}
	select {
	case <-second:
	case <-time.After(waitLimit):
		t.Fatal("the stream's reader did not end after esc")
	}
	if d.row("talker") == "" {
		t.Errorf("table not back:\n%s", d.screen)
	}
}
