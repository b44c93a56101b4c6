// Package input owns the input of one SSH session: a single goroutine reads the session, and a
// Router hands the bytes and window sizes to whichever part is active — the dashboard (a Bubble
// Tea program, fed decoded events) or a raw stream (a shell in a container, fed bytes). Switching
// between them loses no keystroke and delivers none twice, and the newest window size always
// reaches the part that starts next.
package input

import (
	"errors"
	"io"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	uv "github.com/charmbracelet/ultraviolet"
)

// Size is a terminal size in cells.
type Size struct{ Width, Height int }

// escWait is how long a lone ESC or an incomplete sequence waits for the rest before it is
// taken as it is.
const escWait = 50 * time.Millisecond

// Router buffers a session's input and routes it to one consumer at a time.
type Router struct {
	mu      sync.Mutex
	cond    *sync.Cond
	buf     []byte // read from the session, not yet handed to a consumer
	err     error  // why the session's input ended; nil while it is open
	size    Size
	sizeGen uint64 // bumped on every resize
	closed  bool
	escWait time.Duration // escWait, but for tests
}

// New starts the one reader of r. The reader ends when r returns an error (the session closed).
func New(r io.Reader, initial Size) *Router {
	rt := &Router{size: initial, escWait: escWait}
	rt.cond = sync.NewCond(&rt.mu)
	go rt.read(r)
	return rt
}

func (rt *Router) read(r io.Reader) {
	chunk := make([]byte, 4096)
	for {
		n, err := r.Read(chunk)
		rt.mu.Lock()
		if n > 0 {
			rt.buf = append(rt.buf, chunk[:n]...)
		}
		if err != nil {
			rt.err = err
		}
		rt.cond.Broadcast()
		rt.mu.Unlock()
		if err != nil {
			return
		}
	}
}

// Resize records a new window size and tells the active consumer.
func (rt *Router) Resize(s Size) {
	rt.mu.Lock()
	rt.size = s
	rt.sizeGen++
	rt.cond.Broadcast()
	rt.mu.Unlock()
}

// Size is the latest window size.
func (rt *Router) Size() Size {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.size
}

// Close wakes every waiter; consumers see end of input.
func (rt *Router) Close() {
	rt.mu.Lock()
	rt.closed = true
	rt.cond.Broadcast()
	rt.mu.Unlock()
}

// Buffered returns a copy of the bytes not yet handed to any consumer (for tests).
func (rt *Router) Buffered() []byte {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return append([]byte(nil), rt.buf...)
}

// unread puts bytes back at the front of the buffer.
func (rt *Router) unread(b []byte) {
	if len(b) == 0 {
		return
	}
	rt.mu.Lock()
	rt.buf = append(append([]byte(nil), b...), rt.buf...)
	rt.cond.Broadcast()
	rt.mu.Unlock()
}

// Leaver is implemented by a model that can decide to hand the terminal to someone else: once
// Leaving reports true, input that reaches the program is not consumed and goes to whoever runs
// next.
type Leaver interface{ Leaving() bool }

// keyMsg and sizeMsg carry the router's messages through the program's filter.
type keyMsg struct {
	seq uint64
	msg tea.Msg
}

type sizeMsg Size

type sent struct {
	seq uint64
	raw []byte
}

