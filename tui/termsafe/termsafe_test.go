package termsafe

import (
	"strings"
	"testing"
)

func TestLineAndText(t *testing.T) {
	cases := []struct {
		in, line, text string
	}{
		{"plain name", "plain name", "plain name"},
		{"", "", ""},
		{"évé 日本", "évé 日本", "évé 日本"},
		{"a\x1b[2Jb", `a\x1b[2Jb`, `a\x1b[2Jb`},
		{"title\x1b]0;pwned\x07", `title\x1b]0;pwned\x07`, `title\x1b]0;pwned\x07`},
		{"two\nlines\ttab", `two\x0alines\x09tab`, "two\nlines\ttab"},
		{"crlf\r\nend", `crlf\x0d\x0aend`, "crlf\nend"},
		{"over\rwrite", `over\x0dwrite`, `over\x0dwrite`},
		{"c1\u009b31m", `c1\u009b31m`, `c1\u009b31m`},
		{"bad\xffutf8", `bad\xffutf8`, `bad\xffutf8`},
		{"del\x7f", `del\x7f`, `del\x7f`},
	}
	for _, c := range cases {
		if got := Line(c.in); got != c.line {
			t.Errorf("Line(%q) = %q, want %q", c.in, got, c.line)
		}
		if got := Text(c.in); got != c.text {
			t.Errorf("Text(%q) = %q, want %q", c.in, got, c.text)
		}
	}
}

func FuzzLineHasNoControls(f *testing.F) {
	f.Add("a\x1b[31mred\u009b")
	f.Fuzz(func(t *testing.T, s string) {
		for _, r := range Line(s) {
			if isControl(r) {
				t.Fatalf("Line(%q) kept control %U", s, r)
			}
		}
	})
}

func TestWriter(t *testing.T) {
	var out strings.Builder
	w := NewWriter(&out)
	w.Write([]byte("one\x1b[2J\r\ntw"))
	if got := out.String(); got != `one\x1b[2J`+"\n" {
		t.Fatalf("after first write: %q", got)
	}
	w.Write([]byte("o\n\x1b"))
	w.Write([]byte("]0;x\x07"))
	w.Flush()
	if got, want := out.String(), `one\x1b[2J`+"\ntwo\n"+`\x1b]0;x\x07`; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
	long := strings.Repeat("a", maxHeld+10)
	out.Reset()
	w.Write([]byte(long))
	if out.Len() != len(long) {
		t.Fatalf("a long line without newline is held: %d of %d written", out.Len(), len(long))
	}
}
