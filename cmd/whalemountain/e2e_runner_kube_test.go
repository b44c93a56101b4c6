package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// TestE2ERunnerKubernetes: with real ssh, a server lending containers and pods, the GitLab
// stand-in and the real API server: runner token --kubernetes makes alice's runner a pod in
// her own namespace, with its Secret, ServiceAccount, Role and RoleBinding, all labelled by
// the server; runner status shows it with the same states; bob reaches it by no name; runner
// rm removes all of it.
func TestE2ERunnerKubernetes(t *testing.T) {
	c := kubetest.Get(t)
	kc := kubetest.Config(t)
	t.Cleanup(func() { c.RemoveNamespaces(t, kc.Labels) })
	var labels strings.Builder
	for k, v := range kc.Labels {
		fmt.Fprintf(&labels, "    %s: %q\n", k, v)
	}
	f := newRunnerFixtureWith(t, "kr", "", "", fmt.Sprintf("kubernetes:\n  kubeconfig: %s\n  namespace_prefix: %s\n  labels:\n%s",
		kc.Kubeconfig, kc.NamespacePrefix, labels.String()))
	s, alice, bob := f.s, f.alice, f.bob
	runnerID, token := f.gl.AddRunner(f.demo)

	r := s.sshStdin(t, alice, "alice", token+"\n", "runner", "token", "--project", "alice/demo", "--kubernetes")
	if r.Code != 0 || !strings.Contains(r.Stdout, "runner alice-demo: token accepted by GitLab") {
		t.Fatalf("runner token --kubernetes: %s", r)
	}
	if f.gl.Runner(runnerID).Verifies == 0 {
		t.Error("the server started a runner without asking GitLab about its token")
	}
	if n := len(s.engineContainers(t, "alice", "alice-demo")); n != 0 {
		t.Errorf("a runner in Kubernetes has %d containers on the engine", n)
	}
	type status struct {
		Name, State, Status, Executor, Namespace string
	}
	var st []status
	if !poll(runnerTimeout, func() bool {
		st = nil
		return json.Unmarshal([]byte(s.mustRun(t, alice, "alice", "runner", "status", "--json")), &st) == nil &&
			len(st) == 1 && st[0].State == "running"
	}) {
		t.Fatalf("runner status --json: %+v", st)
	}
	ns := st[0].Namespace
	if st[0].Executor != "kubernetes" || !strings.HasPrefix(ns, kc.NamespacePrefix+"alice-") || !strings.Contains(st[0].Status, "pod in "+ns) {
		t.Errorf("runner status --json: %+v", st[0])
	}
	if out := s.mustRun(t, alice, "alice", "runner", "status"); !strings.Contains(out, "alice-demo") || !strings.Contains(out, "running") {
		t.Errorf("runner status: %q", out)
	}

	// Its objects, in alice's namespace only, labelled by the server.
	ctx := t.Context()
	obj := kube.RunnerObject("alice-demo")
	admin := c.Client
	gets := map[string]func(string) (metav1.Object, error){
		"Pod": func(ns string) (metav1.Object, error) {
			return admin.CoreV1().Pods(ns).Get(ctx, obj, metav1.GetOptions{})
		},
		"Secret": func(ns string) (metav1.Object, error) {
			return admin.CoreV1().Secrets(ns).Get(ctx, obj, metav1.GetOptions{})
		},
		"ServiceAccount": func(ns string) (metav1.Object, error) {
			return admin.CoreV1().ServiceAccounts(ns).Get(ctx, obj, metav1.GetOptions{})
		},
		"Role": func(ns string) (metav1.Object, error) {
			return admin.RbacV1().Roles(ns).Get(ctx, obj, metav1.GetOptions{})
		},
		"RoleBinding": func(ns string) (metav1.Object, error) {
			return admin.RbacV1().RoleBindings(ns).Get(ctx, obj, metav1.GetOptions{})
		},
	}
	for kind, get := range gets {
		o, err := get(ns)
		if err != nil {
			t.Errorf("alice's runner's %s: %v", kind, err)
			continue
		}
		if l := o.GetLabels(); l[kube.LabelManaged] != "true" || l[kube.LabelOwner] != kube.OwnerKey("alice") || l[kube.LabelRunner] != "alice-demo" {
			t.Errorf("alice's runner's %s labels %v", kind, l)
		}
	}
	sec, err := admin.CoreV1().Secrets(ns).Get(ctx, obj, metav1.GetOptions{})
	if err == nil && (!strings.Contains(string(sec.Data["config.toml"]), `namespace = "`+ns+`"`) || !strings.Contains(string(sec.Data["config.toml"]), token)) {
		t.Errorf("the runner's config.toml:\n%s", sec.Data["config.toml"])
	}

	// attack: bob, by every name, hears what he hears for a runner nobody has; alice's runner
	// stays.
	ctl, ctlUser := randomLetters(6), randomLetters(5)
	for _, form := range []struct{ args, ctl []string }{
		{[]string{"runner", "logs", "alice-demo"}, []string{"runner", "logs", ctl}},
		{[]string{"runner", "rm", "--user", "alice", "--reason", "x", "alice-demo"}, []string{"runner", "rm", "--user", ctlUser, "--reason", "x", ctl}},
		{[]string{"runner", "stop", "--user", "alice", "--reason", "x", "alice/demo"}, []string{"runner", "stop", "--user", ctlUser, "--reason", "x", ctlUser + "/demo"}},
	} {
		got, same := sameAsControl(s.run(t, bob, "bob", form.args...), s.run(t, bob, "bob", form.ctl...), [][2]string{{ctl, "alice-demo"}, {ctlUser, "alice"}}, true)
		if !same {
			t.Errorf("attack: bob's %q differs from a runner nobody has:\n%s", form.args, got)
		}
	}
	if _, err := gets["Pod"](ns); err != nil {
		t.Errorf("alice's runner pod after bob's tries: %v", err)
	}

	// runner rm: nothing of it is left, in GitLab or the cluster.
	if out := s.mustRun(t, alice, "alice", "runner", "rm"); !strings.Contains(out, "removed") {
		t.Errorf("runner rm: %q", out)
	}
	if f.gl.Runner(runnerID).Exists {
		t.Error("runner rm left the runner registered in GitLab")
	}
	for kind, get := range gets {
		if !poll(pollTimeout, func() bool { _, err := get(ns); return apierrors.IsNotFound(err) }) {
			t.Errorf("runner rm left the runner's %s", kind)
		}
	}
}
