package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"whalemountain/backend"
	"whalemountain/backend/audit"
	"whalemountain/backend/docker"
	"whalemountain/backend/gpu"
	"whalemountain/backend/gpuhours"
	"whalemountain/backend/groups"
	"whalemountain/backend/kube"
	"whalemountain/backend/recording"
	"whalemountain/backend/runner"
	"whalemountain/tui/cli"
	"whalemountain/tui/dockerapi"
	"whalemountain/tui/files"
	"whalemountain/tui/share"

	"whalemountain/backend/gitlab"
	"whalemountain/sshauth"
)

// newAuthenticator builds the key sources (keys directory first, then GitLab when configured)
// and the role rules. The description says where keys come from, for the start-up lines.
func newAuthenticator(cfg Config, keysDir string, logger *slog.Logger) (*sshauth.Authenticator, string, error) {
	sources := []sshauth.KeySource{sshauth.NewDirSource(keysDir, logger)}
	desc := "the keys directory " + keysDir
	var gl *gitlab.Client
	if g := cfg.GitLab; g.URL != "" {
		var err error
		gl, err = gitlab.New(g.URL, g.token, gitlab.WithTimeout(g.RequestTimeout))
		if err != nil {
			return nil, "", fmt.Errorf("config: gitlab.url: %w", err)
		}
		sources = append(sources, sshauth.NewGitLabSource(gl, sshauth.GitLabOptions{
			TTL: g.CacheTTL, StaleFor: g.StaleFor, Logger: logger,
		}))
		desc += " and GitLab " + g.URL
	}
	logRoles(cfg, logger)
	roles := sshauth.NewRoleResolver(sshauth.RoleConfig{
		TAs:            cfg.TAs,
		GitLabGroup:    cfg.GitLab.TAGroup,
		MinAccessLevel: cfg.GitLab.TAMinAccess,
		TTL:            cfg.GitLab.CacheTTL,
		Logger:         logger,
	}, gl)
	auth, err := sshauth.New(sshauth.Options{
		Sources:      sources,
		Roles:        roles,
		FailureLimit: cfg.Limits.FailuresPerMinute,
		Logger:       logger,
	})
	if err != nil {
		return nil, "", err
	}
	return auth, desc, nil
}

// logRoles says in one line who is a TA and where that comes from: the config's tas, and
// the members of the GitLab group at or above the access level.
func logRoles(cfg Config, logger *slog.Logger) {
	tas := "none"
	if len(cfg.TAs) > 0 {
		tas = strings.Join(cfg.TAs, ",")
	}
	g := cfg.GitLab
	if g.URL == "" || g.TAGroup == "" {
		logger.Info("roles: TAs are the users listed in tas; everyone else is a student", "tas", tas, "gitlab_group", "none")
		return
	}
	level := g.TAMinAccess
	if level <= 0 {
		level = gitlab.Developer
	}
	logger.Info("roles: TAs are the users listed in tas and the members of the GitLab group at or above the access level; everyone else is a student",
		"tas", tas, "gitlab_group", g.TAGroup, "gitlab", g.URL, "min_access_level", accessLevelName(level))
}

// accessLevelName is a GitLab access level as GitLab names it: "30 (developer)".
func accessLevelName(level int) string {
	names := map[int]string{gitlab.Guest: "guest", gitlab.Reporter: "reporter", gitlab.Developer: "developer",
		gitlab.Maintainer: "maintainer", gitlab.Owner: "owner"}
	if n, ok := names[level]; ok {
		return fmt.Sprintf("%d (%s)", level, n)
	}
	return fmt.Sprint(level)
}

