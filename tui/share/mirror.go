package share

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"time"

	uv "github.com/charmbracelet/ultraviolet"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/vt"
)

// mirror keeps the screen of a shell: the recent output (always), and while the shell is
// shared a terminal emulator of it, fed with the output and the owner's sizes by a goroutine
// of its own. The owner's output only ever waits for a queue append: the emulator is far
// slower than a shell can print, so the queue is bounded, and when it overflows the emulator
// starts again from the recent output (the screen a flood of text leaves is its last
// lines). The feeding goroutine also rests in proportion to its work (restFactor), so a
// shell that prints without pause costs a bounded share of a core.
type mirror struct {
	max int // bytes the queue holds before it starts again from the recent output

	qmu     sync.Mutex    // guards what follows, up to emu
	ring    ring          // the recent output, shared or not
	on      bool          // an emulator is kept
	queue   []piece       // output and sizes the emulator has not taken yet
	queued  int           // bytes in queue
	resync  bool          // start again from the ring
	flood   bool          // because the queue overflowed: from its last lines
	width   int           // the size after the queue
	height  int           //
	wake    chan struct{} // the feeder has work (capacity 1)
	quit    chan struct{} // closed when the emulator is let go
	changed chan struct{} // closed and replaced each time the emulator takes something

	emu   sync.Mutex // held while the emulator is fed or read; taken before qmu
	term  *vt.Emulator
	state termState
}

// restFactor is how much longer than its work the emulator rests: a shell that prints
// without pause costs at most a tenth of a core for its screen.
const restFactor = 9

// piece is one chunk of output, or a new size when width > 0.
type piece struct {
	data          []byte
	width, height int
}

// termState is what the emulator does not say of itself: the input modes a program set
// (they decide what the viewer's keys send), the pen, the scrolling region.
type termState struct {
	modes  map[ansi.Mode]bool
	pen    uv.Style
	top    int // the scrolling region (1-based, inclusive); 0: the whole screen
	bottom int
}

// replayModes are the modes a viewer's terminal must share with the owner's, in the order
// they are set.
var replayModes = []ansi.Mode{
	ansi.ModeCursorKeys, ansi.ModeBracketedPaste, ansi.ModeMouseNormal, ansi.ModeMouseButtonEvent,
	ansi.ModeMouseAnyEvent, ansi.ModeMouseExtSgr, ansi.ModeFocusEvent,
}

func newMirror(replay, queue, width, height int) *mirror {
	return &mirror{max: queue, ring: ring{max: replay}, width: width, height: height,
		wake: make(chan struct{}, 1), changed: make(chan struct{})}
}

// write takes a chunk of the shell's output; it never waits for the emulator.
func (m *mirror) write(p []byte) {
	m.qmu.Lock()
	defer m.qmu.Unlock()
	m.ring.write(p)
	if !m.on || m.resync {
		return
	}
	if m.queued+len(p) > m.max {
		m.queue, m.queued, m.resync, m.flood = nil, 0, true, true
	} else {
		m.queue = append(m.queue, piece{data: append([]byte(nil), p...)})
		m.queued += len(p)
	}
	m.signal()
}

// resize takes the owner's new size, in order with the output.
func (m *mirror) resize(width, height int) {
	m.qmu.Lock()
	defer m.qmu.Unlock()
	m.width, m.height = width, height
	if !m.on || m.resync {
		return
	}
	m.queue = append(m.queue, piece{width: width, height: height})
	m.signal()
}

func (m *mirror) signal() {
	select {
	case m.wake <- struct{}{}:
	default:
	}
}

// start keeps an emulator from now on, drawn first from the recent output.
func (m *mirror) start() {
	m.qmu.Lock()
	defer m.qmu.Unlock()
	if m.on {
		return
	}
	m.on, m.resync, m.queue, m.queued = true, true, nil, 0
	m.quit = make(chan struct{})
	go m.feed(m.quit)
	m.signal()
}

// stop lets the emulator go.
func (m *mirror) stop() {
	m.qmu.Lock()
	if !m.on {
		m.qmu.Unlock()
		return
	}
	m.on, m.resync, m.flood, m.queue, m.queued = false, false, false, nil, 0
	close(m.quit)
	m.qmu.Unlock()
	m.emu.Lock()
	m.dropTerm()
	m.emu.Unlock()
}

