package kube_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

func TestRunMakesHardenedPods(t *testing.T) {
	t.Parallel()
	c := kubetest.Get(t)
	log, logPath := auditLog(t)
	svc := kubetest.NewService(t, log, func(cfg *kube.Config) {
		cfg.HomeStorageClass = "standard"
		cfg.GPUNodeSelector = map[string]string{"type": "kwok"}
		cfg.GPUTolerations = []kube.Toleration{{Key: "nvidia.com/gpu", Operator: "Exists", Effect: "NoSchedule"}}
	})
	ctx := ctxFor(t)
	alice := kubetest.Student("alice")
	p, err := svc.Run(ctx, alice, kube.RunSpec{Name: "box", Image: "busybox:1", Cmd: []string{"sleep", "1d"},
		Env: []string{"A=1"}, CPUs: 0.5, Memory: 256 << 20, GPUs: 1})
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if p.Name != "box" || p.Owner != "alice" || !p.Managed || p.GPUs != 1 || p.CPUs != 0.5 || p.Memory != 256<<20 {
		t.Errorf("run returned %+v", p)
	}
	ns := svc.Config().Namespace("alice")
	pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, "box", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	spec := pod.Spec
	ctr := spec.Containers[0]
	sc := ctr.SecurityContext
	switch {
	case pod.Labels[kube.LabelOwner] != kube.OwnerKey("alice") || pod.Labels[kube.LabelName] != "box" || pod.Labels[kube.LabelManaged] != "true":
		t.Errorf("labels %v", pod.Labels)
	case spec.AutomountServiceAccountToken == nil || *spec.AutomountServiceAccountToken:
		t.Error("a ServiceAccount token is mounted")
	case spec.HostNetwork || spec.HostPID || spec.HostIPC:
		t.Error("host namespaces")
	case sc == nil || sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("privilege escalation allowed")
	case sc.Privileged == nil || *sc.Privileged:
		t.Error("privileged")
	case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || slices.Contains(sc.Capabilities.Add, "SYS_ADMIN") || len(sc.Capabilities.Add) != len(kube.DefaultCapabilities):
		t.Errorf("capabilities %+v", sc.Capabilities)
	case sc.SeccompProfile == nil || sc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("no RuntimeDefault seccomp profile")
	case ctr.Resources.Limits.Name("nvidia.com/gpu", "").Value() != 1 || ctr.Resources.Limits.Cpu().MilliValue() != 500:
		t.Errorf("limits %v", ctr.Resources.Limits)
	case spec.NodeSelector["type"] != "kwok" || len(spec.Tolerations) == 0:
		t.Errorf("GPU placement: %v %v", spec.NodeSelector, spec.Tolerations)
	case spec.ServiceAccountName != "whalemountain-user":
		t.Errorf("service account %q", spec.ServiceAccountName)
	}
	for _, v := range spec.Volumes {
		if v.HostPath != nil {
			t.Errorf("host path volume %+v", v)
		}
		if v.Name == "home" && (v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "home") {
			t.Errorf("home volume %+v", v)
		}
	}
	if _, err := c.Client.CoreV1().PersistentVolumeClaims(ns).Get(ctx, "home", metav1.GetOptions{}); err != nil {
		t.Errorf("home claim: %v", err)
	}
	d, err := svc.Inspect(ctx, alice, "box")
	if err != nil {
		t.Fatal(err)
	}
	if d.Home != "/home/alice" || d.HomeClaim != "home" || !slices.Contains(d.EnvNames, "A") || !slices.Equal(d.Cmd, []string{"sleep", "1d"}) {
		t.Errorf("inspect %+v", d)
	}
	// No volume provisioner exists in the test cluster: the pod waits for its home, and says so.
	if d.Status != "Pending" || d.Reason == "" {
		t.Errorf("pod without a bound home: %s %q", d.Status, d.Reason)
	}

	// Names are the user's: a second pod of the same name is refused.
	_, err = svc.Run(ctx, alice, kube.RunSpec{Name: "box", Image: "busybox:1"})
	if !errors.Is(err, kube.ErrConflict) || !strings.Contains(err.Error(), "already have a pod named box") {
		t.Errorf("second box: %v", err)
	}
	for _, bad := range []kube.RunSpec{
		{Name: "Box", Image: "busybox:1"},
		{Name: "", Image: "busybox:1"},
		{Name: "ok", Image: "Busybox"},
		{Name: "ok", Image: "bad image"},
		{Name: "ok", Image: "busybox:1", Env: []string{"1A=x"}},
		{Name: "ok", Image: "busybox:1", Cmd: []string{""}},
		{Name: "ok", Image: "busybox:1", CPUs: -1},
		{Name: "ok", Image: "busybox:1", Memory: 1},
		{Name: "ok", Image: "busybox:1", GPUs: -1},
	} {
		if _, err := svc.Run(ctx, alice, bad); !errors.Is(err, kube.ErrInvalid) {
			t.Errorf("run %+v: %v, want invalid input", bad, err)
		}
	}
	entries := readAudit(t, logPath)
	if !hasAudit(entries, "alice", "pod run", "alice/box", "ok") || !hasAudit(entries, "alice", "pod run", "alice/box", "refused") {
		t.Errorf("runs not audited: %+v", entries)
	}
}

