package kube

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	rbacv1 "k8s.io/api/rbac/v1"

	"whalemountain/backend"
)

func TestNamespaceNamesAreDNSLabelsAndNeverShared(t *testing.T) {
	cfg := DefaultConfig()
	users := []string{"alice", "Alice", "a.b", "a_b", "a-b", "ab", "_x_", "__", "x", "e205723",
		strings.Repeat("long", 16), strings.Repeat("long", 15) + "lon", "UPPER.case_mix-1"}
	seen := map[string]string{}
	for _, u := range users {
		if !backend.ValidUser(u) {
			t.Fatalf("test user %q is not a valid user name", u)
		}
		ns := cfg.Namespace(u)
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			t.Errorf("Namespace(%q) = %q: not a DNS label: %v", u, ns, errs)
		}
		if !strings.HasPrefix(ns, cfg.NamespacePrefix) {
			t.Errorf("Namespace(%q) = %q lacks the prefix", u, ns)
		}
		if other, ok := seen[ns]; ok {
			t.Errorf("%q and %q share namespace %q", u, other, ns)
		}
		seen[ns] = u
		if cfg.Namespace(u) != ns {
			t.Errorf("Namespace(%q) is not stable", u)
		}
		if errs := validation.IsValidLabelValue(OwnerKey(u)); len(errs) > 0 {
			t.Errorf("OwnerKey(%q) is no label value: %v", u, errs)
		}
	}
	if got := cfg.Namespace("alice"); !strings.HasPrefix(got, "wm-alice-") {
		t.Errorf("Namespace(alice) = %q, want wm-alice-<hash>", got)
	}
	long := cfg
	long.NamespacePrefix = "abcdefghijklmnop"
	if ns := long.Namespace(strings.Repeat("z", 64)); len(ns) > 63 {
		t.Errorf("namespace too long: %q", ns)
	}
}

