package kube_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

func TestProvisionIsIdempotentAndRepairsDrift(t *testing.T) {
	t.Parallel()
	c := kubetest.Get(t)
	log, logPath := auditLog(t)
	svc := kubetest.NewService(t, log)
	ctx := ctxFor(t)
	alice := kubetest.Student("alice")
	ns := svc.Config().Namespace("alice")
	cs := c.Client

	if err := svc.Provision(ctx, alice); err != nil {
		t.Fatalf("provision: %v", err)
	}
	versions := func() map[string]string {
		t.Helper()
		m := map[string]string{}
		n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m["ns"] = n.ResourceVersion
		sa, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "whalemountain-user", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m["sa"] = sa.ResourceVersion
		r, err := cs.RbacV1().Roles(ns).Get(ctx, "whalemountain-user", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m["role"] = r.ResourceVersion
		rb, err := cs.RbacV1().RoleBindings(ns).Get(ctx, "whalemountain-user", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m["rb"] = rb.ResourceVersion
		lr, err := cs.CoreV1().LimitRanges(ns).Get(ctx, "whalemountain", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m["lr"] = lr.ResourceVersion
		np, err := cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, "whalemountain-isolate", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		m["np"] = np.ResourceVersion
		return m
	}
	first := versions()

	n, err := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		kube.LabelManaged: "true", kube.LabelOwner: kube.OwnerKey("alice"),
		"pod-security.kubernetes.io/enforce": "baseline", kubetest.LabelRun: kubetest.RunID(),
	} {
		if n.Labels[k] != v {
			t.Errorf("namespace label %s = %q, want %q", k, n.Labels[k], v)
		}
	}
	if n.Annotations[kube.AnnotationOwner] != "alice" {
		t.Errorf("owner annotation %q", n.Annotations[kube.AnnotationOwner])
	}
	rq, err := cs.CoreV1().ResourceQuotas(ns).Get(ctx, "whalemountain", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	q := svc.Config().Student
	for name, want := range map[corev1.ResourceName]string{
		"pods": "5", "limits.cpu": "4", "requests.memory": "8Gi", "requests.nvidia.com/gpu": "1",
	} {
		got := rq.Spec.Hard[name]
		if got.Cmp(resource.MustParse(want)) != 0 {
			t.Errorf("quota %s = %s, want %s (config %+v)", name, got.String(), want, q)
		}
	}
	np, err := cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, "whalemountain-isolate", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(np.Spec.Ingress) != 2 || !slices.Contains(np.Spec.PolicyTypes, "Ingress") {
		t.Errorf("network policy: %+v", np.Spec)
	}

	// Again: nothing changes.
	if err := svc.Provision(ctx, alice); err != nil {
		t.Fatalf("provision again: %v", err)
	}
	if again := versions(); !equalMaps(first, again) {
		t.Errorf("a second provisioning changed objects: %v -> %v", first, again)
	}

	// Drift: an administrator (or anything) changes what the server keeps.
	n.Labels["pod-security.kubernetes.io/enforce"] = "privileged"
	if _, err := cs.CoreV1().Namespaces().Update(ctx, n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	rq.Spec.Hard["pods"] = resource.MustParse("100")
	if _, err := cs.CoreV1().ResourceQuotas(ns).Update(ctx, rq, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	role, err := cs.RbacV1().Roles(ns).Get(ctx, "whalemountain-user", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"update"}})
	if _, err := cs.RbacV1().Roles(ns).Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.NetworkingV1().NetworkPolicies(ns).Delete(ctx, "whalemountain-isolate", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := cs.RbacV1().RoleBindings(ns).Delete(ctx, "whalemountain-user", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	if err := svc.Provision(ctx, alice); err != nil {
		t.Fatalf("provision after drift: %v", err)
	}
	n, _ = cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if n.Labels["pod-security.kubernetes.io/enforce"] != "baseline" {
		t.Errorf("pod security label not repaired: %v", n.Labels)
	}
	rq, _ = cs.CoreV1().ResourceQuotas(ns).Get(ctx, "whalemountain", metav1.GetOptions{})
	if got := rq.Spec.Hard["pods"]; got.Value() != 5 {
		t.Errorf("quota not repaired: pods %s", got.String())
	}
	role, _ = cs.RbacV1().Roles(ns).Get(ctx, "whalemountain-user", metav1.GetOptions{})
	for _, r := range role.Rules {
		if slices.Contains(r.Verbs, "update") {
			t.Errorf("role not repaired: %+v", role.Rules)
		}
	}
	if _, err := cs.NetworkingV1().NetworkPolicies(ns).Get(ctx, "whalemountain-isolate", metav1.GetOptions{}); err != nil {
		t.Errorf("network policy not made again: %v", err)
	}
	if _, err := cs.RbacV1().RoleBindings(ns).Get(ctx, "whalemountain-user", metav1.GetOptions{}); err != nil {
		t.Errorf("role binding not made again: %v", err)
	}

	entries := readAudit(t, logPath)
	if !hasAudit(entries, "alice", "kube namespace create", ns, "ok") {
		t.Errorf("no audit of the namespace's creation: %+v", entries)
	}
	repaired := false
	for _, e := range entries {
		if e.Action == "kube namespace repair" && strings.Contains(e.Target, "ResourceQuota") && strings.Contains(e.Target, "Role") {
			repaired = true
		}
	}
	if !repaired {
		t.Errorf("no audit of the repair: %+v", entries)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

func TestNamespacesOfLookalikeUsersAreApart(t *testing.T) {
	t.Parallel()
	c := kubetest.Get(t)
	svc := kubetest.NewService(t, nil)
	ctx := ctxFor(t)
	dot, under := kubetest.Student("a.b"), kubetest.Student("a_b")
	if svc.Config().Namespace("a.b") == svc.Config().Namespace("a_b") {
		t.Fatal("look-alike users share a namespace name")
	}
	runRunning(t, svc, dot, kube.RunSpec{Name: "box"})
	if _, err := svc.Inspect(ctx, under, "box"); !errors.Is(err, kube.ErrNotFound) {
		t.Errorf("a_b sees a.b's pod: %v", err)
	}
	runRunning(t, svc, under, kube.RunSpec{Name: "box"})
	for _, id := range []string{"a.b", "a_b"} {
		pods, err := svc.List(ctx, kubetest.Student(id), kube.ListOptions{})
		if err != nil || len(pods) != 1 || pods[0].Owner != id {
			t.Errorf("%s lists %+v, %v", id, pods, err)
		}
	}

	// A namespace with a user's name that the server did not make is never used.
	mallory := kubetest.Student("mallory")
	ns := svc.Config().Namespace("mallory")
	if _, err := c.Client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: svc.Config().Labels,
	}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, err := svc.Run(ctx, mallory, kube.RunSpec{Name: "box", Image: "busybox:1"})
	if !errors.Is(err, kube.ErrConflict) || !strings.Contains(err.Error(), "was not made by this server") {
		t.Errorf("run in a namespace made by someone else: %v", err)
	}
	if _, _, err := svc.Kubeconfig(ctx, mallory); err == nil {
		t.Error("kubeconfig for a namespace made by someone else")
	}
}
