package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"

	"whalemountain/backend"
	"whalemountain/backend/groups"
)

// Data that is not one user's: the site's read-only datasets and the workspaces of groups.
//
// Both are placed by the server on every create, after the user's home, from the config and
// the user's memberships at that moment; no request can add, change or remove them, and no
// other host path ever reaches a container. A dataset is a host directory or a named volume
// the site made, mounted read-only into the containers of those who may see it (by role, by
// group, or everyone). A group workspace is one persistent volume per group, made by the
// server (labels kind=group and the group's path; no owner), mounted read-write into the
// containers of the group's members.
//
// Mounts are fixed when a container is made, so membership is checked again on every start:
// a container whose owner has left a group it mounts (or may no longer see a dataset it
// mounts) does not start, and says why; TAs see such containers still running with
// FormerMembers. Which datasets and groups a container got is written on it (LabelDatasets,
// LabelGroups) like every other server label.

// Labels naming what data a container was given, comma-separated.
const (
	LabelDatasets = "whalemountain.datasets"
	LabelGroups   = "whalemountain.groups"
)

// KindGroup is the LabelKind of a group workspace volume.
const KindGroup = "group"

// Dataset is a read-only data set mounted into the containers of the users who may see it.
type Dataset struct {
	Name        string // as `datasets` and /datasets/NAME show it
	Description string
	HostPath    string // an absolute host directory; or
	Volume      string // a named volume the site made on the engine
	// Target is where it appears in containers; empty means /datasets/NAME.
	Target string
	// Roles ("student", "ta") and Groups (GitLab group paths) say who sees it: a user of
	// one of the roles, or a member of one of the groups. Neither: everyone.
	Roles  []string
	Groups []string
}

// GroupWorkspace makes one persistent read-write volume for each group Group names, mounted
// into the containers of its members.
type GroupWorkspace struct {
	Group string // a GitLab group path, or a pattern such as os-2026/team-*
	// Size is the volume's limit in bytes (0: none). The local volume driver enforces it
	// only where the engine's volumes directory is on XFS with project quota; elsewhere the
	// server refuses uploads past it and shows the use (see the README).
	Size int64
	// Target is where it appears in containers, a template containing {group}; empty
	// means /groups/{group}.
	Target string
}

// GroupDirectory says who belongs to which group (backend/groups).
type GroupDirectory interface {
	Members(ctx context.Context, group string) ([]string, error)
	IsMember(ctx context.Context, group, user string) (bool, error)
	Expand(ctx context.Context, pattern string) ([]string, error)
}

var (
	datasetNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)
	groupPathRE   = regexp.MustCompile(`^[A-Za-z0-9_.\-*?\[\]!^]+(/[A-Za-z0-9_.\-*?\[\]!^]+)*$`)
)

// target is where d appears.
func (d Dataset) target() string { return groups.DatasetTarget(d.Name, d.Target) }

// targetFor is where group's workspace appears.
func (w GroupWorkspace) targetFor(group string) string {
	return groups.WorkspaceTarget(w.Target, group)
}