func TestParseRef(t *testing.T) {
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	ta := backend.Identity{User: "tom", Role: backend.RoleTA}
	for _, tc := range []struct {
		id      backend.Identity
		ref     string
		owner   string
		name    string
		refused bool
	}{
		{alice, "box", "alice", "box", false},
		{alice, "alice/box", "alice", "box", false},
		{alice, "made-by.kubectl", "alice", "made-by.kubectl", false},
		{alice, "bob/box", "", "", true},
		{alice, "../box", "", "", true},
		{alice, "alice/../bob/box", "", "", true},
		{alice, "wm-bob-1234abcd/box", "", "", true},
		{alice, "alice/", "", "", true},
		{alice, "/box", "", "", true},
		{alice, "Box", "", "", true},
		{alice, "box\x1b[2J", "", "", true},
		{alice, "", "", "", true},
		{alice, strings.Repeat("a", 254), "", "", true},
		{ta, "bob/box", "bob", "box", false},
		{ta, "box", "tom", "box", false},
		{ta, "bob/../box", "", "", true},
		{ta, "bob/box/x", "", "", true},
	} {
		got, err := parseRef(tc.id, tc.ref)
		if tc.refused {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("parseRef(%s, %q) = %+v, %v; want not found", tc.id.User, tc.ref, got, err)
			}
			if err != nil && strings.ContainsAny(err.Error(), "\x1b\n") {
				t.Errorf("error echoes control characters: %q", err)
			}
			continue
		}
		if err != nil || got.owner != tc.owner || got.name != tc.name {
			t.Errorf("parseRef(%s, %q) = %+v, %v; want %s/%s", tc.id.User, tc.ref, got, err, tc.owner, tc.name)
		}
	}
	for _, id := range []backend.Identity{{}, {User: "x"}, {User: "a b", Role: backend.RoleStudent}, {User: "../x", Role: backend.RoleTA}} {
		if err := checkIdentity(id); !errors.Is(err, ErrPermission) {
			t.Errorf("checkIdentity(%+v) = %v, want permission denied", id, err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, tc := range []struct {
		field string
		mut   func(*Config)
	}{
		{"NamespacePrefix", func(c *Config) { c.NamespacePrefix = "" }},
		{"NamespacePrefix", func(c *Config) { c.NamespacePrefix = "Bad_" }},
		{"NamespacePrefix", func(c *Config) { c.NamespacePrefix = "much-too-long-prefix-" }},
		{"PublicServer", func(c *Config) { c.PublicServer = "http://example.org" }},
		{"Labels", func(c *Config) { c.Labels = map[string]string{"whalemountain.io/owner": "x"} }},
		{"Labels", func(c *Config) { c.Labels = map[string]string{"ok": "bad value!"} }},
		{"Student.CPUs", func(c *Config) { c.Student.CPUs = 0 }},
		{"TA.Pods", func(c *Config) { c.TA.Pods = 0 }},
		{"Student.GPUs", func(c *Config) { c.Student.GPUs = -1 }},
		{"DefaultMemory", func(c *Config) { c.DefaultMemory = 100 * gib }},
		{"GPUResource", func(c *Config) { c.GPUResource = "gpu" }},
		{"GPUTolerations", func(c *Config) { c.GPUTolerations = []Toleration{{Key: "k", Operator: "Sometimes"}} }},
		{"PodSecurity", func(c *Config) { c.PodSecurity = "privileged" }},
		{"Capabilities", func(c *Config) { c.Capabilities = []string{"SYS_ADMIN"} }},
		{"Capabilities", func(c *Config) { c.PodSecurity = PodSecurityRestricted }}, // the default list is more than restricted allows
		{"RunAsUser", func(c *Config) {
			c.PodSecurity, c.Capabilities, c.RunAsUser = PodSecurityRestricted, nil, 0
		}},
		{"HomeSize", func(c *Config) { c.HomeStorageClass, c.HomeSize = "standard", 1 }},
		{"HomeTarget", func(c *Config) { c.HomeTarget = "/home" }},
		{"TokenLifetime", func(c *Config) { c.TokenLifetime = time.Minute }},
		{"TokenLifetime", func(c *Config) { c.TokenLifetime = 72 * time.Hour }},
	} {
		c := DefaultConfig()
		tc.mut(&c)
		err := c.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: Validate() = %v, want an error naming the field", tc.field, err)
		}
	}
	c := DefaultConfig()
	c.PodSecurity, c.Capabilities = PodSecurityRestricted, []string{"net_bind_service"}
	if err := c.Validate(); err != nil {
		t.Errorf("restricted with NET_BIND_SERVICE: %v", err)
	}
}

func TestPodStatus(t *testing.T) {
	now := metav1.NewTime(time.Now())
	earlier := metav1.NewTime(now.Add(-time.Minute))
	limits := corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi"), corev1.ResourceCPU: resource.MustParse("500m"), "nvidia.com/gpu": resource.MustParse("3")}
	base := func() *corev1.Pod {
		return &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "ns", UID: "u1"},
			Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "main", Image: "img", Resources: corev1.ResourceRequirements{Limits: limits}}}},
		}
	}
	ev := func(reason, msg string, at metav1.Time, uid types.UID) *corev1.Event {
		return &corev1.Event{Reason: reason, Message: msg, LastTimestamp: at, InvolvedObject: corev1.ObjectReference{UID: uid}}
	}
	for _, tc := range []struct {
		name        string
		pod         func(*corev1.Pod)
		events      []*corev1.Event
		status      string
		reason      string
		exit        *int
		running     bool
		restarts    int32
		gpus        int64
		cpus        float64
		memoryLimit int64
	}{
		{name: "unscheduled", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: "Unschedulable", Message: "old message"}}
		}, events: []*corev1.Event{
			ev("FailedScheduling", "0/2 nodes are available: 1 Insufficient cpu.", earlier, "u1"),
			ev("FailedScheduling", "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", now, "u1"),
			ev("FailedScheduling", "about the pod before", now, "u0"),
		}, status: "Pending", reason: "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", gpus: 3, cpus: 0.5, memoryLimit: 64 << 20},
		{name: "unscheduled without events", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Message: "0/1 nodes\n are available"}}
		}, status: "Pending", reason: "0/1 nodes are available"},
		{name: "image pull", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image \"x\"\x1b[31m"}}}}
		}, status: "ImagePullBackOff", reason: "Back-off pulling image \"x\" [31m"},
		{name: "image pull with event", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodPending
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "short"}}}}
		}, events: []*corev1.Event{ev("Failed", "Failed to pull image \"x\": not found", now, "u1")}, status: "ErrImagePull", reason: "Failed to pull image \"x\": not found"},
		{name: "crash loop", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{RestartCount: 4,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 3, Reason: "Error"}}}}
		}, status: "CrashLoopBackOff", reason: "last exit code 3 (Error), restarted 4 times", exit: ptr(3), restarts: 4},
		{name: "crash loop out of memory", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{RestartCount: 2,
				State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}
		}, status: "CrashLoopBackOff", reason: "killed: out of memory (limit 64 MiB); restarted 2 times", exit: ptr(137), restarts: 2},
		{name: "out of memory", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}
		}, status: "OOMKilled", reason: "killed: out of memory (limit 64 MiB)", exit: ptr(137)},
		{name: "error exit", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 2, Reason: "Error", Message: "boom"}}}}
		}, status: "Error", reason: "exited with code 2: boom", exit: ptr(2)},
		{name: "completed", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodSucceeded
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}}
		}, status: "Completed", exit: ptr(0)},
		{name: "running", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}
		}, status: "Running", running: true},
		{name: "running after out of memory", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{RestartCount: 1, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}},
				LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137, Reason: "OOMKilled"}}}}
		}, status: "Running", reason: "restarted after running out of memory (limit 64 MiB)", exit: ptr(137), running: true, restarts: 1},
		{name: "evicted", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.Reason, p.Status.Message = "Evicted", "The node was low on resource: memory."
		}, status: "Evicted", reason: "The node was low on resource: memory."},
		{name: "terminating", pod: func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodRunning
			p.DeletionTimestamp = &now
		}, status: "Terminating"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := base()
			tc.pod(pod)
			v := podView(pod, "alice", "nvidia.com/gpu", tc.events)
			if v.Status != tc.status || v.Reason != tc.reason {
				t.Errorf("status %q, reason %q; want %q, %q", v.Status, v.Reason, tc.status, tc.reason)
			}
			if fmt.Sprint(deref(v.ExitCode)) != fmt.Sprint(deref(tc.exit)) {
				t.Errorf("exit code %v, want %v", deref(v.ExitCode), deref(tc.exit))
			}
			if v.Running() != tc.running || v.Restarts != tc.restarts {
				t.Errorf("running %v restarts %d; want %v %d", v.Running(), v.Restarts, tc.running, tc.restarts)
			}
			if v.Owner != "alice" || v.Name != "p" || v.Ref() != "alice/p" {
				t.Errorf("owner/name: %+v", v)
			}
			if tc.gpus != 0 && (v.GPUs != tc.gpus || v.CPUs != tc.cpus || v.Memory != tc.memoryLimit) {
				t.Errorf("resources: %d GPUs %g CPUs %d bytes", v.GPUs, v.CPUs, v.Memory)
			}
		})
	}
}

