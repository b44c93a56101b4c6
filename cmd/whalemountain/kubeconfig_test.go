package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"whalemountain/backend/kube"
)

// The kubernetes: section is off unless a cluster is named, reaches backend/kube's Config
// field by field, and its errors name the YAML's keys.
func TestKubernetesSection(t *testing.T) {
	c := defaultConfig()
	if c.Kubernetes.Enabled() {
		t.Fatal("Kubernetes on by default")
	}
	path := writeFile(t, "wm.yaml", `
kubernetes:
  kubeconfig: /etc/whalemountain/kubeconfig
  context: lab
  namespace_prefix: class-
  quotas:
    student: {cpus: 2, memory: 4g, pods: 3, gpus: 1}
  default_memory: 1g
  gpu_node_selector: {gpu: "true"}
  gpu_tolerations: [{key: nvidia.com/gpu, operator: Exists, effect: NoSchedule}]
  pod_security: restricted
  capabilities: [NET_BIND_SERVICE]
  home_storage_class: standard
  home_size: 5g
  token_lifetime: 2h
`, 0o644)
	if err := c.loadFile(path); err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	k, err := c.Kubernetes.backend()
	if err != nil {
		t.Fatal(err)
	}
	want := kube.Quota{CPUs: 2, Memory: 4 << 30, Pods: 3, GPUs: 1}
	switch {
	case k.Kubeconfig != "/etc/whalemountain/kubeconfig" || k.Context != "lab" || k.NamespacePrefix != "class-":
		t.Errorf("cluster: %+v", k)
	case k.Student != want || k.TA != kube.DefaultConfig().TA:
		t.Errorf("quotas: student %+v, ta %+v", k.Student, k.TA)
	case k.DefaultMemory != 1<<30 || k.HomeSize != 5<<30 || k.HomeStorageClass != "standard" || k.TokenLifetime != 2*time.Hour:
		t.Errorf("defaults: %+v", k)
	case k.PodSecurity != kube.PodSecurityRestricted || len(k.GPUTolerations) != 1 || k.GPUTolerations[0].Operator != "Exists" || k.GPUNodeSelector["gpu"] != "true":
		t.Errorf("policy: %+v", k)
	}

	for _, tt := range []struct {
		name string
		edit func(*KubeConfig)
		want string
	}{
		{"both", func(k *KubeConfig) { k.InCluster = true }, "config: kubernetes: set kubeconfig or in_cluster, not both"},
		{"prefix", func(k *KubeConfig) { k.NamespacePrefix = "Bad_" }, "config: kubernetes.namespace_prefix: must be"},
		{"quota", func(k *KubeConfig) { k.Quotas.TA.Pods = 0 }, "config: kubernetes.quotas.ta.pods: must be at least 1"},
		{"security", func(k *KubeConfig) { k.PodSecurity = "privileged" }, "config: kubernetes.pod_security: must be"},
		{"token", func(k *KubeConfig) { k.TokenLifetime = time.Minute }, "config: kubernetes.token_lifetime: must be between 10m and 48h"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			c.Kubernetes.Kubeconfig = "/k"
			tt.edit(&c.Kubernetes)
			err := c.validate()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Errorf("got %v, want %q...", err, tt.want)
			}
		})
	}
}

func TestKubeRBACSubcommand(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"kube-rbac"}, envMap(nil), &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	// Secrets too, for runners in users' namespaces (kube.TestKubeRBACIsMinimal holds them
	// to that); never nodes or cluster-wide RBAC.
	for _, w := range []string{"kind: ClusterRole", "name: whalemountain", "pods/exec", "serviceaccounts/token", "pods/attach", "- secrets"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("lacks %q:\n%s", w, out.String())
		}
	}
	for _, w := range []string{"nodes", "clusterroles", "clusterrolebindings", "escalate", "impersonate"} {
		if strings.Contains(out.String(), w) {
			t.Errorf("grants %s:\n%s", w, out.String())
		}
	}
	if code := run([]string{"kube-rbac", "extra"}, envMap(nil), &out, &errb); code != 2 {
		t.Errorf("extra argument: exit %d", code)
	}
}
