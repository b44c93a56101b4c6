// Package kube is the room for Kubernetes pods: each user's own namespace, pods in it,
// their logs, shells and ports, and a kubeconfig that reaches that namespace only.
//
// Owned: every user gets one namespace, made by the server on first use and repaired when it
// has drifted: the namespace (owner and managed labels, Pod Security labels), a ServiceAccount
// with a Role that reaches pods, their logs, exec and port-forward and events in that namespace
// only, a ResourceQuota and LimitRange from the user's role, a NetworkPolicy that refuses
// traffic from other users' namespaces, and optionally a home PersistentVolumeClaim. The
// namespace's name is derived from the user name (sanitised, plus a short hash, so two users
// whose names sanitise alike never share one), but what authorises is the owner label the
// server put on it: a lookup never resolves to a namespace or pod the server did not make for
// that user. Pods in a user's namespace are theirs whoever made them (this server or kubectl
// with the user's kubeconfig); a pod's own labels never decide whose it is. A missing pod and
// another user's pod read the same: "no such pod".
//
// Hardened: pods made through the server run without privilege escalation, with every
// capability dropped but a site allow-list, the runtime's seccomp profile, no host namespaces
// or host paths, no ServiceAccount token, GPUs only as nvidia.com/gpu limits; Pod Security
// admission (baseline or restricted) holds pods made with kubectl to the same line, and the
// quota holds both to the user's share.
//
// Live: one informer set (managed namespaces, all pods, warning events about pods) keeps an
// in-memory snapshot; sessions read it with Snapshot and are told of changes with SubscribeFor,
// so API calls do not grow with the number of dashboards.
//
// The server's own credentials never leave it: Kubeconfig hands out a short-lived token of the
// user's ServiceAccount. KubeRBAC is the ClusterRole the server itself needs.
package kube
