package kube

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// ServerClusterRole is the name of the ClusterRole in KubeRBAC.
const ServerClusterRole = "whalemountain"

// serverRules are what the server itself does: make and repair users' namespaces and what
// is in them, hand out their ServiceAccounts' tokens, run users' GitLab runners in their
// namespaces (a Secret with config.toml, a ServiceAccount, Role and RoleBinding, a pod),
// and everything the users' Role and the runners' Role allow (Kubernetes lets a Role be
// granted only by someone who holds its permissions).
func serverRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch", "create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get", "create", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts/token"}, Verbs: []string{"create"}},
		{APIGroups: []string{""}, Resources: []string{"resourcequotas", "limitranges"}, Verbs: []string{"get", "list", "create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"persistentvolumeclaims"}, Verbs: []string{"get", "list", "create", "delete"}},
		// Shared data: a volume per entitled namespace, bound to the server's claim there.
		{APIGroups: []string{""}, Resources: []string{"persistentvolumes"}, Verbs: []string{"get", "create", "delete"}},
		{APIGroups: []string{"rbac.authorization.k8s.io"}, Resources: []string{"roles", "rolebindings"}, Verbs: []string{"create", "patch", "delete"}},
		{APIGroups: []string{"networking.k8s.io"}, Resources: []string{"networkpolicies"}, Verbs: []string{"create", "patch"}},
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"get", "create"}},
		{APIGroups: []string{""}, Resources: []string{"pods/exec", "pods/attach"}, Verbs: []string{"get", "create", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
		// Runners: their config.toml, and what their Role grants them in their namespace.
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "create", "update", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"configmaps"}, Verbs: []string{"get", "create", "update", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "create"}},
	}
}

// KubeRBAC returns the ClusterRole (YAML) the server's own identity needs, no more: bind it
// to the server's ServiceAccount or user with a ClusterRoleBinding. It cannot be narrowed to
// namespaces, since the server makes users' namespaces as they come. It grants nothing on
// nodes, roles of its own or cluster-wide RBAC; secrets only for runners' config.toml and
// because a runner's Role grants its executor the secrets of a job in its namespace.
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
