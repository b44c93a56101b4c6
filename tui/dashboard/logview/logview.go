// Package logview is the dashboard's log viewer, shared by every tab whose objects have
// logs (containers, pods): one followed stream at a time, read by a goroutine into a bounded
// ring of neutralised lines, shown in a viewport that sticks to the end unless scrolled up,
// with search, wrap and timestamps.
package logview

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"charm.land/bubbles/v2/textinput"
	"charm.land/bubbles/v2/viewport"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"charm.land/bubbles/v2/key"

	"whalemountain/tui/dashboard"
	"whalemountain/tui/termsafe"
)

const (
	// Tail is how many lines of history a viewer asks for when its stream opens.
	Tail        = 500
	logKeep     = 5000                  // lines kept; older ones are dropped
	maxLogLine  = 16 << 10              // a longer line is broken
	logThrottle = 50 * time.Millisecond // at most this often a redraw for new lines
	tabWidth    = 8
)

// logRing is a bounded buffer of lines, written by the stream goroutine and read by the
// model. Lines are numbered from the start of the stream: first is the number of lines[0].
type logRing struct {
	mu      sync.Mutex
	lines   []string
	first   int
	partial strings.Builder
	ended   bool
	err     error
	notify  chan struct{} // buffered 1: "something changed", coalesced
}

func newLogRing() *logRing { return &logRing{notify: make(chan struct{}, 1)} }

func (r *logRing) poke() {
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

// Write takes neutralised text (from termsafe.Writer) and keeps whole lines.
func (r *logRing) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := string(p)
	for s != "" {
		i := strings.IndexByte(s, '\n')
		if i < 0 {
			r.partial.WriteString(s)
			if r.partial.Len() >= maxLogLine {
				r.pushLocked()
			}
			break
		}
		r.partial.WriteString(s[:i])
		r.pushLocked()
		s = s[i+1:]
	}
	r.poke()
	return len(p), nil
}

func (r *logRing) pushLocked() {
	line := expandTabs(r.partial.String())
	r.partial.Reset()
	r.lines = append(r.lines, line)
	if len(r.lines) > 2*logKeep {
		drop := len(r.lines) - logKeep
		r.lines = append([]string(nil), r.lines[drop:]...)
		r.first += drop
	}
}

// finish marks the end of the stream, keeping a last line without newline.
func (r *logRing) finish(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.partial.Len() > 0 {
		r.pushLocked()
	}
	r.ended, r.err = true, err
	r.poke()
}

// snapshot copies the last logKeep lines and the stream's state.
func (r *logRing) snapshot() (lines []string, first int, ended bool, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	skip := max(0, len(r.lines)-logKeep)
	return append([]string(nil), r.lines[skip:]...), r.first + skip, r.ended, r.err
}

// expandTabs replaces tabs with spaces to the next multiple of tabWidth, so widths add up.
func expandTabs(s string) string {
	if !strings.Contains(s, "\t") {
		return s
	}
	var b strings.Builder
	col := 0
	for _, r := range s {
		if r == '\t' {
			n := tabWidth - col%tabWidth
			b.WriteString(strings.Repeat(" ", n))
			col += n
			continue
		}
		b.WriteRune(r)
		col += ansi.StringWidth(string(r))
	}
	return b.String()
}

// logStream is one open log stream; cancel ends it and its goroutine.
type logStream struct {
	ring   *logRing
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{} // closed when the reading goroutine has returned
}

// openLogStream starts reading what open returns until ctx ends or the stream does.
func openLogStream(parent context.Context, open func(context.Context) (io.ReadCloser, error)) *logStream {
	ctx, cancel := context.WithCancel(parent)
	s := &logStream{ring: newLogRing(), ctx: ctx, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		rc, err := open(ctx)
		if err != nil {
			s.ring.finish(err)
			return
		}
		stop := context.AfterFunc(ctx, func() { _ = rc.Close() })
		defer stop()
		defer rc.Close()
		w := termsafe.NewWriter(s.ring)
		_, err = io.Copy(w, rc)
		_ = w.Flush()
		if ctx.Err() != nil || errors.Is(err, io.ErrClosedPipe) {
			err = nil
		}
		s.ring.finish(err)
	}()
	return s
}