// validateShared checks the datasets and group workspaces of c.
func (c Config) validateShared() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("docker config: %s %s", field, fmt.Sprintf(format, a...))
	}
	targets := groups.Targets{}
	claim := func(field, t string) error {
		if err := targets.Claim(field, t); err != nil {
			return bad(field, "%v", err)
		}
		if strings.HasPrefix(t+"/", path.Dir(c.HomeTarget)+"/") && strings.Contains(c.HomeTarget, "{user}") && path.Dir(c.HomeTarget) != "/" {
			return bad(field, "%s lies where homes are mounted (%s)", t, c.HomeTarget)
		}
		return nil
	}
	names := map[string]bool{}
	for i, d := range c.Datasets {
		field := fmt.Sprintf("Datasets[%d]", i)
		switch {
		case !datasetNameRE.MatchString(d.Name):
			return bad(field+".Name", "must be 1-64 lower-case letters, digits, '.', '_' or '-' (got %q)", d.Name)
		case names[d.Name]:
			return bad(field+".Name", "%q is used twice", d.Name)
		case (d.HostPath == "") == (d.Volume == ""):
			return bad(field, "needs exactly one of HostPath and Volume")
		case d.HostPath != "" && (!path.IsAbs(d.HostPath) || path.Clean(d.HostPath) != d.HostPath || d.HostPath == "/" || strings.ContainsAny(d.HostPath, "\x00:,")):
			return bad(field+".HostPath", "must be a clean absolute path other than / (got %q)", d.HostPath)
		case d.HostPath != "" && (strings.Contains(d.HostPath, "docker.sock") || strings.HasPrefix(d.HostPath+"/", "/var/run/") || strings.HasPrefix(d.HostPath+"/", "/run/") || strings.HasPrefix(d.HostPath+"/", "/proc/") || strings.HasPrefix(d.HostPath+"/", "/sys/") || strings.HasPrefix(d.HostPath+"/", "/dev/")):
			return bad(field+".HostPath", "may not be under /run, /proc, /sys or /dev, nor the Docker socket (got %q)", d.HostPath)
		case d.Volume != "" && ValidateVolumeName(d.Volume) != nil:
			return bad(field+".Volume", "%q is not a volume name", d.Volume)
		}
		names[d.Name] = true
		if err := claim(field+".Target", d.target()); err != nil {
			return err
		}
		for _, r := range d.Roles {
			if r != "student" && r != "ta" {
				return bad(field+".Roles", "has %q: use student or ta", r)
			}
		}
		for _, g := range d.Groups {
			if !groupPathRE.MatchString(g) || strings.ContainsAny(g, "*?[") {
				return bad(field+".Groups", "has %q: want a GitLab group path such as os-2026/ta", g)
			}
		}
	}
	for i, w := range c.Groups {
		field := fmt.Sprintf("Groups[%d]", i)
		if !groupPathRE.MatchString(w.Group) || strings.Contains(w.Group, "//") || strings.ContainsAny(strings.Split(w.Group, "/")[0], "*?[") {
			return bad(field+".Group", "%q is not a GitLab group path or pattern such as os-2026/team-*", w.Group)
		}
		if w.Size < 0 {
			return bad(field+".Size", "must not be negative")
		}
		if w.Size > 0 && w.Size < minMemory {
			return bad(field+".Size", "must be at least %s (got %d)", formatBytes(minMemory), w.Size)
		}
		// Two entries may share a template (their groups differ); a dataset may not lie
		// where a group's workspace could appear.
		t := w.targetFor("{group}")
		fixed, err := groups.TargetPrefix(t)
		if err != nil {
			return bad(field+".Target", "%v", err)
		}
		if owner := targets.Among(fixed); owner != "" {
			return bad(field+".Target", "%s lies where group workspaces appear (%s)", owner, t)
		}
	}
	return nil
}

// SetGroupDirectory gives the service who belongs to which group; without one, group
// workspaces and datasets limited to groups are given to nobody. Call it before serving.
func (s *Service) SetGroupDirectory(d GroupDirectory) { s.groupDir = d }

// sharedState is what the service remembers about shared data.
type sharedState struct {
	quotaOnce sync.Once   // logs once that the engine cannot enforce a volume size
	noQuota   atomic.Bool // the engine refused a size: limits are the server's only

	mu    sync.Mutex
	sizes map[string]sizeEntry // directory sizes by host path
}

type sizeEntry struct {
	at    time.Time
	bytes int64
	known bool
}

// share is one group workspace a user gets.
type share struct {
	group string
	ws    GroupWorkspace
}

// grant is the data one container gets.
type grant struct {
	mounts   []mount.Mount
	datasets []string
	groups   []string
}

// volumeInspector is the engine's volume inspect (the SDK client has it).
type volumeInspector interface {
	VolumeInspect(ctx context.Context, id string, options client.VolumeInspectOptions) (client.VolumeInspectResult, error)
}

// maysee reports whether user (of role, when known) may see d.
func (s *Service) maysee(ctx context.Context, d Dataset, user string, role *backend.Role) (bool, error) {
	r := ""
	if role != nil {
		r = roleName(*role)
	}
	return groups.MaySee(ctx, s.membership(), d.Roles, d.Groups, user, r)
}

// membership is the group directory, or nil (an untyped nil: nobody is a member).
func (s *Service) membership() groups.Membership {
	if s.groupDir == nil {
		return nil
	}
	return s.groupDir
}

