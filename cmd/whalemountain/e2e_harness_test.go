package main

// The end-to-end harness: the real server binary, started on a free local port with its own
// data directory, reached with the real OpenSSH client (or golang.org/x/crypto/ssh where a
// test needs to control the authentication exchange). Tests that need containers, a shell or
// more configuration build on the same pieces: startServer, newKey, (*server).addKey,
// (*server).ssh, (*server).dial, (*server).openTerminal and the audit helpers.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"whalemountain/backend/docker/dockertest"
	"whalemountain/backend/kube/kubetest"
)

// serverBin is the server binary TestMain builds once for every end-to-end test.
var serverBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "whalemountain-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "temporary directory:", err)
		os.Exit(1)
	}
	serverBin = filepath.Join(dir, "whalemountain")
	build := exec.Command(goTool(), "build", "-o", serverBin, "./")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building the server for the end-to-end tests:", err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	kubetest.StopShared() // the Kubernetes test cluster, when a test started it
	// Images a server built for a test after its own cleanup (the Docker API's builds) carry
	// the run's labels: they go with the run.
	if err := dockertest.SweepRun(); err != nil {
		fmt.Fprintln(os.Stderr, "removing what the end-to-end tests left on the engine:", err)
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// goTool is the go command: `go test` puts its own toolchain first on PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(os.Getenv("GOROOT"), "bin", "go")
}

// Waits. Everything is polled with these bounds; none of them is an assertion about speed.
const (
	startTimeout = 20 * time.Second // until the server listens
	stopTimeout  = 20 * time.Second // from SIGTERM to exit, beyond the configured grace
	sshTimeout   = 30 * time.Second // one ssh command
	pollTimeout  = 10 * time.Second // until a screen or a log shows something
	pollEvery    = 25 * time.Millisecond
)

// lockedBuffer collects a process's output while tests read it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// serverOptions configure startServer. The zero value is a server with embedded defaults, a
// fresh data directory and no configuration file.
type serverOptions struct {
	// Config is YAML for a file passed with --config; empty for no file. Listen and data
	// directory are always given as flags and win over it.
	Config string
	// Env is extra "NAME=value" entries for the server's environment. WM_* variables of the
	// test process are never passed on.
	Env []string
	// DataDir reuses a data directory (a restart); empty makes a fresh one.
	DataDir string
}

// server is one running (or exited) server process.
type server struct {
	t       *testing.T
	Addr    string // 127.0.0.1:PORT
	Port    string
	DataDir string
	KeysDir string

	cmd    *exec.Cmd
	stderr *lockedBuffer
	exited chan struct{} // closed when the process has exited
	code   int           // exit status, valid after exited; -1 when killed by a signal
}

// startServer starts the server and waits until it listens. At cleanup it is stopped with
// SIGTERM and must exit with status 0; its audit log must be well formed.
func startServer(t *testing.T, opts serverOptions) *server {
	t.Helper()
	s := launchServer(t, opts)
	if err := s.waitListening(startTimeout); err != nil {
		s.kill()
		t.Fatalf("server did not start: %v\nserver log:\n%s", err, s.Log())
	}
	t.Cleanup(func() {
		if !s.hasExited() {
			s.stop(t)
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
		checkAuditFile(t, s.auditPath())
	})
	return s
}

// launchServer starts the server process without waiting for anything. The process is
// killed at cleanup if it still runs.
func launchServer(t *testing.T, opts serverOptions) *server {
	t.Helper()
	dataDir := opts.DataDir
	if dataDir == "" {
		dataDir = filepath.Join(t.TempDir(), "data")
		if err := os.MkdirAll(filepath.Join(dataDir, "keys"), 0o700); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { detachWorkspaces(t, dataDir) })
	}
	port := freePort(t)
	s := &server{
		t:       t,
		Addr:    net.JoinHostPort("127.0.0.1", port),
		Port:    port,
		DataDir: dataDir,
		KeysDir: filepath.Join(dataDir, "keys"),
		stderr:  &lockedBuffer{},
		exited:  make(chan struct{}),
	}
	args := []string{"serve", "--listen", s.Addr, "--data-dir", dataDir}
	if !strings.Contains(opts.Config, "docker:") {
		// A server that is not about containers must not take over those of other tests
		// on the shared engine (their changes would count as its activity, too).
		opts.Config += "docker:\n  enabled: false\n"
	}
	if opts.Config != "" {
		cfg := filepath.Join(t.TempDir(), "whalemountain.yaml")
		if err := os.WriteFile(cfg, []byte(opts.Config), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", cfg)
	}
	s.cmd = exec.Command(serverBin, args...)
	s.cmd.Env = append(environWithout("WM_"), opts.Env...)
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start server: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		s.code = s.cmd.ProcessState.ExitCode()
		close(s.exited)
	}()
	t.Cleanup(func() {
		if !s.hasExited() {
			s.kill()
		}
	})
	return s
}