// changes is closed at the emulator's next change.
func (m *mirror) changes() <-chan struct{} {
	m.qmu.Lock()
	defer m.qmu.Unlock()
	return m.changed
}

// feed gives the emulator what the shell prints until quit closes, resting restFactor
// times as long as each batch took.
func (m *mirror) feed(quit <-chan struct{}) {
	for {
		select {
		case <-quit:
			return
		case <-m.wake:
		}
		select {
		case <-quit: // let go while work was due: the next start has a feeder of its own
			return
		default:
		}
		start := time.Now()
		m.emu.Lock()
		took := m.takeLocked()
		m.emu.Unlock()
		if !took {
			continue
		}
		m.qmu.Lock()
		close(m.changed)
		m.changed = make(chan struct{})
		m.qmu.Unlock()
		if d := time.Since(start); d > time.Millisecond {
			select {
			case <-quit:
				return
			case <-time.After(min(restFactor*d, 500*time.Millisecond)):
			}
		}
	}
}

// takeLocked gives the emulator what is queued and reports whether there was anything; m.emu
// is held.
func (m *mirror) takeLocked() bool {
	m.qmu.Lock()
	if !m.on {
		m.qmu.Unlock()
		return false
	}
	queue, resync := m.queue, m.resync
	var seed []byte
	w, h := m.width, m.height
	if resync {
		buf, cut := m.ring.bytes()
		buf = seedFrom(buf, cut)
		if m.flood { // what a flood of output leaves on the screen is its last lines
			buf = lastLines(buf, 2*h)
		}
		seed = append([]byte(nil), buf...)
	}
	m.queue, m.queued, m.resync, m.flood = nil, 0, false, false
	m.qmu.Unlock()
	if resync {
		m.dropTerm()
		m.term = m.newTerm(w, h)
		_, _ = m.term.Write(seed)
	}
	if m.term == nil {
		return resync
	}
	for _, p := range queue {
		if p.width > 0 {
			m.term.Resize(p.width, p.height)
			m.state.top, m.state.bottom = 0, 0 // a new size resets the scrolling region
			continue
		}
		_, _ = m.term.Write(p.data)
	}
	return resync || len(queue) > 0
}

// newTerm makes an emulator of width x height that follows the modes, pen and scrolling
// region; m.emu is held.
func (m *mirror) newTerm(width, height int) *vt.Emulator {
	t := vt.NewEmulator(max(width, 1), max(height, 1))
	t.SetScrollbackSize(1) // the screen is what counts; the least the emulator keeps
	m.state = termState{modes: map[ansi.Mode]bool{}}
	st := &m.state
	t.SetCallbacks(vt.Callbacks{
		EnableMode:  func(md ansi.Mode) { st.modes[md] = true },
		DisableMode: func(md ansi.Mode) { delete(st.modes, md) },
	})
	// Watch the pen and the scrolling region on their way to the emulator's own handlers.
	t.RegisterCsiHandler('m', func(params ansi.Params) bool {
		uv.ReadStyle(params, &st.pen)
		return false
	})
	t.RegisterCsiHandler('r', func(params ansi.Params) bool {
		top, _, _ := params.Param(0, 1)
		bottom, _, _ := params.Param(1, 0)
		if top <= 1 && (bottom == 0 || bottom >= t.Height()) {
			st.top, st.bottom = 0, 0
		} else if bottom == 0 || top < bottom {
			st.top, st.bottom = max(top, 1), bottom
		}
		return false
	})
	// What the emulator answers to the program's questions goes nowhere: the owner's
	// terminal answers them.
	go func() { _, _ = io.Copy(io.Discard, t) }()
	return t
}

// dropTerm lets the emulator go; m.emu is held.
func (m *mirror) dropTerm() {
	if m.term == nil {
		return
	}
	if pw, ok := m.term.InputPipe().(*io.PipeWriter); ok {
		_ = pw.Close() // ends the goroutine that reads its answers
	}
	m.term = nil
}

// syncLocked brings the emulator up to the output written so far; m.emu is held. The
// caller keeps new output from arriving meanwhile (Shell.mu), so what it reads next is the
// screen exactly where the stream stands.
func (m *mirror) syncLocked() bool {
	m.takeLocked()
	return m.term != nil
}

