package docker

import (
	"fmt"
	"maps"
	"path"
	"regexp"
	"slices"
	"strings"
	"time"

	"whalemountain/backend"
)

// Label keys put on every object this package creates.
const (
	LabelOwner   = "whalemountain.owner"
	LabelName    = "whalemountain.name"
	LabelManaged = "whalemountain.managed"
)

// Quota bounds what one user of a role may have.
type Quota struct {
	MaxContainers int     // containers in any state
	MaxRunning    int     // containers running at once
	MaxCPUs       float64 // CPUs per container
	MaxMemory     int64   // bytes of memory per container
	MaxGPUs       int     // GPUs per container (0: none)
}

// Config is the container policy. The zero value is not usable: start from DefaultConfig,
// change what the site needs, then Validate. None of it can be overridden per container.
type Config struct {
	// Host is the Docker Engine address ("unix:///var/run/docker.sock", "tcp://..."); empty
	// means DOCKER_HOST, else the default socket. The API version is always negotiated.
	Host string

	// NamePrefix starts every engine-side name: containers are "<prefix>-<user>-<name>",
	// home volumes "<prefix>-home-<user>", networks "<prefix>-net-<user>".
	NamePrefix string

	// Labels are extra labels put on every object. They also select: this service sees and
	// manages only objects that carry all of them (besides whalemountain.managed=true), so
	// changing them hides the containers made before.
	Labels map[string]string

	// Capabilities is the allow-list: every container drops ALL and adds back exactly these.
	Capabilities []string
	// AllowNewPrivileges turns off no-new-privileges. Leave it false.
	AllowNewPrivileges bool
	// PidsLimit caps the processes in one container (must be positive).
	PidsLimit int64
	// Init runs the engine's init (docker-init) as PID 1: reaps zombies, forwards signals.
	Init bool
	// StopTimeout is how long stop and restart wait before killing.
	StopTimeout time.Duration

	// DefaultCPUs and DefaultMemory apply when a run does not ask for limits.
	DefaultCPUs   float64
	DefaultMemory int64

	// HomeHostPath is empty for a per-user named volume "<prefix>-home-<user>" (the default),
	// or an absolute host path template containing {user}, such as "/srv/home/{user}",
	// created with mode 0700 when missing. It is the only host path ever mounted.
	HomeHostPath string

	// RunnerSocketDir is the directory in which the server serves the Docker API socket of
	// owner's runner name on this host; nil when runners are off. A job container made
	// through that socket may bind RunnerSocketDirBind (the directory as the runner sees
	// it): the server mounts this directory in its place, read-only, so the job talks to
	// its owner's own API, and no other host path.
	RunnerSocketDir func(owner, name string) string `json:"-"`
	// HomeTarget is where the home is mounted inside every container, a template containing
	// {user}; it is also the working directory and $HOME.
	HomeTarget string

	// GPUPolicy is GPUExclusive ("exclusive", a GPU belongs to at most one running
	// container; empty means the same) or GPUShared ("shared").
	GPUPolicy string

	// Student and TA are the per-role quotas.
	Student Quota
	TA      Quota

	// Datasets are mounted read-only into the containers of the users who may see each;
	// Groups make a read-write workspace for each group, mounted into its members'
	// containers (shared.go).
	Datasets []Dataset
	Groups   []GroupWorkspace
	// TAFileAccess lets TAs read (never write) students' homes and every group workspace
	// through the file tree (sftp /users/USER/home, /groups/GROUP); each file read is
	// audited. Off by default.
	TAFileAccess bool
	// Waiting is the GPU waiting list (waiting.go).
	Waiting WaitPolicy
	// IdleStudent and IdleTA are the idle culling per role (cull.go).
	IdleStudent IdlePolicy
	IdleTA      IdlePolicy
}

// DefaultCapabilities is a small allow-list that still lets root install packages (apt, apk)
// inside a container: no MKNOD, NET_RAW, SETFCAP, SETPCAP or anything of SYS_ADMIN's kind.
var DefaultCapabilities = []string{
	"CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
	"NET_BIND_SERVICE", "SYS_CHROOT", "AUDIT_WRITE",
}

const (
	mib = int64(1) << 20
	gib = int64(1) << 30
)

