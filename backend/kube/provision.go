package kube

import (
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	netv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"

	"whalemountain/backend"
)

// Names of the objects in every user's namespace.
const (
	userObject    = "whalemountain-user"    // ServiceAccount, Role, RoleBinding
	policyObject  = "whalemountain"         // ResourceQuota, LimitRange
	isolateObject = "whalemountain-isolate" // NetworkPolicy
	homeClaim     = "home"                  // PersistentVolumeClaim
	fieldManager  = "whalemountain"
)

// reprovisionEvery is how long a user's namespace is taken to be right after it was made
// right; the next call after that checks and repairs it again.
const reprovisionEvery = 5 * time.Minute

// Provision makes the identity's namespace and everything in it right now: created when
// missing, repaired when drifted. Other calls do this on first use by themselves; creating
// and repairing are audited.
func (s *Service) Provision(ctx context.Context, id backend.Identity) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	p := s.provisionOf(id.User)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := s.provisionLocked(ctx, id); err != nil {
		return err
	}
	p.done = time.Now()
	return nil
}

// ensure returns the identity's namespace, provisioning it when that was not done lately.
func (s *Service) ensure(ctx context.Context, id backend.Identity) (string, error) {
	ns := s.cfg.Namespace(id.User)
	p := s.provisionOf(id.User)
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.done.IsZero() && time.Since(p.done) < reprovisionEvery {
		return ns, nil
	}
	if err := s.provisionLocked(ctx, id); err != nil {
		return "", err
	}
	p.done = time.Now()
	return ns, nil
}

// forget makes the next call provision the user's namespace again.
func (s *Service) forget(user string) {
	p := s.provisionOf(user)
	p.mu.Lock()
	p.done = time.Time{}
	p.mu.Unlock()
}

// ownsNamespace reports whether ns is the namespace this server made for user.
func (s *Service) ownsNamespace(ns *corev1.Namespace, user string) bool {
	if ns == nil || ns.Name != s.cfg.Namespace(user) {
		return false
	}
	for k, v := range s.cfg.selectors() {
		if ns.Labels[k] != v {
			return false
		}
	}
	return ns.Labels[LabelOwner] == OwnerKey(user) && ns.Annotations[AnnotationOwner] == user
}

// namespaceOwner is the user a namespace belongs to, or "" when the server did not make it.
func (s *Service) namespaceOwner(ns *corev1.Namespace) string {
	user := ns.Annotations[AnnotationOwner]
	if user == "" || !backend.ValidUser(user) || !s.ownsNamespace(ns, user) {
		return ""
	}
	return user
}

func (s *Service) namespaceLabels(user string) map[string]string {
	m := s.cfg.selectors()
	m[LabelOwner] = OwnerKey(user)
	level := s.cfg.PodSecurity
	for _, mode := range []string{"enforce", "audit", "warn"} {
		m["pod-security.kubernetes.io/"+mode] = level
		m["pod-security.kubernetes.io/"+mode+"-version"] = "latest"
	}
	return m
}

// objectLabels are the labels of the objects inside a user's namespace.
func (s *Service) objectLabels(user string) map[string]string {
	m := s.cfg.selectors()
	m[LabelOwner] = OwnerKey(user)
	return m
}

