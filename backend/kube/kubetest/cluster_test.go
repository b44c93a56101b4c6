package kubetest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"whalemountain/backend/kube/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

func TestBinDirSaysHowToBuild(t *testing.T) {
	t.Setenv(kubetest.EnvBin, "")
	_, err := kubetest.BinDir()
	if err == nil || !strings.Contains(err.Error(), ".ci/kubetools/build") {
		t.Errorf("BinDir without %s: %v", kubetest.EnvBin, err)
	}
	t.Setenv(kubetest.EnvBin, t.TempDir())
	_, err = kubetest.BinDir()
	if err == nil || !strings.Contains(err.Error(), "has no program etcd") || !strings.Contains(err.Error(), ".ci/kubetools/build") {
		t.Errorf("BinDir of an empty directory: %v", err)
	}
}

// The cluster schedules pods onto kwok's nodes (which have GPUs), runs them, and removes
// namespaces with what is in them.
func TestClusterRunsPodsAndRemovesNamespaces(t *testing.T) {
	c := kubetest.Get(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	nodes, err := c.Client.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil || len(nodes.Items) != kubetest.Nodes {
		t.Fatalf("nodes: %v %v", nodes, err)
	}
	for _, n := range nodes.Items {
		if q := n.Status.Allocatable["nvidia.com/gpu"]; q.Value() != kubetest.NodeGPUs {
			t.Errorf("node %s has %s GPUs", n.Name, q.String())
		}
	}
	ns := "kubetest-" + kubetest.RunID()
	sel := map[string]string{kubetest.LabelRun: kubetest.RunID()}
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: sel}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	defer c.RemoveNamespaces(t, sel)
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
	}
	// The default ServiceAccount comes from the controllers a moment after the namespace.
	for {
		_, err = c.Client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{})
		if err == nil || !strings.Contains(err.Error(), "serviceaccount") || ctx.Err() != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("create pod: %v", err)
	}
	for {
		p, err := c.Client.CoreV1().Pods(ns).Get(ctx, "p", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if p.Status.Phase == corev1.PodRunning && p.Spec.NodeName != "" {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("pod not running: %+v", p.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
	c.RemoveNamespaces(t, sel)
	for {
		_, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("namespace not removed: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
