// Package runner is the room of users' personal GitLab runners: one gitlab-runner container
// per user and project, made from the pinned image in the config, with a config.toml the
// server writes (the token the user gave, checked with GitLab first, stored 0600 and shown
// to nobody again) and a unix socket, in a directory of its own bound into the runner by
// the server, that serves the owner's own Docker API — so the docker executor's job containers are the owner's
// containers: labelled, hardened, on their network and inside their quota, like every
// container made through that door. The runner never sees the engine's socket.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/audit"
	"whalemountain/backend/docker"
	"whalemountain/backend/gitlab"
	"whalemountain/backend/kube"
)

// Errors a caller may tell apart (errors.Is); every message is one line for the user.
var (
	ErrInvalid     = errors.New("invalid input")
	ErrNotFound    = errors.New("no such runner")
	ErrQuota       = errors.New("quota exceeded")
	ErrPermission  = errors.New("permission denied")
	ErrUnavailable = errors.New("not available")
)

// GitLab is what the service asks GitLab with a runner's own token.
type GitLab interface {
	VerifyRunner(ctx context.Context, token string) (int64, error) // the runner's ID (0: GitLab did not say)
	DeleteRunner(ctx context.Context, token string) error
}

// Admin is what the service asks GitLab with the server's own token; nil when the server
// has none allowed to manage runners.
type Admin interface {
	ProjectAccessLevel(ctx context.Context, project, username string) (int, error)
	CreateProjectRunner(ctx context.Context, project, description string) (gitlab.ProjectRunner, error)
	ResetRunnerToken(ctx context.Context, id int64) (string, error)
	DeleteRunnerByID(ctx context.Context, id int64) error
}

// Containers makes and finds runner containers (backend/docker's Service).
type Containers interface {
	CreateRunner(ctx context.Context, spec docker.RunnerSpec) (docker.RunnerContainer, error)
	Runners(ctx context.Context, owner string) ([]docker.RunnerContainer, error)
	RemoveRunner(ctx context.Context, owner, name string) error
	RestartRunner(ctx context.Context, owner, name string) error
	StopRunner(ctx context.Context, owner, name string) error
	RunnerLogs(ctx context.Context, owner, name string, opts docker.LogOptions) (io.ReadCloser, error)
}

// Pods runs runners in their owners' namespaces with gitlab-runner's kubernetes executor
// (backend/kube's Service); nil when the server lends no pods.
type Pods interface {
	CreateRunner(ctx context.Context, spec kube.RunnerSpec) (kube.RunnerPod, error)
	Runners(ctx context.Context, owner string) ([]kube.RunnerPod, error)
	RemoveRunner(ctx context.Context, owner, name string) error
	StopRunner(ctx context.Context, owner, name string) error
	RunnerLogs(ctx context.Context, owner, name string, opts kube.LogOptions) (io.ReadCloser, error)
	RunnerNamespace(owner string) string
}

// Executors a runner runs with: its jobs are containers made through its owner's Docker API,
// or pods in its owner's namespace.
const (
	ExecutorDocker     = "docker"
	ExecutorKubernetes = "kubernetes"
)

// ServeFunc serves one connection of a runner's socket as the Docker API of id (the
// runner's owner); it returns when the connection ends.
type ServeFunc func(ctx context.Context, id backend.Identity, conn net.Conn)

// Runner is one runner as a user sees it.
type Runner struct {
	Owner    string `json:"owner"`
	Name     string `json:"name"`
	Project  string `json:"project"`
	State    string `json:"state"`  // running, restarting, exited, created, missing
	Status   string `json:"status"` // the engine's words
	RunnerID int64  `json:"gitlab_runner_id,omitempty"`
	Managed  bool   `json:"created_by_server"` // made with runner create: rotate and rm reach GitLab
	// Executor is ExecutorDocker or ExecutorKubernetes; Namespace is where a kubernetes
	// runner and its jobs' pods run.
	Executor  string `json:"executor"`
	Namespace string `json:"namespace,omitempty"`

	// GitLab's view: online, offline or never_contacted ("" while not known yet), when the
	// runner last talked with GitLab, and whether that came from GitLab or the runner's log.
	Online      string    `json:"online"`
	LastContact time.Time `json:"last_contact,omitzero"`
	ViewFrom    string    `json:"view_from,omitempty"`
	// JobsNow are its running job containers; RecentJobs the last few that ended.
	JobsNow    []Job `json:"jobs_now"`
	RecentJobs []Job `json:"recent_jobs"`
}

