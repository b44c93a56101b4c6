package main

// The dashboard's targets for a whole class on two cores, measured on the server binary (a
// process of its own, so the clients' memory is not counted) with N live dashboards of
// distinct students (default 500; WM_BENCH_DASHBOARDS changes it), stdin held open, nothing
// typed:
//
//   - memory: the server's RSS (and live heap) per idle 80x24 dashboard, after a forced GC,
//     against the same server with no dashboard; the same at 200x60 on a second server;
//   - idle: the server's CPU over a quiet window, as % of one core, and the bytes all
//     dashboards receive meanwhile;
//   - fan-out: the server's CPU for one student's burst of 10 container changes (the median
//     of three, less what idling costs over the same time), with N dashboards open minus the
//     same burst with none, per open dashboard.
//
//	go test -run '^$' -bench Dashboards ./cmd/whalemountain/
//
// Targets: <= 0.5 MiB per 80x24 dashboard, <= 2 % of a core for 500 idle, 0 bytes while nothing
// changes (an uptime may cost one small update a minute), <= 0.5 ms per dashboard per burst.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"whalemountain/backend/docker/dockertest"
)

const (
	benchIdleWindow = 20 * time.Second
	benchClockTicks = 100 // USER_HZ: the unit of /proc/PID/stat's times
)

// benchProc reads a process's figures from /proc.
type benchProc struct{ pid int }

