package backend_test

import (
	"sync"
	"testing"

	"whalemountain/backend"
)

func TestSubscribers(t *testing.T) {
	var (
		mu   sync.Mutex
		subs backend.Subscribers
	)
	alice, cancelAlice := subs.Add(&mu, "alice")
	all, cancelAll := subs.Add(&mu, "")
	woken := func(ch <-chan struct{}) bool {
		select {
		case _, ok := <-ch:
			return ok
		default:
			return false
		}
	}
	mu.Lock()
	subs.Notify(map[string]bool{"bob": true})
	mu.Unlock()
	if woken(alice) || !woken(all) {
		t.Error("a change of bob's woke alice's subscriber, or not everyone's")
	}
	mu.Lock()
	subs.Notify(nil)
	subs.Notify(nil) // coalesced, never blocking
	mu.Unlock()
	if !woken(alice) || woken(alice) || !woken(all) {
		t.Error("a change of health is not told once to every subscriber")
	}
	cancelAlice()
	cancelAlice()
	if _, ok := <-alice; ok {
		t.Error("cancel does not close the channel")
	}
	mu.Lock()
	subs.Notify(nil)
	mu.Unlock()
	cancelAll()
	if !woken(all) {
		t.Error("the remaining subscriber was not told")
	}
}
