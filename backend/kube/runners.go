package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	rbacv1ac "k8s.io/client-go/applyconfigurations/rbac/v1"

	"whalemountain/backend"
)

// Runners in users' namespaces: a user's GitLab runner with the kubernetes executor is a
// pod in their own namespace (backend/runner decides when and with which config.toml, and
// authorises the caller; this file only makes, finds and removes what it needs). Each
// runner has, in that namespace only: a Secret holding its config.toml, a ServiceAccount
// of its own bound by a Role to what the executor needs there (runnerRules), and the pod,
// hardened like every pod the server makes and counted in the namespace's quota. Every
// object carries the server's labels and the runner's name (LabelRunner); a lookup reads
// only what the server labelled, in the namespace the server made for the owner.

// LabelRunner is the name of the user's runner an object belongs to.
const LabelRunner = "whalemountain.io/runner"

// AnnotationRunnerProject is the GitLab project a runner pod serves.
const AnnotationRunnerProject = "whalemountain.io/runner-project"

// runnerObjectPrefix starts the name of every object of a runner in its namespace.
const runnerObjectPrefix = "whalemountain-runner-"

// runnerConfigKey is config.toml's key in a runner's Secret, mounted read-only at
// runnerSecretDir; the pod copies it into runnerConfigDir (gitlab-runner's own default, a
// memory-backed emptyDir), where gitlab-runner may write beside it (its system ID).
const (
	runnerConfigKey = "config.toml"
	runnerSecretDir = "/etc/gitlab-runner-secret"
	runnerConfigDir = "/etc/gitlab-runner"
)

// RunnerObject is the name of owner's runner name's objects (Secret, ServiceAccount, Role,
// RoleBinding, pod) in the owner's namespace: config.toml names the ServiceAccount.
func RunnerObject(name string) string { return runnerObjectPrefix + name }

// RunnerSpec is a runner to run in its owner's namespace.
type RunnerSpec struct {
	Owner   backend.Identity // whose namespace (made on first use, with the role's quota)
	Name    string           // the runner's name among the owner's runners (a validated slug)
	Project string           // the GitLab project it serves, for display
	Image   string           // the pinned gitlab-runner image
	// ConfigTOML is the config.toml the server wrote (the token is in it): kept in a Secret,
	// mounted read-only into the pod.
	ConfigTOML []byte
	CPUs       float64
	Memory     int64
}

// RunnerPod is a runner as the cluster has it.
type RunnerPod struct {
	Owner     string
	Name      string
	Project   string
	Namespace string
	State     string // running, restarting, created, exited (stopped: no pod)
	Status    string // kubectl's words, "Running", "CrashLoopBackOff", "stopped"
	Created   time.Time
}

// RunnerNamespace is the namespace owner's runners run in and their jobs' pods are made in.
func (s *Service) RunnerNamespace(owner string) string { return s.cfg.Namespace(owner) }

// runnerRules are what a runner's ServiceAccount may do in its own namespace: what
// gitlab-runner's kubernetes executor asks of the API (its documentation's table of
// permissions): job pods and their attach, exec and logs, the secrets and config maps it
// makes for a job (registry credentials, scripts), services for a job's service
// containers, events it prints, and reading its own ServiceAccount. Nothing else, and
// nowhere else.
func runnerRules() []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "watch", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/attach", "pods/exec"}, Verbs: []string{"get", "create", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/log"}, Verbs: []string{"get", "list"}},
		{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps"}, Verbs: []string{"get", "create", "update", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"services"}, Verbs: []string{"get", "create"}},
		{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"list", "watch"}},
		{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, Verbs: []string{"get"}},
	}
}

// runnerRuleConfigs are runnerRules to apply.
func runnerRuleConfigs() []*rbacv1ac.PolicyRuleApplyConfiguration {
	var out []*rbacv1ac.PolicyRuleApplyConfiguration
	for _, r := range runnerRules() {
		out = append(out, rbacv1ac.PolicyRule().WithAPIGroups(r.APIGroups...).WithResources(r.Resources...).WithVerbs(r.Verbs...))
	}
	return out
}

// runnerLabels are the labels of owner's runner name's objects: the server's, and the
// runner's name.
func (s *Service) runnerLabels(owner, name string) map[string]string {
	m := s.objectLabels(owner)
	m[LabelRunner] = name
	return m
}

