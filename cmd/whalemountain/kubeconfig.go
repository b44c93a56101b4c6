package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"whalemountain/backend/kube"
)

// KubeConfig is the `kubernetes:` section: the cluster pods are lent on and the pod policy.
// Kubernetes is on when kubeconfig is set or in_cluster is true; otherwise the Pods tab and
// the pod commands say that no cluster is configured. Its defaults are backend/kube's safe
// ones; none of it can be lifted per pod.
type KubeConfig struct {
	Kubeconfig string `yaml:"kubeconfig"` // the server's own kubeconfig
	Context    string `yaml:"context"`    // a context in it; empty: its current one
	InCluster  bool   `yaml:"in_cluster"` // use the pod's ServiceAccount instead

	PublicServer string `yaml:"public_server"`  // the API server URL in users' kubeconfigs
	PublicCAFile string `yaml:"public_ca_file"` // and the CA bundle written with it
	ClusterName  string `yaml:"cluster_name"`

	NamespacePrefix string            `yaml:"namespace_prefix"`
	Labels          map[string]string `yaml:"labels"`
	Quotas          struct {
		Student KubeQuota `yaml:"student"`
		TA      KubeQuota `yaml:"ta"`
	} `yaml:"quotas"`
	DefaultCPUs   float64  `yaml:"default_cpus"`
	DefaultMemory ByteSize `yaml:"default_memory"`

	GPUResource     string            `yaml:"gpu_resource"`
	GPUNodeSelector map[string]string `yaml:"gpu_node_selector"`
	GPUTolerations  []KubeToleration  `yaml:"gpu_tolerations"`
	GPURuntimeClass string            `yaml:"gpu_runtime_class"`

	PodSecurity  string   `yaml:"pod_security"` // baseline or restricted
	RunAsUser    int64    `yaml:"run_as_user"`
	Capabilities []string `yaml:"capabilities"`

	HomeStorageClass string   `yaml:"home_storage_class"` // empty: an emptyDir home, said plainly
	HomeSize         ByteSize `yaml:"home_size"`
	HomeTarget       string   `yaml:"home_target"`

	TokenLifetime time.Duration `yaml:"token_lifetime"` // of kubeconfigs handed to users

	// SharedRepairEvery is how often claims of shared data their owners are no longer
	// entitled to are removed (see datasets and groups, kubernetes:); 0: 5m.
	SharedRepairEvery time.Duration `yaml:"shared_repair_every"`
}

// KubeQuota is one role's share of a namespace.
type KubeQuota struct {
	CPUs   float64  `yaml:"cpus"`
	Memory ByteSize `yaml:"memory"`
	Pods   int      `yaml:"pods"`
	GPUs   int      `yaml:"gpus"`
}

// KubeToleration lets GPU pods onto tainted nodes.
type KubeToleration struct {
	Key      string `yaml:"key"`
	Operator string `yaml:"operator"`
	Value    string `yaml:"value"`
	Effect   string `yaml:"effect"`
}

func defaultKubeConfig() KubeConfig {
	d := kube.DefaultConfig()
	c := KubeConfig{
		ClusterName:     d.ClusterName,
		NamespacePrefix: d.NamespacePrefix,
		DefaultCPUs:     d.DefaultCPUs,
		DefaultMemory:   ByteSize(d.DefaultMemory),
		GPUResource:     d.GPUResource,
		PodSecurity:     d.PodSecurity,
		RunAsUser:       d.RunAsUser,
		Capabilities:    d.Capabilities,
		HomeSize:        ByteSize(d.HomeSize),
		HomeTarget:      d.HomeTarget,
		TokenLifetime:   d.TokenLifetime,
	}
	c.Quotas.Student = kubeQuota(d.Student)
	c.Quotas.TA = kubeQuota(d.TA)
	return c
}

func kubeQuota(q kube.Quota) KubeQuota {
	return KubeQuota{CPUs: q.CPUs, Memory: ByteSize(q.Memory), Pods: q.Pods, GPUs: q.GPUs}
}

func (q KubeQuota) quota() kube.Quota {
	return kube.Quota{CPUs: q.CPUs, Memory: int64(q.Memory), Pods: q.Pods, GPUs: q.GPUs}
}

