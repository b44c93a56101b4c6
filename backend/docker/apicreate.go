package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// The Docker API's create (POST /containers/create), checked rather than trusted.
//
// A request is read field by field against the policy: anything that would give a
// container more than the policy allows (privileges, host namespaces, capabilities beyond
// the allow-list, devices, security options, host paths, the Docker socket, sysctls, other
// users' containers, resources over the quota) is refused with one line that names the
// field and the docker flag that sets it. What is allowed is copied, field by field, into a
// request of the server's own making, which then goes the one way every container is made
// (createContainer): the server's labels, the user's network and home, the hardening and
// the GPU allocation are imposed there, whatever the request said. A field this file does
// not copy never reaches the engine.

// createPlan is what a checked create request asks for, in the server's terms.
type createPlan struct {
	config  container.Config // the allowed part of Config, without labels
	host    container.HostConfig
	cpus    float64 // 0: Config.DefaultCPUs
	memory  int64   // 0: Config.DefaultMemory
	gpus    string  // as --gpus takes it: "N" or "0,2"; "" for none
	labels  map[string]string
	aliases []string

	volumes     []volumeUse // the user's own named volumes
	tmpfs       []mount.Mount
	volumesFrom []string // the user's own containers, as typed (with :ro or :rw)
	netFrom     string   // --network container:X, X as typed
	netNone     bool
	network     string // --network NET: one of the user's own networks, as typed ("": their default one)
	apiSocket   string // where a runner's job gets the directory of its owner's Docker API socket; "" for none
}

// volumeUse is a named volume of the user's mounted at target.
type volumeUse struct {
	name     string
	target   string
	readOnly bool
	noCopy   bool
	subpath  string
}

// refused is a refusal of one field of a create request.
func refused(field, flag, why string) error {
	if flag != "" {
		field = flag + " (" + field + ")"
	}
	return errorf(ErrPermission, "%s: %s", field, why)
}

func invalidField(field, flag, why string) error {
	if flag != "" {
		field = flag + " (" + field + ")"
	}
	return errorf(ErrInvalid, "%s: %s", field, why)
}

var (
	hostnameRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,62}[A-Za-z0-9])?$`)
	apiLabelRE   = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9._/-]{0,126}[A-Za-z0-9])?$`)
	restartNames = []container.RestartPolicyMode{"", container.RestartPolicyDisabled, container.RestartPolicyAlways,
		container.RestartPolicyOnFailure, container.RestartPolicyUnlessStopped}
	logDrivers = []string{"", "json-file", "local"}
	logOptions = []string{"max-size", "max-file", "compress", "labels", "env", "labels-regex", "env-regex", "tag"}
)

// Limits on what an API create may carry besides what run checks.
const (
	maxAPILabels  = 64
	maxAPIMounts  = 16
	maxAPIAliases = 8
	maxStopSecs   = 600
)

// createRules is what checkCreate measures a request against.
type createRules struct {
	caps  []string // allowed capabilities, "CAP_X"
	quota Quota
	role  string // "students", for quota lines
	home  string // where the home is mounted
	// runnerSocket: the caller is a runner's socket, whose jobs may bind RunnerSocketDirBind.
	runnerSocket bool
}

func (s *Service) createRules(id backend.Identity) createRules {
	return createRules{caps: s.cfg.capabilities(), quota: s.cfg.quota(id.Role), role: roleWord(id.Role),
		home: expand(s.cfg.HomeTarget, id.User), runnerSocket: runnerOf(id) != "" && s.cfg.RunnerSocketDir != nil}
}

// checkCreate reads a create request against the rules: the first field that asks for more
// than the policy allows is refused, naming it; otherwise the plan holds what is allowed.
func checkCreate(req container.CreateRequest, r createRules) (createPlan, error) {
	var p createPlan
	cfg := req.Config
	if cfg == nil {
		return p, invalidField("Config", "", "missing")
	}
	hc := req.HostConfig
	if hc == nil {
		hc = &container.HostConfig{}
	}
	if err := checkConfig(cfg, &p); err != nil {
		return p, err
	}
	if err := checkHostNamespaces(hc); err != nil {
		return p, err
	}
	if err := checkPrivileges(hc, r); err != nil {
		return p, err
	}
	if err := checkDevices(hc, &p); err != nil {
		return p, err
	}
	if err := checkResources(hc, r, &p); err != nil {
		return p, err
	}
	if err := checkMounts(hc, cfg, r, &p); err != nil {
		return p, err
	}
	if err := checkNetwork(hc, req.NetworkingConfig, &p); err != nil {
		return p, err
	}
	if err := checkMisc(hc, &p); err != nil {
		return p, err
	}
	return p, nil
}

// checkConfig copies the allowed part of Config.
func checkConfig(cfg *container.Config, p *createPlan) error {
	if cfg.Image == "" {
		return invalidField("Config.Image", "", "no image given")
	}
	if _, err := ParseImage(cfg.Image); err != nil {
		return err
	}
	if err := ValidateEnv(cfg.Env); err != nil {
		return err
	}
	if err := validateCmd(cfg.Cmd); err != nil {
		return err
	}
	// An entrypoint of one empty string is how clients say "none" (--entrypoint "").
	if !slices.Equal(cfg.Entrypoint, []string{""}) {
		if err := validateCmd(cfg.Entrypoint); err != nil {
			return err
		}
	}
	for _, f := range []struct{ field, flag, v string }{
		{"Config.Hostname", "--hostname", cfg.Hostname}, {"Config.Domainname", "--domainname", cfg.Domainname},
	} {
		if f.v != "" && (!hostnameRE.MatchString(f.v) || len(f.v) > 253) {
			return invalidField(f.field, f.flag, fmt.Sprintf("invalid host name %s", shown(f.v)))
		}
	}
	if cfg.User != "" && (len(cfg.User) > 64 || strings.ContainsAny(cfg.User, "\x00\n ")) {
		return invalidField("Config.User", "--user", fmt.Sprintf("invalid user %s", shown(cfg.User)))
	}
	if cfg.WorkingDir != "" && (!path.IsAbs(cfg.WorkingDir) || len(cfg.WorkingDir) > 4096 || strings.ContainsRune(cfg.WorkingDir, 0)) {
		return invalidField("Config.WorkingDir", "--workdir", "must be an absolute path")
	}
	if cfg.StopTimeout != nil && (*cfg.StopTimeout < -1 || *cfg.StopTimeout > maxStopSecs) {
		return invalidField("Config.StopTimeout", "--stop-timeout", fmt.Sprintf("must be at most %d seconds", maxStopSecs))
	}
	if len(cfg.Labels) > maxAPILabels {
		return invalidField("Config.Labels", "--label", fmt.Sprintf("at most %d labels", maxAPILabels))
	}
	labels := map[string]string{}
	for k, v := range cfg.Labels {
		if !apiLabelRE.MatchString(k) || len(v) > 4096 || strings.ContainsRune(v, 0) {
			return invalidField("Config.Labels", "--label", fmt.Sprintf("invalid label %s", shown(k)))
		}
		// The server's own keys are its to write: asked-for values are dropped, never used.
		if strings.HasPrefix(k, "whalemountain.") {
			continue
		}
		labels[k] = v
	}
	p.labels = labels
	p.config = container.Config{
		Hostname:     cfg.Hostname,
		Domainname:   cfg.Domainname,
		User:         cfg.User,
		AttachStdin:  cfg.AttachStdin,
		AttachStdout: cfg.AttachStdout,
		AttachStderr: cfg.AttachStderr,
		ExposedPorts: maps.Clone(cfg.ExposedPorts),
		Tty:          cfg.Tty,
		OpenStdin:    cfg.OpenStdin,
		StdinOnce:    cfg.StdinOnce,
		Env:          slices.Clone(cfg.Env),
		Cmd:          slices.Clone(cfg.Cmd),
		Healthcheck:  cfg.Healthcheck,
		Image:        cfg.Image,
		Volumes:      maps.Clone(cfg.Volumes),
		WorkingDir:   cfg.WorkingDir,
		Entrypoint:   slices.Clone(cfg.Entrypoint),
		StopSignal:   cfg.StopSignal,
		StopTimeout:  cfg.StopTimeout,
		Shell:        slices.Clone(cfg.Shell),
	}
	p.netNone = cfg.NetworkDisabled
	return nil
}

