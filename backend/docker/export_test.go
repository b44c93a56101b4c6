package docker

import (
	"context"
	"time"

	"whalemountain/backend/audit"
)

// SetCgroupRoot points the usage reader at another cgroup tree ("" for none: every
// container's usage then comes from the stats API).
func SetCgroupRoot(s *Service, root string) { s.usage.root = root }

// SampleRound runs one round of the usage reader.
func SampleRound(s *Service, ctx context.Context) { s.sampleRound(ctx) }

// NewWithTimings is New with the engine's answer awaited at most answer, and the snapshot
// read again every probe (each read bounded by half of answer): what a test of a hung engine needs
// to see it hang in seconds.
func NewWithTimings(cfg Config, log *audit.Log, answer, probe time.Duration) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := newService(cfg, nil, log)
	cli, err := newClient(cfg.Host, &s.calls, answer)
	if err != nil {
		return nil, err
	}
	s.api = cli
	s.live.probeEvery, s.live.resyncWait = probe, answer/2
	return s, nil
}

// SetClock makes s read the time from now (the waiting list, the hold limit, the culler).
func SetClock(s *Service, now func() time.Time) { s.now = now }

// GroupVolumeName is the engine name of group's workspace volume.
func GroupVolumeName(s *Service, group string) string { return s.cfg.groupVolumeName(group) }
