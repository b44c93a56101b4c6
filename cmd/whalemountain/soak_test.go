//go:build soak

package main

// The soak: `make soak` (not part of `make test`) holds a class's load on one server for
// minutes and prints what it cost. Built only with -tags soak.

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"whalemountain/backend/docker/dockertest"
)

var (
	soakDuration   = flag.Duration("soak.duration", 10*time.Minute, "how long the load is held")
	soakDashboards = flag.Int("soak.dashboards", 200, "dashboards open at once")
	soakShells     = flag.Int("soak.shells", 20, "shells streaming output")
	soakTransfers  = flag.Int("soak.transfers", 10, "sftp clients putting and getting files in a loop")
)

// soakErrors counts what went wrong during the soak, and keeps the first few.
type soakErrors struct {
	n     atomic.Int64
	mu    sync.Mutex
	first []string
}

func (e *soakErrors) add(format string, a ...any) {
	e.n.Add(1)
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.first) < 20 {
		e.first = append(e.first, fmt.Sprintf(format, a...))
	}
}

// soakFigures are the server's figures at one moment.
type soakFigures struct {
	goroutines int
	fds        int
	rss, heap  int64
}

func (f soakFigures) String() string {
	return fmt.Sprintf("goroutines %d, file descriptors %d, RSS %.1f MiB, heap in use %.1f MiB",
		f.goroutines, f.fds, float64(f.rss)/(1<<20), float64(f.heap)/(1<<20))
}

func soakMeasure(t *testing.T, p benchProc, pprofAddr string) soakFigures {
	t.Helper()
	rss, heap := p.settle(t, pprofAddr)
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", p.pid))
	return soakFigures{goroutines: soakGoroutines(t, pprofAddr), fds: len(fds), rss: rss, heap: heap}
}

// soakGoroutines reads the server's goroutine count from its pprof endpoint.
func soakGoroutines(t *testing.T, pprofAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line, _ := bufio.NewReader(resp.Body).ReadString('\n')
	n, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "goroutine profile: total ")))
	if err != nil {
		t.Fatalf("goroutine profile starts %q", line)
	}
	return n
}

// soakDial logs user in over SSH.
func soakDial(port, user string, signer ssh.Signer) (*ssh.Client, error) {
	return ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", port), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second,
	})
}