func ptr(n int) *int { return &n }

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestErrorsAreOneLineForUsers(t *testing.T) {
	gr := schema.GroupResource{Resource: "pods"}
	for _, tc := range []struct {
		err  error
		kind error
		want string
	}{
		{apierrors.NewForbidden(gr, "p", errors.New(`exceeded quota: whalemountain, requested: limits.cpu=2, used: limits.cpu=3, limited: limits.cpu=4`)),
			ErrQuota, "run: quota exceeded: requested: limits.cpu=2, used: limits.cpu=3, limited: limits.cpu=4"},
		{apierrors.NewForbidden(gr, "p", errors.New(`violates PodSecurity "baseline:latest": privileged (container "main" must not set securityContext.privileged=true)`)),
			ErrInvalid, `run: refused by the pod security policy: baseline:latest: privileged (container "main" must not set securityContext.privileged=true)`},
		{apierrors.NewForbidden(gr, "p", errors.New(`User "system:serviceaccount:x:y" cannot create resource "pods" in namespace "other"`)),
			ErrUnavailable, "run: Kubernetes refused the server's request (its permissions are not set up; see KubeRBAC)"},
		{apierrors.NewAlreadyExists(gr, "p"), ErrConflict, "run: it already exists"},
		{apierrors.NewNotFound(gr, "p"), ErrNotFound, "run: not found"},
		{apierrors.NewServiceUnavailable("down"), ErrUnavailable, "run: Kubernetes unreachable"},
		{fmt.Errorf("dial tcp 127.0.0.1:1: connect: connection refused"), ErrUnavailable, "run: Kubernetes unreachable"},
	} {
		err := apiErr("run", tc.err)
		if !errors.Is(err, tc.kind) || err.Error() != tc.want {
			t.Errorf("apiErr(%v) = %q (kind ok: %v), want %q", tc.err, err, errors.Is(err, tc.kind), tc.want)
		}
		if strings.Contains(err.Error(), "\n") || strings.Contains(err.Error(), "system:serviceaccount") {
			t.Errorf("apiErr leaks or breaks lines: %q", err)
		}
	}
	if got := shown("a\x1b]0;x\x07b"); strings.ContainsAny(got, "\x1b\x07") {
		t.Errorf("shown keeps control characters: %q", got)
	}
	if got := oneLine("a\x1b[31mb\n\tc "+strings.Repeat("x", 300), 20); strings.ContainsAny(got, "\x1b\n\t") || len(got) > 24 {
		t.Errorf("oneLine = %q", got)
	}
}

