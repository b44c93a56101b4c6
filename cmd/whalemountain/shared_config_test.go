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

func TestSharedSectionInPods(t *testing.T) {
	kc := writeFile(t, "kubeconfig", "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:1\"}}]\n"+
		"users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n", 0o600)
	load := func(t *testing.T, yaml string) (Config, error) {
		t.Helper()
		c := defaultConfig()
		if err := c.loadFile(writeFile(t, "wm.yaml", "kubernetes:\n  kubeconfig: "+kc+"\n"+yaml, 0o600)); err != nil {
			return c, err
		}
		return c, c.validate()
	}
	c, err := load(t, `
gitlab:
  url: https://gitlab.example.com
datasets:
  - name: imagenet
    host_path: /srv/datasets/imagenet
    kubernetes:
      nfs: {server: nfs.example.org, path: /export/imagenet}
  - name: local
    host_path: /srv/local
groups:
  - group: os-2026/team-*
    size: 10g
    kubernetes:
      host_path: /srv/groups/{group}
`)
	if err != nil {
		t.Fatal(err)
	}
	k, err := c.kubePolicy()
	if err != nil {
		t.Fatal(err)
	}
	if len(k.Datasets) != 1 || k.Datasets[0].Source.NFSServer != "nfs.example.org" || k.Datasets[0].Source.NFSPath != "/export/imagenet" ||
		len(k.Groups) != 1 || k.Groups[0].Source.HostPath != "/srv/groups/{group}" || k.Groups[0].Size != 10<<30 {
		t.Fatalf("pod policy: %+v %+v", k.Datasets, k.Groups)
	}
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"no source", "datasets:\n  - name: x\n    host_path: /srv/x\n    kubernetes: {}\n", "datasets[0].kubernetes:"},
		{"nfs without path", "datasets:\n  - name: x\n    host_path: /srv/x\n    kubernetes: {nfs: {server: nfs}}\n", "datasets[0].kubernetes:"},
		{"group path without {group}", "groups:\n  - group: os/a\n    members: [alice]\n    kubernetes: {host_path: /srv/g}\n", "groups[0].kubernetes:"},
		{"docker off, no way in", "docker:\n  enabled: false\ndatasets:\n  - name: x\n", "datasets[0].kubernetes"},
		{"unknown key", "datasets:\n  - name: x\n    host_path: /srv/x\n    kubernetes: {nfs_server: x}\n", "nfs_server"},
	} {
		if _, err := load(t, tc.yaml); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// Pods alone: datasets need no host path when docker is off.
	if _, err := load(t, "docker:\n  enabled: false\ndatasets:\n  - name: x\n    kubernetes: {nfs: {server: nfs, path: /x}}\n"); err != nil {
		t.Errorf("a dataset for pods only: %v", err)
	}
}
