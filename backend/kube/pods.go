package kube

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"whalemountain/backend"
)

// RunSpec is what a user asks for when creating a pod.
type RunSpec struct {
	Name   string   // required: 1-32 lower-case letters, digits and '-'
	Image  string   // pulled by the cluster
	Cmd    []string // empty: the image's own
	Env    []string // KEY=value
	CPUs   float64  // 0: Config.DefaultCPUs
	Memory int64    // bytes; 0: Config.DefaultMemory
	GPUs   int      // 0: none
}

// containerName is the name of the one container of every pod the server makes.
const containerName = "main"

// Run creates a pod for the identity in their namespace (made on first use). It is audited
// as "pod run".
func (s *Service) Run(ctx context.Context, id backend.Identity, spec RunSpec) (Pod, error) {
	p, err := s.run(ctx, id, spec)
	target := id.User + "/" + shown(spec.Name)
	if spec.Name == "" {
		target = id.User + "/"
	}
	s.record(id, "pod run", target, err)
	return p, err
}

func (s *Service) run(ctx context.Context, id backend.Identity, spec RunSpec) (Pod, error) {
	if err := checkIdentity(id); err != nil {
		return Pod{}, err
	}
	// Everything the user typed is checked before anything is made.
	if err := ValidateName(spec.Name); err != nil {
		return Pod{}, err
	}
	image, err := ParseImage(spec.Image)
	if err != nil {
		return Pod{}, err
	}
	if err := ValidateEnv(spec.Env); err != nil {
		return Pod{}, err
	}
	if err := validateCmd(spec.Cmd); err != nil {
		return Pod{}, err
	}
	cpus, mem := spec.CPUs, spec.Memory
	if cpus == 0 {
		cpus = s.cfg.DefaultCPUs
	}
	if mem == 0 {
		mem = s.cfg.DefaultMemory
	}
	q := s.cfg.quota(id.Role)
	switch {
	case cpus < 0.001 || math.IsNaN(cpus) || math.IsInf(cpus, 0):
		return Pod{}, errorf(ErrInvalid, "invalid CPU limit %g: use a positive number such as 0.5 or 2", spec.CPUs)
	case mem < minMemory:
		return Pod{}, errorf(ErrInvalid, "invalid memory limit %d bytes: at least %s", spec.Memory, formatBytes(minMemory))
	case spec.GPUs < 0:
		return Pod{}, errorf(ErrInvalid, "invalid GPU count %d", spec.GPUs)
	case cpus > q.CPUs:
		return Pod{}, errorf(ErrQuota, "quota: at most %g CPUs for all pods of one of the %s (asked %g)", q.CPUs, roleWord(id.Role), cpus)
	case mem > q.Memory:
		return Pod{}, errorf(ErrQuota, "quota: at most %s of memory for all pods of one of the %s (asked %s)",
			formatBytes(q.Memory), roleWord(id.Role), formatBytes(mem))
	case spec.GPUs > q.GPUs && q.GPUs == 0:
		return Pod{}, errorf(ErrQuota, "quota: %s may not use GPUs in pods", roleWord(id.Role))
	case spec.GPUs > q.GPUs:
		return Pod{}, errorf(ErrQuota, "quota: at most %d GPUs for all pods of one of the %s (asked %d)", q.GPUs, roleWord(id.Role), spec.GPUs)
	}

	ns, err := s.ensure(ctx, id)
	if err != nil {
		return Pod{}, err
	}
	if err := s.checkQuota(ctx, id, ns, cpus, mem, spec.GPUs); err != nil {
		return Pod{}, err
	}
	data, err := s.dataFor(ctx, id, ns)
	if err != nil {
		return Pod{}, err
	}
	pod := s.podFor(id.User, ns, spec, image, cpus, mem)
	vols, mounts := dataVolumes(data)
	pod.Spec.Volumes = append(pod.Spec.Volumes, vols...)
	pod.Spec.Containers[0].VolumeMounts = append(pod.Spec.Containers[0].VolumeMounts, mounts...)
	what := fmt.Sprintf("run pod %s", shown(spec.Name))
	created, err := s.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{FieldManager: fieldManager})
	// A new namespace's quota is counted by the controller a moment after it is made; the
	// admission refuses pods until then.
	for try := 0; try < 50 && apierrors.IsForbidden(err) && strings.Contains(err.Error(), "status unknown for quota"); try++ {
		if !sleep(ctx, 100*time.Millisecond) {
			break
		}
		created, err = s.cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{FieldManager: fieldManager})
	}
	switch {
	case apierrors.IsAlreadyExists(err):
		return Pod{}, errorf(ErrConflict, "%s: you already have a pod named %s", what, shown(spec.Name))
	case apierrors.IsNotFound(err):
		// The namespace went away under us: the next call makes it again.
		s.forget(id.User)
		return Pod{}, apiErr(what, err)
	case err != nil:
		return Pod{}, apiErr(what, err)
	}
	return podView(created, id.User, s.cfg.GPUResource, nil), nil
}

