package main

import (
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"

	"whalemountain/backend/docker"
	"whalemountain/backend/gitlab"
	"whalemountain/backend/groups"
	"whalemountain/backend/kube"
)

// DatasetConfig is one read-only dataset as the config file writes it:
//
//	datasets:
//	  - name: imagenet
//	    description: ImageNet 2012, train and val
//	    host_path: /srv/datasets/imagenet   # or volume: imagenet (a volume the site made)
//	    target: /datasets/imagenet          # the default
//	    roles: [student, ta]                # who sees it; with groups, either counts;
//	    groups: [ml-2026]                   # neither: everyone
//	    kubernetes:                         # how the cluster's nodes reach it (pods);
//	      nfs: {server: nfs.ie.example, path: /export/datasets/imagenet}
//	      # or host_path: /srv/datasets/imagenet  (a single-node cluster)
type DatasetConfig struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	HostPath    string            `yaml:"host_path"`
	Volume      string            `yaml:"volume"`
	Target      string            `yaml:"target"`
	Roles       []string          `yaml:"roles"`
	Groups      []string          `yaml:"groups"`
	Kubernetes  *KubeSourceConfig `yaml:"kubernetes"` // nil: not in pods
}

// KubeSourceConfig is how the cluster's nodes reach a dataset or group workspace: an NFS
// export, or a directory on the node of a single-node cluster. A group's path contains
// {group}.
type KubeSourceConfig struct {
	NFS struct {
		Server string `yaml:"server"`
		Path   string `yaml:"path"`
	} `yaml:"nfs"`
	HostPath string `yaml:"host_path"`
}

func (k KubeSourceConfig) source() kube.VolumeSource {
	return kube.VolumeSource{NFSServer: k.NFS.Server, NFSPath: k.NFS.Path, HostPath: k.HostPath}
}

// GroupConfig makes a shared workspace for each group it names:
//
//	groups:
//	  - group: os-2026/team-*   # a GitLab group path or pattern
//	    size: 10g               # see the README for what enforces it
//	    target: /groups/{group} # the default
//	    kubernetes:             # how the cluster's nodes reach it (pods)
//	      nfs: {server: nfs.ie.example, path: "/export/groups/{group}"}
//	  - group: lab/seminar      # without GitLab: the members listed here
//	    members: [alice, bob]
type GroupConfig struct {
	Group      string            `yaml:"group"`
	Size       ByteSize          `yaml:"size"`
	Target     string            `yaml:"target"`
	Members    []string          `yaml:"members"`
	Kubernetes *KubeSourceConfig `yaml:"kubernetes"` // nil: not in pods
}

// withShared puts the datasets and group workspaces into the container policy.
func (c Config) withShared(d docker.Config) docker.Config {
	for _, ds := range c.Datasets {
		d.Datasets = append(d.Datasets, docker.Dataset{Name: ds.Name, Description: ds.Description, HostPath: ds.HostPath,
			Volume: ds.Volume, Target: ds.Target, Roles: ds.Roles, Groups: ds.Groups})
	}
	for _, g := range c.Groups {
		d.Groups = append(d.Groups, docker.GroupWorkspace{Group: groups.Normalize(g.Group), Size: int64(g.Size), Target: g.Target})
	}
	return d
}

// kubePolicy is the kubernetes section with the shared data that has a kubernetes source,
// validated.
func (c Config) kubePolicy() (kube.Config, error) {
	k, err := c.Kubernetes.backend()
	if err != nil {
		return k, err
	}
	for _, ds := range c.Datasets {
		if ds.Kubernetes != nil {
			k.Datasets = append(k.Datasets, kube.Dataset{Name: ds.Name, Target: ds.Target, Roles: ds.Roles, Groups: ds.Groups,
				Source: ds.Kubernetes.source()})
		}
	}
	for _, g := range c.Groups {
		if g.Kubernetes != nil {
			k.Groups = append(k.Groups, kube.GroupWorkspace{Group: groups.Normalize(g.Group), Size: int64(g.Size), Target: g.Target,
				Source: g.Kubernetes.source()})
		}
	}
	if err := k.Validate(); err != nil {
		return k, fmt.Errorf("config: %s", sharedFieldNames(err.Error()))
	}
	return k, nil
}

// sharedFieldNames turns backend/kube's field names of shared data in its errors into the
// YAML's keys ("kube config: Datasets[0].Source" -> "datasets[0].kubernetes").
func sharedFieldNames(msg string) string {
	msg = kubeSharedRE.ReplaceAllStringFunc(msg, func(m string) string {
		sub := kubeSharedRE.FindStringSubmatch(m)
		field := map[string]string{"Source": "kubernetes", "Target": "target", "Name": "name", "Roles": "roles", "Groups": "groups",
			"Group": "group", "Size": "size"}[sub[3]]
		return strings.ToLower(sub[1]) + "[" + sub[2] + "]." + field + ":"
	})
	return kubeFieldNames.Replace(msg)
}

