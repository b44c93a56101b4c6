// Package groups says who belongs to the course's groups: GitLab groups, whose members are
// listed from GitLab (GET /groups/:id/members/all, inherited members included) and cached
// with the same rules as roles, and groups the configuration lists with their members, for
// a site without GitLab. Patterns such as "os-2026/team-*" name every group below a parent
// that matches (GET /groups/:id/descendant_groups).
//
// While GitLab cannot be reached, an answer fetched before is used for Config.StaleFor
// (logged); past that the caller gets the error and decides (a create refuses).
package groups

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"whalemountain/backend/gitlab"
)

// GitLab is what the directory asks GitLab (backend/gitlab's Client).
type GitLab interface {
	GroupMembers(ctx context.Context, group string, minLevel int) ([]string, error)
	DescendantGroups(ctx context.Context, parent string) ([]string, error)
}

// Config tunes a Directory.
type Config struct {
	// Static are groups known without GitLab: full path -> user names. A group listed here
	// is never asked of GitLab.
	Static map[string][]string
	// MinAccessLevel is the lowest GitLab access level that counts as a member (default 10,
	// guest: every member).
	MinAccessLevel int
	// TTL is how long an answer from GitLab is used without asking again (default 60s).
	TTL time.Duration
	// StaleFor is how long an older answer still serves while GitLab cannot be reached
	// (default 1h; negative: never).
	StaleFor time.Duration
	Now      func() time.Time
	Logger   *slog.Logger // nil discards
}

// Directory answers who belongs to which group. It is safe for concurrent use.
type Directory struct {
	cfg    Config
	gl     GitLab
	static map[string][]string
	flight singleflight.Group

	mu    sync.Mutex
	cache map[string]entry // "m:<group>" members, "d:<parent>" descendant groups
}

type entry struct {
	fetched time.Time
	val     []string
}

// New returns a directory for cfg; gl may be nil (static groups only).
func New(cfg Config, gl GitLab) *Directory {
	if cfg.MinAccessLevel <= 0 {
		cfg.MinAccessLevel = 10
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 60 * time.Second
	}
	if cfg.StaleFor == 0 {
		cfg.StaleFor = time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	static := map[string][]string{}
	for g, ms := range cfg.Static {
		key := Normalize(g)
		for _, m := range ms {
			if m = strings.ToLower(strings.TrimSpace(m)); m != "" && !slices.Contains(static[key], m) {
				static[key] = append(static[key], m)
			}
		}
		slices.Sort(static[key])
		if static[key] == nil {
			static[key] = []string{}
		}
	}
	return &Directory{cfg: cfg, gl: gl, static: static, cache: map[string]entry{}}
}

// Normalize is a group path as the directory keys it: lower case, no slashes at the ends.
func Normalize(group string) string {
	return strings.ToLower(strings.Trim(strings.TrimSpace(group), "/"))
}

// IsPattern reports whether a group path has glob characters (*, ?, [).
func IsPattern(p string) bool { return strings.ContainsAny(p, "*?[") }

// ValidatePattern checks a group path or pattern: segments of letters, digits, '.', '_',
// '-', with '*', '?' and '[...]' allowed in any segment but the first.
func ValidatePattern(p string) error {
	if p == "" || p != strings.Trim(p, "/") || strings.Contains(p, "//") || len(p) > 255 {
		return fmt.Errorf("group %q: want a GitLab group path such as os-2026/team-a", p)
	}
	for i, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return fmt.Errorf("group %q: want a GitLab group path such as os-2026/team-a", p)
		}
		if i == 0 && IsPattern(seg) {
			return fmt.Errorf("group %q: the first segment cannot be a pattern", p)
		}
		if _, err := path.Match(seg, ""); err != nil {
			return fmt.Errorf("group %q: bad pattern", p)
		}
		for _, r := range seg {
			ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("._-*?[]!^", r)
			if !ok {
				return fmt.Errorf("group %q: %q is not allowed in a group path", p, r)
			}
		}
	}
	return nil
}

