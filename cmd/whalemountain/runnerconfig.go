package main

import (
	"fmt"
	"path/filepath"

	"whalemountain/backend/runner"
)

// RunnersConfig is the runners section: users' personal GitLab runners.
type RunnersConfig struct {
	Enabled bool `yaml:"enabled"`
	// Image is the gitlab-runner image, pinned ("gitlab/gitlab-runner:v17.11.0"); it must be
	// on the engine (pull it once as the operator).
	Image string `yaml:"image"`
	// GitLabURL is where runner containers reach GitLab; empty means gitlab.url.
	GitLabURL  string   `yaml:"gitlab_url"`
	JobImage   string   `yaml:"job_image"`
	Concurrent int      `yaml:"concurrent"`
	MaxPerUser int      `yaml:"max_per_user"`
	CPUs       float64  `yaml:"cpus"`
	Memory     ByteSize `yaml:"memory"`
	// ServerCreates lets runner create, rotate and rm manage runners in GitLab with the
	// server's GitLab token (it must be allowed to create runners for users' projects).
	ServerCreates bool `yaml:"server_creates"`
}

func defaultRunners() RunnersConfig {
	d := runner.DefaultConfig()
	return RunnersConfig{JobImage: d.JobImage, Concurrent: d.Concurrent, MaxPerUser: d.MaxRunners, CPUs: d.CPUs, Memory: ByteSize(d.Memory)}
}

// runnerConfig is the section as the runner service takes it.
func (c Config) runnerConfig() runner.Config {
	r := c.Runners
	url := r.GitLabURL
	if url == "" {
		url = c.GitLab.URL
	}
	dir := c.DataDir
	if abs, err := filepath.Abs(dir); err == nil {
		dir = abs
	}
	return runner.Config{Image: r.Image, GitLabURL: url, JobImage: r.JobImage, Concurrent: r.Concurrent,
		MaxRunners: r.MaxPerUser, CPUs: r.CPUs, Memory: int64(r.Memory), Dir: filepath.Join(dir, "runners"),
		RegistryNamespace: c.Images.RegistryNamespace}
}

// validateRunners checks the runners section when it is on.
func (c Config) validateRunners() error {
	if !c.Runners.Enabled {
		return nil
	}
	switch {
	case !c.Docker.Enabled:
		return fmt.Errorf("config: runners.enabled: runners need docker.enabled")
	case c.GitLab.URL == "":
		return fmt.Errorf("config: runners.enabled: runners need gitlab.url")
	}
	if err := c.runnerConfig().Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	return nil
}