// checkHostNamespaces refuses every namespace shared with the host or another container
// (the network is checkNetwork's).
func checkHostNamespaces(hc *container.HostConfig) error {
	why := "containers on this server get namespaces of their own"
	switch {
	case hc.PidMode != "":
		if hc.PidMode.IsHost() {
			return refused("HostConfig.PidMode", "--pid", "the host's PID namespace is not allowed: "+why)
		}
		return refused("HostConfig.PidMode", "--pid", "sharing another container's PID namespace is not allowed: "+why)
	case hc.IpcMode != "" && hc.IpcMode != container.IPCModePrivate && hc.IpcMode != container.IPCModeShareable && hc.IpcMode != container.IPCModeNone:
		return refused("HostConfig.IpcMode", "--ipc", "only a private IPC namespace is allowed: "+why)
	case hc.UTSMode != "":
		return refused("HostConfig.UTSMode", "--uts", "the host's UTS namespace is not allowed: "+why)
	case hc.UsernsMode != "":
		return refused("HostConfig.UsernsMode", "--userns", "the user namespace cannot be chosen: "+why)
	case hc.CgroupnsMode != "" && hc.CgroupnsMode != container.CgroupnsModePrivate:
		return refused("HostConfig.CgroupnsMode", "--cgroupns", "only a private cgroup namespace is allowed: "+why)
	case hc.Cgroup != "":
		return refused("HostConfig.Cgroup", "", "sharing another container's cgroup is not allowed: "+why)
	case hc.CgroupParent != "":
		return refused("HostConfig.CgroupParent", "--cgroup-parent", "the cgroup is the server's to choose")
	}
	return nil
}

// checkPrivileges refuses privileged mode, capabilities beyond the allow-list and security
// options that loosen confinement.
func checkPrivileges(hc *container.HostConfig, r createRules) error {
	if hc.Privileged {
		return refused("HostConfig.Privileged", "--privileged", "privileged containers are not allowed on this server")
	}
	for _, c := range hc.CapAdd {
		name := "CAP_" + strings.TrimPrefix(strings.ToUpper(c), "CAP_")
		if !slices.Contains(r.caps, name) {
			return refused("HostConfig.CapAdd", "--cap-add", fmt.Sprintf("capability %s is not allowed (allowed: %s)",
				shown(c), strings.Join(capNames(r.caps), ", ")))
		}
	}
	for _, o := range hc.SecurityOpt {
		switch strings.TrimSpace(o) {
		case "no-new-privileges", "no-new-privileges:true", "no-new-privileges=true":
			continue
		}
		return refused("HostConfig.SecurityOpt", "--security-opt", fmt.Sprintf("%s is not allowed: seccomp, AppArmor and "+
			"SELinux confinement are the server's", shown(optName(o))))
	}
	if hc.MaskedPaths != nil || hc.ReadonlyPaths != nil {
		return refused("HostConfig.MaskedPaths", "--security-opt systempaths=unconfined", "the masked and read-only system paths are the server's")
	}
	if hc.Runtime != "" && hc.Runtime != "runc" {
		return refused("HostConfig.Runtime", "--runtime", fmt.Sprintf("runtime %s is not allowed (GPUs: --gpus)", shown(hc.Runtime)))
	}
	if len(hc.Sysctls) > 0 {
		return refused("HostConfig.Sysctls", "--sysctl", "sysctls are not allowed on this server")
	}
	if hc.OomKillDisable != nil && *hc.OomKillDisable {
		return refused("HostConfig.OomKillDisable", "--oom-kill-disable", "the OOM killer stays on")
	}
	if hc.OomScoreAdj < 0 {
		return refused("HostConfig.OomScoreAdj", "--oom-score-adj", "a negative adjustment is not allowed")
	}
	if len(hc.Ulimits) > 0 {
		return refused("HostConfig.Ulimits", "--ulimit", "limits are the server's")
	}
	if hc.CPURealtimePeriod != 0 || hc.CPURealtimeRuntime != 0 {
		return refused("HostConfig.CpuRealtimeRuntime", "--cpu-rt-runtime", "real-time scheduling is not allowed")
	}
	if len(hc.StorageOpt) > 0 {
		return refused("HostConfig.StorageOpt", "--storage-opt", "storage options are the server's")
	}
	if len(hc.Annotations) > 0 {
		return refused("HostConfig.Annotations", "--annotation", "runtime annotations are not allowed")
	}
	return nil
}

// optName is a security option without a value that may be a whole profile.
func optName(o string) string {
	if k, _, ok := strings.Cut(o, "="); ok {
		return k + "=..."
	}
	if k, _, ok := strings.Cut(o, ":"); ok {
		return k + ":..."
	}
	return o
}

func capNames(caps []string) []string {
	out := make([]string, len(caps))
	for i, c := range caps {
		out[i] = strings.TrimPrefix(c, "CAP_")
	}
	return out
}