// Members lists the user names of the members of group, sorted and lower case.
func (d *Directory) Members(ctx context.Context, group string) ([]string, error) {
	g := Normalize(group)
	if ms, ok := d.static[g]; ok {
		return slices.Clone(ms), nil
	}
	if d.gl == nil {
		return nil, fmt.Errorf("members of group %s: no GitLab is configured and the group is not listed in the config", g)
	}
	return d.cached(ctx, "m:"+g, func(ctx context.Context) ([]string, error) {
		return d.missingIsEmpty(d.gl.GroupMembers(ctx, g, d.cfg.MinAccessLevel))
	})
}

// IsMember reports whether user belongs to group.
func (d *Directory) IsMember(ctx context.Context, group, user string) (bool, error) {
	ms, err := d.Members(ctx, group)
	if err != nil {
		return false, err
	}
	_, found := slices.BinarySearch(ms, strings.ToLower(user))
	return found, nil
}

// Expand lists the groups a path or pattern names, sorted: a plain path names itself; a
// pattern names the groups that match it, static ones and those below its fixed part in
// GitLab.
func (d *Directory) Expand(ctx context.Context, pattern string) ([]string, error) {
	p := Normalize(pattern)
	if !IsPattern(p) {
		return []string{p}, nil
	}
	var out []string
	for g := range d.static {
		if matchGroup(p, g) {
			out = append(out, g)
		}
	}
	if d.gl != nil {
		parent := fixedPart(p)
		below, err := d.cached(ctx, "d:"+parent, func(ctx context.Context) ([]string, error) {
			return d.missingIsEmpty(d.gl.DescendantGroups(ctx, parent))
		})
		if err != nil {
			return nil, err
		}
		for _, g := range below {
			if g = Normalize(g); matchGroup(p, g) && !slices.Contains(out, g) {
				out = append(out, g)
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

// missingIsEmpty turns "no such group" into an empty answer (logged): a group that does not
// exist, or that the token may not see, has no members and no subgroups.
func (d *Directory) missingIsEmpty(list []string, err error) ([]string, error) {
	if errors.Is(err, gitlab.ErrNoSuchGroup) {
		d.cfg.Logger.Warn("a configured group does not exist in GitLab (or the token cannot see it): nobody is a member", "err", err)
		return []string{}, nil
	}
	return list, err
}

// matchGroup matches a group path against a pattern segment by segment.
func matchGroup(pattern, group string) bool {
	ps, gs := strings.Split(pattern, "/"), strings.Split(group, "/")
	if len(ps) != len(gs) {
		return false
	}
	for i := range ps {
		if ok, _ := path.Match(ps[i], gs[i]); !ok {
			return false
		}
	}
	return true
}

// fixedPart is the pattern's leading segments without glob characters.
func fixedPart(p string) string {
	segs := strings.Split(p, "/")
	i := slices.IndexFunc(segs, IsPattern)
	return strings.Join(segs[:i], "/")
}

// cached answers key from the cache while fresh, else asks (once for concurrent callers);
// when asking fails, an answer younger than StaleFor is used.
func (d *Directory) cached(ctx context.Context, key string, ask func(context.Context) ([]string, error)) ([]string, error) {
	now := d.cfg.Now()
	d.mu.Lock()
	e, ok := d.cache[key]
	d.mu.Unlock()
	if ok && now.Sub(e.fetched) < d.cfg.TTL {
		return slices.Clone(e.val), nil
	}
	ch := d.flight.DoChan(key, func() (any, error) {
		val, err := ask(context.WithoutCancel(ctx))
		if err != nil {
			return nil, err
		}
		d.mu.Lock()
		d.cache[key] = entry{fetched: d.cfg.Now(), val: val}
		d.mu.Unlock()
		return val, nil
	})
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case res := <-ch:
		if res.Err == nil {
			return slices.Clone(res.Val.([]string)), nil
		}
		if ok && d.cfg.StaleFor > 0 && now.Sub(e.fetched) < d.cfg.StaleFor {
			d.cfg.Logger.Warn("gitlab unreachable, using an older answer about group membership", "what", key, "age", now.Sub(e.fetched).Round(time.Second), "err", res.Err)
			return slices.Clone(e.val), nil
		}
		return nil, res.Err
	}
}

// Membership is what deciding who gets shared data asks of a directory (Directory has it).
type Membership interface {
	IsMember(ctx context.Context, group, user string) (bool, error)
	Expand(ctx context.Context, pattern string) ([]string, error)
}

// MaySee reports whether user may see data limited to roles ("student", "ta") and groups:
// a user of one of the roles (role is "" when not known) or a member of one of the groups.
// Neither roles nor groups: everyone. Without a directory, nobody is a member. When a
// membership cannot be checked and no other answer says yes, the first error is returned.
func MaySee(ctx context.Context, dir Membership, roles, groups []string, user, role string) (bool, error) {
	if len(roles) == 0 && len(groups) == 0 {
		return true, nil
	}
	if role != "" && slices.Contains(roles, role) {
		return true, nil
	}
	if dir == nil {
		return false, nil
	}
	var first error
	for _, g := range groups {
		ok, err := dir.IsMember(ctx, g, user)
		if err != nil {
			if first == nil {
				first = err
			}
			continue
		}
		if ok {
			return true, nil
		}
	}
	return false, first
}

// Joined is one group a user belongs to, and the index of the first pattern that names it.
type Joined struct {
	Group   string
	Pattern int
}

// JoinedGroups lists the groups the patterns name that user belongs to, by pattern order
// then group path, each once. Without a directory, none.
func JoinedGroups(ctx context.Context, dir Membership, patterns []string, user string) ([]Joined, error) {
	if dir == nil {
		return nil, nil
	}
	var out []Joined
	seen := map[string]bool{}
	for i, p := range patterns {
		groups, err := dir.Expand(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("list the groups %s: %w", p, err)
		}
		for _, g := range groups {
			if seen[g] {
				continue
			}
			ok, err := dir.IsMember(ctx, g, user)
			if err != nil {
				return nil, fmt.Errorf("check membership of %s in %s: %w", user, g, err)
			}
			if ok {
				seen[g] = true
				out = append(out, Joined{Group: g, Pattern: i})
			}
		}
	}
	return out, nil
}

// DatasetTarget is where the dataset name appears: target when set, else /datasets/<name>.
func DatasetTarget(name, target string) string {
	if target != "" {
		return target
	}
	return "/datasets/" + name
}

// WorkspaceTarget is where group's workspace appears: the template (default
// /groups/{group}) with {group} replaced.
func WorkspaceTarget(template, group string) string {
	if template == "" {
		template = "/groups/{group}"
	}
	return strings.ReplaceAll(template, "{group}", group)
}

// TargetPrefix checks where a group's workspace appears, a template such as
// /groups/{group}: a clean absolute path with {group} once, as a whole part, and no ':' or
// ','. It returns the fixed part before {group}, ending in '/'.
func TargetPrefix(t string) (string, error) {
	check := strings.ReplaceAll(t, "{group}", "g")
	fixed, _, _ := strings.Cut(t, "{group}")
	if strings.Count(t, "{group}") != 1 || !strings.HasSuffix(fixed, "/") || !path.IsAbs(check) || path.Clean(check) != check ||
		strings.ContainsAny(check, "\x00:,") || !strings.HasSuffix(t, "{group}") && !strings.Contains(t, "{group}/") {
		return "", fmt.Errorf("must be a clean absolute path with {group} once as a whole part (got %q)", t)
	}
	return fixed, nil
}

// Targets are the places in a container or pod where shared data appears, each held by the
// configuration field that claimed it.
type Targets map[string]string

// Claim takes target t for field: a clean absolute path other than /, without ':' or ',',
// that no other field holds.
func (ts Targets) Claim(field, t string) error {
	switch {
	case !path.IsAbs(t) || path.Clean(t) != t || t == "/" || strings.ContainsAny(t, "\x00:,"):
		return fmt.Errorf("must be a clean absolute path other than / without ':' or ',' (got %q)", t)
	case ts[t] != "":
		return fmt.Errorf("%s is also the target of %s", t, ts[t])
	}
	ts[t] = field
	return nil
}

// Among says which field holds a target where a group workspace may appear: below fixed,
// the part of the workspace's template before {group} (TargetPrefix); "" for none.
func (ts Targets) Among(fixed string) string {
	for t, field := range ts {
		if strings.HasPrefix(t+"/", fixed) {
			return field
		}
	}
	return ""
}
