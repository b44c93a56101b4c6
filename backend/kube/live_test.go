package kube_test

import (
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// snapshotBound is how soon a change made through the API shows in the snapshot.
const snapshotBound = 2 * time.Second

func TestSnapshotFollowsTheClusterAndWakesOnlyTheOwner(t *testing.T) {
	t.Parallel()
	c := kubetest.Get(t)
	svc := kubetest.NewService(t, nil)
	ctx := ctxFor(t)
	alice, bob, tom := kubetest.Student("alice"), kubetest.Student("bob"), kubetest.TA("tom")
	if err := svc.Provision(ctx, bob); err != nil {
		t.Fatal(err)
	}
	if h := svc.Health(); !h.OK {
		t.Fatalf("health: %+v", h)
	}
	aliceCh, cancelA := svc.SubscribeFor(alice, kube.ListOptions{})
	defer cancelA()
	bobCh, cancelB := svc.SubscribeFor(bob, kube.ListOptions{})
	defer cancelB()
	taCh, cancelT := svc.SubscribeFor(tom, kube.ListOptions{AllUsers: true})
	defer cancelT()
	drain := func() {
		for _, ch := range []<-chan struct{}{aliceCh, bobCh, taCh} {
			select {
			case <-ch:
			default:
			}
		}
	}
	time.Sleep(200 * time.Millisecond) // bob's namespace settles
	drain()

	start := time.Now()
	if _, err := svc.Run(ctx, alice, kube.RunSpec{Name: "live", Image: "busybox:1"}); err != nil {
		t.Fatal(err)
	}
	select {
	case <-aliceCh:
	case <-time.After(snapshotBound):
		t.Fatalf("alice not told of her new pod within %s", snapshotBound)
	}
	pods, _ := svc.Snapshot(alice, kube.ListOptions{})
	if len(pods) != 1 || pods[0].Name != "live" {
		t.Errorf("alice's snapshot: %+v", pods)
	}
	t.Logf("new pod in the snapshot after %s", time.Since(start).Round(time.Millisecond))
	select {
	case <-taCh:
	case <-time.After(snapshotBound):
		t.Error("the TA watching everyone was not told")
	}
	p := waitPod(t, svc, alice, "live", running)
	if p.StartedAt.IsZero() || p.Node == "" || !p.Ready {
		t.Errorf("running pod: %+v", p)
	}
	select {
	case <-bobCh:
		t.Error("bob was woken by alice's pod")
	default:
	}

	// A change made elsewhere (here: an administrator deletes the pod) shows as quickly.
	start = time.Now()
	ns := svc.Config().Namespace("alice")
	zero := int64(0)
	if err := c.Client.CoreV1().Pods(ns).Delete(ctx, "live", metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(snapshotBound)
	for {
		pods, _ := svc.Snapshot(alice, kube.ListOptions{})
		if len(pods) == 0 {
			break
		}
		select {
		case <-aliceCh:
		case <-deadline:
			t.Fatalf("removed pod still in the snapshot after %s: %+v", snapshotBound, pods)
		}
	}
	t.Logf("removed pod gone from the snapshot after %s", time.Since(start).Round(time.Millisecond))

	// Unsubscribing closes the channel; a second cancel is harmless.
	cancelB()
	cancelB()
	if _, ok := <-bobCh; ok {
		t.Error("channel open after cancel")
	}
}

// When the API server cannot be reached the snapshot says so; when it can again the
// snapshot catches up by itself.
func TestSnapshotRecoversAfterAnOutage(t *testing.T) {
	t.Parallel()
	c := kubetest.Get(t)
	u, err := url.Parse(c.Server)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, u.Host)
	path := c.ServerKubeconfig(t)
	kc, err := clientcmd.LoadFromFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, cl := range kc.Clusters {
		cl.Server = "https://" + p.addr
	}
	proxied := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, proxied); err != nil {
		t.Fatal(err)
	}
	svc := kubetest.NewService(t, nil, func(cfg *kube.Config) { cfg.Kubeconfig = proxied })
	ctx := ctxFor(t)
	alice := kubetest.Student("alice")
	runRunning(t, svc, alice, kube.RunSpec{Name: "before"})

	waitHealth := func(ok bool) kube.Health {
		t.Helper()
		ch, cancel := svc.SubscribeFor(alice, kube.ListOptions{})
		defer cancel()
		deadline := time.After(bound)
		for {
			if h := svc.Health(); h.OK == ok {
				return h
			}
			select {
			case <-ch:
			case <-deadline:
				t.Fatalf("health not %v within %s: %+v", ok, bound, svc.Health())
			}
		}
	}
	p.cut()
	h := waitHealth(false)
	if !strings.Contains(h.Err, "Kubernetes unreachable") {
		t.Errorf("health while cut off: %+v", h)
	}
	if pods, _ := svc.Snapshot(alice, kube.ListOptions{}); len(pods) != 1 {
		t.Errorf("the last known pods are kept: %+v", pods)
	}
	// Meanwhile a pod is made behind the server's back.
	ns := svc.Config().Namespace("alice")
	if _, err := c.Client.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "during"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p.restore()
	waitHealth(true)
	waitPod(t, svc, alice, "during", func(kube.Pod) bool { return true })
}

// proxy is a TCP proxy to the API server that a test can cut off and restore.
type proxy struct {
	t      *testing.T
	addr   string
	target string
	mu     sync.Mutex
	l      net.Listener
	conns  map[net.Conn]bool
}

func startProxy(t *testing.T, target string) *proxy {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{t: t, addr: l.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.serve(l)
	t.Cleanup(p.cut)
	return p
}

func (p *proxy) serve(l net.Listener) {
	p.mu.Lock()
	p.l = l
	p.mu.Unlock()
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = in.Close()
				continue
			}
			p.mu.Lock()
			p.conns[in], p.conns[out] = true, true
			p.mu.Unlock()
			go func() { _, _ = io.Copy(out, in); _ = out.Close() }()
			go func() { _, _ = io.Copy(in, out); _ = in.Close() }()
		}
	}()
}

func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.l != nil {
		_ = p.l.Close()
		p.l = nil
	}
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) restore() {
	var l net.Listener
	var err error
	for range 50 { // the port was just closed: it may take a moment to be free
		if l, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("restore proxy: %v", err)
	}
	p.serve(l)
}