// checkDevices refuses devices; GPUs come through the allocator (--gpus).
func checkDevices(hc *container.HostConfig, p *createPlan) error {
	if len(hc.Devices) > 0 {
		return refused("HostConfig.Devices", "--device", "host devices are not allowed on this server (GPUs: --gpus N)")
	}
	if len(hc.DeviceCgroupRules) > 0 {
		return refused("HostConfig.DeviceCgroupRules", "--device-cgroup-rule", "device rules are not allowed on this server")
	}
	if len(hc.DeviceRequests) > 1 {
		return refused("HostConfig.DeviceRequests", "--gpus", "only one GPU request is allowed")
	}
	for _, d := range hc.DeviceRequests {
		if d.Driver != "" && d.Driver != "nvidia" || !gpuCaps(d.Capabilities) || len(d.Options) > 0 {
			return refused("HostConfig.DeviceRequests", "--gpus", "only GPUs can be requested")
		}
		switch {
		case len(d.DeviceIDs) > 0 && d.Count != 0:
			return invalidField("HostConfig.DeviceRequests", "--gpus", "give a count or GPU indices, not both")
		case len(d.DeviceIDs) > 0:
			for _, g := range d.DeviceIDs {
				if g == "" || strings.Trim(g, "0123456789") != "" {
					return invalidField("HostConfig.DeviceRequests", "--gpus", "name GPUs by index, such as --gpus device=0,2")
				}
			}
			p.gpus = strings.Join(d.DeviceIDs, ",")
		case d.Count < 0:
			return invalidField("HostConfig.DeviceRequests", "--gpus", "ask for a number of GPUs, not all of them")
		case d.Count > 0:
			p.gpus = strconv.Itoa(d.Count)
		}
	}
	return nil
}

// gpuCaps reports whether a device request's capabilities ask for GPUs and nothing else.
func gpuCaps(caps [][]string) bool {
	if len(caps) == 0 {
		return false
	}
	for _, set := range caps {
		for _, c := range set {
			if c != "gpu" && c != "compute" && c != "utility" {
				return false
			}
		}
	}
	return true
}

// checkResources reads the CPU and memory limits against the quota.
func checkResources(hc *container.HostConfig, r createRules, p *createPlan) error {
	cpus := float64(hc.NanoCPUs) / 1e9
	if hc.CPUQuota > 0 {
		period := hc.CPUPeriod
		if period <= 0 {
			period = 100000
		}
		if hc.NanoCPUs != 0 {
			return invalidField("HostConfig.CpuQuota", "--cpu-quota", "give --cpus or --cpu-quota, not both")
		}
		cpus = float64(hc.CPUQuota) / float64(period)
	}
	switch {
	case hc.NanoCPUs < 0 || hc.CPUQuota < 0 && hc.CPUQuota != -1 || math.IsNaN(cpus):
		return invalidField("HostConfig.NanoCpus", "--cpus", "must be positive")
	case cpus != 0 && cpus < 0.01:
		return invalidField("HostConfig.NanoCpus", "--cpus", "at least 0.01")
	case cpus > r.quota.MaxCPUs:
		return errorf(ErrQuota, "--cpus (HostConfig.NanoCpus): quota: at most %g CPUs per container for %s (asked %g)", r.quota.MaxCPUs, r.role, cpus)
	}
	switch {
	case hc.Memory < 0:
		return invalidField("HostConfig.Memory", "--memory", "must be positive")
	case hc.Memory != 0 && hc.Memory < minMemory:
		return invalidField("HostConfig.Memory", "--memory", "at least "+formatBytes(minMemory))
	case hc.Memory > r.quota.MaxMemory:
		return errorf(ErrQuota, "--memory (HostConfig.Memory): quota: at most %s memory per container for %s (asked %s)",
			formatBytes(r.quota.MaxMemory), r.role, formatBytes(hc.Memory))
	}
	if hc.MemorySwap > 0 && hc.MemorySwap > max(hc.Memory, r.quota.MaxMemory) {
		return errorf(ErrQuota, "--memory-swap (HostConfig.MemorySwap): no swap beyond the memory limit on this server")
	}
	if hc.ShmSize < 0 || hc.ShmSize > r.quota.MaxMemory {
		return errorf(ErrQuota, "--shm-size (HostConfig.ShmSize): at most the memory quota, %s", formatBytes(r.quota.MaxMemory))
	}
	p.cpus, p.memory = cpus, hc.Memory
	return nil
}

// checkMounts allows the user's own named volumes, anonymous volumes and tmpfs; never a
// host path, the Docker socket, a volume driver or another user's container's volumes.
func checkMounts(hc *container.HostConfig, cfg *container.Config, r createRules, p *createPlan) error {
	if hc.VolumeDriver != "" {
		return refused("HostConfig.VolumeDriver", "--volume-driver", "volume drivers are not allowed")
	}
	if len(hc.Binds)+len(hc.Mounts)+len(hc.Tmpfs) > maxAPIMounts {
		return invalidField("HostConfig.Mounts", "--mount", fmt.Sprintf("at most %d mounts", maxAPIMounts))
	}
	ts := mountTargets{home: r.home, taken: map[string]bool{r.home: true}}
	for _, b := range hc.Binds {
		if err := checkBind(b, ts, r, p); err != nil {
			return err
		}
	}
	for _, m := range hc.Mounts {
		if err := checkMount(m, ts, r, p); err != nil {
			return err
		}
	}
	if err := checkTmpfsFlags(hc.Tmpfs, ts); err != nil {
		return err
	}
	if err := checkVolumesFrom(hc.VolumesFrom, p); err != nil {
		return err
	}
	return checkAnonymousVolumes(cfg.Volumes, r.home)
}

// mountTargets are the places in a container that a create request's mounts land on: each
// at most once, never /, never the home (mounted into every container).
type mountTargets struct {
	home  string
	taken map[string]bool
}

// take claims target t for the mount in field (set by flag).
func (ts mountTargets) take(field, flag, t string) error {
	t = path.Clean(t)
	switch {
	case !path.IsAbs(t) || strings.ContainsAny(t, "\x00,") || len(t) > 4096:
		return invalidField(field, flag, fmt.Sprintf("invalid mount target %s", shown(t)))
	case t == "/":
		return invalidField(field, flag, "cannot mount over /")
	case t == ts.home:
		return invalidField(field, flag, fmt.Sprintf("%s is your home, mounted into every container", t))
	case ts.taken[t]:
		return invalidField(field, flag, fmt.Sprintf("%s is mounted twice", t))
	}
	ts.taken[t] = true
	return nil
}