// CreateRunner makes (again) the objects of spec's runner in its owner's namespace and
// starts its pod; a runner of the same name is replaced. Audited as "runner pod create".
func (s *Service) CreateRunner(ctx context.Context, spec RunnerSpec) (RunnerPod, error) {
	r, err := s.createRunner(ctx, spec)
	s.record(spec.Owner, "runner pod create", spec.Owner.User+"/"+shown(spec.Name), err)
	return r, err
}

func (s *Service) createRunner(ctx context.Context, spec RunnerSpec) (RunnerPod, error) {
	id := spec.Owner
	if err := checkIdentity(id); err != nil {
		return RunnerPod{}, err
	}
	if err := ValidateName(spec.Name); err != nil || len(RunnerObject(spec.Name)) > 63 {
		return RunnerPod{}, errorf(ErrInvalid, "invalid runner name %s", shown(spec.Name))
	}
	image, err := ParseImage(spec.Image)
	if err != nil {
		return RunnerPod{}, err
	}
	if len(spec.ConfigTOML) == 0 || spec.CPUs <= 0 || spec.Memory < minMemory {
		return RunnerPod{}, fmt.Errorf("runner %s of %s: config.toml and limits are required", spec.Name, id.User)
	}
	ns, err := s.ensure(ctx, id)
	if err != nil {
		return RunnerPod{}, err
	}
	obj := RunnerObject(spec.Name)
	labels := s.runnerLabels(id.User, spec.Name)
	what := "start runner " + spec.Name
	// A pod of the runner already there is replaced (a new token, a restart). The quota's
	// admission decides whether the new one fits.
	if err := s.deleteRunnerPod(ctx, ns, spec.Name); err != nil {
		return RunnerPod{}, err
	}
	// Everything but the pod is applied (server-side apply): made when missing, made right
	// when someone changed it.
	o := metav1.ApplyOptions{FieldManager: fieldManager, Force: true}
	if _, err := s.cs.CoreV1().Secrets(ns).Apply(ctx, corev1ac.Secret(obj, ns).WithLabels(labels).
		WithType(corev1.SecretTypeOpaque).WithData(map[string][]byte{runnerConfigKey: spec.ConfigTOML}), o); err != nil {
		return RunnerPod{}, apiErr(what+": Secret", err)
	}
	if _, err := s.cs.CoreV1().ServiceAccounts(ns).Apply(ctx, corev1ac.ServiceAccount(obj, ns).WithLabels(labels).
		WithAutomountServiceAccountToken(true), o); err != nil {
		return RunnerPod{}, apiErr(what+": ServiceAccount", err)
	}
	if _, err := s.cs.RbacV1().Roles(ns).Apply(ctx, rbacv1ac.Role(obj, ns).WithLabels(labels).WithRules(runnerRuleConfigs()...), o); err != nil {
		return RunnerPod{}, apiErr(what+": Role", err)
	}
	if _, err := s.cs.RbacV1().RoleBindings(ns).Apply(ctx, rbacv1ac.RoleBinding(obj, ns).WithLabels(labels).
		WithRoleRef(rbacv1ac.RoleRef().WithAPIGroup(rbacv1.GroupName).WithKind("Role").WithName(obj)).
		WithSubjects(rbacv1ac.Subject().WithKind(rbacv1.ServiceAccountKind).WithName(obj).WithNamespace(ns)), o); err != nil {
		return RunnerPod{}, apiErr(what+": RoleBinding", err)
	}
	pod := s.runnerPodFor(id.User, ns, spec, image)
	created, err := s.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{FieldManager: fieldManager})
	for try := 0; try < 300 && (apierrors.IsAlreadyExists(err) ||
		apierrors.IsForbidden(err) && strings.Contains(err.Error(), "status unknown for quota")); try++ {
		// The replaced pod is still terminating, or a new namespace's quota is not counted yet.
		if !sleep(ctx, 100*time.Millisecond) {
			break
		}
		created, err = s.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{FieldManager: fieldManager})
	}
	if err != nil {
		if apierrors.IsForbidden(err) && strings.Contains(err.Error(), "exceeded quota") {
			return RunnerPod{}, errorf(ErrQuota, "quota: the runner's pod does not fit in your namespace's quota (%s CPUs, %s): remove a pod first",
				strconv.FormatFloat(spec.CPUs, 'g', -1, 64), formatBytes(spec.Memory))
		}
		return RunnerPod{}, apiErr(what, err)
	}
	return runnerView(created, id.User), nil
}

