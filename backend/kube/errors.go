package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"whalemountain/backend"
)

// Kinds of error a caller may want to tell apart (errors.Is). The message of every error
// this package returns is one line meant for the user.
var (
	// ErrNotFound: no pod by that reference that the caller may see. A pod that exists but
	// belongs to someone else gives exactly the same error.
	ErrNotFound = errors.New("no such pod")
	// ErrPermission: the identity may not do this at all.
	ErrPermission = errors.New("permission denied")
	// ErrInvalid: bad input (name, image, environment, command, limits, port).
	ErrInvalid = errors.New("invalid input")
	// ErrQuota: the user's quota does not allow it.
	ErrQuota = errors.New("quota exceeded")
	// ErrConflict: the pod's state or name does not allow it.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: Kubernetes could not be reached.
	ErrUnavailable = errors.New("kubernetes unreachable")
	// ErrNotRunning: the pod must be running for this (exec, port-forward). It is
	// backend.ErrNotRunning, so callers of any backend can treat it alike.
	ErrNotRunning = backend.ErrNotRunning
)

// userError is an error of a kind with a message for the user.
type userError struct {
	kind error
	msg  string
}

func (e *userError) Error() string        { return e.msg }
func (e *userError) Is(target error) bool { return target == e.kind }

func errorf(kind error, format string, a ...any) error {
	return &userError{kind: kind, msg: fmt.Sprintf(format, a...)}
}

// wrapped is an error for the user (msg) that keeps the cause for errors.Is/As and logs.
type wrapped struct {
	kind error // may be nil
	msg  string
	err  error
}

func (e *wrapped) Error() string { return e.msg }
func (e *wrapped) Unwrap() error { return e.err }
func (e *wrapped) Is(target error) bool {
	return e.kind != nil && target == e.kind
}

// notFound is the one error for "missing" and "not yours".
func notFound(typed string) error {
	return errorf(ErrNotFound, "no such pod: %s", shown(typed))
}

// notRunning says the pod is not running, as ErrNotRunning and ErrConflict alike.
func notRunning(t target, phase string) error {
	msg := fmt.Sprintf("pod %s is not running (%s)", shown(t.typed), strings.ToLower(phase))
	return &wrapped{kind: ErrConflict, msg: msg, err: &userError{kind: ErrNotRunning, msg: msg}}
}

// shown makes user input safe to echo in an error (backend.Shown).
func shown(s string) string { return backend.Shown(s) }

// oneLine makes text from the cluster (event messages, container state messages) safe and
// short for one line on a terminal: control and invisible characters become spaces, runs of
// space fold, and it is cut at max bytes.
func oneLine(s string, max int) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
		if b.Len() >= max {
			return strings.TrimSpace(b.String()[:max]) + "..."
		}
	}
	return b.String()
}

// apiErr wraps an error of the API server with what was attempted, in one line. The
// server's own text, which can name other namespaces and the server's identity, goes to the
// log; the user gets the kind of failure, or the part of the text meant for them (quota,
// pod security).
func apiErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &wrapped{msg: what + ": " + err.Error(), err: err}
	}
	var ne net.Error
	var oe *net.OpError
	if errors.As(err, &oe) || errors.As(err, &ne) || apierrors.IsServiceUnavailable(err) ||
		strings.Contains(err.Error(), "connection refused") {
		slog.Warn("kubernetes unreachable", "what", what, "err", err)
		return &wrapped{kind: ErrUnavailable, msg: what + ": Kubernetes unreachable", err: err}
	}
	slog.Warn("kubernetes refused", "what", what, "err", err)
	switch {
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota"):
		return &wrapped{kind: ErrQuota, msg: what + ": " + quotaWords(err.Error()), err: err}
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "violates PodSecurity"):
		return &wrapped{kind: ErrInvalid, msg: what + ": refused by the pod security policy: " + psaWords(err.Error()), err: err}
	case apierrors.IsForbidden(err) && strings.Contains(err.Error(), "being terminated"):
		return &wrapped{kind: ErrConflict, msg: what + ": your namespace is being removed; try again in a minute", err: err}
	case apierrors.IsForbidden(err), apierrors.IsUnauthorized(err):
		return &wrapped{kind: ErrUnavailable, msg: what + ": Kubernetes refused the server's request (its permissions are not set up; see KubeRBAC)", err: err}
	case apierrors.IsAlreadyExists(err):
		return &wrapped{kind: ErrConflict, msg: what + ": it already exists", err: err}
	case apierrors.IsConflict(err):
		return &wrapped{kind: ErrConflict, msg: what + ": it changed meanwhile; try again", err: err}
	case apierrors.IsNotFound(err):
		return &wrapped{kind: ErrNotFound, msg: what + ": not found", err: err}
	case apierrors.IsInvalid(err), apierrors.IsBadRequest(err):
		return &wrapped{kind: ErrInvalid, msg: what + ": Kubernetes refused the request as invalid", err: err}
	case apierrors.IsTooManyRequests(err), apierrors.IsServerTimeout(err), apierrors.IsTimeout(err):
		return &wrapped{kind: ErrUnavailable, msg: what + ": Kubernetes is busy; try again", err: err}
	default:
		return &wrapped{msg: what + ": Kubernetes failed (see the server log)", err: err}
	}
}

var quotaRE = regexp.MustCompile(`exceeded quota: [^,]+, (requested: .*)$`)

// quotaWords turns the quota admission's message ("exceeded quota: q, requested:
// requests.cpu=2, used: requests.cpu=3, limited: requests.cpu=4") into the part a user reads.
func quotaWords(msg string) string {
	if m := quotaRE.FindStringSubmatch(msg); m != nil {
		return "quota exceeded: " + oneLine(m[1], 300)
	}
	return "quota exceeded"
}

var psaRE = regexp.MustCompile(`violates PodSecurity "([^"]+)": (.*)$`)

func psaWords(msg string) string {
	if m := psaRE.FindStringSubmatch(msg); m != nil {
		return oneLine(m[1]+": "+m[2], 300)
	}
	return "the pod asks for more than the policy allows"
}