func roleName(r backend.Role) string {
	if r == backend.RoleTA {
		return "ta"
	}
	return "student"
}

// sharesOf are the group workspaces user gets, by config order then group path.
func (s *Service) sharesOf(ctx context.Context, user string) ([]share, error) {
	if len(s.cfg.Groups) == 0 {
		return nil, nil
	}
	patterns := make([]string, len(s.cfg.Groups))
	for i, w := range s.cfg.Groups {
		patterns[i] = w.Group
	}
	joined, err := groups.JoinedGroups(ctx, s.membership(), patterns, user)
	if err != nil {
		return nil, err
	}
	out := make([]share, 0, len(joined))
	for _, j := range joined {
		out = append(out, share{group: j.Group, ws: s.cfg.Groups[j.Pattern]})
	}
	return out, nil
}

// grantFor is the data a new container of id gets: the datasets id may see, read-only,
// and the workspaces of id's groups, read-write, made when missing. A dataset whose source
// is missing is left out (and logged); membership that cannot be checked refuses.
func (s *Service) grantFor(ctx context.Context, id backend.Identity) (grant, error) {
	var g grant
	for _, d := range s.cfg.Datasets {
		role := id.Role
		ok, err := s.maysee(ctx, d, id.User, &role)
		if err != nil {
			return g, errorf(ErrUnavailable, "cannot check who may see dataset %s now (%v); try again later", d.Name, oneLine(err))
		}
		if !ok {
			continue
		}
		m, ok := s.datasetMount(ctx, d)
		if !ok {
			continue
		}
		g.mounts = append(g.mounts, m)
		g.datasets = append(g.datasets, d.Name)
	}
	shares, err := s.sharesOf(ctx, id.User)
	if err != nil {
		return g, errorf(ErrUnavailable, "cannot check your groups now (%v); try again later", oneLine(err))
	}
	for _, sh := range shares {
		name, _, err := s.ensureGroupVolume(ctx, sh)
		if err != nil {
			return g, err
		}
		g.mounts = append(g.mounts, mount.Mount{Type: mount.TypeVolume, Source: name, Target: sh.ws.targetFor(sh.group)})
		g.groups = append(g.groups, sh.group)
	}
	return g, nil
}

// oneLine is err's text on one line.
func oneLine(err error) string { return strings.Join(strings.Fields(err.Error()), " ") }

// datasetMount is d's read-only mount; false (logged) when its source is missing.
func (s *Service) datasetMount(ctx context.Context, d Dataset) (mount.Mount, bool) {
	if d.HostPath != "" {
		if fi, err := os.Stat(d.HostPath); err != nil || !fi.IsDir() {
			slog.Warn("dataset left out: its host directory is missing", "dataset", d.Name, "path", d.HostPath)
			return mount.Mount{}, false
		}
		return mount.Mount{Type: mount.TypeBind, Source: d.HostPath, Target: d.target(), ReadOnly: true,
			BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate}}, true
	}
	if _, err := s.datasetVolume(ctx, d); err != nil {
		slog.Warn("dataset left out", "dataset", d.Name, "volume", d.Volume, "err", err)
		return mount.Mount{}, false
	}
	return mount.Mount{Type: mount.TypeVolume, Source: d.Volume, Target: d.target(), ReadOnly: true,
		VolumeOptions: &mount.VolumeOptions{NoCopy: true}}, true
}

// datasetVolume inspects d's volume, which must exist: the server never makes it (a
// mount of a missing volume would make an empty one).
func (s *Service) datasetVolume(ctx context.Context, d Dataset) (volume.Volume, error) {
	vi, ok := s.api.(volumeInspector)
	if !ok {
		return volume.Volume{}, errorf(ErrUnsupported, "volumes cannot be inspected through this Docker connection")
	}
	res, err := vi.VolumeInspect(ctx, d.Volume, client.VolumeInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return volume.Volume{}, fmt.Errorf("volume %s does not exist", d.Volume)
	}
	if err != nil {
		return volume.Volume{}, engineErr("inspect dataset volume "+d.Volume, err)
	}
	return res.Volume, nil
}

