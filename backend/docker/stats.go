package docker

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// Usage: one reader for the whole server samples CPU and memory of every running managed
// container every sampleEvery into the snapshot, whoever is looking — so every row of every
// dashboard and `ps` show the same figures, and the cost grows with the running containers,
// not with the sessions. Where the engine runs on this machine the counters come from the
// containers' cgroup files (a few small reads each); otherwise, or for a container whose
// cgroup is not found, from the engine's one-shot stats API.

// usageSample is a container's counters at one moment.
type usageSample struct {
	cpu uint64    // CPU time used so far, nanoseconds
	at  time.Time // when it was read
	mem int64     // memory in use, page cache excluded; -1 unknown
}

// cpuPercent is the share of one CPU used between two samples (100 = one CPU busy).
func cpuPercent(prev, now usageSample) float64 {
	wall := now.at.Sub(prev.at)
	if now.cpu < prev.cpu || wall <= 0 {
		return 0
	}
	return float64(now.cpu-prev.cpu) / float64(wall) * 100
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

// cgroupUsage reads containers' counters from the cgroup filesystem under root
// ("/sys/fs/cgroup"), v1 or v2, cgroupfs or systemd driver.
type cgroupUsage struct{ root string }

// dirs are where a container's cgroup may be: (cpu dir, memory dir) pairs.
func (c cgroupUsage) dirs(id string) [][2]string {
	r := c.root
	return [][2]string{
		{filepath.Join(r, "docker", id), filepath.Join(r, "docker", id)},                                                   // v2, cgroupfs
		{filepath.Join(r, "system.slice", "docker-"+id+".scope"), filepath.Join(r, "system.slice", "docker-"+id+".scope")}, // v2, systemd
		{filepath.Join(r, "cpuacct", "docker", id), filepath.Join(r, "memory", "docker", id)},                              // v1, cgroupfs
		{filepath.Join(r, "cpu,cpuacct", "docker", id), filepath.Join(r, "memory", "docker", id)},
		{filepath.Join(r, "cpuacct", "system.slice", "docker-"+id+".scope"), filepath.Join(r, "memory", "system.slice", "docker-"+id+".scope")}, // v1, systemd
	}
}

// read returns the counters of container id, and false when its cgroup is not found here.
func (c cgroupUsage) read(id string) (usageSample, bool) {
	if c.root == "" || len(id) != 64 {
		return usageSample{}, false
	}
	for _, d := range c.dirs(id) {
		if s, ok := readCgroup(d[0], d[1]); ok {
			return s, true
		}
	}
	return usageSample{}, false
}

func readCgroup(cpuDir, memDir string) (usageSample, bool) {
	s := usageSample{at: time.Now(), mem: -1}
	if v, ok := statValue(filepath.Join(cpuDir, "cpu.stat"), "usage_usec"); ok { // v2
		s.cpu = v * 1000
		if cur, ok := fileValue(filepath.Join(memDir, "memory.current")); ok {
			s.mem = subInactive(cur, filepath.Join(memDir, "memory.stat"), "inactive_file")
		}
		return s, true
	}
	v, ok := fileValue(filepath.Join(cpuDir, "cpuacct.usage")) // v1
	if !ok {
		return s, false
	}
	s.cpu = v
	if cur, ok := fileValue(filepath.Join(memDir, "memory.usage_in_bytes")); ok {
		s.mem = subInactive(cur, filepath.Join(memDir, "memory.stat"), "total_inactive_file")
	}
	return s, true
}

func subInactive(usage uint64, statFile, key string) int64 {
	if v, ok := statValue(statFile, key); ok && v < usage {
		usage -= v
	}
	return int64(usage)
}

// fileValue reads a file holding one number.
func fileValue(path string) (uint64, bool) {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0, false
	}
	v, err := strconv.ParseUint(string(bytes.TrimSpace(data)), 10, 64)
	return v, err == nil
}

// statValue reads "key value" from a flat-keyed cgroup file (cpu.stat, memory.stat).
func statValue(path, key string) (uint64, bool) {
	f, err := os.Open(path)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := bytes.Cut(sc.Bytes(), []byte(" "))
		if ok && string(k) == key {
			n, err := strconv.ParseUint(string(v), 10, 64)
			return n, err == nil
		}
	}
	return 0, false
}

// apiUsage reads a container's counters with one one-shot stats call.
func (s *Service) apiUsage(ctx context.Context, id string) (usageSample, bool) {
	ctx, cancel := context.WithTimeout(ctx, sampleEvery*2)
	defer cancel()
	res, err := s.api.ContainerStats(ctx, id, client.ContainerStatsOptions{})
	if err != nil {
		return usageSample{}, false
	}
	var st container.StatsResponse
	err = json.NewDecoder(res.Body).Decode(&st)
	_ = res.Body.Close()
	if err != nil || st.Read.IsZero() {
		return usageSample{}, false
	}
	return usageSample{cpu: st.CPUStats.CPUUsage.TotalUsage, at: st.Read, mem: memUsage(st.MemoryStats)}, true
}

// sample reads every running container's usage every sampleEvery until ctx ends; with
// nothing running it costs one look at the snapshot per round.
func (s *Service) sample(ctx context.Context) {
	tick := time.NewTicker(sampleEvery)
	defer tick.Stop()
	for {
		s.sampleRound(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// sampleRound reads the running containers once, folds the figures into the snapshot and
// tells the owners' subscribers.
func (s *Service) sampleRound(ctx context.Context) {
	s.live.mu.Lock()
	var ids []string
	for id, c := range s.live.items {
		if c.State == string(container.StateRunning) {
			ids = append(ids, id)
		}
	}
	s.live.mu.Unlock()

	got := make(map[string]usageSample, len(ids))
	var viaAPI []string
	for _, id := range ids {
		if u, ok := s.usage.read(id); ok {
			got[id] = u
		} else {
			viaAPI = append(viaAPI, id)
		}
	}
	if len(viaAPI) > 0 {
		var mu sync.Mutex
		sem := make(chan struct{}, sampleWorkers)
		var wg sync.WaitGroup
		for _, id := range viaAPI {
			wg.Add(1)
			sem <- struct{}{}
			go func() {
				defer func() { <-sem; wg.Done() }()
				if u, ok := s.apiUsage(ctx, id); ok {
					mu.Lock()
					got[id] = u
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
	}

	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	owners := map[string]bool{}
	for id := range s.live.prevCPU {
		if _, ok := got[id]; !ok {
			delete(s.live.prevCPU, id) // stopped or gone: the next start begins afresh
		}
	}
	for id, u := range got {
		prev, havePrev := s.live.prevCPU[id]
		s.live.prevCPU[id] = u
		c, ok := s.live.items[id]
		if !ok || c.State != string(container.StateRunning) {
			continue
		}
		before := c
		if havePrev {
			c.CPUPercent = cpuPercent(prev, u)
		}
		if u.mem >= 0 {
			c.MemUsage = u.mem
		}
		c.StatsAt = u.at
		s.live.items[id] = c
		if before.CPUPercent != c.CPUPercent || before.MemUsage != c.MemUsage || before.StatsAt.IsZero() {
			owners[c.Owner] = true
		}
	}
	// A container that stopped shows no usage.
	for id, c := range s.live.items {
		if c.State != string(container.StateRunning) && !c.StatsAt.IsZero() {
			c.CPUPercent, c.MemUsage, c.StatsAt = 0, 0, time.Time{}
			s.live.items[id] = c
			owners[c.Owner] = true
		}
	}
	if len(owners) > 0 {
		s.live.notifyLocked(owners)
	}
}
