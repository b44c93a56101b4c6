// Command whalemountain is the server: it reads the configuration, loads or creates the host
// keys, wires the backends and serves the SSH door until SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"whalemountain/backend/audit"
	"whalemountain/backend/kube"
	"whalemountain/backend/metrics"
	"whalemountain/hostkeys"
	"whalemountain/tui/sshd"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Getenv, os.Stdout, os.Stderr))
}

const usage = `Usage:
  whalemountain [serve] [--listen ADDR] [--data-dir DIR] [--config FILE] [--metrics-addr ADDR]
  whalemountain version
  whalemountain kube-rbac   (the ClusterRole the server needs on a Kubernetes cluster, as YAML)

Environment: WM_LISTEN, WM_DATA_DIR, WM_CONFIG, WM_SERVER_NAME, WM_LOG_LEVEL, WM_KEYS_DIR,
WM_TAS, WM_GITLAB_URL, WM_GITLAB_TOKEN, WM_GITLAB_TA_GROUP, WM_DOCKER (on/off), WM_DOCKER_HOST,
WM_METRICS_ADDR.
`

func run(args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	sub := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "serve":
	case "version":
		fmt.Fprintf(stdout, "whalemountain %s\n", version)
		return 0
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	case "kube-rbac":
		if len(args) > 0 {
			fmt.Fprintf(stderr, "whalemountain kube-rbac: unexpected argument %q\n", args[0])
			return 2
		}
		fmt.Fprint(stdout, kube.KubeRBAC())
		return 0
	default:
		fmt.Fprintf(stderr, "whalemountain: unknown command %q\n%s", sub, usage)
		return 2
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "", "address to listen on (default :2222)")
	dataDir := fs.String("data-dir", "", "data directory (default ./data)")
	configFile := fs.String("config", "", "YAML configuration file")
	metricsAddr := fs.String("metrics-addr", "", "serve Prometheus metrics over plain HTTP on this address (default off)")
	pprofAddr := fs.String("pprof-addr", "", "serve Go's profiles (/debug/pprof/) on this loopback address (default off)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "whalemountain serve: unexpected argument %q\n", fs.Arg(0))
		return 2
	}

	cfg := defaultConfig()
	path := *configFile
	if path == "" {
		path = getenv("WM_CONFIG")
	}
	if path != "" {
		if err := cfg.loadFile(path); err != nil {
			fmt.Fprintln(stderr, "whalemountain:", err)
			return 1
		}
	}
	if err := cfg.applyEnv(getenv); err != nil {
		fmt.Fprintln(stderr, "whalemountain:", err)
		return 1
	}
	if *listen != "" {
		cfg.Listen = *listen
	}
	if *dataDir != "" {
		cfg.DataDir = *dataDir
	}
	if *metricsAddr != "" {
		cfg.MetricsAddr = *metricsAddr
	}
	if err := cfg.validate(); err != nil {
		fmt.Fprintln(stderr, "whalemountain:", err)
		return 1
	}
	if *pprofAddr != "" {
		if err := checkPprofAddr(*pprofAddr); err != nil {
			fmt.Fprintln(stderr, "whalemountain:", err)
			return 1
		}
	}
	if err := cfg.loadToken(); err != nil {
		fmt.Fprintln(stderr, "whalemountain:", err)
		return 1
	}
	level, _ := parseLevel(cfg.LogLevel)
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	slog.SetDefault(logger) // what the backend logs without a logger of its own goes here too

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if *pprofAddr != "" {
		if err := listenPprof(ctx, *pprofAddr, logger); err != nil {
			fmt.Fprintln(stderr, "whalemountain:", err)
			return 1
		}
	}
	if err := serve(ctx, cfg, logger, nvml.New()); err != nil {
		logger.Error("server stopped", "err", err)
		fmt.Fprintln(stderr, "whalemountain:", err)
		return 1
	}
	return 0
}

