package gpu

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"

	"whalemountain/backend"
)

// Owners maps a container ID (64 hex digits) to the user it belongs to and that user's name
// for it. ok is false for a container this server does not manage.
type Owners interface {
	OwnerOf(containerID string) (owner, name string, ok bool)
}

// OwnersFunc adapts a function to Owners.
type OwnersFunc func(containerID string) (owner, name string, ok bool)

// OwnerOf calls f.
func (f OwnersFunc) OwnerOf(containerID string) (string, string, bool) { return f(containerID) }

// Options tune a Sampler; zero values take the defaults.
type Options struct {
	Interval time.Duration    // between samples; default 1s
	History  int              // samples kept per GPU; default 600
	ProcRoot string           // where /proc is; default "/proc"
	Now      func() time.Time // default time.Now
	Logger   *slog.Logger     // default slog.Default()
}

func (o Options) withDefaults() Options {
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.History <= 0 {
		o.History = 600
	}
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// ReasonNoDriver is the reason given when libnvidia-ml cannot be loaded.
const ReasonNoDriver = "no NVIDIA driver (libnvidia-ml not found)"

// Sampler is the server's one NVML reader. Sessions read its Snapshot (always cut down to
// their identity) and Subscribe to hear when it changed; the number of readers never changes how often NVML is asked.
type Sampler struct {
	lib    nvml.Interface // nil when Init failed: never call it then
	owners Owners
	opts   Options

	startOnce sync.Once
	closeOnce sync.Once
	stop      chan struct{}
	done      chan struct{}

	mu      sync.Mutex
	state   State
	rings   map[string]*ring // by GPU UUID, or "#index" when the UUID is unknown
	subs    map[int]chan struct{}
	nextSub int
	started bool
	closed  bool
}

// New initialises NVML through lib (production: nvml.New()) once. When Init fails the
// sampler is unavailable for good, says why, and never calls lib again. owners may be nil:
// then every container is "other container".
func New(lib nvml.Interface, owners Owners, opts Options) *Sampler {
	s := &Sampler{
		owners: owners,
		opts:   opts.withDefaults(),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
		rings:  map[string]*ring{},
		subs:   map[int]chan struct{}{},
	}
	if lib == nil {
		s.state = State{Reason: "NVML is not configured"}
		return s
	}
	if ret := lib.Init(); ret != nvml.SUCCESS {
		s.state = State{Reason: initReason(ret)}
		s.opts.Logger.Info("GPUs unavailable", "reason", s.state.Reason)
		return s
	}
	s.lib = lib
	s.state = State{Available: true}
	return s
}

func initReason(ret nvml.Return) string {
	switch ret {
	case nvml.ERROR_LIBRARY_NOT_FOUND:
		return ReasonNoDriver
	case nvml.ERROR_DRIVER_NOT_LOADED:
		return "NVIDIA driver not loaded"
	case nvml.ERROR_NO_PERMISSION:
		return "no permission to use the NVIDIA driver"
	default:
		return fmt.Sprintf("NVML init failed: %v", ret)
	}
}

// Available reports whether NVML works here, and if not, why.
func (s *Sampler) Available() (bool, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state.Available, s.state.Reason
}

// Start takes a first sample and then one every Interval until ctx ends or Close. It does
// nothing when NVML is unavailable, and nothing the second time.
func (s *Sampler) Start(ctx context.Context) {
	if s.lib == nil {
		return
	}
	s.startOnce.Do(func() {
		s.mu.Lock()
		s.started = true
		s.mu.Unlock()
		s.sample()
		go s.loop(ctx)
	})
}

func (s *Sampler) loop(ctx context.Context) {
	defer close(s.done)
	t := time.NewTicker(s.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.stop:
			return
		case <-t.C:
			s.sample()
		}
	}
}