// checkBind reads one HostConfig.Binds entry: one of the user's own named volumes, or, for a
// runner's job, the runner's Docker API socket directory.
func checkBind(b string, ts mountTargets, r createRules, p *createPlan) error {
	const field, flag = "HostConfig.Binds", "--volume"
	src, dst, opts := splitBind(b)
	if dst == "" {
		return invalidField(field, flag, fmt.Sprintf("invalid volume %s: use NAME:/path", shown(b)))
	}
	if src == RunnerSocketDirBind && r.runnerSocket {
		return checkSocketBind(dst, opts, ts, p)
	}
	if strings.HasPrefix(src, "/") || strings.HasPrefix(src, ".") || strings.HasPrefix(src, "~") {
		return hostPathRefusal(field, flag, src)
	}
	if err := ValidateVolumeName(src); err != nil {
		return invalidField(field, flag, err.Error())
	}
	if err := ts.take(field, flag, dst); err != nil {
		return err
	}
	v := volumeUse{name: src, target: path.Clean(dst)}
	if err := bindOptions(opts, &v); err != nil {
		return err
	}
	p.volumes = append(p.volumes, v)
	return nil
}

// checkSocketBind reads the bind of the runner's own socket directory, exactly as the runner
// sees it: the server mounts the owner's own API there, read-only (createFromAPI), nothing else.
func checkSocketBind(dst, opts string, ts mountTargets, p *createPlan) error {
	const field, flag = "HostConfig.Binds", "--volume"
	switch {
	case p.apiSocket != "":
		return invalidField(field, flag, "your Docker API socket is mounted once")
	case opts != "" && opts != "rw" && opts != "ro":
		return invalidField(field, flag, fmt.Sprintf("option %s is not allowed for your Docker API socket", shown(opts)))
	}
	if err := ts.take(field, flag, dst); err != nil {
		return err
	}
	p.apiSocket = path.Clean(dst)
	return nil
}

// bindOptions reads the comma-separated options of a volume bind into v.
func bindOptions(opts string, v *volumeUse) error {
	for o := range strings.SplitSeq(opts, ",") {
		switch o {
		case "", "rw", "z", "Z":
		case "ro":
			v.readOnly = true
		case "nocopy":
			v.noCopy = true
		default:
			return invalidField("HostConfig.Binds", "--volume", fmt.Sprintf("option %s is not allowed", shown(o)))
		}
	}
	return nil
}

// checkMount reads one HostConfig.Mounts entry: a named volume or a tmpfs.
func checkMount(m mount.Mount, ts mountTargets, r createRules, p *createPlan) error {
	switch m.Type {
	case mount.TypeBind:
		return hostPathRefusal("HostConfig.Mounts", "--mount", m.Source)
	case mount.TypeVolume:
		v, err := checkVolumeMount(m, ts)
		if err != nil {
			return err
		}
		p.volumes = append(p.volumes, v)
	case mount.TypeTmpfs:
		t, err := checkTmpfsMount(m, ts, r)
		if err != nil {
			return err
		}
		p.tmpfs = append(p.tmpfs, t)
	default:
		return refused("HostConfig.Mounts", "--mount", fmt.Sprintf("mounts of type %s are not allowed (volume and tmpfs are)", shown(string(m.Type))))
	}
	return nil
}

// checkVolumeMount reads a volume mount: one of the user's own named volumes, no driver.
func checkVolumeMount(m mount.Mount, ts mountTargets) (volumeUse, error) {
	const field, flag = "HostConfig.Mounts", "--mount"
	if m.Source == "" {
		return volumeUse{}, invalidField(field, flag, "a volume mount needs a volume name (anonymous: --volume /path)")
	}
	if err := ValidateVolumeName(m.Source); err != nil {
		return volumeUse{}, invalidField(field, flag, err.Error())
	}
	o := m.VolumeOptions
	if o != nil && (o.DriverConfig != nil || len(o.Labels) > 0) {
		return volumeUse{}, refused(field, flag, "volume drivers and options are not allowed")
	}
	if err := ts.take(field, flag, m.Target); err != nil {
		return volumeUse{}, err
	}
	v := volumeUse{name: m.Source, target: path.Clean(m.Target), readOnly: m.ReadOnly}
	if o == nil {
		return v, nil
	}
	v.noCopy = o.NoCopy
	if o.Subpath != "" && !validSubpath(o.Subpath) {
		return volumeUse{}, invalidField(field, flag, "invalid volume-subpath")
	}
	v.subpath = o.Subpath
	return v, nil
}

// validSubpath says whether s names a place inside a volume: relative, clean, not above it.
func validSubpath(s string) bool {
	return !path.IsAbs(s) && path.Clean(s) == s && !strings.HasPrefix(s, "..")
}

// checkTmpfsMount reads a tmpfs mount: size (within the memory quota) and mode, nothing else.
func checkTmpfsMount(m mount.Mount, ts mountTargets, r createRules) (mount.Mount, error) {
	const field, flag = "HostConfig.Mounts", "--mount"
	if m.Source != "" {
		return mount.Mount{}, invalidField(field, flag, "a tmpfs has no source")
	}
	if err := ts.take(field, flag, m.Target); err != nil {
		return mount.Mount{}, err
	}
	t := mount.Mount{Type: mount.TypeTmpfs, Target: path.Clean(m.Target), ReadOnly: m.ReadOnly}
	o := m.TmpfsOptions
	if o == nil {
		return t, nil
	}
	if len(o.Options) > 0 {
		return mount.Mount{}, refused(field, flag, "tmpfs options other than size and mode are not allowed")
	}
	if o.SizeBytes < 0 || o.SizeBytes > r.quota.MaxMemory {
		return mount.Mount{}, errorf(ErrQuota, "--mount (HostConfig.Mounts): a tmpfs of at most %s", formatBytes(r.quota.MaxMemory))
	}
	t.TmpfsOptions = &mount.TmpfsOptions{SizeBytes: o.SizeBytes, Mode: o.Mode}
	return t, nil
}

// checkTmpfsFlags reads HostConfig.Tmpfs (--tmpfs PATH[:OPTS]); the options go to the engine
// as they are, within a length.
func checkTmpfsFlags(tmpfs map[string]string, ts mountTargets) error {
	for t, opts := range tmpfs {
		if err := ts.take("HostConfig.Tmpfs", "--tmpfs", t); err != nil {
			return err
		}
		if strings.ContainsAny(opts, "\x00") || len(opts) > 256 {
			return invalidField("HostConfig.Tmpfs", "--tmpfs", "invalid options")
		}
	}
	return nil
}

