package gpu

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/server"
)

const gib = int64(1) << 30

// Container IDs in the tests.
var (
	aliceID = "a" + testID[1:]
	bobID   = "b" + testID[1:]
	otherID = "c" + testID[1:] // a container the server does not manage
)

type fakeOwners map[string][2]string

func (f fakeOwners) OwnerOf(id string) (string, string, bool) {
	v, ok := f[id]
	return v[0], v[1], ok
}

var owners = fakeOwners{aliceID: {"alice", "jupyter"}, bobID: {"bob", "train"}}

// newServer is the 8-GPU mock with every function the sampler calls set: GPU i is 10*i %
// busy, 30+i °C, 50+i W, and runs no processes.
func newServer(t *testing.T) *server.Server {
	t.Helper()
	srv := dgxa100.New()
	for i, d := range srv.Devices {
		dev := d.(*server.Device)
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			return nvml.Utilization{Gpu: uint32(10 * i), Memory: 1}, nvml.SUCCESS
		}
		dev.GetTemperatureFunc = func(s nvml.TemperatureSensors) (uint32, nvml.Return) {
			if s != nvml.TEMPERATURE_GPU {
				t.Errorf("GetTemperature(%v), want TEMPERATURE_GPU", s)
			}
			return uint32(30 + i), nvml.SUCCESS
		}
		dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return uint32(50_000 + 1000*i), nvml.SUCCESS }
		dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	}
	return srv
}

func device(srv *server.Server, i int) *server.Device { return srv.Devices[i].(*server.Device) }

// procRoot is a fake /proc with one cgroup file per PID.
func procRoot(t *testing.T, cgroups map[int]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, text := range cgroups {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// busyServer has processes of alice, bob, an unknown container and the host on GPU 0, and
// one of alice on GPU 3.
func busyServer(t *testing.T) (*server.Server, string) {
	srv := newServer(t)
	device(srv, 0).GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{
			{Pid: 400, UsedGpuMemory: 1 << 20},
			{Pid: 100, UsedGpuMemory: uint64(26 * gib)},
			{Pid: 200, UsedGpuMemory: uint64(gib)},
			{Pid: 300, UsedGpuMemory: ^uint64(0)},
			{Pid: 500, UsedGpuMemory: 2 << 20}, // already gone: no /proc entry
		}, nvml.SUCCESS
	}
	device(srv, 0).MemoryInfo = nvml.Memory{Total: uint64(40 * gib), Used: uint64(27 * gib), Free: uint64(13 * gib)}
	device(srv, 3).GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: 101, UsedGpuMemory: uint64(2 * gib)}}, nvml.SUCCESS
	}
	root := procRoot(t, map[int]string{
		100: "0::/system.slice/docker-" + aliceID + ".scope\n",
		101: "0::/docker/" + aliceID + "\n",
		200: "12:pids:/docker/" + bobID + "\n0::/\n",
		300: "0::/docker/" + otherID + "\n",
		400: "0::/user.slice/user-1000.slice/session-3.scope\n",
	})
	return srv, root
}

