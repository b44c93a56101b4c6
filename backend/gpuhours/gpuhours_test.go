package gpuhours

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// A meter on a fake clock: what users hold is counted per interval, weighted by utilisation,
// appended to the day's file, and read back whole by a ledger opened afresh (a restart).
func TestMeterLedgerRestart(t *testing.T) {
	dir := t.TempDir()
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 1, 23, 0, 0, 0, time.UTC)
	holdings := []Holding{{User: "alice", UUIDs: []string{"GPU-a"}}, {User: "bob", UUIDs: []string{"GPU-b", "GPU-c"}}}
	util := map[string]float64{"GPU-a": 0.5, "GPU-b": 1, "GPU-c": 0}
	m := NewMeter(l, Readings{Holdings: func() []Holding { return holdings }, Utilisation: func() map[string]float64 { return util }},
		MeterOptions{Flush: 30 * time.Minute, Now: func() time.Time { return now }})
	for range 4 { // two hours, across midnight
		now = now.Add(30 * time.Minute)
		m.Tick()
	}
	holdings = holdings[:1] // bob stopped
	now = now.Add(time.Hour)
	m.Tick()
	m.Stop()

	want := map[string]Usage{"alice": {Held: 3, Used: 1.5}, "bob": {Held: 4, Used: 2}}
	check := func(what string, got map[string]Usage) {
		t.Helper()
		for u, w := range want {
			if !near(got[u].Held, w.Held) || !near(got[u].Used, w.Used) {
				t.Errorf("%s: %s = %+v, want %+v", what, u, got[u], w)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %v", what, got)
		}
	}
	check("totals", m.Totals())

	l2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	check("after reopening", l2.Totals())
	// An interval counts on the day it ends: 23:00-23:30 on the first, the rest on the second.
	days := l2.Days("bob", time.Time{})
	if len(days) != 2 || days[0].Day != "2026-12-01" || !near(days[0].Held, 1) || days[1].Day != "2026-12-02" || !near(days[1].Held, 3) {
		t.Fatalf("bob's days: %+v", days)
	}
	if d := l2.Days("", now.Add(-time.Hour)); len(d) != 2 || d[0].User != "alice" || d[0].Day != "2026-12-02" {
		t.Fatalf("days since today: %+v", d)
	}
	// The window: the last hour holds only alice's.
	// (a record counts whole when it ends inside the window)
	w := l2.Since(now.Add(-time.Hour + time.Second))
	if !near(w["alice"].Held, 1) || w["bob"].Held != 0 {
		t.Fatalf("last hour: %+v", w)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.jsonl"))
	if len(files) != 2 {
		t.Fatalf("files %v, want one per day", files)
	}
	st, _ := os.Stat(files[0])
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode())
	}
}

// A line cut short by a crash is skipped; the rest still counts, and appending goes on.
func TestLedgerTornLine(t *testing.T) {
	dir := t.TempDir()
	at := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	body := `{"at":"2026-12-02T09:00:00Z","user":"alice","held_s":3600,"used_s":1800}` + "\n" + `{"at":"2026-12-02T09:01:00Z","user":"al`
	if err := os.WriteFile(filepath.Join(dir, "2026-12-02.jsonl"), []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := l.Totals()["alice"]; !near(got.Held, 1) || !near(got.Used, 0.5) {
		t.Fatalf("alice %+v", got)
	}
	if err := l.Append(at, []Sample{{User: "alice", Held: 3600, Used: 7200}, {User: "idle", Held: 0}}); err != nil {
		t.Fatal(err)
	}
	if got := l.Totals(); !near(got["alice"].Held, 2) || !near(got["alice"].Used, 1.5) || len(got) != 1 {
		t.Fatalf("after append: %+v (used is never more than held; nothing held, nothing written)", got)
	}
}
