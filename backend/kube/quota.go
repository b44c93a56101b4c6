package kube

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"whalemountain/backend"
)

// QuotaUse is how much of one namespace's quota its pods use, as the API server counts it.
type QuotaUse struct {
	Owner     string   `json:"owner"`
	Namespace string   `json:"namespace"`
	Pods      Resource `json:"pods"`
	CPUs      Resource `json:"cpus"`   // limits.cpu, in CPUs
	Memory    Resource `json:"memory"` // limits.memory, in bytes
	GPUs      Resource `json:"gpus"`   // requests of the GPU resource
}

// Resource is one line of a quota: used of hard (Hard 0 with HasHard false: no limit).
type Resource struct {
	Used    float64 `json:"used"`
	Hard    float64 `json:"hard"`
	HasHard bool    `json:"limited"`
}

// Quotas reads the quota use of the identity's namespace, or, for a TA with AllUsers, of
// every namespace the server made. A student without a namespace yet has none to show.
func (s *Service) Quotas(ctx context.Context, id backend.Identity, opts ListOptions) ([]QuotaUse, error) {
	nss, err := s.namespacesFor(ctx, id, opts, "read your quota")
	if err != nil {
		return nil, err
	}
	out := []QuotaUse{}
	for i := range nss {
		owner := s.namespaceOwner(&nss[i])
		if owner == "" {
			continue // not the server's: it says nothing about anyone
		}
		rq, err := s.cs.CoreV1().ResourceQuotas(nss[i].Name).Get(ctx, policyObject, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // being set up again: the next call shows it
		}
		if err != nil {
			return nil, apiErr("read the quota of "+owner, err)
		}
		out = append(out, s.quotaUse(owner, rq))
	}
	return out, nil
}

// quotaUse reads a ResourceQuota's status.
func (s *Service) quotaUse(owner string, rq *corev1.ResourceQuota) QuotaUse {
	res := func(name corev1.ResourceName, milli bool) Resource {
		var r Resource
		if q, ok := rq.Status.Used[name]; ok {
			r.Used = float64(q.Value())
			if milli {
				r.Used = float64(q.MilliValue()) / 1000
			}
		}
		if q, ok := rq.Status.Hard[name]; ok {
			r.HasHard = true
			r.Hard = float64(q.Value())
			if milli {
				r.Hard = float64(q.MilliValue()) / 1000
			}
		}
		return r
	}
	return QuotaUse{
		Owner:     owner,
		Namespace: rq.Namespace,
		Pods:      res(corev1.ResourcePods, false),
		CPUs:      res(corev1.ResourceLimitsCPU, true),
		Memory:    res(corev1.ResourceLimitsMemory, false),
		GPUs:      res(corev1.ResourceName("requests."+s.cfg.GPUResource), false),
	}
}