// ProgramRun runs a Bubble Tea program as the active consumer until it ends. build receives
// the options the router needs (no input reader of its own, the filter, the current size) and
// returns the program. Input the program did not consume stays in the buffer for the next
// consumer.
func (rt *Router) ProgramRun(build func(opts ...tea.ProgramOption) *tea.Program) (tea.Model, error) {
	var (
		mu       sync.Mutex
		consumed uint64 // highest seq the model took
		sized    bool   // the router has sent a size; drop the program's own initial one
	)
	filter := func(m tea.Model, msg tea.Msg) tea.Msg {
		switch msg := msg.(type) {
		case keyMsg:
			if l, ok := m.(Leaver); ok && l.Leaving() {
				return nil
			}
			mu.Lock()
			consumed = msg.seq
			mu.Unlock()
			return msg.msg
		case sizeMsg:
			mu.Lock()
			sized = true
			mu.Unlock()
			return tea.WindowSizeMsg{Width: msg.Width, Height: msg.Height}
		case tea.WindowSizeMsg:
			mu.Lock()
			defer mu.Unlock()
			if sized {
				return nil
			}
		case tea.SuspendMsg:
			// Bubble Tea's suspend signals the whole process group: never here.
			return nil
		}
		return msg
	}
	size := rt.Size()
	p := build(tea.WithInput(nil), tea.WithFilter(filter), tea.WithWindowSize(size.Width, size.Height))

	stop := make(chan struct{})
	fed := make(chan []sent, 1)
	go func() { fed <- rt.feed(p, stop) }()
	model, err := p.Run()

	rt.mu.Lock()
	close(stop)
	rt.cond.Broadcast()
	rt.mu.Unlock()
	pending := <-fed

	mu.Lock()
	last := consumed
	mu.Unlock()
	var back []byte
	for _, s := range pending {
		if s.seq > last {
			back = append(back, s.raw...)
		}
	}
	rt.unread(back)
	return model, err
}

// feed decodes the buffer into events and sends them to p one at a time until stop closes.
// It returns what it sent, so the caller can put back what the program did not consume.
func (rt *Router) feed(p *tea.Program, stop <-chan struct{}) []sent {
	var (
		dec     uv.EventDecoder
		seq     uint64
		history []sent
		gen     uint64
	)
	rt.mu.Lock()
	gen = rt.sizeGen
	rt.mu.Unlock()
	stopped := func() bool {
		select {
		case <-stop:
			return true
		default:
			return false
		}
	}
	for {
		rt.mu.Lock()
		for len(rt.buf) == 0 && rt.sizeGen == gen && rt.err == nil && !rt.closed && !stopped() {
			rt.cond.Wait()
		}
		if stopped() {
			rt.mu.Unlock()
			return history
		}
		if rt.sizeGen != gen {
			gen = rt.sizeGen
			s := rt.size
			rt.mu.Unlock()
			p.Send(sizeMsg(s))
			continue
		}
		if len(rt.buf) == 0 { // input ended
			rt.mu.Unlock()
			p.Quit()
			<-stop
			return history
		}
		n, ev := dec.Decode(rt.buf)
		if incomplete(rt.buf, n, ev) && rt.err == nil {
			// Wait briefly for the rest of a sequence before taking it as it is.
			if rt.waitMore(len(rt.buf), stop) {
				rt.mu.Unlock()
				continue
			}
			n, ev = dec.Decode(rt.buf)
		}
		if n <= 0 {
			n = 1
		}
		raw := append([]byte(nil), rt.buf[:n]...)
		rt.buf = rt.buf[n:]
		rt.mu.Unlock()

		seq++
		history = append(history, sent{seq: seq, raw: raw})
		if msg := translate(ev); msg != nil {
			p.Send(keyMsg{seq: seq, msg: msg})
		}
	}
}

// waitMore waits (with rt.mu held) up to escWait for the buffer to grow beyond have bytes.
// It reports whether it did.
func (rt *Router) waitMore(have int, stop <-chan struct{}) bool {
	deadline := time.Now().Add(rt.escWait)
	t := time.AfterFunc(rt.escWait, func() {
		rt.mu.Lock()
		rt.cond.Broadcast()
		rt.mu.Unlock()
	})
	defer t.Stop()
	for len(rt.buf) == have && rt.err == nil && !rt.closed && time.Now().Before(deadline) {
		select {
		case <-stop:
			return false
		default:
		}
		rt.cond.Wait()
	}
	return len(rt.buf) > have
}

