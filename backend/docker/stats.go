package docker

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// cpuSample is a container's CPU counters at one moment.
type cpuSample struct {
	total, system uint64
	online        uint32
}

// WatchStats asks for CPU and memory usage of one container (by Container.ID) to be sampled
// into the snapshot, about every two seconds, until release is called. Watches are counted:
// a container is sampled while anyone watches it, and only then. Usage shows up in
// Snapshot, which is filtered by identity as always.
func (s *Service) WatchStats(containerID string) (release func()) {
	s.live.mu.Lock()
	s.live.watched[containerID]++
	s.live.mu.Unlock()
	select {
	case s.live.kick <- struct{}{}:
	default:
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			s.live.mu.Lock()
			defer s.live.mu.Unlock()
			s.live.watched[containerID]--
			if s.live.watched[containerID] > 0 {
				return
			}
			delete(s.live.watched, containerID)
			delete(s.live.prevCPU, containerID)
			if c, ok := s.live.items[containerID]; ok && !c.StatsAt.IsZero() {
				c.CPUPercent, c.MemUsage, c.StatsAt = 0, 0, time.Time{}
				s.live.items[containerID] = c
				s.live.notifyLocked(ownerOf(c))
			}
		})
	}
}

// sample polls one-shot stats for the watched running containers; with nothing watched it
// sleeps until WatchStats wakes it.
func (s *Service) sample(ctx context.Context) {
	var tick <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.live.kick:
		case <-tick:
		}
		s.live.mu.Lock()
		var ids []string
		for id := range s.live.watched {
			if c, ok := s.live.items[id]; ok && c.State == string(container.StateRunning) {
				ids = append(ids, id)
			}
		}
		anyWatched := len(s.live.watched) > 0
		s.live.mu.Unlock()

		sem := make(chan struct{}, sampleWorkers)
		var wg sync.WaitGroup
		for _, id := range ids {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				s.sampleOne(ctx, id)
			}()
		}
		wg.Wait()

		tick = nil
		if anyWatched {
			tick = time.After(sampleEvery)
		}
	}
}

func (s *Service) sampleOne(ctx context.Context, id string) {
	ctx, cancel := context.WithTimeout(ctx, sampleEvery*2)
	defer cancel()
	res, err := s.api.ContainerStats(ctx, id, client.ContainerStatsOptions{Stream: false})
	if err != nil {
		return
	}
	var st container.StatsResponse
	err = json.NewDecoder(res.Body).Decode(&st)
	_ = res.Body.Close()
	if err != nil || st.Read.IsZero() {
		return
	}
	now := sampleOf(st.CPUStats)

	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	if s.live.watched[id] == 0 {
		return
	}
	prev, havePrev := s.live.prevCPU[id]
	if !havePrev && st.PreCPUStats.SystemUsage > 0 {
		prev, havePrev = sampleOf(st.PreCPUStats), true
	}
	s.live.prevCPU[id] = now
	c, ok := s.live.items[id]
	if !ok {
		return
	}
	if havePrev {
		c.CPUPercent = cpuPercent(prev, now)
	}
	c.MemUsage = memUsage(st.MemoryStats)
	if c.MemLimit == 0 {
		c.MemLimit = int64(st.MemoryStats.Limit)
	}
	c.StatsAt = st.Read
	s.live.items[id] = c
	s.live.notifyLocked(ownerOf(c))
}

func sampleOf(st container.CPUStats) cpuSample {
	online := st.OnlineCPUs
	if online == 0 {
		online = uint32(len(st.CPUUsage.PercpuUsage))
	}
	return cpuSample{total: st.CPUUsage.TotalUsage, system: st.SystemUsage, online: online}
}

// cpuPercent is the share of one CPU used between two samples, as the docker CLI computes it.
func cpuPercent(prev, now cpuSample) float64 {
	if now.total < prev.total || now.system <= prev.system {
		return 0
	}
	cpuDelta := float64(now.total - prev.total)
	sysDelta := float64(now.system - prev.system)
	online := now.online
	if online == 0 {
		online = 1
	}
	return cpuDelta / sysDelta * float64(online) * 100
}

// memUsage is usage without the inactive page cache, as the docker CLI shows it.
func memUsage(m container.MemoryStats) int64 {
	usage := m.Usage
	for _, k := range []string{"total_inactive_file", "inactive_file"} { // cgroup v1, v2
		if v, ok := m.Stats[k]; ok && v < usage {
			usage -= v
			break
		}
	}
	return int64(usage)
}
