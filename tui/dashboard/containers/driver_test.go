package containers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/dashboard"
)

// driver runs a Tab the way the dashboard program does: one goroutine (the test) calls
// Update and View; commands run in goroutines and their messages come back in order of
// arrival. Waits are bounded.
type driver struct {
	t      *testing.T
	tab    *Tab
	msgs   chan tea.Msg
	done   chan struct{}
	w, h   int
	screen string
	status []dashboard.StatusMsg
}

const waitLimit = 90 * time.Second

func newDriver(t *testing.T, tab *Tab) *driver {
	t.Helper()
	d := &driver{t: t, tab: tab, msgs: make(chan tea.Msg, 256), done: make(chan struct{}), w: 80, h: 20}
	t.Cleanup(func() {
		tab.Close()
		close(d.done)
	})
	d.exec(tab.Init())
	d.exec(tab.Show(true)) // the first tab is on screen
	d.render()
	return d
}

func (d *driver) exec(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		select {
		case d.msgs <- msg:
		case <-d.done:
		}
	}()
}

func (d *driver) render() { d.screen = ansi.Strip(d.tab.View(d.w, d.h)) }

// handle feeds one message to the tab like the program would.
func (d *driver) handle(msg tea.Msg) {
	switch m := msg.(type) {
	case nil:
		return
	case tea.BatchMsg:
		for _, c := range m {
			d.exec(c)
		}
		return
	case dashboard.StatusMsg:
		d.status = append(d.status, m)
		return
	}
	// tea.Sequence's message type is unexported: run its commands in order.
	if v := reflect.ValueOf(msg); v.Kind() == reflect.Slice && v.Type().Elem() == reflect.TypeFor[tea.Cmd]() {
		cmds := v.Convert(reflect.TypeFor[[]tea.Cmd]()).Interface().([]tea.Cmd)
		go func() {
			for _, c := range cmds {
				if c == nil {
					continue
				}
				msg := c()
				select {
				case d.msgs <- msg:
				case <-d.done:
					return
				}
			}
		}()
		return
	}
	_, cmd := d.tab.Update(msg)
	d.exec(cmd)
	d.render()
}

// press sends key presses: names such as "enter", "esc", "tab", "down", or single characters.
func (d *driver) press(keys ...string) {
	d.t.Helper()
	for _, k := range keys {
		d.handle(keyMsg(k))
	}
}

// typeText types s, one key per character.
func (d *driver) typeText(s string) {
	for _, r := range s {
		d.handle(tea.KeyPressMsg{Code: r, Text: string(r)})
	}
}

func keyMsg(k string) tea.KeyPressMsg {
	switch k {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "shift+tab":
		return tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}
	case "down":
		return tea.KeyPressMsg{Code: tea.KeyDown}
	case "up":
		return tea.KeyPressMsg{Code: tea.KeyUp}
	case "backspace":
		return tea.KeyPressMsg{Code: tea.KeyBackspace}
	}
	r := []rune(k)
	if len(r) != 1 {
		panic("unknown key " + k)
	}
	return tea.KeyPressMsg{Code: r[0], Text: k}
}

// waitFor handles messages until cond holds; it fails the test after waitLimit.
func (d *driver) waitFor(what string, cond func() bool) {
	d.t.Helper()
	deadline := time.After(waitLimit)
	for {
		d.render()
		if cond() {
			return
		}
		select {
		case msg := <-d.msgs:
			d.handle(msg)
		case <-deadline:
			d.t.Fatalf("gave up waiting for %s; screen:\n%s\nstatus: %v", what, d.screen, d.status)
		}
	}
}

// settle handles the messages that arrive within d.
func (d *driver) settle(dur time.Duration) {
	deadline := time.After(dur)
	for {
		select {
		case msg := <-d.msgs:
			d.handle(msg)
		case <-deadline:
			d.render()
			return
		}
	}
}

// waitScreen waits until the screen shows s.
func (d *driver) waitScreen(s string) {
	d.t.Helper()
	d.waitFor("the screen to show "+s, func() bool { return strings.Contains(d.screen, s) })
}

// waitStatus waits for a status line containing s.
func (d *driver) waitStatus(s string) dashboard.StatusMsg {
	d.t.Helper()
	var got dashboard.StatusMsg
	d.waitFor("a status line with "+s, func() bool {
		for _, m := range d.status {
			if strings.Contains(m.Text, s) {
				got = m
				return true
			}
		}
		return false
	})
	return got
}