// close ends the stream; the goroutine returns once the reader is closed.
func (s *logStream) close() { s.cancel() }

// logMsg says that the stream of viewer v has new lines.
type logMsg struct{ v *Viewer }

// wait returns a command that delivers a logMsg when the stream has news, at most every
// logThrottle, and nothing once the stream is closed.
func (s *logStream) wait(v *Viewer) tea.Cmd {
	return func() tea.Msg {
		select {
		case <-s.ring.notify:
		case <-s.ctx.Done():
			return nil
		}
		select {
		case <-time.After(logThrottle):
		case <-s.ctx.Done():
			return nil
		}
		return logMsg{v: v}
	}
}

// match is one occurrence of the search text: line number (in stream numbering), byte range.
type match struct{ line, start, end int }

// Opener opens the log stream of what a viewer shows, following it, with the last Tail
// lines of history and, when timestamps is set, each line's time.
type Opener func(ctx context.Context, timestamps bool) (io.ReadCloser, error)

// Viewer is the log page of one object. Open one with Open; the tab that holds it passes it
// every message (Update), its key presses while it is open (Key), and draws it (View).
type Viewer struct {
	key        string // what it shows, so that reopening keeps wrap and search
	title      string // the object as the viewer names it, neutralised
	open       Opener
	st         dashboard.Styles
	keys       KeyMap
	stream     *logStream
	vp         viewport.Model
	lines      []string
	first      int
	ended      bool
	err        string
	follow     bool
	timestamps bool

	searching bool
	search    textinput.Model
	query     string
	found     []match
	cur       int // index into found, -1 for none
}

func newViewer(key, title string, open Opener, st dashboard.Styles) *Viewer {
	vp := viewport.New()
	vp.MouseWheelEnabled = false
	vp.KeyMap.Left.SetKeys("left")
	vp.KeyMap.Right.SetKeys("right")
	in := textinput.New()
	in.Prompt = "/"
	in.Placeholder = "search"
	in.CharLimit = 200
	s := in.Styles()
	s.Cursor.Blink = false
	in.SetStyles(s)
	return &Viewer{key: key, title: title, open: open, st: st, keys: DefaultKeyMap(), vp: vp, follow: true, search: in, cur: -1}
}

// refresh takes the ring's lines into the viewport, keeping the view where the user left it
// (or at the end while following).
func (v *Viewer) refresh(st dashboard.Styles) {
	lines, first, ended, err := v.stream.ring.snapshot()
	if !v.follow && first > v.first {
		// Lines dropped off the top: keep the same lines in view.
		v.vp.SetYOffset(max(0, v.vp.YOffset()-(first-v.first)))
	}
	v.lines, v.first, v.ended = lines, first, ended
	v.err = ""
	if err != nil {
		v.err = err.Error()
	}
	v.findMatches()
	v.render(st)
}

// render puts the lines, with search matches marked, into the viewport.
func (v *Viewer) render(st dashboard.Styles) {
	y := v.vp.YOffset()
	out := make([]string, len(v.lines))
	copy(out, v.lines)
	if len(v.found) > 0 {
		hl := st.TabActive.Underline(true)
		byLine := map[int][]int{}
		for i, m := range v.found {
			byLine[m.line] = append(byLine[m.line], i)
		}
		for line, idx := range byLine {
			s := v.lines[line-v.first]
			var b strings.Builder
			pos := 0
			for _, i := range idx {
				m := v.found[i]
				b.WriteString(s[pos:m.start])
				style := hl
				if i == v.cur {
					style = st.Selected
				}
				b.WriteString(style.Render(s[m.start:m.end]))
				pos = m.end
			}
			b.WriteString(s[pos:])
			out[line-v.first] = b.String()
		}
	}
	v.vp.SetContentLines(out)
	if v.follow {
		v.vp.GotoBottom()
	} else {
		v.vp.SetYOffset(y)
	}
}

