package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path"
	"regexp"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"whalemountain/backend"
	"whalemountain/backend/groups"
)

// Data that is not one user's, in pods: the site's read-only datasets and the workspaces of
// groups, reached by the cluster's nodes over NFS (or, on a single-node cluster, a directory
// of the node).
//
// For each dataset and group workspace a user is entitled to, the server makes in that
// user's namespace a PersistentVolumeClaim of its own naming, and a PersistentVolume bound to
// that claim in advance (claimRef): ReadOnlyMany for a dataset (and an NFS source the kubelet
// mounts read-only whatever a pod asks), ReadWriteMany for a group. Both carry the server's
// labels (managed, owner, LabelData) and the annotation AnnotationData naming the dataset or
// group; the PersistentVolume is never deleted with its data (Retain). Pods the server makes
// mount them at the same paths as containers (/datasets/NAME read-only, /groups/GROUP).
//
// Entitlement is decided as for containers (roles, groups, membership from GitLab), each
// time a pod is made: a claim the user is no longer entitled to is removed then, and by
// RepairShared, which the live watch runs every few minutes for every namespace. A removed
// claim that a running pod still uses lasts until that pod ends (Kubernetes' own
// protection); a new pod never gets it. Users cannot make or change claims: their Role has
// no rights on them, and a pod can only name claims in its own namespace.

// Label and annotation keys on the volumes and claims of shared data.
const (
	// LabelData is "dataset" or "group" on the server's claims and volumes of shared data.
	LabelData = "whalemountain.io/data"
	// AnnotationData is the dataset's name or the group's path.
	AnnotationData = "whalemountain.io/data-name"
)

// Values of LabelData.
const (
	dataDataset = "dataset"
	dataGroup   = "group"
)

// VolumeSource is how the cluster's nodes reach shared data: an NFS export, or a directory
// on the node (HostPath; for single-node clusters, where the server's host is the node). For
// a group workspace, the path contains {group} (the group's path, such as os-2026/team-a).
type VolumeSource struct {
	NFSServer string
	NFSPath   string
	HostPath  string
}

// Dataset is a read-only data set mounted into the pods of the users who may see it.
type Dataset struct {
	Name string
	// Target is where it appears in pods; empty means /datasets/NAME.
	Target string
	// Roles ("student", "ta") and Groups (GitLab group paths) say who sees it: a user of
	// one of the roles, or a member of one of the groups. Neither: everyone.
	Roles  []string
	Groups []string
	Source VolumeSource
}

// GroupWorkspace is a read-write workspace for each group Group names (a path or a
// pattern such as os-2026/team-*), mounted into the pods of its members.
type GroupWorkspace struct {
	Group string
	// Size is the claim's size in bytes (0: 1 GiB); NFS and host directories do not
	// enforce it.
	Size int64
	// Target is where it appears in pods, a template containing {group}; empty means
	// /groups/{group}.
	Target string
	Source VolumeSource
}

// GroupDirectory says who belongs to which group (backend/groups).
type GroupDirectory = groups.Membership

var datasetNameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$`)

// target is where d appears.
func (d Dataset) target() string { return groups.DatasetTarget(d.Name, d.Target) }

// targetFor is where group's workspace appears.
func (w GroupWorkspace) targetFor(group string) string {
	return groups.WorkspaceTarget(w.Target, group)
}

// sourceFor is w's source for one group.
func (w GroupWorkspace) sourceFor(group string) VolumeSource {
	src := w.Source
	src.NFSPath = strings.ReplaceAll(src.NFSPath, "{group}", group)
	src.HostPath = strings.ReplaceAll(src.HostPath, "{group}", group)
	return src
}

// validate checks a source; perGroup: its path must contain {group}.
func (v VolumeSource) validate(perGroup bool) error {
	p := v.HostPath
	switch {
	case (v.NFSServer == "") != (v.NFSPath == ""):
		return fmt.Errorf("needs both an NFS server and an NFS path")
	case (v.NFSServer == "") == (v.HostPath == ""):
		return fmt.Errorf("needs exactly one of an NFS export (server and path) and a host path")
	case v.NFSServer != "" && (len(validation.IsDNS1123Subdomain(v.NFSServer)) > 0 && len(validation.IsValidIP(nil, v.NFSServer)) > 0):
		return fmt.Errorf("NFS server %q is not a host name or an IP address", v.NFSServer)
	case v.NFSServer != "":
		p = v.NFSPath
	}
	check := strings.ReplaceAll(p, "{group}", "g")
	switch {
	case !path.IsAbs(check) || path.Clean(check) != check || check == "/" || strings.ContainsAny(check, "\x00:,"):
		return fmt.Errorf("path %q must be a clean absolute path other than / without ':' or ','", p)
	case perGroup && strings.Count(p, "{group}") != 1:
		return fmt.Errorf("path %q must contain {group} once, so that every group has its own directory", p)
	case !perGroup && strings.Contains(p, "{group}"):
		return fmt.Errorf("path %q has {group}, which only a group workspace's path may have", p)
	case v.HostPath != "" && (strings.Contains(check, "docker.sock") || slices.ContainsFunc([]string{"/run/", "/var/run/", "/proc/", "/sys/", "/dev/", "/etc/", "/var/lib/kubelet/"},
		func(pre string) bool { return strings.HasPrefix(check+"/", pre) })):
		return fmt.Errorf("host path %q may not be under /run, /proc, /sys, /dev, /etc or the kubelet's directory", p)
	}
	return nil
}

// validateShared checks the datasets and group workspaces of c.
func (c Config) validateShared() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("kube config: %s %s", field, fmt.Sprintf(format, a...))
	}
	homeDir := path.Dir(c.HomeTarget)
	targets := groups.Targets{}
	claim := func(field, t string) error {
		if err := targets.Claim(field, t); err != nil {
			return bad(field, "%v", err)
		}
		if homeDir != "/" && strings.HasPrefix(t+"/", homeDir+"/") {
			return bad(field, "%s lies where homes are mounted (%s)", t, c.HomeTarget)
		}
		return nil
	}
	names := map[string]bool{}
	for i, d := range c.Datasets {
		field := fmt.Sprintf("Datasets[%d]", i)
		if !datasetNameRE.MatchString(d.Name) || names[d.Name] {
			return bad(field+".Name", "must be 1-64 lower-case letters, digits, '.', '_' or '-', used once (got %q)", d.Name)
		}
		names[d.Name] = true
		if err := d.Source.validate(false); err != nil {
			return bad(field+".Source", "%v", err)
		}
		if err := claim(field+".Target", d.target()); err != nil {
			return err
		}
		for _, r := range d.Roles {
			if r != "student" && r != "ta" {
				return bad(field+".Roles", "has %q: use student or ta", r)
			}
		}
		for _, g := range d.Groups {
			if err := groups.ValidatePattern(g); err != nil || groups.IsPattern(g) {
				return bad(field+".Groups", "has %q: want a GitLab group path such as os-2026/ta", g)
			}
		}
	}
	for i, w := range c.Groups {
		field := fmt.Sprintf("Groups[%d]", i)
		if err := groups.ValidatePattern(w.Group); err != nil {
			return bad(field+".Group", "%v", err)
		}
		if w.Size < 0 {
			return bad(field+".Size", "must not be negative")
		}
		if err := w.Source.validate(true); err != nil {
			return bad(field+".Source", "%v", err)
		}
		t := w.targetFor("{group}")
		fixed, err := groups.TargetPrefix(t)
		if err != nil {
			return bad(field+".Target", "%v", err)
		}
		if homeDir != "/" && strings.HasPrefix(fixed, homeDir+"/") {
			return bad(field+".Target", "%s lies where homes are mounted (%s)", t, c.HomeTarget)
		}
		if owner := targets.Among(fixed); owner != "" {
			return bad(field+".Target", "%s lies where group workspaces appear (%s)", owner, t)
		}
	}
	return nil
}

// SetGroupDirectory gives the service who belongs to which group; without one, group
// workspaces and datasets limited to groups are given to nobody. Call it before serving.
func (s *Service) SetGroupDirectory(d GroupDirectory) { s.groupDir = d }

// dataClaim is one claim of shared data a user is entitled to.
type dataClaim struct {
	kind     string // dataDataset or dataGroup
	what     string // the dataset's name or the group's path
	target   string // where pods get it
	readOnly bool
	source   VolumeSource
	size     int64
}

// claimName is the name of the claim (and of the pod's volume) for kind and what: a DNS
// label, readable, with a hash so that two names never share one.
func claimName(kind, what string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + what))
	slug := dnsSlug(what, 40)
	if slug != "" {
		slug += "-"
	}
	return kind + "-" + slug + hex.EncodeToString(sum[:4])
}

// volumeName is the cluster-wide name of the PersistentVolume of a claim in ns.
func volumeName(ns, claim string) string { return ns + "." + claim }

func roleName(r backend.Role) string {
	if r == backend.RoleTA {
		return "ta"
	}
	return "student"
}

// entitled lists the shared data user (of role, "" when not known) gets in pods. With an
// unknown role, datasets given by role alone are left out and reported in keep, so that
// a repair without the role neither adds nor removes them.
func (s *Service) entitled(ctx context.Context, user, role string) (want []dataClaim, keep []string, err error) {
	for _, d := range s.cfg.Datasets {
		ok, err := groups.MaySee(ctx, s.membership(), d.Roles, d.Groups, user, role)
		if err != nil {
			return nil, nil, errorf(ErrUnavailable, "cannot check who may see dataset %s now (%s); try again later", d.Name, oneLine(err.Error(), maxReason))
		}
		if !ok && role == "" && len(d.Roles) > 0 {
			keep = append(keep, claimName(dataDataset, d.Name))
			continue
		}
		if ok {
			want = append(want, dataClaim{kind: dataDataset, what: d.Name, target: d.target(), readOnly: true, source: d.Source, size: gib})
		}
	}
	patterns := make([]string, len(s.cfg.Groups))
	for i, w := range s.cfg.Groups {
		patterns[i] = w.Group
	}
	joined, err := groups.JoinedGroups(ctx, s.membership(), patterns, user)
	if err != nil {
		return nil, nil, errorf(ErrUnavailable, "cannot check your groups now (%s); try again later", oneLine(err.Error(), maxReason))
	}
	for _, j := range joined {
		w := s.cfg.Groups[j.Pattern]
		size := w.Size
		if size <= 0 {
			size = gib
		}
		want = append(want, dataClaim{kind: dataGroup, what: j.Group, target: w.targetFor(j.Group), source: w.sourceFor(j.Group), size: size})
	}
	return want, keep, nil
}

// membership is the group directory, or nil (an untyped nil: nobody is a member).
func (s *Service) membership() groups.Membership {
	if s.groupDir == nil {
		return nil
	}
	return s.groupDir
}

// dataLabels are the labels of the claim and volume of shared data of user.
func (s *Service) dataLabels(user, kind string) map[string]string {
	m := s.objectLabels(user)
	m[LabelData] = kind
	return m
}

// persistentVolume is the volume for claim c of user in ns, bound to that claim only.
func (s *Service) persistentVolume(user, ns string, c dataClaim) *corev1.PersistentVolume {
	name := claimName(c.kind, c.what)
	mode := corev1.ReadWriteMany
	if c.readOnly {
		mode = corev1.ReadOnlyMany
	}
	var src corev1.PersistentVolumeSource
	if c.source.NFSServer != "" {
		src.NFS = &corev1.NFSVolumeSource{Server: c.source.NFSServer, Path: c.source.NFSPath, ReadOnly: c.readOnly}
	} else {
		t := corev1.HostPathDirectory
		src.HostPath = &corev1.HostPathVolumeSource{Path: c.source.HostPath, Type: &t}
	}
	return &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: volumeName(ns, name), Labels: s.dataLabels(user, c.kind),
			Annotations: map[string]string{AnnotationData: c.what, AnnotationOwner: user}},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: memQuantity(c.size)},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{mode},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              "",
			ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: ns, Name: name},
			PersistentVolumeSource:        src,
		},
	}
}

// persistentVolumeClaim is claim c of user in ns, bound to its own volume.
func (s *Service) persistentVolumeClaim(user, ns string, c dataClaim) *corev1.PersistentVolumeClaim {
	name := claimName(c.kind, c.what)
	mode := corev1.ReadWriteMany
	if c.readOnly {
		mode = corev1.ReadOnlyMany
	}
	none := ""
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: s.dataLabels(user, c.kind),
			Annotations: map[string]string{AnnotationData: c.what}},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{mode},
			StorageClassName: &none,
			VolumeName:       volumeName(ns, name),
			Resources: corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{
				corev1.ResourceStorage: memQuantity(c.size),
			}},
		},
	}
}

// isDataObject reports whether meta is the server's claim or volume of shared data of user.
func (s *Service) isDataObject(meta metav1.Object, user string) bool {
	l := meta.GetLabels()
	for k, v := range s.cfg.selectors() {
		if l[k] != v {
			return false
		}
	}
	return l[LabelOwner] == OwnerKey(user) && (l[LabelData] == dataDataset || l[LabelData] == dataGroup) && meta.GetAnnotations()[AnnotationData] != ""
}

// ensureData makes the claims (and their volumes) of want in user's namespace ns. An
// existing claim or volume of that name the server did not make for this user is never
// used.
func (s *Service) ensureData(ctx context.Context, user, ns string, want []dataClaim) error {
	for _, c := range want {
		what := fmt.Sprintf("set up %s %s in your namespace", c.kind, c.what)
		pv := s.persistentVolume(user, ns, c)
		got, err := s.cs.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{FieldManager: fieldManager})
		if apierrors.IsAlreadyExists(err) {
			got, err = s.cs.CoreV1().PersistentVolumes().Get(ctx, pv.Name, metav1.GetOptions{})
		}
		if err != nil {
			return apiErr(what, err)
		}
		if !s.isDataObject(got, user) || got.Spec.ClaimRef == nil || got.Spec.ClaimRef.Namespace != ns || got.Spec.ClaimRef.Name != pv.Spec.ClaimRef.Name {
			return errorf(ErrConflict, "%s: volume %s exists and was not made by this server for you; ask an administrator", what, pv.Name)
		}
		if got.DeletionTimestamp != nil {
			return errorf(ErrConflict, "%s: it is being removed while a pod still uses it; try again when that pod has ended", what)
		}
		pvc := s.persistentVolumeClaim(user, ns, c)
		gotC, err := s.cs.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{FieldManager: fieldManager})
		if apierrors.IsAlreadyExists(err) {
			gotC, err = s.cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, pvc.Name, metav1.GetOptions{})
		}
		if err != nil {
			return apiErr(what, err)
		}
		if !s.isDataObject(gotC, user) || gotC.Spec.VolumeName != pv.Name {
			return errorf(ErrConflict, "%s: claim %s exists and was not made by this server; ask an administrator", what, pvc.Name)
		}
		if gotC.DeletionTimestamp != nil {
			return errorf(ErrConflict, "%s: it is being removed while a pod still uses it; try again when that pod has ended", what)
		}
	}
	return nil
}

// pruneData removes from user's namespace ns the claims of shared data (and their volumes)
// that are in neither want nor keep, and returns what it removed. A claim a running pod
// uses goes when that pod ends.
func (s *Service) pruneData(ctx context.Context, user, ns string, want []dataClaim, keep []string) ([]string, error) {
	sel := labelSelector(s.objectLabels(user)) + "," + LabelData
	claims, err := s.cs.CoreV1().PersistentVolumeClaims(ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, apiErr("list the shared data in "+ns, err)
	}
	keepNames := slices.Clone(keep)
	for _, c := range want {
		keepNames = append(keepNames, claimName(c.kind, c.what))
	}
	var removed []string
	for i := range claims.Items {
		c := &claims.Items[i]
		if !s.isDataObject(c, user) || slices.Contains(keepNames, c.Name) {
			continue
		}
		if c.DeletionTimestamp == nil {
			if err := s.cs.CoreV1().PersistentVolumeClaims(ns).Delete(ctx, c.Name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
				return removed, apiErr("remove claim "+c.Name, err)
			}
			removed = append(removed, c.Labels[LabelData]+" "+c.Annotations[AnnotationData])
		}
		if err := s.removeDataVolume(ctx, user, volumeName(ns, c.Name)); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// removeDataVolume deletes the volume name when it is the server's volume of shared data of
// user; its data stays (Retain).
func (s *Service) removeDataVolume(ctx context.Context, user, name string) error {
	pv, err := s.cs.CoreV1().PersistentVolumes().Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return apiErr("look up volume "+name, err)
	}
	if !s.isDataObject(pv, user) || pv.DeletionTimestamp != nil {
		return nil
	}
	uid := pv.UID
	err = s.cs.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return apiErr("remove volume "+name, err)
	}
	return nil
}

// dataFor makes the namespace's shared data what id is entitled to now: claims made for
// what id gets, removed for what id no longer gets. It returns what a new pod mounts.
func (s *Service) dataFor(ctx context.Context, id backend.Identity, ns string) ([]dataClaim, error) {
	if len(s.cfg.Datasets) == 0 && len(s.cfg.Groups) == 0 {
		return nil, nil
	}
	want, _, err := s.entitled(ctx, id.User, roleName(id.Role))
	if err != nil {
		return nil, err
	}
	removed, err := s.pruneData(ctx, id.User, ns, want, nil)
	if len(removed) > 0 {
		s.record(id, "kube shared data remove", ns+": "+strings.Join(removed, ","), nil)
	}
	if err != nil {
		return nil, err
	}
	if err := s.ensureData(ctx, id.User, ns, want); err != nil {
		return nil, err
	}
	return want, nil
}

// RepairShared removes, in every namespace the server made, the claims of shared data
// (and their volumes) the owner is no longer entitled to: a group they left, a dataset
// limited to groups they left. Datasets given by role are left as they are (the role is
// known when the owner next makes a pod). Removals are audited. The live watch calls it
// every few minutes.
func (s *Service) RepairShared(ctx context.Context) error {
	if len(s.cfg.Datasets) == 0 && len(s.cfg.Groups) == 0 {
		return nil
	}
	list, err := s.cs.CoreV1().Namespaces().List(ctx, metav1.ListOptions{LabelSelector: labelSelector(s.cfg.selectors())})
	if err != nil {
		return apiErr("list namespaces", err)
	}
	var first error
	for i := range list.Items {
		owner := s.namespaceOwner(&list.Items[i])
		if owner == "" {
			continue
		}
		want, keep, err := s.entitled(ctx, owner, "")
		if err == nil {
			var removed []string
			removed, err = s.pruneData(ctx, owner, list.Items[i].Name, want, keep)
			if len(removed) > 0 {
				server := backend.Identity{User: "whalemountain", Role: backend.RoleTA}
				s.record(server, "kube shared data remove", list.Items[i].Name+": "+strings.Join(removed, ","), nil)
			}
		}
		if err != nil {
			slog.Warn("repair of shared data in a namespace failed", "namespace", list.Items[i].Name, "err", err)
			if first == nil {
				first = err
			}
		}
	}
	return first
}

// dataVolumes are the pod's volumes and the container's mounts of claims.
func dataVolumes(claims []dataClaim) ([]corev1.Volume, []corev1.VolumeMount) {
	var vols []corev1.Volume
	var mounts []corev1.VolumeMount
	for _, c := range claims {
		name := claimName(c.kind, c.what)
		vols = append(vols, corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: name, ReadOnly: c.readOnly}}})
		mounts = append(mounts, corev1.VolumeMount{Name: name, MountPath: c.target, ReadOnly: c.readOnly})
	}
	return vols, mounts
}

// dataMountsOf lists where pod's container mounts claims of shared data (by the claims'
// names), "(read-only)" after those mounted so.
func dataMountsOf(pod *corev1.Pod) []string {
	claims := map[string]bool{}
	for _, v := range pod.Spec.Volumes {
		if pvc := v.PersistentVolumeClaim; pvc != nil && (strings.HasPrefix(pvc.ClaimName, dataDataset+"-") || strings.HasPrefix(pvc.ClaimName, dataGroup+"-")) {
			claims[v.Name] = pvc.ReadOnly
		}
	}
	var out []string
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		ro, ok := claims[m.Name]
		if !ok {
			continue
		}
		if ro || m.ReadOnly {
			out = append(out, m.MountPath+" (read-only)")
		} else {
			out = append(out, m.MountPath)
		}
	}
	return out
}
