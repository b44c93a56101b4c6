package docker

import (
	"errors"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/docker/go-units"
	"github.com/moby/moby/api/types/container"

	"whalemountain/backend"
	"whalemountain/backend/audit"
)

// Service lends containers on one Docker Engine. Every method authorises the Identity it is
// given. It is safe for concurrent use.
type Service struct {
	cfg   Config
	api   engine
	audit *audit.Log
	calls atomic.Int64

	notices *noticeStore // notices to users and the stops done on purpose (notices.go)
	presets []Preset     // the course presets (presets.go); set before serving

	locksMu sync.Mutex
	locks   map[string]*sync.Mutex // per user: quota check and create happen as one

	gpuMu    sync.Mutex   // guards gpuInv
	gpuInv   GPUInventory // nil: no GPUs
	gpuAlloc sync.Mutex   // server-wide: GPU choice and create happen as one

	groupDir GroupDirectory // who belongs to which group; nil: nobody gets group data
	shared   sharedState    // what is known about shared data (shared.go)
	wsfs     *workspaceFS   // file systems of sized group workspaces; nil: none (workspacefs.go)

	live  live
	usage cgroupUsage // where the engine is local, usage comes from the cgroup files

	waiting   waitList                                 // the GPU waiting list (waiting.go)
	fairShare func(since time.Time) map[string]float64 // GPU-hours held per user since a time
	idle      culler                                   // idle culling (cull.go)
	now       func() time.Time
}

// New builds a Service for cfg, recording mutating actions in log (which may be nil). It
// does not contact Docker: call Watch to start the live snapshot.
func New(cfg Config, log *audit.Log) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := newService(cfg, nil, log)
	cli, err := newClient(cfg.Host, &s.calls, cfg.StopTimeout+answerWait)
	if err != nil {
		return nil, engineErr("docker client", err)
	}
	s.api = cli
	return s, nil
}

func newService(cfg Config, api engine, log *audit.Log) *Service {
	s := &Service{cfg: cfg, api: api, audit: log, locks: map[string]*sync.Mutex{}, usage: cgroupUsage{root: "/sys/fs/cgroup"}}
	s.live.init()
	s.notices = newNoticeStore()
	s.now = time.Now
	s.waiting.warned = map[string]time.Time{}
	s.idle.keeps = map[string]Keep{}
	s.idle.state = map[string]*idleState{}
	s.idle.roles = map[string]backend.Role{}
	return s
}

// APICalls reports how many HTTP requests this Service has made to the Docker Engine.
func (s *Service) APICalls() int64 { return s.calls.Load() }

// Config returns (a copy of) the policy the Service applies.
func (s *Service) Config() Config {
	c := s.cfg
	c.Labels = maps.Clone(c.Labels)
	c.Capabilities = slices.Clone(c.Capabilities)
	return c
}

// userLock returns the lock that serialises quota checks and creation for one user.
func (s *Service) userLock(user string) *sync.Mutex {
	s.locksMu.Lock()
	defer s.locksMu.Unlock()
	m, ok := s.locks[user]
	if !ok {
		m = &sync.Mutex{}
		s.locks[user] = m
	}
	return m
}

// admit refuses what could not be audited: while the audit log cannot be appended to (its
// disk full), an action is refused rather than done unrecorded.
func (s *Service) admit() error {
	if err := s.audit.Ready(); err != nil {
		return errorf(ErrUnavailable, "refused: %s; tell an administrator", err)
	}
	return nil
}

// record writes one audit line for a mutating action.
func (s *Service) record(id backend.Identity, action, target string, err error) {
	s.recordNote(id, action, target, err, "")
}

// recordNote is record with the reason the user gave for the action.
func (s *Service) recordNote(id backend.Identity, action, target string, err error, note string) {
	result, reason := audit.OK, ""
	if err != nil {
		result, reason = audit.Failed, err.Error()
		for _, k := range []error{ErrNotFound, ErrPermission, ErrInvalid, ErrQuota, ErrConflict, ErrUnsupported, ErrNoImage} {
			if errors.Is(err, k) {
				result = audit.Refused
			}
		}
	}
	_ = s.audit.ActionNote(id, action, target, result, reason, note)
}