// findMatches finds the query in every line: case-insensitive unless it has upper case.
// The current match stays on the same line when it can.
func (v *Viewer) findMatches() {
	var curLine, curStart = -1, 0
	if v.cur >= 0 && v.cur < len(v.found) {
		curLine, curStart = v.found[v.cur].line, v.found[v.cur].start
	}
	v.found, v.cur = nil, -1
	q := v.query
	if q == "" {
		return
	}
	fold := strings.ToLower(q) == q
	for i, line := range v.lines {
		hay := line
		if fold {
			if l := strings.ToLower(line); len(l) == len(line) {
				hay = l
			}
		}
		for off := 0; off < len(hay); {
			j := strings.Index(hay[off:], q)
			if j < 0 {
				break
			}
			v.found = append(v.found, match{line: v.first + i, start: off + j, end: off + j + len(q)})
			off += j + max(1, len(q))
		}
	}
	if curLine >= 0 {
		for i, m := range v.found {
			if m.line > curLine || m.line == curLine && m.start >= curStart {
				v.cur = i
				break
			}
		}
	}
}

// jump moves to the next (d=1) or previous (d=-1) match and shows it.
func (v *Viewer) jump(d int, st dashboard.Styles) {
	if len(v.found) == 0 {
		return
	}
	switch {
	case v.cur < 0 && d > 0:
		top := v.first + v.rawLineAt(v.vp.YOffset())
		v.cur = 0
		for i, m := range v.found {
			if m.line >= top {
				v.cur = i
				break
			}
		}
	case v.cur < 0:
		v.cur = len(v.found) - 1
	default:
		v.cur = (v.cur + d + len(v.found)) % len(v.found)
	}
	v.follow = false
	v.render(st)
	v.show(v.found[v.cur])
}

// show scrolls so that a match is in view, a third from the top.
func (v *Viewer) show(m match) {
	row := v.rowOf(m.line - v.first)
	v.vp.SetYOffset(max(0, row-v.vp.Height()/3))
	if !v.vp.SoftWrap {
		col := ansi.StringWidth(v.lines[m.line-v.first][:m.start])
		if col+(m.end-m.start) > v.vp.Width() {
			v.vp.SetXOffset(col - 4)
		} else {
			v.vp.SetXOffset(0)
		}
	}
}

// rowOf is the viewport row where raw line i starts (they differ when wrapping).
func (v *Viewer) rowOf(i int) int {
	if !v.vp.SoftWrap || v.vp.Width() <= 0 {
		return i
	}
	row := 0
	for _, l := range v.lines[:min(i, len(v.lines))] {
		row += max(1, (ansi.StringWidth(l)+v.vp.Width()-1)/v.vp.Width())
	}
	return row
}

// rawLineAt is the raw line shown at viewport row y.
func (v *Viewer) rawLineAt(y int) int {
	if !v.vp.SoftWrap || v.vp.Width() <= 0 {
		return min(y, max(0, len(v.lines)-1))
	}
	row := 0
	for i, l := range v.lines {
		row += max(1, (ansi.StringWidth(l)+v.vp.Width()-1)/v.vp.Width())
		if row > y {
			return i
		}
	}
	return max(0, len(v.lines)-1)
}

// resize fits the viewport into the body: a title line above, a status line below.
func (v *Viewer) resize(width, height int) {
	h := max(1, height-2)
	if v.vp.Width() == width && v.vp.Height() == h {
		return
	}
	v.vp.SetWidth(width)
	v.vp.SetHeight(h)
	v.search.SetWidth(max(1, width-3))
	if v.follow {
		v.vp.GotoBottom()
	}
}

// view draws the title, the lines and the status line.
func (v *Viewer) view(st dashboard.Styles, width, height int) string {
	v.resize(width, height)
	var flags []string
	if v.follow {
		flags = append(flags, "following")
	} else {
		flags = append(flags, "scrolled (G: end)")
	}
	if v.vp.SoftWrap {
		flags = append(flags, "wrap")
	}
	if v.timestamps {
		flags = append(flags, "timestamps")
	}
	title := "logs: " + v.title + " · " + strings.Join(flags, " · ")
	lines := []string{dashboard.RuleLine(st, title, width)}
	body := v.vp.View()
	if len(v.lines) == 0 {
		note := "  waiting for output…"
		if v.ended {
			note = "  no output"
		}
		body = st.Dim.Render(note)
	}
	lines = append(lines, fitLines(body, width, max(1, height-2))...)
	lines = append(lines, v.statusLine(st, width))
	return strings.Join(lines, "\n")
}