// checkVolumesFrom reads --volumes-from; whose containers they are is checked at create (apiRefs).
func checkVolumesFrom(from []string, p *createPlan) error {
	for _, vf := range from {
		ref, mode, _ := strings.Cut(vf, ":")
		if mode != "" && mode != "ro" && mode != "rw" {
			return invalidField("HostConfig.VolumesFrom", "--volumes-from", fmt.Sprintf("invalid mode %s", shown(mode)))
		}
		if ref == "" {
			return invalidField("HostConfig.VolumesFrom", "--volumes-from", "no container given")
		}
		p.volumesFrom = append(p.volumesFrom, vf)
	}
	return nil
}

// checkAnonymousVolumes reads Config.Volumes (--volume /path): absolute paths, not the home.
func checkAnonymousVolumes(vols map[string]struct{}, home string) error {
	for v := range vols {
		if !path.IsAbs(v) || strings.ContainsAny(v, ":\x00") {
			return invalidField("Config.Volumes", "--volume", fmt.Sprintf("invalid anonymous volume path %s", shown(v)))
		}
		if path.Clean(v) == home {
			return invalidField("Config.Volumes", "--volume", fmt.Sprintf("%s is your home, mounted into every container", v))
		}
	}
	return nil
}

// hostPathRefusal is the line for a host path in a mount, the Docker socket named.
func hostPathRefusal(field, flag, src string) error {
	if strings.Contains(src, "docker.sock") || strings.Contains(src, "containerd") {
		return refused(field, flag, "the Docker socket is never mounted into a container")
	}
	return refused(field, flag, fmt.Sprintf("host path %s: paths of the server are not mounted into containers; "+
		"use a named volume (-v NAME:/path) or your home", shown(src)))
}

// splitBind cuts "src:dst[:opts]".
func splitBind(b string) (src, dst, opts string) {
	parts := strings.Split(b, ":")
	switch len(parts) {
	case 2:
		return parts[0], parts[1], ""
	case 3:
		return parts[0], parts[1], parts[2]
	}
	return "", "", ""
}

// checkNetwork allows the user's own network (the default), none, or the network of one of
// the user's own containers; never the host's or another network.
func checkNetwork(hc *container.HostConfig, nc *network.NetworkingConfig, p *createPlan) error {
	if err := checkNetworkMode(hc.NetworkMode, p); err != nil {
		return err
	}
	if err := checkPublish(hc); err != nil {
		return err
	}
	if len(hc.Links) > 0 {
		return refused("HostConfig.Links", "--link", "links are not available; your containers reach each other by name on your network")
	}
	if nc == nil {
		return nil
	}
	for name, ep := range nc.EndpointsConfig {
		if err := checkEndpoint(name, ep, hc.NetworkMode, p); err != nil {
			return err
		}
	}
	return nil
}

// checkNetworkMode reads --network into the plan.
func checkNetworkMode(m container.NetworkMode, p *createPlan) error {
	switch {
	case m == "" || m == "default" || m == network.NetworkBridge:
	case m == network.NetworkNone:
		p.netNone = true
	case m.IsHost():
		return refused("HostConfig.NetworkMode", "--network", "the host's network is not allowed: containers get your own network")
	case m.IsContainer():
		p.netFrom = m.ConnectedContainer()
		if p.netFrom == "" {
			return invalidField("HostConfig.NetworkMode", "--network", "no container given")
		}
	case m.IsUserDefined() && !strings.Contains(string(m), ":"):
		// One of the user's own networks, or nothing (looked up at create).
		p.network = string(m)
	default:
		return refused("HostConfig.NetworkMode", "--network", fmt.Sprintf("network %s is not available: containers get your own networks", shown(string(m))))
	}
	return nil
}

// checkPublish refuses published ports: nothing listens on the server for a container.
func checkPublish(hc *container.HostConfig) error {
	const why = "ports are not published on the server; reach them with ssh -L PORT:NAME:PORT"
	for _, bs := range hc.PortBindings {
		if len(bs) > 0 {
			return refused("HostConfig.PortBindings", "--publish", why)
		}
	}
	if hc.PublishAllPorts {
		return refused("HostConfig.PublishAllPorts", "--publish-all", why)
	}
	return nil
}

// checkEndpoint reads one NetworkingConfig endpoint: the container's own network only, no
// addresses or links; its aliases go into the plan.
func checkEndpoint(name string, ep *network.EndpointSettings, mode container.NetworkMode, p *createPlan) error {
	const field = "NetworkingConfig.EndpointsConfig"
	if name != "" && name != "default" && name != network.NetworkBridge && name != string(mode) {
		return refused(field, "--network", fmt.Sprintf("network %s is not available: containers get your own network", shown(name)))
	}
	if ep == nil {
		return nil
	}
	if ep.IPAMConfig != nil && (ep.IPAMConfig.IPv4Address.IsValid() || ep.IPAMConfig.IPv6Address.IsValid()) {
		return refused(field, "--ip", "addresses are the server's to give")
	}
	if len(ep.Links) > 0 {
		return refused(field, "--link", "links are not available")
	}
	for _, a := range ep.Aliases {
		if !nameRE.MatchString(a) {
			return invalidField(field, "--network-alias", fmt.Sprintf("invalid alias %s", shown(a)))
		}
		if len(p.aliases) < maxAPIAliases && !slices.Contains(p.aliases, a) {
			p.aliases = append(p.aliases, a)
		}
	}
	return nil
}