// record is what the server keeps of a runner beside its config.toml (0600).
type record struct {
	Owner    string `json:"owner"`
	Name     string `json:"name"`
	Project  string `json:"project"`
	Token    string `json:"token"`
	RunnerID int64  `json:"runner_id,omitempty"`
	Managed  bool   `json:"managed,omitempty"`
	// Kubernetes: the runner is a pod in its owner's namespace (config.toml in a Secret
	// there), not a container.
	Kubernetes bool `json:"kubernetes,omitempty"`
}

// executor is the record's executor.
func (r record) executor() string {
	if r.Kubernetes {
		return ExecutorKubernetes
	}
	return ExecutorDocker
}

// Service runs users' runners. It is safe for concurrent use.
type Service struct {
	cfg    Config
	gl     GitLab
	admin  Admin
	ctr    Containers
	pods   Pods
	serve  ServeFunc
	viewer Viewer
	jobs   Jobs
	audit  *audit.Log
	log    *slog.Logger

	mu        sync.Mutex
	ctx       context.Context
	listeners map[string]net.Listener // owner/name -> the socket being served
	users     map[string]*sync.Mutex
	wg        sync.WaitGroup
	closed    chan struct{}
	closeOnce sync.Once
	retry     time.Duration // how often Start asks again while the engine cannot be asked
	views     map[string]view
	viewEvery time.Duration
	askEvery  time.Duration
}

// Options are the optional parts of a Service.
type Options struct {
	Admin  Admin
	Viewer Viewer // GitLab's view of runners by ID; nil: from their logs
	Jobs   Jobs   // the live container list, for the jobs of each runner
	Pods   Pods   // runners in users' namespaces (runner token --kubernetes); nil: none
	Audit  *audit.Log
	Logger *slog.Logger
}

// New returns the service; Start serves the sockets of the runners already there.
func New(cfg Config, gl GitLab, ctr Containers, serve ServeFunc, opts Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if gl == nil || ctr == nil || serve == nil {
		return nil, errors.New("runners: GitLab, containers and the Docker API are all needed")
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("runners: create %s: %w", cfg.Dir, err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Service{cfg: cfg, gl: gl, admin: opts.Admin, ctr: ctr, serve: serve, audit: opts.Audit, log: log,
		ctx: context.Background(), listeners: map[string]net.Listener{}, users: map[string]*sync.Mutex{}, closed: make(chan struct{}),
		retry: retryEvery, viewer: opts.Viewer, jobs: opts.Jobs, pods: opts.Pods, views: map[string]view{}, viewEvery: viewEvery, askEvery: askEvery}, nil
}

// CanCreate reports whether the server may create runners in GitLab (runner create).
func (s *Service) CanCreate() bool { return s.admin != nil }

// CanKubernetes reports whether runners may run as pods (runner token --kubernetes).
func (s *Service) CanKubernetes() bool { return s.pods != nil }

// Start serves the Docker API socket of every runner on the engine, so runners survive a
// restart of the server, and starts the one loop that keeps each runner's view (GitLab's
// word on it, its jobs) fresh; both run until ctx ends or Close. When the engine
// cannot be asked, it says so and tries again in the background until it can.
func (s *Service) Start(ctx context.Context) error {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
	s.wg.Add(1)
	go s.runRefresh(ctx)
	err := s.serveExisting(ctx)
	if err == nil {
		return nil
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(s.retry)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-s.closed:
				return
			case <-t.C:
				if s.serveExisting(ctx) == nil {
					s.log.Info("runners: the sockets of the runners already there are served again")
					return
				}
			}
		}
	}()
	return err
}

// retryEvery is how often Start asks again for the runners already there.
const retryEvery = 10 * time.Second

// serveExisting serves the socket of every runner container on the engine.
func (s *Service) serveExisting(ctx context.Context) error {
	rs, err := s.ctr.Runners(ctx, "")
	if err != nil {
		return fmt.Errorf("runners: list runner containers: %w", err)
	}
	for _, r := range rs {
		rec, err := s.readRecord(r.Owner, r.Name)
		if err != nil || rec.Kubernetes {
			s.log.Warn("runner container without its record; leaving its socket unserved", "owner", r.Owner, "runner", r.Name, "err", err)
			continue
		}
		// config.toml as this server writes it (a runner made by an older one may name its
		// socket elsewhere); gitlab-runner reads a changed config.toml again by itself.
		if err := s.save(rec); err != nil {
			s.log.Warn("could not write a runner's config.toml again", "owner", r.Owner, "runner", r.Name, "err", err)
		}
		if err := s.listen(r.Owner, r.Name); err != nil {
			s.log.Warn("could not serve a runner's Docker API", "owner", r.Owner, "runner", r.Name, "err", err)
		}
	}
	return nil
}