// runnerPodFor is the hardened pod of a runner: gitlab-runner with its config.toml from the
// Secret (read-only, copied into memory where gitlab-runner may write beside it), its own ServiceAccount's token (the executor talks to the API with
// it), no privileges, every capability dropped, the runtime's seccomp profile, not root
// where the namespace's policy is restricted, restarted by the kubelet when it ends.
func (s *Service) runnerPodFor(user, ns string, spec RunnerSpec, image string) *corev1.Pod {
	obj := RunnerObject(spec.Name)
	limits := corev1.ResourceList{
		corev1.ResourceCPU:    cpuQuantity(spec.CPUs),
		corev1.ResourceMemory: memQuantity(spec.Memory),
	}
	no, yes := false, true
	mode := int32(0o440) // the pod's group (fsGroup) reads it where the pod is not root
	config := runnerConfigDir + "/" + runnerConfigKey
	c := corev1.Container{
		Name:  containerName,
		Image: image,
		Command: []string{"sh", "-c", `cp "$1" "$2" && exec gitlab-runner run --config "$2"`, "gitlab-runner",
			runnerSecretDir + "/" + runnerConfigKey, config},
		ImagePullPolicy: corev1.PullIfNotPresent,
		Resources:       corev1.ResourceRequirements{Limits: limits, Requests: limits.DeepCopy()},
		VolumeMounts: []corev1.VolumeMount{{Name: "secret", MountPath: runnerSecretDir, ReadOnly: true},
			{Name: "config", MountPath: runnerConfigDir}},
		SecurityContext: &corev1.SecurityContext{
			Privileged:               &no,
			AllowPrivilegeEscalation: &no,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	podSC := &corev1.PodSecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	if s.cfg.PodSecurity == PodSecurityRestricted {
		uid := s.cfg.RunAsUser
		podSC.RunAsNonRoot, podSC.RunAsUser, podSC.RunAsGroup, podSC.FSGroup = &yes, &uid, &uid, &uid
	}
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: obj, Namespace: ns, Labels: s.runnerLabels(user, spec.Name),
			Annotations: map[string]string{AnnotationRunnerProject: spec.Project}},
		Spec: corev1.PodSpec{
			Containers: []corev1.Container{c},
			Volumes: []corev1.Volume{
				{Name: "secret", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: obj, DefaultMode: &mode}}},
				{Name: "config", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
			},
			RestartPolicy:                corev1.RestartPolicyAlways,
			ServiceAccountName:           obj,
			AutomountServiceAccountToken: &yes,
			EnableServiceLinks:           &no,
			SecurityContext:              podSC,
		},
	}
}

// runnerView is a runner's pod as users see it.
func runnerView(pod *corev1.Pod, owner string) RunnerPod {
	v := podView(pod, owner, "", nil)
	r := RunnerPod{Owner: owner, Name: pod.Labels[LabelRunner], Project: pod.Annotations[AnnotationRunnerProject],
		Namespace: pod.Namespace, Status: v.Status, Created: v.Created}
	switch {
	case v.Status == "Terminating":
		r.State = "exited"
	case v.Running() && v.Ready:
		r.State = "running"
	case v.Restarts > 0 || v.Status == "CrashLoopBackOff":
		r.State = "restarting"
	case v.Phase == string(corev1.PodPending) || v.Running():
		r.State = "created"
	default:
		r.State = "exited"
	}
	return r
}

// runnerNamespaces are the namespaces, made by the server, whose runners a call for owner
// ("" for everyone) reads, each with its owner.
func (s *Service) runnerNamespaces(ctx context.Context, owner string) (map[string]string, error) {
	out := map[string]string{}
	if owner != "" {
		ns, err := s.cs.CoreV1().Namespaces().Get(ctx, s.cfg.Namespace(owner), metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return out, nil
		}
		if err != nil {
			return nil, apiErr("find the namespace of "+owner, err)
		}
		if s.ownsNamespace(ns, owner) {
			out[ns.Name] = owner
		}
		return out, nil
	}
	sel := s.cfg.selectors()
	list, err := s.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: labelSelector(sel)})
	if err != nil {
		return nil, apiErr("list namespaces", err)
	}
	for i := range list.Items {
		if u := s.namespaceOwner(&list.Items[i]); u != "" {
			out[list.Items[i].Name] = u
		}
	}
	return out, nil
}

