package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/kube"
)

// fakePods answers List and Run; the other calls are not used here (nil: a panic says so).
type fakePods struct {
	Pods
	list   []kube.Pod
	ran    []kube.RunSpec
	quotas []kube.QuotaUse
}

func (f *fakePods) List(context.Context, backend.Identity, kube.ListOptions) ([]kube.Pod, error) {
	return f.list, nil
}

func (f *fakePods) Quotas(_ context.Context, id backend.Identity, opts kube.ListOptions) ([]kube.QuotaUse, error) {
	return f.quotas, nil
}

func (f *fakePods) Run(_ context.Context, id backend.Identity, spec kube.RunSpec) (kube.Pod, error) {
	if err := kube.ValidateName(spec.Name); err != nil {
		return kube.Pod{}, err
	}
	f.ran = append(f.ran, spec)
	return kube.Pod{Name: spec.Name, Owner: id.User, Status: "Pending", Reason: "0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}, nil
}

func runPodCLI(pods Pods, id backend.Identity, args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	env := Env{Ctx: context.Background(), Identity: id, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb,
		Prefix: "ssh -p 2222 gpu1", Deps: Deps{Pods: pods}}
	code := Run(env, args)
	return code, out.String(), errb.String()
}

func TestPodCommands(t *testing.T) {
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	created := time.Now().Add(-3 * time.Minute)
	f := &fakePods{list: []kube.Pod{
		{Name: "lab", Owner: "alice", Image: "python:3.12", Status: "Running", Ready: true, Node: "gpu-node-1", GPUs: 1, Created: created},
		{Name: "big", Owner: "alice", Image: "cuda:12", Status: "Pending", Reason: "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", Created: created},
	}, quotas: []kube.QuotaUse{{Owner: "alice", Namespace: "wm-alice-1234", Pods: kube.Resource{Used: 2, Hard: 5, HasHard: true},
		CPUs: kube.Resource{Used: 1.5, Hard: 4, HasHard: true}, Memory: kube.Resource{Used: 2 << 30, Hard: 8 << 30, HasHard: true},
		GPUs: kube.Resource{Used: 1}}}}
	empty := &fakePods{}
	cases := []struct {
		name string
		pods Pods
		args []string
		code int
		out  []string
		errs []string
	}{
		{"no cluster", nil, []string{"pods"}, 1, nil, []string{"error: no Kubernetes cluster is configured on this server"}},
		{"no cluster, pod run", nil, []string{"pod", "run", "python:3.12"}, 1, nil, []string{"no Kubernetes cluster is configured"}},
		{"table with reasons", f, []string{"pods"}, 0,
			[]string{"NAME", "STATUS", "RESTARTS", "NODE", "GPU", "lab", "Running", "1/1", "gpu-node-1", "3m",
				"big: 0/2 nodes are available: 2 Insufficient nvidia.com/gpu."}, nil},
		{"json", f, []string{"pods", "--json"}, 0, []string{`"name": "lab"`, `"status": "Pending"`}, nil},
		{"all-users is for TAs", f, []string{"pods", "--all-users"}, 2, nil, []string{"--all-users is for TAs"}},
		{"pod alone", f, []string{"pod"}, 2, nil, []string{"pod needs a command"}},
		{"pod unknown", f, []string{"pod", "frob"}, 2, nil, []string{`pod has no command "frob"`}},
		{"run, name from the image", f, []string{"pod", "run", "--gpus", "1", "registry.example/alice/ML_Note:1"}, 0,
			[]string{"pod ml-note: created (Pending): 0/1 nodes are available: 1 Insufficient nvidia.com/gpu."}, nil},
		{"run, bad name", f, []string{"pod", "run", "--name", "Bad_Name", "python:3.12"}, 2, nil, []string{"invalid pod name"}},
		{"run, bad memory", f, []string{"pod", "run", "--memory", "lots", "python:3.12"}, 2, nil, []string{`--memory "lots" is not a size`}},
		{"exec needs a command", f, []string{"pod", "exec", "lab"}, 2, nil, []string{"pod exec needs a NAME and a command"}},
		{"shell needs a terminal", f, []string{"pod", "shell", "lab"}, 2, nil, []string{"pod shell needs a terminal: add -t"}},
		{"quota", f, []string{"pod", "quota"}, 0, []string{"OWNER", "NAMESPACE", "alice", "wm-alice-1234", "2/5", "1.5/4", "2.0 GiB/8.0 GiB", "   1\n"}, nil},
		{"quota json", f, []string{"pod", "quota", "--json"}, 0, []string{`"owner": "alice"`, `"limited": true`}, nil},
		{"quota before the first pod", empty, []string{"pod", "quota"}, 0, []string{"No pods yet"}, nil},
		{"quota all-users is for TAs", f, []string{"pod", "quota", "--all-users"}, 2, nil, []string{"--all-users is for TAs"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runPodCLI(c.pods, alice, c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, c.code, out, errs)
			}
			for _, w := range c.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range c.errs {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if c.code != 0 && strings.Count(strings.TrimSpace(errs), "\n") > 0 {
				t.Errorf("more than one line on stderr:\n%s", errs)
			}
		})
	}
	if len(f.ran) != 1 || f.ran[0].GPUs != 1 || f.ran[0].Name != "ml-note" {
		t.Errorf("runs: %+v", f.ran)
	}
}

func TestDefaultPodName(t *testing.T) {
	for in, want := range map[string]string{
		"python:3.12":                    "python",
		"registry.example/alice/ml:1":    "ml",
		"ubuntu@sha256:abcd":             "ubuntu",
		"x/__":                           "pod",
		strings.Repeat("a", 40) + ":tag": strings.Repeat("a", 32),
	} {
		if got := defaultPodName(in); got != want {
			t.Errorf("defaultPodName(%q) = %q, want %q", in, got, want)
		}
	}
}