// soakCommand runs one command line as user on a connection of its own.
func soakCommand(port, user string, signer ssh.Signer, cmd string) (string, error) {
	c, err := soakDial(port, user, signer)
	if err != nil {
		return "", err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// soakShell is a shell in a container over a PTY; what it prints is handed to onOutput.
type soakShell struct {
	client *ssh.Client
	sess   *ssh.Session
	stdin  io.WriteCloser
}

func openSoakShell(port, user string, signer ssh.Signer, out io.Writer) (*soakShell, error) {
	c, err := soakDial(port, user, signer)
	if err != nil {
		return nil, err
	}
	s, err := c.NewSession()
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := s.RequestPty("xterm-256color", 24, 80, ssh.TerminalModes{ssh.ECHO: 1}); err != nil {
		c.Close()
		return nil, err
	}
	in, err := s.StdinPipe()
	if err != nil {
		c.Close()
		return nil, err
	}
	s.Stdout = out
	if err := s.Start("shell box"); err != nil {
		c.Close()
		return nil, err
	}
	return &soakShell{client: c, sess: s, stdin: in}, nil
}

func (s *soakShell) close() { s.stdin.Close(); s.client.Close() }

// echoWatch passes what a terminal prints to a channel, for waiting on an echo.
type echoWatch struct{ ch chan []byte }

func (w echoWatch) Write(p []byte) (int, error) {
	select {
	case w.ch <- bytes.Clone(p):
	default: // a reader that is not waiting loses nothing it needs
	}
	return len(p), nil
}

// TestSoak: dashboards, shells streaming output, sftp transfers and a stream of container
// changes on one server for -soak.duration. It fails on any error, and when the server
// keeps goroutines or descriptors once every client has gone; it prints the server's
// goroutines, descriptors and memory at the start and the end of the load and the p99
// keystroke echo latency during it.
func TestSoak(t *testing.T) {
	dir := t.TempDir()
	key := benchNewKey(t, dir, "soak")
	signer := benchSigner(t, key)
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	prefix := "soak" + dockertest.RunID()[8:12]
	labels := map[string]string{dockertest.LabelRun: dockertest.RunID(), dockertest.LabelService: prefix}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := dockertest.Remove(ctx, cli, labels); err != nil {
			t.Errorf("cleanup: %v", err)
		}
	})

	var users []string
	name := func(kind string, i int) string { return fmt.Sprintf("%s%03d", kind, i) }
	for i := range *soakDashboards {
		users = append(users, name("d", i))
	}
	for i := range *soakShells + 1 { // one more: the latency probe
		users = append(users, name("s", i))
	}
	for i := range *soakTransfers {
		users = append(users, name("f", i))
	}
	users = append(users, "changer")
	pprofAddr := net.JoinHostPort("127.0.0.1", benchFreePort(t))
	port, pid := benchServer(t, dir, prefix, key, users, "--pprof-addr", pprofAddr)
	proc := benchProc{pid: pid}
	baseline := soakGoroutines(t, pprofAddr)

	errs := &soakErrors{}
	// A container for every shell.
	for i := range *soakShells + 1 {
		if out, err := soakCommand(port, name("s", i), signer, "run --name box "+img); err != nil {
			t.Fatalf("run a container for %s: %v\n%s", name("s", i), err, out)
		}
	}

	ds := openDashboards(t, port, key, users[:*soakDashboards], 80, 24)
	var shells []*soakShell
	var streamed atomic.Int64
	counter := writerFunc(func(p []byte) (int, error) { streamed.Add(int64(len(p))); return len(p), nil })
	for i := range *soakShells {
		sh, err := openSoakShell(port, name("s", i), signer, counter)
		if err != nil {
			t.Fatalf("shell of %s: %v", name("s", i), err)
		}
		shells = append(shells, sh)
		// Output without end, a line every 50 ms.
		if _, err := io.WriteString(sh.stdin, "while :; do date; usleep 50000; done\n"); err != nil {
			t.Fatal(err)
		}
	}
	probeOut := echoWatch{ch: make(chan []byte, 64)}
	probe, err := openSoakShell(port, name("s", *soakShells), signer, probeOut)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(probe.stdin, "cat >/dev/null\n"); err != nil {
		t.Fatal(err)
	}

	start := soakMeasure(t, proc, pprofAddr)
	t.Logf("start: %s; %d dashboards, %d shells, %d transfer clients for %s", start, len(ds), len(shells), *soakTransfers, *soakDuration)

	done := make(chan struct{})
	var wg sync.WaitGroup
	// Transfers: put and get a 4 MiB file in the home, in a loop, checking what comes back.
	payload := make([]byte, 4<<20)
	if _, err := rand.Read(payload); err != nil {
		t.Fatal(err)
	}
	var transfers atomic.Int64
	for i := range *soakTransfers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			user := name("f", i)
			for {
				select {
				case <-done:
					return
				default:
				}
				if err := soakTransfer(port, user, signer, payload); err != nil {
					errs.add("transfer of %s: %v", user, err)
					continue
				}
				transfers.Add(1)
			}
		}()
	}
	// Container changes: one made and removed every few seconds.
	var changes atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Second):
			}
			c := "c" + strconv.Itoa(i%3)
			for _, cmd := range []string{"run --name " + c + " " + img, "rm -f " + c} {
				if out, err := soakCommand(port, "changer", signer, cmd); err != nil {
					errs.add("changer %s: %v: %s", cmd, err, out)
				}
			}
			changes.Add(1)
		}
	}()
	// Keystrokes into the probe shell: the time until each comes back.
	var lat []time.Duration
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond):
			}
			for len(probeOut.ch) > 0 {
				<-probeOut.ch
			}
			sent := time.Now()
			if _, err := io.WriteString(probe.stdin, "x"); err != nil {
				errs.add("keystroke: %v", err)
				return
			}
			timeout := time.After(10 * time.Second)
		wait:
			for {
				select {
				case p := <-probeOut.ch:
					if bytes.Contains(p, []byte("x")) {
						lat = append(lat, time.Since(sent))
						break wait
					}
				case <-timeout:
					errs.add("keystroke not echoed within 10s")
					break wait
				}
			}
		}
	}()

	time.Sleep(*soakDuration) // the load is held this long; nothing waits on it
	close(done)
	wg.Wait()
	if n := received(ds); n == 0 {
		errs.add("the dashboards received nothing")
	}
	if streamed.Load() == 0 {
		errs.add("the shells printed nothing")
	}
	end := soakMeasure(t, proc, pprofAddr)

	for _, sh := range shells {
		sh.close()
	}
	probe.close()
	for _, d := range ds {
		d.stdin.Close()
		d.client.Close()
	}
	slices.Sort(lat)
	p99 := time.Duration(0)
	if len(lat) > 0 {
		p99 = percentile(lat, 0.99)
	}
	report := fmt.Sprintf("soak of %s: %d errors; %d transfers, %d container changes, %d KiB streamed by the shells\n"+
		"  start: %s\n  end:   %s\n  keystroke echo p99 %.1f ms over %d keystrokes",
		*soakDuration, errs.n.Load(), transfers.Load(), changes.Load(), streamed.Load()>>10,
		start, end, ms(p99), len(lat))
	fmt.Println(report)
	t.Log(report)
	for _, e := range errs.first {
		t.Error(e)
	}
	// Every client gone: the server is back where it started.
	var now int
	if !poll(time.Minute, func() bool { now = soakGoroutines(t, pprofAddr); return now <= baseline+10 }) {
		t.Errorf("%d goroutines a minute after every client left, %d before any came", now, baseline)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// soakTransfer puts payload in the user's home over sftp, gets it back and compares.
func soakTransfer(port, user string, signer ssh.Signer, payload []byte) error {
	c, err := soakDial(port, user, signer)
	if err != nil {
		return err
	}
	defer c.Close()
	sc, err := sftp.NewClient(c)
	if err != nil {
		return err
	}
	defer sc.Close()
	p := filepath.Join("/home", "soak.bin")
	f, err := sc.Create(p)
	if err != nil {
		return err
	}
	if _, err := f.Write(payload); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	g, err := sc.Open(p)
	if err != nil {
		return err
	}
	defer g.Close()
	back, err := io.ReadAll(g)
	if err != nil {
		return err
	}
	if !bytes.Equal(back, payload) {
		return fmt.Errorf("%d bytes came back different", len(back))
	}
	return nil
}
