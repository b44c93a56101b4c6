package screen

import (
	"bytes"
	"strings"
	"testing"

	"github.com/charmbracelet/colorprofile"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/vt"
)

// shown is what a terminal emulator shows after every write so far, one string per row with
// trailing spaces cut.
func shown(emu *vt.Emulator) []string {
	rows := make([]string, emu.Height())
	for y := range rows {
		var b strings.Builder
		for x := 0; x < emu.Width(); x++ {
			if c := emu.CellAt(x, y); c != nil && c.Content != "" {
				b.WriteString(c.Content)
			} else if c == nil || c.Width != 0 {
				b.WriteByte(' ')
			}
		}
		rows[y] = strings.TrimRight(b.String(), " ")
	}
	return rows
}

func frame(lines ...string) string { return strings.Join(lines, "\n") }

// TestPaintOnlyWhatChanged: each step's frame is what the emulator shows afterwards, and the
// bytes written name only the rows that changed.
func TestPaintOnlyWhatChanged(t *testing.T) {
	full := strings.Repeat("x", 10)
	steps := []struct {
		name  string
		frame string
		rows  []int // rows (1-based) the step must write; nil: writes nothing
	}{
		{"first frame paints every row", frame("one", "two", "three", "four"), []int{1, 2, 3, 4}},
		{"the same frame writes nothing", frame("one", "two", "three", "four"), nil},
		{"one row changed", frame("one", "TWO", "three", "four"), []int{2}},
		{"a shorter line erases what is left", frame("one", "TWO", "th", "four"), []int{3}},
		{"styled text", frame("one", "\x1b[1;32mTWO\x1b[0m", "th", "four"), []int{2}},
		{"a full-width line", frame(full, "\x1b[1;32mTWO\x1b[0m", "th", "four"), []int{1}},
		{"fewer rows clear the rest", frame(full, "b"), []int{2, 3, 4}},
	}
	emu := vt.NewEmulator(10, 4)
	var out bytes.Buffer
	s := New(&out, colorprofile.TrueColor, "Title")
	s.Resize(10, 4)
	for i, st := range steps {
		out.Reset()
		if err := s.Paint(st.frame); err != nil {
			t.Fatal(err)
		}
		written := out.String()
		if st.rows == nil {
			if written != "" {
				t.Errorf("%s: wrote %q, want nothing", st.name, written)
			}
			continue
		}
		for row := 1; row <= 4; row++ {
			has := strings.Contains(written, ansi.CursorPosition(1, row))
			want := false
			for _, r := range st.rows {
				want = want || r == row
			}
			if has != want {
				t.Errorf("%s: row %d written %v, want %v (%q)", st.name, row, has, want, written)
			}
		}
		if i == 0 && !strings.HasPrefix(written, ansi.SetModeSynchronizedOutput+ansi.SetModeAltScreenSaveCursor+ansi.HideCursor) {
			t.Errorf("first paint does not enter the alternate screen with the cursor hidden: %q", written)
		}
		if i > 0 && strings.Contains(written, ansi.SetModeAltScreenSaveCursor) {
			t.Errorf("%s: enters the alternate screen again", st.name)
		}
		_, _ = emu.Write(out.Bytes())
		want := strings.Split(ansi.Strip(st.frame), "\n")
		for len(want) < 4 {
			want = append(want, "")
		}
		if got := shown(emu); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("%s: the terminal shows %q, want %q", st.name, got, want)
		}
		if st.name == "styled text" {
			if c := emu.CellAt(0, 1); c == nil || c.Style.Fg == nil {
				t.Error("the styled row lost its colour")
			}
		}
	}

	// A resize repaints everything; closing gives the terminal back once.
	s.Resize(12, 4)
	out.Reset()
	_ = s.Paint(frame(full, "b"))
	if !strings.Contains(out.String(), ansi.EraseEntireScreen) || !strings.Contains(out.String(), ansi.CursorPosition(1, 1)) {
		t.Errorf("after a resize: %q, want a full repaint", out.String())
	}
	out.Reset()
	_ = s.Close()
	if out.String() != ansi.ResetStyle+ansi.ShowCursor+ansi.ResetModeAltScreenSaveCursor {
		t.Errorf("close wrote %q", out.String())
	}
	out.Reset()
	_ = s.Paint("late")
	_ = s.Close()
	if out.Len() != 0 {
		t.Errorf("after close: %q", out.String())
	}
}

// TestColoursFollowTheProfile: a terminal without colours gets none.
func TestColoursFollowTheProfile(t *testing.T) {
	var out bytes.Buffer
	s := New(&out, colorprofile.NoTTY, "t")
	s.Resize(10, 2)
	_ = s.Paint("\x1b[38;2;255;0;0mred\x1b[0m")
	if strings.Contains(out.String(), "38;2;255") {
		t.Errorf("true colour reached a terminal without colours: %q", out.String())
	}
}

// TestCloseBeforePaintWritesNothing: a program that ended before its first frame leaves the
// terminal as it was.
func TestCloseBeforePaintWritesNothing(t *testing.T) {
	var out bytes.Buffer
	s := New(&out, colorprofile.TrueColor, "t")
	_ = s.Close()
	if out.Len() != 0 {
		t.Errorf("wrote %q", out.String())
	}
}
