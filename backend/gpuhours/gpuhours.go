// Package gpuhours keeps the GPU-hours each user held and used, per day, in append-only files
// under the data directory: one file per UTC day (<dir>/YYYY-MM-DD.jsonl), one JSON line per
// user and interval with the GPU-seconds held (GPUs allocated to the user's running
// containers, times the interval) and used (the same, weighted by each GPU's utilisation).
// Nothing is ever rewritten: a restart reads the files back and goes on appending, so the
// totals survive it. No database.
//
// A Meter takes a reading every interval from two functions the wiring gives it (which GPUs
// each user holds now, and how busy each GPU is) and appends it to the Ledger.
package gpuhours

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"
)

// Usage is GPU time of one user, in hours.
type Usage struct {
	Held float64 `json:"gpu_hours_held"`
	Used float64 `json:"gpu_hours_used"`
}

// Add is u plus v.
func (u Usage) Add(v Usage) Usage { return Usage{Held: u.Held + v.Held, Used: u.Used + v.Used} }

// Day is one user's usage on one UTC day.
type Day struct {
	User string `json:"user"`
	Day  string `json:"day"` // YYYY-MM-DD, UTC
	Usage
}

// line is one appended record: GPU-seconds of one user over the interval ending at At.
type line struct {
	At   time.Time `json:"at"`
	User string    `json:"user"`
	Held float64   `json:"held_s"`
	Used float64   `json:"used_s"`
}

var dayFile = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})\.jsonl$`)

// Ledger is the files of one data directory, read once at Open and then kept in memory beside
// what is appended. It is safe for concurrent use.
type Ledger struct {
	dir string

	mu      sync.Mutex
	days    map[string]map[string]Usage // day -> user -> usage
	records []line                      // every record, oldest first (for windows within a day)
	total   map[string]Usage            // user -> since the first file
}

// Open reads dir (created 0700 when missing). Lines that do not parse (a record cut short by
// a crash) are skipped.
func Open(dir string) (*Ledger, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("GPU-hours directory %s: %w", dir, err)
	}
	l := &Ledger{dir: dir, days: map[string]map[string]Usage{}, total: map[string]Usage{}}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("GPU-hours directory %s: %w", dir, err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() || !dayFile.MatchString(e.Name()) {
			continue
		}
		if err := l.read(filepath.Join(dir, e.Name())); err != nil {
			return nil, err
		}
	}
	slices.SortStableFunc(l.records, func(a, b line) int { return a.At.Compare(b.At) })
	return l, nil
}

func (l *Ledger) read(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read GPU-hours %s: %w", path, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var r line
		if json.Unmarshal(sc.Bytes(), &r) != nil || r.User == "" || r.At.IsZero() || r.Held < 0 || r.Used < 0 {
			continue
		}
		l.addLocked(r)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("read GPU-hours %s: %w", path, err)
	}
	return nil
}

func (l *Ledger) addLocked(r line) {
	day := r.At.UTC().Format(time.DateOnly)
	u := Usage{Held: r.Held / 3600, Used: r.Used / 3600}
	m := l.days[day]
	if m == nil {
		m = map[string]Usage{}
		l.days[day] = m
	}
	m[r.User] = m[r.User].Add(u)
	l.total[r.User] = l.total[r.User].Add(u)
	l.records = append(l.records, r)
}

// Sample is what one user held over one interval, in GPU-seconds.
type Sample struct {
	User string
	Held float64 // GPU-seconds allocated
	Used float64 // GPU-seconds weighted by utilisation
}

// Append records samples for the interval ending at at: one line each in that day's file.
// Samples with nothing held are skipped.
func (l *Ledger) Append(at time.Time, samples []Sample) error {
	at = at.UTC()
	var b strings.Builder
	var recs []line
	for _, s := range samples {
		if s.User == "" || s.Held <= 0 {
			continue
		}
		r := line{At: at, User: s.User, Held: s.Held, Used: max(0, min(s.Used, s.Held))}
		j, err := json.Marshal(r)
		if err != nil {
			return err
		}
		b.Write(j)
		b.WriteByte('\n')
		recs = append(recs, r)
	}
	if len(recs) == 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	path := filepath.Join(l.dir, at.Format(time.DateOnly)+".jsonl")
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("append GPU-hours to %s: %w", path, err)
	}
	_, werr := f.WriteString(b.String())
	if err := errors.Join(werr, f.Close()); err != nil {
		return fmt.Errorf("append GPU-hours to %s: %w", path, err)
	}
	for _, r := range recs {
		l.addLocked(r)
	}
	return nil
}

// Since is each user's usage in the records after since (the fair-share window).
func (l *Ledger) Since(since time.Time) map[string]Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]Usage{}
	i, _ := slices.BinarySearchFunc(l.records, since, func(r line, t time.Time) int {
		if r.At.After(t) {
			return 1
		}
		return -1
	})
	for _, r := range l.records[i:] {
		out[r.User] = out[r.User].Add(Usage{Held: r.Held / 3600, Used: r.Used / 3600})
	}
	return out
}

// Totals is each user's usage since the first record.
func (l *Ledger) Totals() map[string]Usage {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]Usage, len(l.total))
	for u, v := range l.total {
		out[u] = v
	}
	return out
}

// Days lists usage per user and day from the day of since on (the zero time: every day), of
// one user ("" for everyone), sorted by day then user.
func (l *Ledger) Days(user string, since time.Time) []Day {
	from := ""
	if !since.IsZero() {
		from = since.UTC().Format(time.DateOnly)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []Day
	for day, users := range l.days {
		if day < from {
			continue
		}
		for u, v := range users {
			if user == "" || u == user {
				out = append(out, Day{User: u, Day: day, Usage: v})
			}
		}
	}
	slices.SortFunc(out, func(a, b Day) int {
		if c := strings.Compare(a.Day, b.Day); c != 0 {
			return c
		}
		return strings.Compare(a.User, b.User)
	})
	return out
}

// Dir is where the files are.
func (l *Ledger) Dir() string { return l.dir }
