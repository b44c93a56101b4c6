package kube_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/audit"
	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

func TestMain(m *testing.M) { kubetest.Main(m) }

// bound is how long the cluster may take to reflect a change (pod Running, a scheduler
// event, the snapshot).
const bound = 20 * time.Second

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// auditLog opens an audit log in a temporary directory and returns it with its path.
func auditLog(t *testing.T) (*audit.Log, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.jsonl")
	l, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l, path
}

func readAudit(t *testing.T, path string) []audit.Entry {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Entry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e audit.Entry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		out = append(out, e)
	}
	return out
}

// hasAudit reports whether the log has an entry of that user, action, target and result.
func hasAudit(entries []audit.Entry, user, action, target, result string) bool {
	for _, e := range entries {
		if e.User == user && e.Action == action && (target == "" || e.Target == target) && e.Result == result {
			return true
		}
	}
	return false
}

// waitPod waits, through the snapshot and its subscription, until the identity's pod name
// satisfies cond, and returns it.
func waitPod(t *testing.T, svc *kube.Service, id backend.Identity, name string, cond func(kube.Pod) bool) kube.Pod {
	t.Helper()
	ch, cancel := svc.SubscribeFor(id, kube.ListOptions{})
	defer cancel()
	deadline := time.After(bound)
	var last *kube.Pod
	for {
		pods, _ := svc.Snapshot(id, kube.ListOptions{})
		last = nil
		for _, p := range pods {
			if p.Name == name && p.Owner == id.User {
				last = &p
				if cond(p) {
					return p
				}
			}
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("pod %s/%s: condition not met within %s; last seen %+v", id.User, name, bound, last)
		}
	}
}

func running(p kube.Pod) bool { return p.Running() }

// runRunning runs a pod and waits until it runs.
func runRunning(t *testing.T, svc *kube.Service, id backend.Identity, spec kube.RunSpec) kube.Pod {
	t.Helper()
	if spec.Image == "" {
		spec.Image = "busybox:1"
	}
	if _, err := svc.Run(ctxFor(t), id, spec); err != nil {
		t.Fatalf("run %s for %s: %v", spec.Name, id.User, err)
	}
	return waitPod(t, svc, id, spec.Name, running)
}