func (v *Viewer) statusLine(st dashboard.Styles, width int) string {
	cut := func(s string) string { return ansi.Truncate(s, width, "…") }
	switch {
	case v.searching:
		return cut(v.search.View())
	case v.err != "":
		return st.Failed.Render(cut(" ✗ " + termsafe.Line(v.err)))
	}
	var parts []string
	if v.query != "" {
		q := termsafe.Line(v.query)
		switch {
		case len(v.found) == 0:
			parts = append(parts, fmt.Sprintf("no match for %q", q))
		case v.cur < 0:
			noun := "matches"
			if len(v.found) == 1 {
				noun = "match"
			}
			parts = append(parts, fmt.Sprintf("%d %s for %q (n: next)", len(v.found), noun, q))
		default:
			parts = append(parts, fmt.Sprintf("match %d of %d for %q", v.cur+1, len(v.found), q))
		}
	}
	if v.ended {
		parts = append(parts, "stream ended")
	}
	if len(parts) == 0 {
		return ""
	}
	return st.Dim.Render(cut(" " + strings.Join(parts, " · ")))
}

// fitLines splits s into exactly height lines.
func fitLines(s string, width, height int) []string {
	lines := strings.Split(s, "\n")
	if len(lines) > height {
		lines = lines[:height]
	}
	for i, l := range lines {
		if lipgloss.Width(l) > width {
			lines[i] = ansi.Truncate(l, width, "")
		}
	}
	for len(lines) < height {
		lines = append(lines, "")
	}
	return lines
}

// KeyMap holds the viewer's key bindings.
type KeyMap struct {
	Back, Search, NextMatch, PrevMatch, Wrap, Timestamps, End, Home, Left, Help key.Binding
	Up, Down, PageUp, PageDown                                                  key.Binding
	Find, Clear                                                                 key.Binding // while searching
}