// Enabled reports whether a cluster is configured.
func (c KubeConfig) Enabled() bool { return c.Kubeconfig != "" || c.InCluster }

// backend converts the section into backend/kube's Config and validates it, naming fields
// as the YAML does.
func (c KubeConfig) backend() (kube.Config, error) {
	if c.Kubeconfig != "" && c.InCluster {
		return kube.Config{}, errors.New("config: kubernetes: set kubeconfig or in_cluster, not both")
	}
	if c.Context != "" && c.Kubeconfig == "" {
		return kube.Config{}, errors.New("config: kubernetes.context: set, but kubernetes.kubeconfig is empty")
	}
	d := kube.DefaultConfig()
	d.Kubeconfig, d.Context = c.Kubeconfig, c.Context
	d.PublicServer, d.PublicCAFile, d.ClusterName = c.PublicServer, c.PublicCAFile, c.ClusterName
	d.NamespacePrefix, d.Labels = c.NamespacePrefix, c.Labels
	d.Student, d.TA = c.Quotas.Student.quota(), c.Quotas.TA.quota()
	d.DefaultCPUs, d.DefaultMemory = c.DefaultCPUs, int64(c.DefaultMemory)
	d.GPUResource, d.GPUNodeSelector, d.GPURuntimeClass = c.GPUResource, c.GPUNodeSelector, c.GPURuntimeClass
	d.GPUTolerations = nil
	for _, t := range c.GPUTolerations {
		d.GPUTolerations = append(d.GPUTolerations, kube.Toleration{Key: t.Key, Operator: t.Operator, Value: t.Value, Effect: t.Effect})
	}
	d.PodSecurity, d.RunAsUser, d.Capabilities = c.PodSecurity, c.RunAsUser, c.Capabilities
	d.HomeStorageClass, d.HomeSize, d.HomeTarget = c.HomeStorageClass, int64(c.HomeSize), c.HomeTarget
	d.TokenLifetime = c.TokenLifetime
	d.SharedRepairEvery = c.SharedRepairEvery
	if err := d.Validate(); err != nil {
		return d, fmt.Errorf("config: %s", kubeFieldNames.Replace(err.Error()))
	}
	return d, nil
}

// kubeFieldNames turns backend/kube's field names in its errors into the YAML's keys.
var kubeFieldNames = strings.NewReplacer(
	"kube config: NamespacePrefix", "kubernetes.namespace_prefix:",
	"kube config: PublicServer", "kubernetes.public_server:",
	"kube config: ClusterName", "kubernetes.cluster_name:",
	"kube config: Labels", "kubernetes.labels:",
	"kube config: GPUResource", "kubernetes.gpu_resource:",
	"kube config: Student.CPUs", "kubernetes.quotas.student.cpus:",
	"kube config: Student.Memory", "kubernetes.quotas.student.memory:",
	"kube config: Student.Pods", "kubernetes.quotas.student.pods:",
	"kube config: Student.GPUs", "kubernetes.quotas.student.gpus:",
	"kube config: TA.CPUs", "kubernetes.quotas.ta.cpus:",
	"kube config: TA.Memory", "kubernetes.quotas.ta.memory:",
	"kube config: TA.Pods", "kubernetes.quotas.ta.pods:",
	"kube config: TA.GPUs", "kubernetes.quotas.ta.gpus:",
	"kube config: DefaultCPUs", "kubernetes.default_cpus:",
	"kube config: DefaultMemory", "kubernetes.default_memory:",
	"kube config: GPUNodeSelector", "kubernetes.gpu_node_selector:",
	"kube config: GPUTolerations", "kubernetes.gpu_tolerations:",
	"kube config: GPURuntimeClass", "kubernetes.gpu_runtime_class:",
	"kube config: RunAsUser", "kubernetes.run_as_user:",
	"kube config: PodSecurity", "kubernetes.pod_security:",
	"kube config: Capabilities", "kubernetes.capabilities:",
	"kube config: HomeStorageClass", "kubernetes.home_storage_class:",
	"kube config: HomeSize", "kubernetes.home_size:",
	"kube config: HomeTarget", "kubernetes.home_target:",
	"kube config: TokenLifetime", "kubernetes.token_lifetime:",
	"kube config: SharedRepairEvery", "kubernetes.shared_repair_every:",
	"kube config: ", "kubernetes: ",
)
