package gpuhours

import (
	"cmp"
	"context"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"
)

// Holding is one running container's GPUs: whose, and which (by UUID).
type Holding struct {
	User  string
	UUIDs []string
}

// Readings are where a Meter learns what is held and how busy each GPU is.
type Readings struct {
	// Holdings lists the GPUs allocated to running containers now.
	Holdings func() []Holding
	// Utilisation is each GPU's utilisation now, 0..1 by UUID; a GPU missing from it counts
	// as unused. nil: every GPU counts as unused.
	Utilisation func() map[string]float64
}

// MeterOptions tune a Meter; zero values take the defaults.
type MeterOptions struct {
	Tick   time.Duration    // between readings; default 10s
	Flush  time.Duration    // between appends to the ledger; default 1m
	Now    func() time.Time // default time.Now
	Logger *slog.Logger
}

// Meter takes a reading every Tick and appends what it measured to a Ledger every Flush (and
// at Stop). Pending tells what was measured but not appended yet, so readers see it at once.
type Meter struct {
	ledger *Ledger
	read   Readings
	opts   MeterOptions

	mu      sync.Mutex
	last    time.Time         // the previous reading
	flushed time.Time         // the previous append
	pending map[string]Sample // measured since the previous append
	held    map[string]int    // GPUs each user holds at the last reading

	stopOnce sync.Once
	cancel   context.CancelFunc
	done     chan struct{}
}

// NewMeter measures with r into l. It measures only when Tick is called or after Start.
func NewMeter(l *Ledger, r Readings, o MeterOptions) *Meter {
	if o.Tick <= 0 {
		o.Tick = 10 * time.Second
	}
	if o.Flush <= 0 {
		o.Flush = time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	now := o.Now()
	return &Meter{ledger: l, read: r, opts: o, last: now, flushed: now, pending: map[string]Sample{}, held: map[string]int{}}
}

// Tick takes one reading: the GPUs held since the previous reading are counted for the time
// in between (what was held then is what is held now: readings are frequent), and appends
// to the ledger when Flush has passed.
func (m *Meter) Tick() {
	var hs []Holding
	if m.read.Holdings != nil {
		hs = m.read.Holdings()
	}
	var util map[string]float64
	if m.read.Utilisation != nil {
		util = m.read.Utilisation()
	}
	now := m.opts.Now()
	m.mu.Lock()
	dt := now.Sub(m.last).Seconds()
	m.last = now
	held := map[string]int{}
	if dt > 0 {
		for _, h := range hs {
			for _, u := range h.UUIDs {
				s := m.pending[h.User]
				s.User = h.User
				s.Held += dt
				s.Used += dt * min(1, max(0, util[u]))
				m.pending[h.User] = s
				held[h.User]++
			}
		}
	}
	m.held = held
	flush := now.Sub(m.flushed) >= m.opts.Flush
	m.mu.Unlock()
	if flush {
		m.Flush()
	}
}

// Flush appends what was measured since the previous append.
func (m *Meter) Flush() {
	m.mu.Lock()
	at := m.last
	samples := slices.Collect(maps.Values(m.pending))
	m.pending = map[string]Sample{}
	m.flushed = at
	m.mu.Unlock()
	if err := m.ledger.Append(at, samples); err != nil {
		m.opts.Logger.Warn("GPU-hours not recorded", "err", err)
	}
}

// Pending is what was measured and not yet appended, per user, in hours.
func (m *Meter) Pending() map[string]Usage {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Usage, len(m.pending))
	for u, s := range m.pending {
		out[u] = Usage{Held: s.Held / 3600, Used: s.Used / 3600}
	}
	return out
}

// HeldNow is how many GPUs each user held at the last reading.
func (m *Meter) HeldNow() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.held)
}

// Since is each user's usage after since, what is not appended yet included.
func (m *Meter) Since(since time.Time) map[string]Usage {
	out := m.ledger.Since(since)
	for u, v := range m.Pending() {
		out[u] = out[u].Add(v)
	}
	return out
}

// Totals is each user's usage since the first record, what is not appended yet included.
func (m *Meter) Totals() map[string]Usage {
	out := m.ledger.Totals()
	for u, v := range m.Pending() {
		out[u] = out[u].Add(v)
	}
	return out
}

// Days is Ledger.Days with what is not appended yet counted on the current day.
func (m *Meter) Days(user string, since time.Time) []Day {
	out := m.ledger.Days(user, since)
	today := m.opts.Now().UTC().Format(time.DateOnly)
	for u, v := range m.Pending() {
		if user != "" && u != user {
			continue
		}
		i := slices.IndexFunc(out, func(d Day) bool { return d.Day == today && d.User == u })
		if i < 0 {
			out = append(out, Day{User: u, Day: today, Usage: v})
			continue
		}
		out[i].Usage = out[i].Add(v)
	}
	slices.SortFunc(out, func(a, b Day) int {
		return cmp.Or(strings.Compare(a.Day, b.Day), strings.Compare(a.User, b.User))
	})
	return out
}

// Start reads every Tick until ctx ends or Stop.
func (m *Meter) Start(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	m.cancel = cancel
	m.done = make(chan struct{})
	go func() {
		defer close(m.done)
		t := time.NewTicker(m.opts.Tick)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				m.Tick()
			}
		}
	}()
}

// Stop ends the readings and appends what is pending.
func (m *Meter) Stop() {
	m.stopOnce.Do(func() {
		if m.cancel != nil {
			m.cancel()
			<-m.done
		}
		m.Tick()
		m.Flush()
	})
}
