// Package screen draws a full-screen Bubble Tea program on a terminal when, and only where, it
// changes: the program's View is compared line by line with what the terminal shows, and only
// the lines that differ are written, at once. There is no frame ticker and no cell buffer per
// session — what one screen holds is its last frame's lines — so an idle dashboard costs no
// CPU and sends no byte, and hundreds of them fit in a little memory.
//
// The program runs with Bubble Tea's own renderer off (tea.WithoutRenderer) and its model
// wrapped by Wrap; Close gives the terminal back (main screen, cursor shown).
package screen

import (
	"bytes"
	"io"
	"strings"
	"sync"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
)

// Screen is one terminal in the alternate screen. It is safe for concurrent use.
type Screen struct {
	mu     sync.Mutex
	out    io.Writer
	title  string
	width  int
	height int
	lines  []string // what the terminal shows; nil: nothing known (repaint everything)
	frame  string   // the last frame painted
	open   bool     // in the alternate screen
	closed bool
	buf    bytes.Buffer
}

// New makes a screen writing to w, with colours brought down to profile, and the window
// title shown while it is open.
func New(w io.Writer, profile colorprofile.Profile, title string) *Screen {
	return &Screen{out: &colorprofile.Writer{Forward: w, Profile: profile}, title: title}
}

// Resize records the terminal's size; the next Paint repaints everything.
func (s *Screen) Resize(width, height int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if width != s.width || height != s.height {
		s.width, s.height = width, height
		s.lines, s.frame = nil, ""
	}
}

// Paint shows frame, lines separated by "\n" and each already cut to the width; it writes
// only the lines that differ from what the terminal shows, inside one synchronised update,
// and nothing at all when the frame is what was painted last.
func (s *Screen) Paint(frame string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || (s.lines != nil && frame == s.frame) {
		return nil
	}
	s.buf.Reset()
	s.buf.WriteString(ansi.SetModeSynchronizedOutput)
	if !s.open {
		s.open = true
		s.buf.WriteString(ansi.SetModeAltScreenSaveCursor + ansi.HideCursor + ansi.SetWindowTitle(s.title))
	}
	next := strings.Split(frame, "\n")
	if s.height > 0 && len(next) > s.height {
		next = next[:s.height]
	}
	if s.lines == nil {
		s.buf.WriteString(ansi.ResetStyle + ansi.EraseEntireScreen)
		s.lines = make([]string, 0, len(next))
	}
	for i, line := range next {
		if i < len(s.lines) && s.lines[i] == line {
			continue
		}
		s.buf.WriteString(ansi.CursorPosition(1, i+1) + ansi.ResetStyle + line + ansi.ResetStyle)
		// Erasing the rest of a full line would take its last cell with it: the cursor
		// waits on that cell to wrap.
		if s.width <= 0 || ansi.StringWidth(line) < s.width {
			s.buf.WriteString(ansi.EraseLineRight)
		}
	}
	for i := len(next); i < len(s.lines); i++ {
		s.buf.WriteString(ansi.CursorPosition(1, i+1) + ansi.ResetStyle + ansi.EraseLineRight)
	}
	s.buf.WriteString(ansi.ResetModeSynchronizedOutput)
	s.lines = append(s.lines[:0], next...)
	s.frame = frame
	_, err := s.out.Write(s.buf.Bytes())
	if s.buf.Cap() > 64<<10 {
		s.buf = bytes.Buffer{} // a rare large frame does not stay allocated
	}
	return err
}

// Close gives the terminal back: attributes reset, the cursor shown, the main screen as it
// was. Paint does nothing afterwards.
func (s *Screen) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.lines, s.frame, s.buf = nil, "", bytes.Buffer{}
	if !s.open {
		return nil
	}
	_, err := io.WriteString(s.out, ansi.ResetStyle+ansi.ShowCursor+ansi.ResetModeAltScreenSaveCursor)
	return err
}

// Wrap returns a model that behaves as m and paints each View of m on s (sizes come from
// the program's WindowSizeMsg). A model that reports Leaving (see input.Leaver) keeps doing
// so through the wrapper. started, when not nil, runs once, off the program's event loop,
// after the program has started: give it the program's ReleaseTerminal, so that Bubble Tea,
// which neither reads nor draws this terminal, stops the frame ticker it runs even without a
// renderer — an idle dashboard then wakes for nothing at all.
func Wrap(m tea.Model, s *Screen, started func()) tea.Model {
	return &model{inner: m, screen: s, started: started}
}

type model struct {
	inner   tea.Model
	screen  *Screen
	started func()
}

func (m *model) Init() tea.Cmd {
	cmd := m.inner.Init()
	if m.started == nil {
		return cmd
	}
	return tea.Batch(cmd, func() tea.Msg { m.started(); return nil })
}

func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	if ws, ok := msg.(tea.WindowSizeMsg); ok {
		m.screen.Resize(ws.Width, ws.Height)
	}
	var cmd tea.Cmd
	m.inner, cmd = m.inner.Update(msg)
	return m, cmd
}

// View paints the inner model's view and hands it on (to Bubble Tea's disabled renderer).
func (m *model) View() tea.View {
	v := m.inner.View()
	_ = m.screen.Paint(v.Content)
	return v
}

// Leaving reports the inner model's Leaving, when it has one.
func (m *model) Leaving() bool {
	l, ok := m.inner.(interface{ Leaving() bool })
	return ok && l.Leaving()
}