// groupVolumeName is the engine name of group's workspace: readable, with a hash of the
// path so that two paths never share one.
func (c Config) groupVolumeName(group string) string {
	sum := sha256.Sum256([]byte(group))
	slug := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '.'
	}, strings.ToLower(group))
	if len(slug) > 60 {
		slug = slug[:60]
	}
	return c.NamePrefix + "-group-" + slug + "-" + hex.EncodeToString(sum[:4])
}

// groupLabels are the labels of group's workspace volume: no owner.
func (s *Service) groupLabels(group string) map[string]string {
	m := s.cfg.selectors()
	m[LabelOwner] = ""
	m[LabelKind] = KindGroup
	m[LabelName] = group
	return m
}

// isGroupVolume reports whether labels are those of group's workspace, by value.
func (s *Service) isGroupVolume(labels map[string]string, group string) bool {
	return s.managedBy(labels, "") && labels[LabelKind] == KindGroup && labels[LabelName] == group
}

// errNoQuota is how the local driver refuses a size it cannot enforce.
const errNoQuota = "no quota support"

// ensureGroupVolume returns the engine name and volume of a group's workspace, making it
// when missing, with the size limit where the engine can enforce one.
func (s *Service) ensureGroupVolume(ctx context.Context, sh share) (string, volume.Volume, error) {
	name := s.cfg.groupVolumeName(sh.group)
	if sh.ws.Size > 0 && s.wsfs != nil {
		v, own, err := s.ensureSizedVolume(ctx, sh, name, s.groupLabels(sh.group))
		if err != nil {
			return "", volume.Volume{}, err
		}
		if own {
			if !s.isGroupVolume(v.Labels, sh.group) {
				return "", volume.Volume{}, fmt.Errorf("volume %s exists but is not the workspace of group %s", name, sh.group)
			}
			return name, v, nil
		}
		// Made before without a file system of its own: used as it is.
	}
	opts := client.VolumeCreateOptions{Name: name, Driver: "local", Labels: s.groupLabels(sh.group)}
	if sh.ws.Size > 0 && !s.shared.noQuota.Load() {
		opts.DriverOpts = map[string]string{"size": fmt.Sprint(sh.ws.Size)}
	}
	res, err := s.api.VolumeCreate(ctx, opts)
	if err != nil && opts.DriverOpts != nil && strings.Contains(err.Error(), errNoQuota) {
		s.shared.quotaOnce.Do(func() {
			s.shared.noQuota.Store(true)
			slog.Warn("the Docker Engine cannot enforce the size of group workspaces (its volumes directory is not on XFS with project quota): "+
				"the server refuses uploads past the size and shows the use, but containers can write past it", "volume", name)
		})
		opts.DriverOpts = nil
		res, err = s.api.VolumeCreate(ctx, opts)
	}
	if err != nil {
		return "", volume.Volume{}, engineErr("create the workspace of group "+sh.group, err)
	}
	// An existing volume of that name that is not this group's is never mounted.
	if !s.isGroupVolume(res.Volume.Labels, sh.group) {
		return "", volume.Volume{}, fmt.Errorf("volume %s exists but is not the workspace of group %s", name, sh.group)
	}
	return name, res.Volume, nil
}

// checkGrant is the start's check of a container's data against its owner's memberships
// now: a group workspace it mounts must still be the owner's, and so must a dataset it
// mounts that is limited to groups (or, when the owner starts it, to roles).
func (s *Service) checkGrant(ctx context.Context, id backend.Identity, t found) error {
	labels := t.summary.Labels
	if g, err := s.leftGroup(ctx, labels, t.owner); err != nil {
		return errorf(ErrUnavailable, "cannot check the membership of %s in group %s now (%v); try again later", t.owner, g, oneLine(err))
	} else if g != "" {
		return errorf(ErrPermission, "%s mounts the workspace of group %s, and %s is no longer a member: the container does not start; "+
			"copy what you need from it (cp), remove it and run a new one", shown(t.typed), g, t.owner)
	}
	for name := range strings.SplitSeq(labels[LabelDatasets], ",") {
		i := slices.IndexFunc(s.cfg.Datasets, func(d Dataset) bool { return d.Name == name })
		if name == "" || i < 0 {
			continue
		}
		var role *backend.Role
		if id.User == t.owner {
			role = &id.Role
		} else if len(s.cfg.Datasets[i].Groups) == 0 {
			continue // limited to roles, and the owner's role is not known here
		}
		ok, err := s.maysee(ctx, s.cfg.Datasets[i], t.owner, role)
		if err != nil {
			return errorf(ErrUnavailable, "cannot check who may see dataset %s now (%v); try again later", name, oneLine(err))
		}
		if !ok {
			return errorf(ErrPermission, "%s mounts dataset %s, which %s may no longer see: the container does not start; "+
				"copy what you need from it (cp), remove it and run a new one", shown(t.typed), name, t.owner)
		}
	}
	return nil
}