// checkQuota compares what a new pod asks for with what the user's pods use now, so a pod
// that does not fit is refused with a line that says which share is full. The quota
// admission of the API server holds the line in any case.
func (s *Service) checkQuota(ctx context.Context, id backend.Identity, ns string, cpus float64, mem int64, gpus int) error {
	rq, err := s.cs.CoreV1().ResourceQuotas(ns).Get(ctx, policyObject, metav1.GetOptions{})
	if err != nil {
		return apiErr("read your quota", err)
	}
	used, hard := rq.Status.Used, rq.Status.Hard
	if hard == nil {
		return nil // not computed yet: the admission decides
	}
	free := func(name corev1.ResourceName) (resource.Quantity, bool) {
		h, ok := hard[name]
		if !ok {
			return resource.Quantity{}, false
		}
		f := h.DeepCopy()
		if u, ok := used[name]; ok {
			f.Sub(u)
		}
		return f, true
	}
	who := "your pods"
	if f, ok := free(corev1.ResourcePods); ok && f.Value() < 1 {
		return errorf(ErrQuota, "quota: %s already number %s of %s; remove one first",
			who, qty(used, corev1.ResourcePods), qty(hard, corev1.ResourcePods))
	}
	if f, ok := free(corev1.ResourceLimitsCPU); ok && f.MilliValue() < int64(math.Round(cpus*1000)) {
		return errorf(ErrQuota, "quota: %s use %s of %s CPUs; this pod asks for %g more",
			who, qty(used, corev1.ResourceLimitsCPU), qty(hard, corev1.ResourceLimitsCPU), cpus)
	}
	if f, ok := free(corev1.ResourceLimitsMemory); ok && f.Value() < mem {
		u, h := used[corev1.ResourceLimitsMemory], hard[corev1.ResourceLimitsMemory]
		return errorf(ErrQuota, "quota: %s use %s of %s of memory; this pod asks for %s more",
			who, formatBytes(u.Value()), formatBytes(h.Value()), formatBytes(mem))
	}
	gpuName := corev1.ResourceName("requests." + s.cfg.GPUResource)
	if f, ok := free(gpuName); ok && gpus > 0 && f.Value() < int64(gpus) {
		return errorf(ErrQuota, "quota: %s use %s of %s GPUs; this pod asks for %d more",
			who, qty(used, gpuName), qty(hard, gpuName), gpus)
	}
	return nil
}

func qty(l corev1.ResourceList, name corev1.ResourceName) string {
	q, ok := l[name]
	if !ok {
		return "0"
	}
	return q.String()
}

