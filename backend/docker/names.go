package docker

import (
	"maps"
	"regexp"
	"strings"

	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"

	"whalemountain/backend"
)

// nameRE are container names as users type them.
var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9_-]{0,30}[a-z0-9])?$`)

// ValidateName checks a container name as users type it: 1-32 lower-case letters, digits,
// '-' and '_' (docker compose's names), starting and ending with a letter or digit.
func ValidateName(name string) error {
	if !nameRE.MatchString(name) {
		return errorf(ErrInvalid, "invalid container name %s: use 1-32 lower-case letters, digits, '-' and '_', "+
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

// checkIdentity denies the zero identity, unknown roles and user names that cannot be
// part of an engine object name.
func checkIdentity(id backend.Identity) error {
	if !id.Valid() || !backend.ValidUser(id.User) {
		return errorf(ErrPermission, "permission denied")
	}
	return nil
}

// target is what a typed reference names: an owner and a name.
type target struct {
	owner, name string
	typed       string
}

func (t target) String() string { return t.owner + "/" + t.name }

// parseRef turns what the user typed into owner + name. "name" is the caller's own;
// "user/name" is allowed to TAs for anyone and to students for themselves only. Anything
// else (engine names of others, IDs, prefixes, bad syntax) is simply not found.
func parseRef(id backend.Identity, ref string) (target, error) {
	owner, name, ok := backend.ParseRef(id, ref, nameRE.MatchString)
	if !ok {
		return target{}, notFound(ref)
	}
	return target{owner: owner, name: name, typed: ref}, nil
}

// userName is the user's name for one of their containers: the one it was created with (its
// name label), or the one a rename gave it since. Labels are fixed once a container exists;
// the engine name is the one thing the engine lets change, so a rename (the server's, never
// the user's own call to the engine) changes that: the server alone sets engine names, always
// "<prefix>-<owner>-<name>" of a valid name, and one of that form that differs from the label
// is the name the container was renamed to. (A create whose engine name was taken gets a
// suffix after a '.', which no name holds, so it never reads as a rename.)
func (c Config) userName(labels map[string]string, engineName string) string {
	label := labels[LabelName]
	if label == "" {
		return ""
	}
	n, ok := strings.CutPrefix(strings.TrimPrefix(engineName, "/"), c.containerName(labels[LabelOwner], ""))
	if ok && n != label && nameRE.MatchString(n) {
		return n
	}
	return label
}

// engineName is a listed container's own engine name ("/wm-alice-box"), not a link's.
func engineName(c container.Summary) string {
	for _, n := range c.Names {
		if strings.Count(n, "/") == 1 {
			return n
		}
	}
	return ""
}

// withNames gives every listed container of a user's, in its labels, the name its user knows
// it by now (userName): everything that reads the name label of a listed container reads that.
func (s *Service) withNames(items []container.Summary) []container.Summary {
	for i, c := range items {
		if c.Labels[LabelName] == "" {
			continue
		}
		if n := s.cfg.userName(c.Labels, engineName(c)); n != c.Labels[LabelName] {
			items[i].Labels = maps.Clone(c.Labels)
			items[i].Labels[LabelName] = n
		}
	}
	return items
}
