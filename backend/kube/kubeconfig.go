package kube

import (
	"context"
	"os"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"whalemountain/backend"
)

// Kubeconfig returns a kubeconfig for the identity's own namespace (made on first use):
// a token of the namespace's ServiceAccount from the TokenRequest API, valid for
// Config.TokenLifetime, never the server's own credentials. It is audited as "kubeconfig".
func (s *Service) Kubeconfig(ctx context.Context, id backend.Identity) ([]byte, time.Time, error) {
	b, exp, err := s.kubeconfig(ctx, id)
	s.record(id, "kubeconfig", id.User, err)
	return b, exp, err
}

func (s *Service) kubeconfig(ctx context.Context, id backend.Identity) ([]byte, time.Time, error) {
	if err := checkIdentity(id); err != nil {
		return nil, time.Time{}, err
	}
	ns, err := s.ensure(ctx, id)
	if err != nil {
		return nil, time.Time{}, err
	}
	secs := int64(s.cfg.TokenLifetime / time.Second)
	tr, err := s.cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, userObject, &authv1.TokenRequest{
		Spec: authv1.TokenRequestSpec{ExpirationSeconds: &secs},
	}, metav1.CreateOptions{})
	if err != nil {
		return nil, time.Time{}, apiErr("make a token for "+id.User, err)
	}
	server, ca, err := s.publicCluster()
	if err != nil {
		return nil, time.Time{}, err
	}
	name := s.cfg.ClusterName
	user := name + "-" + ns
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[name] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: user, Namespace: ns}
	cfg.CurrentContext = name
	b, err := clientcmd.Write(*cfg)
	if err != nil {
		return nil, time.Time{}, err
	}
	return b, tr.Status.ExpirationTimestamp.UTC(), nil
}

// publicCluster is the API server URL and CA bundle users reach the cluster with.
func (s *Service) publicCluster() (string, []byte, error) {
	server := s.cfg.PublicServer
	if server == "" {
		host, _, err := rest.DefaultServerUrlFor(s.rest)
		if err != nil {
			return "", nil, err
		}
		server = host.String()
	}
	var ca []byte
	switch {
	case s.cfg.PublicCAFile != "":
		b, err := os.ReadFile(s.cfg.PublicCAFile)
		if err != nil {
			return "", nil, err
		}
		ca = b
	case len(s.rest.CAData) > 0:
		ca = s.rest.CAData
	case s.rest.CAFile != "":
		b, err := os.ReadFile(s.rest.CAFile)
		if err != nil {
			return "", nil, err
		}
		ca = b
	}
	return server, ca, nil
}
