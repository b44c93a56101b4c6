package kube_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"whalemountain/backend/audit"
	"whalemountain/backend/gitlab"
	"whalemountain/backend/gitlab/gitlabtest"
	"whalemountain/backend/groups"
	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// sharedCluster is a Service with datasets and group workspaces, and the GitLab stand-in
// that says who is in which group.
type sharedCluster struct {
	svc   *kube.Service
	gl    *gitlabtest.Server
	users map[string]int64
	cs    kubernetes.Interface
}

func newSharedClusterWith(t *testing.T, log *audit.Log) *sharedCluster {
	t.Helper()
	gl := gitlabtest.New()
	t.Cleanup(gl.Close)
	users := map[string]int64{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		users[u] = gl.AddUser(gitlabtest.User{Username: u})
	}
	gl.SetMember("os-2026/team-a", users["alice"], gitlab.Developer)
	gl.SetMember("os-2026/team-a", users["bob"], gitlab.Developer)
	gl.SetMember("os-2026/staff", users["dave"], gitlab.Developer)
	gl.GroupID("os-2026/team-b")
	client, err := gitlab.New(gl.URL(), "", gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	dir := groups.New(groups.Config{TTL: time.Nanosecond}, client)
	svc := kubetest.NewService(t, log, func(c *kube.Config) {
		c.Datasets = []kube.Dataset{
			{Name: "imagenet", Source: kube.VolumeSource{NFSServer: "nfs.example.org", NFSPath: "/export/datasets/imagenet"}},
			{Name: "exams", Groups: []string{"os-2026/staff"}, Source: kube.VolumeSource{NFSServer: "nfs.example.org", NFSPath: "/export/exams"}},
			{Name: "solutions", Roles: []string{"ta"}, Source: kube.VolumeSource{HostPath: "/srv/solutions"}},
		}
		c.Groups = []kube.GroupWorkspace{{Group: "os-2026/team-*", Size: 2 << 30,
			Source: kube.VolumeSource{NFSServer: "nfs.example.org", NFSPath: "/export/groups/{group}"}}}
		c.SharedRepairEvery = time.Hour // the test calls RepairShared itself
	})
	svc.SetGroupDirectory(dir)
	return &sharedCluster{svc: svc, gl: gl, users: users, cs: kubetest.Get(t).Client}
}

// claimsIn lists the server's claims of shared data in ns, by the annotation naming them.
func claimsIn(t *testing.T, cs kubernetes.Interface, ns string) map[string]corev1.PersistentVolumeClaim {
	t.Helper()
	list, err := cs.CoreV1().PersistentVolumeClaims(ns).List(context.Background(), metav1.ListOptions{LabelSelector: kube.LabelData})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]corev1.PersistentVolumeClaim{}
	for _, c := range list.Items {
		out[c.Labels[kube.LabelData]+" "+c.Annotations[kube.AnnotationData]] = c
	}
	return out
}

// dataMounts are a pod's mounts of claims, by mount path, with whether they are read-only
// in both the volume and the mount.
func dataMounts(t *testing.T, cs kubernetes.Interface, ns, pod string) map[string]bool {
	t.Helper()
	p, err := cs.CoreV1().Pods(ns).Get(context.Background(), pod, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	claimRO := map[string]bool{}
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.Name != "home" {
			claimRO[v.Name] = v.PersistentVolumeClaim.ReadOnly
		}
		if v.HostPath != nil || v.NFS != nil {
			t.Errorf("pod %s has a host or NFS volume of its own: %+v", pod, v)
		}
	}
	out := map[string]bool{}
	for _, m := range p.Spec.Containers[0].VolumeMounts {
		if ro, ok := claimRO[m.Name]; ok {
			out[m.MountPath] = ro && m.ReadOnly
		}
	}
	return out
}

