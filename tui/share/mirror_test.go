package share

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
	"go.uber.org/goleak"

	"whalemountain/tui/input"
)

// term is a terminal of the test's: an emulator fed with what a viewer is sent.
type term struct {
	e *vt.Emulator
}

// What a viewer is sent asks its terminal nothing, so nothing reads the emulator's answers.
func newTerm(w, h int) *term {
	return &term{e: vt.NewEmulator(w, h)}
}

func (t *term) write(p []byte) { _, _ = t.e.Write(p) }

// rows is the screen's text, one string per row, blanks at the end left out.
func (t *term) rows() []string {
	return strings.Split(t.e.String(), "\n")
}

// screenOf is what a terminal of w x h shows after out.
func screenOf(w, h int, out []byte) *term {
	t := newTerm(w, h)
	t.write(out)
	return t
}

// TestJoinSeesTheScreen: a viewer who joins is sent the screen as it is — whatever came
// before sharing, a full-screen program's alternate screen, attributes, cursor, input modes
// — not the recent bytes: its terminal then shows what the owner's does.
func TestJoinSeesTheScreen(t *testing.T) {
	for _, tc := range []struct {
		name          string
		before, after string // output before and after sharing starts
		queue         int    // ScreenQueue; 0: the default
	}{
		{name: "shell lines", before: "$ ls\r\na b c\r\n$ ", after: "echo hi\r\nhi\r\n$ "},
		{name: "more than a screen", after: strings.Repeat("line of text\r\n", 100) + "$ "},
		{name: "full-screen program",
			before: "$ vi notes\r\n",
			after:  "\x1b[?1049h\x1b[?1h\x1b[?2004h\x1b[H\x1b[2J\x1b[1;31mred title\x1b[0m\x1b[5;3Hcursor here\x1b[3;10r\x1b[7;4H\x1b[1m"},
		{name: "cursor hidden", after: "\x1b[?25l\x1b[10;10Hx"},
		{name: "a flood past the queue", queue: 4 << 10,
			after: strings.Repeat("flooding the shell with text\r\n", 2000) + "done\r\n$ "},
		{name: "wide characters", after: "日本語 ü\r\n\x1b[4munder\x1b[0m"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
			const w, h = 60, 20
			hub := New(Options{ScreenQueue: tc.queue})
			fx := newFake()
			ex := hub.Open(alice, "box", fx, Terminal{Width: w, Height: h})
			owner := drain(ex.Stdout())
			_, _ = fx.outW.Write([]byte(tc.before))
			if _, err := hub.Share(alice, "box", false); err != nil {
				t.Fatal(err)
			}
			for rest := []byte(tc.after); len(rest) > 0; { // in chunks, as a shell prints
				n := min(len(rest), 1000)
				_, _ = fx.outW.Write(rest[:n])
				rest = rest[n:]
			}
			all := tc.before + tc.after
			end := all[len(all)-min(len(all), 8):]
			waitFor(t, "the owner got everything", func() bool { return strings.Contains(owner.String(), end) })
			want := screenOf(w, h, []byte(owner.String()))

			vw, err := hub.Join(tanaka, "alice", input.Size{Width: w, Height: h})
			if err != nil {
				t.Fatal(err)
			}
			view := newTerm(w, h)
			var seen lockedBuf
			go vw.Run(context.Background(), ViewTerminal{Out: &seen})
			waitFor(t, "the screen reaches the viewer", func() bool { return seen.String() != "" })
			view.write([]byte(seen.String()))
			if got, exp := view.rows(), want.rows(); strings.Join(got, "\n") != strings.Join(exp, "\n") {
				t.Fatalf("the viewer sees\n%s\nthe owner\n%s", strings.Join(got, "\n"), strings.Join(exp, "\n"))
			}
			if view.e.CursorPosition() != want.e.CursorPosition() || view.e.CursorHidden() != want.e.CursorHidden() ||
				view.e.IsAltScreen() != want.e.IsAltScreen() {
				t.Errorf("cursor %v hidden %v alt %v, want %v %v %v", view.e.CursorPosition(), view.e.CursorHidden(), view.e.IsAltScreen(),
					want.e.CursorPosition(), want.e.CursorHidden(), want.e.IsAltScreen())
			}
			for y := range h {
				for x := range w {
					if a, b := view.e.CellAt(x, y), want.e.CellAt(x, y); a != nil && b != nil && !a.Style.Equal(&b.Style) {
						t.Fatalf("cell %d,%d: style %+v, want %+v", x, y, a.Style, b.Style)
					}
				}
			}
			if tc.name == "full-screen program" {
				s := seen.String()
				for _, seq := range []string{"\x1b[?1h", "\x1b[?2004h", "\x1b[3;10r"} {
					if !strings.Contains(s, seq) {
						t.Errorf("the viewer's terminal is not given %q: %q", seq, s)
					}
				}
				if snap, _, _ := strings.Cut(s, "\x1b]2;"); !strings.HasSuffix(snap, "\x1b[1m") {
					t.Errorf("the pen (bold) is not the last thing set: %q", snap[max(0, len(snap)-40):])
				}
			}
			// The live output goes on from there.
			_, _ = fx.outW.Write([]byte("\r\nlive-after-join"))
			waitFor(t, "live output follows", func() bool { return strings.Contains(seen.String(), "live-after-join") })
			ex.Close()
		})
	}
}