// row returns the screen line of the container named name, or "".
func (d *driver) row(name string) string {
	for _, l := range strings.Split(d.screen, "\n") {
		if !strings.HasPrefix(l, "  ") && !strings.HasPrefix(l, "▸ ") {
			continue // not a table row
		}
		f := strings.Fields(strings.TrimPrefix(l, "▸"))
		for _, x := range f {
			if x == name {
				return l
			}
		}
	}
	return ""
}

// fakeService is an in-memory Service for the tab's own logic (no engine).
type fakeService struct {
	mu      sync.Mutex
	list    []docker.Container
	health  docker.Health
	subs    map[chan struct{}]bool
	cfg     docker.Config
	logs    string
	logOpen int

	actions []string // "stop alice/box why", "rm alice/box true why"
	notices []docker.Notice
	seen    int64
	details docker.Details
	presets []docker.Preset
}

func newFake(list ...docker.Container) *fakeService {
	return &fakeService{list: list, health: docker.Health{OK: true}, subs: map[chan struct{}]bool{},
		cfg: docker.DefaultConfig()}
}

func (f *fakeService) set(list []docker.Container, h docker.Health) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.list, f.health = list, h
	for ch := range f.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

func (f *fakeService) Snapshot(id backend.Identity, opts docker.ListOptions) ([]docker.Container, docker.Health) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []docker.Container
	for _, c := range f.list {
		if c.Owner == id.User || id.IsTA() && opts.AllUsers {
			out = append(out, c)
		}
	}
	return out, f.health
}

func (f *fakeService) SubscribeFor(backend.Identity, docker.ListOptions) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	f.mu.Lock()
	f.subs[ch] = true
	f.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			f.mu.Lock()
			delete(f.subs, ch)
			close(ch)
			f.mu.Unlock()
		})
	}
}

func (f *fakeService) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

func (f *fakeService) Config() docker.Config { return f.cfg }

var errFake = errors.New("not in the fake")

func (f *fakeService) Run(context.Context, backend.Identity, docker.RunSpec) (docker.Container, error) {
	return docker.Container{}, errFake
}
func (f *fakeService) Presets(context.Context, backend.Identity) []docker.Preset {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.presets)
}
func (f *fakeService) RunPreset(_ context.Context, id backend.Identity, preset, name string) (docker.Container, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, strings.TrimSpace("preset "+preset+" "+name))
	return docker.Container{Owner: id.User, Name: name, Preset: preset, State: "running"}, nil
}
func (f *fakeService) Start(context.Context, backend.Identity, string) error { return errFake }
func (f *fakeService) Stop(_ context.Context, _ backend.Identity, ref, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, strings.TrimSpace("stop "+ref+" "+reason))
	return nil
}
func (f *fakeService) Restart(context.Context, backend.Identity, string) error { return errFake }
func (f *fakeService) Remove(_ context.Context, _ backend.Identity, ref string, force bool, reason string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.actions = append(f.actions, strings.TrimSpace(fmt.Sprintf("rm %s %v %s", ref, force, reason)))
	return nil
}

func (f *fakeService) actionsDone() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.actions)
}

func (f *fakeService) Inspect(_ context.Context, _ backend.Identity, ref string) (docker.Details, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.details.Name != "" && f.details.Ref() == ref {
		return f.details, nil
	}
	return docker.Details{}, errFake
}

func (f *fakeService) Notices(backend.Identity) ([]docker.Notice, int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.notices), f.seen
}

func (f *fakeService) MarkNoticesSeen(_ backend.Identity, seq int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seen = max(f.seen, seq)
}

// Logs serves the fake's text, then blocks like a followed stream until closed.
func (f *fakeService) Logs(ctx context.Context, _ backend.Identity, _ string, _ docker.LogOptions) (io.ReadCloser, error) {
	pr, pw := io.Pipe()
	f.mu.Lock()
	f.logOpen++
	text := f.logs
	f.mu.Unlock()
	go func() {
		_, _ = io.WriteString(pw, text)
		<-ctx.Done()
		_ = pw.CloseWithError(ctx.Err())
		f.mu.Lock()
		f.logOpen--
		f.mu.Unlock()
	}()
	return pr, nil
}

func (f *fakeService) openLogs() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.logOpen
}
