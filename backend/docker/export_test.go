package docker

import "context"

// SetCgroupRoot points the usage reader at another cgroup tree ("" for none: every
// container's usage then comes from the stats API).
func SetCgroupRoot(s *Service, root string) { s.usage.root = root }

// SampleRound runs one round of the usage reader.
func SampleRound(s *Service, ctx context.Context) { s.sampleRound(ctx) }
