// Package gpus is the dashboard's GPUs tab: one card per GPU with utilisation, memory,
// temperature, power, a sparkline of recent utilisation and the processes on it, as much as
// the user may see (the sampler cuts its snapshot down to the user's identity); TAs also get
// a summary per user.
//
// The tab never polls: it re-reads the sampler's snapshot when Subscribe says the readings
// changed. Every string from outside is neutralised before display.
package gpus

import (
	"strings"
	"sync"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"whalemountain/backend"
	"whalemountain/backend/gpu"
	"whalemountain/tui/dashboard"
)

// Source is what the tab needs from the GPU sampler; *gpu.Sampler satisfies it. Snapshot
// cuts the sample down to what the identity may see; the tab never sees more than that.
type Source interface {
	Snapshot(id backend.Identity) gpu.State
	Available() (bool, string)
	Subscribe() (<-chan struct{}, func())
}

var _ Source = (*gpu.Sampler)(nil)

// changedMsg says the sampler's readings changed; it carries the tab it belongs to.
type changedMsg struct{ tab *Tab }

// Tab is the GPUs tab. Create it with New; call Close when the program has ended.
type Tab struct {
	src Source
	id  backend.Identity
	st  dashboard.Styles

	up, down, top, bottom key.Binding

	closed    bool
	sub       <-chan struct{}
	unsub     func()
	closeOnce sync.Once

	state  gpu.State // already cut down by the sampler to what id may see
	offset int       // first line shown
	height int       // of the last View, for scrolling
}

var (
	_ dashboard.Tab    = (*Tab)(nil)
	_ dashboard.Shower = (*Tab)(nil)
)

// New builds the tab for one user. src may be nil (GPU monitoring not configured). It
// subscribes only while shown; Close releases the subscription.
func New(src Source, id backend.Identity, styles dashboard.Styles) *Tab {
	b := func(keys []string, help, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	t := &Tab{
		src: src, id: id, st: styles, height: 20,
		up:     b([]string{"k", "up"}, "k/↑", "scroll up"),
		down:   b([]string{"j", "down"}, "j/↓", "scroll down"),
		top:    b([]string{"g", "home"}, "g", "top"),
		bottom: b([]string{"G", "end"}, "G", "bottom"),
	}
	t.reload()
	return t
}

// Close ends the subscription. It is safe to call more than once.
func (t *Tab) Close() {
	t.closeOnce.Do(func() {
		t.closed = true
		if t.unsub != nil {
			t.unsub()
		}
	})
}

// Title is the tab's name.
func (t *Tab) Title() string { return "GPUs" }

// Capturing is always false: the tab takes no text input.
func (t *Tab) Capturing() bool { return false }

// Keys are the scrolling keys.
func (t *Tab) Keys() []key.Binding { return []key.Binding{t.up, t.down, t.top, t.bottom} }

// Init does nothing: the tab follows the sampler only while it is on screen (Show).
func (t *Tab) Init() tea.Cmd { return nil }

// Show follows the sampler's readings while the tab is on screen, and stops when another tab
// takes its place: a hidden GPUs tab costs nothing however often the readings change.
func (t *Tab) Show(on bool) tea.Cmd {
	if t.closed || t.src == nil || on == (t.unsub != nil) {
		return nil
	}
	if !on {
		t.unsub()
		t.sub, t.unsub = nil, nil
		return nil
	}
	t.sub, t.unsub = t.src.Subscribe()
	t.reload()
	return t.waitChange()
}

// waitChange waits for the next change of the readings; nothing once unsubscribed.
func (t *Tab) waitChange() tea.Cmd {
	ch := t.sub
	if ch == nil {
		return nil
	}
	return func() tea.Msg {
		if _, ok := <-ch; !ok {
			return nil
		}
		return changedMsg{tab: t}
	}
}

// reload reads the snapshot, cut down to what the user may see.
func (t *Tab) reload() {
	if t.src == nil {
		t.state = gpu.State{Reason: "GPU monitoring is off"}
		return
	}
	if ok, reason := t.src.Available(); !ok {
		t.state = gpu.State{Reason: reason}
		return
	}
	t.state = t.src.Snapshot(t.id)
}

// Update re-reads the snapshot on a change and scrolls on j/k.
func (t *Tab) Update(msg tea.Msg) (dashboard.Tab, tea.Cmd) {
	switch msg := msg.(type) {
	case changedMsg:
		if msg.tab != t || t.closed || t.unsub == nil {
			return t, nil
		}
		t.reload()
		return t, t.waitChange()
	case tea.KeyPressMsg:
		switch {
		case key.Matches(msg, t.up):
			t.offset--
		case key.Matches(msg, t.down):
			t.offset++
		case key.Matches(msg, t.top):
			t.offset = 0
		case key.Matches(msg, t.bottom):
			t.offset = 1 << 30
		}
		t.offset = max(0, t.offset) // the upper bound depends on the width: View clamps it
	}
	return t, nil
}

// View renders the cards in width x height, from the scroll offset.
func (t *Tab) View(width, height int) string {
	if width <= 0 || height <= 0 {
		return ""
	}
	t.height = height
	lines := render(t.st, t.state, t.id, width)
	t.offset = min(t.offset, max(0, len(lines)-height))
	lines = lines[t.offset:]
	if len(lines) > height {
		lines = lines[:height]
	}
	return strings.Join(lines, "\n")
}
