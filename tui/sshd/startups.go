package sshd

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
)

// Startups bounds the connections that have not authenticated yet, as OpenSSH's MaxStartups
// and PerSourceMaxStartups do: up to Soft are always let in; past Soft a new one is dropped
// with a probability that starts at Rate percent and rises linearly to 100 % at Hard; past
// Hard, or past PerSource from one address, every new one is refused. So a flood of half-open
// handshakes — from one address or many — never keeps students out for longer than it lasts.
type Startups struct {
	Soft, Rate, Hard int
	PerSource        int
}

// DefaultStartups are OpenSSH's defaults (10:30:100) with at most 20 from one address.
var DefaultStartups = Startups{Soft: 10, Rate: 30, Hard: 100, PerSource: 20}

// Validate reports a setting that cannot work.
func (s Startups) Validate() error {
	switch {
	case s.Soft < 1 || s.Hard < s.Soft:
		return fmt.Errorf("max_startups: want 1 <= soft <= hard (got %d:%d:%d)", s.Soft, s.Rate, s.Hard)
	case s.Rate < 0 || s.Rate > 100:
		return fmt.Errorf("max_startups: rate must be a percentage (got %d)", s.Rate)
	case s.PerSource < 1:
		return fmt.Errorf("per_source_max_startups: must be at least 1 (got %d)", s.PerSource)
	}
	return nil
}

// burstQuiet is how long no drop ends a burst: the summary is logged then.
const burstQuiet = 10 * time.Second

// startups counts the unauthenticated connections, in total and per address.
type startups struct {
	cfg  Startups
	log  *slog.Logger
	roll func() int // 0..99

	mu       sync.Mutex
	total    int
	bySource map[string]int

	// The burst being dropped, logged once when it starts and once when it ends.
	dropped int
	sources map[string]bool
	quiet   *time.Timer
}

func newStartups(cfg Startups, log *slog.Logger) *startups {
	return &startups{cfg: cfg, log: log, roll: func() int { return rand.IntN(100) }, bySource: map[string]int{}}
}

// admit decides about a new connection from ip. When it is let in, release must be called
// once it has authenticated or closed (more calls do nothing).
func (s *startups) admit(ip string) (release func(), ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	reason := ""
	switch {
	case s.bySource[ip] >= s.cfg.PerSource:
		reason = fmt.Sprintf("%d unauthenticated connections from this address", s.bySource[ip])
	case s.total >= s.cfg.Hard:
		reason = fmt.Sprintf("%d unauthenticated connections in all", s.total)
	case s.total >= s.cfg.Soft:
		// Rate % at Soft, rising to 100 % at Hard.
		p := s.cfg.Rate
		if s.cfg.Hard > s.cfg.Soft {
			p += (100 - s.cfg.Rate) * (s.total - s.cfg.Soft) / (s.cfg.Hard - s.cfg.Soft)
		}
		if s.roll() < p {
			reason = fmt.Sprintf("%d unauthenticated connections in all (dropping %d %%)", s.total, p)
		}
	}
	if reason != "" {
		s.droppedLocked(ip, reason)
		return nil, false
	}
	s.total++
	s.bySource[ip]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			s.total--
			if s.bySource[ip]--; s.bySource[ip] <= 0 {
				delete(s.bySource, ip)
			}
		})
	}, true
}

// droppedLocked counts a drop; the first of a burst is logged at once, the rest in one line
// when the burst has been quiet for burstQuiet.
func (s *startups) droppedLocked(ip, reason string) {
	if s.quiet == nil {
		s.log.Warn("dropping new connections: too many not yet logged in", "remote", ip, "reason", reason)
		s.sources = map[string]bool{}
		s.quiet = time.AfterFunc(burstQuiet, s.endBurst)
	} else {
		s.quiet.Reset(burstQuiet)
	}
	s.dropped++
	s.sources[ip] = true
}

func (s *startups) endBurst() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.log.Warn("stopped dropping connections", "dropped", s.dropped, "sources", len(s.sources))
	s.dropped, s.sources, s.quiet = 0, nil, nil
}

// inFlight reports the unauthenticated connections now, for tests.
func (s *startups) inFlight() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.total
}