// newBackends starts what the configuration turns on. A backend that is on but unreachable
// (Docker stopped) is not fatal: its tab and commands say so and it recovers by itself.
// lib is NVML (production: nvml.New(); tests: go-nvml's mock).
//
// ctrs is the container service every container field of deps is set from (nil when
// containers are off), for what the server itself wires to it after.
func newBackends(ctx context.Context, cfg Config, auditLog *audit.Log, logger *slog.Logger, lib nvml.Interface) (deps cli.Deps, ctrs *docker.Service, closeAll func(), err error) {
	if auditLog != nil {
		deps.Audit = auditLog
	}
	var closers []func()
	closeAll = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	// Who belongs to which group, for containers and pods alike: the config's lists, then GitLab.
	var groupDir *groups.Directory
	if cfg.needsGroups() {
		var gl *gitlab.Client
		if g := cfg.GitLab; g.URL != "" {
			if gl, err = gitlab.New(g.URL, g.token, gitlab.WithTimeout(g.RequestTimeout)); err != nil {
				return deps, nil, closeAll, fmt.Errorf("config: gitlab.url: %w", err)
			}
		}
		groupDir = cfg.groupDirectory(gl, logger)
	}
	if cfg.Docker.Enabled {
		dc, err := cfg.dockerPolicy()
		if err != nil {
			return deps, nil, closeAll, err
		}
		svc, err := docker.New(dc, auditLog)
		if err != nil {
			return deps, nil, closeAll, fmt.Errorf("docker: %w", err)
		}
		// What TAs did to students' containers, and the stops done on purpose, outlive a restart.
		if err := svc.SetNoticeDir(filepath.Join(cfg.DataDir, "notices")); err != nil {
			svc.Close()
			return deps, nil, closeAll, fmt.Errorf("docker: %w", err)
		}
		// The GPU waiting list and the TAs' keeps outlive a restart too.
		if err := svc.SetStateDir(filepath.Join(cfg.DataDir, "state")); err != nil {
			svc.Close()
			return deps, nil, closeAll, fmt.Errorf("docker: %w", err)
		}
		// Group workspaces with a size get a file system of that size where the server can make one.
		if err := svc.SetWorkspaceDir(filepath.Join(cfg.DataDir, "workspaces")); err != nil {
			svc.Close()
			return deps, nil, closeAll, fmt.Errorf("docker: %w", err)
		}
		tas := map[string]backend.Role{}
		for _, u := range cfg.TAs {
			tas[u] = backend.RoleTA
		}
		svc.SetRoles(tas)
		if err := svc.SetPresets(cfg.presets()); err != nil {
			svc.Close()
			return deps, nil, closeAll, fmt.Errorf("config: %w", err)
		}
		if groupDir != nil {
			svc.SetGroupDirectory(groupDir)
			for _, d := range dc.Datasets {
				logger.Info("dataset mounted read-only into the containers of those who may see it", "dataset", d.Name,
					"source", firstNonEmpty(d.HostPath, "volume "+d.Volume))
			}
			for _, g := range dc.Groups {
				logger.Info("group workspaces for the members of", "group", g.Group, "size", g.Size)
			}
		}
		if err := svc.Watch(ctx); err != nil {
			svc.Close()
			return deps, nil, closeAll, fmt.Errorf("docker: %w", err)
		}
		closers = append(closers, func() { svc.Close() })
		images, err := docker.NewImageService(svc, cfg.Images.ImagePolicy, cfg.Images.credentials())
		if err != nil {
			svc.Close()
			return deps, nil, closeAll, fmt.Errorf("images: %w", err)
		}
		deps.Images = images
		for _, r := range cfg.Images.RegistryAuth {
			logger.Info("pulls from a private registry use the server's token", "registry", r.Registry, "username", r.Username)
		}
		sifs, err := docker.NewSIFService(svc, docker.SIFOptions{Dir: filepath.Join(cfg.DataDir, "sif"),
			Quota: int64(cfg.Images.SIF.Quota), MaxBuilds: cfg.Images.SIF.MaxBuilds, Tar2sqfs: cfg.Images.SIF.Tar2sqfs})
		if err != nil {
			svc.Close()
			return deps, nil, closeAll, fmt.Errorf("images: %w", err)
		}
		if err := sifs.ToolsError(); err != nil {
			logger.Warn("SIF export is off until tar2sqfs is installed", "err", err)
		}
		if err := sifs.Sweep(ctx); err != nil {
			logger.Warn("could not clear what an interrupted SIF build left", "err", err)
		}
		deps.SIFs = sifs
		ctrs = svc
		setContainers(&deps, ctrs)
		if err := sweepSpool(filepath.Join(cfg.DataDir, "spool")); err != nil {
			logger.Warn("could not clear the spool of an interrupted run", "err", err)
		}
		deps.FilesOptions = files.Options{TempDir: filepath.Join(cfg.DataDir, "spool"), SIF: sifs, TAFileAccess: dc.TAFileAccess}
		deps.DockerAPI = docker.NewAPI(svc, images, docker.APIOptions{SpoolDir: filepath.Join(cfg.DataDir, "spool")})
		logger.Info("containers on the Docker Engine", "host", firstNonEmpty(dc.Host, "default socket"),
			"home", firstNonEmpty(dc.HomeHostPath, "per-user volume "+dc.NamePrefix+"-home-<user>"), "mounted_at", dc.HomeTarget)
	} else {
		logger.Info("containers are off (docker.enabled: false)")
	}

	// Shells are opened through the sharing hub; shared ones are recorded for their owner.
	hubOpts := share.Options{Audit: auditLog, Logger: logger, RecordAll: cfg.Recordings.AllShells}
	if cfg.Recordings.Enabled {
		store, err := recording.NewStore(filepath.Join(cfg.DataDir, "recordings"), cfg.Recordings.Retention)
		if err != nil {
			return deps, nil, closeAll, fmt.Errorf("recordings: %w", err)
		}
		store.SetMaxSize(int64(cfg.Recordings.MaxSize))
		go sweepRecordings(ctx, store, logger)
		hubOpts.Recorder = store
		deps.Recordings = store
		deps.FilesOptions.Recordings = store
	}
	deps.Shares = share.New(hubOpts)
	// Pods on a Kubernetes cluster: an unreachable cluster is not fatal (the Pods tab and the
	// pod commands say so, and the informers recover by themselves).
	var pods *kube.Service
	if k := cfg.Kubernetes; k.Enabled() {
		kc, err := cfg.kubePolicy()
		if err != nil {
			return deps, nil, closeAll, err
		}
		svc, err := kube.New(kc, auditLog)
		if err != nil {
			return deps, nil, closeAll, fmt.Errorf("kubernetes: %w", err)
		}
		if groupDir != nil {
			svc.SetGroupDirectory(groupDir)
		}
		for _, d := range kc.Datasets {
			logger.Info("dataset mounted read-only into the pods of those who may see it", "dataset", d.Name,
				"source", firstNonEmpty(d.Source.HostPath, "nfs "+d.Source.NFSServer+":"+d.Source.NFSPath))
		}
		for _, g := range kc.Groups {
			logger.Info("group workspaces in the pods of the members of", "group", g.Group,
				"source", firstNonEmpty(g.Source.HostPath, "nfs "+g.Source.NFSServer+":"+g.Source.NFSPath))
		}
		if err := svc.Watch(ctx); err != nil {
			return deps, nil, closeAll, fmt.Errorf("kubernetes: %w", err)
		}
		closers = append(closers, func() { _ = svc.Close() })
		deps.Pods = svc
		deps.FilesOptions.Pods = svc
		pods = svc
		logger.Info("pods on Kubernetes", "kubeconfig", firstNonEmpty(kc.Kubeconfig, "in-cluster"),
			"namespaces", kc.NamespacePrefix+"<user>-<hash>", "pod_security", kc.PodSecurity)
	} else {
		logger.Info("pods are off (no kubernetes.kubeconfig or kubernetes.in_cluster)")
	}

	// The "My registry" view asks GitLab for the user's own registry repositories.
	if g := cfg.GitLab; g.URL != "" {
		gl, err := gitlab.New(g.URL, g.token, gitlab.WithTimeout(g.RequestTimeout))
		if err != nil {
			return deps, nil, closeAll, fmt.Errorf("config: gitlab.url: %w", err)
		}
		deps.Registry = gl
		if cfg.Runners.Enabled && ctrs != nil {
			rs, err := newRunners(ctx, cfg, gl, ctrs, pods, deps.DockerAPI, auditLog, logger)
			if err != nil {
				return deps, nil, closeAll, err
			}
			closers = append(closers, rs.Close)
			deps.Runners = rs
		}
	}

	// GPU use is attributed to containers through the live snapshot (no API call). The server
	// reads both snapshots as a TA of its own, which sees every user's containers and processes.
	server := backend.Identity{User: "whalemountain", Role: backend.RoleTA}
	var gpuOwners gpu.Owners
	if ctrs != nil {
		svc := ctrs
		gpuOwners = gpu.OwnersFunc(func(id string) (string, string, bool) {
			cs, _ := svc.Snapshot(server, docker.ListOptions{All: true, AllUsers: true})
			for _, c := range cs {
				if c.ID == id {
					return c.Owner, c.Name, true
				}
			}
			return "", "", false
		})
	}
	sampler := gpu.New(lib, gpuOwners, gpu.Options{Logger: logger})
	sampler.Start(ctx)
	closers = append(closers, sampler.Close)
	deps.GPUs = sampler
	// GPU allocation (docker run --gpus) chooses among the GPUs NVML sees; a reading NVML
	// could not take counts as fully busy, so idle GPUs known to be idle are chosen first.
	if ok, _ := sampler.Available(); ok && ctrs != nil {
		ctrs.SetGPUs(docker.GPUInventoryFunc(func() []docker.GPUInfo {
			st := sampler.Snapshot(server)
			out := make([]docker.GPUInfo, 0, len(st.GPUs))
			for _, g := range st.GPUs {
				if g.UUID == "" {
					continue // cannot be asked for by UUID
				}
				info := docker.GPUInfo{Index: g.Index, UUID: g.UUID, Util: 100, UsedMemory: ^uint64(0)}
				if g.Util != nil && *g.Util >= 0 {
					info.Util = uint32(*g.Util)
				}
				if g.MemUsed != nil && *g.MemUsed >= 0 {
					info.UsedMemory = uint64(*g.MemUsed)
				}
				out = append(out, info)
			}
			return out
		}))
	}
	if ctrs != nil {
		if err := startFairGPUs(ctx, cfg, ctrs, sampler, &deps, &closers, logger); err != nil {
			closeAll()
			return deps, nil, func() {}, err
		}
	}
	return deps, ctrs, closeAll, nil
}

