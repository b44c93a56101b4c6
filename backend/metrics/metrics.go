package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/gpu"
	"whalemountain/backend/gpuhours"
)

// GPUSource gives the latest GPU sample as id may see it; *gpu.Sampler is one. The
// collector asks as reader (a TA), which sees every process and its owner.
type GPUSource interface {
	Snapshot(id backend.Identity) gpu.State
}

// ContainerSource gives the live container picture; *docker.Service is one.
type ContainerSource interface {
	Snapshot(id backend.Identity, opts docker.ListOptions) ([]docker.Container, docker.Health)
}

// SessionCounter counts open SSH sessions; *sshd.Server is one.
type SessionCounter interface {
	OpenSessions() int
}

// GPUHoursSource gives every user's GPU-hours since the first record; *gpuhours.Meter is one.
type GPUHoursSource interface {
	Totals() map[string]gpuhours.Usage
}

// Sources are what the collector reads. A nil source exports nothing for its part.
type Sources struct {
	GPUs       GPUSource
	Containers ContainerSource
	Sessions   SessionCounter
	GPUHours   GPUHoursSource
}

// reader is the identity the collector reads every user's containers and GPU processes with.
var reader = backend.Identity{User: "whalemountain", Role: backend.RoleTA}

var (
	gpuLabels       = []string{"gpu", "uuid", "name"}
	descGPUUtil     = prometheus.NewDesc("whalemountain_gpu_utilization_ratio", "GPU utilisation, 0 to 1.", gpuLabels, nil)
	descGPUMemUsed  = prometheus.NewDesc("whalemountain_gpu_memory_used_bytes", "GPU memory in use, bytes.", gpuLabels, nil)
	descGPUMemTotal = prometheus.NewDesc("whalemountain_gpu_memory_total_bytes", "GPU memory in total, bytes.", gpuLabels, nil)
	descOwnerMem    = prometheus.NewDesc("whalemountain_owner_gpu_memory_used_bytes", "GPU memory used by an owner's container processes over all GPUs, bytes.", []string{"owner"}, nil)
	descOwnerUtil   = prometheus.NewDesc("whalemountain_owner_gpu_utilization_ratio", "Mean utilisation, 0 to 1, of the GPUs the owner has processes on.", []string{"owner"}, nil)
	descContainers  = prometheus.NewDesc("whalemountain_containers", "Managed containers by owner and state.", []string{"owner", "state"}, nil)
	descSessions    = prometheus.NewDesc("whalemountain_ssh_sessions_open", "SSH sessions open now.", nil, nil)
	descHoursHeld   = prometheus.NewDesc("whalemountain_gpu_hours_held_total", "GPU-hours a user's running containers held (allocated), since the ledger began.", []string{"user"}, nil)
	descHoursUsed   = prometheus.NewDesc("whalemountain_gpu_hours_used_total", "GPU-hours a user's containers held, weighted by the GPUs' utilisation, since the ledger began.", []string{"user"}, nil)
)

// Collector is a prometheus.Collector over Sources, read at every scrape.
type Collector struct{ src Sources }

// NewCollector returns a collector reading src.
func NewCollector(src Sources) *Collector { return &Collector{src: src} }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descGPUUtil, descGPUMemUsed, descGPUMemTotal, descOwnerMem, descOwnerUtil, descContainers, descSessions, descHoursHeld, descHoursUsed} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.src.GPUs != nil {
		collectGPUs(ch, c.src.GPUs.Snapshot(reader))
	}
	if c.src.Containers != nil {
		cs, _ := c.src.Containers.Snapshot(reader, docker.ListOptions{All: true, AllUsers: true})
		type key struct{ owner, state string }
		counts := map[key]int{}
		for _, ct := range cs {
			counts[key{ct.Owner, ct.State}]++
		}
		for k, n := range counts {
			ch <- prometheus.MustNewConstMetric(descContainers, prometheus.GaugeValue, float64(n), k.owner, k.state)
		}
	}
	if c.src.Sessions != nil {
		ch <- prometheus.MustNewConstMetric(descSessions, prometheus.GaugeValue, float64(c.src.Sessions.OpenSessions()))
	}
	if c.src.GPUHours != nil {
		for u, v := range c.src.GPUHours.Totals() {
			ch <- prometheus.MustNewConstMetric(descHoursHeld, prometheus.CounterValue, v.Held, u)
			ch <- prometheus.MustNewConstMetric(descHoursUsed, prometheus.CounterValue, v.Used, u)
		}
	}
}

func collectGPUs(ch chan<- prometheus.Metric, st gpu.State) {
	type owner struct {
		mem      int64
		utilSum  float64
		utilN    int
		seenGPUs map[int]bool
	}
	owners := map[string]*owner{}
	for _, g := range st.GPUs {
		lv := []string{strconv.Itoa(g.Index), g.UUID, g.Name}
		if g.Util != nil && *g.Util >= 0 {
			ch <- prometheus.MustNewConstMetric(descGPUUtil, prometheus.GaugeValue, float64(*g.Util)/100, lv...)
		}
		if g.MemUsed != nil && *g.MemUsed >= 0 {
			ch <- prometheus.MustNewConstMetric(descGPUMemUsed, prometheus.GaugeValue, float64(*g.MemUsed), lv...)
		}
		if g.MemTotal != nil && *g.MemTotal >= 0 {
			ch <- prometheus.MustNewConstMetric(descGPUMemTotal, prometheus.GaugeValue, float64(*g.MemTotal), lv...)
		}
		for _, p := range g.Processes {
			if p.Owner == "" {
				continue
			}
			o := owners[p.Owner]
			if o == nil {
				o = &owner{seenGPUs: map[int]bool{}}
				owners[p.Owner] = o
			}
			if p.MemUsed != nil && *p.MemUsed > 0 {
				o.mem += *p.MemUsed
			}
			if !o.seenGPUs[g.Index] {
				o.seenGPUs[g.Index] = true
				if g.Util != nil && *g.Util >= 0 {
					o.utilSum += float64(*g.Util) / 100
					o.utilN++
				}
			}
		}
	}
	names := make([]string, 0, len(owners))
	for n := range owners {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		o := owners[n]
		ch <- prometheus.MustNewConstMetric(descOwnerMem, prometheus.GaugeValue, float64(o.mem), n)
		if o.utilN > 0 {
			ch <- prometheus.MustNewConstMetric(descOwnerUtil, prometheus.GaugeValue, o.utilSum/float64(o.utilN), n)
		}
	}
}

// NewRegistry is a fresh registry (not the global one) holding a collector over src.
func NewRegistry(src Sources) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(NewCollector(src))
	return reg
}

// Handler serves reg in the Prometheus exposition format.
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})
}

// Serve listens on addr and serves reg at /metrics until ctx ends. It returns nil after a
// shutdown caused by ctx, or the error that stopped it otherwise.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry) error {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ServeListener(ctx, l, reg)
}

// ServeListener is Serve on a listener the caller opened; it closes l.
func ServeListener(ctx context.Context, l net.Listener, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", Handler(reg))
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		IdleTimeout:       60 * time.Second,
	}
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = srv.Shutdown(sctx)
		case <-done:
		}
	}()
	if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
