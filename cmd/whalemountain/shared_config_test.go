package main

import (
	"strings"
	"testing"
)

func TestSharedSection(t *testing.T) {
	load := func(t *testing.T, yaml string) (Config, error) {
		t.Helper()
		c := defaultConfig()
		if err := c.loadFile(writeFile(t, "wm.yaml", yaml, 0o600)); err != nil {
			return c, err
		}
		return c, c.validate()
	}
	c, err := load(t, `
gitlab:
  url: https://gitlab.example.com
datasets:
  - name: imagenet
    description: ImageNet
    host_path: /srv/datasets/imagenet
    roles: [student, ta]
    groups: [ml-2026]
  - name: weights
    volume: weights-2026
    target: /data/weights
groups:
  - group: os-2026/team-*
    size: 10g
  - group: lab/seminar
    members: [alice, bob]
`)
	if err != nil {
		t.Fatal(err)
	}
	d, err := c.dockerPolicy()
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Datasets) != 2 || d.Datasets[0].HostPath != "/srv/datasets/imagenet" || d.Datasets[1].Target != "/data/weights" ||
		len(d.Groups) != 2 || d.Groups[0].Size != 10<<30 || d.Groups[1].Group != "lab/seminar" {
		t.Fatalf("policy: %+v %+v", d.Datasets, d.Groups)
	}

	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no source", "datasets:\n  - name: x\n", "HostPath and Volume"},
		{"host path over the socket", "datasets:\n  - name: x\n    host_path: /var/run/docker.sock\n", "Docker socket"},
		{"relative host path", "datasets:\n  - name: x\n    host_path: data/x\n", "HostPath"},
		{"unknown key", "datasets:\n  - name: x\n    hostpath: /srv/x\n", "hostpath"},
		{"group members without GitLab", "groups:\n  - group: os/team-a\n", "members of os/team-a must be listed"},
		{"members of a pattern", "groups:\n  - group: os/team-*\n    members: [alice]\n", "not a pattern"},
		{"bad member", "groups:\n  - group: os/a\n    members: [\"al ice\"]\n", "al ice"},
		{"bad group", "groups:\n  - group: \"*/team\"\n    members: [alice]\n", "first segment"},
		{"dataset group nobody lists", "datasets:\n  - name: x\n    host_path: /srv/x\n    groups: [ml]\n", "not listed under groups"},
		{"size", "groups:\n  - group: os/a\n    members: [alice]\n    size: lots\n", "lots"},
		{"docker off", "docker:\n  enabled: false\ndatasets:\n  - name: x\n    host_path: /srv/x\n", "docker.enabled"},
	} {
		if _, err := load(t, tc.yaml); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}