// cpu is the process's user+system time so far.
func (p benchProc) cpu(tb testing.TB) time.Duration {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		tb.Fatal(err)
	}
	// The command may hold spaces: fields start after the last ')'.
	f := strings.Fields(string(data[strings.LastIndexByte(string(data), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / benchClockTicks
}

// rss is the process's resident set in bytes.
func (p benchProc) rss(tb testing.TB) int64 {
	tb.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// settle forces a GC in the server (through its pprof endpoint), waits for the runtime to
// give memory back, and returns the RSS and the live heap in bytes.
func (p benchProc) settle(tb testing.TB, pprofAddr string) (rss, heap int64) {
	tb.Helper()
	for range 2 {
		resp, err := http.Get("http://" + pprofAddr + "/debug/pprof/heap?gc=1&debug=1")
		if err != nil {
			tb.Fatal(err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "# HeapInuse = "); ok {
				heap, _ = strconv.ParseInt(v, 10, 64)
			}
		}
		resp.Body.Close()
		time.Sleep(2 * time.Second)
	}
	return p.rss(tb), heap
}

// benchDashboard is one open dashboard: its client and the bytes it has received.
type benchDashboard struct {
	client *ssh.Client
	stdin  *io.PipeWriter
	got    atomic.Int64
	drawn  chan struct{}
	once   sync.Once
}

func (d *benchDashboard) Write(p []byte) (int, error) {
	d.got.Add(int64(len(p)))
	if strings.Contains(string(p), "WhaleMountain") {
		d.once.Do(func() { close(d.drawn) })
	}
	return len(p), nil
}

// openDashboards opens one dashboard for each user at cols x rows, at most 16 handshakes at
// a time, and waits until every one has drawn its first frame.
func openDashboards(tb testing.TB, port string, key benchKey, users []string, cols, rows int) []*benchDashboard {
	tb.Helper()
	signer := benchSigner(tb, key)
	out := make([]*benchDashboard, len(users))
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	errs := make(chan error, len(users))
	for i, u := range users {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := openBenchDashboard(port, u, signer, cols, rows)
			if err != nil {
				errs <- fmt.Errorf("%s: %w", u, err)
				return
			}
			out[i] = d
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		for _, d := range out {
			d.stdin.Close()
			d.client.Close()
		}
	})
	return out
}

func openBenchDashboard(port, user string, signer ssh.Signer, cols, rows int) (*benchDashboard, error) {
	c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", port), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second,
	})
	if err != nil {
		return nil, err
	}
	s, err := c.NewSession()
	if err != nil {
		c.Close()
		return nil, err
	}
	if err := s.RequestPty("xterm-256color", rows, cols, ssh.TerminalModes{}); err != nil {
		c.Close()
		return nil, err
	}
	pr, pw := io.Pipe() // held open: nothing typed, no EOF
	d := &benchDashboard{client: c, stdin: pw, drawn: make(chan struct{})}
	s.Stdin, s.Stdout = pr, d
	if err := s.Shell(); err != nil {
		c.Close()
		return nil, err
	}
	select {
	case <-d.drawn:
	case <-time.After(benchWait):
		c.Close()
		return nil, fmt.Errorf("no first frame in %s", benchWait)
	}
	return d, nil
}

func benchSigner(tb testing.TB, key benchKey) ssh.Signer {
	tb.Helper()
	pem, err := os.ReadFile(key.path)
	if err != nil {
		tb.Fatal(err)
	}
	s, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

func received(ds []*benchDashboard) int64 {
	var n int64
	for _, d := range ds {
		n += d.got.Load()
	}
	return n
}

// benchBurst is one student's burst of 10 container changes (5 runs and 5 removals) through
// the command line; it returns the server's CPU meanwhile and how long that was.
func benchBurst(tb testing.TB, p benchProc, port string, key benchKey, user, img string) (cpu, took time.Duration) {
	tb.Helper()
	signer := benchSigner(tb, key)
	c, err := ssh.Dial("tcp", net.JoinHostPort("127.0.0.1", port), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(), Timeout: 30 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	defer c.Close()
	cmd := func(line string) {
		s, err := c.NewSession()
		if err != nil {
			tb.Fatal(err)
		}
		defer s.Close()
		if out, err := s.CombinedOutput(line); err != nil {
			tb.Fatalf("%s: %v\n%s", line, err, out)
		}
	}
	time.Sleep(time.Second) // the connection's own cost is not the burst's
	before, start := p.cpu(tb), time.Now()
	for i := range 5 {
		name := fmt.Sprintf("burst%d", i)
		cmd("run --name " + name + " " + img)
		cmd("rm -f " + name)
	}
	time.Sleep(3 * time.Second) // events settle, dashboards redraw
	return p.cpu(tb) - before, time.Since(start)
}

// bursts is the median of three bursts' CPU, less what idling at idlePct costs over the
// same time.
func bursts(tb testing.TB, p benchProc, port string, key benchKey, user, img string, idlePct float64) time.Duration {
	var xs []float64
	for range 3 {
		cpu, took := benchBurst(tb, p, port, key, user, img)
		xs = append(xs, float64(cpu)-idlePct/100*float64(took))
	}
	return time.Duration(median(xs))
}

// idleCPU is the server's CPU over the quiet window, in % of one core, and the bytes the
// dashboards received meanwhile.
func idleCPU(tb testing.TB, p benchProc, ds []*benchDashboard) (float64, int64) {
	tb.Helper()
	bytes0, cpu0 := received(ds), p.cpu(tb)
	time.Sleep(benchIdleWindow)
	return 100 * float64(p.cpu(tb)-cpu0) / float64(benchIdleWindow), received(ds) - bytes0
}

func BenchmarkDashboards(b *testing.B) {
	n := 500
	if v, err := strconv.Atoi(os.Getenv("WM_BENCH_DASHBOARDS")); err == nil && v > 0 {
		n = v
	}
	cli := dockertest.Client(b)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, b, cli)
	prefix := "b" + dockertest.RunID()[8:] + "db"
	labels := map[string]string{dockertest.LabelRun: dockertest.RunID(), dockertest.LabelService: prefix}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		if err := dockertest.Remove(ctx, cli, labels); err != nil {
			b.Errorf("remove the benchmark's containers: %v", err)
		}
	})
	users := make([]string, n)
	for i := range users {
		users[i] = fmt.Sprintf("u%03d", i)
	}
	dir := b.TempDir()
	key := benchNewKey(b, dir, "id_ed25519")

	// One server for 80x24: the anchor with no dashboard, then N.
	pprof := net.JoinHostPort("127.0.0.1", benchFreePort(b))
	port, pid := benchServer(b, dir, prefix, key, users, "--pprof-addr", pprof)
	p := benchProc{pid}
	rss0, heap0 := p.settle(b, pprof)
	time.Sleep(5 * time.Second)
	idle0, _ := idleCPU(b, p, nil)
	burst0 := bursts(b, p, port, key, users[0], img, idle0)

	// Time to the first frame, one login at a time (the median of 10).
	var firsts []float64
	for _, u := range users[:min(10, n)] {
		t0 := time.Now()
		openDashboards(b, port, key, []string{u}, 80, 24)[0].client.Close()
		firsts = append(firsts, ms(time.Since(t0)))
	}
	first := median(firsts)

	start := time.Now()
	ds := openDashboards(b, port, key, users, 80, 24)
	opened := time.Since(start)
	// Quiet first (what opening allocated is given back to the OS meanwhile), then the idle
	// window, then the memory after a forced GC.
	time.Sleep(10 * time.Second)
	profiles := os.Getenv("WM_BENCH_PROFILES")
	if profiles != "" {
		// Profiles of the server while idle, for `go tool pprof`: CPU over the window, heap after.
		go saveProfile(b, pprof, "profile?seconds=18", filepath.Join(profiles, "cpu.pprof"))
	}
	idle, wire := idleCPU(b, p, ds)
	rss, heap := p.settle(b, pprof)
	if profiles != "" {
		saveProfile(b, pprof, "heap", filepath.Join(profiles, "heap.pprof"))
		saveProfile(b, pprof, "goroutine", filepath.Join(profiles, "goroutine.pprof"))
	}
	time.Sleep(10 * time.Second) // the scavenger's work after the forced GC is not the burst's
	burst := bursts(b, p, port, key, users[0], img, idle)

	// A second server for 200x60, with a fifth of the dashboards.
	m := max(n/5, 1)
	dir2 := b.TempDir()
	pprof2 := net.JoinHostPort("127.0.0.1", benchFreePort(b))
	port2, pid2 := benchServer(b, dir2, prefix, key, users[:m], "--pprof-addr", pprof2)
	p2 := benchProc{pid2}
	rssL0, heapL0 := p2.settle(b, pprof2)
	openDashboards(b, port2, key, users[:m], 200, 60)
	time.Sleep(5 * time.Second)
	rssL, heapL := p2.settle(b, pprof2)

	mib := func(v int64) float64 { return float64(v) / (1 << 20) }
	perRSS := mib(rss-rss0) / float64(n)
	perHeap := mib(heap-heap0) / float64(n)
	perRSSL := mib(rssL-rssL0) / float64(m)
	perHeapL := mib(heapL-heapL0) / float64(m)
	perBurst := float64(burst-burst0) / float64(time.Millisecond) / float64(n)
	b.ReportMetric(perRSS, "MiB-RSS/dashboard")
	b.ReportMetric(perHeap, "MiB-heap/dashboard")
	b.ReportMetric(perRSSL, "MiB-RSS/dashboard@200x60")
	b.ReportMetric(idle, "%core-idle")
	b.ReportMetric(float64(wire), "bytes-idle")
	b.ReportMetric(perBurst, "ms-cpu/dashboard/burst")
	b.ReportMetric(first, "ms-to-first-frame")
	fmt.Printf("\n%d idle dashboards (opened in %s; %s of quiet):\n", n, opened.Round(time.Millisecond), benchIdleWindow)
	fmt.Printf("  %-34s %10s %10s %10s %8s\n", "", "no dash", fmt.Sprintf("%d dash", n), "per dash", "target")
	fmt.Printf("  %-34s %8.1fMi %8.1fMi %8.3fMi %7.2fx\n", "server RSS, 80x24", mib(rss0), mib(rss), perRSS, perRSS/0.5)
	fmt.Printf("  %-34s %8.1fMi %8.1fMi %8.3fMi\n", "server live heap, 80x24", mib(heap0), mib(heap), perHeap)
	fmt.Printf("  %-34s %8.1fMi %8.1fMi %8.3fMi   (%d dashboards)\n", "server RSS, 200x60", mib(rssL0), mib(rssL), perRSSL, m)
	fmt.Printf("  %-34s %8.1fMi %8.1fMi %8.3fMi\n", "server live heap, 200x60", mib(heapL0), mib(heapL), perHeapL)
	fmt.Printf("  %-34s %9.2f%% %9.2f%% %10s %7.2fx\n", "idle CPU, % of one core", idle0, idle, "", idle/2)
	fmt.Printf("  %-34s %10s %10d %10s\n", "bytes sent while idle", "", wire, "")
	fmt.Printf("  %-34s %8.0fms %8.0fms %8.3fms %7.2fx\n", "CPU for a burst of 10 changes", ms(burst0), ms(burst), perBurst, perBurst/0.5)
	fmt.Printf("  %-34s %8.0fms   (ssh handshake to the first frame, median of 10)\n", "first frame", first)
}

// saveProfile writes one of the server's pprof profiles to path.
func saveProfile(tb testing.TB, addr, which, path string) {
	resp, err := http.Get("http://" + addr + "/debug/pprof/" + which)
	if err != nil {
		tb.Error(err)
		return
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err == nil {
		err = os.WriteFile(path, data, 0o644)
	}
	if err != nil {
		tb.Error(err)
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
