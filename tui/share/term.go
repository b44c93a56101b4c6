package share

import (
	"bytes"
	"fmt"
	"regexp"
	"strings"

	"whalemountain/tui/termsafe"
)

// escState follows a terminal output stream just enough to know whether it stands between
// two characters and outside every escape sequence: the only place where the status line
// (an OSC title) may be slipped into it without breaking what the program drew.
type escState struct {
	st   uint8
	utf8 int // continuation bytes still due
}

const (
	stGround    uint8 = iota
	stEscape          // after ESC
	stEscInter        // ESC and intermediate bytes
	stCSI             // ESC [
	stString          // OSC, DCS, SOS, PM, APC: up to BEL or ST
	stStringEsc       // ESC inside a string: ST if a backslash follows
)

// feed advances the state over p.
func (e *escState) feed(p []byte) {
	for _, b := range p {
		switch e.st {
		case stGround:
			if e.utf8 > 0 {
				if b&0xC0 == 0x80 {
					e.utf8--
					continue
				}
				e.utf8 = 0
			}
			switch {
			case b == 0x1b:
				e.st = stEscape
			case b >= 0xC0 && b < 0xE0:
				e.utf8 = 1
			case b >= 0xE0 && b < 0xF0:
				e.utf8 = 2
			case b >= 0xF0 && b < 0xF8:
				e.utf8 = 3
			}
		case stEscape:
			switch {
			case b == '[':
				e.st = stCSI
			case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
				e.st = stString
			case b == 0x1b:
			case b >= 0x20 && b <= 0x2F:
				e.st = stEscInter
			default:
				e.st = stGround
			}
		case stEscInter:
			if b < 0x20 || b > 0x2F {
				e.st = stGround
			}
		case stCSI:
			switch {
			case b == 0x1b:
				e.st = stEscape
			case b == 0x18 || b == 0x1a || b >= 0x40 && b <= 0x7E:
				e.st = stGround
			}
		case stString:
			switch b {
			case 0x07, 0x18, 0x1a:
				e.st = stGround
			case 0x1b:
				e.st = stStringEsc
			}
		case stStringEsc:
			switch b {
			case '\\':
				e.st = stGround
			case 0x1b:
			default:
				e.st = stString
			}
		}
	}
}

// ground reports whether the stream is between characters, outside any sequence.
func (e escState) ground() bool { return e.st == stGround && e.utf8 == 0 }

// titleSeq sets the terminal's title (the window or tab bar; tmux's pane title): the
// status line, where it takes nothing from the program's screen.
func titleSeq(title string) []byte {
	return []byte("\x1b]2;" + termsafe.Line(title) + "\x07")
}

// seedFrom is what of the recent output (buf, whose beginning was cut when cut) the
// emulator starts from: all of it, or from the first whole line when its beginning is lost.
func seedFrom(buf []byte, cut bool) []byte {
	if !cut {
		return buf
	}
	if i := bytes.IndexByte(buf, '\n'); i >= 0 {
		return buf[i+1:]
	}
	return nil
}

// ring keeps the last max bytes written to it.
type ring struct {
	max int
	buf []byte
	cut bool // bytes were dropped from the front
}

func (r *ring) write(p []byte) {
	r.buf = append(r.buf, p...)
	if len(r.buf) > 2*r.max {
		n := copy(r.buf, r.buf[len(r.buf)-r.max:])
		r.buf = r.buf[:n]
		r.cut = true
	}
}

// bytes is the last max bytes (or fewer), and whether anything before them was dropped.
func (r *ring) bytes() ([]byte, bool) {
	if len(r.buf) > r.max {
		return r.buf[len(r.buf)-r.max:], true
	}
	return r.buf, r.cut
}

// leaveSeq puts a viewer's terminal back as it was before it showed someone else's
// programs: main screen, whole-screen scrolling, cursor shown, colours and input modes reset.
const leaveSeq = "\x1b[r\x1b[?1049l\x1b[?25h\x1b[0m\x1b[?1000l\x1b[?1002l\x1b[?1003l\x1b[?1006l\x1b[?1004l\x1b[?2004l\x1b[?1l\x1b>"