// Close stops serving every socket (the runner containers keep running).
func (s *Service) Close() {
	s.closeOnce.Do(func() { close(s.closed) })
	s.mu.Lock()
	for k, l := range s.listeners {
		_ = l.Close()
		delete(s.listeners, k)
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Service) userLock(user string) *sync.Mutex {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.users[user]
	if !ok {
		m = &sync.Mutex{}
		s.users[user] = m
	}
	return m
}

func (s *Service) dir(owner, name string) string { return s.cfg.dir(owner, name) }

func (s *Service) readRecord(owner, name string) (record, error) {
	b, err := os.ReadFile(filepath.Join(s.dir(owner, name), "runner.json"))
	if err != nil {
		return record{}, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return record{}, fmt.Errorf("read runner record: %w", err)
	}
	return r, nil
}

// writeFile writes b to path with mode 0600, atomically.
func writeFile(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// save writes the runner's record and config.toml, both 0600 in a 0700 directory.
func (s *Service) save(r record) error {
	dir := s.dir(r.Owner, r.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create the runner's directory: %w", err)
	}
	_ = os.Chmod(dir, 0o700)
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "runner.json"), b); err != nil {
		return fmt.Errorf("store the runner's record: %w", err)
	}
	if err := writeFile(filepath.Join(dir, "config.toml"), []byte(s.toml(r))); err != nil {
		return fmt.Errorf("write the runner's config.toml: %w", err)
	}
	return nil
}

// toml is the config.toml of the runner of r.
func (s *Service) toml(r record) string {
	in := TOMLInput{Name: "whalemountain " + r.Owner + "/" + r.Name, URL: s.cfg.GitLabURL, Token: r.Token,
		Concurrent: s.cfg.Concurrent, JobImage: s.cfg.JobImage}
	if r.Kubernetes && s.pods != nil {
		in.Namespace = s.pods.RunnerNamespace(r.Owner)
		return RenderKubernetesTOML(in)
	}
	return RenderTOML(in)
}

// listen serves owner's Docker API on the socket in the runner's socket directory (again,
// when it already is: a new socket file in the same directory, which the runner and its
// running jobs see through their binds of the directory).
func (s *Service) listen(owner, name string) error {
	key := owner + "/" + name
	path := s.cfg.SocketPath(owner, name)
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-s.closed:
		return errors.New("the runner service is closed")
	default:
	}
	if l, ok := s.listeners[key]; ok {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		_ = l.Close()
		delete(s.listeners, key)
	}
	if len(path) > maxSocketPath {
		return fmt.Errorf("the runner's socket path %s is longer than a unix socket may be (%d bytes): use a shorter data_dir", path, maxSocketPath)
	}
	if err := os.Mkdir(filepath.Dir(path), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create the runner's socket directory: %w", err)
	}
	// The socket of an older server, beside config.toml rather than in its own directory.
	_ = os.Remove(filepath.Join(s.dir(owner, name), socketName))
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("listen on the runner's socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		_ = l.Close()
		return fmt.Errorf("listen on the runner's socket: %w", err)
	}
	s.listeners[key] = l
	id := backend.Identity{User: owner, Role: backend.RoleStudent, KeySource: backend.KeySourceRunner, RemoteAddr: docker.RunnerAddrPrefix + name}
	ctx := s.ctx
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				defer conn.Close()
				s.serve(ctx, id, conn)
			}()
		}
	}()
	return nil
}

// unlisten stops serving the runner's socket.
func (s *Service) unlisten(owner, name string) {
	key := owner + "/" + name
	s.mu.Lock()
	defer s.mu.Unlock()
	if l, ok := s.listeners[key]; ok {
		_ = l.Close()
		delete(s.listeners, key)
	}
}

// Serving reports whether the socket of owner's runner name is being served.
func (s *Service) Serving(owner, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.listeners[owner+"/"+name]
	return ok
}

// SocketPath is where owner's runner name's Docker API socket is on this host.
func (s *Service) SocketPath(owner, name string) string {
	return s.cfg.SocketPath(owner, name)
}

// record writes one audit line; the token is never part of it.
func (s *Service) record(id backend.Identity, action, target string, err error) {
	if s.audit == nil {
		return
	}
	result, reason := audit.OK, ""
	if err != nil {
		result, reason = audit.Failed, err.Error()
		for _, k := range []error{ErrInvalid, ErrNotFound, ErrQuota, ErrPermission} {
			if errors.Is(err, k) {
				result = audit.Refused
			}
		}
	}
	_ = s.audit.Action(id, action, target, result, reason)
}