func TestExitStatusFromText(t *testing.T) {
	e := &execution{what: "exec in alice/box"}
	for text, want := range map[string]int{
		"Internal error occurred: error executing command in container: exit status 3": 3,
		"command terminated with non-zero exit code: exit status 127":                  127,
		"exit status 0": 0,
	} {
		code, err := e.exitOf(errors.New(text))
		if err != nil || code != want {
			t.Errorf("exitOf(%q) = %d, %v; want %d", text, code, err, want)
		}
	}
	for _, text := range []string{"exit status 3 and more", "no exit status here", "exit status 12345"} {
		if code, err := e.exitOf(errors.New(text)); err == nil {
			t.Errorf("exitOf(%q) = %d, nil; want an error", text, code)
		}
	}
}

func TestKubeRBACIsMinimal(t *testing.T) {
	var cr rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict([]byte(KubeRBAC()), &cr); err != nil {
		t.Fatalf("KubeRBAC does not parse: %v", err)
	}
	if cr.Kind != "ClusterRole" || cr.Name != ServerClusterRole || len(cr.Rules) == 0 {
		t.Fatalf("unexpected role: %+v", cr)
	}
	for _, r := range cr.Rules {
		// Secrets and config maps, with update, only as runners need them: a runner's Role
		// grants its executor those of a job in its namespace, which the server must hold.
		runnerOnly := slices.Equal(r.Resources, []string{"secrets"}) || slices.Equal(r.Resources, []string{"configmaps"})
		for _, s := range append(append(append([]string{}, r.Resources...), r.Verbs...), r.APIGroups...) {
			switch s {
			case "secrets", "update":
				if runnerOnly {
					continue
				}
				t.Errorf("KubeRBAC grants %q: %+v", s, r)
			case "*", "nodes", "clusterroles", "clusterrolebindings", "escalate", "bind", "impersonate":
				t.Errorf("KubeRBAC grants %q: %+v", s, r)
			}
		}
		if len(r.NonResourceURLs) > 0 || len(r.ResourceNames) > 0 {
			t.Errorf("unexpected rule %+v", r)
		}
	}
}

