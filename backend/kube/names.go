package kube

import (
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"k8s.io/apimachinery/pkg/util/validation"

	"whalemountain/backend"
)

var (
	nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	termRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
)

// maxTermSize is the most rows or columns an exec's terminal may have.
const maxTermSize = 65535

// OwnerKey is the value of LabelOwner for a user: a hash of the exact user name, so every
// user name (GitLab allows some that are no label value) has one, and no two share it.
func OwnerKey(user string) string {
	sum := sha256.Sum256([]byte("whalemountain owner\x00" + user))
	return hex.EncodeToString(sum[:20])
}

// Namespace is the name of the user's namespace: the prefix, the user name made a DNS label
// (lower case, other characters '-', cut short), then '-' and a short hash of the exact user
// name, so "Alice" and "alice", or "a.b" and "a_b", never share a namespace.
func (c Config) Namespace(user string) string {
	s := dnsSlug(user, validation.DNS1123LabelMaxLength-len(c.NamespacePrefix)-9)
	if s == "" {
		s = "u"
	}
	return c.NamespacePrefix + s + "-" + OwnerKey(user)[:8]
}

// dnsSlug is s in lower case with every run of other characters than letters and digits
// one '-' (none at the ends), cut to at most max bytes.
func dnsSlug(s string, max int) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			dash = false
			b.WriteRune(r)
			continue
		}
		dash = true
	}
	out := b.String()
	if len(out) > max {
		out = strings.TrimRight(out[:max], "-")
	}
	return out
}

// ValidateName checks a pod name as users type it for a new pod: 1-32 lower-case letters,
// digits and '-', starting and ending with a letter or digit.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return errorf(ErrInvalid, "invalid pod name %s: use 1-32 lower-case letters, digits and '-', "+
			"starting and ending with a letter or digit", shown(name))
	}
	return nil
}

// ParseImage checks an image reference ("ubuntu:24.04", "registry/alice/ml:latest") and
// returns it in its familiar form.
func ParseImage(ref string) (string, error) {
	if ref == "" {
		return "", errorf(ErrInvalid, "no image given")
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil || len(ref) > 255 {
		return "", errorf(ErrInvalid, "invalid image reference %s", shown(ref))
	}
	return reference.FamiliarString(named), nil
}

// ValidateEnv checks KEY=value entries (backend.CheckEnv).
func ValidateEnv(env []string) error {
	if err := backend.CheckEnv(env); err != nil {
		return errorf(ErrInvalid, "%v", err)
	}
	return nil
}

// validateCmd checks a command's arguments (backend.CheckCmd).
func validateCmd(cmd []string) error {
	if err := backend.CheckCmd(cmd); err != nil {
		return errorf(ErrInvalid, "%v", err)
	}
	return nil
}

// checkIdentity denies the zero identity, unknown roles and malformed user names.
func checkIdentity(id backend.Identity) error {
	if !id.Valid() || !backend.ValidUser(id.User) {
		return errorf(ErrPermission, "permission denied")
	}
	return nil
}

// target is what a typed reference names: an owner and a pod name.
type target struct {
	owner, name string
	typed       string
}

func (t target) String() string { return t.owner + "/" + t.name }

// parseRef turns what the user typed into owner + pod name. "name" is the caller's own;
// "user/name" is allowed to TAs for anyone and to students for themselves only. Anything
// else (namespaces, paths, bad syntax) is simply not found. Pod names made with kubectl may
// be any DNS subdomain.
func parseRef(id backend.Identity, ref string) (target, error) {
	owner, name, ok := backend.ParseRef(id, ref, func(n string) bool { return len(validation.IsDNS1123Subdomain(n)) == 0 })
	if !ok {
		return target{}, notFound(ref)
	}
	return target{owner: owner, name: name, typed: ref}, nil
}

// auditTarget names what an action was aimed at: "owner/name" once resolved, else what was
// typed, made safe.
func auditTarget(t target, typed string) string {
	if t.owner != "" {
		return t.String()
	}
	return shown(typed)
}
