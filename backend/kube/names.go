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
	nameRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$`)
	userRE   = regexp.MustCompile(`^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,62}[A-Za-z0-9_-])?$`) // GitLab user names
	envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	termRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
)

// Limits on what a run or exec may carry.
const (
	maxEnv      = 128
	maxEnvBytes = 32 << 10
	maxArgs     = 256
	maxCmdBytes = 64 << 10
	maxTermSize = 65535
)

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

// ValidateEnv checks KEY=value entries.
func ValidateEnv(env []string) error {
	if len(env) > maxEnv {
		return errorf(ErrInvalid, "too many environment variables (%d, at most %d)", len(env), maxEnv)
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !envKeyRE.MatchString(k) {
			return errorf(ErrInvalid, "invalid environment variable %s: use KEY=value with KEY of letters, digits and '_'", shown(kv))
		}
		if strings.ContainsRune(v, 0) || len(kv) > maxEnvBytes {
			return errorf(ErrInvalid, "invalid value for environment variable %s", k)
		}
	}
	return nil
}

func validateCmd(cmd []string) error {
	if len(cmd) > maxArgs {
		return errorf(ErrInvalid, "command has too many arguments (%d, at most %d)", len(cmd), maxArgs)
	}
	total := 0
	for _, a := range cmd {
		total += len(a)
		if strings.ContainsRune(a, 0) {
			return errorf(ErrInvalid, "command contains a NUL byte")
		}
	}
	if total > maxCmdBytes {
		return errorf(ErrInvalid, "command is too long (%d bytes, at most %d)", total, maxCmdBytes)
	}
	if len(cmd) > 0 && cmd[0] == "" {
		return errorf(ErrInvalid, "command is empty")
	}
	return nil
}

// checkIdentity denies the zero identity, unknown roles and malformed user names.
func checkIdentity(id backend.Identity) error {
	if !id.Valid() || !userRE.MatchString(id.User) {
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
	owner, name := id.User, ref
	if o, n, ok := strings.Cut(ref, "/"); ok {
		owner, name = o, n
		if owner != id.User && !id.IsTA() {
			return target{}, notFound(ref)
		}
	}
	if !userRE.MatchString(owner) || len(validation.IsDNS1123Subdomain(name)) > 0 {
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
