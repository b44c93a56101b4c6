package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// TestE2EAttackPods is the attack table of pods: on one server lending pods on the test
// cluster, alice has a running pod "lab" and mallory tries every door on it — each verb
// with every way of naming it (name, owner/name, alice's namespace, case and path tricks),
// creating into another namespace, ssh -L to pod/NAME forms, and kubectl with mallory's own
// kubeconfig. "Not found" reads the same as for a pod nobody has; nothing of alice's
// changes.
func TestE2EAttackPods(t *testing.T) {
	t.Parallel()
	c := kubetest.Get(t)
	s := startPodServer(t)
	alice, mallory := newKey(t, "alice"), newKey(t, "mallory")
	s.addKey(t, "alice", alice)
	s.addKey(t, "mallory", mallory)
	dial := func(key *testKey, user string) *ssh.Client {
		cl, err := s.dial(&ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(key.Signer)}})
		if err != nil {
			t.Fatalf("%s cannot log in: %v", user, err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	ac, mc := dial(alice, "alice"), dial(mallory, "mallory")
	run := func(cl *ssh.Client, args ...string) sshResult {
		r, err := atkExec(cl, atkQuote(args), false, sshTimeout)
		if err != nil {
			r.Stderr += "\n[client: " + err.Error() + "]"
		}
		return r
	}
	if r := run(ac, "pod", "run", "--name", "lab", "busybox:1"); r.Code != 0 {
		t.Fatalf("alice's pod: %s", describe(r))
	}
	var ns string
	if !poll(pollTimeout, func() bool {
		var ps []kube.Pod
		r := run(ac, "pods", "--json")
		_ = json.Unmarshal([]byte(r.Stdout), &ps)
		if len(ps) == 1 && ps[0].Running() {
			ns = ps[0].Namespace
			return true
		}
		return false
	}) {
		t.Fatal("alice's pod never ran")
	}
	// mallory's own namespace exists too (her kubeconfig makes it).
	r := run(mc, "kubeconfig")
	if r.Code != 0 {
		t.Fatalf("mallory's kubeconfig: %s", describe(r))
	}
	kubeconfig := filepath.Join(t.TempDir(), "mallory.kubeconfig")
	if err := os.WriteFile(kubeconfig, []byte(r.Stdout), 0o600); err != nil {
		t.Fatal(err)
	}
	tb := &attackTable{}
	lab, ctl := "lab", "zq"+randomLetters(6)

	// Every verb, every way of naming alice's pod, against the same for a pod nobody has.
	forms := []struct {
		what string
		f    func(name string) string
	}{
		{"name", func(n string) string { return n }},
		{"owner/name", func(n string) string { return "alice/" + n }},
		{"upper owner", func(n string) string { return "ALICE/" + n }},
		{"upper name", func(n string) string { return strings.ToUpper(n) }},
		{"her namespace/name", func(n string) string { return ns + "/" + n }},
		{"path dots", func(n string) string { return "../alice/" + n }},
		{"double slash", func(n string) string { return "alice//" + n }},
		{"trailing slash", func(n string) string { return "alice/" + n + "/" }},
		{"trailing space", func(n string) string { return n + " " }},
		{"namespace prefix", func(n string) string { return "mallory/../alice/" + n }},
	}
	verbs := []struct {
		name string
		args func(ref string) []string
	}{
		{"pod logs", func(r string) []string { return []string{"pod", "logs", r} }},
		{"pod logs --previous", func(r string) []string { return []string{"pod", "logs", "--previous", r} }},
		{"pod inspect", func(r string) []string { return []string{"pod", "inspect", r} }},
		{"pod exec", func(r string) []string { return []string{"pod", "exec", r, "--", "true"} }},
		{"pod rm", func(r string) []string { return []string{"pod", "rm", r} }},
	}
	for _, v := range verbs {
		for _, form := range forms {
			tb.equivRow("cli "+v.name, "mallory", shownArgs(v.args(form.f(lab)))+"   ["+form.what+"]", shownArgs(v.args(form.f(ctl))),
				func(t *testing.T, control bool) sshResult {
					if control {
						return run(mc, v.args(form.f(ctl))...)
					}
					return run(mc, v.args(form.f(lab))...)
				}, [][2]string{{form.f(ctl), form.f(lab)}, {ctl, lab}}, nil)
		}
	}
	// Listing everyone's, and creating into another namespace: refused, nothing made.
	for _, args := range [][]string{
		{"pods", "--all-users"},
		{"pod", "run", "--name", "alice/x", "busybox:1"},
		{"pod", "run", "--namespace", ns, "--name", "x", "busybox:1"},
		{"pod", "run", "-n", ns, "--name", "x", "busybox:1"},
		{"pod", "run", "--name", "../x", "busybox:1"},
	} {
		tb.add("cli "+args[0], "mallory", shownArgs(args), "exit 2, one line, nothing made", func(t *testing.T) (string, bool) {
			r := run(mc, args...)
			ok := r.Code == 2 && r.Stdout == "" && strings.Count(r.Stderr, "\n") == 1 && !strings.Contains(r.Stderr, "lab")
			var ps []kube.Pod
			_ = json.Unmarshal([]byte(run(mc, "pods", "--json").Stdout), &ps)
			return describe(r) + "; mallory's pods afterwards: " + strings.TrimSpace(run(mc, "pods").Stdout), ok && len(ps) == 0
		})
	}
	// A pod named like alice's namespace is only a pod of that name in mallory's own.
	tb.add("cli pod run", "mallory", shownArgs([]string{"pod", "run", "--name", ns, "busybox:1"}), "made in mallory's own namespace", func(t *testing.T) (string, bool) {
		r := run(mc, "pod", "run", "--name", ns, "busybox:1")
		var ps []kube.Pod
		_ = json.Unmarshal([]byte(run(mc, "pods", "--json").Stdout), &ps)
		rm := run(mc, "pod", "rm", ns)
		ok := r.Code == 0 && len(ps) == 1 && ps[0].Owner == "mallory" && ps[0].Namespace != ns && rm.Code == 0
		return describe(r) + "; then " + describe(rm), ok
	})
	// ssh -L to alice's pod, every form: refused exactly as for a pod nobody has.
	for _, form := range forms {
		dest := func(n string) string { return "pod/" + form.f(n) }
		tb.equivRow("forward -L", "mallory", dest(lab)+":8888   ["+form.what+"]", dest(ctl)+":8888",
			func(t *testing.T, control bool) sshResult {
				if control {
					return openDirect(mc, dest(ctl), 8888)
				}
				return openDirect(mc, dest(lab), 8888)
			}, [][2]string{{form.f(ctl), form.f(lab)}, {ctl, lab}}, nil)
	}
	for _, d := range []string{"pod/", "pod", "pods/lab", "pod/" + ns + ".svc", "lab.pod"} {
		tb.add("forward -L", "mallory", d+":8888", "refused", func(t *testing.T) (string, bool) {
			r := openDirect(mc, d, 8888)
			return describe(r), r.Code == 1 && strings.Contains(r.Stderr, "rejected")
		})
	}
	// sftp: alice's pod's files by every path form, against a pod nobody has; /pods lists
	// nothing of hers.
	for _, form := range []struct{ what, f string }{
		{"name", "/pods/%s/etc/hostname"},
		{"owner/name", "/pods/alice/%s/etc/hostname"},
		{"upper name", "/pods/%s/ETC/../etc/hostname"},
		{"dots", "/pods/../pods/%s/etc/hostname"},
		{"her namespace", "/pods/" + ns + "/%s/etc/hostname"},
	} {
		get := func(name string) string { return "get " + fmt.Sprintf(form.f, name) + " /dev/null" }
		tb.equivRow("sftp", "mallory", get(lab)+"   ["+form.what+"]", get(ctl), func(t *testing.T, control bool) sshResult {
			if control {
				return s.sftpBatch(t, mallory, "mallory", get(ctl))
			}
			return s.sftpBatch(t, mallory, "mallory", get(lab))
		}, [][2]string{{ctl, lab}}, nil)
	}
	for _, form := range []string{"/pods/%s/tmp/planted", "/pods/alice/%s/tmp/planted"} {
		put := func(name string) string { return "put /etc/hostname " + fmt.Sprintf(form, name) }
		tb.equivRow("sftp", "mallory", put(lab), put(ctl), func(t *testing.T, control bool) sshResult {
			if control {
				return s.sftpBatch(t, mallory, "mallory", put(ctl))
			}
			return s.sftpBatch(t, mallory, "mallory", put(lab))
		}, [][2]string{{ctl, lab}}, nil)
	}
	tb.add("sftp", "mallory", "ls /pods", "nothing of alice's", func(t *testing.T) (string, bool) {
		r := s.sftpBatch(t, mallory, "mallory", "ls /pods")
		return describe(r), r.Code == 0 && !strings.Contains(r.Stdout, "lab")
	})
	// kubectl with mallory's own kubeconfig reaches nothing of alice's and nothing of the
	// cluster's.
	for _, args := range [][]string{
		{"-n", ns, "get", "pods"},
		{"-n", ns, "logs", "lab"},
		{"-n", ns, "exec", "lab", "--", "true"},
		{"-n", ns, "delete", "pod", "lab"},
		{"-n", ns, "port-forward", "pod/lab", "18888:8888"},
		{"get", "pods", "--all-namespaces"},
		{"get", "secrets"},
		{"get", "nodes"},
		{"get", "namespaces"},
		{"create", "rolebinding", "x", "--clusterrole=admin", "--user=mallory"},
		{"label", "namespace", ns, "whalemountain.io/owner=mallory", "--overwrite"},
	} {
		tb.add("kubectl", "mallory", "kubectl "+strings.Join(args, " "), "Forbidden", func(t *testing.T) (string, bool) {
			cmd := exec.Command(c.Kubectl(), append([]string{"--kubeconfig", kubeconfig, "--request-timeout", "10s"}, args...)...)
			out, err := cmd.CombinedOutput()
			return string(out), err != nil && strings.Contains(string(out), "forbidden") && !strings.Contains(string(out), kubetest.LogLines[0])
		})
	}
	tb.run(t)

	// Nothing of alice's changed: her pod is there and running, and every try of mallory's
	// that reached the backend is in the audit log as refused, none as done.
	if r := run(ac, "pods", "--json"); !strings.Contains(r.Stdout, `"name": "lab"`) || !strings.Contains(r.Stdout, `"status": "Running"`) {
		t.Errorf("alice's pod after the attack: %s", describe(r))
	}
	for _, e := range readAudit(t, s.auditPath()) {
		if e.User == "mallory" && e.Result == "ok" && !strings.HasPrefix(e.Target, "mallory/") && slices.Contains([]string{"pod rm", "pod exec", "pod forward", "forward"}, e.Action) {
			t.Errorf("mallory's %s of %s went through", e.Action, e.Target)
		}
	}
	if !slices.ContainsFunc(readAudit(t, s.auditPath()), func(e auditEntry) bool {
		return e.User == "mallory" && e.Action == "pod rm" && e.Result == "refused"
	}) {
		t.Error("mallory's refused pod rm is not in the audit log")
	}
}
