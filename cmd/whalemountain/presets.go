package main

import (
	"fmt"
	"time"

	"whalemountain/backend/docker"
)

// PresetConfig is one course preset as the config file writes it:
//
//	presets:
//	  - name: ml
//	    description: PyTorch for the ML course
//	    image: registry.example/ml:2026
//	    cpus: 2
//	    memory: 4g
//	    gpus: "1"
//	    env: [COURSE=ml]
//	    command: [jupyter, lab]
//	    roles: [student, ta]
//	    groups: [os-2026/team-a] # or a member of one of these GitLab groups
//	    idle_exempt: false      # true: never stopped for idleness
//	    idle_after: 0s          # replaces docker.idle.<role>.after for its containers
//	    gpu_idle_after: 0s      # replaces docker.idle.<role>.gpu_after
type PresetConfig struct {
	Name         string        `yaml:"name"`
	Description  string        `yaml:"description"`
	Image        string        `yaml:"image"`
	CPUs         float64       `yaml:"cpus"`
	Memory       ByteSize      `yaml:"memory"`
	GPUs         string        `yaml:"gpus"`
	Env          []string      `yaml:"env"`
	Command      []string      `yaml:"command"`
	Roles        []string      `yaml:"roles"`
	Groups       []string      `yaml:"groups"`
	IdleExempt   bool          `yaml:"idle_exempt"`
	IdleAfter    time.Duration `yaml:"idle_after"`
	GPUIdleAfter time.Duration `yaml:"gpu_idle_after"`
}

// presets are the config's presets in the backend's terms.
func (c Config) presets() []docker.Preset {
	out := make([]docker.Preset, 0, len(c.Presets))
	for _, p := range c.Presets {
		out = append(out, docker.Preset{Name: p.Name, Description: p.Description, Image: p.Image,
			CPUs: p.CPUs, Memory: int64(p.Memory), GPUs: p.GPUs, Env: p.Env, Cmd: p.Command, Roles: p.Roles, Groups: p.Groups,
			IdleExempt: p.IdleExempt, IdleAfter: p.IdleAfter, GPUIdleAfter: p.GPUIdleAfter})
	}
	return out
}

// validatePresets checks the presets section.
func (c Config) validatePresets() error {
	if len(c.Presets) > 0 && !c.Docker.Enabled {
		return fmt.Errorf("config: presets: need docker.enabled")
	}
	if err := docker.ValidatePresets(c.presets()); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
