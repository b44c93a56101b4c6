package main

// The shell's performance target, measured side by side in one run on one container: a
// terminal through WhaleMountain (`ssh -tt -p PORT host shell box`) against what ie-docker
// users had (`ssh host docker exec -it CONTAINER sh` through OpenSSH's sshd), and against
// plain `docker exec -it` without ssh. Each client runs in a PTY of its own; the figures are
// what a user's terminal receives:
//
//   - throughput: `cat` of a 20 MB text file in the container, bytes read from the PTY from
//     the Enter until a sentinel printed after it, in MB/s (median of the rounds);
//   - keystroke latency: a character typed into `cat` on a raw terminal (as into vi), time
//     until it comes back (p50, p99 of 200 samples after a warm-up).
//
//	go test -run '^$' -bench Shell ./cmd/whalemountain/
//
// It needs the Docker Engine, the OpenSSH client and OpenSSH's server at /usr/sbin/sshd
// (apt-get install openssh-server), which it runs on 127.0.0.1 with a configuration of its
// own.

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/crypto/ssh"

	"whalemountain/backend/docker/dockertest"
)

const (
	benchFileSize   = 20_000_000 // bytes of the file cat prints
	benchRounds     = 5          // throughput rounds per path, interleaved
	benchSamples    = 200        // keystrokes per path
	benchWarmup     = 20         // keystrokes not counted
	benchWait       = 30 * time.Second
	benchSSHDPath   = "/usr/sbin/sshd"
	benchCols       = 100
	benchRows       = 30
	benchFileInCtr  = "/tmp/wm-bench-20mb"
	benchPromptText = "# "
)

// benchKey is an ed25519 key pair in an OpenSSH private key file (0600).
type benchKey struct {
	path string
	pub  ssh.PublicKey
}

func benchNewKey(tb testing.TB, dir, name string) benchKey {
	tb.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		tb.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		tb.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		tb.Fatal(err)
	}
	return benchKey{path: path, pub: signer.PublicKey()}
}

func (k benchKey) authorizedKey() string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k.pub)))
}

func benchFreePort(tb testing.TB) string {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer l.Close()
	_, port, _ := net.SplitHostPort(l.Addr().String())
	return port
}

// localSSHArgs reaches user@127.0.0.1:port with key and nothing of the user's own setup: no
// user configuration, no known_hosts, no prompts; flags before the destination, remote after.
func localSSHArgs(port, key, user string, flags []string, remote ...string) []string {
	args := []string{
		"-F", "/dev/null",
		"-o", "BatchMode=yes",
		"-o", "IdentitiesOnly=yes",
		"-o", "IdentityAgent=none",
		"-o", "StrictHostKeyChecking=no",
		"-o", "UserKnownHostsFile=/dev/null",
		"-o", "LogLevel=ERROR",
		"-o", "ConnectTimeout=10",
		"-p", port,
		"-i", key,
	}
	args = append(args, flags...)
	args = append(args, user+"@127.0.0.1")
	return append(args, remote...)
}