// Runners lists the runners of owner ("" for everyone's) that have their Secret: a runner
// whose pod is gone (stopped) is listed as exited.
func (s *Service) Runners(ctx context.Context, owner string) ([]RunnerPod, error) {
	nss, err := s.runnerNamespaces(ctx, owner)
	if err != nil {
		return nil, err
	}
	var out []RunnerPod
	for ns, user := range nss {
		sel := labelSelector(s.objectLabels(user))
		secrets, err := s.cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, apiErr("list the runners of "+user, err)
		}
		pods, err := s.cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return nil, apiErr("list the runners of "+user, err)
		}
		for _, sec := range secrets.Items {
			name := sec.Labels[LabelRunner]
			if name == "" || sec.Name != RunnerObject(name) {
				continue
			}
			r := RunnerPod{Owner: user, Name: name, Namespace: ns, State: "exited", Status: "stopped", Created: sec.CreationTimestamp.UTC()}
			for i := range pods.Items {
				p := &pods.Items[i]
				if p.Name == sec.Name && p.Labels[LabelRunner] == name {
					r = runnerView(p, user)
				}
			}
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b RunnerPod) int {
		if c := strings.Compare(a.Owner, b.Owner); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	return out, nil
}

// findRunner is the namespace of owner's runner name, or ErrNotFound.
func (s *Service) findRunner(ctx context.Context, owner, name string) (string, error) {
	rs, err := s.Runners(ctx, owner)
	if err != nil {
		return "", err
	}
	for _, r := range rs {
		if r.Name == name {
			return r.Namespace, nil
		}
	}
	return "", errorf(ErrNotFound, "no such runner: %s", shown(name))
}

// runnerStopGrace is how long a runner's pod has to end when it is stopped or replaced
// (config.toml's shutdown_timeout is shorter).
const runnerStopGrace = 15 * time.Second

// deleteRunnerPod removes the pod of runner name in ns (none there is no error).
func (s *Service) deleteRunnerPod(ctx context.Context, ns, name string) error {
	grace := int64(runnerStopGrace / time.Second)
	err := s.cs.CoreV1().Pods(ns).Delete(ctx, RunnerObject(name), metav1.DeleteOptions{GracePeriodSeconds: &grace})
	if err != nil && !apierrors.IsNotFound(err) {
		return apiErr("stop runner "+name, err)
	}
	return nil
}

// StopRunner removes the pod of owner's runner name; its Secret, ServiceAccount and Role
// stay, and RestartRunner starts it again.
func (s *Service) StopRunner(ctx context.Context, owner, name string) error {
	ns, err := s.findRunner(ctx, owner, name)
	if err != nil {
		return err
	}
	return s.deleteRunnerPod(ctx, ns, name)
}

// RemoveRunner removes everything of owner's runner name: pod, Secret, RoleBinding, Role
// and ServiceAccount (ErrNotFound when there is none).
func (s *Service) RemoveRunner(ctx context.Context, owner, name string) error {
	ns, err := s.findRunner(ctx, owner, name)
	if err != nil {
		return err
	}
	obj := RunnerObject(name)
	var errs []error
	for _, del := range []func() error{
		func() error { return s.cs.CoreV1().Pods(ns).Delete(ctx, obj, metav1.DeleteOptions{}) },
		func() error { return s.cs.RbacV1().RoleBindings(ns).Delete(ctx, obj, metav1.DeleteOptions{}) },
		func() error { return s.cs.RbacV1().Roles(ns).Delete(ctx, obj, metav1.DeleteOptions{}) },
		func() error { return s.cs.CoreV1().ServiceAccounts(ns).Delete(ctx, obj, metav1.DeleteOptions{}) },
		func() error { return s.cs.CoreV1().Secrets(ns).Delete(ctx, obj, metav1.DeleteOptions{}) },
	} {
		if err := del(); err != nil && !apierrors.IsNotFound(err) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return apiErr("remove runner "+name+" of "+owner, err)
	}
	return nil
}

// RunnerLogs streams the output of owner's runner name's pod.
func (s *Service) RunnerLogs(ctx context.Context, owner, name string, opts LogOptions) (io.ReadCloser, error) {
	ns, err := s.findRunner(ctx, owner, name)
	if err != nil {
		return nil, err
	}
	lo := &corev1.PodLogOptions{Container: containerName, Follow: opts.Follow, Timestamps: opts.Timestamps}
	if opts.Tail > 0 {
		n := int64(opts.Tail)
		lo.TailLines = &n
	}
	rc, err := s.cs.CoreV1().Pods(ns).GetLogs(RunnerObject(name), lo).Stream(ctx)
	if apierrors.IsNotFound(err) {
		return nil, errorf(ErrConflict, "runner %s is stopped: runner restart starts it", shown(name))
	}
	if err != nil {
		return nil, apiErr("logs of runner "+name, err)
	}
	return rc, nil
}