func TestQuotaRefusesWithAClearLine(t *testing.T) {
	t.Parallel()
	svc := kubetest.NewService(t, nil, func(cfg *kube.Config) {
		cfg.Student = kube.Quota{CPUs: 2, Memory: 4 << 30, Pods: 2, GPUs: 1}
	})
	ctx := ctxFor(t)
	alice := kubetest.Student("alice")
	_, err := svc.Run(ctx, alice, kube.RunSpec{Name: "big", Image: "busybox:1", CPUs: 3})
	if !errors.Is(err, kube.ErrQuota) || err.Error() != "quota: at most 2 CPUs for all pods of one of the students (asked 3)" {
		t.Errorf("3 CPUs: %v", err)
	}
	_, err = svc.Run(ctx, alice, kube.RunSpec{Name: "big", Image: "busybox:1", GPUs: 2})
	if !errors.Is(err, kube.ErrQuota) || !strings.Contains(err.Error(), "at most 1 GPUs") {
		t.Errorf("2 GPUs: %v", err)
	}
	runRunning(t, svc, alice, kube.RunSpec{Name: "one", CPUs: 1.5})
	_, err = svc.Run(ctx, alice, kube.RunSpec{Name: "two", Image: "busybox:1", CPUs: 1})
	if !errors.Is(err, kube.ErrQuota) || err.Error() != "quota: your pods use 1500m of 2 CPUs; this pod asks for 1 more" {
		t.Errorf("over the CPU quota: %v", err)
	}
	runRunning(t, svc, alice, kube.RunSpec{Name: "two", CPUs: 0.5})
	_, err = svc.Run(ctx, alice, kube.RunSpec{Name: "three", Image: "busybox:1", CPUs: 0.001, Memory: 64 << 20})
	if !errors.Is(err, kube.ErrQuota) || err.Error() != "quota: your pods already number 2 of 2; remove one first" {
		t.Errorf("third pod: %v", err)
	}
	if pods, _ := svc.List(ctx, alice, kube.ListOptions{}); len(pods) != 2 {
		t.Errorf("pods after refusals: %+v", pods)
	}

	// The quota's use, as the API server counts it: alice's own, everyone's for a TA only.
	full := kube.Resource{Used: 2, Hard: 2, HasHard: true}
	qs, err := svc.Quotas(ctx, alice, kube.ListOptions{AllUsers: true}) // a student's AllUsers is her own
	if err != nil || len(qs) != 1 || qs[0].Owner != "alice" || qs[0].Pods != full || qs[0].CPUs != full ||
		qs[0].GPUs != (kube.Resource{Used: 0, Hard: 1, HasHard: true}) || qs[0].Memory.Hard != 4<<30 {
		t.Errorf("alice's quota use: %+v %v", qs, err)
	}
	if qs, err := svc.Quotas(ctx, kubetest.Student("bob"), kube.ListOptions{AllUsers: true}); err != nil || len(qs) != 0 {
		t.Errorf("bob, with no namespace yet, sees %+v %v", qs, err)
	}
	runRunning(t, svc, kubetest.Student("bob"), kube.RunSpec{Name: "b", CPUs: 0.5})
	qs, err = svc.Quotas(ctx, kubetest.TA("tina"), kube.ListOptions{AllUsers: true})
	owners := map[string]kube.QuotaUse{}
	for _, q := range qs {
		owners[q.Owner] = q
	}
	if err != nil || len(qs) != 2 || owners["alice"].Pods != full || owners["bob"].CPUs != (kube.Resource{Used: 0.5, Hard: 2, HasHard: true}) {
		t.Errorf("a TA's view of every namespace: %+v %v", qs, err)
	}
	if qs, err := svc.Quotas(ctx, kubetest.Student("bob"), kube.ListOptions{}); err != nil || len(qs) != 1 || qs[0].Owner != "bob" {
		t.Errorf("bob sees %+v %v, want his own only", qs, err)
	}
}