// TestFramedView: a viewer larger than the owner's terminal by a border sees the owner's
// screen framed (whose shell, its size, who watches in the border), redrawn as it changes;
// the owner's new size reaches the frame; a viewer that shrinks below the frame gets the
// screen and then the output as it comes.
func TestFramedView(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	hub := New(Options{})
	fx := newFake()
	ex := hub.Open(alice, "box", fx, Terminal{Width: 40, Height: 10})
	drain(ex.Stdout())
	_, _ = fx.outW.Write([]byte("$ make\r\n\x1b[32mok\x1b[0m\r\n$ "))
	if _, err := hub.Share(alice, "box", false); err != nil {
		t.Fatal(err)
	}
	w, err := hub.Join(tanaka, "alice", input.Size{Width: 80, Height: 24})
	if err != nil {
		t.Fatal(err)
	}
	sizes := make(chan input.Size, 1)
	var seen lockedBuf
	go w.Run(context.Background(), ViewTerminal{Out: &seen, Sizes: sizes})
	screen := func(cols, rows int) *term { return screenOf(cols, rows, []byte(seen.String())) }
	waitScreen := func(what string, cols, rows int, cond func([]string) bool) *term {
		t.Helper()
		var last *term
		deadline := time.Now().Add(5 * time.Second)
		for last = screen(cols, rows); !cond(last.rows()); last = screen(cols, rows) {
			if time.Now().After(deadline) {
				t.Fatalf("never: %s; the viewer sees\n%s\nafter %q", what, strings.Join(last.rows(), "\n"), seen.String())
			}
			time.Sleep(time.Millisecond)
		}
		return last
	}
	v := waitScreen("the frame", 80, 24, func(r []string) bool {
		return len(r) >= 12 && strings.HasPrefix(r[0], "┌─ alice/box 40x10 · read-only · watchi… ┐") && strings.HasPrefix(r[1], "│$ make") && strings.HasPrefix(r[11], "└")
	})
	r := v.rows()
	if r[1] != "│$ make"+strings.Repeat(" ", 34)+"│" || !strings.HasPrefix(r[2], "│ok ") || r[12] != frameHint {
		t.Errorf("inside the frame:\n%s", strings.Join(r, "\n"))
	}
	if c := v.e.CellAt(1, 2); c == nil || c.Style.Fg == nil {
		t.Errorf("the green of ok is lost: %+v", c)
	}
	if pos := v.e.CursorPosition(); pos.X != 3 || pos.Y != 3 {
		t.Errorf("the cursor is at %v, want 3,3 (after the prompt, inside the frame)", pos)
	}

	// The owner types; then resizes.
	_, _ = fx.outW.Write([]byte("echo framed-live"))
	waitScreen("live output in the frame", 80, 24, func(r []string) bool { return strings.HasPrefix(r[3], "│$ echo framed-live ") })
	_ = ex.Resize(60, 15)
	v = waitScreen("the new size in the frame", 80, 24, func(r []string) bool {
		return strings.HasPrefix(r[0], "┌─ alice/box 60x15") && len(r) >= 17 && strings.HasPrefix(r[16], "└")
	})
	if r := v.rows(); ansiWidth(r[1]) != 62 {
		t.Errorf("a row of the frame is %d cells, want 62: %q", ansiWidth(r[1]), r[1])
	}

	// The viewer's terminal shrinks below the frame: the screen, then the output as it comes.
	n := len(seen.String())
	sizes <- input.Size{Width: 60, Height: 15}
	waitFor(t, "the screen is sent", func() bool { return strings.Contains(seen.String()[n:], "$ echo framed-live") })
	_, _ = fx.outW.Write([]byte("\r\nraw-again\r\n"))
	waitFor(t, "raw output", func() bool { return strings.Contains(seen.String()[n:], "\r\nraw-again\r\n") })
	if r := screen(60, 15).rows(); !strings.HasPrefix(r[0], "$ make") || strings.Contains(strings.Join(r, "\n"), "┌") {
		t.Errorf("after the shrink the viewer sees\n%s", strings.Join(r, "\n"))
	}
	ex.Close()
}

func ansiWidth(s string) int { return len([]rune(s)) }

func TestFrame(t *testing.T) {
	v := view{lines: []string{"ab  ", "    "}, width: 4, height: 2}
	for _, tc := range []struct {
		label string
		vh    int
		want  []string
	}{
		{"x", 4, []string{"┌─ x ┐", "│ab  \x1b[m│", "│    \x1b[m│", "└────┘"}},
		{"x", 5, []string{"┌─ x ┐", "│ab  \x1b[m│", "│    \x1b[m│", "└────┘", " ctrl-"}},
		{"longer", 4, []string{"┌─ … ┐", "│ab  \x1b[m│", "│    \x1b[m│", "└────┘"}},
	} {
		if got := frame(v, tc.label, tc.vh); strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
			t.Errorf("frame(%q, %d) =\n%q\nwant\n%q", tc.label, tc.vh, got, tc.want)
		}
	}
}