// DefaultConfig returns the safe defaults.
func DefaultConfig() Config {
	return Config{
		NamePrefix:   "wm",
		Capabilities: slices.Clone(DefaultCapabilities),
		PidsLimit:    512,
		Init:         true,
		StopTimeout:  10 * time.Second,
		DefaultCPUs:  1,
		// DefaultMemory must fit the student quota below.
		DefaultMemory: 2 * gib,
		HomeTarget:    "/home/{user}",
		GPUPolicy:     GPUExclusive,
		Student:       Quota{MaxContainers: 5, MaxRunning: 3, MaxCPUs: 2, MaxMemory: 4 * gib, MaxGPUs: 1},
		TA:            Quota{MaxContainers: 20, MaxRunning: 10, MaxCPUs: 8, MaxMemory: 16 * gib, MaxGPUs: 4},
		Waiting:       DefaultWaitPolicy(),
		IdleStudent:   DefaultIdlePolicy(),
		IdleTA:        IdlePolicy{CPUBelow: 5, GPUBelow: 5, WarnBefore: 30 * time.Minute},
	}
}

var (
	prefixRE   = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,14}[a-z0-9])?$`)
	labelKeyRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$`)
)

// knownCapabilities are the Linux capability names Docker accepts (without CAP_).
var knownCapabilities = []string{
	"AUDIT_CONTROL", "AUDIT_READ", "AUDIT_WRITE", "BLOCK_SUSPEND", "BPF", "CHECKPOINT_RESTORE",
	"CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "IPC_LOCK", "IPC_OWNER",
	"KILL", "LEASE", "LINUX_IMMUTABLE", "MAC_ADMIN", "MAC_OVERRIDE", "MKNOD", "NET_ADMIN",
	"NET_BIND_SERVICE", "NET_BROADCAST", "NET_RAW", "PERFMON", "SETFCAP", "SETGID", "SETPCAP",
	"SETUID", "SYSLOG", "SYS_ADMIN", "SYS_BOOT", "SYS_CHROOT", "SYS_MODULE", "SYS_NICE",
	"SYS_PACCT", "SYS_PTRACE", "SYS_RAWIO", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG",
	"WAKE_ALARM",
}

// Validate reports the first invalid field, by name.
func (c Config) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("docker config: %s %s", field, fmt.Sprintf(format, a...))
	}
	if !prefixRE.MatchString(c.NamePrefix) {
		return bad("NamePrefix", "must be 1-16 lower-case letters, digits or '-' (got %q)", c.NamePrefix)
	}
	if c.Host != "" && !strings.Contains(c.Host, "://") {
		return bad("Host", "must be a URL such as unix:///var/run/docker.sock (got %q)", c.Host)
	}
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		if !labelKeyRE.MatchString(k) {
			return bad("Labels", "has an invalid key %q", k)
		}
		if slices.Contains(ServerLabelKeys, k) {
			return bad("Labels", "may not set %s: the server's own keys are its to write", k)
		}
		if strings.ContainsAny(c.Labels[k], "\x00\n") || len(c.Labels[k]) > 256 {
			return bad("Labels", "has an invalid value for %q", k)
		}
	}
	for _, cp := range c.Capabilities {
		name := strings.TrimPrefix(strings.ToUpper(cp), "CAP_")
		if !slices.Contains(knownCapabilities, name) {
			return bad("Capabilities", "has an unknown capability %q", cp)
		}
	}
	if c.PidsLimit <= 0 {
		return bad("PidsLimit", "must be positive (got %d)", c.PidsLimit)
	}
	if c.StopTimeout < 0 || c.StopTimeout > 10*time.Minute {
		return bad("StopTimeout", "must be between 0 and 10m (got %s)", c.StopTimeout)
	}
	if c.HomeHostPath != "" {
		if err := checkTemplate(c.HomeHostPath); err != nil {
			return bad("HomeHostPath", "%v", err)
		}
		if strings.Contains(c.HomeHostPath, "docker.sock") {
			return bad("HomeHostPath", "may not point at the Docker socket")
		}
	}
	if err := checkTemplate(c.HomeTarget); err != nil {
		return bad("HomeTarget", "%v", err)
	}
	if c.GPUPolicy != "" && c.GPUPolicy != GPUExclusive && c.GPUPolicy != GPUShared {
		return bad("GPUPolicy", "must be %q or %q (got %q)", GPUExclusive, GPUShared, c.GPUPolicy)
	}
	for _, q := range []struct {
		field string
		q     Quota
	}{{"Student", c.Student}, {"TA", c.TA}} {
		switch {
		case q.q.MaxContainers < 1:
			return bad(q.field+".MaxContainers", "must be at least 1 (got %d)", q.q.MaxContainers)
		case q.q.MaxRunning < 1 || q.q.MaxRunning > q.q.MaxContainers:
			return bad(q.field+".MaxRunning", "must be between 1 and MaxContainers (got %d)", q.q.MaxRunning)
		case !(q.q.MaxCPUs > 0):
			return bad(q.field+".MaxCPUs", "must be positive (got %g)", q.q.MaxCPUs)
		case q.q.MaxGPUs < 0:
			return bad(q.field+".MaxGPUs", "must not be negative (got %d)", q.q.MaxGPUs)
		case q.q.MaxMemory < minMemory:
			return bad(q.field+".MaxMemory", "must be at least %s (got %d)", formatBytes(minMemory), q.q.MaxMemory)
		case c.DefaultCPUs > q.q.MaxCPUs:
			return bad("DefaultCPUs", "must fit %s.MaxCPUs (%g > %g)", q.field, c.DefaultCPUs, q.q.MaxCPUs)
		case c.DefaultMemory > q.q.MaxMemory:
			return bad("DefaultMemory", "must fit %s.MaxMemory (%s > %s)", q.field,
				formatBytes(c.DefaultMemory), formatBytes(q.q.MaxMemory))
		}
	}
	if err := c.Waiting.validate(); err != nil {
		return fmt.Errorf("docker config: %w", err)
	}
	if err := c.IdleStudent.validate("IdleStudent"); err != nil {
		return fmt.Errorf("docker config: %w", err)
	}
	if err := c.IdleTA.validate("IdleTA"); err != nil {
		return fmt.Errorf("docker config: %w", err)
	}
	if !(c.DefaultCPUs > 0) {
		return bad("DefaultCPUs", "must be positive (got %g)", c.DefaultCPUs)
	}
	if c.DefaultMemory < minMemory {
		return bad("DefaultMemory", "must be at least %s (got %d)", formatBytes(minMemory), c.DefaultMemory)
	}
	return c.validateShared()
}

