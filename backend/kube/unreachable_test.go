package kube_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// Without a cluster the room says so in one line and the snapshot says why; nothing dies.
func TestUnreachableClusterDegrades(t *testing.T) {
	t.Parallel()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens there now
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["gone"] = &clientcmdapi.Cluster{Server: "https://" + addr, InsecureSkipTLSVerify: true}
	cfg.AuthInfos["gone"] = &clientcmdapi.AuthInfo{Token: "x"}
	cfg.Contexts["gone"] = &clientcmdapi.Context{Cluster: "gone", AuthInfo: "gone"}
	cfg.CurrentContext = "gone"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		t.Fatal(err)
	}
	kc := kube.DefaultConfig()
	kc.Kubeconfig = path
	svc, err := kube.New(kc, nil)
	if err != nil {
		t.Fatalf("new: %v", err)
	}
	defer svc.Close()
	if err := svc.Watch(t.Context()); err != nil {
		t.Fatal(err)
	}
	alice := kubetest.Student("alice")
	ctx := ctxFor(t)
	_, err = svc.Run(ctx, alice, kube.RunSpec{Name: "box", Image: "busybox:1"})
	if !errors.Is(err, kube.ErrUnavailable) || strings.Contains(err.Error(), "\n") || !strings.HasSuffix(err.Error(), "Kubernetes unreachable") {
		t.Errorf("run without a cluster: %v", err)
	}
	_, err = svc.Inspect(ctx, alice, "box")

	if !errors.Is(err, kube.ErrUnavailable) {
		t.Errorf("inspect without a cluster: %v", err)
	}
	deadline := time.Now().Add(bound)
	for {
		pods, h := svc.Snapshot(alice, kube.ListOptions{})
		if len(pods) != 0 || h.OK {
			t.Fatalf("snapshot without a cluster: %+v %+v", pods, h)
		}
		if h.Err != "" && h.Err != "not watching Kubernetes yet" {
			if !strings.Contains(h.Err, "Kubernetes unreachable") {
				t.Errorf("health says %q", h.Err)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("health still %+v", h)
		}
		time.Sleep(50 * time.Millisecond)
	}
	_ = os.Remove(path)
}
