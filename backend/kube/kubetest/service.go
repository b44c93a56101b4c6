package kubetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"whalemountain/backend"
	"whalemountain/backend/audit"
	"whalemountain/backend/kube"
)

// Labels on every namespace a test Service makes.
const (
	LabelRun     = "whalemountain.test/run" // the process's RunID
	LabelService = "whalemountain.test/svc" // one per NewService, so tests do not see each other
)

// ServerNamespace holds the ServiceAccount test Services run as.
const ServerNamespace = "whalemountain-system"

var runID = sync.OnceValue(func() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
})

// RunID names this test process (6 hex digits).
func RunID() string { return runID() }

var serviceSeq atomic.Int64

var server struct {
	once sync.Once
	path string
	err  error
}

// ServerKubeconfig returns the path of a kubeconfig for a ServiceAccount that holds exactly
// the ClusterRole of kube.KubeRBAC, as a real deployment would: test Services run as it, so
// the tests prove that role is enough.
func (c *Cluster) ServerKubeconfig(t testing.TB) string {
	t.Helper()
	server.once.Do(func() { server.path, server.err = c.serverKubeconfig() })
	if server.err != nil {
		t.Fatalf("server identity: %v", server.err)
	}
	return server.path
}

func (c *Cluster) serverKubeconfig() (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var cr rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict([]byte(kube.KubeRBAC()), &cr); err != nil {
		return "", fmt.Errorf("KubeRBAC does not parse: %w", err)
	}
	cs := c.Client
	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ServerNamespace}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	if _, err := cs.CoreV1().ServiceAccounts(ServerNamespace).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "whalemountain"}}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	if _, err := cs.RbacV1().ClusterRoles().Create(ctx, &cr, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "whalemountain"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: cr.Name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "whalemountain", Namespace: ServerNamespace}},
	}, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	secs := int64(24 * 3600)
	tr, err := cs.CoreV1().ServiceAccounts(ServerNamespace).CreateToken(ctx, "whalemountain",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &secs}}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["test"] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthority: c.CAFile}
	cfg.AuthInfos["whalemountain"] = &clientcmdapi.AuthInfo{Token: tr.Status.Token}
	cfg.Contexts["test"] = &clientcmdapi.Context{Cluster: "test", AuthInfo: "whalemountain"}
	cfg.CurrentContext = "test"
	path := filepath.Join(c.Dir, "server.kubeconfig")
	return path, clientcmd.WriteToFile(*cfg, path)
}

// Config returns a policy for one test Service: defaults, the server's kubeconfig, a
// namespace prefix of its own and labels for this run and this service, so parallel tests
// never see each other's namespaces.
func Config(t testing.TB) kube.Config {
	t.Helper()
	c := Get(t)
	n := serviceSeq.Add(1)
	cfg := kube.DefaultConfig()
	cfg.Kubeconfig = c.ServerKubeconfig(t)
	cfg.NamespacePrefix = "t" + RunID() + strconv.FormatInt(n, 10) + "-"
	cfg.Labels = map[string]string{LabelRun: RunID(), LabelService: strconv.FormatInt(n, 10)}
	return cfg
}

// NewService builds a watching Service from Config, changed by configure, recording to
// log (which may be nil); it waits until the snapshot is filled. When the test ends it is
// closed and every namespace it made is removed.
func NewService(t testing.TB, log *audit.Log, configure ...func(*kube.Config)) *kube.Service {
	t.Helper()
	c := Get(t)
	cfg := Config(t)
	for _, f := range configure {
		f(&cfg)
	}
	svc, err := kube.New(cfg, log)
	if err != nil {
		t.Fatalf("kube service: %v", err)
	}
	t.Cleanup(func() {
		_ = svc.Close()
		c.RemoveNamespaces(t, cfg.Labels)
	})
	if err := svc.Watch(context.Background()); err != nil {
		t.Fatalf("watch: %v", err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !svc.Health().OK {
		if time.Now().After(deadline) {
			t.Fatalf("the snapshot did not fill in 15 s: %s", svc.Health().Err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return svc
}

// RemoveNamespaces deletes every namespace carrying all of sel and reports a failure to
// the test; it does not wait for them to go.
func (c *Cluster) RemoveNamespaces(t testing.TB, sel map[string]string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	list, err := c.Client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: labels.SelectorFromSet(sel).String()})
	if err != nil {
		t.Errorf("list test namespaces: %v", err)
		return
	}
	for _, ns := range list.Items {
		if err := c.Client.CoreV1().Namespaces().Delete(ctx, ns.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("remove test namespace %s: %v", ns.Name, err)
		}
	}
}

// Student and TA are identities for tests.
func Student(user string) backend.Identity {
	return backend.Identity{User: user, Role: backend.RoleStudent, KeyFingerprint: "SHA256:test", KeySource: "keys-dir", RemoteAddr: "127.0.0.1:1"}
}

// TA is a TA identity for tests.
func TA(user string) backend.Identity {
	return backend.Identity{User: user, Role: backend.RoleTA, KeyFingerprint: "SHA256:test", KeySource: "keys-dir", RemoteAddr: "127.0.0.1:1"}
}
