package docker

import (
	"context"
	"log/slog"
	"maps"
	"math"
	"path"
	"slices"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// The create policy: what every container this package makes carries, whichever door asks
// (run, the new-container form, SIF export, and every later one). Two rules:
//
//  1. Authority is on the object, set here. The engine copies an image's labels onto a new
//     container for every key the create request leaves out, so every label key the server
//     ever reads is written on every create — empty when it has no value — and an image's
//     labels can never name an owner, a name, a kind or an allocation.
//  2. Hardened, helpers included: no privileges, capabilities dropped to the allow-list,
//     no-new-privileges, private IPC and cgroup namespaces, pids, memory and CPU limits.

// LabelKind says what a container is to the server: KindContainer for a user's container,
// KindSIFExport for the short-lived container a SIF build exports, KindRunner for a user's
// gitlab-runner (runners.go). Lookups of users' containers match KindContainer by value,
// so no other container, and nothing an image says, is ever taken for one.
const LabelKind = "whalemountain.kind"

// Values of LabelKind.
const (
	KindContainer = "container"
	KindSIFExport = "sif-export"
	KindRunner    = "runner"
)

// ServerLabelKeys are every label key the server reads off a container; each is set on
// every create (the site's selector labels from Config.Labels are set too).
var ServerLabelKeys = []string{LabelManaged, LabelKind, LabelOwner, LabelName, LabelGPUs, LabelGPUIndices, LabelSIFExport, LabelPreset, LabelDatasets, LabelGroups, LabelRunnerProject, LabelRunner}

// objectLabels are the values of a new container's server labels; what is empty is
// written empty.
type objectLabels struct {
	kind       string
	owner      string
	name       string
	gpus       string // UUIDs, comma-separated
	gpuIndices string
	sifUser    string // the user a SIF export is for
	preset     string // the course preset a user's container was made from
	// data is the shared data a user's container gets (grantFor): mounted by
	// createContainer and named in LabelDatasets and LabelGroups.
	data      grant
	project   string // the GitLab project a runner container serves
	runnerDir string // a runner container's own directory, its one host mount
	runner    string // the user's runner a job's container was made by
	apiSocket string // that runner's socket directory on the host, mounted into the job by the server
	// extra are labels the user asked for (the Docker API's create); every server key and
	// selector is written over them, so they never decide anything the server reads.
	extra map[string]string
}

// containerLabels is the complete label set of a new container: the site's selectors,
// managed=true and every server key, so none is left for the image to fill.
func (s *Service) containerLabels(l objectLabels) map[string]string {
	m := maps.Clone(l.extra)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, s.cfg.selectors())
	m[LabelKind] = l.kind
	m[LabelOwner] = l.owner
	m[LabelName] = l.name
	m[LabelGPUs] = l.gpus
	m[LabelGPUIndices] = l.gpuIndices
	m[LabelSIFExport] = l.sifUser
	m[LabelPreset] = l.preset
	m[LabelDatasets] = strings.Join(l.data.datasets, ",")
	m[LabelGroups] = strings.Join(l.data.groups, ",")
	m[LabelRunnerProject] = l.project
	m[LabelRunner] = l.runner
	return m
}

// containerFilters selects users' containers (of one owner unless owner is ""): the site's
// selectors, managed=true and kind=container, all by value.
func (s *Service) containerFilters(owner string) client.Filters {
	f := s.filters(owner)
	f.Add("label", LabelKind+"="+KindContainer)
	return f
}

// isUserContainer reports whether labels are those of a user's container of owner, by value:
// every selector, kind=container, that owner and a name.
func (s *Service) isUserContainer(labels map[string]string, owner string) bool {
	return s.managedBy(labels, owner) && labels[LabelKind] == KindContainer && labels[LabelName] != ""
}

// limits are the resources of one container.
type limits struct {
	cpus   float64
	memory int64
}

// harden puts the hardening on hc, whatever was there: no privileges, capabilities dropped
// to the allow-list, no-new-privileges, private IPC and cgroup namespaces, no host
// namespaces or devices, pids, memory (no swap on top) and CPU limits. Mounts are left as
// the caller placed them (checked by checkHostMounts).
func (s *Service) harden(hc *container.HostConfig, lim limits) {
	secOpt := []string{"no-new-privileges:true"}
	if s.cfg.AllowNewPrivileges {
		secOpt = nil
	}
	init := s.cfg.Init
	pids := s.cfg.PidsLimit
	hc.Privileged = false
	hc.Binds = nil
	hc.VolumesFrom = nil
	hc.CapDrop = []string{"ALL"}
	hc.CapAdd = s.cfg.capabilities()
	hc.SecurityOpt = secOpt
	hc.IpcMode = container.IPCModePrivate
	hc.CgroupnsMode = container.CgroupnsModePrivate
	hc.PidMode = ""
	hc.UTSMode = ""
	hc.UsernsMode = ""
	hc.Init = &init
	hc.Resources.Devices = nil
	hc.Resources.DeviceCgroupRules = nil
	hc.Resources.NanoCPUs = int64(math.Round(lim.cpus * 1e9))
	hc.Resources.Memory = lim.memory
	hc.Resources.MemorySwap = lim.memory
	hc.Resources.PidsLimit = &pids
}

