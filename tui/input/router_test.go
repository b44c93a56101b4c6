package input

import (
	"io"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
)

// recorder is a model that records the text of the keys it gets and leaves on "s".
type recorder struct {
	keys    []string
	leaving bool
	sizes   []Size
}

func (r *recorder) Init() tea.Cmd { return nil }
func (r *recorder) Leaving() bool { return r.leaving }
func (r *recorder) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyPressMsg:
		r.keys = append(r.keys, msg.String())
		if msg.String() == "s" {
			r.leaving = true
			return r, tea.Quit
		}
	case tea.WindowSizeMsg:
		r.sizes = append(r.sizes, Size{msg.Width, msg.Height})
	}
	return r, nil
}
func (r *recorder) View() tea.View { return tea.NewView("") }

func runRecorder(t *testing.T, rt *Router) *recorder {
	t.Helper()
	m := &recorder{}
	done := make(chan error, 1)
	go func() {
		_, err := rt.ProgramRun(func(opts ...tea.ProgramOption) *tea.Program {
			return tea.NewProgram(m, append(opts, tea.WithOutput(io.Discard), tea.WithoutSignalHandler())...)
		})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("program: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("program did not end")
	}
	return m
}

func readN(t *testing.T, r io.Reader, n int) string {
	t.Helper()
	buf := make([]byte, n)
	got := make(chan error, 1)
	go func() { _, err := io.ReadFull(r, buf); got <- err }()
	select {
	case err := <-got:
		if err != nil {
			t.Fatalf("read: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("read %d bytes: timed out", n)
	}
	return string(buf)
}

func TestSwitchesLoseNothing(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	rt := New(pr, Size{80, 24})
	defer rt.Close()

	// Keys typed in the same write as the switch key: the dashboard takes "a", "b", "s";
	// the stream gets exactly what follows.
	go pw.Write([]byte("abscat\x03\r"))
	m := runRecorder(t, rt)
	if got := strings.Join(m.keys, ","); got != "a,b,s" {
		t.Fatalf("dashboard got %q", got)
	}

	st := rt.Stream()
	if got := readN(t, st, 5); got != "cat\x03\r" {
		t.Fatalf("stream got %q", got)
	}
	select {
	case s := <-st.Sizes():
		if s != (Size{80, 24}) {
			t.Fatalf("first size %v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("stream got no initial size")
	}
	rt.Resize(Size{100, 30})
	select {
	case s := <-st.Sizes():
		if s != (Size{100, 30}) {
			t.Fatalf("resize reached stream as %v", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("resize did not reach the stream")
	}
	// Bytes written after the stream closes go to the next consumer, not the stream.
	st.Close()
	if n, err := st.Read(make([]byte, 1)); n != 0 || err != io.EOF {
		t.Fatalf("read after close: %d %v", n, err)
	}
	go pw.Write([]byte("xys"))
	m2 := runRecorder(t, rt)
	if got := strings.Join(m2.keys, ","); got != "x,y,s" {
		t.Fatalf("second dashboard got %q", got)
	}
	// The newest size reached the second dashboard, and the program's stale initial size did
	// not overwrite it.
	if last := m2.sizes[len(m2.sizes)-1]; last != (Size{100, 30}) {
		t.Fatalf("second dashboard sizes %v", m2.sizes)
	}
}

func TestEscapeSequencesAndLoneEscape(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	rt := New(pr, Size{80, 24})
	defer rt.Close()
	go func() {
		pw.Write([]byte("\x1b[A")) // up arrow in one piece
		pw.Write([]byte("\x1b"))   // a lone escape...
		time.Sleep(3 * escWait)    // ...that nothing follows for longer than the wait
		pw.Write([]byte("s"))
	}()
	m := runRecorder(t, rt)
	if got := strings.Join(m.keys, ","); got != "up,esc,s" {
		t.Fatalf("got %q", got)
	}
}

// TestEscapeSequenceSplitAcrossReads: a sequence whose rest comes in a later read is one
// key. The pipe hands each write to its own read; the wait for the rest is made long, so
// how long the second write takes to come does not decide the result.
func TestEscapeSequenceSplitAcrossReads(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	rt := New(pr, Size{80, 24})
	rt.escWait = time.Minute
	defer rt.Close()
	go func() {
		pw.Write([]byte("\x1b["))
		pw.Write([]byte("Bs"))
	}()
	m := runRecorder(t, rt)
	if got := strings.Join(m.keys, ","); got != "down,s" {
		t.Fatalf("got %q", got)
	}
}

func TestInputEndQuitsProgram(t *testing.T) {
	pr, pw := io.Pipe()
	rt := New(pr, Size{80, 24})
	defer rt.Close()
	go func() {
		pw.Write([]byte("a"))
		pw.Close()
	}()
	m := runRecorder(t, rt)
	if got := strings.Join(m.keys, ","); got != "a" {
		t.Fatalf("got %q", got)
	}
	st := rt.Stream()
	defer st.Close()
	if _, err := st.Read(make([]byte, 1)); err != io.EOF {
		t.Fatalf("stream after end of input: %v", err)
	}
}