// serve runs the server until ctx ends. Everything that can be wrong with the configuration
// or the data directory fails here, before the port opens.
// lib is NVML: nvml.New() in production, go-nvml's mock in tests.
func serve(ctx context.Context, cfg Config, logger *slog.Logger, lib nvml.Interface) error {
	if cfg.ServerName == "" {
		cfg.ServerName, _ = os.Hostname()
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", cfg.DataDir, err)
	}
	keysDir := cfg.KeysDir
	if keysDir == "" {
		keysDir = filepath.Join(cfg.DataDir, "keys")
	}
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		return fmt.Errorf("keys directory %s: %w", keysDir, err)
	}

	var signers []*hostkeys.Key
	ed, err := hostkeys.LoadOrCreate(filepath.Join(cfg.DataDir, "host_ed25519"), hostkeys.Ed25519)
	if err != nil {
		return err
	}
	signers = append(signers, ed)
	if cfg.HostKeys.RSA {
		rsa, err := hostkeys.LoadOrCreate(filepath.Join(cfg.DataDir, "host_rsa"), hostkeys.RSA)
		if err != nil {
			return err
		}
		signers = append(signers, rsa)
	}

	auditLog, err := audit.Open(filepath.Join(cfg.DataDir, "audit.log"))
	if err != nil {
		return err
	}
	defer auditLog.Close()

	auth, authDesc, err := newAuthenticator(cfg, keysDir, logger)
	if err != nil {
		return err
	}

	sc := sshd.Config{
		Listen:             cfg.Listen,
		ServerName:         cfg.ServerName,
		Version:            version,
		MaxAuthTries:       cfg.Limits.MaxAuthTries,
		LoginGrace:         cfg.Limits.LoginGrace,
		IdleTimeout:        cfg.Limits.IdleTimeout,
		MaxSessionsPerUser: cfg.Limits.MaxSessionsPerUser,
		ShutdownGrace:      cfg.Limits.ShutdownGrace,
		MaxForwards:        cfg.Limits.MaxForwards,
	}
	sc.Startups, _ = cfg.Limits.startups() // validated
	for _, k := range signers {
		sc.HostSigners = append(sc.HostSigners, k.Signer)
	}
	deps, ctrs, closeDeps, err := newBackends(ctx, cfg, auditLog, logger, lib)
	if err != nil {
		return err
	}
	defer closeDeps()
	srv, err := sshd.New(sc, auth, auditLog, deps, logger)
	if err != nil {
		return err
	}
	if ctrs != nil {
		// Idle culling counts a shell, exec, attach, forward or sftp session as use.
		ctrs.SetSessionUse(srv.ContainerInUse)
	}
	l, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}

	// The metrics endpoint starts once the SSH server exists (it counts its sessions) and
	// stops with ctx; failing to listen is fatal, like the SSH port.
	if cfg.MetricsAddr != "" {
		src := metrics.Sources{Sessions: srv}
		if deps.GPUs != nil {
			src.GPUs = deps.GPUs
		}
		if ctrs != nil {
			src.Containers = ctrs
		}
		if deps.GPUHours != nil {
			src.GPUHours = deps.GPUHours
		}
		ml, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			l.Close()
			return fmt.Errorf("metrics: listen on %s: %w", cfg.MetricsAddr, err)
		}
		reg := metrics.NewRegistry(src)
		go func() {
			if err := metrics.ServeListener(ctx, ml, reg); err != nil {
				logger.Error("metrics endpoint stopped", "err", err)
			}
		}()
		logger.Info("metrics on http://" + ml.Addr().String() + "/metrics")
	}

	greet(logger, cfg, l.Addr(), signers, keysDir, authDesc, srv.Prefix())
	served := make(chan error, 1)
	go func() { served <- srv.Serve(l) }()

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	logger.Info("stopping: no new connections; open sessions have the grace period to end",
		"grace", cfg.Limits.ShutdownGrace, "open", srv.OpenSessions())
	sctx, cancel := context.WithTimeout(context.Background(), cfg.Limits.ShutdownGrace+5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	if err := <-served; err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	logger.Info("stopped; containers were not touched")
	return nil
}

// greet is the first screen of log lines: what runs where, and exactly how to let a student in.
func greet(logger *slog.Logger, cfg Config, addr net.Addr, keys []*hostkeys.Key, keysDir, authDesc, prefix string) {
	logger.Info("WhaleMountain listening", "addr", addr.String(), "version", version, "data", cfg.DataDir)
	for _, k := range keys {
		verb := "loaded"
		if k.Created {
			verb = "created"
		}
		logger.Info("host key "+verb, "type", string(k.Kind), "fingerprint", k.Fingerprint, "path", k.Path)
	}
	logger.Info("keys come from " + authDesc)
	logger.Info(fmt.Sprintf("to let a student in: put their public key(s) in %s (one per line, authorized_keys format, e.g. cat id_ed25519.pub > %s); no restart needed",
		filepath.Join(keysDir, "<user>.keys"), filepath.Join(keysDir, "alice.keys")))
	i := strings.LastIndex(prefix, " ")
	logger.Info(fmt.Sprintf("then the student types: %s alice@%s", prefix[:i], prefix[i+1:]))
	logger.Info("audit log", "path", filepath.Join(cfg.DataDir, "audit.log"))
}