// environWithout is the test process's environment minus variables starting with prefix.
func environWithout(prefix string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, prefix) {
			env = append(env, kv)
		}
	}
	return env
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// waitListening waits for the start-up line that follows a successful listen. It does not
// probe the port: a bare TCP probe would count as a failed login from 127.0.0.1.
func (s *server) waitListening(timeout time.Duration) error {
	want := "addr=" + s.Addr
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for _, line := range strings.Split(s.Log(), "\n") {
			if strings.Contains(line, "WhaleMountain listening") && strings.Contains(line, want) {
				return nil
			}
		}
		if s.hasExited() {
			return fmt.Errorf("exited with status %d before listening", s.code)
		}
		time.Sleep(pollEvery)
	}
	return fmt.Errorf("no %q line within %v", "WhaleMountain listening "+want, timeout)
}

// Log is everything the server wrote to stdout and stderr so far.
func (s *server) Log() string { return s.stderr.String() }

func (s *server) hasExited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// signal sends sig to the server.
func (s *server) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits up to timeout for the server to exit and returns its status.
func (s *server) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	select {
	case <-s.exited:
		return s.code
	case <-time.After(timeout):
		s.kill()
		t.Fatalf("server still running %v after it was asked to stop; killed\nserver log:\n%s", timeout, s.Log())
		return -1
	}
}

// stop sends SIGTERM and requires exit status 0.
func (s *server) stop(t *testing.T) {
	t.Helper()
	s.signal(t, syscall.SIGTERM)
	if code := s.wait(t, stopTimeout); code != 0 {
		t.Errorf("server exited with status %d after SIGTERM, want 0\nserver log:\n%s", code, s.Log())
	}
}

// waitLog waits until the server's log contains substr.
func (s *server) waitLog(t *testing.T, substr string) {
	t.Helper()
	if !poll(pollTimeout, func() bool { return strings.Contains(s.Log(), substr) }) {
		t.Fatalf("server log never showed %q:\n%s", substr, s.Log())
	}
}

// poll calls cond until it is true or timeout passes.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for {
		if cond() {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(pollEvery)
	}
}

// runServerToExit runs the server expecting it to refuse to start, and returns its exit
// status and output. A server that starts listening instead fails the test.
func runServerToExit(t *testing.T, opts serverOptions) (int, string) {
	t.Helper()
	s := launchServer(t, opts)
	listening := func() bool { return strings.Contains(s.Log(), "WhaleMountain listening") }
	if !poll(startTimeout, func() bool { return s.hasExited() || listening() }) {
		s.kill()
		t.Fatalf("server neither exited nor listened within %v\nserver log:\n%s", startTimeout, s.Log())
	}
	if !s.hasExited() {
		s.kill()
		t.Fatalf("server started, want it to refuse to\nserver log:\n%s", s.Log())
	}
	if listening() {
		t.Errorf("server listened before exiting:\n%s", s.Log())
	}
	return s.code, s.Log()
}

// --- user keys ---

// testKey is a user's ed25519 key pair, the private half in an OpenSSH key file (0600).
type testKey struct {
	Name        string
	Path        string // private key file for ssh -i
	Signer      ssh.Signer
	Public      ssh.PublicKey
	Fingerprint string // SHA256:...
}

// newKey generates a key and writes its private half to a file of its own.
func newKey(t *testing.T, name string) *testKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return &testKey{Name: name, Path: path, Signer: signer, Public: signer.PublicKey(),
		Fingerprint: ssh.FingerprintSHA256(signer.PublicKey())}
}

// AuthorizedKey is the key's authorized_keys line, without a newline.
func (k *testKey) AuthorizedKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.Public))) + " " + k.Name
}