// createContainer is the one way this package makes a container: the labels are exactly
// containerLabels(l) (whatever opts carried), the host config is hardened with lim, and the
// engine name is engineName, with a suffix when another object already took it (lookups go
// by labels; the engine name only ever carries a rename: userName).
func (s *Service) createContainer(ctx context.Context, opts client.ContainerCreateOptions, l objectLabels, lim limits, engineName string) (string, error) {
	if opts.Config == nil {
		opts.Config = &container.Config{}
	}
	if opts.HostConfig == nil {
		opts.HostConfig = &container.HostConfig{}
	}
	opts.Config.Labels = s.containerLabels(l)
	s.harden(opts.HostConfig, lim)
	if l.kind == KindContainer {
		opts.HostConfig.Mounts = withGrant(opts.HostConfig.Mounts, l.data.mounts)
	}
	if err := s.checkHostMounts(opts.HostConfig.Mounts, l); err != nil {
		return "", err
	}
	what := "create container " + shown(l.name)
	switch l.kind {
	case KindContainer:
	case KindRunner:
		what = "create runner " + l.name + " of " + l.owner
	default:
		what = "create " + l.kind + " container for " + l.sifUser
	}
	name := engineName
	for try := 0; ; try++ {
		opts.Name = name
		res, err := s.api.ContainerCreate(ctx, opts)
		if err == nil {
			return res.ID, nil
		}
		if !cerrdefs.IsConflict(err) || try == 3 {
			return "", engineErr(what, err)
		}
		name = engineName + "." + randomSuffix(4) // never a name: see userName
	}
}

// withGrant is ms with the granted mounts added; a mount of ms at the target of a granted
// one gives way to it.
func withGrant(ms, granted []mount.Mount) []mount.Mount {
	out := slices.DeleteFunc(slices.Clone(ms), func(m mount.Mount) bool {
		return slices.ContainsFunc(granted, func(g mount.Mount) bool { return path.Clean(g.Target) == path.Clean(m.Target) })
	})
	return append(out, granted...)
}

// checkHostMounts is the last look at a container's mounts before it is made: the only host
// paths are the owner's home and the site's datasets (read-only); never the Docker socket.
func (s *Service) checkHostMounts(ms []mount.Mount, l objectLabels) error {
	owner := l.owner
	for _, m := range ms {
		if m.Type != mount.TypeBind {
			continue
		}
		// A runner container's own directory (config.toml, its owner's API socket), placed
		// by CreateRunner.
		if l.kind == KindRunner && l.runnerDir != "" && m.Source == l.runnerDir {
			continue
		}
		// The directory of the owner's own Docker API socket in a job of their runner,
		// placed read-only by createFromAPI from the identity.
		if l.kind == KindContainer && l.runner != "" && l.apiSocket != "" && m.Source == l.apiSocket && m.ReadOnly {
			continue
		}
		home := s.cfg.HomeHostPath != "" && owner != "" && m.Source == expand(s.cfg.HomeHostPath, owner)
		dataset := m.ReadOnly && slices.ContainsFunc(s.cfg.Datasets, func(d Dataset) bool {
			return d.HostPath != "" && d.HostPath == m.Source && d.target() == m.Target
		})
		if !home && !dataset {
			slog.Error("refusing a container with a host path the policy does not place", "source", m.Source, "target", m.Target)
			return errorf(ErrPermission, "host path %s: paths of the server are not mounted into containers", shown(m.Source))
		}
	}
	return nil
}

// createRoom checks that id, whose containers are mine, may make one more called name ("":
// one to be named), and, when it starts at once, run one more: the name is free and the
// role's quotas have room. Every door's create goes through it (run, the Docker API). It
// returns the names taken.
func (s *Service) createRoom(id backend.Identity, mine []container.Summary, name string, start bool) (map[string]bool, error) {
	q := s.cfg.quota(id.Role)
	names := map[string]bool{}
	running := 0
	for _, c := range mine {
		names[c.Labels[LabelName]] = true
		if c.State == container.StateRunning || c.State == container.StateRestarting {
			running++
		}
	}
	switch {
	case name != "" && names[name]:
		return names, errorf(ErrConflict, "container %s already exists", name)
	case len(mine) >= q.MaxContainers:
		return names, errorf(ErrQuota, "quota: at most %d containers for %s (you have %d)", q.MaxContainers, roleWord(id.Role), len(mine))
	case start && running >= q.MaxRunning:
		return names, errorf(ErrQuota, "quota: at most %d running containers for %s (you have %d)", q.MaxRunning, roleWord(id.Role), running)
	}
	return names, nil
}

// claimants keeps, of a list, the user containers that claim owner/name; more than one is
// an error for the caller to report, never "newest wins".
func (s *Service) claimants(items []container.Summary, owner, name string) []container.Summary {
	return slices.DeleteFunc(slices.Clone(items), func(c container.Summary) bool {
		return !s.isUserContainer(c.Labels, owner) || c.Labels[LabelName] != name
	})
}

// ambiguous is the error for two containers that claim one owner/name: the lookup resolves
// to neither, and the log says which.
func ambiguous(typed string, cs []container.Summary) error {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = shortID(c.ID)
	}
	slog.Warn("two containers claim one name; refusing to pick", "name", typed, "ids", ids)
	return errorf(ErrConflict, "more than one container is called %s; ask a TA to remove the extra one", shown(typed))
}
