package sshauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/sync/singleflight"

	"whalemountain/backend/gitlab"
)

// GitLabOptions tunes a GitLabSource. Zero values take the defaults.
type GitLabOptions struct {
	// TTL is how long an answer (keys, no such user, blocked) is used without asking
	// again. Default 60s.
	TTL time.Duration
	// StaleFor is how old cached keys may be and still be served while GitLab cannot be
	// reached. Default 1h.
	StaleFor time.Duration
	// RetryAfter is how long, after GitLab could not be reached, lookups use the cache
	// (or fail) without asking again, so an outage costs one timeout, not one per login.
	// Default 5s; negative asks every time.
	RetryAfter time.Duration
	Now        func() time.Time
	Logger     *slog.Logger // nil discards
}

// GitLabSource finds users' keys on GitLab (gitlab.Client.UserKeys) and caches the answers
// per user. Concurrent lookups of one user share one request. While GitLab cannot be
// reached it serves what it last saw, if that is younger than StaleFor, logging each time.
type GitLabSource struct {
	c        *gitlab.Client
	ttl      time.Duration
	staleFor time.Duration
	now      func() time.Time
	log      *slog.Logger
	down     breaker
	flight   singleflight.Group

	mu      sync.Mutex
	cache   map[string]*keysEntry
	sweepAt int
}

// keysEntry is one cached answer: keys (err nil), or ErrUnknownUser / a *BlockedError.
type keysEntry struct {
	fetched time.Time
	id      int64
	keys    []ssh.PublicKey
	err     error
}

const minSweep = 1024

// NewGitLabSource returns a source asking c.
func NewGitLabSource(c *gitlab.Client, opts GitLabOptions) *GitLabSource {
	if opts.TTL <= 0 {
		opts.TTL = 60 * time.Second
	}
	if opts.StaleFor <= 0 {
		opts.StaleFor = time.Hour
	}
	if opts.RetryAfter == 0 {
		opts.RetryAfter = 5 * time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &GitLabSource{
		c:        c,
		ttl:      opts.TTL,
		staleFor: opts.StaleFor,
		now:      opts.Now,
		log:      opts.Logger.With("source", "gitlab"),
		down:     breaker{retryAfter: opts.RetryAfter},
		cache:    map[string]*keysEntry{},
		sweepAt:  minSweep,
	}
}

// Name is "gitlab".
func (s *GitLabSource) Name() string { return "gitlab" }

// Keys returns user's usable GitLab keys (see gitlab.Client.UserKeys).
func (s *GitLabSource) Keys(ctx context.Context, user string) ([]ssh.PublicKey, error) {
	if !ValidUsername(user) {
		return nil, fmt.Errorf("gitlab: user %q: %w", user, ErrUnknownUser)
	}
	name := strings.ToLower(user)
	now := s.now()
	s.mu.Lock()
	e := s.cache[name]
	s.mu.Unlock()
	if e != nil && now.Sub(e.fetched) < s.ttl {
		return e.keys, e.err
	}

	if err := s.down.check(now); err != nil {
		return s.stale(name, e, now, err)
	}
	ch := s.flight.DoChan(name, func() (any, error) { return s.fetch(ctx, name) })
	select {
	case <-ctx.Done():
		return nil, fmt.Errorf("gitlab: look up %q: %w", name, ctx.Err())
	case r := <-ch:
		if r.Err != nil {
			return s.stale(name, e, s.now(), r.Err)
		}
		e := r.Val.(*keysEntry)
		return e.keys, e.err
	}
}

// GitLabUserID returns user's GitLab ID if a lookup has found the account and it may log in.
func (s *GitLabSource) GitLabUserID(user string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.cache[strings.ToLower(user)]
	if e == nil || e.err != nil || e.id == 0 {
		return 0, false
	}
	return e.id, true
}

// fetch asks GitLab about name and caches a definite answer. It returns an error only when
// GitLab gave none. The request is not tied to ctx's cancellation (others may share it);
// the client's timeout bounds it.
func (s *GitLabSource) fetch(ctx context.Context, name string) (*keysEntry, error) {
	u, keys, err := s.c.UserKeys(context.WithoutCancel(ctx), name)
	e := &keysEntry{id: u.ID}
	var blocked *gitlab.BlockedError
	switch {
	case err == nil:
		for _, k := range keys {
			pk, _, _, _, perr := ssh.ParseAuthorizedKey([]byte(k.Key))
			if perr != nil {
				s.log.Warn("skipping unparsable key", "user", name, "key_id", k.ID, "title", k.Title, "err", perr)
				continue
			}
			e.keys = append(e.keys, pk)
		}
	case errors.Is(err, gitlab.ErrNoSuchUser):
		e.err = fmt.Errorf("gitlab: user %q: %w", name, ErrUnknownUser)
	case errors.As(err, &blocked):
		e.err = &BlockedError{Reason: blocked.Reason()}
	default:
		s.down.trip(s.now(), err)
		return nil, err
	}
	s.down.reset()
	e.fetched = s.now()
	s.store(name, e)
	return e, nil
}

// stale answers while GitLab cannot be reached: the cached answer if young enough.
func (s *GitLabSource) stale(name string, e *keysEntry, now time.Time, cause error) ([]ssh.PublicKey, error) {
	if e != nil && now.Sub(e.fetched) < s.staleFor {
		s.log.Warn("gitlab unreachable, using cached answer", "user", name,
			"age", now.Sub(e.fetched).Round(time.Second).String(), "err", cause)
		return e.keys, e.err
	}
	return nil, &UnavailableError{Source: "gitlab", Err: fmt.Errorf("look up %q: %w", name, cause)}
}

func (s *GitLabSource) store(name string, e *keysEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cache[name] = e
	if len(s.cache) < s.sweepAt {
		return
	}
	// Forget what could no longer be served, so names tried once do not pile up.
	for k, c := range s.cache {
		if age := e.fetched.Sub(c.fetched); age >= s.staleFor || (c.err != nil && age >= s.ttl) {
			delete(s.cache, k)
		}
	}
	s.sweepAt = max(minSweep, 2*len(s.cache))
}

// breaker remembers that GitLab could not be reached, for retryAfter.
type breaker struct {
	retryAfter time.Duration

	mu    sync.Mutex
	until time.Time
	err   error
}

// check returns the last failure while callers should not ask again.
func (b *breaker) check(now time.Time) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil && now.Before(b.until) {
		return b.err
	}
	return nil
}

func (b *breaker) trip(now time.Time, err error) {
	if b.retryAfter < 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.until, b.err = now.Add(b.retryAfter), err
}

func (b *breaker) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.until, b.err = time.Time{}, nil
}