func (s *Service) provisionLocked(ctx context.Context, id backend.Identity) error {
	user := id.User
	name := s.cfg.Namespace(user)
	what := "set up the namespace of " + user
	nsClient := s.cs.CoreV1().Namespaces()

	// The namespace: made when missing, never adopted when someone else's.
	created := false
	ns, err := nsClient.Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		ns, err = nsClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Labels:      s.namespaceLabels(user),
			Annotations: map[string]string{AnnotationOwner: user},
		}}, metav1.CreateOptions{FieldManager: fieldManager})
		created = err == nil
		if apierrors.IsAlreadyExists(err) {
			ns, err = nsClient.Get(ctx, name, metav1.GetOptions{})
		}
	}
	if err != nil {
		return apiErr(what, err)
	}
	if !s.ownsNamespace(ns, user) {
		err := errorf(ErrConflict, "%s: namespace %s exists and was not made by this server for %s; ask an administrator", what, name, shown(user))
		s.record(id, "kube provision", name, err)
		return err
	}
	if ns.Status.Phase == corev1.NamespaceTerminating {
		return errorf(ErrConflict, "%s: the namespace is being removed; try again in a minute", what)
	}
	if created {
		s.record(id, "kube namespace create", name, nil)
	}

	// Everything else is applied (server-side apply). An apply that meets a field the server
	// owns changed by someone else is refused first (a conflict: drift), then forced back;
	// an object that was removed is made again. Both are repairs, and audited.
	var repaired []string
	apply := func(kind string, do func(metav1.ApplyOptions) (metav1.Object, error)) error {
		obj, err := do(metav1.ApplyOptions{FieldManager: fieldManager})
		drift := apierrors.IsConflict(err)
		if drift {
			obj, err = do(metav1.ApplyOptions{FieldManager: fieldManager, Force: true})
		}
		if err != nil {
			return apiErr(what+": "+kind, err)
		}
		if s.noteUID(user, kind, string(obj.GetUID())) {
			drift = true
		}
		if drift && !created {
			repaired = append(repaired, kind)
		}
		return nil
	}
	labels := s.objectLabels(user)

	nsAC := corev1ac.Namespace(name).WithLabels(s.namespaceLabels(user)).WithAnnotations(map[string]string{AnnotationOwner: user})
	if err := apply("Namespace", func(o metav1.ApplyOptions) (metav1.Object, error) {
		return nsClient.Apply(ctx, nsAC, o)
	}); err != nil {
		return err
	}
	if err := apply("ServiceAccount", func(o metav1.ApplyOptions) (metav1.Object, error) {
		return s.cs.CoreV1().ServiceAccounts(name).Apply(ctx, corev1ac.ServiceAccount(userObject, name).
			WithLabels(labels).WithAutomountServiceAccountToken(false), o)
	}); err != nil {
		return err
	}
	if err := apply("Role", func(o metav1.ApplyOptions) (metav1.Object, error) {
		return s.cs.RbacV1().Roles(name).Apply(ctx, rbacv1ac.Role(userObject, name).WithLabels(labels).
			WithRules(userRules()...), o)
	}); err != nil {
		return err
	}
	rbAC := rbacv1ac.RoleBinding(userObject, name).WithLabels(labels).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("Role").WithName(userObject)).
		WithSubjects(rbacv1ac.Subject().WithKind(rbacv1.ServiceAccountKind).WithName(userObject).WithNamespace(name))
	if err := apply("RoleBinding", func(o metav1.ApplyOptions) (metav1.Object, error) {
		rbs := s.cs.RbacV1().RoleBindings(name)
		rb, err := rbs.Apply(ctx, rbAC, o)
		if apierrors.IsInvalid(err) {
			// The role a binding refers to cannot change: one bound elsewhere is made again.
			if err = rbs.Delete(ctx, userObject, metav1.DeleteOptions{}); err == nil || apierrors.IsNotFound(err) {
				rb, err = rbs.Apply(ctx, rbAC, o)
			}
		}
		return rb, err
	}); err != nil {
		return err
	}

	q := s.cfg.quota(id.Role)
	hard := corev1.ResourceList{
		corev1.ResourceRequestsCPU:                           cpuQuantity(q.CPUs),
		corev1.ResourceLimitsCPU:                             cpuQuantity(q.CPUs),
		corev1.ResourceRequestsMemory:                        memQuantity(q.Memory),
		corev1.ResourceLimitsMemory:                          memQuantity(q.Memory),
		corev1.ResourcePods:                                  *resource.NewQuantity(int64(q.Pods), resource.DecimalSI),
		corev1.ResourceName("requests." + s.cfg.GPUResource): *resource.NewQuantity(int64(q.GPUs), resource.DecimalSI),
	}
	if err := apply("ResourceQuota", func(o metav1.ApplyOptions) (metav1.Object, error) {
		return s.cs.CoreV1().ResourceQuotas(name).Apply(ctx, corev1ac.ResourceQuota(policyObject, name).WithLabels(labels).
			WithSpec(corev1ac.ResourceQuotaSpec().WithHard(hard)), o)
	}); err != nil {
		return err
	}

	defaults := corev1.ResourceList{
		corev1.ResourceCPU:    cpuQuantity(s.cfg.DefaultCPUs),
		corev1.ResourceMemory: memQuantity(s.cfg.DefaultMemory),
	}
	if err := apply("LimitRange", func(o metav1.ApplyOptions) (metav1.Object, error) {
		return s.cs.CoreV1().LimitRanges(name).Apply(ctx, corev1ac.LimitRange(policyObject, name).WithLabels(labels).
			WithSpec(corev1ac.LimitRangeSpec().WithLimits(corev1ac.LimitRangeItem().
				WithType(corev1.LimitTypeContainer).WithDefault(defaults).WithDefaultRequest(defaults))), o)
	}); err != nil {
		return err
	}

	// Traffic from pods of other users' namespaces is refused; from the user's own pods and
	// from namespaces this server does not manage (ingress controllers, monitoring) it is not.
	npAC := netv1ac.NetworkPolicy(isolateObject, name).WithLabels(labels).
		WithSpec(netv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector()).
			WithPolicyTypes("Ingress").
			WithIngress(
				netv1ac.NetworkPolicyIngressRule().WithFrom(netv1ac.NetworkPolicyPeer().WithPodSelector(metav1ac.LabelSelector())),
				netv1ac.NetworkPolicyIngressRule().WithFrom(netv1ac.NetworkPolicyPeer().WithNamespaceSelector(
					metav1ac.LabelSelector().WithMatchExpressions(metav1ac.LabelSelectorRequirement().
						WithKey(LabelManaged).WithOperator(metav1.LabelSelectorOpDoesNotExist)))),
			))
	if err := apply("NetworkPolicy", func(o metav1.ApplyOptions) (metav1.Object, error) {
		return s.cs.NetworkingV1().NetworkPolicies(name).Apply(ctx, npAC, o)
	}); err != nil {
		return err
	}

	if s.cfg.HomeStorageClass != "" {
		// The home is made once and never changed or removed by the server.
		_, err := s.cs.CoreV1().PersistentVolumeClaims(name).Create(ctx, &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Name: homeClaim, Labels: labels},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
				StorageClassName: &s.cfg.HomeStorageClass,
				Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
					corev1.ResourceStorage: memQuantity(s.cfg.HomeSize),
				}},
			},
		}, metav1.CreateOptions{FieldManager: fieldManager})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return apiErr(what+": home", err)
		}
	}
	if len(repaired) > 0 {
		s.record(id, "kube namespace repair", name+": "+strings.Join(repaired, ","), nil)
	}
	return nil
}

