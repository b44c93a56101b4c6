package kube

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// ServerClusterRole is the name of the ClusterRole in KubeRBAC.
const ServerClusterRole = "whalemountain"

// serverRules are what the server itself does: make and repair users' namespaces and what
// is in them, hand out their ServiceAccounts' tokens, and everything the users' Role allows
// (Kubernetes lets a Role be granted only by someone who holds its permissions).
func serverRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch", "create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"resourcequotas", "limitranges"}, Verbs: []string{"get", "list", "create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"get", "list", "create", "delete"}},
		// Shared data: a volume per entitled namespace, bound to the server's claim there.
		{APIGroups: []string{""}, Resources: []string{"persistentvolumes"}, Verbs: []string{"get", "create", "delete"}},
		{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"rolebindings"}, Verbs: []string{"create", "patch", "delete"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/portforward"}, Verbs: []string{"get", "create"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
	}
}

// KubeRBAC returns the ClusterRole (YAML) the server's own identity needs, no more: bind it
// to the server's ServiceAccount or user with a ClusterRoleBinding. It cannot be narrowed to
// namespaces, since the server makes users' namespaces as they come. It grants nothing on
// secrets, nodes, roles of its own or cluster-wide RBAC.
func KubeRBAC() string {
	cr := rbacv1.ClusterRole{
		TypeMeta: metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "ClusterRole"},
		ObjectMeta: metav1.ObjectMeta{
			Name:   ServerClusterRole,
			Labels: map[string]string{LabelManaged: "true"},
		},
		Rules: serverRules(),
	}
	b, err := yaml.Marshal(cr)
	if err != nil {
		panic("kube: ClusterRole does not marshal: " + err.Error())
	}
	return "# The permissions the WhaleMountain server needs (bind with a ClusterRoleBinding).\n" + string(b)
}
