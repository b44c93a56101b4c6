package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// TestE2EPodsSharedData: with datasets and groups that say how the cluster reaches them,
// the pods a student runs over ssh mount the dataset read-only and their group's workspace,
// and `pod inspect` says so; another student's pod gets the dataset only, and nothing of the
// group is in their namespace.
func TestE2EPodsSharedData(t *testing.T) {
	t.Parallel()
	s := startPodServerWith(t, fmt.Sprintf(`datasets:
  - name: course
    host_path: %s
    kubernetes:
      nfs: {server: nfs.example.org, path: /export/course}
groups:
  - group: lab/team-a
    members: [alice]
    kubernetes:
      nfs: {server: nfs.example.org, path: "/export/groups/{group}"}
`, t.TempDir()))
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	s.addKey(t, "alice", alice)
	s.addKey(t, "bob", bob)
	data := func(key *testKey, user string) []string {
		t.Helper()
		if r := s.ssh(t, key, user, "pod", "run", "--name", "box", "busybox:1", "sleep", "1d"); r.Code != 0 {
			t.Fatalf("%s: pod run: %s", user, r)
		}
		r := s.ssh(t, key, user, "pod", "inspect", "box")
		var d kube.Details
		if err := json.Unmarshal([]byte(r.Stdout), &d); r.Code != 0 || err != nil {
			t.Fatalf("%s: pod inspect: %v %s", user, err, r)
		}
		return d.Data
	}
	if got := data(alice, "alice"); !slices.Equal(got, []string{"/datasets/course (read-only)", "/groups/lab/team-a"}) {
		t.Errorf("alice's pod mounts %q", got)
	}
	if got := data(bob, "bob"); !slices.Equal(got, []string{"/datasets/course (read-only)"}) {
		t.Errorf("bob's pod mounts %q", got)
	}
	ps := s.podsOf(t, bob, "bob")
	if len(ps) != 1 || ps[0].Namespace == "" {
		t.Fatalf("bob's pods: %+v", ps)
	}
	cs := kubetest.Get(t).Client
	list, err := cs.CoreV1().PersistentVolumeClaims(ps[0].Namespace).List(context.Background(), metav1.ListOptions{LabelSelector: kube.LabelData})
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 1 {
		t.Errorf("bob's namespace has %d claims of shared data", len(list.Items))
	}
	for _, c := range list.Items {
		if c.Labels[kube.LabelData] != "dataset" {
			t.Errorf("bob's namespace has %s %s", c.Labels[kube.LabelData], c.Annotations[kube.AnnotationData])
		}
	}
}
