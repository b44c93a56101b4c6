package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"whalemountain/backend"
)

// Filter selects entries of the log; a zero field selects everything.
type Filter struct {
	User   string    // entries by this user only
	Action string    // entries of this action only ("stop", "login", ...)
	Since  time.Time // entries at or after this time only
}

// Match reports whether e is selected by f.
func (f Filter) Match(e Entry) bool {
	return (f.User == "" || e.User == f.User) &&
		(f.Action == "" || e.Action == f.Action) &&
		(f.Since.IsZero() || !e.Time.Before(f.Since))
}

// ErrNotYours is returned when a student asks for another user's entries.
var ErrNotYours = errors.New("students may read their own audit entries only")

// scope narrows f to what id may read: a TA reads everyone's entries, a student only their
// own (asking for someone else's is refused rather than silently narrowed).
func scope(id backend.Identity, f Filter) (Filter, error) {
	if !id.Valid() {
		return f, errors.New("no identity")
	}
	if id.IsTA() {
		return f, nil
	}
	if f.User != "" && f.User != id.User {
		return f, ErrNotYours
	}
	f.User = id.User
	return f, nil
}

// Read returns the entries id may read that f selects, oldest first. A line that is not an
// entry (a torn write at a crash) is skipped.
func (l *Log) Read(id backend.Identity, f Filter) ([]Entry, error) {
	f, err := scope(id, f)
	if err != nil {
		return nil, err
	}
	var out []Entry
	_, err = l.readFrom(0, f, func(e Entry) error { out = append(out, e); return nil })
	return out, err
}

// Follow calls fn for every entry id may read that f selects, oldest first, then for every
// new one as it is recorded, until ctx ends (nil) or fn fails (its error). It waits on
// Record, never polls.
func (l *Log) Follow(ctx context.Context, id backend.Identity, f Filter, fn func(Entry) error) error {
	f, err := scope(id, f)
	if err != nil {
		return err
	}
	wake, cancel := l.subscribe()
	defer cancel()
	off := int64(0)
	for {
		off, err = l.readFrom(off, f, fn)
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		}
	}
}

// readFrom reads whole lines from offset off and returns the offset after the last one.
func (l *Log) readFrom(off int64, f Filter, fn func(Entry) error) (int64, error) {
	if l == nil || l.path == "" {
		return off, errors.New("the audit log is not kept on this server")
	}
	file, err := os.Open(l.path)
	if err != nil {
		return off, fmt.Errorf("read audit log: %w", err)
	}
	defer file.Close()
	if _, err := file.Seek(off, io.SeekStart); err != nil {
		return off, fmt.Errorf("read audit log: %w", err)
	}
	r := bufio.NewReaderSize(file, 64<<10)
	for {
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			return off, nil // a partial last line is read again next time
		}
		if err != nil {
			return off, fmt.Errorf("read audit log: %w", err)
		}
		off += int64(len(line))
		var e Entry
		if json.Unmarshal(line, &e) != nil || !f.Match(e) {
			continue
		}
		if err := fn(e); err != nil {
			return off, err
		}
	}
}

// followers are told (coalesced, never blocking Record) that the log grew.
type followers struct {
	mu   sync.Mutex
	subs map[chan struct{}]struct{}
}

func (l *Log) subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	l.followers.mu.Lock()
	if l.followers.subs == nil {
		l.followers.subs = map[chan struct{}]struct{}{}
	}
	l.followers.subs[ch] = struct{}{}
	l.followers.mu.Unlock()
	return ch, func() {
		l.followers.mu.Lock()
		delete(l.followers.subs, ch)
		l.followers.mu.Unlock()
	}
}

func (l *Log) wakeFollowers() {
	l.followers.mu.Lock()
	defer l.followers.mu.Unlock()
	for ch := range l.followers.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}
