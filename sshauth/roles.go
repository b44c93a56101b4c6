package sshauth

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"whalemountain/backend"
	"whalemountain/backend/gitlab"
)

// RoleConfig says who is a TA.
type RoleConfig struct {
	// TAs are user names that are always TAs (and the fallback while GitLab is unreachable).
	TAs []string
	// GitLabGroup, when set, makes members of that group (ID or full path, e.g. "dept/tas",
	// inherited membership included) TAs if their access level is at least MinAccessLevel.
	GitLabGroup string
	// MinAccessLevel defaults to 30 (developer).
	MinAccessLevel int
	// TTL is how long a group answer is used without asking again. Default 60s.
	TTL time.Duration
	// RetryAfter: after GitLab could not be reached, do not ask again for this long
	// (default 5s; negative asks every time).
	RetryAfter time.Duration
	Now        func() time.Time
	Logger     *slog.Logger // nil discards
}

// RoleResolver decides a user's role. It is safe for concurrent use; a nil *RoleResolver
// makes everyone a student.
type RoleResolver struct {
	tas      map[string]bool
	group    string
	minLevel int
	ttl      time.Duration
	now      func() time.Time
	log      *slog.Logger
	c        *gitlab.Client
	down     breaker
	flight   singleflight.Group

	mu    sync.Mutex
	cache map[int64]levelEntry
}

type levelEntry struct {
	fetched time.Time
	level   int
}

// NewRoleResolver returns a resolver for cfg. c may be nil: then only the TA list counts.
func NewRoleResolver(cfg RoleConfig, c *gitlab.Client) *RoleResolver {
	if cfg.MinAccessLevel <= 0 {
		cfg.MinAccessLevel = gitlab.Developer
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 60 * time.Second
	}
	if cfg.RetryAfter == 0 {
		cfg.RetryAfter = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	tas := map[string]bool{}
	for _, u := range cfg.TAs {
		if u = strings.ToLower(strings.TrimSpace(u)); u != "" {
			tas[u] = true
		}
	}
	return &RoleResolver{
		tas:      tas,
		group:    cfg.GitLabGroup,
		minLevel: cfg.MinAccessLevel,
		ttl:      cfg.TTL,
		now:      cfg.Now,
		log:      cfg.Logger,
		c:        c,
		down:     breaker{retryAfter: cfg.RetryAfter},
		cache:    map[int64]levelEntry{},
	}
}

// Role returns RoleTA when user is in the TA list, or when gitlabUserID (0: not known) is a
// member of the TA group at or above the minimum level; RoleStudent otherwise. When GitLab
// cannot be reached only the list counts, and that is logged.
func (r *RoleResolver) Role(ctx context.Context, user string, gitlabUserID int64) backend.Role {
	if r == nil {
		return backend.RoleStudent
	}
	if r.tas[strings.ToLower(user)] {
		return backend.RoleTA
	}
	if r.c == nil || r.group == "" || gitlabUserID <= 0 {
		return backend.RoleStudent
	}
	level, err := r.level(ctx, gitlabUserID)
	if err != nil {
		r.log.Warn("cannot ask gitlab about group membership, role from the configured TA list only", "user", user, "group", r.group, "err", err)
		return backend.RoleStudent
	}
	if level >= r.minLevel {
		return backend.RoleTA
	}
	return backend.RoleStudent
}

// level is id's access level in the group, cached for ttl.
func (r *RoleResolver) level(ctx context.Context, id int64) (int, error) {
	now := r.now()
	r.mu.Lock()
	e, ok := r.cache[id]
	r.mu.Unlock()
	if ok && now.Sub(e.fetched) < r.ttl {
		return e.level, nil
	}
	if err := r.down.check(now); err != nil {
		return 0, err
	}
	ch := r.flight.DoChan(strconv.FormatInt(id, 10), func() (any, error) {
		lvl, err := r.c.GroupAccessLevel(context.WithoutCancel(ctx), r.group, id)
		if err != nil {
			r.down.trip(r.now(), err)
			return 0, err
		}
		r.down.reset()
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.cache) >= minSweep {
			t := r.now()
			for k, c := range r.cache {
				if t.Sub(c.fetched) >= r.ttl {
					delete(r.cache, k)
				}
			}
		}
		r.cache[id] = levelEntry{fetched: r.now(), level: lvl}
		return lvl, nil
	})
	select {
	case <-ctx.Done():
		return 0, ctx.Err()
	case res := <-ch:
		if res.Err != nil {
			return 0, res.Err
		}
		return res.Val.(int), nil
	}
}
