package share

import (
	"bytes"
	"io"
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// frameHint is the line under a frame, when there is room for it.
const frameHint = " ctrl-p ctrl-q leaves"

// frame is a framed view of v: a border around the owner's screen with label (whose shell,
// its size, who watches) in its top edge, and the hint under it when a terminal of vh rows
// has room. Every line is v.width+2 cells.
func frame(v view, label string, vh int) []string {
	inner := v.width
	top := "┌"
	if inner >= 2 {
		l := ansi.Truncate(" "+label+" ", inner-1, "… ")
		top += "─" + l + strings.Repeat("─", max(0, inner-1-ansi.StringWidth(l)))
	} else {
		top += strings.Repeat("─", inner)
	}
	lines := make([]string, 0, v.height+3)
	lines = append(lines, top+"┐")
	for _, l := range v.lines {
		lines = append(lines, "│"+l+ansi.ResetStyle+"│")
	}
	lines = append(lines, "└"+strings.Repeat("─", inner)+"┘")
	if vh >= v.height+3 {
		lines = append(lines, ansi.Truncate(frameHint, inner+2, ""))
	}
	return lines
}

// painter draws framed views on a viewer's terminal, writing only the lines that differ
// from what it shows.
type painter struct {
	out   io.Writer
	lines []string // what the terminal shows; nil: unknown (draw everything)
	modes string
	buf   bytes.Buffer
}

// reset forgets what the terminal shows: the next paint draws everything.
func (p *painter) reset() { p.lines = nil }

// paint shows lines (the frame, from the top left corner of a terminal vw cells wide) and
// the cursor and input modes of v.
func (p *painter) paint(lines []string, vw int, v view) error {
	b := &p.buf
	b.Reset()
	b.WriteString(ansi.SetModeSynchronizedOutput)
	if p.lines == nil || len(p.lines) != len(lines) || len(lines) > 0 && ansi.StringWidth(p.lines[0]) != ansi.StringWidth(lines[0]) {
		// A first draw, or the frame changed its size: start from an empty screen.
		b.WriteString(ansi.SetModeAltScreenSaveCursor + ansi.ResetStyle + ansi.SetTopBottomMargins(0, 0) +
			ansi.CursorHomePosition + ansi.EraseEntireScreen)
		p.lines, p.modes = make([]string, len(lines)), "\x00" // no line, no mode is known
		for i := range p.lines {
			p.lines[i] = "\x00"
		}
	}
	for i, l := range lines {
		if p.lines[i] == l {
			continue
		}
		b.WriteString(ansi.CursorPosition(1, i+1) + ansi.ResetStyle + l + ansi.ResetStyle)
		// Erasing the rest of a full line would take its last cell with it.
		if ansi.StringWidth(l) < vw {
			b.WriteString(ansi.EraseLineRight)
		}
		p.lines[i] = l
	}
	if v.modes != p.modes {
		for _, md := range replayModes {
			b.WriteString(ansi.ResetMode(md))
		}
		b.WriteString(v.modes)
		p.modes = v.modes
	}
	b.WriteString(ansi.CursorPosition(v.cursorX+2, v.cursorY+2))
	if v.hidden {
		b.WriteString(ansi.HideCursor)
	} else {
		b.WriteString(ansi.ShowCursor)
	}
	b.WriteString(ansi.ResetModeSynchronizedOutput)
	_, err := p.out.Write(b.Bytes())
	if b.Cap() > 64<<10 {
		p.buf = bytes.Buffer{}
	}
	return err
}