func TestSampleReadsEveryGPUAndAttributesProcesses(t *testing.T) {
	srv, root := busyServer(t)
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := New(srv, owners, Options{ProcRoot: root, Now: func() time.Time { return at }})
	defer s.Close()
	if ok, reason := s.Available(); !ok {
		t.Fatalf("Available() = false, %q", reason)
	}
	s.sample()
	st := s.snapshot()
	if !st.Available || st.Reason != "" || !st.At.Equal(at) || len(st.GPUs) != 8 {
		t.Fatalf("state: available %v reason %q at %v, %d GPUs", st.Available, st.Reason, st.At, len(st.GPUs))
	}
	for i, g := range st.GPUs {
		dev := device(srv, i)
		if g.Index != i || g.UUID != dev.UUID || g.Name != dev.Config.Name {
			t.Errorf("GPU %d: index %d uuid %q name %q", i, g.Index, g.UUID, g.Name)
		}
		if g.Util == nil || *g.Util != 10*i || g.TempC == nil || *g.TempC != 30+i ||
			g.PowerW == nil || *g.PowerW != float64(50+i) || g.MemTotal == nil || *g.MemTotal != 40*gib {
			t.Errorf("GPU %d readings: %+v", i, g)
		}
		if len(g.History) != 1 || g.History[0].Util != 10*i {
			t.Errorf("GPU %d history: %+v", i, g.History)
		}
	}
	if !st.GPUs[1].Free() || st.GPUs[0].Free() {
		t.Errorf("Free: GPU 0 %v, GPU 1 %v", st.GPUs[0].Free(), st.GPUs[1].Free())
	}
	mem := func(n int64) *int64 { return &n }
	want := []Process{
		{PID: 100, MemUsed: mem(26 * gib), Where: WhereContainer, ContainerID: aliceID, Owner: "alice", ContainerName: "jupyter"},
		{PID: 200, MemUsed: mem(gib), Where: WhereContainer, ContainerID: bobID, Owner: "bob", ContainerName: "train"},
		{PID: 300, MemUsed: nil, Where: WhereOtherContainer, ContainerID: otherID},
		{PID: 400, MemUsed: mem(1 << 20), Where: WhereHost},
		{PID: 500, MemUsed: mem(2 << 20), Where: WhereHost},
	}
	checkProcesses(t, st.GPUs[0].Processes, want)
	checkProcesses(t, st.GPUs[3].Processes, []Process{
		{PID: 101, MemUsed: mem(2 * gib), Where: WhereContainer, ContainerID: aliceID, Owner: "alice", ContainerName: "jupyter"},
	})
	if got := *st.GPUs[0].MemUsed; got != 27*gib {
		t.Errorf("GPU 0 memory used %d", got)
	}
}

func checkProcesses(t *testing.T, got, want []Process) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d processes, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		g, w := got[i], want[i]
		if g.PID != w.PID || !eqPtr(g.MemUsed, w.MemUsed) || g.Where != w.Where ||
			g.ContainerID != w.ContainerID || g.Owner != w.Owner || g.ContainerName != w.ContainerName {
			t.Errorf("process %d = %s, want %s", i, fmtProc(g), fmtProc(w))
		}
	}
}

func fmtProc(p Process) string {
	m := "nil"
	if p.MemUsed != nil {
		m = strconv.FormatInt(*p.MemUsed, 10)
	}
	return fmt.Sprintf("{pid %d mem %s %q %q %q/%q}", p.PID, m, p.Where, p.ContainerID, p.Owner, p.ContainerName)
}

func TestOwnersNilMakesEveryContainerOther(t *testing.T) {
	srv, root := busyServer(t)
	s := New(srv, nil, Options{ProcRoot: root})
	defer s.Close()
	s.sample()
	for _, p := range s.snapshot().GPUs[0].Processes {
		if p.Where == WhereContainer || p.Owner != "" {
			t.Errorf("without owners: %s", fmtProc(p))
		}
	}
}

func TestFailedFieldIsUnknownNotTheSample(t *testing.T) {
	srv := newServer(t)
	dev := device(srv, 2)
	dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
	dev.GetTemperatureFunc = func(nvml.TemperatureSensors) (uint32, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	dev.GetPowerUsageFunc = func() (uint32, nvml.Return) { return 0, nvml.ERROR_NOT_SUPPORTED }
	dev.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{}, nvml.ERROR_GPU_IS_LOST }
	dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NO_PERMISSION }
	device(srv, 5).GetNameFunc = func() (string, nvml.Return) { return "", nvml.ERROR_UNKNOWN }
	s := New(srv, owners, Options{ProcRoot: t.TempDir()})
	defer s.Close()
	s.sample()
	st := s.snapshot()
	if len(st.GPUs) != 8 {
		t.Fatalf("%d GPUs", len(st.GPUs))
	}
	g := st.GPUs[2]
	if g.Util != nil || g.TempC != nil || g.PowerW != nil || g.MemUsed != nil || g.MemTotal != nil || g.ProcessesKnown || g.Free() {
		t.Errorf("GPU 2 should have unknown readings: %+v", g)
	}
	if g.UUID == "" || g.Name == "" {
		t.Errorf("GPU 2 lost its identity: %+v", g)
	}
	if g.History[0].Util != -1 || g.History[0].MemUsed != -1 {
		t.Errorf("GPU 2 history %+v, want -1s", g.History)
	}
	if st.GPUs[5].Name != "" || st.GPUs[5].Util == nil || *st.GPUs[5].Util != 50 {
		t.Errorf("GPU 5: %+v", st.GPUs[5])
	}
	if st.GPUs[3].Util == nil || !st.GPUs[3].Free() {
		t.Errorf("GPU 3 should be unaffected: %+v", st.GPUs[3])
	}
}

