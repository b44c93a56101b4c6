package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/gpu"
	"whalemountain/backend/gpuhours"
)

type fakeGPUs struct{ st gpu.State }

// Snapshot gives the whole sample to a TA only, as gpu.Sampler does; anyone else would not
// see every owner, so here they get nothing and the owner metrics tests fail.
func (f fakeGPUs) Snapshot(id backend.Identity) gpu.State { return taOnly(f.st, id) }

func taOnly(st gpu.State, id backend.Identity) gpu.State {
	if !id.Valid() || !id.IsTA() {
		return gpu.State{}
	}
	return st.Clone()
}

type fakeContainers struct {
	cs     []docker.Container
	lastID backend.Identity
	opts   docker.ListOptions
}

func (f *fakeContainers) Snapshot(id backend.Identity, opts docker.ListOptions) ([]docker.Container, docker.Health) {
	f.lastID, f.opts = id, opts
	return f.cs, docker.Health{OK: true}
}

type fakeSessions int

func (f fakeSessions) OpenSessions() int { return int(f) }

func p[T any](v T) *T { return &v }

func sampleState() gpu.State {
	return gpu.State{Available: true, GPUs: []gpu.GPU{
		{
			Index: 0, UUID: "GPU-aaa", Name: "NVIDIA H100",
			Util: p(50), MemUsed: p(int64(3000)), MemTotal: p(int64(80000)),
			ProcessesKnown: true,
			Processes: []gpu.Process{
				{PID: 10, MemUsed: p(int64(1000)), Where: gpu.WhereContainer, Owner: "alice"},
				{PID: 11, MemUsed: p(int64(500)), Where: gpu.WhereContainer, Owner: "alice"},
				{PID: 12, MemUsed: p(int64(1500)), Where: gpu.WhereContainer, Owner: "bob"},
			},
		},
		{
			Index: 1, UUID: "GPU-bbb", Name: "NVIDIA H100",
			Util: p(100), MemUsed: p(int64(2000)), MemTotal: p(int64(80000)),
			ProcessesKnown: true,
			Processes: []gpu.Process{
				{PID: 20, MemUsed: p(int64(2000)), Where: gpu.WhereContainer, Owner: "alice"},
				{PID: 21, MemUsed: nil, Where: gpu.WhereHost},
			},
		},
		{
			// Unknown readings export nothing; bob's mean counts only GPUs with a reading.
			Index: 2, UUID: "GPU-ccc", Name: "NVIDIA H100",
			ProcessesKnown: true,
			Processes:      []gpu.Process{{PID: 30, Where: gpu.WhereContainer, Owner: "bob"}},
		},
	}}
}

func TestCollectorValues(t *testing.T) {
	cont := &fakeContainers{cs: []docker.Container{
		{Owner: "alice", Name: "a", State: "running"},
		{Owner: "alice", Name: "b", State: "running"},
		{Owner: "alice", Name: "c", State: "exited"},
		{Owner: "bob", Name: "d", State: "running"},
	}}
	reg := NewRegistry(Sources{GPUs: fakeGPUs{sampleState()}, Containers: cont, Sessions: fakeSessions(3)})
	want := `
# HELP whalemountain_containers Managed containers by owner and state.
# TYPE whalemountain_containers gauge
whalemountain_containers{owner="alice",state="exited"} 1
whalemountain_containers{owner="alice",state="running"} 2
whalemountain_containers{owner="bob",state="running"} 1
# HELP whalemountain_gpu_memory_total_bytes GPU memory in total, bytes.
# TYPE whalemountain_gpu_memory_total_bytes gauge
whalemountain_gpu_memory_total_bytes{gpu="0",name="NVIDIA H100",uuid="GPU-aaa"} 80000
whalemountain_gpu_memory_total_bytes{gpu="1",name="NVIDIA H100",uuid="GPU-bbb"} 80000
# HELP whalemountain_gpu_memory_used_bytes GPU memory in use, bytes.
# TYPE whalemountain_gpu_memory_used_bytes gauge
whalemountain_gpu_memory_used_bytes{gpu="0",name="NVIDIA H100",uuid="GPU-aaa"} 3000
whalemountain_gpu_memory_used_bytes{gpu="1",name="NVIDIA H100",uuid="GPU-bbb"} 2000
# HELP whalemountain_gpu_utilization_ratio GPU utilisation, 0 to 1.
# TYPE whalemountain_gpu_utilization_ratio gauge
whalemountain_gpu_utilization_ratio{gpu="0",name="NVIDIA H100",uuid="GPU-aaa"} 0.5
whalemountain_gpu_utilization_ratio{gpu="1",name="NVIDIA H100",uuid="GPU-bbb"} 1
# HELP whalemountain_owner_gpu_memory_used_bytes GPU memory used by an owner's container processes over all GPUs, bytes.
# TYPE whalemountain_owner_gpu_memory_used_bytes gauge
whalemountain_owner_gpu_memory_used_bytes{owner="alice"} 3500
whalemountain_owner_gpu_memory_used_bytes{owner="bob"} 1500
# HELP whalemountain_owner_gpu_utilization_ratio Mean utilisation, 0 to 1, of the GPUs the owner has processes on.
# TYPE whalemountain_owner_gpu_utilization_ratio gauge
whalemountain_owner_gpu_utilization_ratio{owner="alice"} 0.75
whalemountain_owner_gpu_utilization_ratio{owner="bob"} 0.5
# HELP whalemountain_ssh_sessions_open SSH sessions open now.
# TYPE whalemountain_ssh_sessions_open gauge
whalemountain_ssh_sessions_open 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if !cont.lastID.IsTA() || cont.lastID.User != "whalemountain" || !cont.opts.All || !cont.opts.AllUsers {
		t.Errorf("containers read as %v with %+v; want a TA identity with All and AllUsers", cont.lastID, cont.opts)
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestNilSourcesExportNothing(t *testing.T) {
	reg := NewRegistry(Sources{})
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("got %d metrics (err %v), want 0", n, err)
	}
	reg = NewRegistry(Sources{Sessions: fakeSessions(0)})
	want := `
# HELP whalemountain_ssh_sessions_open SSH sessions open now.
# TYPE whalemountain_ssh_sessions_open gauge
whalemountain_ssh_sessions_open 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
}

