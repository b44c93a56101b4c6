package sshauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"

	"whalemountain/backend"
)

// Options configures an Authenticator. Zero values take the defaults.
type Options struct {
	// Sources are asked in order; the first that knows the user and holds the offered key
	// wins. A source saying the user is blocked ends the search.
	Sources []KeySource
	// Roles decides the role of an accepted user; nil makes everyone a student.
	Roles *RoleResolver
	// FailureLimit failures from one address within FailureWindow get the address refused
	// for BlockFor. Defaults: 10, 1 minute, 5 minutes. A negative limit turns this off.
	FailureLimit  int
	FailureWindow time.Duration
	BlockFor      time.Duration
	Now           func() time.Time
	Logger        *slog.Logger // nil discards
}

// Authenticator checks offered keys against its sources. It is safe for concurrent use.
type Authenticator struct {
	sources []KeySource
	roles   *RoleResolver
	limit   *limiter
	log     *slog.Logger
}

// New returns an Authenticator for opts. It needs at least one source.
func New(opts Options) (*Authenticator, error) {
	if len(opts.Sources) == 0 {
		return nil, errors.New("sshauth: no key sources configured")
	}
	for i, s := range opts.Sources {
		if s == nil {
			return nil, fmt.Errorf("sshauth: key source %d is nil", i)
		}
	}
	if opts.FailureLimit == 0 {
		opts.FailureLimit = 10
	}
	if opts.FailureWindow <= 0 {
		opts.FailureWindow = time.Minute
	}
	if opts.BlockFor <= 0 {
		opts.BlockFor = 5 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Authenticator{
		sources: append([]KeySource(nil), opts.Sources...),
		roles:   opts.Roles,
		limit:   newLimiter(opts.FailureLimit, opts.FailureWindow, opts.BlockFor, opts.Now),
		log:     opts.Logger,
	}, nil
}

// Allow returns a *RefusedError (ErrTooManyFailures) while remote (an "ip:port" or an IP)
// is refused for too many failures, nil otherwise. Check calls it first; a server may also
// call it when a connection arrives.
func (a *Authenticator) Allow(remote string) error {
	key := addrKey(remote)
	if a.limit.refused(key) {
		return &RefusedError{Reason: "too many failures from " + key, Err: ErrTooManyFailures}
	}
	return nil
}

// RecordFailure counts a failed attempt from remote.
func (a *Authenticator) RecordFailure(remote string) { a.limit.fail(addrKey(remote)) }

// RecordRefusal counts a failed login (one connection that never authenticated, whatever
// number of keys it offered) against remote, given the last error Check returned for it.
// Refusals that are not the client's fault (a key source unreachable) and refusals of an
// address already shut out are not counted. Check itself counts nothing: a client offers
// several keys in one login, and only the login's outcome is a failure.
func (a *Authenticator) RecordRefusal(remote string, err error) {
	if errors.Is(err, ErrUnavailable) || errors.Is(err, ErrTooManyFailures) {
		return
	}
	a.RecordFailure(remote)
}

// Check decides whether user may log in with key from remote. It returns the Identity
// (user name in lower case, role, SHA256 fingerprint of key, the source's Name, remote),
// or a *RefusedError whose message is the short reason. On a warm cache it asks nothing
// remote, so calling it again for the key the session actually used is cheap.
func (a *Authenticator) Check(ctx context.Context, user string, key ssh.PublicKey, remote string) (backend.Identity, error) {
	if err := a.Allow(remote); err != nil {
		return backend.Identity{}, err
	}
	name := strings.ToLower(user)
	if !ValidUsername(name) {
		return a.refuse(ErrUnknownUser.Error(), ErrUnknownUser)
	}
	if key == nil {
		return a.refuse(ErrKeyNotRegistered.Error(), ErrKeyNotRegistered)
	}
	want := key.Marshal()

	known := false
	var unavailable error // from the first source that could not answer
	unavailableSource := ""
	for _, src := range a.sources {
		keys, err := src.Keys(ctx, name)
		var blocked *BlockedError
		switch {
		case err == nil:
			known = true
			if hasKey(keys, want) {
				return a.identity(ctx, src, name, key, remote), nil
			}
		case errors.Is(err, ErrUnknownUser):
		case errors.As(err, &blocked):
			return a.refuse(blocked.Error(), err)
		case errors.Is(err, ErrBlocked):
			return a.refuse(ErrBlocked.Error(), err)
		default:
			a.log.Warn("key source could not answer", "source", src.Name(), "user", name, "remote", remote, "err", err)
			if unavailable == nil {
				unavailableSource = src.Name()
				if ue := (*UnavailableError)(nil); errors.As(err, &ue) && ue.Source != "" {
					unavailableSource = ue.Source
				}
				unavailable = err
				if !errors.Is(err, ErrUnavailable) {
					unavailable = &UnavailableError{Source: unavailableSource, Err: err}
				}
			}
		}
	}
	switch {
	case unavailable != nil:
		// The key may well be registered where we could not look: not the client's fault,
		// so not counted as a failure.
		return a.refuse(unavailableSource+" unreachable", unavailable)
	case known:
		return a.refuse(ErrKeyNotRegistered.Error(), ErrKeyNotRegistered)
	default:
		return a.refuse(ErrUnknownUser.Error(), ErrUnknownUser)
	}
}

func (a *Authenticator) identity(ctx context.Context, src KeySource, name string, key ssh.PublicKey, remote string) backend.Identity {
	var id int64
	if ids, ok := src.(GitLabUserIDs); ok {
		id, _ = ids.GitLabUserID(name)
	}
	return backend.Identity{
		User:           name,
		Role:           a.roles.Role(ctx, name, id),
		KeyFingerprint: ssh.FingerprintSHA256(key),
		KeySource:      src.Name(),
		RemoteAddr:     remote,
	}
}

func (a *Authenticator) refuse(reason string, err error) (backend.Identity, error) {
	return backend.Identity{}, &RefusedError{Reason: reason, Err: err}
}