// addKey appends key to <keys dir>/<user>.keys (0600), as an administrator would.
func (s *server) addKey(t *testing.T, user string, key *testKey) {
	t.Helper()
	addKeyFile(t, s.KeysDir, user, key)
}

func addKeyFile(t *testing.T, keysDir, user string, key *testKey) {
	t.Helper()
	if err := os.MkdirAll(keysDir, 0o700); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(filepath.Join(keysDir, user+".keys"), os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := fmt.Fprintln(f, key.AuthorizedKey()); err != nil {
		t.Fatal(err)
	}
}

// --- the OpenSSH client ---

// sshBinary is the path of OpenSSH's ssh. Its absence fails the test: the end-to-end tests
// are about the real client.
func sshBinary(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("ssh")
	if err != nil {
		t.Fatalf("the OpenSSH client (ssh) is needed for the end-to-end tests (apt-get install openssh-client): %v", err)
	}
	return p
}

// sshArgs are the arguments for ssh to reach the server as user with key: no agent, no
// user configuration, no known_hosts, no prompts. flags go before the destination, remote
// after it.
func (s *server) sshArgs(key *testKey, user string, flags []string, remote ...string) []string {
	return localSSHArgs(s.Port, key.Path, user, flags, remote...)
}

// sshResult is what one ssh run produced.
type sshResult struct {
	Stdout, Stderr string
	Code           int // ssh's exit status: the remote command's, or 255 for ssh's own errors
}

func (r sshResult) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// ssh runs `ssh [flags] user@127.0.0.1 remote...` with stdin from /dev/null (no PTY).
func (s *server) ssh(t *testing.T, key *testKey, user string, remote ...string) sshResult {
	t.Helper()
	return s.sshFlags(t, key, user, nil, remote...)
}

// sshFlags is ssh with extra client flags, e.g. "-T".
func (s *server) sshFlags(t *testing.T, key *testKey, user string, flags []string, remote ...string) sshResult {
	t.Helper()
	bin := sshBinary(t)
	ctx, cancel := context.WithTimeout(context.Background(), sshTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, s.sshArgs(key, user, flags, remote...)...)
	cmd.Env = environWithout("SSH_AUTH_SOCK")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("ssh %q did not finish within %v\nstderr: %s", remote, sshTimeout, stderr.String())
	}
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		t.Fatalf("run ssh: %v", err)
	}
	return sshResult{Stdout: stdout.String(), Stderr: stderr.String(), Code: cmd.ProcessState.ExitCode()}
}

