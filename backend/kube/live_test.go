package kube_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