// Close stops sampling, shuts NVML down (only if it was initialised) and closes every
// subscription channel. A Start after Close does nothing.
func (s *Sampler) Close() {
	s.closeOnce.Do(func() {
		s.startOnce.Do(func() {}) // waits for a Start in progress, and stops later ones
		close(s.stop)
		s.mu.Lock()
		started := s.started
		s.mu.Unlock()
		if started {
			<-s.done
		}
		if s.lib != nil {
			if ret := s.lib.Shutdown(); ret != nvml.SUCCESS {
				s.opts.Logger.Warn("NVML shutdown", "err", ret.Error())
			}
		}
		s.mu.Lock()
		s.closed = true
		for id, ch := range s.subs {
			close(ch)
			delete(s.subs, id)
		}
		s.mu.Unlock()
	})
}

// Subscribe returns a channel that receives a value after each sample that changed the
// readings (never blocking the sampler: a slow reader sees one pending signal) and a cancel
// that ends the subscription. The channel is closed by cancel or Close.
func (s *Sampler) Subscribe() (<-chan struct{}, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ch := make(chan struct{}, 1)
	if s.closed {
		close(ch)
		return ch, func() {}
	}
	id := s.nextSub
	s.nextSub++
	s.subs[id] = ch
	return ch, func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		if c, ok := s.subs[id]; ok {
			close(c)
			delete(s.subs, id)
		}
	}
}

// Snapshot is the latest sample, with every GPU's history, as a copy the caller owns, cut
// down to what id may see: a student sees every GPU and their own processes in full, any
// other process only as "in use by another user" with its GPU memory (no owner, container or
// PID); a TA sees everything plus a summary per user; the zero Identity sees the GPUs and no
// one's processes. Server-side readers that need every process (metrics, GPU allocation)
// ask as a TA identity of the server itself. There is no unfiltered way in.
func (s *Sampler) Snapshot(id backend.Identity) State {
	out := s.snapshot()
	restrict(&out, id)
	return out
}

// snapshot is the latest sample, unfiltered, as a copy the caller owns. Never hand it to a
// user: Snapshot is the only way out of the package.
func (s *Sampler) snapshot() State {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := s.state.Clone()
	for i := range out.GPUs {
		if r := s.rings[ringKey(out.GPUs[i])]; r != nil {
			out.GPUs[i].History = r.points()
		}
	}
	return out
}

// sample reads every GPU once and publishes the result.
func (s *Sampler) sample() {
	now := s.opts.Now()
	gpus, err := s.read()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err != nil {
		// The device list itself failed: keep Available (the driver is there) and say why.
		changed := s.state.Reason != err.Error() || len(s.state.GPUs) != 0
		s.state = State{Available: true, Reason: err.Error(), At: now}
		if changed {
			s.opts.Logger.Warn("GPU sample", "err", err)
			s.notifyLocked()
		}
		return
	}
	changed := s.state.Reason != "" || !sameReadings(s.state.GPUs, gpus)
	s.state = State{Available: true, At: now, GPUs: gpus}
	for _, g := range gpus {
		key := ringKey(g)
		r := s.rings[key]
		if r == nil {
			r = newRing(s.opts.History)
			s.rings[key] = r
		}
		p := Point{At: now, Util: -1, MemUsed: -1}
		if g.Util != nil {
			p.Util = *g.Util
		}
		if g.MemUsed != nil {
			p.MemUsed = *g.MemUsed
		}
		r.add(p)
	}
	if changed {
		s.notifyLocked()
	}
}