// noteUID remembers the UID of the user's object of kind, and reports whether it differs
// from the one seen before (the object was removed and is made again).
func (s *Service) noteUID(user, kind, uid string) bool {
	s.provMu.Lock()
	defer s.provMu.Unlock()
	if s.uids == nil {
		s.uids = map[string]string{}
	}
	key := user + "\x00" + kind
	prev, ok := s.uids[key]
	s.uids[key] = uid
	return ok && prev != uid
}

// userRules are what a user may do in their own namespace: pods (make, see, remove, their
// logs, exec and port-forward), events, and read their quota. Nothing else: no secrets, no
// roles, no other namespaces.
func userRules() []*rbacv1ac.PolicyRuleApplyConfiguration {
	return []*rbacv1ac.PolicyRuleApplyConfiguration{
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("pods").WithVerbs("get", "list", "watch", "create", "delete"),
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("pods/log").WithVerbs("get"),
		// WebSocket streams (kubectl's default) are a GET, SPDY ones a POST.
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("pods/exec", "pods/portforward").WithVerbs("get", "create"),
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("events").WithVerbs("get", "list", "watch"),
		rbacv1ac.PolicyRule().WithAPIGroups("").WithResources("resourcequotas", "limitranges").WithVerbs("get", "list"),
	}
}
