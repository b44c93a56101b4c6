// Package sshauth decides who is knocking. It turns the user name and public key an SSH
// client offers into a backend.Identity (user, role, key fingerprint, where the key was
// found), or into a short reason for turning the client away that the audit log can record.
//
// Keys come from KeySources tried in order: a directory of authorized_keys files
// (NewDirSource) and the department GitLab (NewGitLabSource, cached, riding out outages with
// the keys it last saw). Roles come from the configured TA list and a GitLab group
// (RoleResolver). Repeated failures from one address shut that address out for a while.
//
// The package uses the key types of golang.org/x/crypto/ssh only, so it does not depend on
// the SSH server library.
package sshauth

import (
	"context"
	"crypto/subtle"
	"errors"

	"golang.org/x/crypto/ssh"
)

// Errors a login can be refused with; Check's errors match them with errors.Is.
var (
	ErrUnknownUser      = errors.New("unknown user")
	ErrKeyNotRegistered = errors.New("key not registered")
	ErrBlocked          = errors.New("user blocked")
	ErrUnavailable      = errors.New("key source unavailable")
	ErrTooManyFailures  = errors.New("too many failures")
)

// A KeySource knows the SSH keys users may log in with.
//
// Keys returns the keys of user (a name that passed ValidUsername, in lower case). It
// returns an error matching ErrUnknownUser when the source does not know the user, a
// *BlockedError when it knows the user but the account may not log in, and an error
// matching ErrUnavailable (usually an *UnavailableError) when it could not find out.
// A known user with no usable keys is an empty list and no error.
type KeySource interface {
	Name() string
	Keys(ctx context.Context, user string) ([]ssh.PublicKey, error)
}

// GitLabUserIDs is implemented by key sources that learn users' numeric GitLab IDs, which
// the RoleResolver needs to ask about group membership. GitLabUserID answers from what the
// source already knows, without a request.
type GitLabUserIDs interface {
	GitLabUserID(user string) (int64, bool)
}

// BlockedError is a user the source knows but who may not log in. It matches ErrBlocked.
type BlockedError struct {
	Reason string // e.g. "state=blocked", "state=active, locked"
}

func (e *BlockedError) Error() string {
	if e.Reason == "" {
		return ErrBlocked.Error()
	}
	return ErrBlocked.Error() + ": " + e.Reason
}

// Is makes errors.Is(err, ErrBlocked) true.
func (e *BlockedError) Is(target error) bool { return target == ErrBlocked }

// UnavailableError is a source that could not be asked. It matches ErrUnavailable and
// unwraps to the cause.
type UnavailableError struct {
	Source string // "gitlab"
	Err    error
}

func (e *UnavailableError) Error() string {
	if e.Err == nil {
		return e.Source + " unreachable"
	}
	return e.Source + " unreachable: " + e.Err.Error()
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrUnavailable) true.
func (e *UnavailableError) Is(target error) bool { return target == ErrUnavailable }

// RefusedError is a login Check turned down. Its message is the short Reason, fit for the
// audit log and for the user; the cause, with details for the server log, is wrapped and
// matches this package's Err* values with errors.Is.
type RefusedError struct {
	// Reason is one of "unknown user", "key not registered", "user blocked: state=...",
	// "gitlab unreachable" (the source's name), "too many failures from ADDR".
	Reason string
	Err    error
}

func (e *RefusedError) Error() string { return e.Reason }

func (e *RefusedError) Unwrap() error { return e.Err }

// ValidUsername reports whether name is acceptable as a user name: 1 to 255 ASCII letters,
// digits, '_', '.' and '-', not starting with '-' or '.', not ending with '.', and without
// "..", following GitLab's rules. Anything else is refused before any lookup, so no name
// can reach outside a keys directory or into a GitLab URL.
func ValidUsername(name string) bool {
	if name == "" || len(name) > 255 || name[0] == '-' || name[0] == '.' || name[len(name)-1] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
		case c == '.':
			if i > 0 && name[i-1] == '.' {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// hasKey reports whether want (a marshalled public key) is among keys.
func hasKey(keys []ssh.PublicKey, want []byte) bool {
	for _, k := range keys {
		if k == nil {
			continue
		}
		got := k.Marshal()
		if len(got) == len(want) && subtle.ConstantTimeCompare(got, want) == 1 {
			return true
		}
	}
	return false
}