var kubeSharedRE = regexp.MustCompile(`kube config: (Datasets|Groups)\[(\d+)\]\.(\w+)`)

// dockerPolicy is the docker section with the shared data, validated.
func (c Config) dockerPolicy() (docker.Config, error) {
	d, err := c.Docker.backend()
	if err != nil {
		return d, err
	}
	d = c.withShared(d)
	d.TAFileAccess = c.TAFileAccess == "read"
	if c.Runners.Enabled {
		d.RunnerSocketDir = c.runnerConfig().SocketDir
	}
	if err := d.Validate(); err != nil {
		return d, fmt.Errorf("config: %w", err)
	}
	return d, nil
}

// validateShared checks the datasets and groups sections beyond what the policy checks:
// who is a member must be knowable.
func (c Config) validateShared() error {
	switch c.TAFileAccess {
	case "", "off", "read":
	default:
		return fmt.Errorf("config: ta_file_access: %q: use read or off", c.TAFileAccess)
	}
	if (len(c.Datasets) > 0 || len(c.Groups) > 0) && !c.Docker.Enabled && !c.Kubernetes.Enabled() {
		return fmt.Errorf("config: datasets and groups: need docker.enabled or a kubernetes cluster")
	}
	for i, d := range c.Datasets {
		if d.Kubernetes == nil && !c.Docker.Enabled {
			return fmt.Errorf("config: datasets[%d].kubernetes: docker is off, so pods are the only place for %s: say how the cluster reaches it", i, d.Name)
		}
	}
	for i, g := range c.Groups {
		if g.Kubernetes == nil && !c.Docker.Enabled {
			return fmt.Errorf("config: groups[%d].kubernetes: docker is off, so pods are the only place for %s: say how the cluster reaches it", i, g.Group)
		}
	}
	static := map[string]bool{}
	for i, g := range c.Groups {
		field := fmt.Sprintf("groups[%d]", i)
		if err := groups.ValidatePattern(strings.TrimSpace(g.Group)); err != nil {
			return fmt.Errorf("config: %s.group: %v", field, err)
		}
		switch {
		case len(g.Members) > 0 && groups.IsPattern(g.Group):
			return fmt.Errorf("config: %s.members: members are listed for one group, not a pattern", field)
		case len(g.Members) == 0 && c.GitLab.URL == "" && !groups.IsPattern(g.Group):
			return fmt.Errorf("config: %s.members: gitlab.url is empty, so the members of %s must be listed", field, g.Group)
		}
		for _, m := range g.Members {
			if !userName.MatchString(m) {
				return fmt.Errorf("config: %s.members: %q is not a valid user name", field, m)
			}
		}
		if len(g.Members) > 0 {
			static[groups.Normalize(g.Group)] = true
		}
	}
	for i, d := range c.Datasets {
		for _, g := range d.Groups {
			if c.GitLab.URL == "" && !static[groups.Normalize(g)] {
				return fmt.Errorf("config: datasets[%d].groups: gitlab.url is empty and %s is not listed under groups with its members", i, g)
			}
		}
	}
	for i, p := range c.Presets {
		for _, g := range p.Groups {
			if c.GitLab.URL == "" && !static[groups.Normalize(g)] {
				return fmt.Errorf("config: presets[%d].groups: gitlab.url is empty and %s is not listed under groups with its members", i, g)
			}
		}
	}
	return nil
}

// needsGroups reports whether anything in the config asks who belongs to a group.
func (c Config) needsGroups() bool {
	return len(c.Datasets) > 0 || len(c.Groups) > 0 ||
		slices.ContainsFunc(c.Presets, func(p PresetConfig) bool { return len(p.Groups) > 0 })
}

// groupDirectory is who belongs to which group: the config's lists, then GitLab.
func (c Config) groupDirectory(gl *gitlab.Client, logger *slog.Logger) *groups.Directory {
	static := map[string][]string{}
	for _, g := range c.Groups {
		if len(g.Members) > 0 {
			static[g.Group] = g.Members
		}
	}
	var src groups.GitLab
	if gl != nil {
		src = gl
	}
	return groups.New(groups.Config{Static: static, TTL: c.GitLab.CacheTTL, StaleFor: c.GitLab.StaleFor, Logger: logger}, src)
}