// minMemory is the smallest memory limit the engine accepts.
const minMemory = 6 * mib

// checkTemplate checks a path template: absolute, clean, containing {user} once.
func checkTemplate(t string) error {
	if !strings.HasPrefix(t, "/") {
		return fmt.Errorf("must be an absolute path (got %q)", t)
	}
	if strings.Count(t, "{user}") != 1 {
		return fmt.Errorf("must contain {user} once (got %q)", t)
	}
	if path.Clean(t) != t || strings.ContainsAny(t, "\x00:,") {
		return fmt.Errorf("must be a clean path without ':' or ',' (got %q)", t)
	}
	return nil
}

func expand(template, user string) string { return strings.ReplaceAll(template, "{user}", user) }

// quota returns the quota for a role.
func (c Config) quota(r backend.Role) Quota {
	if r == backend.RoleTA {
		return c.TA
	}
	return c.Student
}

func (c Config) capabilities() []string {
	out := make([]string, 0, len(c.Capabilities))
	for _, cp := range c.Capabilities {
		out = append(out, "CAP_"+strings.TrimPrefix(strings.ToUpper(cp), "CAP_"))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// selectors are the labels every managed object carries and every lookup requires.
func (c Config) selectors() map[string]string {
	m := maps.Clone(c.Labels)
	if m == nil {
		m = map[string]string{}
	}
	m[LabelManaged] = "true"
	return m
}

func (c Config) containerName(user, name string) string {
	return c.NamePrefix + "-" + user + "-" + name
}
func (c Config) volumeName(user string) string  { return c.NamePrefix + "-home-" + user }
func (c Config) networkName(user string) string { return c.NamePrefix + "-net-" + user }

func roleWord(r backend.Role) string {
	if r == backend.RoleTA {
		return "TAs"
	}
	return "students"
}

// formatBytes is "512 MiB", "2.0 GiB".
func formatBytes(n int64) string {
	switch {
	case n >= gib:
		return fmt.Sprintf("%.1f GiB", float64(n)/float64(gib))
	case n >= mib:
		return fmt.Sprintf("%d MiB", n/mib)
	default:
		return fmt.Sprintf("%d B", n)
	}
}