// benchRun runs a command to its end and fails the benchmark unless it exits 0.
func benchRun(tb testing.TB, name string, args ...string) string {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), benchWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = environWithout("SSH_AUTH_SOCK")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("%s %q: %v\nstdout: %s\nstderr: %s", name, args, err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// benchWhaleMountain starts the server binary with a keys directory holding key for alice,
// and returns its port. Its containers carry this run's labels and prefix.
func benchWhaleMountain(tb testing.TB, dir, prefix string, key benchKey) string {
	port, _ := benchServer(tb, dir, prefix, key, []string{"alice"})
	return port
}

// benchServer starts the server binary on 127.0.0.1 with key registered for every one of
// users (students), extra flags added to `serve`; it returns the port and the process ID.
func benchServer(tb testing.TB, dir, prefix string, key benchKey, users []string, flags ...string) (string, int) {
	tb.Helper()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(filepath.Join(data, "keys"), 0o700); err != nil {
		tb.Fatal(err)
	}
	for _, u := range users {
		if err := os.WriteFile(filepath.Join(data, "keys", u+".keys"), []byte(key.authorizedKey()+"\n"), 0o600); err != nil {
			tb.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "whalemountain.yaml")
	// Many logins at once from one address: the limits on connections not yet logged in
	// are raised, so they measure the dashboards and not the flood protection.
	yaml := fmt.Sprintf("log_level: warn\nlimits:\n  max_startups: 200:30:400\n  per_source_max_startups: 200\ndocker:\n  name_prefix: %s\n  stop_timeout: 2s\n  labels:\n    %s: %q\n    %s: %q\n",
		prefix, dockertest.LabelRun, dockertest.RunID(), dockertest.LabelService, prefix)
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	port := benchFreePort(tb)
	addr := net.JoinHostPort("127.0.0.1", port)
	log := &lockedBuffer{}
	cmd := exec.Command(serverBin, append([]string{"serve", "--listen", addr, "--data-dir", data, "--config", cfg}, flags...)...)
	cmd.Env = environWithout("WM_")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start the server: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(stopTimeout):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	// log_level warn hides the listening line: wait for the port instead (one refused
	// probe counts as nothing here).
	if !poll(startTimeout, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		tb.Fatalf("the server did not listen on %s:\n%s", addr, log.String())
	}
	select {
	case <-exited:
		tb.Fatalf("the server exited:\n%s", log.String())
	default:
	}
	return port, cmd.Process.Pid
}

// benchSSHD runs OpenSSH's sshd on 127.0.0.1 with a host key, authorized keys and PID
// file of its own, letting the current user in with key; it returns the port and user.
func benchSSHD(tb testing.TB, dir string, key benchKey) (port, login string) {
	tb.Helper()
	if _, err := os.Stat(benchSSHDPath); err != nil {
		tb.Fatalf("the anchor of this benchmark is OpenSSH's sshd, and %s is missing: apt-get install openssh-server (%v)", benchSSHDPath, err)
	}
	u, err := user.Current()
	if err != nil {
		tb.Fatal(err)
	}
	dir = filepath.Join(dir, "sshd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		tb.Fatal(err)
	}
	host := benchNewKey(tb, dir, "host_ed25519")
	auth := filepath.Join(dir, "authorized_keys")
	if err := os.WriteFile(auth, []byte(key.authorizedKey()+"\n"), 0o600); err != nil {
		tb.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// sshd refuses to start as root without its privilege separation directory.
		if err := os.MkdirAll("/run/sshd", 0o755); err != nil {
			tb.Fatalf("privilege separation directory for sshd: %v", err)
		}
	}
	port = benchFreePort(tb)
	cfg := filepath.Join(dir, "sshd_config")
	conf := strings.Join([]string{
		"Port " + port,
		"ListenAddress 127.0.0.1",
		"HostKey " + host.path,
		"AuthorizedKeysFile " + auth,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"UsePAM no",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"PermitRootLogin prohibit-password",
		"StrictModes no",
		"PrintMotd no",
		"PrintLastLog no",
		"AllowUsers " + u.Username,
		"LogLevel ERROR",
		"",
	}, "\n")
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	log := &lockedBuffer{}
	cmd := exec.Command(benchSSHDPath, "-D", "-e", "-f", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start sshd: %v", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	ssh, err := exec.LookPath("ssh")
	if err != nil {
		tb.Fatalf("the OpenSSH client (ssh) is needed (apt-get install openssh-client): %v", err)
	}
	var last string
	if !poll(startTimeout, func() bool {
		select {
		case <-exited:
			return true
		default:
		}
		out, err := exec.Command(ssh, localSSHArgs(port, key.path, u.Username, nil, "echo", "sshd-ok")...).CombinedOutput()
		last = string(out)
		return err == nil && strings.TrimSpace(last) == "sshd-ok"
	}) || func() bool {
		select {
		case <-exited:
			return true
		default:
			return false
		}
	}() {
		tb.Fatalf("sshd on 127.0.0.1:%s does not let %s in: %s\nsshd log:\n%s", port, u.Username, last, log.String())
	}
	return port, u.Username
}

// benchTerm is a client in a PTY; what it prints is read as it comes.
type benchTerm struct {
	name string
	cmd  *exec.Cmd
	ptmx *os.File
	out  chan []byte
	buf  []byte // read, not yet consumed
	done chan struct{}
}

func benchOpen(tb testing.TB, name string, argv ...string) *benchTerm {
	tb.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(environWithout("SSH_AUTH_SOCK"), "TERM=xterm-256color")
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: benchCols, Rows: benchRows})
	if err != nil {
		tb.Fatalf("%s: start in a pty: %v", name, err)
	}
	bt := &benchTerm{name: name, cmd: cmd, ptmx: ptmx, out: make(chan []byte, 1<<14), done: make(chan struct{})}
	go func() {
		defer close(bt.out)
		b := make([]byte, 64<<10)
		for {
			n, err := ptmx.Read(b)
			if n > 0 {
				bt.out <- slices.Clone(b[:n])
			}
			if err != nil {
				return
			}
		}
	}()
	go func() {
		_ = cmd.Wait()
		close(bt.done)
	}()
	tb.Cleanup(func() {
		select {
		case <-bt.done:
		default:
			_ = cmd.Process.Kill()
			<-bt.done
		}
		_ = ptmx.Close()
		for range bt.out { // let the reader end
		}
	})
	return bt
}

func (bt *benchTerm) send(tb testing.TB, s string) {
	tb.Helper()
	if _, err := bt.ptmx.Write([]byte(s)); err != nil {
		tb.Fatalf("%s: type %q: %v", bt.name, s, err)
	}
}

// readUntil consumes output through the first sentinel and returns how many bytes came
// before it.
func (bt *benchTerm) readUntil(tb testing.TB, sentinel string, timeout time.Duration) int {
	tb.Helper()
	sent := []byte(sentinel)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	n := 0
	var seen bytes.Buffer // the last bytes, for the error
	for {
		if i := bytes.Index(bt.buf, sent); i >= 0 {
			n += i
			bt.buf = bt.buf[i+len(sent):]
			return n
		}
		if keep := len(sent) - 1; len(bt.buf) > keep {
			n += len(bt.buf) - keep
			bt.buf = bt.buf[len(bt.buf)-keep:]
		}
		select {
		case chunk, ok := <-bt.out:
			if !ok {
				tb.Fatalf("%s ended before printing %q; last output: %q", bt.name, sentinel, seen.String())
			}
			seen.Write(chunk)
			if seen.Len() > 2048 {
				seen.Next(seen.Len() - 2048)
			}
			bt.buf = append(bt.buf, chunk...)
		case <-timer.C:
			tb.Fatalf("%s did not print %q within %v; last output: %q", bt.name, sentinel, timeout, seen.String())
		}
	}
}

// throughput cats the big file once and returns MB/s as the terminal received them.
func (bt *benchTerm) throughput(tb testing.TB) float64 {
	tb.Helper()
	start := time.Now()
	bt.send(tb, "cat "+benchFileInCtr+"; echo WM''-BENCH-DONE\r")
	n := bt.readUntil(tb, "WM-BENCH-DONE", benchWait)
	d := time.Since(start)
	if n < benchFileSize {
		tb.Fatalf("%s: %d bytes before the sentinel, want at least %d", bt.name, n, benchFileSize)
	}
	bt.readUntil(tb, benchPromptText, benchWait)
	return float64(n) / 1e6 / d.Seconds()
}

// keystroke types one character into the raw cat and returns the time until it is back.
func (bt *benchTerm) keystroke(tb testing.TB) time.Duration {
	tb.Helper()
	start := time.Now()
	bt.send(tb, "x")
	bt.readUntil(tb, "x", benchWait)
	return time.Since(start)
}

func percentile(sorted []time.Duration, p float64) time.Duration {
	i := int(float64(len(sorted)-1)*p + 0.5)
	return sorted[i]
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

// benchEngine is the busybox test image and a name prefix for a benchmark's server (tag
// tells benchmarks apart); what the server makes is removed after it has stopped.
func benchEngine(b *testing.B, tag string) (img, prefix string) {
	b.Helper()
	cli := dockertest.Client(b)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img = dockertest.BusyboxImage(ctx, b, cli)
	prefix = "b" + dockertest.RunID()[8:] + tag
	labels := map[string]string{dockertest.LabelRun: dockertest.RunID(), dockertest.LabelService: prefix}
	b.Cleanup(func() { // registered first: runs after the server has stopped
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		if err := dockertest.Remove(ctx, cli, labels); err != nil {
			b.Errorf("remove the benchmark's containers: %v", err)
		}
	})
	return img, prefix
}

// BenchmarkShell compares a terminal into a container through WhaleMountain with
// `ssh host docker exec -it` through OpenSSH and with `docker exec -it` alone.
func BenchmarkShell(b *testing.B) {
	sshBin, err := exec.LookPath("ssh")
	if err != nil {
		b.Fatalf("the OpenSSH client (ssh) is needed (apt-get install openssh-client): %v", err)
	}
	dockerBin, err := exec.LookPath("docker")
	if err != nil {
		b.Fatalf("the docker command is needed for the anchors: %v", err)
	}
	if _, err := os.Stat(benchSSHDPath); err != nil {
		b.Fatalf("the anchor of this benchmark is OpenSSH's sshd, and %s is missing: apt-get install openssh-server", benchSSHDPath)
	}
	img, prefix := benchEngine(b, "sh")

	dir := b.TempDir()
	key := benchNewKey(b, dir, "id_ed25519")
	wmPort := benchWhaleMountain(b, dir, prefix, key)
	sshdPort, login := benchSSHD(b, dir, key)

	wm := func(flags []string, remote ...string) []string {
		return append([]string{sshBin}, localSSHArgs(wmPort, key.path, "alice", flags, remote...)...)
	}
	benchRun(b, sshBin, wm(nil, "run", "--name", "box", img)[1:]...)
	engineName := prefix + "-alice-box"
	benchRun(b, sshBin, wm(nil, "exec", "box", "--", "sh", "-c",
		fmt.Sprintf("'yes %s | head -c %d > %s'", strings.Repeat("w", 63), benchFileSize, benchFileInCtr))[1:]...)

	// DOCKER_HOST, when set, must reach docker on the sshd side too.
	remoteDocker := []string{dockerBin}
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		remoteDocker = []string{"env", "DOCKER_HOST=" + h, dockerBin}
	}
	paths := []*benchTerm{
		benchOpen(b, "whalemountain", wm([]string{"-tt"}, "shell", "box")...),
		benchOpen(b, "ssh+docker exec", append([]string{sshBin}, localSSHArgs(sshdPort, key.path, login, []string{"-tt"},
			append(remoteDocker, "exec", "-it", engineName, "sh")...)...)...),
		benchOpen(b, "docker exec", dockerBin, "exec", "-it", engineName, "sh"),
	}
	for _, p := range paths {
		p.readUntil(b, benchPromptText, benchWait)
	}

	b.ResetTimer()
	thr := make([][]float64, len(paths))
	for range benchRounds {
		for i, p := range paths {
			thr[i] = append(thr[i], p.throughput(b))
		}
	}
	for _, p := range paths {
		p.send(b, "stty raw -echo; echo RE''ADY; cat\r")
		p.readUntil(b, "READY", benchWait)
	}
	lat := make([][]time.Duration, len(paths))
	for k := range benchWarmup + benchSamples {
		for i, p := range paths {
			d := p.keystroke(b)
			if k >= benchWarmup {
				lat[i] = append(lat[i], d)
			}
		}
	}
	b.StopTimer()

	type figures struct {
		mbps     float64
		p50, p99 time.Duration
	}
	fig := make([]figures, len(paths))
	for i := range paths {
		slices.Sort(lat[i])
		fig[i] = figures{median(thr[i]), percentile(lat[i], 0.50), percentile(lat[i], 0.99)}
	}
	us := func(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
	for i, tag := range []string{"wm", "sshd", "dexec"} {
		b.ReportMetric(fig[i].mbps, tag+"-MB/s")
		b.ReportMetric(us(fig[i].p50), tag+"-p50-us")
		b.ReportMetric(us(fig[i].p99), tag+"-p99-us")
	}
	// The design's target: WhaleMountain at least as good as ssh + docker exec -it.
	b.ReportMetric(fig[0].mbps/fig[1].mbps, "wm/sshd-MB/s")
	b.ReportMetric(float64(fig[0].p50)/float64(fig[1].p50), "wm/sshd-p50")
	b.ReportMetric(float64(fig[0].p99)/float64(fig[1].p99), "wm/sshd-p99")
	var t strings.Builder
	fmt.Fprintf(&t, "\n%-44s %10s %12s %12s\n", "path (same container)", "MB/s", "echo p50", "echo p99")
	cmds := []string{
		"ssh -tt host shell box (WhaleMountain)",
		"ssh -tt host docker exec -it C sh (sshd)",
		"docker exec -it C sh (no ssh)",
	}
	for i := range paths {
		fmt.Fprintf(&t, "%-44s %10.1f %12v %12v\n", cmds[i], fig[i].mbps,
			fig[i].p50.Round(time.Microsecond), fig[i].p99.Round(time.Microsecond))
	}
	for i, name := range []string{"sshd", "docker exec"} {
		a := fig[i+1]
		fmt.Fprintf(&t, "%-44s %10.2f %12.2f %12.2f\n", "ratio WhaleMountain / "+name,
			fig[0].mbps/a.mbps, float64(fig[0].p50)/float64(a.p50), float64(fig[0].p99)/float64(a.p99))
	}
	fmt.Fprintf(&t, "(%d MB cat, median of %d rounds; %d keystrokes into a raw cat after %d warm-up; MB/s: higher is better, echo: lower)",
		benchFileSize/1_000_000, benchRounds, benchSamples, benchWarmup)
	b.Log(t.String())
}