func TestEventsOfAPodNewestFirst(t *testing.T) {
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "lab", UID: "new"}}
	at := func(m int) metav1.Time { return metav1.NewTime(time.Date(2026, 1, 1, 12, m, 0, 0, time.UTC)) }
	ev := func(uid types.UID, reason, msg string, count int32, m int) *corev1.Event {
		return &corev1.Event{InvolvedObject: corev1.ObjectReference{UID: uid}, Reason: reason, Message: msg, Count: count, LastTimestamp: at(m)}
	}
	var events []*corev1.Event
	for i := range 7 {
		events = append(events, ev("new", "BackOff", fmt.Sprintf("back-off %d", i), 0, i))
	}
	events = append(events,
		ev("old", "Failed", "about the pod of the same name before", 1, 30),
		ev("new", "FailedScheduling", "0/2 nodes are available:\n 2 Insufficient nvidia.com/gpu.", 4, 20))
	got := eventsOf(pod, events)
	if len(got) != maxEvents {
		t.Fatalf("%d events, want the newest %d: %+v", len(got), maxEvents, got)
	}
	if got[0].Reason != "FailedScheduling" || got[0].Count != 4 || strings.Contains(got[0].Message, "\n") ||
		got[1].Message != "back-off 6" || got[1].Count != 1 || got[4].Message != "back-off 3" {
		t.Errorf("events: %+v", got)
	}
}

func TestTarExitInUsersWords(t *testing.T) {
	for _, c := range []struct {
		code   int
		stderr string
		kind   error
		want   string
	}{
		{127, "", ErrNoTar, "pod lab has no tar: files cannot be copied out of it (its image needs tar, as for kubectl cp)"},
		{2, "sh: cd: can't cd to /nope", ErrNoFile, "no such file"},
		{1, "tar: x: Cannot stat: No such file or directory", ErrNoFile, "no such file"},
		{1, "tar: secret: Cannot open: Permission denied", ErrPermission, "permission denied"},
		{1, "tar: \x1b[2Jboom", ErrConflict, "tar in pod lab failed (exit 1): tar: [2Jboom"},
	} {
		err := tarExit("lab", c.code, c.stderr)
		if !errors.Is(err, c.kind) || err.Error() != c.want {
			t.Errorf("exit %d %q: %v, want %q", c.code, c.stderr, err, c.want)
		}
	}
	if tarExit("lab", 0, "warning") != nil {
		t.Error("exit 0 is an error")
	}
	for _, p := range []string{"", "rel", "../a", "/a\x00b", "/" + strings.Repeat("a", maxPathLen)} {
		if _, err := cleanPath(p); !errors.Is(err, ErrNoFile) {
			t.Errorf("cleanPath(%q): %v", p, err)
		}
	}
	// ".." goes up inside the pod and stops at its root.
	for p, want := range map[string]string{
		"/": "/", "/a/": "/a", "/a/../b": "/b", "/..": "/", "/../../etc/passwd": "/etc/passwd",
		"/a/./b//c/..": "/a/b", "/a/b/../../..": "/",
	} {
		if got, err := cleanPath(p); got != want || err != nil {
			t.Errorf("cleanPath(%q) = %q %v, want %q", p, got, err, want)
		}
	}
	if d, e := splitPath("/"); d != "/" || e != "." {
		t.Errorf("splitPath(/): %q %q", d, e)
	}
	if d, e := splitPath("/a/b"); d != "/a" || e != "b" {
		t.Errorf("splitPath(/a/b): %q %q", d, e)
	}
}

