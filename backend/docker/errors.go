package docker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"

	cerrdefs "github.com/containerd/errdefs"

	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// Kinds of error a caller may want to tell apart (errors.Is). The message of every error
// this package returns is one line meant for the user.
var (
	// ErrNotFound: no container by that reference that the caller may see. A container that
	// exists but belongs to someone else gives exactly the same error.
	ErrNotFound = errors.New("no such container")
	// ErrPermission: the identity may not do this at all.
	ErrPermission = errors.New("permission denied")
	// ErrInvalid: bad input (name, image reference, environment, command, limits).
	ErrInvalid = errors.New("invalid input")
	// ErrQuota: the user's quota does not allow it.
	ErrQuota = errors.New("quota exceeded")
	// ErrConflict: the container's state or name does not allow it.
	ErrConflict = errors.New("conflict")
	// ErrNoImage: the image is not on this server.
	ErrNoImage = errors.New("no such image")
	// ErrUnsupported: the operation cannot be done where the path lives (deleting a file in a
	// container, for instance). It is backend.ErrUnsupported.
	ErrUnsupported = backend.ErrUnsupported
	// ErrUnavailable: Docker could not be reached.
	ErrUnavailable = errors.New("docker unreachable")
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

// notFound is the one error for "missing" and "not yours".
func notFound(typed string) error {
	return errorf(ErrNotFound, "no such container: %s", shown(typed))
}

// shown makes user input safe to echo in an error (backend.Shown).
func shown(s string) string { return backend.Shown(s) }

// engineErr wraps an error from the engine with what was attempted, in one line of the
// project's own words. The engine's text — which can carry host paths, engine IDs and what
// another service answered — goes to the log, never to the user.
func engineErr(what string, err error) error {
	if err == nil {
		return nil
	}
	if client.IsErrConnectionFailed(err) {
		return &wrapped{kind: ErrUnavailable, msg: what + ": Docker unreachable", err: err}
	}
	if errors.Is(err, context.DeadlineExceeded) && !callerDeadline(err) {
		// The client's own bound on waiting for an answer (answerWait): the engine hangs.
		return &wrapped{kind: ErrUnavailable, msg: what + ": Docker is not answering", err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &wrapped{msg: what + ": " + err.Error(), err: err}
	}
	slog.Warn("docker refused", "what", what, "err", err)
	return &wrapped{msg: what + ": " + engineWords(err), err: err}
}

// engineWords says in one line of the project's words what kind of failure the engine
// reported.
func engineWords(err error) string {
	s := err.Error()
	switch {
	case strings.Contains(s, "executable file not found") ||
		strings.Contains(s, "exec:") && strings.Contains(s, "no such file or directory"):
		return "the command was not found in the image"
	case strings.Contains(s, "exec:") && strings.Contains(s, "permission denied"):
		return "the command is not executable"
	case cerrdefs.IsNotFound(err):
		return "not found"
	case cerrdefs.IsConflict(err):
		return "not possible in its current state"
	case cerrdefs.IsInvalidArgument(err):
		return "Docker refused the request as invalid"
	case cerrdefs.IsPermissionDenied(err), cerrdefs.IsUnauthorized(err):
		return "Docker refused it"
	case cerrdefs.IsResourceExhausted(err):
		return "the server is out of resources"
	case cerrdefs.IsUnavailable(err), cerrdefs.IsDeadlineExceeded(err):
		return "Docker is not answering"
	}
	return "Docker reported an error (the server log has the details)"
}

// callerDeadline reports whether err is the caller's context running out (the sentinel
// itself in the chain), not a time limit of the HTTP client that only reads as one.
func callerDeadline(err error) bool {
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e == context.DeadlineExceeded {
			return true
		}
	}
	return false
}

// isTimeout reports whether err is a time limit running out.
func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

type wrapped struct {
	kind error
	msg  string
	err  error
}

func (e *wrapped) Error() string        { return e.msg }
func (e *wrapped) Unwrap() error        { return e.err }
func (e *wrapped) Is(target error) bool { return target == e.kind }
