package main

import (
	"fmt"
	"strings"
	"time"

	units "github.com/docker/go-units"
	"go.yaml.in/yaml/v3"

	"whalemountain/backend/docker"
)

// DockerConfig is the `docker:` section: the container policy. Its defaults are
// backend/docker's safe ones; none of it can be lifted per container.
type DockerConfig struct {
	Enabled            bool              `yaml:"enabled"`
	Host               string            `yaml:"host"`
	NamePrefix         string            `yaml:"name_prefix"`
	Labels             map[string]string `yaml:"labels"`
	Capabilities       []string          `yaml:"capabilities"`
	AllowNewPrivileges bool              `yaml:"allow_new_privileges"`
	PidsLimit          int64             `yaml:"pids_limit"`
	Init               bool              `yaml:"init"`
	StopTimeout        time.Duration     `yaml:"stop_timeout"`
	DefaultCPUs        float64           `yaml:"default_cpus"`
	DefaultMemory      ByteSize          `yaml:"default_memory"`
	HomeHostPath       string            `yaml:"home_host_path"`
	HomeTarget         string            `yaml:"home_target"`
	GPUPolicy          string            `yaml:"gpu_policy"`
	Quotas             struct {
		Student QuotaConfig `yaml:"student"`
		TA      QuotaConfig `yaml:"ta"`
	} `yaml:"quotas"`
	Waiting WaitingConfig `yaml:"waiting"`
	Idle    struct {
		Student IdleConfig `yaml:"student"`
		TA      IdleConfig `yaml:"ta"`
	} `yaml:"idle"`
}

// WaitingConfig is the GPU waiting list (run --gpus N --wait).
type WaitingConfig struct {
	Window      time.Duration `yaml:"window"`
	MaxPerUser  int           `yaml:"max_per_user"`
	MaxHold     time.Duration `yaml:"max_hold"`
	HoldWarning time.Duration `yaml:"hold_warning"`
}

// IdleConfig is one role's idle culling.
type IdleConfig struct {
	After      time.Duration `yaml:"after"`
	GPUAfter   time.Duration `yaml:"gpu_after"`
	CPUBelow   float64       `yaml:"cpu_below"`
	GPUBelow   float64       `yaml:"gpu_below"`
	WarnBefore time.Duration `yaml:"warn_before"`
}

func idleConfig(p docker.IdlePolicy) IdleConfig {
	return IdleConfig{After: p.After, GPUAfter: p.GPUAfter, CPUBelow: p.CPUBelow, GPUBelow: p.GPUBelow, WarnBefore: p.WarnBefore}
}

func (c IdleConfig) policy() docker.IdlePolicy {
	return docker.IdlePolicy{After: c.After, GPUAfter: c.GPUAfter, CPUBelow: c.CPUBelow, GPUBelow: c.GPUBelow, WarnBefore: c.WarnBefore}
}

// QuotaConfig bounds what one user of a role may have.
type QuotaConfig struct {
	MaxContainers int      `yaml:"max_containers"`
	MaxRunning    int      `yaml:"max_running"`
	MaxCPUs       float64  `yaml:"max_cpus"`
	MaxMemory     ByteSize `yaml:"max_memory"`
	MaxGPUs       int      `yaml:"max_gpus"`
}

// ByteSize is a size in bytes written as "512m", "4g" or a plain number.
type ByteSize int64

// UnmarshalYAML reads "4g" and friends.
func (b *ByteSize) UnmarshalYAML(n *yaml.Node) error {
	// A *yaml.TypeError joins the decoder's own, so the field gets named.
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a size such as 512m or 4g is needed", n.Line)}}
	}
	v, err := units.RAMInBytes(strings.TrimSpace(n.Value))
	if err != nil || v < 0 {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %q is not a size such as 512m or 4g", n.Line, n.Value)}}
	}
	*b = ByteSize(v)
	return nil
}

func defaultDockerConfig() DockerConfig {
	d := docker.DefaultConfig()
	c := DockerConfig{
		Enabled:            true,
		Host:               d.Host,
		NamePrefix:         d.NamePrefix,
		Labels:             d.Labels,
		Capabilities:       d.Capabilities,
		AllowNewPrivileges: d.AllowNewPrivileges,
		PidsLimit:          d.PidsLimit,
		Init:               d.Init,
		StopTimeout:        d.StopTimeout,
		DefaultCPUs:        d.DefaultCPUs,
		DefaultMemory:      ByteSize(d.DefaultMemory),
		HomeHostPath:       d.HomeHostPath,
		HomeTarget:         d.HomeTarget,
		GPUPolicy:          d.GPUPolicy,
	}
	c.Quotas.Student = quotaConfig(d.Student)
	c.Quotas.TA = quotaConfig(d.TA)
	c.Waiting = WaitingConfig{Window: d.Waiting.Window, MaxPerUser: d.Waiting.MaxPerUser, MaxHold: d.Waiting.MaxHold, HoldWarning: d.Waiting.HoldWarning}
	c.Idle.Student = idleConfig(d.IdleStudent)
	c.Idle.TA = idleConfig(d.IdleTA)
	return c
}

func quotaConfig(q docker.Quota) QuotaConfig {
	return QuotaConfig{MaxContainers: q.MaxContainers, MaxRunning: q.MaxRunning, MaxCPUs: q.MaxCPUs, MaxMemory: ByteSize(q.MaxMemory), MaxGPUs: q.MaxGPUs}
}

func (q QuotaConfig) quota() docker.Quota {
	return docker.Quota{MaxContainers: q.MaxContainers, MaxRunning: q.MaxRunning, MaxCPUs: q.MaxCPUs, MaxMemory: int64(q.MaxMemory), MaxGPUs: q.MaxGPUs}
}

// backend converts the section into backend/docker's Config and validates it.
func (c DockerConfig) backend() (docker.Config, error) {
	d := docker.DefaultConfig()
	d.Host = c.Host
	d.NamePrefix = c.NamePrefix
	d.Labels = c.Labels
	d.Capabilities = c.Capabilities
	d.AllowNewPrivileges = c.AllowNewPrivileges
	d.PidsLimit = c.PidsLimit
	d.Init = c.Init
	d.StopTimeout = c.StopTimeout
	d.DefaultCPUs = c.DefaultCPUs
	d.DefaultMemory = int64(c.DefaultMemory)
	d.HomeHostPath = c.HomeHostPath
	d.HomeTarget = c.HomeTarget
	d.GPUPolicy = c.GPUPolicy
	d.Student = c.Quotas.Student.quota()
	d.TA = c.Quotas.TA.quota()
	d.Waiting = docker.WaitPolicy{Window: c.Waiting.Window, MaxPerUser: c.Waiting.MaxPerUser, MaxHold: c.Waiting.MaxHold, HoldWarning: c.Waiting.HoldWarning}
	d.IdleStudent = c.Idle.Student.policy()
	d.IdleTA = c.Idle.TA.policy()
	if err := d.Validate(); err != nil {
		return d, fmt.Errorf("config: %w", err)
	}
	return d, nil
}
