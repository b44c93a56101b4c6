package logview

import (
	"fmt"
	"strings"
	"testing"

	"whalemountain/tui/termsafe"
)

func TestLogRing(t *testing.T) {
	r := newLogRing()
	w := termsafe.NewWriter(r)
	fmt.Fprint(w, "one\r\ntwo\tx\n\x1b[2Jthree")
	_ = w.Flush()
	r.finish(nil)
	lines, first, ended, err := r.snapshot()
	want := []string{"one", "two     x", `\x1b[2Jthree`}
	if strings.Join(lines, "|") != strings.Join(want, "|") || first != 0 || !ended || err != nil {
		t.Errorf("got %q first=%d ended=%v err=%v, want %q", lines, first, ended, err, want)
	}

	r = newLogRing()
	for i := range 3*logKeep + 7 {
		fmt.Fprintf(r, "line %d\n", i)
	}
	lines, first, _, _ = r.snapshot()
	if len(lines) != logKeep || first != 2*logKeep+7 || lines[0] != fmt.Sprintf("line %d", first) {
		t.Errorf("ring kept %d lines from %d (%q), want the last %d", len(lines), first, lines[0], logKeep)
	}

	r = newLogRing()
	fmt.Fprint(r, strings.Repeat("y", maxLogLine+10))
	if lines, _, _, _ := r.snapshot(); len(lines) != 1 || len(lines[0]) != maxLogLine+10 {
		t.Errorf("a long line without newline is broken once it passes the limit: %d lines", len(lines))
	}
}