func incomplete(buf []byte, n int, ev uv.Event) bool {
	if n <= 0 {
		return true
	}
	if _, ok := ev.(uv.UnknownEvent); ok {
		return true
	}
	return buf[0] == 0x1b && n <= 2 && len(buf) == n
}

// translate turns a decoded input event into the message Bubble Tea would deliver, or nil for
// events a dashboard has no use for (terminal replies).
func translate(ev uv.Event) tea.Msg {
	switch e := ev.(type) {
	case uv.KeyPressEvent:
		return tea.KeyPressMsg(e)
	case uv.KeyReleaseEvent:
		return tea.KeyReleaseMsg(e)
	case uv.PasteEvent:
		return tea.PasteMsg(e)
	case uv.PasteStartEvent:
		return tea.PasteStartMsg(e)
	case uv.PasteEndEvent:
		return tea.PasteEndMsg(e)
	case uv.MouseClickEvent:
		return tea.MouseClickMsg(e)
	case uv.MouseReleaseEvent:
		return tea.MouseReleaseMsg(e)
	case uv.MouseWheelEvent:
		return tea.MouseWheelMsg(e)
	case uv.MouseMotionEvent:
		return tea.MouseMotionMsg(e)
	case uv.FocusEvent:
		return tea.FocusMsg(e)
	case uv.BlurEvent:
		return tea.BlurMsg(e)
	case uv.MultiEvent:
		// Rare (e.g. Windows console records); deliver the first key.
		for _, sub := range e {
			if m := translate(sub); m != nil {
				return m
			}
		}
	}
	return nil
}

// ErrStreamClosed is returned by a Stream's Read after Close.
var ErrStreamClosed = errors.New("input stream closed")

// Stream is a raw consumer: it reads the session's bytes exactly as typed, and sees every
// window size change. Only one consumer is active at a time; Close hands the input back.
type Stream struct {
	rt     *Router
	closed bool // guarded by rt.mu
	gen    uint64
	sizes  chan Size
	done   chan struct{}
}

// Stream makes a raw stream the active consumer. Its Sizes channel first delivers the current
// size.
func (rt *Router) Stream() *Stream {
	s := &Stream{rt: rt, sizes: make(chan Size, 1), done: make(chan struct{})}
	rt.mu.Lock()
	s.gen = rt.sizeGen
	s.sizes <- rt.size
	rt.mu.Unlock()
	go s.watchSizes()
	return s
}

// Read returns bytes typed by the user; io.EOF when the session's input ended or the stream
// was closed.
func (s *Stream) Read(p []byte) (int, error) {
	rt := s.rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for len(rt.buf) == 0 && rt.err == nil && !rt.closed && !s.closed {
		rt.cond.Wait()
	}
	if s.closed || (len(rt.buf) == 0 && (rt.err != nil || rt.closed)) {
		return 0, io.EOF
	}
	n := copy(p, rt.buf)
	rt.buf = rt.buf[n:]
	return n, nil
}

// Sizes delivers window sizes; only the newest is kept when the receiver is slow.
func (s *Stream) Sizes() <-chan Size { return s.sizes }

func (s *Stream) watchSizes() {
	rt := s.rt
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for {
		for rt.sizeGen == s.gen && !s.closed && !rt.closed {
			rt.cond.Wait()
		}
		if s.closed || rt.closed {
			close(s.done)
			return
		}
		s.gen = rt.sizeGen
		select { // keep only the newest
		case <-s.sizes:
		default:
		}
		s.sizes <- rt.size
	}
}

// Close ends the stream: a blocked Read returns io.EOF, and later input goes to the next
// consumer.
func (s *Stream) Close() error {
	s.rt.mu.Lock()
	if s.closed {
		s.rt.mu.Unlock()
		return nil
	}
	s.closed = true
	s.rt.cond.Broadcast()
	s.rt.mu.Unlock()
	<-s.done
	return nil
}

// Unread gives bytes the stream's reader could not deliver back to the front of the input,
// for the next consumer.
func (s *Stream) Unread(p []byte) { s.rt.unread(p) }