// mode is how a share is offered.
func mode(write bool) string {
	if write {
		return "read-write"
	}
	return "read-only"
}

// names joins user names for a status line.
func names(us []string) string {
	if len(us) == 0 {
		return "nobody"
	}
	return strings.Join(us, ", ")
}

// ownerTitle is the shell owner's status line.
func ownerTitle(name string, shared, write bool, watching []string) string {
	if !shared {
		return fmt.Sprintf("%s · not shared", name)
	}
	return fmt.Sprintf("%s · shared with TAs, %s · watching: %s", name, mode(write), names(watching))
}

// viewerTitle is a viewer's status line: whose shell, its size, the mode and who else is
// there, and a note when the viewer's terminal is smaller than the shell's.
func viewerTitle(owner, name string, width, height int, write bool, watching []string, vw, vh int) string {
	t := fmt.Sprintf("%s/%s %dx%d · %s · watching: %s", owner, name, width, height, mode(write), names(watching))
	if vw > 0 && vh > 0 && (vw < width || vh < height) {
		t += fmt.Sprintf(" · your terminal %dx%d is smaller: clipped", vw, vh)
	}
	return t
}

// answers are what a terminal sends back on its own when a program asks (cursor position,
// device attributes, colours, DCS replies): a viewer's terminal answers the same questions as
// the owner's, and its answers must not be typed into the shell a second time.
var answers = regexp.MustCompile(`\x1b\[\d+;\d+R|\x1b\[[?>][\d;]*c|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)|\x1bP[^\x1b]*\x1b\\`)

// viewerKeys is what of a viewer's input is typing: the terminal's answers taken out.
func viewerKeys(p []byte) []byte {
	return answers.ReplaceAll(p, nil)
}

// escapes follows the owner's keys for the sharing escapes, typed like OpenSSH's at the start
// of a line: ~S shares read-only, ~W read-write, ~X stops sharing, ~H lists them in the
// title. Any other key after the ~ goes on with it; a ~ alone waits for the next key. (OpenSSH
// passes a ~ and a key it has no escape for on to the server; ~~ sends a ~.)
type escapes struct {
	midLine bool  // not at the start of a line
	held    bool  // a ~ at the start of a line, waiting for the next key
	seq     uint8 // 1: after ESC, 2: in a CSI sequence
}

// escapeHelp is the status line that lists the escapes.
const escapeHelp = "sharing keys at the start of a line: ~S read-only · ~W read-write · ~X stop"

func isEscape(b byte) bool { return b == 'S' || b == 'W' || b == 'X' || b == 'H' }

// scan splits p into what goes to the process and the escapes typed. The terminal's own
// answers (cursor position, device attributes, focus), which a shell's prompt asks for, do not
// count as typing: the line still starts after them.
func (e *escapes) scan(p []byte) (out, cmds []byte) {
	out = make([]byte, 0, len(p)+1)
	for _, b := range p {
		if e.held {
			e.held = false
			if isEscape(b) {
				cmds = append(cmds, b)
				continue // still at the start of the line
			}
			out = append(out, '~')
			e.midLine = true
		}
		switch {
		case e.seq == 1:
			e.seq = 0
			if b == '[' {
				e.seq = 2
			} else {
				e.midLine = true
			}
		case e.seq == 2:
			if b >= 0x40 && b <= 0x7E {
				e.seq = 0
				if !strings.ContainsRune("RcIO", rune(b)) {
					e.midLine = true // a key such as an arrow
				}
			}
		case b == 0x1b:
			e.seq = 1
		case !e.midLine && b == '~':
			e.held = true
			continue
		default:
			e.midLine = b != '\r' && b != '\n'
		}
		out = append(out, b)
	}
	return out, cmds
}