func TestDeviceCountFailureKeepsDriverAvailable(t *testing.T) {
	srv := newServer(t)
	srv.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.ERROR_UNKNOWN }
	s := New(srv, owners, Options{ProcRoot: t.TempDir()})
	defer s.Close()
	s.sample()
	st := s.snapshot()
	if !st.Available || st.Reason == "" || len(st.GPUs) != 0 {
		t.Errorf("state %+v", st)
	}
}

func TestHistoryRingWraps(t *testing.T) {
	srv := newServer(t)
	var n atomic.Int32
	device(srv, 0).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: uint32(n.Load())}, nvml.SUCCESS
	}
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	now := start
	s := New(srv, owners, Options{History: 3, ProcRoot: t.TempDir(), Now: func() time.Time { return now }})
	defer s.Close()
	for i := range 5 {
		n.Store(int32(i))
		now = start.Add(time.Duration(i) * time.Second)
		s.sample()
		h := s.snapshot().GPUs[0].History
		if want := min(i+1, 3); len(h) != want {
			t.Fatalf("after %d samples history has %d points, want %d", i+1, len(h), want)
		}
	}
	h := s.snapshot().GPUs[0].History
	for j, p := range h {
		want := j + 2
		if p.Util != want || !p.At.Equal(start.Add(time.Duration(want)*time.Second)) {
			t.Errorf("history[%d] = %+v, want util %d", j, p, want)
		}
	}
	// A snapshot is a copy: changing it changes nothing inside.
	h[0].Util = 99
	if s.snapshot().GPUs[0].History[0].Util == 99 {
		t.Error("Snapshot shares its history with the sampler")
	}
}

func TestSubscribersHearOnlyChanges(t *testing.T) {
	srv := newServer(t)
	var util atomic.Int32
	device(srv, 0).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: uint32(util.Load())}, nvml.SUCCESS
	}
	s := New(srv, owners, Options{ProcRoot: t.TempDir()})
	ch, cancel := s.Subscribe()
	ch2, _ := s.Subscribe()
	s.sample()
	expectSignal(t, ch, true)
	s.sample() // nothing changed
	expectSignal(t, ch, false)
	util.Store(42)
	s.sample()
	expectSignal(t, ch, true)
	cancel()
	if _, ok := <-ch; ok {
		t.Error("channel still open after cancel")
	}
	cancel() // twice is fine
	s.Close()
	for range ch2 { // drained, then closed by Close
	}
	if got := len(srv.ShutdownCalls()); got != 1 {
		t.Errorf("Shutdown called %d times, want 1", got)
	}
	ch3, _ := s.Subscribe()
	if _, ok := <-ch3; ok {
		t.Error("Subscribe after Close gave an open channel")
	}
}

func expectSignal(t *testing.T, ch <-chan struct{}, want bool) {
	t.Helper()
	select {
	case <-ch:
		if !want {
			t.Error("got a change signal, want none")
		}
	default:
		if want {
			t.Error("no change signal")
		}
	}
}