// checkMisc copies the remaining harmless settings and refuses the rest.
func checkMisc(hc *container.HostConfig, p *createPlan) error {
	if !slices.Contains(logDrivers, hc.LogConfig.Type) {
		return refused("HostConfig.LogConfig", "--log-driver", fmt.Sprintf("log driver %s is not allowed (json-file and local are)", shown(hc.LogConfig.Type)))
	}
	for k := range hc.LogConfig.Config {
		if !slices.Contains(logOptions, k) {
			return refused("HostConfig.LogConfig", "--log-opt", fmt.Sprintf("log option %s is not allowed", shown(k)))
		}
	}
	if !slices.Contains(restartNames, hc.RestartPolicy.Name) {
		return invalidField("HostConfig.RestartPolicy", "--restart", fmt.Sprintf("invalid restart policy %s", shown(string(hc.RestartPolicy.Name))))
	}
	if hc.RestartPolicy.Name == container.RestartPolicyAlways || hc.RestartPolicy.Name == container.RestartPolicyUnlessStopped {
		return refused("HostConfig.RestartPolicy", "--restart", fmt.Sprintf("%s would start the container again whenever the engine "+
			"restarts, past the running quota; use on-failure", hc.RestartPolicy.Name))
	}
	if hc.RestartPolicy.MaximumRetryCount < 0 || hc.RestartPolicy.MaximumRetryCount > 100 {
		return invalidField("HostConfig.RestartPolicy", "--restart", "at most 100 retries")
	}
	if hc.Isolation != "" && hc.Isolation != container.IsolationDefault {
		return refused("HostConfig.Isolation", "--isolation", "only the default isolation is available")
	}
	for _, h := range hc.ExtraHosts {
		if len(h) > 512 || strings.ContainsAny(h, "\x00\n ") {
			return invalidField("HostConfig.ExtraHosts", "--add-host", fmt.Sprintf("invalid host %s", shown(h)))
		}
	}
	for _, g := range hc.GroupAdd {
		if g == "" || len(g) > 64 || strings.ContainsAny(g, "\x00\n :") {
			return invalidField("HostConfig.GroupAdd", "--group-add", fmt.Sprintf("invalid group %s", shown(g)))
		}
	}
	p.host = container.HostConfig{
		LogConfig:      container.LogConfig{Type: hc.LogConfig.Type, Config: maps.Clone(hc.LogConfig.Config)},
		RestartPolicy:  hc.RestartPolicy,
		AutoRemove:     hc.AutoRemove,
		ConsoleSize:    hc.ConsoleSize,
		DNS:            slices.Clone(hc.DNS),
		DNSOptions:     slices.Clone(hc.DNSOptions),
		DNSSearch:      slices.Clone(hc.DNSSearch),
		ExtraHosts:     slices.Clone(hc.ExtraHosts),
		GroupAdd:       slices.Clone(hc.GroupAdd),
		OomScoreAdj:    hc.OomScoreAdj,
		ReadonlyRootfs: hc.ReadonlyRootfs,
		Tmpfs:          maps.Clone(hc.Tmpfs),
		ShmSize:        hc.ShmSize,
		Umask:          hc.Umask,
	}
	p.host.Mounts = slices.Clone(p.tmpfs)
	return nil
}

// volumeNameRE are the names of users' own volumes: as container names, a little longer.
var volumeNameRE = regexp.MustCompile(`^[a-zA-Z0-9]([a-zA-Z0-9_.-]{0,62}[a-zA-Z0-9])?$`)

// ValidateVolumeName checks the name of a user's own volume as users type it.
func ValidateVolumeName(name string) error {
	if !volumeNameRE.MatchString(name) {
		return errorf(ErrInvalid, "invalid volume name %s: use 1-64 letters, digits, '_', '.' and '-', starting and ending with a letter or digit", shown(name))
	}
	return nil
}

// decodeCreate reads a create request body.
func decodeCreate(body []byte) (container.CreateRequest, error) {
	var req container.CreateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return req, errorf(ErrInvalid, "the create request is not valid JSON")
	}
	return req, nil
}

// APICreated is what a create through the Docker API made.
type APICreated struct {
	ID   string
	Name string
}

// CreateFromAPI creates (not starts) a container for the identity from a Docker API create
// request body: checked field by field (checkCreate), counted against the same quota as
// run, then made the one way every container is made. name is the name the user asked for
// ("" to have one made up). The request's references to other containers (--volumes-from,
// --network container:) are looked up among the caller's own containers only; anything
// else is "no such container". Audited as "create".
func (s *Service) CreateFromAPI(ctx context.Context, id backend.Identity, name string, body []byte) (APICreated, error) {
	c, err := s.createFromAPI(ctx, id, name, body)
	target := name
	if c.Name != "" {
		target = c.Name
	}
	s.record(id, "create", id.User+"/"+shown(target), err)
	return c, err
}

func (s *Service) createFromAPI(ctx context.Context, id backend.Identity, name string, body []byte) (APICreated, error) {
	ask, err := s.checkAPICreate(id, name, body)
	if err != nil {
		return APICreated{}, err
	}
	name, p := ask.name, ask.plan

	lock := s.userLock(id.User)
	lock.Lock()
	defer lock.Unlock()
	mine, err := s.ownContainers(ctx, id.User)
	if err != nil {
		return APICreated{}, err
	}
	// The same room as every create: a free name, the role's container quota. The running
	// quota is the start's to check.
	names, err := s.createRoom(id, mine, name, false)
	if err != nil {
		return APICreated{}, err
	}
	refs, err := s.apiRefs(ctx, id.User, mine, p)
	if err != nil {
		return APICreated{}, err
	}
	if err := s.imageHere(ctx, ask.image); err != nil {
		return APICreated{}, err
	}
	if name == "" {
		name = generateName(ask.image, names)
	}
	hc, data, err := s.apiMounts(ctx, id, p, ask.req, refs.fromMounts)
	if err != nil {
		return APICreated{}, err
	}
	opts := client.ContainerCreateOptions{Config: &p.config, HostConfig: &hc}
	if opts.NetworkingConfig, err = s.apiNetwork(ctx, id.User, name, p, refs, &opts); err != nil {
		return APICreated{}, err
	}
	labels := s.apiLabels(id, name, p, data, &hc)
	unlock, err := s.allocGPUs(ctx, ask.gpus, &hc, &labels)
	if err != nil {
		return APICreated{}, err
	}
	defer unlock()
	created, err := s.createContainer(ctx, opts, labels, ask.lim, s.cfg.containerName(id.User, name))
	if err != nil {
		if e := noNvidiaRuntime(err); e != nil {
			return APICreated{}, e
		}
		return APICreated{}, err
	}
	return APICreated{ID: created, Name: name}, nil
}

// apiCreateName is the name an API create asked for ("/box" as the engine takes it): a
// runner's job gets its container's name made from it; "" is "make one up".
func apiCreateName(id backend.Identity, name string) (string, error) {
	name = strings.TrimPrefix(name, "/")
	if id.KeySource == backend.KeySourceRunner {
		name = runnerJobName(name)
	}
	if name != "" {
		if err := ValidateName(name); err != nil {
			return "", err
		}
	}
	return name, nil
}

// apiAsk is a create request read and checked: all that is decided before the engine is
// asked anything.
type apiAsk struct {
	name  string // "": make one up
	req   container.CreateRequest
	plan  createPlan
	image string
	lim   limits
	gpus  gpuAsk
}

// checkAPICreate reads a create request body for id under the name asked for and checks it
// against id's rules (checkCreate) and quota.
func (s *Service) checkAPICreate(id backend.Identity, name string, body []byte) (apiAsk, error) {
	if err := checkIdentity(id); err != nil {
		return apiAsk{}, err
	}
	name, err := apiCreateName(id, name)
	if err != nil {
		return apiAsk{}, err
	}
	req, err := decodeCreate(body)
	if err != nil {
		return apiAsk{}, err
	}
	p, err := checkCreate(req, s.createRules(id))
	if err != nil {
		return apiAsk{}, err
	}
	image, err := ParseImage(p.config.Image)
	if err != nil {
		return apiAsk{}, err
	}
	q := s.cfg.quota(id.Role)
	gpus, err := askGPUs(p.gpus, q, roleWord(id.Role), s.gpuInventory)
	if err != nil {
		return apiAsk{}, err
	}
	return apiAsk{name: name, req: req, plan: p, image: image, lim: apiLimits(p, &s.cfg, q), gpus: gpus}, nil
}

