package kube_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// roundTripFunc counts calls on their way to the API server.
type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// BenchmarkPodDashboards measures the calls the server makes to the API server while pods
// change, with one open Pods tab (the anchor) and with many, each woken by the one
// informer set and reading the snapshot on every change: the calls per change must not
// grow with the tabs (the pod's own create and delete are in both figures alike).
func BenchmarkPodDashboards(b *testing.B) {
	var calls atomic.Int64
	svc := kubetest.NewService(b, nil, func(cfg *kube.Config) {
		cfg.WrapTransport = func(rt http.RoundTripper) http.RoundTripper {
			return roundTripFunc(func(r *http.Request) (*http.Response, error) {
				calls.Add(1)
				return rt.RoundTrip(r)
			})
		}
	})
	alice := kubetest.Student("alice")
	ctx := context.Background()
	const changes = 4
	seen := func(name string, want bool) {
		ch, cancel := svc.SubscribeFor(alice, kube.ListOptions{})
		defer cancel()
		deadline := time.After(time.Minute)
		for {
			pods, _ := svc.Snapshot(alice, kube.ListOptions{})
			found := false
			for _, p := range pods {
				found = found || p.Name == name
			}
			if found == want {
				return
			}
			select {
			case <-ch:
			case <-deadline:
				b.Fatalf("pod %s present=%v never showed", name, want)
			}
		}
	}
	measure := func(tabs int) (perChange float64, reads int64) {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var n atomic.Int64
		for range tabs {
			ch, unsub := svc.SubscribeFor(alice, kube.ListOptions{})
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer unsub()
				for {
					select {
					case <-stop:
						return
					case _, ok := <-ch:
						if !ok {
							return
						}
						svc.Snapshot(alice, kube.ListOptions{})
						n.Add(1)
					}
				}
			}()
		}
		before := calls.Load()
		for k := range changes {
			name := fmt.Sprintf("bench-%d-%d", tabs, k)
			if _, err := svc.Run(ctx, alice, kube.RunSpec{Name: name, Image: "busybox:1", CPUs: 0.1, Memory: 32 << 20}); err != nil {
				b.Fatalf("run %s: %v", name, err)
			}
			seen(name, true)
			if err := svc.Remove(ctx, alice, name); err != nil {
				b.Fatalf("rm %s: %v", name, err)
			}
			seen(name, false)
		}
		perChange = float64(calls.Load()-before) / (2 * changes)
		close(stop)
		wg.Wait()
		return perChange, n.Load()
	}
	measure(1) // the namespace is made on the first run: outside the figures
	b.ResetTimer()
	for range b.N {
		one, _ := measure(1)
		many, reads := measure(200)
		b.ReportMetric(one, "calls/change@1tab")
		b.ReportMetric(many, "calls/change@200tabs")
		b.ReportMetric(many/one, "ratio")
		b.ReportMetric(float64(reads)/(2*changes), "snapshot-reads/change@200tabs")
	}
}