func TestStartSamplesUntilClose(t *testing.T) {
	srv := newServer(t)
	var util atomic.Int32
	device(srv, 0).GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		return nvml.Utilization{Gpu: uint32(util.Add(1) % 100)}, nvml.SUCCESS
	}
	s := New(srv, owners, Options{Interval: 5 * time.Millisecond, ProcRoot: t.TempDir()})
	ch, cancel := s.Subscribe()
	defer cancel()
	s.Start(t.Context())
	s.Start(t.Context()) // second Start does nothing
	for range 3 {
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatal("no sample within 5s")
		}
	}
	s.Close()
	before := len(srv.DeviceGetCountCalls())
	time.Sleep(20 * time.Millisecond)
	if after := len(srv.DeviceGetCountCalls()); after != before {
		t.Errorf("sampling went on after Close: %d -> %d", before, after)
	}
	if got := len(s.snapshot().GPUs[0].History); got < 3 {
		t.Errorf("history has %d points after 3+ samples", got)
	}
}

// TestFailedInitMakesNoFurtherCall: on a machine without the driver any NVML call after a
// failed Init ends the process. The mock has only Init; calling anything else panics.
func TestFailedInitMakesNoFurtherCall(t *testing.T) {
	lib := &mock.Interface{InitFunc: func() nvml.Return { return nvml.ERROR_LIBRARY_NOT_FOUND }}
	s := New(lib, owners, Options{ProcRoot: t.TempDir(), Interval: time.Millisecond})
	ok, reason := s.Available()
	if ok || reason != ReasonNoDriver {
		t.Fatalf("Available() = %v, %q; want false, %q", ok, reason, ReasonNoDriver)
	}
	ch, cancel := s.Subscribe()
	defer cancel()
	s.Start(t.Context())
	time.Sleep(10 * time.Millisecond)
	st := s.snapshot()
	if st.Available || st.Reason != ReasonNoDriver || len(st.GPUs) != 0 {
		t.Errorf("Snapshot() = %+v", st)
	}
	s.Close()
	if _, open := <-ch; open {
		t.Error("subscription not closed by Close")
	}
	if n := len(lib.InitCalls()); n != 1 {
		t.Errorf("Init called %d times, want 1", n)
	}
	if n := len(lib.ShutdownCalls()) + len(lib.DeviceGetCountCalls()) + len(lib.DeviceGetHandleByIndexCalls()); n != 0 {
		t.Errorf("%d NVML calls after a failed Init", n)
	}
}

func TestInitReasons(t *testing.T) {
	for ret, want := range map[nvml.Return]string{
		nvml.ERROR_LIBRARY_NOT_FOUND: ReasonNoDriver,
		nvml.ERROR_DRIVER_NOT_LOADED: "NVIDIA driver not loaded",
		nvml.ERROR_NO_PERMISSION:     "no permission to use the NVIDIA driver",
		nvml.ERROR_UNKNOWN:           "NVML init failed: ERROR_UNKNOWN",
	} {
		lib := &mock.Interface{InitFunc: func() nvml.Return { return ret }}
		if _, got := New(lib, nil, Options{}).Available(); got != want {
			t.Errorf("Init %v: reason %q, want %q", ret, got, want)
		}
	}
	if ok, got := New(nil, nil, Options{}).Available(); ok || got == "" {
		t.Errorf("nil library: %v, %q", ok, got)
	}
}

// TestRealNVML runs against the machine's own driver.
func TestRealNVML(t *testing.T) {
	if os.Getenv("WM_NVML") != "1" {
		t.Skip("set WM_NVML=1 on a machine with an NVIDIA driver")
	}
	s := New(nvml.New(), nil, Options{})
	defer s.Close()
	if ok, reason := s.Available(); !ok {
		t.Fatalf("NVML unavailable: %s", reason)
	}
	s.Start(t.Context())
	st := s.snapshot()
	if len(st.GPUs) == 0 || st.Reason != "" {
		t.Fatalf("no GPUs: %+v", st)
	}
	for _, g := range st.GPUs {
		if g.UUID == "" || g.Name == "" || g.MemTotal == nil || *g.MemTotal <= 0 {
			t.Errorf("GPU %d incomplete: %+v", g.Index, g)
		}
		t.Logf("GPU %d %s %s util %v temp %v power %v processes %d (known %v)", g.Index, g.Name, g.UUID,
			deref(g.Util), deref(g.TempC), deref(g.PowerW), len(g.Processes), g.ProcessesKnown)
	}
}

func deref[T any](p *T) any {
	if p == nil {
		return "unknown"
	}
	return *p
}
