package sshauth

import (
	"net"
	"net/netip"
	"sync"
	"time"
)

// limiter counts failures per address and refuses an address that had limit failures
// within window, for block.
type limiter struct {
	limit  int // <= 0: never refuse
	window time.Duration
	block  time.Duration
	now    func() time.Time

	mu        sync.Mutex
	addrs     map[string]*addrFailures
	lastSweep time.Time
}

type addrFailures struct {
	times []time.Time // failures within the window, oldest first
	until time.Time   // refused until then
}

func newLimiter(limit int, window, block time.Duration, now func() time.Time) *limiter {
	return &limiter{limit: limit, window: window, block: block, now: now, addrs: map[string]*addrFailures{}}
}

// refused reports whether key is refused now.
func (l *limiter) refused(key string) bool {
	if l.limit <= 0 {
		return false
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	a := l.addrs[key]
	return a != nil && now.Before(a.until)
}

// fail records a failure from key.
func (l *limiter) fail(key string) {
	if l.limit <= 0 {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	a := l.addrs[key]
	if a == nil {
		a = &addrFailures{}
		l.addrs[key] = a
	}
	if now.Before(a.until) {
		return
	}
	cut := 0
	for cut < len(a.times) && now.Sub(a.times[cut]) >= l.window {
		cut++
	}
	a.times = append(a.times[cut:], now)
	if len(a.times) >= l.limit {
		a.until = now.Add(l.block)
		a.times = nil
	}
}

// sweep forgets addresses with nothing left to remember, at most once a window.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < l.window {
		return
	}
	l.lastSweep = now
	for k, a := range l.addrs {
		if !now.Before(a.until) && (len(a.times) == 0 || now.Sub(a.times[len(a.times)-1]) >= l.window) {
			delete(l.addrs, k)
		}
	}
}

// addrKey is what failures are counted by: the IP address of remote ("1.2.3.4:5678",
// "[2001:db8::1]:22" or a bare address), IPv6 addresses by their /64, since one host
// usually holds a whole /64. Anything unparsable counts as itself.
func addrKey(remote string) string {
	addr, err := netip.ParseAddr(remote)
	if err != nil {
		host, _, serr := net.SplitHostPort(remote)
		if serr != nil {
			return remote
		}
		if addr, err = netip.ParseAddr(host); err != nil {
			return host
		}
	}
	addr = addr.Unmap().WithZone("")
	if addr.Is6() {
		if p, err := addr.Prefix(64); err == nil {
			return p.String()
		}
	}
	return addr.String()
}