// podFor is the hardened pod the server makes for a run.
func (s *Service) podFor(user, ns string, spec RunSpec, image string, cpus float64, mem int64) *corev1.Pod {
	labels := s.objectLabels(user)
	labels[LabelName] = spec.Name
	limits := corev1.ResourceList{
		corev1.ResourceCPU:    cpuQuantity(cpus),
		corev1.ResourceMemory: memQuantity(mem),
	}
	if spec.GPUs > 0 {
		limits[corev1.ResourceName(s.cfg.GPUResource)] = *resource.NewQuantity(int64(spec.GPUs), resource.DecimalSI)
	}
	var env []corev1.EnvVar
	for _, kv := range spec.Env {
		k, v, _ := cutEnv(kv)
		env = append(env, corev1.EnvVar{Name: k, Value: v})
	}
	home := expand(s.cfg.HomeTarget, user)
	env = append(env, corev1.EnvVar{Name: "HOME", Value: home})
	homeVolume := corev1.Volume{Name: "home", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	if s.cfg.HomeStorageClass != "" {
		homeVolume.VolumeSource = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: homeClaim}}
	}
	no, yes := false, true
	c := corev1.Container{
		Name:            containerName,
		Image:           image,
		Args:            nil,
		Env:             env,
		WorkingDir:      home,
		ImagePullPolicy: corev1.PullIfNotPresent,
		Resources:       corev1.ResourceRequirements{Limits: limits, Requests: limits.DeepCopy()},
		VolumeMounts:    []corev1.VolumeMount{{Name: "home", MountPath: home}},
		SecurityContext: &corev1.SecurityContext{
			Privileged:               &no,
			AllowPrivilegeEscalation: &no,
			Capabilities: &corev1.Capabilities{
				Drop: []corev1.Capability{"ALL"},
				Add:  capabilities(s.cfg.capabilities()),
			},
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
	}
	if len(spec.Cmd) > 0 {
		c.Command = slices.Clone(spec.Cmd)
	}
	podSC := &corev1.PodSecurityContext{
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
	if s.cfg.PodSecurity == PodSecurityRestricted {
		uid := s.cfg.RunAsUser
		podSC.RunAsNonRoot = &yes
		podSC.RunAsUser = &uid
		podSC.RunAsGroup = &uid
		podSC.FSGroup = &uid
	}
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: spec.Name, Namespace: ns, Labels: labels},
		Spec: corev1.PodSpec{
			Containers:                   []corev1.Container{c},
			Volumes:                      []corev1.Volume{homeVolume},
			RestartPolicy:                corev1.RestartPolicyNever,
			ServiceAccountName:           userObject,
			AutomountServiceAccountToken: &no,
			EnableServiceLinks:           &no,
			HostNetwork:                  false,
			HostPID:                      false,
			HostIPC:                      false,
			SecurityContext:              podSC,
		},
	}
	if spec.GPUs > 0 {
		if len(s.cfg.GPUNodeSelector) > 0 {
			pod.Spec.NodeSelector = s.Config().GPUNodeSelector
		}
		for _, t := range s.cfg.GPUTolerations {
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, corev1.Toleration{
				Key: t.Key, Operator: corev1.TolerationOperator(t.Operator), Value: t.Value, Effect: corev1.TaintEffect(t.Effect),
			})
		}
		if s.cfg.GPURuntimeClass != "" {
			rc := s.cfg.GPURuntimeClass
			pod.Spec.RuntimeClassName = &rc
		}
	}
	return pod
}

func capabilities(names []string) []corev1.Capability {
	out := make([]corev1.Capability, 0, len(names))
	for _, n := range names {
		out = append(out, corev1.Capability(n))
	}
	return out
}

func cutEnv(kv string) (string, string, bool) {
	for i := 0; i < len(kv); i++ {
		if kv[i] == '=' {
			return kv[:i], kv[i+1:], true
		}
	}
	return kv, "", false
}

// found is a resolved reference: the pod and whose namespace it is in.
type found struct {
	target
	ns  string
	pod *corev1.Pod
}

// find resolves what a user typed to a pod they may act on, asking the API server. The
// namespace must be the one this server made for the owner, by its owner label; a miss and
// a pod of someone else read the same.
func (s *Service) find(ctx context.Context, id backend.Identity, ref string) (found, error) {
	if err := checkIdentity(id); err != nil {
		return found{}, err
	}
	t, err := parseRef(id, ref)
	if err != nil {
		return found{}, err
	}
	nsName := s.cfg.Namespace(t.owner)
	ns, err := s.cs.CoreV1().Namespaces().Get(ctx, nsName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return found{}, notFound(ref)
	}
	if err != nil {
		return found{}, apiErr("look up pod "+shown(ref), err)
	}
	if !s.ownsNamespace(ns, t.owner) {
		return found{}, notFound(ref)
	}
	pod, err := s.cs.CoreV1().Pods(nsName).Get(ctx, t.name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return found{}, notFound(ref)
	}
	if err != nil {
		return found{}, apiErr("look up pod "+shown(ref), err)
	}
	return found{target: t, ns: nsName, pod: pod}, nil
}

// List asks the API server for the pods the identity may see. Dashboards should use
// Snapshot instead, which costs no API call.
func (s *Service) List(ctx context.Context, id backend.Identity, opts ListOptions) ([]Pod, error) {
	nss, err := s.namespacesFor(ctx, id, opts, "list pods")
	if err != nil {
		return nil, err
	}
	out := []Pod{}
	for i := range nss {
		owner := s.namespaceOwner(&nss[i])
		if owner == "" {
			continue
		}
		pods, err := s.cs.CoreV1().Pods(nss[i].Name).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, apiErr("list pods of "+owner, err)
		}
		events, err := s.warnings(ctx, nss[i].Name, "")
		if err != nil {
			return nil, err
		}
		for j := range pods.Items {
			p := &pods.Items[j]
			out = append(out, podView(p, owner, s.cfg.GPUResource, events[p.Name]))
		}
	}
	sortPods(out)
	return out, nil
}