// A symlink's target is a clean path in the same pod: relative ones from the link's
// directory, ".." stopping at the pod's root.
func TestLinkInStaysInThePod(t *testing.T) {
	for _, c := range []struct{ dir, raw, want string }{
		{"/home/u", "data", "/home/u/data"},
		{"/home/u", "../v/x", "/home/v/x"},
		{"/home/u", "../../../../etc/shadow", "/etc/shadow"},
		{"/", "..", "/"},
		{"/a", "/etc/../etc/hosts", "/etc/hosts"},
		{"/a", "/../../x", "/x"},
		{"/a", "", ""},
	} {
		if got := linkIn(c.dir, c.raw); got != c.want {
			t.Errorf("linkIn(%q, %q) = %q, want %q", c.dir, c.raw, got, c.want)
		}
	}
}

// Each attribute becomes its argument of scriptAttrs, in UTC, and names the tool it needs.
func TestAttrArgs(t *testing.T) {
	mode := fs.FileMode(0o4750) | fs.ModeDir
	mtime := time.Date(2026, 3, 4, 5, 6, 7, 0, time.FixedZone("JST", 9*3600))
	size := int64(42)
	for _, c := range []struct {
		attrs backend.FileAttrs
		args  []string
		tools string
	}{
		{backend.FileAttrs{}, []string{"", "", ""}, ""},
		{backend.FileAttrs{Mode: &mode}, []string{"", "0750", ""}, "chmod"},
		{backend.FileAttrs{ModTime: &mtime}, []string{"", "", "202603032006.07"}, "touch"},
		{backend.FileAttrs{Size: &size, Mode: &mode, ModTime: &mtime}, []string{"42", "0750", "202603032006.07"}, "truncate or chmod or touch"},
	} {
		args, tools := attrArgs(c.attrs)
		if !slices.Equal(args, c.args) || tools != c.tools {
			t.Errorf("%+v: %q %q, want %q %q", c.attrs, args, tools, c.args, c.tools)
		}
	}
}

// What the tools in the pod say becomes one line of a kind the tree can tell apart.
func TestScriptExit(t *testing.T) {
	for _, c := range []struct {
		code   int
		stderr string
		kind   error
	}{
		{127, "sh: chmod: not found", ErrUnsupported},
		{1, "mkdir: can't create directory '/a/b': File exists", ErrConflict},
		{1, "rmdir: '/d': Directory not empty", ErrConflict},
		{1, "chmod: /x: No such file or directory", ErrNoFile},
		{1, "mv: can't rename '/etc/x': Permission denied", ErrPermission},
		{1, "touch: /ro/x: Read-only file system", ErrPermission},
	} {
		if err := scriptExit("lab", "tool", c.code, c.stderr); !errors.Is(err, c.kind) || strings.ContainsAny(err.Error(), "\n\x1b") {
			t.Errorf("exit %d %q: %v, want %v", c.code, c.stderr, err, c.kind)
		}
	}
}

func TestOneFileTarIsWholeRecords(t *testing.T) {
	var b strings.Builder
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := writeOneFileTar(&b, "data.csv", strings.NewReader("a,b\n1,2\n"), 8, 0o640, mtime); err != nil {
		t.Fatal(err)
	}
	if b.Len()%tarRecord != 0 {
		t.Errorf("archive of %d bytes, not whole records of %d", b.Len(), tarRecord)
	}
	tr := tar.NewReader(strings.NewReader(b.String()))
	h, err := tr.Next()
	if err != nil || h.Name != "data.csv" || h.Size != 8 || h.Mode != 0o640 || !h.ModTime.Equal(mtime) {
		t.Fatalf("header %+v %v", h, err)
	}
	if got, _ := io.ReadAll(tr); string(got) != "a,b\n1,2\n" {
		t.Errorf("content %q", got)
	}
	if _, err := tr.Next(); err != io.EOF {
		t.Errorf("more than one entry: %v", err)
	}
	if err := writeOneFileTar(io.Discard, "x", strings.NewReader("short"), 10, 0o600, mtime); err == nil {
		t.Error("a file shorter than its size was written whole")
	}
}
