package kube

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"whalemountain/backend"
	"whalemountain/backend/audit"
)

// Service lends pods on one Kubernetes cluster. Every method authorises the Identity it is
// given. It is safe for concurrent use.
type Service struct {
	cfg   Config
	rest  *rest.Config
	cs    kubernetes.Interface
	audit *audit.Log

	groupDir GroupDirectory // who belongs to which group; nil: nobody gets group data

	provMu sync.Mutex
	prov   map[string]*provision // per user: one provisioning at a time, and when it was done
	uids   map[string]string     // user and kind -> UID of the object the last apply saw

	live live
}

// New builds a Service for cfg, recording mutating actions in log (which may be nil). It
// reads the kubeconfig (or the in-cluster credentials) but does not contact the cluster:
// call Watch to start the live snapshot. Users' namespaces are made on first use.
func New(cfg Config, log *audit.Log) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	rc, err := restConfig(cfg)
	if err != nil {
		return nil, err
	}
	rc.UserAgent = "whalemountain"
	if cfg.WrapTransport != nil {
		rc.Wrap(cfg.WrapTransport)
	}
	rc.QPS, rc.Burst = 50, 100
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	s := &Service{cfg: cfg, rest: rc, cs: cs, audit: log, prov: map[string]*provision{}}
	s.live.init()
	return s, nil
}

func restConfig(cfg Config) (*rest.Config, error) {
	if cfg.Kubeconfig == "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			if errors.Is(err, rest.ErrNotInCluster) {
				return nil, errors.New("kube config: no Kubeconfig given and not running in a cluster")
			}
			return nil, fmt.Errorf("kube config: in-cluster credentials: %w", err)
		}
		return rc, nil
	}
	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: cfg.Kubeconfig}
	over := &clientcmd.ConfigOverrides{CurrentContext: cfg.Context}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, over).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube config: kubeconfig %s: %w", cfg.Kubeconfig, err)
	}
	return rc, nil
}

// Config returns (a copy of) the policy the Service applies.
func (s *Service) Config() Config {
	c := s.cfg
	c.Labels = maps.Clone(c.Labels)
	c.GPUNodeSelector = maps.Clone(c.GPUNodeSelector)
	c.GPUTolerations = slices.Clone(c.GPUTolerations)
	c.Capabilities = slices.Clone(c.Capabilities)
	c.Datasets = slices.Clone(c.Datasets)
	c.Groups = slices.Clone(c.Groups)
	return c
}

// record writes one audit line for a mutating action.
func (s *Service) record(id backend.Identity, action, target string, err error) {
	result, reason := audit.OK, ""
	if err != nil {
		result, reason = audit.Failed, err.Error()
		for _, k := range []error{ErrNotFound, ErrPermission, ErrInvalid, ErrQuota, ErrConflict} {
			if errors.Is(err, k) {
				result = audit.Refused
			}
		}
	}
	_ = s.audit.Action(id, action, target, result, reason)
}

// RecordRefusal puts a read of the pod ref that was refused to id — because it is another
// user's or does not exist, which id is told alike — in the audit log as "refused", for
// reads this service does not audit itself (inspect, logs). Other errors are not recorded.
func (s *Service) RecordRefusal(id backend.Identity, action, ref string, err error) {
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrPermission) {
		s.record(id, action, shown(ref), err)
	}
}

// provision is one user's provisioning state.
type provision struct {
	mu   sync.Mutex
	done time.Time // when the namespace was last made right; zero: never
}

func (s *Service) provisionOf(user string) *provision {
	s.provMu.Lock()
	defer s.provMu.Unlock()
	p, ok := s.prov[user]
	if !ok {
		p = &provision{}
		s.prov[user] = p
	}
	return p
}