// namespacesFor asks the API server for the namespaces the identity may read: every one the
// server made (by its selectors) for a TA with AllUsers, else the user's own, none when it
// does not exist yet. The caller still checks each one's owner (namespaceOwner).
func (s *Service) namespacesFor(ctx context.Context, id backend.Identity, opts ListOptions, what string) ([]corev1.Namespace, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	if id.IsTA() && opts.AllUsers {
		list, err := s.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: labelSelector(s.cfg.selectors())})
		if err != nil {
			return nil, apiErr("list namespaces", err)
		}
		return list.Items, nil
	}
	ns, err := s.cs.CoreV1().Namespaces().Get(ctx, s.cfg.Namespace(id.User), metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, apiErr(what, err)
	}
	return []corev1.Namespace{*ns}, nil
}

// warnings lists the warning events about pods in ns (about one pod when name is set), by
// pod name.
func (s *Service) warnings(ctx context.Context, ns, name string) (map[string][]*corev1.Event, error) {
	sel := "involvedObject.kind=Pod,type=" + corev1.EventTypeWarning
	if name != "" {
		sel += ",involvedObject.name=" + name
	}
	list, err := s.cs.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		return nil, apiErr("read events", err)
	}
	out := map[string][]*corev1.Event{}
	for i := range list.Items {
		e := &list.Items[i]
		out[e.InvolvedObject.Name] = append(out[e.InvolvedObject.Name], e)
	}
	return out, nil
}

// Details is what Inspect tells beyond Pod: the pod's spec in the words users need.
type Details struct {
	Pod
	Cmd        []string `json:"cmd,omitempty"`
	EnvNames   []string `json:"env_names,omitempty"` // names only: values may be secrets
	Home       string   `json:"home,omitempty"`      // where the home is mounted
	HomeClaim  string   `json:"home_claim,omitempty"`
	Data       []string `json:"data,omitempty"` // where shared data is mounted: "/datasets/x (read-only)", "/groups/g"
	IP         string   `json:"ip,omitempty"`
	Ports      []int32  `json:"ports,omitempty"` // container ports the pod declares
	QoS        string   `json:"qos,omitempty"`
	Conditions []string `json:"conditions,omitempty"` // "PodScheduled=False: ..." for those not True
	Events     []Event  `json:"events,omitempty"`     // the newest warnings about it
}

// Inspect asks the API server about one pod the identity may see, with the reason it is
// not running when it is not.
func (s *Service) Inspect(ctx context.Context, id backend.Identity, ref string) (Details, error) {
	f, err := s.find(ctx, id, ref)
	if err != nil {
		return Details{}, err
	}
	events, err := s.warnings(ctx, f.ns, f.pod.Name)
	if err != nil {
		return Details{}, err
	}
	d := Details{Pod: podView(f.pod, f.owner, s.cfg.GPUResource, events[f.pod.Name]), Events: eventsOf(f.pod, events[f.pod.Name])}
	pod := f.pod
	if len(pod.Spec.Containers) > 0 {
		c := pod.Spec.Containers[0]
		d.Cmd = append(slices.Clone(c.Command), c.Args...)
		for _, e := range c.Env {
			d.EnvNames = append(d.EnvNames, e.Name)
		}
		for _, m := range c.VolumeMounts {
			if m.Name == "home" {
				d.Home = m.MountPath
			}
		}
		for _, p := range c.Ports {
			d.Ports = append(d.Ports, p.ContainerPort)
		}
		d.Data = dataMountsOf(pod)
	}
	for _, v := range pod.Spec.Volumes {
		if v.Name == "home" && v.PersistentVolumeClaim != nil {
			d.HomeClaim = v.PersistentVolumeClaim.ClaimName
		}
	}
	d.IP = pod.Status.PodIP
	d.QoS = string(pod.Status.QOSClass)
	for _, c := range pod.Status.Conditions {
		if c.Status != corev1.ConditionTrue {
			line := string(c.Type) + "=" + string(c.Status)
			if m := oneLine(c.Message, maxReason); m != "" {
				line += ": " + m
			}
			d.Conditions = append(d.Conditions, line)
		}
	}
	return d, nil
}

// Remove deletes a pod the identity may act on: a student's own, any for a TA. It is
// audited as "pod rm". The pod is Terminating when Remove returns.
func (s *Service) Remove(ctx context.Context, id backend.Identity, ref string) error {
	f, err := s.find(ctx, id, ref)
	if err == nil {
		uid := f.pod.UID
		err = s.cs.CoreV1().Pods(f.ns).Delete(ctx, f.name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
		switch {
		case apierrors.IsNotFound(err), apierrors.IsConflict(err):
			err = notFound(ref)
		case err != nil:
			err = apiErr("remove pod "+shown(ref), err)
		}
	}
	s.record(id, "pod rm", auditTarget(f.target, ref), err)
	return err
}

func labelSelector(m map[string]string) string {
	return metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: m})
}

// sleep waits d or until ctx ends; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