func TestReadsAtScrapeTime(t *testing.T) {
	g := &changingGPUs{}
	reg := NewRegistry(Sources{GPUs: g})
	if n := testutil.CollectAndCount(NewCollector(Sources{GPUs: g})); n != 0 {
		t.Fatalf("empty sample: %d metrics", n)
	}
	g.st = sampleState()
	if n, _ := testutil.GatherAndCount(reg, "whalemountain_gpu_utilization_ratio"); n != 2 {
		t.Fatalf("after a new sample: %d utilisation series, want 2", n)
	}
}

type changingGPUs struct{ st gpu.State }

func (f *changingGPUs) Snapshot(id backend.Identity) gpu.State { return taOnly(f.st, id) }

func TestHandlerScrape(t *testing.T) {
	reg := NewRegistry(Sources{GPUs: fakeGPUs{sampleState()}, Sessions: fakeSessions(2)})
	ts := httptest.NewServer(Handler(reg))
	defer ts.Close()
	body := get(t, ts.URL)
	for _, line := range []string{
		"whalemountain_ssh_sessions_open 2",
		`whalemountain_gpu_memory_used_bytes{gpu="0",name="NVIDIA H100",uuid="GPU-aaa"} 3000`,
		`whalemountain_owner_gpu_utilization_ratio{owner="alice"} 0.75`,
	} {
		if !strings.Contains(body, line+"\n") {
			t.Errorf("scrape lacks %q:\n%s", line, body)
		}
	}
	if strings.Contains(body, "go_goroutines") {
		t.Error("the scrape shows the process collectors: not a custom registry?")
	}
}

func TestServeStopsWithContext(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, l, NewRegistry(Sources{Sessions: fakeSessions(1)})) }()
	if body := get(t, "http://"+l.Addr().String()+"/metrics"); !strings.Contains(body, "whalemountain_ssh_sessions_open 1\n") {
		t.Errorf("scrape:\n%s", body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not stop when the context ended")
	}
}

func TestServeBadAddr(t *testing.T) {
	if err := Serve(context.Background(), "256.0.0.1:bad", NewRegistry(Sources{})); err == nil {
		t.Fatal("Serve on a bad address returned nil")
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s\n%s", url, resp.Status, b)
	}
	return string(b)
}

type fakeHours map[string]gpuhours.Usage

func (f fakeHours) Totals() map[string]gpuhours.Usage { return f }

func TestGPUHoursCounters(t *testing.T) {
	reg := NewRegistry(Sources{GPUHours: fakeHours{"alice": {Held: 2.5, Used: 1}, "bob": {Held: 0.25}}})
	want := `# HELP whalemountain_gpu_hours_held_total GPU-hours a user's running containers held (allocated), since the ledger began.
# TYPE whalemountain_gpu_hours_held_total counter
whalemountain_gpu_hours_held_total{user="alice"} 2.5
whalemountain_gpu_hours_held_total{user="bob"} 0.25
# HELP whalemountain_gpu_hours_used_total GPU-hours a user's containers held, weighted by the GPUs' utilisation, since the ledger began.
# TYPE whalemountain_gpu_hours_used_total counter
whalemountain_gpu_hours_used_total{user="alice"} 1
whalemountain_gpu_hours_used_total{user="bob"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "whalemountain_gpu_hours_held_total", "whalemountain_gpu_hours_used_total"); err != nil {
		t.Fatal(err)
	}
}