// DefaultKeyMap is the viewer's bindings (less's and vim's).
func DefaultKeyMap() KeyMap {
	b := func(keys []string, help, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	nav := dashboard.DefaultNavKeys()
	return KeyMap{
		Back:       b([]string{"esc", "q"}, "esc", "back"),
		Search:     b([]string{"/"}, "/", "search"),
		NextMatch:  b([]string{"n"}, "n", "next match"),
		PrevMatch:  b([]string{"N"}, "N", "previous match"),
		Wrap:       b([]string{"w"}, "w", "wrap"),
		Timestamps: b([]string{"t"}, "t", "timestamps"),
		End:        b([]string{"G", "end"}, "G", "end (follow)"),
		Left:       b([]string{"left", "right"}, "←/→", "scroll sideways"),
		Help:       b([]string{"?"}, "?", "help"),
		Home:       b([]string{"g", "home"}, "g", "start"),
		Up:         nav.Up, Down: nav.Down, PageUp: nav.PageUp, PageDown: nav.PageDown,
		Find:  b([]string{"enter"}, "enter", "find"),
		Clear: b([]string{"esc"}, "esc", "clear"),
	}
}

// Open starts a viewer on the object key (titled title), ending prev's stream when there is
// one; reopening the same object keeps prev's wrap and search. The stream lives until Close
// or until ctx ends. The command it returns delivers the stream's news to Update.
func Open(ctx context.Context, prev *Viewer, key, title string, open Opener, timestamps bool, st dashboard.Styles, width, height int) (*Viewer, tea.Cmd) {
	v := newViewer(key, title, open, st)
	if prev != nil {
		prev.Close()
		if prev.key == key {
			v.vp.SoftWrap, v.query = prev.vp.SoftWrap, prev.query
			v.search.SetValue(prev.query)
		}
	}
	v.timestamps = timestamps
	v.stream = openLogStream(ctx, func(ctx context.Context) (io.ReadCloser, error) { return open(ctx, timestamps) })
	v.resize(width, height)
	return v, v.stream.wait(v)
}

// Close ends the viewer's stream. It may be called more than once.
func (v *Viewer) Close() { v.stream.close() }

// Key says what the object the viewer shows is (as given to Open).
func (v *Viewer) Key() string { return v.key }

// Update takes the viewer's own messages (new lines) and ignores the rest, and those of an
// earlier viewer.
func (v *Viewer) Update(msg tea.Msg) tea.Cmd {
	if m, ok := msg.(logMsg); ok && m.v == v {
		v.refresh(v.st)
		return v.stream.wait(v)
	}
	return nil
}

// Searching reports whether the search line takes the keys.
func (v *Viewer) Searching() bool { return v.searching }

// Keys are the footer's bindings.
func (v *Viewer) Keys() []key.Binding {
	k := v.keys
	if v.searching {
		return []key.Binding{k.Find, k.Clear}
	}
	return []key.Binding{k.Back, k.Search, withHelp(k.NextMatch, "n/N", "match"), k.Wrap, withHelp(k.End, "G", "follow"), k.Help}
}

// FullKeys are every binding, for the help overlay.
func (v *Viewer) FullKeys() []key.Binding {
	k := v.keys
	if v.searching {
		return append(v.Keys(), key.NewBinding(key.WithHelp("ctrl+c", "quit")))
	}
	return []key.Binding{k.Back, k.Search, k.NextMatch, k.PrevMatch, k.Wrap, k.Timestamps, k.End, k.Home,
		k.Up, k.Down, k.PageUp, k.PageDown, k.Left}
}

func withHelp(b key.Binding, k, desc string) key.Binding {
	b.SetHelp(k, desc)
	return b
}

// HandleKey takes a key press: closed says the user left the viewer (the holder drops it;
// its stream is already closed); a reopened viewer (timestamps on or off) comes back as next.
func (v *Viewer) HandleKey(ctx context.Context, msg tea.KeyPressMsg) (next *Viewer, closed bool, cmd tea.Cmd) {
	k, st := v.keys, v.st
	if v.searching {
		switch msg.String() {
		case "enter":
			v.searching = false
			v.search.Blur()
			v.cur = -1
			if v.follow && len(v.found) > 0 {
				v.jump(-1, st)
			} else {
				v.jump(1, st)
			}
			return v, false, nil
		case "esc":
			v.searching = false
			v.search.Blur()
			v.search.SetValue("")
			v.query = ""
			v.findMatches()
			v.render(st)
			return v, false, nil
		}
		return v, false, v.TypeSearch(msg)
	}
	switch {
	case key.Matches(msg, k.Back):
		v.Close()
		return nil, true, nil
	case key.Matches(msg, k.Help):
		return v, false, dashboard.OpenHelp
	case key.Matches(msg, k.Search):
		v.searching = true
		v.search.CursorEnd()
		return v, false, v.search.Focus()
	case key.Matches(msg, k.NextMatch):
		v.jump(1, st)
	case key.Matches(msg, k.PrevMatch):
		v.jump(-1, st)
	case key.Matches(msg, k.Wrap):
		v.vp.SoftWrap = !v.vp.SoftWrap
		v.vp.SetXOffset(0)
		v.render(st)
	case key.Matches(msg, k.Timestamps):
		nv, cmd := Open(ctx, v, v.key, v.title, v.open, !v.timestamps, st, v.vp.Width(), v.vp.Height()+2)
		return nv, false, cmd
	case key.Matches(msg, k.End):
		v.follow = true
		v.vp.GotoBottom()
	case key.Matches(msg, k.Home):
		v.follow = false
		v.vp.GotoTop()
	default:
		v.vp, _ = v.vp.Update(msg)
		v.follow = v.vp.AtBottom()
	}
	return v, false, nil
}

// TypeSearch gives the search line a message while searching (a key or a paste).
func (v *Viewer) TypeSearch(msg tea.Msg) tea.Cmd {
	var cmd tea.Cmd
	v.search, cmd = v.search.Update(msg)
	v.query = v.search.Value()
	v.findMatches()
	v.render(v.st)
	return cmd
}

// View draws the viewer in width x height cells.
func (v *Viewer) View(width, height int) string { return v.view(v.st, width, height) }

// Done is closed once the viewer's stream is closed and its reader has returned.
func (v *Viewer) Done() <-chan struct{} { return v.stream.done }