// whoami runs `whoami` and parses its "name: value" lines.
func (s *server) whoami(t *testing.T, key *testKey, user string) (map[string]string, sshResult) {
	t.Helper()
	r := s.ssh(t, key, user, "whoami")
	out := map[string]string{}
	for _, line := range strings.Split(r.Stdout, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, r
}

// mustLogIn runs whoami and requires it to succeed as user with role, through key.
func (s *server) mustLogIn(t *testing.T, key *testKey, user, role, source string) {
	t.Helper()
	w, r := s.whoami(t, key, user)
	if r.Code != 0 {
		t.Fatalf("%s could not log in with %s: %s", user, key.Name, r)
	}
	want := map[string]string{"user": user, "role": role, "key": key.Fingerprint, "source": source}
	for k, v := range want {
		if w[k] != v {
			t.Errorf("whoami %s = %q, want %q\n%s", k, w[k], v, r.Stdout)
		}
	}
}

// mustBeRefused requires an ssh login as user with key to fail in authentication.
func (s *server) mustBeRefused(t *testing.T, key *testKey, user string) sshResult {
	t.Helper()
	r := s.ssh(t, key, user, "whoami")
	if r.Code != 255 {
		t.Fatalf("%s with %s: want ssh exit 255 (refused), got %s", user, key.Name, r)
	}
	if !strings.Contains(r.Stderr, "Permission denied") && !strings.Contains(r.Stderr, "Connection closed") &&
		!strings.Contains(r.Stderr, "Connection reset") {
		t.Errorf("%s with %s: ssh stderr does not say why: %q", user, key.Name, r.Stderr)
	}
	if r.Stdout != "" {
		t.Errorf("a refused login printed %q", r.Stdout)
	}
	return r
}

// --- golang.org/x/crypto/ssh as a client ---

// dial connects with the Go SSH client; cfg.HostKeyCallback defaults to accepting any key.
func (s *server) dial(cfg *ssh.ClientConfig) (*ssh.Client, error) {
	if cfg.HostKeyCallback == nil {
		cfg.HostKeyCallback = ssh.InsecureIgnoreHostKey()
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return ssh.Dial("tcp", s.Addr, cfg)
}

// run runs one command on a Go SSH client connection and returns its stdout.
func runOnClient(t *testing.T, c *ssh.Client, cmd string) (string, error) {
	t.Helper()
	sess, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer sess.Close()
	out, err := sess.Output(cmd)
	return string(out), err
}

// --- the audit log ---

// auditEntry is one line of <data>/audit.log.
type auditEntry struct {
	Time   time.Time `json:"time"`
	User   string    `json:"user"`
	Role   string    `json:"role"`
	Source string    `json:"source"`
	Key    string    `json:"key"`
	Action string    `json:"action"`
	Target string    `json:"target"`
	Result string    `json:"result"`
	Reason string    `json:"reason"`
}

func (s *server) auditPath() string { return filepath.Join(s.DataDir, "audit.log") }

// readAudit parses the audit log; a line that is not a well-formed entry fails the test.
func readAudit(t *testing.T, path string) []auditEntry {
	t.Helper()
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []auditEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		var raw map[string]any
		if err := json.Unmarshal(line, &raw); err != nil {
			t.Errorf("audit.log line %d is not JSON: %v\n%s", n, err, line)
			continue
		}
		for _, field := range []string{"time", "user", "action", "result"} {
			if _, ok := raw[field]; !ok {
				t.Errorf("audit.log line %d has no %q: %s", n, field, line)
			}
		}
		var e auditEntry
		if err := json.Unmarshal(line, &e); err != nil {
			t.Errorf("audit.log line %d: %v\n%s", n, err, line)
			continue
		}
		if e.Time.IsZero() || e.Action == "" || e.Result == "" {
			t.Errorf("audit.log line %d lacks a time, action or result: %s", n, line)
		}
		if e.Action == "login" {
			switch e.Result {
			case "accepted":
				if e.User == "" || e.Key == "" || e.Role == "" {
					t.Errorf("audit.log line %d: an accepted login without user, role or key: %s", n, line)
				}
			case "refused":
				if e.Reason == "" {
					t.Errorf("audit.log line %d: a refused login without a reason: %s", n, line)
				}
			default:
				t.Errorf("audit.log line %d: login result %q, want accepted or refused", n, e.Result)
			}
		}
		out = append(out, e)
	}
	return out
}

// checkAuditFile checks that every line of the audit log is well formed.
func checkAuditFile(t *testing.T, path string) {
	t.Helper()
	readAudit(t, path)
}

// waitAudit waits until an audit entry satisfies match and returns it.
func (s *server) waitAudit(t *testing.T, what string, match func(auditEntry) bool) auditEntry {
	t.Helper()
	var found auditEntry
	ok := poll(pollTimeout, func() bool {
		for _, e := range readAudit(t, s.auditPath()) {
			if match(e) {
				found = e
				return true
			}
		}
		return false
	})
	if !ok {
		data, _ := os.ReadFile(s.auditPath())
		t.Fatalf("audit.log has no entry for %s:\n%s", what, data)
	}
	return found
}

// refusedLogin matches a refused login of user whose reason contains reason.
func refusedLogin(user, reason string) func(auditEntry) bool {
	return func(e auditEntry) bool {
		return e.Action == "login" && e.Result == "refused" && e.User == user && strings.Contains(e.Reason, reason)
	}
}

// acceptedLogin matches an accepted login of user with the key fingerprint fp.
func acceptedLogin(user, fp string) func(auditEntry) bool {
	return func(e auditEntry) bool {
		return e.Action == "login" && e.Result == "accepted" && e.User == user && e.Key == fp
	}
}

// detachWorkspaces lets go of the file systems the server mounted for group workspaces under
// dataDir (lazily: a container still using one keeps it until it goes), so the directory
// can be removed.
func detachWorkspaces(t *testing.T, dataDir string) {
	entries, _ := os.ReadDir(filepath.Join(dataDir, "workspaces"))
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		p := filepath.Join(dataDir, "workspaces", e.Name())
		if err := syscall.Unmount(p, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
			t.Errorf("unmount the workspace %s: %v", p, err)
		}
	}
}