// waitObjectGone waits until get reports the object is not found.
func waitObjectGone(t *testing.T, what string, get func() error) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for {
		err := get()
		if apierrors.IsNotFound(err) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still there after %s (%v)", what, bound, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Pods get the datasets and group workspaces their owner is entitled to, through claims
// the server makes in the owner's namespace bound to volumes it makes for them; a member
// who leaves gets nothing in the next pod, and the claim goes.
func TestSharedDataInPods(t *testing.T) {
	t.Parallel()
	log, logPath := auditLog(t)
	sc := newSharedClusterWith(t, log)
	svc, cs := sc.svc, sc.cs
	ctx := ctxFor(t)
	alice, carol, dave := kubetest.Student("alice"), kubetest.Student("carol"), kubetest.TA("dave")

	runRunning(t, svc, alice, kube.RunSpec{Name: "box", Cmd: []string{"sleep", "1d"}})
	aliceNS := svc.Config().Namespace("alice")
	got := dataMounts(t, cs, aliceNS, "box")
	want := map[string]bool{"/datasets/imagenet": true, "/groups/os-2026/team-a": false}
	if !mapsEqual(got, want) {
		t.Errorf("alice's pod mounts %v, want %v (path: read-only)", got, want)
	}
	if d, err := svc.Inspect(ctx, alice, "box"); err != nil || !slices.Equal(d.Data, []string{"/datasets/imagenet (read-only)", "/groups/os-2026/team-a"}) {
		t.Errorf("inspect says the pod's data is %q (%v)", d.Data, err)
	}
	claims := claimsIn(t, cs, aliceNS)
	if len(claims) != 2 {
		t.Fatalf("alice's claims: %v", keys(claims))
	}
	for what, c := range claims {
		pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, c.Spec.VolumeName, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: volume %s: %v", what, c.Spec.VolumeName, err)
		}
		ref := pv.Spec.ClaimRef
		switch {
		case ref == nil || ref.Namespace != aliceNS || ref.Name != c.Name:
			t.Errorf("%s: volume bound to %+v, not alice's claim", what, ref)
		case pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain:
			t.Errorf("%s: reclaim policy %s", what, pv.Spec.PersistentVolumeReclaimPolicy)
		case pv.Labels[kube.LabelOwner] != kube.OwnerKey("alice") || pv.Labels[kube.LabelManaged] != "true" || c.Labels[kube.LabelOwner] != kube.OwnerKey("alice"):
			t.Errorf("%s: labels %v / %v", what, pv.Labels, c.Labels)
		case pv.Spec.NFS == nil || pv.Spec.NFS.Server != "nfs.example.org":
			t.Errorf("%s: source %+v", what, pv.Spec.PersistentVolumeSource)
		}
		if strings.HasPrefix(what, "dataset ") {
			if !pv.Spec.NFS.ReadOnly || !slices.Equal(pv.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany}) {
				t.Errorf("dataset volume is not read-only: %+v %v", pv.Spec.NFS, pv.Spec.AccessModes)
			}
		} else if pv.Spec.NFS.Path != "/export/groups/os-2026/team-a" || pv.Spec.NFS.ReadOnly ||
			!slices.Equal(pv.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}) {
			t.Errorf("group volume: %+v %v", pv.Spec.NFS, pv.Spec.AccessModes)
		}
	}
	// The controllers bind each claim to the volume made for it.
	deadline := time.Now().Add(bound)
	for _, c := range claims {
		for {
			got, err := cs.CoreV1().PersistentVolumeClaims(aliceNS).Get(ctx, c.Name, metav1.GetOptions{})
			if err == nil && got.Status.Phase == corev1.ClaimBound {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("claim %s not bound: %+v %v", c.Name, got.Status, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	// carol is in no team: the dataset for everyone, nothing else, in her pod and namespace.
	runRunning(t, svc, carol, kube.RunSpec{Name: "box", Cmd: []string{"sleep", "1d"}})
	carolNS := svc.Config().Namespace("carol")
	if got := dataMounts(t, cs, carolNS, "box"); !mapsEqual(got, map[string]bool{"/datasets/imagenet": true}) {
		t.Errorf("carol's pod mounts %v", got)
	}
	if c := claimsIn(t, cs, carolNS); len(c) != 1 || c["dataset imagenet"].Name == "" {
		t.Errorf("carol's claims: %v", keys(c))
	}
	// dave, a TA in os-2026/staff: the staff's dataset and the TAs' one, from a node directory.
	runRunning(t, svc, dave, kube.RunSpec{Name: "box", Cmd: []string{"sleep", "1d"}})
	daveNS := svc.Config().Namespace("dave")
	if got := dataMounts(t, cs, daveNS, "box"); !mapsEqual(got, map[string]bool{"/datasets/imagenet": true, "/datasets/exams": true, "/datasets/solutions": true}) {
		t.Errorf("dave's pod mounts %v", got)
	}
	sol := claimsIn(t, cs, daveNS)["dataset solutions"]
	if pv, err := cs.CoreV1().PersistentVolumes().Get(ctx, sol.Spec.VolumeName, metav1.GetOptions{}); err != nil || pv.Spec.HostPath == nil || pv.Spec.HostPath.Path != "/srv/solutions" {
		t.Errorf("the TAs' dataset from a node directory: %v %v", err, pv)
	}

	// alice leaves team-a: her next pod has no workspace, and the claim goes once the pod
	// that still uses it ends.
	sc.gl.SetMember("os-2026/team-a", sc.users["alice"], 0)
	runRunning(t, svc, alice, kube.RunSpec{Name: "next", Cmd: []string{"sleep", "1d"}})
	if got := dataMounts(t, cs, aliceNS, "next"); !mapsEqual(got, map[string]bool{"/datasets/imagenet": true}) {
		t.Errorf("alice's pod after leaving mounts %v", got)
	}
	group := claims["group os-2026/team-a"]
	if c, err := cs.CoreV1().PersistentVolumeClaims(aliceNS).Get(ctx, group.Name, metav1.GetOptions{}); err == nil && c.DeletionTimestamp == nil {
		t.Error("the workspace claim of a group alice left is not being removed")
	}
	if err := svc.Remove(ctx, alice, "box"); err != nil {
		t.Fatal(err)
	}
	waitObjectGone(t, "alice's workspace claim", func() error {
		_, err := cs.CoreV1().PersistentVolumeClaims(aliceNS).Get(ctx, group.Name, metav1.GetOptions{})
		return err
	})
	waitObjectGone(t, "alice's workspace volume", func() error {
		_, err := cs.CoreV1().PersistentVolumes().Get(ctx, group.Spec.VolumeName, metav1.GetOptions{})
		return err
	})
	if c := claimsIn(t, cs, aliceNS); len(c) != 1 || c["dataset imagenet"].Name == "" {
		t.Errorf("alice's claims after leaving: %v", keys(c))
	}
	if !hasAudit(readAudit(t, logPath), "alice", "kube shared data remove", "", "ok") {
		t.Error("the removal is not audited")
	}
}

// The repair loop removes the claims of members who left without making a pod since.
func TestRepairSharedRemovesClaimsOfFormerMembers(t *testing.T) {
	t.Parallel()
	log, logPath := auditLog(t)
	sc := newSharedClusterWith(t, log)
	svc, cs := sc.svc, sc.cs
	ctx := ctxFor(t)
	bob, dave := kubetest.Student("bob"), kubetest.TA("dave")
	runRunning(t, svc, bob, kube.RunSpec{Name: "box", Cmd: []string{"sleep", "1d"}})
	runRunning(t, svc, dave, kube.RunSpec{Name: "box", Cmd: []string{"sleep", "1d"}})
	if err := svc.Remove(ctx, bob, "box"); err != nil {
		t.Fatal(err)
	}
	bobNS, daveNS := svc.Config().Namespace("bob"), svc.Config().Namespace("dave")
	group := claimsIn(t, cs, bobNS)["group os-2026/team-a"]
	if group.Name == "" {
		t.Fatalf("bob has no workspace claim: %v", keys(claimsIn(t, cs, bobNS)))
	}
	before := claimsIn(t, cs, daveNS)
	if err := svc.RepairShared(ctx); err != nil {
		t.Fatalf("repair with nothing to do: %v", err)
	}
	if c := claimsIn(t, cs, bobNS); len(c) != 2 {
		t.Errorf("a repair with nothing to do changed bob's claims: %v", keys(c))
	}
	sc.gl.SetMember("os-2026/team-a", sc.users["bob"], 0)
	sc.gl.SetMember("os-2026/staff", sc.users["dave"], 0)
	if err := svc.RepairShared(ctx); err != nil {
		t.Fatalf("repair: %v", err)
	}
	waitObjectGone(t, "bob's workspace claim", func() error {
		_, err := cs.CoreV1().PersistentVolumeClaims(bobNS).Get(ctx, group.Name, metav1.GetOptions{})
		return err
	})
	waitObjectGone(t, "bob's workspace volume", func() error {
		_, err := cs.CoreV1().PersistentVolumes().Get(ctx, group.Spec.VolumeName, metav1.GetOptions{})
		return err
	})
	after := claimsIn(t, cs, daveNS)
	// dave's staff dataset is being removed (his running pod keeps it until it ends); the
	// TAs' dataset, given by role, is left as it is.
	if c, ok := after["dataset exams"]; ok && c.DeletionTimestamp == nil {
		t.Error("dave's dataset of a group he left is kept")
	}
	if after["dataset solutions"].Name == "" || after["dataset solutions"].DeletionTimestamp != nil || before["dataset solutions"].Name == "" {
		t.Errorf("the repair touched a dataset given by role: %v", keys(after))
	}
	if !hasAudit(readAudit(t, logPath), "whalemountain", "kube shared data remove", "", "ok") {
		t.Error("the repair's removals are not audited")
	}
}

// Attack table: what a student cannot do to shared data, with the server or with their
// kubeconfig.
func TestSharedDataAttacks(t *testing.T) {
	t.Parallel()
	log, _ := auditLog(t)
	sc := newSharedClusterWith(t, log)
	svc, cs := sc.svc, sc.cs
	ctx := ctxFor(t)
	alice, carol := kubetest.Student("alice"), kubetest.Student("carol")
	runRunning(t, svc, alice, kube.RunSpec{Name: "box", Cmd: []string{"sleep", "1d"}})
	if err := svc.Provision(ctx, carol); err != nil {
		t.Fatal(err)
	}
	aliceNS, carolNS := svc.Config().Namespace("alice"), svc.Config().Namespace("carol")
	aliceGroup := claimsIn(t, cs, aliceNS)["group os-2026/team-a"]
	if aliceGroup.Name == "" {
		t.Fatal("alice has no workspace claim")
	}
	cfgBytes, _, err := svc.Kubeconfig(ctx, carol)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := clientcmd.RESTConfigFromKubeConfig(cfgBytes)
	if err != nil {
		t.Fatal(err)
	}
	carolCS, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: aliceGroup.Name},
		Spec: corev1.PersistentVolumeClaimSpec{AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
			VolumeName: aliceGroup.Spec.VolumeName, Resources: aliceGroup.Spec.Resources},
	}
	pv := &corev1.PersistentVolume{ObjectMeta: metav1.ObjectMeta{Name: "carol-nfs"}, Spec: corev1.PersistentVolumeSpec{
		Capacity:               aliceGroup.Spec.Resources.Requests,
		AccessModes:            []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany},
		PersistentVolumeSource: corev1.PersistentVolumeSource{NFS: &corev1.NFSVolumeSource{Server: "nfs.example.org", Path: "/export/groups/os-2026/team-a"}},
	}}
	forbidden := map[string]error{}
	_, forbidden["carol makes a claim of alice's volume"] = carolCS.CoreV1().PersistentVolumeClaims(carolNS).Create(ctx, claim, metav1.CreateOptions{})
	_, forbidden["carol makes a volume of the team's export"] = carolCS.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{})
	_, forbidden["carol lists volumes"] = carolCS.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	_, forbidden["carol reads alice's claims"] = carolCS.CoreV1().PersistentVolumeClaims(aliceNS).List(ctx, metav1.ListOptions{})
	forbidden["carol removes alice's claim"] = carolCS.CoreV1().PersistentVolumeClaims(aliceNS).Delete(ctx, aliceGroup.Name, metav1.DeleteOptions{})
	forbidden["carol rebinds alice's volume"] = func() error {
		_, err := carolCS.CoreV1().PersistentVolumes().Patch(ctx, aliceGroup.Spec.VolumeName, "application/merge-patch+json",
			[]byte(`{"spec":{"claimRef":{"namespace":"`+carolNS+`","name":"x"}}}`), metav1.PatchOptions{})
		return err
	}()
	for what, err := range forbidden {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want forbidden", what, err)
		}
	}
	// A pod carol makes with kubectl naming alice's claim finds no such claim in her own
	// namespace: it never runs.
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "steal"}, Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "c", Image: "busybox:1", VolumeMounts: []corev1.VolumeMount{{Name: "g", MountPath: "/g"}}}},
		Volumes:    []corev1.Volume{{Name: "g", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: aliceGroup.Name}}}},
	}}
	if _, err := carolCS.CoreV1().Pods(carolNS).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("carol's pod: %v", err)
	}
	if _, err := cs.CoreV1().PersistentVolumeClaims(carolNS).Get(ctx, aliceGroup.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("carol's namespace has the claim of alice's workspace: %v", err)
	}
	time.Sleep(2 * time.Second)
	if p, err := cs.CoreV1().Pods(carolNS).Get(ctx, "steal", metav1.GetOptions{}); err != nil || p.Status.Phase == corev1.PodRunning {
		t.Errorf("carol's pod naming alice's claim: %v %v", err, p.Status.Phase)
	}
	// carol's own pods, made by the server, get nothing of the team.
	runRunning(t, svc, carol, kube.RunSpec{Name: "box", Cmd: []string{"sleep", "1d"}})
	if got := dataMounts(t, cs, carolNS, "box"); len(got) != 1 || !got["/datasets/imagenet"] {
		t.Errorf("carol's pod mounts %v", got)
	}

	// A volume of the name the server would use, made by someone else, is never taken.
	bob := kubetest.Student("bob")
	bobNS := svc.Config().Namespace("bob")
	squat := pv.DeepCopy()
	squat.Name = bobNS + "." + aliceGroup.Name
	squat.Spec.ClaimRef = &corev1.ObjectReference{Namespace: carolNS, Name: "mine"}
	if _, err := cs.CoreV1().PersistentVolumes().Create(ctx, squat, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cs.CoreV1().PersistentVolumes().Delete(context.Background(), squat.Name, metav1.DeleteOptions{})
	})
	_, err = svc.Run(ctx, bob, kube.RunSpec{Name: "box", Image: "busybox:1"})
	if !errors.Is(err, kube.ErrConflict) || !strings.Contains(err.Error(), "not made by this server") {
		t.Errorf("bob's pod with a squatted volume name: %v", err)
	}
	if _, err := cs.CoreV1().Pods(bobNS).Get(ctx, "box", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("bob's pod was made: %v", err)
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
