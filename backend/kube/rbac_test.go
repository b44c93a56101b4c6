package kube_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// The student's kubeconfig reaches their own namespace and nothing else.
func TestKubeconfigReachesOwnNamespaceOnly(t *testing.T) {
	t.Parallel()
	log, logPath := auditLog(t)
	svc := kubetest.NewService(t, log)
	ctx := ctxFor(t)
	alice, bob := kubetest.Student("alice"), kubetest.Student("bob")
	cfgBytes, exp, err := svc.Kubeconfig(ctx, alice)
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	if d := time.Until(exp); d < 7*time.Hour || d > 9*time.Hour {
		t.Errorf("token expires in %s, want about 8h", d)
	}
	if err := svc.Provision(ctx, bob); err != nil {
		t.Fatal(err)
	}
	aliceNS, bobNS := svc.Config().Namespace("alice"), svc.Config().Namespace("bob")

	kc, err := clientcmd.Load(cfgBytes)
	if err != nil {
		t.Fatalf("kubeconfig does not load: %v", err)
	}
	if ctxt := kc.Contexts[kc.CurrentContext]; ctxt == nil || ctxt.Namespace != aliceNS {
		t.Errorf("context namespace: %+v", kc.Contexts)
	}
	for _, ai := range kc.AuthInfos {
		if ai.Token == "" || ai.ClientCertificate != "" || len(ai.ClientCertificateData) > 0 || ai.TokenFile != "" {
			t.Errorf("kubeconfig credentials are not a token: %+v", ai)
		}
		server, _ := os.ReadFile(kubetest.Get(t).ServerKubeconfig(t))
		if strings.Contains(string(server), ai.Token) {
			t.Error("the kubeconfig carries the server's own token")
		}
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(cfgBytes)
	if err != nil {
		t.Fatal(err)
	}
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	who, err := cs.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("who am I: %v", err)
	}
	if want := "system:serviceaccount:" + aliceNS + ":whalemountain-user"; who.Status.UserInfo.Username != want {
		t.Errorf("the kubeconfig is %q, want %q", who.Status.UserInfo.Username, want)
	}

	// Allowed: pods in the own namespace (made as kubectl would, defaults from the LimitRange).
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "by-kubectl", Labels: map[string]string{kube.LabelOwner: kube.OwnerKey("bob")}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "busybox:1"}}},
	}
	if _, err := cs.CoreV1().Pods(aliceNS).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("alice creates a pod in her namespace: %v", err)
	}
	if _, err := cs.CoreV1().Pods(aliceNS).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("alice lists her pods: %v", err)
	}
	if _, err := cs.CoreV1().Events(aliceNS).List(ctx, metav1.ListOptions{}); err != nil {
		t.Errorf("alice lists her events: %v", err)
	}
	if _, err := cs.CoreV1().ResourceQuotas(aliceNS).Get(ctx, "whalemountain", metav1.GetOptions{}); err != nil {
		t.Errorf("alice reads her quota: %v", err)
	}
	// The pod is hers, whatever its labels say, and it shows in her list only.
	got := waitPod(t, svc, alice, "by-kubectl", func(kube.Pod) bool { return true })
	if got.Owner != "alice" || got.Managed {
		t.Errorf("pod made with kubectl: %+v", got)
	}
	if pods, _ := svc.Snapshot(bob, kube.ListOptions{}); len(pods) != 0 {
		t.Errorf("bob sees %+v", pods)
	}
	// Hardened by Pod Security admission too.
	priv := true
	bad := pod.DeepCopy()
	bad.Name, bad.Labels = "privileged", nil
	bad.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &priv}
	if _, err = cs.CoreV1().Pods(aliceNS).Create(ctx, bad, metav1.CreateOptions{}); err == nil {
		t.Error("privileged pod with alice's kubeconfig was made")
	}
	bad.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"SYS_ADMIN"}}}
	_, err = cs.CoreV1().Pods(aliceNS).Create(ctx, bad, metav1.CreateOptions{})
	if !apierrors.IsForbidden(err) || !strings.Contains(err.Error(), "PodSecurity") {
		t.Errorf("pod with SYS_ADMIN with alice's kubeconfig: %v", err)
	}
	bad.Spec.Containers[0].SecurityContext = nil
	bad.Spec.HostNetwork = true
	if _, err = cs.CoreV1().Pods(aliceNS).Create(ctx, bad, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("pod in the host's network with alice's kubeconfig: %v", err)
	}
	hostPath := pod.DeepCopy()
	hostPath.Name, hostPath.Labels = "hostpath", nil
	hostPath.Spec.Volumes = []corev1.Volume{{Name: "h", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/"}}}}
	if _, err := cs.CoreV1().Pods(aliceNS).Create(ctx, hostPath, metav1.CreateOptions{}); !apierrors.IsForbidden(err) {
		t.Errorf("hostPath pod with alice's kubeconfig: %v", err)
	}

	// Refused: everything else.
	forbidden := map[string]error{}
	_, forbidden["pods of bob"] = cs.CoreV1().Pods(bobNS).List(ctx, metav1.ListOptions{})
	_, forbidden["a pod in bob's namespace"] = cs.CoreV1().Pods(bobNS).Create(ctx, pod, metav1.CreateOptions{})
	_, forbidden["pods everywhere"] = cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{})
	_, forbidden["pods in default"] = cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	_, forbidden["secrets"] = cs.CoreV1().Secrets(aliceNS).List(ctx, metav1.ListOptions{})
	_, forbidden["a secret"] = cs.CoreV1().Secrets(aliceNS).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "s"}}, metav1.CreateOptions{})
	_, forbidden["roles"] = cs.RbacV1().Roles(aliceNS).List(ctx, metav1.ListOptions{})
	_, forbidden["a role"] = cs.RbacV1().Roles(aliceNS).Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Name: "more"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}},
	}, metav1.CreateOptions{})
	_, forbidden["a role binding to admin"] = cs.RbacV1().RoleBindings(aliceNS).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "escalate"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: "whalemountain-user", Namespace: aliceNS}},
	}, metav1.CreateOptions{})
	_, forbidden["changing her role"] = cs.RbacV1().Roles(aliceNS).Update(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "whalemountain-user"}}, metav1.UpdateOptions{})
	_, forbidden["the quota"] = cs.CoreV1().ResourceQuotas(aliceNS).Update(ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "whalemountain"}}, metav1.UpdateOptions{})
	forbidden["removing the quota"] = cs.CoreV1().ResourceQuotas(aliceNS).Delete(ctx, "whalemountain", metav1.DeleteOptions{})
	forbidden["removing the network policy"] = cs.NetworkingV1().NetworkPolicies(aliceNS).Delete(ctx, "whalemountain-isolate", metav1.DeleteOptions{})
	_, forbidden["nodes"] = cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	_, forbidden["namespaces"] = cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	_, forbidden["her namespace"] = cs.CoreV1().Namespaces().Get(ctx, aliceNS, metav1.GetOptions{})
	_, forbidden["a new namespace"] = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "alice-extra"}}, metav1.CreateOptions{})
	_, forbidden["service accounts"] = cs.CoreV1().ServiceAccounts(aliceNS).List(ctx, metav1.ListOptions{})
	_, forbidden["a token"] = cs.CoreV1().ServiceAccounts(aliceNS).CreateToken(ctx, "whalemountain-user", &authnv1.TokenRequest{}, metav1.CreateOptions{})
	_, forbidden["cluster roles"] = cs.RbacV1().ClusterRoles().List(ctx, metav1.ListOptions{})
	_, forbidden["config maps"] = cs.CoreV1().ConfigMaps(aliceNS).List(ctx, metav1.ListOptions{})
	_, forbidden["services"] = cs.CoreV1().Services(aliceNS).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "s"},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Port: 80}}}}, metav1.CreateOptions{})
	for what, err := range forbidden {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s with alice's kubeconfig: %v, want forbidden", what, err)
		}
	}

	// kubectl agrees.
	{
		kubectl := kubetest.Get(t).Kubectl()
		path := filepath.Join(t.TempDir(), "kubeconfig")
		if err := os.WriteFile(path, cfgBytes, 0o600); err != nil {
			t.Fatal(err)
		}
		run := func(args ...string) (string, error) {
			cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig", path}, args...)...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil && stderr.Len() > 0 {
				err = fmt.Errorf("%w: %s", err, strings.TrimSpace(stderr.String()))
			}
			return strings.TrimSpace(string(out)), err
		}
		if out, err := run("get", "pods", "-o", "name"); err != nil || !strings.Contains(out, "pod/by-kubectl") {
			t.Errorf("kubectl get pods: %v: %s", err, out)
		}
		for _, args := range [][]string{
			{"auth", "can-i", "get", "secrets"},
			{"auth", "can-i", "list", "pods", "-n", bobNS},
			{"auth", "can-i", "create", "rolebindings"},
			{"auth", "can-i", "list", "nodes"},
			{"auth", "can-i", "escalate", "roles"},
		} {
			if out, _ := run(args...); out != "no" {
				t.Errorf("kubectl %s: %q, want no", strings.Join(args, " "), out)
			}
		}
		for _, args := range [][]string{
			{"auth", "can-i", "create", "pods"},
			{"auth", "can-i", "create", "pods/exec"},
			{"auth", "can-i", "get", "pods/log"},
		} {
			if out, _ := run(args...); out != "yes" {
				t.Errorf("kubectl %s: %q, want yes", strings.Join(args, " "), out)
			}
		}
		waitPod(t, svc, alice, "by-kubectl", running)
		if out, err := run("exec", "by-kubectl", "--", "echo", "hi"); err != nil || out != "hi" {
			t.Errorf("kubectl exec: %v: %q", err, out)
		}
		if out, err := run("logs", "by-kubectl", "--tail", "1"); err != nil || out != kubetest.LogLines[len(kubetest.LogLines)-1] {
			t.Errorf("kubectl logs: %v: %q", err, out)
		}
		if out, err := run("get", "pods", "-n", bobNS); err == nil || !strings.Contains(err.Error(), "Forbidden") {
			t.Errorf("kubectl get pods -n bob: %v: %q", err, out)
		}
		if out, err := run("version"); err != nil || !strings.Contains(out, "v1.37.2") {
			t.Errorf("kubectl version: %v: %s", err, out)
		}
	}

	if !hasAudit(readAudit(t, logPath), "alice", "kubeconfig", "alice", "ok") {
		t.Error("kubeconfig not audited")
	}
}