// setContainers sets every field of deps the container service serves, each one a small
// interface for what its commands and tabs need, from the one service.
func setContainers(deps *cli.Deps, svc *docker.Service) {
	deps.Containers = svc
	deps.Presets = svc
	deps.Shared = svc
	deps.Live = svc
	deps.Notices = svc
	deps.Wall = svc
	deps.Exec = svc
	deps.Files = svc
}

// sweepRecordings removes recordings past their retention now and every hour.
func sweepRecordings(ctx context.Context, store *recording.Store, logger *slog.Logger) {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := store.Sweep(); err != nil {
			logger.Warn("recordings past their retention not removed", "err", err)
		} else if n > 0 {
			logger.Info("recordings past their retention removed", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// startFairGPUs starts the GPU-hours meter (from the allocations on the live snapshot and the
// sampler's utilisation), gives its window to the waiting list's fair share, and runs the
// waiting list's dispatcher, the hold limit and the idle culler.
func startFairGPUs(ctx context.Context, cfg Config, svc *docker.Service, sampler *gpu.Sampler, deps *cli.Deps, closers *[]func(), logger *slog.Logger) error {
	server := backend.Identity{User: "whalemountain", Role: backend.RoleTA}
	ledger, err := gpuhours.Open(filepath.Join(cfg.DataDir, "gpu-hours"))
	if err != nil {
		return err
	}
	meter := gpuhours.NewMeter(ledger, gpuhours.Readings{
		Holdings: func() []gpuhours.Holding {
			cs, _ := svc.Snapshot(server, docker.ListOptions{AllUsers: true})
			var out []gpuhours.Holding
			for _, c := range cs {
				if c.State != "running" || c.Labels[docker.LabelGPUs] == "" {
					continue
				}
				out = append(out, gpuhours.Holding{User: c.Owner, UUIDs: strings.Split(c.Labels[docker.LabelGPUs], ",")})
			}
			return out
		},
		Utilisation: func() map[string]float64 {
			out := map[string]float64{}
			for _, g := range sampler.Snapshot(server).GPUs {
				if g.UUID != "" && g.Util != nil && *g.Util >= 0 {
					out[g.UUID] = float64(*g.Util) / 100
				}
			}
			return out
		},
	}, gpuhours.MeterOptions{Logger: logger})
	meter.Start(ctx)
	*closers = append(*closers, meter.Stop)
	deps.GPUHours = meter
	svc.SetFairShare(func(since time.Time) map[string]float64 {
		out := map[string]float64{}
		for u, v := range meter.Since(since) {
			out[u] = v.Held
		}
		return out
	})
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		svc.Schedule(sctx, 5*time.Second)
	}()
	*closers = append(*closers, func() { cancel(); <-done })
	return nil
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}

// sweepSpool removes what a server that was killed left in the spool directory (the
// contexts of image builds under way); transfers spool to files unlinked at once. Call it
// before serving: nothing else uses the directory.
func sweepSpool(dir string) error {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read spool %s: %w", dir, err)
	}
	var errs []error
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newRunners starts the runner service: each runner's socket serves its owner's Docker API,
// the same door as dial-stdio and a forwarded /docker.sock, with the owner's identity; with
// pods (nil: none), runners may also run in their owners' namespaces.
func newRunners(ctx context.Context, cfg Config, gl *gitlab.Client, ctrs *docker.Service, pods *kube.Service, api dockerapi.Backend, auditLog *audit.Log, logger *slog.Logger) (*runner.Service, error) {
	serve := func(ctx context.Context, id backend.Identity, conn net.Conn) {
		c, ok := conn.(dockerapi.Conn)
		if !ok {
			return
		}
		h := dockerapi.Handler(api, id, dockerapi.Options{Logger: logger})
		if err := dockerapi.Serve(ctx, c, h, logger); err != nil {
			logger.Warn("runner docker api connection ended with an error", "user", id.User, "err", err)
		}
	}
	var (
		admin  runner.Admin
		viewer runner.Viewer
	)
	if cfg.Runners.ServerCreates {
		admin, viewer = gl, gl
	}
	opts := runner.Options{Admin: admin, Viewer: viewer, Jobs: ctrs, Audit: auditLog, Logger: logger}
	if pods != nil {
		opts.Pods = pods
	}
	rs, err := runner.New(cfg.runnerConfig(), gl, ctrs, serve, opts)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	if err := rs.Start(ctx); err != nil {
		logger.Warn("runners: could not serve the runners already there", "err", err)
	}
	logger.Info("personal GitLab runners are on", "image", cfg.Runners.Image, "gitlab", cfg.runnerConfig().GitLabURL,
		"concurrent", cfg.Runners.Concurrent, "max_per_user", cfg.Runners.MaxPerUser, "server_creates", cfg.Runners.ServerCreates,
		"kubernetes", pods != nil)
	return rs, nil
}