func TestPendingAndFailingPodsSayWhy(t *testing.T) {
	t.Parallel()
	svc := kubetest.NewService(t, nil, func(cfg *kube.Config) {
		cfg.Student.GPUs = 2 * kubetest.NodeGPUs
	})
	ctx := ctxFor(t)
	alice := kubetest.Student("alice")
	for _, spec := range []kube.RunSpec{
		{Name: "gpus", Image: "busybox:1", GPUs: kubetest.NodeGPUs + 1},
		{Name: "missing", Image: "registry.invalid/missing:1"},
		{Name: "crash", Image: "registry.invalid/crash:1"},
		{Name: "oom", Image: "registry.invalid/oom:1", Memory: 64 << 20},
	} {
		if _, err := svc.Run(ctx, alice, spec); err != nil {
			t.Fatalf("run %s: %v", spec.Name, err)
		}
	}
	p := waitPod(t, svc, alice, "gpus", func(p kube.Pod) bool { return strings.Contains(p.Reason, "Insufficient nvidia.com/gpu") })
	if p.Status != "Pending" || !strings.Contains(p.Reason, "0/2 nodes are available") {
		t.Errorf("GPU pod: %s %q", p.Status, p.Reason)
	}
	d, err := svc.Inspect(ctx, alice, "gpus")
	if err != nil || !strings.Contains(d.Reason, "Insufficient nvidia.com/gpu") {
		t.Errorf("inspect of the GPU pod: %+v %v", d, err)
	}
	p = waitPod(t, svc, alice, "missing", func(p kube.Pod) bool { return p.Status == "ImagePullBackOff" })
	if !strings.Contains(p.Reason, "registry.invalid/missing:1") || !strings.Contains(p.Reason, "not found") {
		t.Errorf("missing image: %q", p.Reason)
	}
	p = waitPod(t, svc, alice, "crash", func(p kube.Pod) bool { return p.Status == "CrashLoopBackOff" })
	if p.Reason != "last exit code 3 (Error), restarted 4 times" || p.ExitCode == nil || *p.ExitCode != 3 || p.Running() {
		t.Errorf("crash loop: %+v", p)
	}
	p = waitPod(t, svc, alice, "oom", func(p kube.Pod) bool { return p.Status == "OOMKilled" })
	if p.Reason != "killed: out of memory (limit 64 MiB)" || p.Phase != "Failed" {
		t.Errorf("out of memory: %+v", p)
	}
	// Such pods cannot be entered, with a line that says why.
	_, err = svc.Forward(ctx, alice, "crash", 80)
	if !errors.Is(err, kube.ErrNotRunning) || !errors.Is(err, kube.ErrConflict) {
		t.Errorf("forward to a crashing pod: %v", err)
	}
	_, err = svc.Logs(ctx, alice, "gpus", kube.LogOptions{})
	if !errors.Is(err, kube.ErrConflict) || !strings.Contains(err.Error(), "has not started") {
		t.Errorf("logs of a pending pod: %v", err)
	}
}

func TestRestrictedPolicyRunsAsNonRoot(t *testing.T) {
	t.Parallel()
	c := kubetest.Get(t)
	svc := kubetest.NewService(t, nil, func(cfg *kube.Config) {
		cfg.PodSecurity = kube.PodSecurityRestricted
		cfg.Capabilities = []string{"NET_BIND_SERVICE"}
		cfg.RunAsUser = 1234
	})
	ctx := ctxFor(t)
	alice := kubetest.Student("alice")
	runRunning(t, svc, alice, kube.RunSpec{Name: "box"})
	ns := svc.Config().Namespace("alice")
	n, err := c.Client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if err != nil || n.Labels["pod-security.kubernetes.io/enforce"] != "restricted" {
		t.Fatalf("namespace: %v %v", n.Labels, err)
	}
	pod, err := c.Client.CoreV1().Pods(ns).Get(ctx, "box", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	psc := pod.Spec.SecurityContext
	if psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot || psc.RunAsUser == nil || *psc.RunAsUser != 1234 {
		t.Errorf("pod security context %+v", psc)
	}
	if add := pod.Spec.Containers[0].SecurityContext.Capabilities.Add; !slices.Equal(add, []corev1.Capability{"NET_BIND_SERVICE"}) {
		t.Errorf("capabilities added: %v", add)
	}
}