// DatasetInfo is a dataset as `datasets` lists it.
type DatasetInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	Target      string `json:"target"`              // where it appears in containers
	Size        int64  `json:"size"`                // bytes; -1 when not known
	Available   bool   `json:"available"`           // its source exists
	Mounted     bool   `json:"mounted"`             // the caller's new containers get it (TAs see all)
	Who         string `json:"who"`                 // "everyone", "ta", "groups: a, b", ...
	Source      string `json:"source,omitempty"`    // TAs only: host path or volume
	SFTP        string `json:"sftp_path,omitempty"` // where it is browsable over sftp
}

// Datasets lists the datasets id may see (TAs: all of them), by name.
func (s *Service) Datasets(ctx context.Context, id backend.Identity) ([]DatasetInfo, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	out := []DatasetInfo{}
	for _, d := range s.cfg.Datasets {
		role := id.Role
		ok, err := s.maysee(ctx, d, id.User, &role)
		if err != nil && !id.IsTA() {
			return nil, errorf(ErrUnavailable, "cannot check who may see dataset %s now (%v)", d.Name, oneLine(err))
		}
		if !ok && !id.IsTA() {
			continue
		}
		info := DatasetInfo{Name: d.Name, Description: d.Description, Target: d.target(), Size: -1, Who: datasetWho(d), Mounted: ok}
		if ok {
			info.SFTP = "/datasets/" + d.Name
		}
		if root, err := s.openDataset(ctx, d); err == nil {
			info.Available = true
			info.Size = s.dirSize(root, "dataset:"+d.Name)
			root.Close()
		}
		if id.IsTA() {
			info.Source = d.HostPath
			if d.Volume != "" {
				info.Source = "volume " + d.Volume
			}
		}
		out = append(out, info)
	}
	slices.SortFunc(out, func(a, b DatasetInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func datasetWho(d Dataset) string {
	var parts []string
	for _, r := range d.Roles {
		parts = append(parts, map[string]string{"student": "students", "ta": "TAs"}[r])
	}
	for _, g := range d.Groups {
		parts = append(parts, "group "+g)
	}
	if len(parts) == 0 {
		return "everyone"
	}
	return strings.Join(parts, ", ")
}

// GroupInfo is a group workspace as `groups` lists it.
type GroupInfo struct {
	Group   string   `json:"group"`
	Target  string   `json:"target"`           // where it appears in containers
	Size    int64    `json:"size_limit"`       // bytes; 0: no limit
	Used    int64    `json:"used"`             // bytes; -1 when not known
	Quota   string   `json:"limit_enforced"`   // QuotaFilesystem, QuotaEngine, QuotaServer (uploads only) or QuotaNone
	Members []string `json:"members"`          // user names
	Member  bool     `json:"member"`           // the caller is a member
	SFTP    string   `json:"sftp_path"`        // where it is browsable over sftp
	Former  []string `json:"former,omitempty"` // TAs only: owner/name of running containers of users who left
}

// Groups lists the group workspaces of id's groups, by group; for TAs every workspace
// group, with the running containers that still mount it for users who have left.
func (s *Service) Groups(ctx context.Context, id backend.Identity) ([]GroupInfo, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	out := []GroupInfo{}
	if len(s.cfg.Groups) == 0 || s.groupDir == nil {
		return out, nil
	}
	var former map[string][]string
	if id.IsTA() {
		fm, err := s.FormerMembers(ctx, id)
		if err != nil {
			return nil, err
		}
		former = map[string][]string{}
		for _, f := range fm {
			former[f.Group] = append(former[f.Group], f.Owner+"/"+f.Container)
		}
	}
	seen := map[string]bool{}
	for _, w := range s.cfg.Groups {
		groups, err := s.groupDir.Expand(ctx, w.Group)
		if err != nil {
			return nil, errorf(ErrUnavailable, "cannot list the groups %s now (%v)", w.Group, oneLine(err))
		}
		for _, g := range groups {
			if seen[g] {
				continue
			}
			members, err := s.groupDir.Members(ctx, g)
			if err != nil {
				return nil, errorf(ErrUnavailable, "cannot list the members of %s now (%v)", g, oneLine(err))
			}
			member := slices.Contains(members, strings.ToLower(id.User))
			if !member && !id.IsTA() {
				continue
			}
			seen[g] = true
			info := GroupInfo{Group: g, Target: w.targetFor(g), Size: w.Size, Used: -1, Members: members, Member: member,
				SFTP: "/groups/" + g, Former: former[g], Quota: QuotaNone}
			_, v, err := s.ensureGroupVolume(ctx, share{group: g, ws: w})
			if w.Size > 0 {
				info.Quota = s.quotaOf(v, err == nil)
			}
			if err == nil {
				if root, err := s.openVolume(v, g); err == nil {
					info.Used = s.dirSize(root, "group:"+g)
					root.Close()
				}
			}
			out = append(out, info)
		}
	}
	slices.SortFunc(out, func(a, b GroupInfo) int { return strings.Compare(a.Group, b.Group) })
	return out, nil
}

// FormerMember is a running container that mounts the workspace of a group its owner has
// left.
type FormerMember struct {
	Owner     string `json:"owner"`
	Container string `json:"container"`
	Group     string `json:"group"`
}

// FormerMembers lists, for TAs, the running containers that still mount a group workspace
// of a group their owner is no longer a member of (they lose it at their next start).
func (s *Service) FormerMembers(ctx context.Context, id backend.Identity) ([]FormerMember, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	if !id.IsTA() {
		return nil, errorf(ErrPermission, "only TAs see other users' containers")
	}
	if s.groupDir == nil {
		return nil, nil
	}
	f := s.containerFilters("")
	f.Add("status", "running")
	res, err := s.api.ContainerList(ctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return nil, engineErr("list running containers", err)
	}
	var out []FormerMember
	for _, c := range res.Items {
		owner := c.Labels[LabelOwner]
		if !s.isUserContainer(c.Labels, owner) {
			continue
		}
		for g := range strings.SplitSeq(c.Labels[LabelGroups], ",") {
			if g == "" {
				continue
			}
			ok, err := s.groupDir.IsMember(ctx, g, owner)
			if err != nil {
				return nil, errorf(ErrUnavailable, "cannot check the members of %s now (%v)", g, oneLine(err))
			}
			if !ok {
				out = append(out, FormerMember{Owner: owner, Container: c.Labels[LabelName], Group: g})
			}
		}
	}
	slices.SortFunc(out, func(a, b FormerMember) int {
		return strings.Compare(a.Owner+"/"+a.Container+" "+a.Group, b.Owner+"/"+b.Container+" "+b.Group)
	})
	return out, nil
}

// openDataset opens d's directory for reading through an os.Root (the host path, or the
// directory the engine keeps the volume in).
func (s *Service) openDataset(ctx context.Context, d Dataset) (*os.Root, error) {
	dir := d.HostPath
	if d.Volume != "" {
		v, err := s.datasetVolume(ctx, d)
		if err != nil {
			return nil, err
		}
		if dir, err = s.localVolumeDir(v); err != nil {
			return nil, err
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open dataset %s: %w", d.Name, err)
	}
	return root, nil
}

// openGroup opens a group's workspace (made when missing) through an os.Root.
func (s *Service) openGroup(ctx context.Context, sh share) (*os.Root, error) {
	_, v, err := s.ensureGroupVolume(ctx, sh)
	if err != nil {
		return nil, err
	}
	return s.openVolume(v, sh.group)
}

// openVolume opens the workspace volume v of group through an os.Root.
func (s *Service) openVolume(v volume.Volume, group string) (*os.Root, error) {
	dir, err := s.localVolumeDir(v)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open the workspace of %s: %w", group, err)
	}
	return root, nil
}

// quotaOf says what holds a sized workspace volume v to its size (known: v was found).
func (s *Service) quotaOf(v volume.Volume, known bool) string {
	if _, own := s.wsfs.ownVolume(v); known && own {
		return QuotaFilesystem
	}
	if s.shared.noQuota.Load() || known && v.Options["size"] == "" {
		return QuotaServer
	}
	return QuotaEngine
}

// localVolumeDir is the directory the engine keeps v in, when the server can reach it: an
// engine on this machine and a plain local volume.
func (s *Service) localVolumeDir(v volume.Volume) (string, error) {
	dh, ok := s.api.(daemonHoster)
	if data, own := s.wsfs.ownVolume(v); own {
		return data, nil
	}
	switch {
	case !ok || !strings.HasPrefix(dh.DaemonHost(), "unix://"):
		return "", errorf(ErrUnsupported, "shared data is reached over sftp only where the Docker Engine runs on this server")
	case v.Driver != "local" || !path.IsAbs(v.Mountpoint) || (len(v.Options) > 0 && v.Options["size"] == ""):
		return "", errorf(ErrUnsupported, "this volume is not a plain local volume the server can open")
	}
	return v.Mountpoint, nil
}

// Limits on measuring a directory's size.
const (
	sizeFresh   = 30 * time.Second
	sizeEntries = 200000
)

// dirSize is the bytes of regular files below root, measured at most every sizeFresh (and
// given up, -1, past sizeEntries entries).
func (s *Service) dirSize(root *os.Root, key string) int64 {
	s.shared.mu.Lock()
	e, ok := s.shared.sizes[key]
	s.shared.mu.Unlock()
	if ok && time.Since(e.at) < sizeFresh {
		if !e.known {
			return -1
		}
		return e.bytes
	}
	var total int64
	n := 0
	known := true
	err := fs.WalkDir(root.FS(), ".", func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if n++; n > sizeEntries {
			known = false
			return fs.SkipAll
		}
		if de.Type().IsRegular() {
			if fi, err := de.Info(); err == nil {
				total += fi.Size()
			}
		}
		return nil
	})
	if err != nil {
		known = false
	}
	s.shared.mu.Lock()
	if s.shared.sizes == nil {
		s.shared.sizes = map[string]sizeEntry{}
	}
	s.shared.sizes[key] = sizeEntry{at: time.Now(), bytes: total, known: known}
	s.shared.mu.Unlock()
	if !known {
		return -1
	}
	return total
}

// grew adds n bytes to a measured size (an upload the server just wrote).
func (s *Service) grew(key string, n int64) {
	s.shared.mu.Lock()
	defer s.shared.mu.Unlock()
	if e, ok := s.shared.sizes[key]; ok && e.known {
		e.bytes += n
		s.shared.sizes[key] = e
	}
}

// errNotMember is what a path under a group the caller is not in gets: no such file.
var errNotMember = errors.New("not a member")

// shareFor finds the workspace of group for user: configured, and the user a member.
func (s *Service) shareFor(ctx context.Context, user, group string) (share, error) {
	shares, err := s.sharesOf(ctx, user)
	if err != nil {
		return share{}, errorf(ErrUnavailable, "cannot check your groups now (%v)", oneLine(err))
	}
	for _, sh := range shares {
		if sh.group == group {
			return sh, nil
		}
	}
	return share{}, errNotMember
}

// anyShare finds the workspace of group among every configured one (for TAs' reads).
func (s *Service) anyShare(ctx context.Context, group string) (share, error) {
	if s.groupDir == nil {
		return share{}, errNotMember
	}
	for _, w := range s.cfg.Groups {
		groups, err := s.groupDir.Expand(ctx, w.Group)
		if err != nil {
			return share{}, errorf(ErrUnavailable, "cannot list the groups %s now (%v)", w.Group, oneLine(err))
		}
		if slices.Contains(groups, group) {
			return share{group: group, ws: w}, nil
		}
	}
	return share{}, errNotMember
}

// datasetFor finds the dataset called name that user may see.
func (s *Service) datasetFor(ctx context.Context, id backend.Identity, name string) (Dataset, error) {
	for _, d := range s.cfg.Datasets {
		if d.Name != name {
			continue
		}
		role := id.Role
		ok, err := s.maysee(ctx, d, id.User, &role)
		if err != nil {
			return Dataset{}, errorf(ErrUnavailable, "cannot check who may see dataset %s now (%v)", name, oneLine(err))
		}
		if ok {
			return d, nil
		}
	}
	return Dataset{}, errNotMember
}

// MyGroups lists the paths of the workspace groups id belongs to (for the sftp tree); for
// TAs where Config.TAFileAccess allows, every workspace group.
func (s *Service) MyGroups(ctx context.Context, id backend.Identity) ([]string, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	if id.IsTA() && s.cfg.TAFileAccess {
		var out []string
		for _, w := range s.cfg.Groups {
			if s.groupDir == nil {
				break
			}
			groups, err := s.groupDir.Expand(ctx, w.Group)
			if err != nil {
				return nil, errorf(ErrUnavailable, "cannot list the groups %s now (%v)", w.Group, oneLine(err))
			}
			for _, g := range groups {
				if !slices.Contains(out, g) {
					out = append(out, g)
				}
			}
		}
		return out, nil
	}
	shares, err := s.sharesOf(ctx, id.User)
	if err != nil {
		return nil, errorf(ErrUnavailable, "cannot check your groups now (%v)", oneLine(err))
	}
	out := make([]string, 0, len(shares))
	for _, sh := range shares {
		out = append(out, sh.group)
	}
	return out, nil
}

// checkStarted stops container id, which the engine just started, when its owner is no
// longer a member of a group whose workspace it mounts, and tells the owner why. The
// server's own starts check membership first; this catches the starts it does not make:
// a restart policy (the Docker API door refuses one for such containers, but older ones
// may have it) and the engine's own restarts. When membership cannot be checked, the
// container is left running (and that is logged).
func (s *Service) checkStarted(ctx context.Context, id string, labels map[string]string) {
	owner := labels[LabelOwner]
	if labels[LabelGroups] == "" || !s.isUserContainer(labels, owner) {
		return
	}
	g, err := s.leftGroup(ctx, labels, owner)
	if err != nil {
		slog.Warn("a container with a group workspace was started by the engine and membership cannot be checked now: left running",
			"owner", owner, "container", labels[LabelName], "group", g, "err", err)
		return
	}
	if g != "" {
		reason := fmt.Sprintf("it mounts the workspace of group %s, and %s is no longer a member; the engine had started it again", g, owner)
		s.serverStop(ctx, Container{ID: id, Owner: owner, Name: labels[LabelName]}, "group-stop", reason)
	}
}

// leftGroup is the first group whose workspace a container with labels mounts that owner
// is no longer a member of ("" when none); with an error, the group that could not be
// checked.
func (s *Service) leftGroup(ctx context.Context, labels map[string]string, owner string) (string, error) {
	for g := range strings.SplitSeq(labels[LabelGroups], ",") {
		if g == "" {
			continue
		}
		ok := false
		var err error
		if s.groupDir != nil {
			ok, err = s.groupDir.IsMember(ctx, g, owner)
		}
		if err != nil || !ok {
			return g, err
		}
	}
	return "", nil
}

// checkRestartable runs checkStarted on every running container with a group workspace
// and a restart policy: those are the ones the engine may have started while the server
// was not watching (a restart of the engine, or of the server).
func (s *Service) checkRestartable(ctx context.Context) {
	f := s.containerFilters("")
	f.Add("status", "running")
	res, err := s.api.ContainerList(ctx, client.ContainerListOptions{Filters: f})
	if err != nil {
		return // the watch reports the engine's health
	}
	for _, c := range res.Items {
		if c.Labels[LabelGroups] == "" {
			continue
		}
		ins, err := s.api.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{})
		if err != nil || ins.Container.HostConfig == nil {
			continue
		}
		if rp := ins.Container.HostConfig.RestartPolicy.Name; rp != "" && rp != container.RestartPolicyDisabled {
			s.checkStarted(ctx, c.ID, c.Labels)
		}
	}
}
