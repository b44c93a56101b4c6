package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
)

// fakeContainers answers List and Run; the other verbs are not used here.
type fakeContainers struct {
	Containers
	list []docker.Container
	ran  docker.Container
}

func (f *fakeContainers) List(context.Context, backend.Identity, docker.ListOptions) ([]docker.Container, error) {
	return f.list, nil
}

func (f *fakeContainers) Run(_ context.Context, _ backend.Identity, spec docker.RunSpec) (docker.Container, error) {
	c := f.ran
	c.Name = spec.Name
	return c, nil
}

func TestPsShowsGPUs(t *testing.T) {
	now := time.Now()
	f := &fakeContainers{list: []docker.Container{
		{Name: "jupyter", Owner: "alice", Image: "registry/alice/ml:latest", State: "running", StartedAt: now.Add(-2 * time.Hour), GPUs: "0"},
		{Name: "thesis", Owner: "alice", Image: "ubuntu:24.04", State: "exited"},
	}}
	var out, errb bytes.Buffer
	env := aliceEnv(&out, &errb)
	env.Deps.Containers = f
	if code := Run(env, []string{"ps", "-a"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 3 {
		t.Fatalf("ps:\n%s", out.String())
	}
	for i, want := range [][]string{{"NAME", "IMAGE", "STATE", "UP", "CPU", "MEM", "GPU"}, {"jupyter", "running", "2h", "0"}, {"thesis", "exited(0)"}} {
		f := strings.Fields(lines[i])
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
		if i > 0 && f[len(f)-1] != map[int]string{1: "0", 2: "–"}[i] {
			t.Errorf("line %d: GPU cell %q", i, f[len(f)-1])
		}
	}

	out.Reset()
	f.ran = docker.Container{State: "running", GPUs: "1"}
	if code := Run(env, []string{"run", "--name", "train", "--gpus", "1", "img"}); code != 0 || out.String() != "train: created and started (GPU 1)\n" {
		t.Errorf("run with a GPU: exit %d, %q", code, out.String())
	}
	out.Reset()
	f.ran = docker.Container{State: "running"}
	if code := Run(env, []string{"run", "--name", "box", "img"}); code != 0 || out.String() != "box: created and started\n" {
		t.Errorf("run without GPUs: exit %d, %q", code, out.String())
	}
}

// refusingContainers has no container at all, and records the refusals it is told of.
type refusingContainers struct {
	Containers
	refusals []string
}

// notFoundErr is the backend's "no such container" error.
type notFoundErr string

func (e notFoundErr) Error() string        { return "no such container: " + string(e) }
func (e notFoundErr) Is(target error) bool { return target == docker.ErrNotFound }

func (f *refusingContainers) Inspect(_ context.Context, _ backend.Identity, ref string) (docker.Details, error) {
	return docker.Details{}, notFoundErr(ref)
}

func (f *refusingContainers) Logs(_ context.Context, _ backend.Identity, ref string, _ docker.LogOptions) (io.ReadCloser, error) {
	return nil, notFoundErr(ref)
}

func (f *refusingContainers) RecordRefusal(id backend.Identity, action, ref string, err error) {
	f.refusals = append(f.refusals, fmt.Sprintf("%s %s %s %s: %v", id.User, id.KeyFingerprint, action, ref, err))
}

// TestRefusedReadsAudited: inspect and logs of a container that is not the user's are
// audited as refusals, and the user is told exactly what the backend said.
func TestRefusedReadsAudited(t *testing.T) {
	f := &refusingContainers{}
	var out, errb bytes.Buffer
	env := aliceEnv(&out, &errb)
	env.Identity.KeyFingerprint = "SHA256:alicekey"
	env.Deps.Containers = f
	for _, verb := range []string{"inspect", "logs"} {
		errb.Reset()
		if code := Run(env, []string{verb, "bob/box"}); code != ExitFail {
			t.Errorf("%s: exit %d", verb, code)
		}
		if errb.String() != "error: no such container: bob/box\n" {
			t.Errorf("%s told %q", verb, errb.String())
		}
	}
	want := []string{
		"alice SHA256:alicekey inspect bob/box: no such container: bob/box",
		"alice SHA256:alicekey logs bob/box: no such container: bob/box",
	}
	if !slices.Equal(f.refusals, want) {
		t.Errorf("refusals recorded:\n%s\nwant:\n%s", strings.Join(f.refusals, "\n"), strings.Join(want, "\n"))
	}
}

// reasonContainers records the reasons Stop and Remove are given.
type reasonContainers struct {
	Containers
	calls []string
}

func (f *reasonContainers) Stop(_ context.Context, _ backend.Identity, ref, reason string) error {
	f.calls = append(f.calls, "stop "+ref+" "+reason)
	return nil
}

func (f *reasonContainers) Remove(_ context.Context, _ backend.Identity, ref string, force bool, reason string) error {
	f.calls = append(f.calls, fmt.Sprintf("rm %s %v %s", ref, force, reason))
	return nil
}

func TestStopAndRmTakeAReason(t *testing.T) {
	var out, errb bytes.Buffer
	env := aliceEnv(&out, &errb)
	env.Identity = backend.Identity{User: "tina", Role: backend.RoleTA}
	f := &reasonContainers{}
	env.Deps.Containers = f
	if code := Run(env, []string{"stop", "--reason", "the exam needs the GPU", "alice/box"}); code != 0 {
		t.Fatalf("stop: exit %d: %s", code, errb.String())
	}
	if code := Run(env, []string{"rm", "-f", "--reason", "crashed for a day", "alice/old", "bob/x"}); code != 0 {
		t.Fatalf("rm: exit %d: %s", code, errb.String())
	}
	want := []string{"stop alice/box the exam needs the GPU", "rm alice/old true crashed for a day", "rm bob/x true crashed for a day"}
	if !slices.Equal(f.calls, want) {
		t.Errorf("calls %q, want %q", f.calls, want)
	}
	out.Reset()
	if code := Run(env, []string{"help", "stop"}); code != 0 || !strings.Contains(out.String(), "--reason") {
		t.Errorf("TA's help for stop: %q", out.String())
	}
	// A student's own stop needs no reason; the flag is not in their help.
	env = aliceEnv(&out, &errb)
	env.Deps.Containers = f
	out.Reset()
	if code := Run(env, []string{"help", "rm"}); code != 0 || strings.Contains(out.String(), "reason") {
		t.Errorf("student's help for rm: %q", out.String())
	}
}

func TestPsSaysStoppedOnPurpose(t *testing.T) {
	f := &fakeContainers{list: []docker.Container{
		{Name: "box", Owner: "alice", Image: "busybox", State: "exited", ExitCode: 143, Stopped: &docker.StopInfo{By: "tina"}},
		{Name: "crash", Owner: "alice", Image: "busybox", State: "exited", ExitCode: 143},
	}}
	var out, errb bytes.Buffer
	env := aliceEnv(&out, &errb)
	env.Deps.Containers = f
	if code := Run(env, []string{"ps", "-a"}); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(out.String(), "\n")
	if !strings.Contains(lines[1], "stopped") || strings.Contains(lines[1], "exited") || !strings.Contains(lines[2], "exited(143)") {
		t.Errorf("ps:\n%s", out.String())
	}
}
