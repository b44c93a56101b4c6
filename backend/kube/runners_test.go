package kube_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// runnerSpec is alice's runner for alice/demo.
func runnerSpec(owner string) kube.RunnerSpec {
	return kube.RunnerSpec{Owner: kubetest.Student(owner), Name: owner + "-demo", Project: owner + "/demo",
		Image: "gitlab/gitlab-runner:v17.11.0", ConfigTOML: []byte("concurrent = 1\n# token glrt-secret\n"), CPUs: 0.25, Memory: 128 << 20}
}

// can asks the API server whether the ServiceAccount ns/sa may verb resource in inNS.
func can(t *testing.T, cs kubernetes.Interface, ns, sa, verb, resource, inNS string) bool {
	t.Helper()
	group, res, _ := strings.Cut(resource, "/")
	sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
		User:               "system:serviceaccount:" + ns + ":" + sa,
		Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
		ResourceAttributes: &authzv1.ResourceAttributes{Namespace: inNS, Verb: verb, Resource: group, Subresource: res},
	}}
	got, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctxFor(t), sar, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("access review: %v", err)
	}
	return got.Status.Allowed
}

// TestRunnerInTheUsersNamespace: a runner with the kubernetes executor is, in its owner's
// namespace and nowhere else, a Secret with its config.toml, a ServiceAccount of its own, a
// Role with what the executor needs there and its RoleBinding, and a hardened pod counted in
// the namespace's quota, all labelled by the server; its ServiceAccount reaches nothing in
// another user's namespace, and nobody's kubeconfig reads its Secret; another user reaches
// it by no name; removed, nothing of it is left. The server runs as the ServiceAccount of
// KubeRBAC, so that ClusterRole is proven enough to grant the runner's Role.
func TestRunnerInTheUsersNamespace(t *testing.T) {
	ctx := ctxFor(t)
	svc := kubetest.NewService(t, nil)
	admin := kubetest.Get(t).Client
	bob := kubetest.Student("bob")
	if err := svc.Provision(ctx, bob); err != nil {
		t.Fatal(err)
	}
	aliceNS, bobNS := svc.RunnerNamespace("alice"), svc.RunnerNamespace("bob")

	r, err := svc.CreateRunner(ctx, runnerSpec("alice"))
	if err != nil {
		t.Fatalf("CreateRunner: %v", err)
	}
	if r.Owner != "alice" || r.Name != "alice-demo" || r.Namespace != aliceNS {
		t.Errorf("runner %+v", r)
	}
	obj := kube.RunnerObject("alice-demo")
	want := map[string]string{kube.LabelManaged: "true", kube.LabelOwner: kube.OwnerKey("alice"), kube.LabelRunner: "alice-demo"}
	labelled := func(kind string, m metav1.ObjectMeta) {
		t.Helper()
		for k, v := range want {
			if m.Labels[k] != v {
				t.Errorf("%s %s/%s: label %s=%q, want %q (labels %v)", kind, m.Namespace, m.Name, k, m.Labels[k], v, m.Labels)
			}
		}
	}
	sec, err := admin.CoreV1().Secrets(aliceNS).Get(ctx, obj, metav1.GetOptions{})
	if err != nil || !strings.Contains(string(sec.Data["config.toml"]), "concurrent = 1") {
		t.Fatalf("the runner's Secret: %v %v", err, sec)
	}
	labelled("Secret", sec.ObjectMeta)
	sa, err := admin.CoreV1().ServiceAccounts(aliceNS).Get(ctx, obj, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labelled("ServiceAccount", sa.ObjectMeta)
	role, err := admin.RbacV1().Roles(aliceNS).Get(ctx, obj, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labelled("Role", role.ObjectMeta)
	rb, err := admin.RbacV1().RoleBindings(aliceNS).Get(ctx, obj, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labelled("RoleBinding", rb.ObjectMeta)
	if rb.RoleRef.Kind != "Role" || rb.RoleRef.Name != obj || len(rb.Subjects) != 1 || rb.Subjects[0].Name != obj || rb.Subjects[0].Namespace != aliceNS {
		t.Errorf("RoleBinding %+v %+v", rb.RoleRef, rb.Subjects)
	}
	pod, err := admin.CoreV1().Pods(aliceNS).Get(ctx, obj, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	labelled("Pod", pod.ObjectMeta)
	c := pod.Spec.Containers[0]
	sc := c.SecurityContext
	// The ServiceAccount's token, projected by admission: the runner talks to the API with it.
	pod.Spec.Volumes = slices.DeleteFunc(pod.Spec.Volumes, func(v corev1.Volume) bool {
		return strings.HasPrefix(v.Name, "kube-api-access-") && v.Projected != nil
	})
	c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(m corev1.VolumeMount) bool {
		return strings.HasPrefix(m.Name, "kube-api-access-") && m.ReadOnly
	})
	switch {
	case pod.Spec.ServiceAccountName != obj || pod.Spec.HostNetwork || pod.Spec.HostPID || pod.Spec.HostIPC:
		t.Errorf("pod service account %q, host namespaces %v %v %v", pod.Spec.ServiceAccountName, pod.Spec.HostNetwork, pod.Spec.HostPID, pod.Spec.HostIPC)
	case sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Privileged == nil || *sc.Privileged:
		t.Errorf("container security context %+v", sc)
	case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL" || len(sc.Capabilities.Add) != 0:
		t.Errorf("capabilities %+v", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Errorf("seccomp %+v", sc.SeccompProfile)
	case c.Resources.Limits.Cpu().MilliValue() != 250 || c.Resources.Limits.Memory().Value() != 128<<20:
		t.Errorf("limits %v", c.Resources.Limits)
	case len(pod.Spec.Volumes) != 2 || pod.Spec.Volumes[0].Secret == nil || pod.Spec.Volumes[0].Secret.SecretName != obj ||
		pod.Spec.Volumes[1].EmptyDir == nil || len(c.VolumeMounts) != 2 || !c.VolumeMounts[0].ReadOnly:
		t.Errorf("volumes %+v mounts %+v: want the runner's Secret, read-only, and an emptyDir, nothing else", pod.Spec.Volumes, c.VolumeMounts)
	}
	// Nothing of it anywhere else (among this service's objects: the cluster is shared).
	sel := metav1.ListOptions{LabelSelector: labels.SelectorFromSet(svc.Config().Labels).String() + "," + kube.LabelRunner}
	pods, _ := admin.CoreV1().Pods("").List(ctx, sel)
	secrets, _ := admin.CoreV1().Secrets("").List(ctx, sel)
	roles, _ := admin.RbacV1().Roles("").List(ctx, sel)
	if len(pods.Items) != 1 || len(secrets.Items) != 1 || len(roles.Items) != 1 {
		t.Errorf("runner objects: %d pods, %d secrets, %d roles; want one of each", len(pods.Items), len(secrets.Items), len(roles.Items))
	}
	for _, m := range pods.Items {
		if m.Namespace != aliceNS {
			t.Errorf("a runner pod in %s", m.Namespace)
		}
	}
	for _, m := range secrets.Items {
		if m.Namespace != aliceNS {
			t.Errorf("a runner secret in %s", m.Namespace)
		}
	}
	for _, m := range roles.Items {
		if m.Namespace != aliceNS {
			t.Errorf("a runner role in %s", m.Namespace)
		}
	}

	// Running, and counted in alice's quota.
	deadline := time.Now().Add(bound)
	for {
		rs, err := svc.Runners(ctx, "alice")
		if err == nil && len(rs) == 1 && rs[0].State == "running" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("alice's runner never ran: %+v %v", rs, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline = time.Now().Add(bound)
	for {
		q, err := admin.CoreV1().ResourceQuotas(aliceNS).Get(ctx, "whalemountain", metav1.GetOptions{})
		if err == nil && q.Status.Used.Pods().Value() == 1 && q.Status.Used.Name(corev1.ResourceLimitsMemory, "").Value() == 128<<20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the runner's pod is not counted in alice's quota: %v %v", q.Status.Used, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// What the runner's ServiceAccount may do: the executor's needs in alice's namespace,
	// nothing in bob's or the cluster's.
	for _, c := range []struct {
		verb, resource, ns string
		want               bool
	}{
		{"create", "pods", aliceNS, true},
		{"create", "pods/attach", aliceNS, true},
		{"create", "pods/exec", aliceNS, true},
		{"create", "secrets", aliceNS, true},
		{"delete", "configmaps", aliceNS, true},
		{"create", "pods", bobNS, false},
		{"get", "secrets", bobNS, false},
		{"create", "pods/exec", bobNS, false},
		{"list", "pods", "", false},
		{"create", "roles", aliceNS, false},
		{"create", "rolebindings", aliceNS, false},
		{"patch", "namespaces", "", false},
		{"list", "nodes", "", false},
	} {
		if got := can(t, admin, aliceNS, obj, c.verb, c.resource, c.ns); got != c.want {
			t.Errorf("attack: alice's runner %s %s in %q: allowed %v, want %v", c.verb, c.resource, c.ns, got, c.want)
		}
	}
	// Users' own kubeconfigs (their namespace's ServiceAccount) read no runner's Secret.
	if can(t, admin, bobNS, "whalemountain-user", "get", "secrets", aliceNS) || can(t, admin, aliceNS, "whalemountain-user", "get", "secrets", aliceNS) {
		t.Error("attack: a user's kubeconfig may read the runner's Secret (its token)")
	}

	// bob: alice's runner by any name is no runner of his.
	if rs, err := svc.Runners(ctx, "bob"); err != nil || len(rs) != 0 {
		t.Errorf("bob's runners: %+v %v", rs, err)
	}
	for name, err := range map[string]error{
		"stop": svc.StopRunner(ctx, "bob", "alice-demo"),
		"rm":   svc.RemoveRunner(ctx, "bob", "alice-demo"),
	} {
		if !errors.Is(err, kube.ErrNotFound) {
			t.Errorf("attack: bob's %s of alice-demo: %v", name, err)
		}
	}
	if _, err := svc.RunnerLogs(ctx, "bob", "alice-demo", kube.LogOptions{}); !errors.Is(err, kube.ErrNotFound) {
		t.Errorf("attack: bob's logs of alice-demo: %v", err)
	}
	if _, err := admin.CoreV1().Pods(aliceNS).Get(ctx, obj, metav1.GetOptions{}); err != nil {
		t.Errorf("alice's runner after bob's tries: %v", err)
	}

	// Stopped: the pod goes, the rest stays, and it reads as exited; started again.
	if err := svc.StopRunner(ctx, "alice", "alice-demo"); err != nil {
		t.Fatal(err)
	}
	waitNotFound(t, func(ctx context.Context) error {
		_, err := admin.CoreV1().Pods(aliceNS).Get(ctx, obj, metav1.GetOptions{})
		return err
	})
	if rs, err := svc.Runners(ctx, "alice"); err != nil || len(rs) != 1 || rs[0].State != "exited" {
		t.Errorf("a stopped runner: %+v %v", rs, err)
	}
	if _, err := svc.CreateRunner(ctx, runnerSpec("alice")); err != nil {
		t.Fatalf("start again: %v", err)
	}
	// Replaced while its pod is there (a new token).
	if _, err := svc.CreateRunner(ctx, runnerSpec("alice")); err != nil {
		t.Fatalf("replace: %v", err)
	}

	// Removed: nothing of it is left.
	if err := svc.RemoveRunner(ctx, "alice", "alice-demo"); err != nil {
		t.Fatal(err)
	}
	for kind, get := range map[string]func(context.Context) error{
		"Pod": func(ctx context.Context) error {
			_, err := admin.CoreV1().Pods(aliceNS).Get(ctx, obj, metav1.GetOptions{})
			return err
		},
		"Secret": func(ctx context.Context) error {
			_, err := admin.CoreV1().Secrets(aliceNS).Get(ctx, obj, metav1.GetOptions{})
			return err
		},
		"ServiceAccount": func(ctx context.Context) error {
			_, err := admin.CoreV1().ServiceAccounts(aliceNS).Get(ctx, obj, metav1.GetOptions{})
			return err
		},
		"Role": func(ctx context.Context) error {
			_, err := admin.RbacV1().Roles(aliceNS).Get(ctx, obj, metav1.GetOptions{})
			return err
		},
		"RoleBinding": func(ctx context.Context) error {
			_, err := admin.RbacV1().RoleBindings(aliceNS).Get(ctx, obj, metav1.GetOptions{})
			return err
		},
	} {
		t.Run(kind, func(t *testing.T) { waitNotFound(t, get) })
	}
	if err := svc.RemoveRunner(ctx, "alice", "alice-demo"); !errors.Is(err, kube.ErrNotFound) {
		t.Errorf("rm of a removed runner: %v", err)
	}
}

// waitNotFound waits until get answers NotFound.
func waitNotFound(t *testing.T, get func(context.Context) error) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		err := get(ctxFor(t))
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still there after %s: %v", bound, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
