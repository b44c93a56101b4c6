// Package termsafe neutralises terminal control sequences in text that came from outside
// (container names, logs, GitLab fields, error messages) before it reaches someone's terminal,
// so nothing a user or an image controls can move the cursor, retitle a window or rewrite the
// screen of another user.
package termsafe

import (
	"strings"
	"unicode/utf8"
)

// Line returns s with every control character (C0, DEL, C1) and invalid UTF-8 replaced by a
// visible escape such as `\x1b`, so the result stays on one line.
func Line(s string) string { return clean(s, false) }

// Text is like Line but keeps newlines and tabs; carriage returns are dropped when they end a
// line ("\r\n") and escaped otherwise.
func Text(s string) string { return clean(s, true) }

func clean(s string, multiline bool) string {
	if safe(s, multiline) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size <= 1:
			b.WriteString(hexEscape(s[i]))
		case multiline && (r == '\n' || r == '\t'):
			b.WriteRune(r)
		case multiline && r == '\r' && i+1 < len(s) && s[i+1] == '\n':
			// part of a CRLF line end: keep only the newline
		case isControl(r):
			if r < 0x80 {
				b.WriteString(hexEscape(byte(r)))
			} else {
				b.WriteString(`\u00` + hexDigits(byte(r)))
			}
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

func safe(s string, multiline bool) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return false // leave the slow path to decide about UTF-8 and C1
		}
		if c < 0x20 || c == 0x7f {
			if multiline && (c == '\n' || c == '\t') {
				continue
			}
			return false
		}
	}
	return true
}

func isControl(r rune) bool {
	return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0)
}

func hexEscape(c byte) string { return `\x` + hexDigits(c) }

func hexDigits(c byte) string {
	const digits = "0123456789abcdef"
	return string([]byte{digits[c>>4], digits[c&0xf]})
}
