package kube_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"whalemountain/backend"
	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// Another user's pod reads exactly like a missing one, whatever the name looks like.
func TestOtherUsersPodsAreNotFound(t *testing.T) {
	t.Parallel()
	c := kubetest.Get(t)
	log, logPath := auditLog(t)
	svc := kubetest.NewService(t, log)
	ctx := ctxFor(t)
	alice, bob, tom := kubetest.Student("alice"), kubetest.Student("bob"), kubetest.TA("tom")
	runRunning(t, svc, bob, kube.RunSpec{Name: "secret"})
	runRunning(t, svc, alice, kube.RunSpec{Name: "mine"})
	bobNS := svc.Config().Namespace("bob")

	refs := []string{"secret", "bob/secret", bobNS + "/secret", "../" + bobNS + "/secret", "alice/../bob/secret",
		"bob/secret/", "BOB/secret", "bob%2fsecret", "./secret", "secret\x00", "nosuch", "alice/nosuch"}
	for _, ref := range refs {
		want := "no such pod: " + ref
		check := func(what string, err error) {
			t.Helper()
			if !errors.Is(err, kube.ErrNotFound) {
				t.Errorf("%s %q: %v, want not found", what, ref, err)
				return
			}
			if strings.ContainsAny(ref, "\x00") {
				want = "no such pod: " + `"` + strings.ReplaceAll(ref, "\x00", `\x00`) + `"`
			}
			if err.Error() != want {
				t.Errorf("%s %q: %q, want %q", what, ref, err, want)
			}
		}
		_, err := svc.Inspect(ctx, alice, ref)
		check("inspect", err)
		check("remove", svc.Remove(ctx, alice, ref))
		_, err = svc.Logs(ctx, alice, ref, kube.LogOptions{})
		check("logs", err)
		_, err = svc.Exec(ctx, alice, ref, backend.ExecSpec{Cmd: []string{"true"}})
		check("exec", err)
		_, err = svc.Forward(ctx, alice, ref, 8080)
		check("forward", err)
	}
	if _, err := c.Client.CoreV1().Pods(bobNS).Get(ctx, "secret", metav1.GetOptions{}); err != nil {
		t.Fatalf("bob's pod is gone: %v", err)
	}
	pods, _ := svc.Snapshot(alice, kube.ListOptions{AllUsers: true})
	if len(pods) != 1 || pods[0].Ref() != "alice/mine" {
		t.Errorf("alice's snapshot, asking for all users: %+v", pods)
	}
	if list, err := svc.List(ctx, alice, kube.ListOptions{AllUsers: true}); err != nil || len(list) != 1 {
		t.Errorf("alice's list, asking for all users: %+v %v", list, err)
	}
	for _, id := range []backend.Identity{{}, {User: "bob"}, {User: "bob", Role: "root"}} {
		if _, err := svc.Inspect(ctx, id, "bob/secret"); !errors.Is(err, kube.ErrPermission) {
			t.Errorf("identity %+v: %v", id, err)
		}
		if pods, _ := svc.Snapshot(id, kube.ListOptions{AllUsers: true}); len(pods) != 0 {
			t.Errorf("identity %+v sees %+v", id, pods)
		}
	}

	// A TA sees and removes anyone's pod.
	all, _ := svc.Snapshot(tom, kube.ListOptions{AllUsers: true})
	if len(all) != 2 || all[0].Ref() != "alice/mine" || all[1].Ref() != "bob/secret" {
		t.Errorf("TA's snapshot: %+v", all)
	}
	if own, _ := svc.Snapshot(tom, kube.ListOptions{}); len(own) != 0 {
		t.Errorf("TA's own pods: %+v", own)
	}
	list, err := svc.List(ctx, tom, kube.ListOptions{AllUsers: true})
	if err != nil || len(list) != 2 {
		t.Errorf("TA's list: %+v %v", list, err)
	}
	if d, err := svc.Inspect(ctx, tom, "bob/secret"); err != nil || d.Owner != "bob" {
		t.Errorf("TA inspects bob/secret: %+v %v", d, err)
	}
	if err := svc.Remove(ctx, tom, "bob/secret"); err != nil {
		t.Fatalf("TA removes bob/secret: %v", err)
	}
	waitGone(t, svc, bob, "secret")
	if err := svc.Remove(ctx, alice, "mine"); err != nil {
		t.Fatalf("alice removes her pod: %v", err)
	}
	entries := readAudit(t, logPath)
	if !hasAudit(entries, "tom", "pod rm", "bob/secret", "ok") || !hasAudit(entries, "alice", "pod rm", "alice/mine", "ok") ||
		!hasAudit(entries, "alice", "pod rm", "bob/secret", "refused") {
		t.Errorf("removals not audited: %+v", entries)
	}
}

// waitGone waits until the snapshot no longer shows the pod.
func waitGone(t *testing.T, svc *kube.Service, id backend.Identity, name string) {
	t.Helper()
	ch, cancel := svc.SubscribeFor(id, kube.ListOptions{})
	defer cancel()
	for {
		pods, _ := svc.Snapshot(id, kube.ListOptions{})
		gone := true
		for _, p := range pods {
			if p.Name == name {
				gone = false
			}
		}
		if gone {
			return
		}
		select {
		case <-ch:
		case <-t.Context().Done():
			return
		case <-time.After(bound):
			t.Fatalf("pod %s/%s still shown after %s", id.User, name, bound)
		}
	}
}