func (s *Sampler) notifyLocked() {
	for _, ch := range s.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// read asks NVML for every device. Only a failed device count fails the whole read; any
// other failed call leaves its one field unknown.
func (s *Sampler) read() ([]GPU, error) {
	n, ret := s.lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		return nil, fmt.Errorf("count GPUs: %v", ret)
	}
	gpus := make([]GPU, 0, n)
	for i := 0; i < n; i++ {
		g := GPU{Index: i}
		dev, ret := s.lib.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS || dev == nil {
			gpus = append(gpus, g)
			continue
		}
		if v, ret := dev.GetUUID(); ret == nvml.SUCCESS {
			g.UUID = v
		}
		if v, ret := dev.GetName(); ret == nvml.SUCCESS {
			g.Name = v
		}
		if v, ret := dev.GetUtilizationRates(); ret == nvml.SUCCESS {
			g.Util = ptr(int(min(v.Gpu, 100)))
		}
		if v, ret := dev.GetMemoryInfo(); ret == nvml.SUCCESS {
			g.MemUsed = ptr(int64(v.Used))
			g.MemTotal = ptr(int64(v.Total))
		}
		if v, ret := dev.GetTemperature(nvml.TEMPERATURE_GPU); ret == nvml.SUCCESS {
			g.TempC = ptr(int(v))
		}
		if v, ret := dev.GetPowerUsage(); ret == nvml.SUCCESS {
			g.PowerW = ptr(float64(v) / 1000) // milliwatts
		}
		if procs, ret := dev.GetComputeRunningProcesses(); ret == nvml.SUCCESS {
			g.ProcessesKnown = true
			g.Processes = s.attribute(procs)
		}
		gpus = append(gpus, g)
	}
	return gpus, nil
}

// attribute says, for each NVML process, which container and user it belongs to.
func (s *Sampler) attribute(procs []nvml.ProcessInfo) []Process {
	out := make([]Process, 0, len(procs))
	for _, p := range procs {
		pr := Process{PID: int(p.Pid), Where: WhereHost}
		// NVML reports an unknown amount as all ones (NVML_VALUE_NOT_AVAILABLE).
		if p.UsedGpuMemory != ^uint64(0) {
			pr.MemUsed = ptr(int64(p.UsedGpuMemory))
		}
		if id, ok := containerOfPID(s.opts.ProcRoot, p.Pid); ok {
			pr.Where = WhereOtherContainer
			pr.ContainerID = id
			if s.owners != nil {
				if owner, name, ok := s.owners.OwnerOf(id); ok {
					pr.Where = WhereContainer
					pr.Owner = owner
					pr.ContainerName = name
				}
			}
		}
		out = append(out, pr)
	}
	slices.SortStableFunc(out, func(a, b Process) int { return a.PID - b.PID })
	return out
}

func ptr[T any](v T) *T { return &v }

func ringKey(g GPU) string {
	if g.UUID != "" {
		return g.UUID
	}
	return fmt.Sprintf("#%d", g.Index)
}

// sameReadings reports whether two samples show the same values (history aside).
func sameReadings(a, b []GPU) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		x, y := a[i], b[i]
		if x.Index != y.Index || x.UUID != y.UUID || x.Name != y.Name ||
			!eqPtr(x.Util, y.Util) || !eqPtr(x.MemUsed, y.MemUsed) || !eqPtr(x.MemTotal, y.MemTotal) ||
			!eqPtr(x.TempC, y.TempC) || !eqPtr(x.PowerW, y.PowerW) ||
			x.ProcessesKnown != y.ProcessesKnown || len(x.Processes) != len(y.Processes) {
			return false
		}
		for j := range x.Processes {
			p, q := x.Processes[j], y.Processes[j]
			if p.PID != q.PID || !eqPtr(p.MemUsed, q.MemUsed) || p.Where != q.Where ||
				p.ContainerID != q.ContainerID || p.Owner != q.Owner || p.ContainerName != q.ContainerName {
				return false
			}
		}
	}
	return true
}

func eqPtr[T comparable](a, b *T) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// ring keeps the last n points.
type ring struct {
	buf  []Point
	next int
	full bool
}

func newRing(n int) *ring { return &ring{buf: make([]Point, n)} }

func (r *ring) add(p Point) {
	r.buf[r.next] = p
	r.next++
	if r.next == len(r.buf) {
		r.next = 0
		r.full = true
	}
}

// points is a copy, oldest first.
func (r *ring) points() []Point {
	if !r.full {
		return slices.Clone(r.buf[:r.next])
	}
	out := make([]Point, 0, len(r.buf))
	out = append(out, r.buf[r.next:]...)
	return append(out, r.buf[:r.next]...)
}
