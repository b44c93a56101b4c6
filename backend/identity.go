// Package backend holds what every backend room shares: who is asking (Identity) and the
// errors users see. The rooms below it (docker, gpu, gitlab, audit, ...) touch the outside
// world; each authorises every call against the Identity it is given.
package backend

import (
	"fmt"
	"regexp"
	"strings"
)

// Role is what a user may do: students touch their own objects, TAs everyone's.
type Role string

// The roles a user can have.
const (
	RoleStudent Role = "student"
	RoleTA      Role = "ta"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleStudent || r == RoleTA }

// Identity is an authenticated user as the SSH door established it. Every backend call
// carries one; the zero Identity is nobody and may do nothing.
type Identity struct {
	User           string // GitLab user name, also the SSH user name
	Role           Role
	KeyFingerprint string // SHA256:... of the key the session actually authenticated with
	KeySource      string // "keys-dir" or "gitlab"
	RemoteAddr     string // client address, for the audit log
}

// KeySourceRunner is the KeySource of a user's own GitLab runner acting through their
// Docker API (its socket is bound to the runner's owner by the server, not by a key).
const KeySourceRunner = "runner"

// IsTA reports whether the identity may act on every user's objects.
func (id Identity) IsTA() bool { return id.Role == RoleTA }

// Valid reports whether the identity names a user with a known role.
func (id Identity) Valid() bool { return id.User != "" && id.Role.Valid() }

// String is "alice (student)".
func (id Identity) String() string { return fmt.Sprintf("%s (%s)", id.User, id.Role) }

// userNameRE are GitLab user names: what an Identity's User may be.
var userNameRE = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,62}[A-Za-z0-9_-])?$`)

// ValidUser reports whether user is a well-formed GitLab user name, one that can be part of
// an object's name.
func ValidUser(user string) bool { return userNameRE.MatchString(user) }

// ParseRef turns what id typed into an owner and a name: "name" is id's own; "user/name"
// is allowed to TAs for anyone and to students for themselves only; validName checks the
// name. Anything else is not ok, and the caller says "not found" exactly as for nothing.
func ParseRef(id Identity, ref string, validName func(string) bool) (owner, name string, ok bool) {
	owner, name = id.User, ref
	if o, n, cut := strings.Cut(ref, "/"); cut {
		owner, name = o, n
		if owner != id.User && !id.IsTA() {
			return "", "", false
		}
	}
	if !ValidUser(owner) || !validName(name) {
		return "", "", false
	}
	return owner, name, true
}