// snapshot is the screen now, as bytes that draw it on a terminal of vw x vh (cut to fit)
// and leave it in the state the owner's is in: screen (main or alternate), cells and their
// attributes, scrolling region, cursor and its visibility, input modes, pen. Call it with
// Shell.mu held; nil when no emulator is kept.
func (m *mirror) snapshot(vw, vh int) []byte {
	m.emu.Lock()
	defer m.emu.Unlock()
	if !m.syncLocked() {
		return nil
	}
	t := m.term
	var b strings.Builder
	if t.IsAltScreen() {
		b.WriteString(ansi.SetModeAltScreenSaveCursor)
	} else {
		b.WriteString(ansi.ResetModeAltScreenSaveCursor)
	}
	b.WriteString(ansi.ResetStyle + ansi.SetTopBottomMargins(0, 0) + ansi.CursorHomePosition + ansi.EraseEntireScreen)
	w, h := t.Width(), t.Height()
	if vw > 0 {
		w = min(w, vw)
	}
	if vh > 0 {
		h = min(h, vh)
	}
	for y := range h {
		if l := lineOf(t, y, w, true); l != "" {
			b.WriteString(ansi.CursorPosition(1, y+1) + l)
		}
	}
	if m.state.top > 0 || m.state.bottom > 0 {
		b.WriteString(ansi.SetTopBottomMargins(m.state.top, m.state.bottom))
	}
	pos := t.CursorPosition()
	b.WriteString(ansi.CursorPosition(min(pos.X+1, max(w, 1)), min(pos.Y+1, max(h, 1))))
	b.WriteString(m.modesLocked())
	if t.CursorHidden() {
		b.WriteString(ansi.HideCursor)
	} else {
		b.WriteString(ansi.ShowCursor)
	}
	b.WriteString(m.state.pen.String())
	return []byte(b.String())
}

// modesLocked sets the input modes the owner's program set; m.emu is held.
func (m *mirror) modesLocked() string {
	var b strings.Builder
	for _, md := range replayModes {
		if m.state.modes[md] {
			b.WriteString(ansi.SetMode(md))
		}
	}
	return b.String()
}

// lineOf is row y of t's screen, its first w cells with their attributes; trim leaves out
// the blanks at its end.
func lineOf(t *vt.Emulator, y, w int, trim bool) string {
	line := make(uv.Line, w)
	end := 0
	for x := range w {
		c := t.CellAt(x, y)
		if c == nil {
			line[x] = uv.EmptyCell
			continue
		}
		line[x] = *c
		if !c.IsZero() && !c.Equal(&uv.EmptyCell) {
			end = x + c.Width
		}
	}
	if trim {
		line = line[:min(end, w)]
	}
	// A wide character cut in half at the edge is left out, not drawn over the edge.
	if n := len(line); n > 0 && line[n-1].Width > 1 {
		line[n-1] = uv.EmptyCell
	}
	return line.Render()
}

// view is the screen as a framed viewer draws it.
type view struct {
	lines   []string // width cells each, with attributes
	width   int
	height  int
	cursorX int
	cursorY int
	hidden  bool
	modes   string // the input modes to set
}

// view reads the screen for a framed viewer; ok is false when no emulator is kept.
func (m *mirror) view() (v view, ok bool) {
	m.emu.Lock()
	defer m.emu.Unlock()
	t := m.term
	if t == nil {
		return view{}, false
	}
	v = view{width: t.Width(), height: t.Height(), hidden: t.CursorHidden(), modes: m.modesLocked()}
	pos := t.CursorPosition()
	v.cursorX, v.cursorY = pos.X, pos.Y
	v.lines = make([]string, v.height)
	for y := range v.height {
		v.lines[y] = lineOf(t, y, v.width, false)
	}
	return v, true
}

// lastLines is the end of buf from after its n-th last newline (all of it when it has fewer).
func lastLines(buf []byte, n int) []byte {
	end := len(buf)
	for range n + 1 {
		i := bytes.LastIndexByte(buf[:end], '\n')
		if i < 0 {
			return buf
		}
		end = i
	}
	return buf[end+1:]
}
