package backend

import "sync"

// Subscribers are the channels a live snapshot tells of its changes, each for the objects of
// one owner ("" for everyone's). A value (coalesced: buffered 1) is sent without ever
// blocking the sender. The zero value is ready; the snapshot's own lock guards it.
type Subscribers struct {
	subs map[*subscriber]struct{}
}

type subscriber struct {
	ch    chan struct{}
	once  sync.Once
	owner string
}

// Add makes a subscriber for owner's objects under mu, the lock that guards s, and returns
// its channel and the cancel func that closes it (once, under mu).
func (s *Subscribers) Add(mu sync.Locker, owner string) (<-chan struct{}, func()) {
	sub := &subscriber{ch: make(chan struct{}, 1), owner: owner}
	mu.Lock()
	if s.subs == nil {
		s.subs = map[*subscriber]struct{}{}
	}
	s.subs[sub] = struct{}{}
	mu.Unlock()
	return sub.ch, func() {
		sub.once.Do(func() {
			mu.Lock()
			delete(s.subs, sub)
			close(sub.ch)
			mu.Unlock()
		})
	}
}

// Notify tells the subscribers that show an object of one of owners (nil: every subscriber)
// that something changed, never blocking. The caller holds the lock that guards s.
func (s *Subscribers) Notify(owners map[string]bool) {
	for sub := range s.subs {
		if owners != nil && sub.owner != "" && !owners[sub.owner] {
			continue
		}
		select {
		case sub.ch <- struct{}{}:
		default:
		}
	}
}
