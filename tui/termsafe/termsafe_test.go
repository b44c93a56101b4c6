package termsafe

import "testing"

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