// apiLimits are the CPU and memory limits of a create: those asked for (checkCreate held
// them to the quota), else the configured defaults, never above the quota.
func apiLimits(p createPlan, cfg *Config, q Quota) limits {
	lim := limits{cpus: p.cpus, memory: p.memory}
	if lim.cpus == 0 {
		lim.cpus = min(cfg.DefaultCPUs, q.MaxCPUs)
	}
	if lim.memory == 0 {
		lim.memory = min(cfg.DefaultMemory, q.MaxMemory)
	}
	return lim
}

// apiRefs are what a create request names besides its image, found among the user's own:
// the volumes of containers (--volumes-from), a container whose network it joins (--network
// container:X), a network of theirs (--network NET).
type apiRefs struct {
	fromMounts []mount.Mount
	netFromID  string
	onNet      userNet
}

// apiRefs looks up the containers and network the plan names, among user's own (mine)
// only: anything else reads as no such container or network.
func (s *Service) apiRefs(ctx context.Context, user string, mine []container.Summary, p createPlan) (apiRefs, error) {
	var refs apiRefs
	for _, vf := range p.volumesFrom {
		ref, mode, _ := strings.Cut(vf, ":")
		c, err := ownAmong(mine, "HostConfig.VolumesFrom", "--volumes-from", ref)
		if err != nil {
			return refs, err
		}
		ms, err := s.volumesOf(ctx, user, c.ID, mode == "ro")
		if err != nil {
			return refs, err
		}
		refs.fromMounts = append(refs.fromMounts, ms...)
	}
	if p.netFrom != "" {
		c, err := ownAmong(mine, "HostConfig.NetworkMode", "--network", p.netFrom)
		if err != nil {
			return refs, err
		}
		refs.netFromID = c.ID
	}
	if p.network != "" {
		var err error
		refs.onNet, err = s.ownNetwork(ctx, user, p.network)
		if errors.Is(err, ErrNotFound) {
			// Not a 404, which the docker CLI would take for a missing image and pull.
			return refs, invalidField("HostConfig.NetworkMode", "--network", err.Error())
		}
		if err != nil {
			return refs, err
		}
	}
	return refs, nil
}

// ownAmong is the container ref names among the user's own (mine), or the refusal of the
// field that named it.
func ownAmong(mine []container.Summary, field, flag, ref string) (container.Summary, error) {
	c, ok, err := resolveAmong(mine, ref)
	if err != nil {
		return c, invalidField(field, flag, err.Error())
	}
	if !ok {
		return c, invalidField(field, flag, "no such container: "+shown(ref))
	}
	return c, nil
}

// imageHere checks the image is on the server; a missing one is said as the engine says it,
// so the docker CLI pulls (through the policy) and tries again.
func (s *Service) imageHere(ctx context.Context, image string) error {
	_, err := s.localImage(ctx, image)
	if errors.Is(err, ErrNoImage) {
		return errorf(ErrNoImage, "No such image: %s", image)
	}
	return err
}

// apiMounts is the plan's host config with its mounts: the user's home first, then the
// plan's tmpfs, the user's own named volumes (made when missing), and the volumes of
// --volumes-from where nothing else is mounted; with the shared data the server places
// (which nothing of the request may cover).
func (s *Service) apiMounts(ctx context.Context, id backend.Identity, p createPlan, req container.CreateRequest, fromMounts []mount.Mount) (container.HostConfig, grant, error) {
	hc := p.host
	home, err := s.ensureHome(ctx, id.User)
	if err != nil {
		return hc, grant{}, err
	}
	data, err := s.grantFor(ctx, id)
	if err != nil {
		return hc, data, err
	}
	if err := checkGrantTargets(p, req, data); err != nil {
		return hc, data, err
	}
	if err := checkGrantRestart(p.host.RestartPolicy, data); err != nil {
		return hc, data, err
	}
	hc.Mounts = append([]mount.Mount{home}, hc.Mounts...)
	for _, v := range p.volumes {
		engineName, err := s.ensureUserVolume(ctx, id.User, v.name)
		if err != nil {
			return hc, data, err
		}
		hc.Mounts = append(hc.Mounts, volumeMount(engineName, v))
	}
	hc.Mounts = addFromMounts(hc.Mounts, fromMounts, data.mounts)
	return hc, data, nil
}

// volumeMount is the mount of a user's named volume, engineName as the engine knows it.
func volumeMount(engineName string, v volumeUse) mount.Mount {
	m := mount.Mount{Type: mount.TypeVolume, Source: engineName, Target: v.target, ReadOnly: v.readOnly}
	if v.noCopy || v.subpath != "" {
		m.VolumeOptions = &mount.VolumeOptions{NoCopy: v.noCopy, Subpath: v.subpath}
	}
	return m
}

// addFromMounts adds the volumes of --volumes-from to mounts, each only where neither
// mounts nor the server's shared data (placed) already have something at its target.
func addFromMounts(mounts, from, placed []mount.Mount) []mount.Mount {
	for _, m := range from {
		at := func(x mount.Mount) bool { return x.Target == m.Target }
		if !slices.ContainsFunc(mounts, at) && !slices.ContainsFunc(placed, at) {
			mounts = append(mounts, m)
		}
	}
	return mounts
}

// apiNetwork sets the network of the container opts makes and returns its endpoint: the
// network of one of the user's containers (whose host name and ports it then shares), none,
// a network of the user's, or their default one (made when missing). On a network the
// container answers to its name and the aliases asked for.
func (s *Service) apiNetwork(ctx context.Context, user, name string, p createPlan, refs apiRefs, opts *client.ContainerCreateOptions) (*network.NetworkingConfig, error) {
	hc := opts.HostConfig
	switch {
	case refs.netFromID != "":
		hc.NetworkMode = container.NetworkMode("container:" + refs.netFromID)
		opts.Config.Hostname, opts.Config.Domainname, opts.Config.ExposedPorts = "", "", nil
		return nil, nil
	case p.netNone:
		hc.NetworkMode = network.NetworkNone
		return nil, nil
	}
	netID, netName := refs.onNet.summary.ID, refs.onNet.summary.Name
	if p.network == "" {
		netName = s.cfg.networkName(user)
		var err error
		if netID, err = s.ensureNetwork(ctx, user); err != nil {
			return nil, err
		}
	}
	hc.NetworkMode = container.NetworkMode(netID)
	return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
		netName: {NetworkID: netID, Aliases: namesOnNetwork(name, p.aliases)},
	}}, nil
}

