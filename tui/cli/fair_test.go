package cli

import (
	"strings"
	"testing"
	"time"

	"whalemountain/backend/docker"
	"whalemountain/backend/gpuhours"
)

func TestOrdinal(t *testing.T) {
	for n, want := range map[int]string{1: "1st", 2: "2nd", 3: "3rd", 4: "4th", 11: "11th", 12: "12th", 13: "13th", 21: "21st", 102: "102nd", 111: "111th"} {
		if got := ordinal(n); got != want {
			t.Errorf("ordinal(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestWriteUsage(t *testing.T) {
	days := []gpuhours.Day{
		{User: "alice", Day: "2026-12-01", Usage: gpuhours.Usage{Held: 2, Used: 0.5}},
		{User: "bob", Day: "2026-12-01", Usage: gpuhours.Usage{Held: 1.125, Used: 1}},
		{User: "alice", Day: "2026-12-02", Usage: gpuhours.Usage{Held: 1, Used: 1}},
	}
	for _, tc := range []struct {
		users bool
		days  []gpuhours.Day
		want  string
	}{
		{false, nil, "No GPU-hours in this time.\n"},
		{false, days[2:], "DAY          GPU-H HELD   GPU-H USED\n2026-12-02   1.00         1.00\ntotal        1.00         1.00\n"},
		{true, days, "DAY          USER    GPU-H HELD   GPU-H USED\n" +
			"2026-12-01   alice   2.00         0.50\n" +
			"2026-12-01   bob     1.12         1.00\n" +
			"2026-12-02   alice   1.00         1.00\n" +
			"total        alice   3.00         1.50\n" +
			"total        bob     1.12         1.00\n"},
	} {
		var b strings.Builder
		writeUsage(&b, tc.days, tc.users)
		if b.String() != tc.want {
			t.Errorf("users=%v:\n%s\nwant:\n%s", tc.users, b.String(), tc.want)
		}
	}
}

func TestWriteWaiting(t *testing.T) {
	now := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	list := []docker.Waiting{
		{Owner: "bob", Name: "train", Image: "ml:1", GPUs: "1", Since: now.Add(-90 * time.Minute), Position: 1, Of: 2, HoursHeld: 0, Moved: 1},
		{Owner: "alice", Name: "x\x1b[2J", Image: "ml:1", GPUs: "2", Since: now.Add(-5 * time.Minute), Position: 2, Of: 2, HoursHeld: 3.5},
	}
	var b strings.Builder
	writeWaiting(&b, list, true, now)
	got := b.String()
	for _, want := range []string{"PLACE", "1/2 (moved)   bob/train", "2/2", "3.50", "1h30m"} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in\n%s", want, got)
		}
	}
	if strings.Contains(got, "\x1b") {
		t.Errorf("an escape reached the table:\n%q", got)
	}
	b.Reset()
	writeWaiting(&b, nil, false, now)
	if b.String() != "Nothing is waiting for GPUs.\n" {
		t.Errorf("empty: %q", b.String())
	}
	if got := PlaceText(list[1]); got != "2nd of 2 in line" {
		t.Errorf("PlaceText = %q", got)
	}
}