// Container is one managed container as users see it.
type Container struct {
	Name      string    `json:"name"`  // the user's name for it
	Owner     string    `json:"owner"` // the user it belongs to
	Image     string    `json:"image"`
	State     string    `json:"state"` // created, running, paused, restarting, removing, exited, dead
	ExitCode  int       `json:"exit_code"`
	Status    string    `json:"status"` // "Up 2 hours", "Exited (0) 3 minutes ago"
	Created   time.Time `json:"created"`
	StartedAt time.Time `json:"started_at,omitzero"`

	// Stopped is set when the container is exited because the server stopped it on purpose
	// (its exit code is then only the signal that stopped it); nil for a crash or an exit.
	Stopped *StopInfo `json:"stopped,omitempty"`

	// GPUs are the GPUs allocated to it as shown to users: "0,2" (indices), "" for none.
	GPUs string `json:"gpus,omitempty"`

	// Preset is the course preset it was made from, "" for none.
	Preset string `json:"preset,omitempty"`

	// Runner is the user's runner that made it for a CI job, "" for none.
	Runner string `json:"runner,omitempty"`

	CPUs     float64 `json:"cpus,omitempty"`      // CPU limit
	MemLimit int64   `json:"mem_limit,omitempty"` // memory limit, bytes

	// Usage of a running container, sampled for every one every two seconds.
	CPUPercent float64   `json:"cpu_percent,omitempty"` // 100 = one CPU busy
	MemUsage   int64     `json:"mem_usage,omitempty"`   // bytes, page cache excluded
	StatsAt    time.Time `json:"stats_at,omitzero"`     // zero: no sample

	Labels map[string]string `json:"labels,omitempty"`

	// ID is the engine's ID, for other backend code (exec, stats); users never type it.
	ID string `json:"-"`
}

// Ref is how a TA names the container: "owner/name".
func (c Container) Ref() string { return c.Owner + "/" + c.Name }

// Details is the safe subset of an inspect: nothing about the host, nothing of other users.
type Details struct {
	Container
	FinishedAt time.Time `json:"finished_at,omitzero"`
	Error      string    `json:"error,omitempty"` // why it failed to start, if it did
	OOMKilled  bool      `json:"oom_killed,omitempty"`
	PidsLimit  int64     `json:"pids_limit,omitempty"`
	Cmd        []string  `json:"cmd,omitempty"`
	Entrypoint []string  `json:"entrypoint,omitempty"`
	EnvNames   []string  `json:"env_names,omitempty"` // names only: values may be secrets
	Home       string    `json:"home"`                // where the persistent home is, inside the container
	WorkingDir string    `json:"working_dir,omitempty"`
	Network    string    `json:"network,omitempty"`
	IPAddress  string    `json:"ip_address,omitempty"` // on the user's own network
	// ExposedPorts are the ports the image and the container say they listen on, such as
	// "8888/tcp", in numeric order: what `ssh -L PORT:NAME:PORT` can reach.
	ExposedPorts []string `json:"exposed_ports,omitempty"`
}

var exitedRE = regexp.MustCompile(`^Exited \((-?\d+)\)`)

func fromSummary(sum container.Summary) Container {
	c := Container{
		ID:      sum.ID,
		Name:    sum.Labels[LabelName],
		Owner:   sum.Labels[LabelOwner],
		Image:   sum.Image,
		State:   string(sum.State),
		Status:  sum.Status,
		Created: time.Unix(sum.Created, 0).UTC(),
		Labels:  maps.Clone(sum.Labels),
		GPUs:    gpusShown(sum.Labels),
		Preset:  sum.Labels[LabelPreset],
		Runner:  sum.Labels[LabelRunner],
	}
	if m := exitedRE.FindStringSubmatch(sum.Status); m != nil {
		c.ExitCode, _ = strconv.Atoi(m[1])
	}
	return c
}

// applyInspect is applyInspect with the name the container's user knows it by (userName).
func (s *Service) applyInspect(c *Container, in container.InspectResponse) {
	applyInspect(c, in)
	if in.Config != nil {
		c.Name = s.cfg.userName(in.Config.Labels, in.Name)
	}
}

// applyInspect fills what only an inspect tells: exact state, exit code, start time, limits.
func applyInspect(c *Container, in container.InspectResponse) {
	if c.ID == "" {
		c.ID = in.ID
	}
	if in.Config != nil {
		if c.Labels == nil {
			c.Labels = maps.Clone(in.Config.Labels)
		}
		c.Name, c.Owner = in.Config.Labels[LabelName], in.Config.Labels[LabelOwner]
		c.GPUs = gpusShown(in.Config.Labels)
		c.Preset = in.Config.Labels[LabelPreset]
		c.Runner = in.Config.Labels[LabelRunner]
		c.Image = in.Config.Image
	}
	if t := parseTime(in.Created); !t.IsZero() {
		c.Created = t
	}
	if in.State != nil {
		c.State = string(in.State.Status)
		c.ExitCode = in.State.ExitCode
		c.StartedAt = parseTime(in.State.StartedAt)
		if c.Status == "" {
			c.Status = statusText(in.State)
		}
	}
	if in.HostConfig != nil {
		c.CPUs = float64(in.HostConfig.NanoCPUs) / 1e9
		c.MemLimit = in.HostConfig.Memory
	}
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() <= 1 {
		return time.Time{}
	}
	return t
}

// statusText words a state the way the engine's list does.
func statusText(st *container.State) string {
	switch st.Status {
	case container.StateRunning:
		return "Up " + units.HumanDuration(time.Since(parseTime(st.StartedAt)))
	case container.StateExited:
		s := "Exited (" + strconv.Itoa(st.ExitCode) + ")"
		if t := parseTime(st.FinishedAt); !t.IsZero() {
			s += " " + units.HumanDuration(time.Since(t)) + " ago"
		}
		return s
	case container.StateCreated:
		return "Created"
	default:
		return string(st.Status)
	}
}