// namesOnNetwork are a container's names on its network: its name first, then the
// aliases asked for, without it again.
func namesOnNetwork(name string, asked []string) []string {
	return append([]string{name}, slices.DeleteFunc(slices.Clone(asked), func(a string) bool { return a == name })...)
}

// apiLabels are the server's labels of a container made through the API, from the
// identity, never the request. A runner's job that asked for its Docker API socket gets
// the socket directory of the runner the request came through, mounted read-only in hc
// where the request put it (a socket in it still answers; nothing can be added, removed or
// replaced there).
func (s *Service) apiLabels(id backend.Identity, name string, p createPlan, data grant, hc *container.HostConfig) objectLabels {
	labels := objectLabels{kind: KindContainer, owner: id.User, name: name, extra: p.labels, data: data, runner: runnerOf(id)}
	if p.apiSocket != "" {
		labels.apiSocket = s.cfg.RunnerSocketDir(id.User, labels.runner)
		hc.Mounts = append(hc.Mounts, mount.Mount{Type: mount.TypeBind, Source: labels.apiSocket, Target: p.apiSocket, ReadOnly: true,
			BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate}})
	}
	return labels
}

// allocGPUs chooses the GPUs asked for, puts them in hc and labels, and holds the server's
// GPU choice until the returned func is called (after the create), so two creates never
// take the same free GPU. Without GPUs it does nothing. While requests wait for GPUs, an
// API create does not jump the line.
func (s *Service) allocGPUs(ctx context.Context, gpus gpuAsk, hc *container.HostConfig, labels *objectLabels) (func(), error) {
	if gpus.nGPUs == 0 {
		return func() {}, nil
	}
	if s.othersWait() != nil {
		return nil, errorf(ErrConflict, "requests wait for GPUs; join them over ssh with run --gpus N --wait")
	}
	s.gpuAlloc.Lock()
	taken, err := s.takenGPUs(ctx)
	if err != nil {
		s.gpuAlloc.Unlock()
		return nil, err
	}
	chosen, err := ChooseGPUs(gpus.inv, taken, gpus.gpuCount, gpus.gpuIndices, s.cfg.GPUPolicy)
	if err != nil {
		s.gpuAlloc.Unlock()
		return nil, err
	}
	req, uuids := gpuDeviceRequest(chosen)
	hc.Resources.DeviceRequests = []container.DeviceRequest{req}
	labels.gpus, labels.gpuIndices = uuids, indicesLabel(chosen)
	return s.gpuAlloc.Unlock, nil
}

// checkGrantTargets refuses a request that mounts something of its own where the server
// places a dataset or a group workspace.
func checkGrantTargets(p createPlan, req container.CreateRequest, data grant) error {
	placed := map[string]bool{}
	for _, m := range data.mounts {
		placed[path.Clean(m.Target)] = true
	}
	var asked []string
	for _, v := range p.volumes {
		asked = append(asked, v.target)
	}
	for _, t := range p.tmpfs {
		asked = append(asked, t.Target)
	}
	if req.HostConfig != nil {
		for t := range req.HostConfig.Tmpfs {
			asked = append(asked, t)
		}
	}
	if req.Config != nil {
		for v := range req.Config.Volumes {
			asked = append(asked, v)
		}
	}
	for _, t := range asked {
		if placed[path.Clean(t)] {
			return invalidField("HostConfig.Mounts", "--volume", fmt.Sprintf("%s is where the server mounts shared data (datasets, group workspaces)", shown(path.Clean(t))))
		}
	}
	return nil
}

// checkGrantRestart refuses a restart policy for a container that mounts a group
// workspace: the engine would start it again without asking whether its owner is still a
// member, and membership is checked on every start.
func checkGrantRestart(rp container.RestartPolicy, data grant) error {
	if len(data.groups) == 0 || rp.Name == "" || rp.Name == container.RestartPolicyDisabled {
		return nil
	}
	return refused("HostConfig.RestartPolicy", "--restart", fmt.Sprintf("a container with the workspace of group %s is started only through "+
		"the server, which checks your membership each time; use --restart no", strings.Join(data.groups, ", ")))
}

// resolveAmong finds ref among a user's containers: their name for it, the full engine ID,
// or an unambiguous prefix of the ID (as the docker CLI writes them). It never looks
// anywhere else, so another user's name, ID or prefix finds nothing.
func resolveAmong(mine []container.Summary, ref string) (container.Summary, bool, error) {
	ref = strings.TrimPrefix(ref, "/")
	if ref == "" {
		return container.Summary{}, false, nil
	}
	for _, c := range mine {
		if c.ID == ref || c.Labels[LabelName] == ref {
			return c, true, nil
		}
	}
	if !hexRE.MatchString(ref) {
		return container.Summary{}, false, nil
	}
	var hits []container.Summary
	for _, c := range mine {
		if strings.HasPrefix(c.ID, ref) {
			hits = append(hits, c)
		}
	}
	switch len(hits) {
	case 0:
		return container.Summary{}, false, nil
	case 1:
		return hits[0], true, nil
	}
	return container.Summary{}, false, fmt.Errorf("more than one of your containers has an ID starting with %s", ref)
}

var hexRE = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

// volumesOf are the volume mounts of one of the user's containers that are the user's
// own (their home, their named volumes), for --volumes-from.
func (s *Service) volumesOf(ctx context.Context, user, containerID string, readOnly bool) ([]mount.Mount, error) {
	res, err := s.api.ContainerInspect(ctx, containerID, client.ContainerInspectOptions{})
	if err != nil {
		return nil, engineErr("inspect container for --volumes-from", err)
	}
	var out []mount.Mount
	for _, m := range res.Container.Mounts {
		if m.Type != mount.TypeVolume || m.Name == s.cfg.volumeName(user) {
			continue
		}
		if _, ok := s.userVolumeName(user, m.Name); !ok {
			continue
		}
		out = append(out, mount.Mount{Type: mount.TypeVolume, Source: m.Name, Target: m.Destination, ReadOnly: readOnly || !m.RW})
	}
	return out, nil
}

// CreateContainer is POST /containers/create (CreateFromAPI), answered as the engine does.
func (a *API) CreateContainer(ctx context.Context, id backend.Identity, name string, body []byte) ([]byte, error) {
	c, err := a.svc.CreateFromAPI(ctx, id, name, body)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		ID       string `json:"Id"`
		Warnings []string
	}{c.ID, []string{}})
}
