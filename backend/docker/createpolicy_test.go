package docker

import (
	"errors"
	"reflect"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"

	"whalemountain/backend"
)

func TestPlanRun(t *testing.T) {
	cfg := DefaultConfig()
	twoGPUs := []GPUInfo{{Index: 0, UUID: "GPU-a"}, {Index: 1, UUID: "GPU-b"}}
	cases := []struct {
		name    string
		spec    RunSpec
		role    backend.Role
		gpus    []GPUInfo
		want    runPlan
		wantErr error
		msg     string
	}{
		{name: "defaults filled in", spec: RunSpec{Image: "alpine"},
			want: runPlan{image: "alpine", cpus: 1, mem: 2 * gib}},
		{name: "typed limits kept", spec: RunSpec{Image: "alpine:3.20", CPUs: 0.5, Memory: 64 * mib},
			want: runPlan{image: "alpine:3.20", cpus: 0.5, mem: 64 * mib}},
		{name: "TA quota", spec: RunSpec{Image: "alpine", CPUs: 8}, role: backend.RoleTA,
			want: runPlan{image: "alpine", cpus: 8, mem: 2 * gib}},
		{name: "bad name", spec: RunSpec{Name: "Bad Name", Image: "alpine"}, wantErr: ErrInvalid},
		{name: "bad image", spec: RunSpec{Image: "UPPER"}, wantErr: ErrInvalid},
		{name: "bad env", spec: RunSpec{Image: "alpine", Env: []string{"=x"}}, wantErr: ErrInvalid},
		{name: "negative CPUs", spec: RunSpec{Image: "alpine", CPUs: -1}, wantErr: ErrInvalid,
			msg: "invalid CPU limit -1: use a positive number such as 0.5 or 2"},
		{name: "too little memory", spec: RunSpec{Image: "alpine", Memory: 1024}, wantErr: ErrInvalid,
			msg: "invalid memory limit 1024 bytes: at least 6 MiB"},
		{name: "over the CPU quota", spec: RunSpec{Image: "alpine", CPUs: 3}, wantErr: ErrQuota,
			msg: "quota: at most 2 CPUs per container for students (asked 3)"},
		{name: "over the memory quota", spec: RunSpec{Image: "alpine", Memory: 5 * gib}, wantErr: ErrQuota,
			msg: "quota: at most 4.0 GiB memory per container for students (asked 5.0 GiB)"},
		{name: "GPUs on a server without", spec: RunSpec{Image: "alpine", GPUs: "1"}, wantErr: ErrUnsupported,
			msg: "this server has no GPUs"},
		{name: "over the GPU quota", spec: RunSpec{Image: "alpine", GPUs: "2"}, gpus: twoGPUs, wantErr: ErrQuota,
			msg: "quota: at most 1 GPU per container for students"},
		{name: "bad GPU syntax", spec: RunSpec{Image: "alpine", GPUs: "x"}, gpus: twoGPUs, wantErr: ErrInvalid},
		{name: "a GPU by count", spec: RunSpec{Image: "alpine", GPUs: "1"}, gpus: twoGPUs,
			want: runPlan{image: "alpine", cpus: 1, mem: 2 * gib, gpuAsk: gpuAsk{gpuCount: 1, nGPUs: 1, inv: twoGPUs}}},
		{name: "GPUs by index", spec: RunSpec{Image: "alpine", GPUs: "0,1"}, role: backend.RoleTA, gpus: twoGPUs,
			want: runPlan{image: "alpine", cpus: 1, mem: 2 * gib, gpuAsk: gpuAsk{gpuIndices: []int{0, 1}, nGPUs: 2, inv: twoGPUs}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			asked := false
			inv := func() []GPUInfo { asked = true; return c.gpus }
			got, err := planRun(&c.spec, &cfg, c.role, inv)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) || c.msg != "" && err.Error() != c.msg {
					t.Fatalf("planRun = %v, want %v %q", err, c.wantErr, c.msg)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Errorf("planRun = %+v, want %+v", got, c.want)
			}
			if asked != (c.spec.GPUs != "") {
				t.Errorf("GPU inventory asked = %v for --gpus %q", asked, c.spec.GPUs)
			}
		})
	}
}

func TestRunCommand(t *testing.T) {
	cases := []struct {
		name              string
		typed             []string
		known             bool
		entrypoint, image []string
		want              []string
	}{
		{"typed wins", []string{"python", "app.py"}, true, nil, []string{"sh"}, []string{"python", "app.py"}},
		{"image shell kept alive", nil, true, nil, []string{"/bin/sh"}, keepAlive},
		{"image login shell kept alive", nil, true, nil, []string{"bash", "-l"}, keepAlive},
		{"no image command kept alive", nil, true, nil, nil, keepAlive},
		{"image's own program", nil, true, nil, []string{"nginx", "-g", "daemon off;"}, nil},
		{"image entrypoint", nil, true, []string{"/entry"}, []string{"sh"}, nil},
		{"image config unknown", nil, false, nil, nil, nil},
	}
	for _, c := range cases {
		if got := runCommand(c.typed, c.known, c.entrypoint, c.image); !reflect.DeepEqual(got, c.want) {
			t.Errorf("%s: runCommand = %q, want %q", c.name, got, c.want)
		}
	}
}

func TestRunEnv(t *testing.T) {
	cases := []struct {
		typed, want []string
	}{
		{nil, []string{"HOME=/home/alice"}},
		{[]string{"A=1"}, []string{"A=1", "HOME=/home/alice"}},
		{[]string{"HOME=/work", "A=1"}, []string{"HOME=/work", "A=1"}},
		{[]string{"HOMEDIR=/x"}, []string{"HOMEDIR=/x", "HOME=/home/alice"}},
	}
	for _, c := range cases {
		typed := append([]string(nil), c.typed...)
		if got := runEnv(typed, "/home/alice"); !reflect.DeepEqual(got, c.want) {
			t.Errorf("runEnv(%q) = %q, want %q", c.typed, got, c.want)
		}
		if !reflect.DeepEqual(typed, append([]string(nil), c.typed...)) {
			t.Errorf("runEnv changed its input %q", c.typed)
		}
	}
}

func TestRunOptions(t *testing.T) {
	home := mount.Mount{Type: mount.TypeVolume, Source: "wm-home-alice", Target: "/home/alice"}
	got := runOptions("box", "alpine:latest", []string{"sh"}, []string{"HOME=/home/alice"}, home, "net123", "wm-net-alice")
	want := &container.Config{Hostname: "box", Image: "alpine:latest", Cmd: []string{"sh"}, Env: []string{"HOME=/home/alice"},
		WorkingDir: "/home/alice", Tty: true, OpenStdin: true, AttachStdin: true, AttachStdout: true, AttachStderr: true}
	if !reflect.DeepEqual(got.Config, want) {
		t.Errorf("Config = %+v, want %+v", got.Config, want)
	}
	if got.HostConfig.NetworkMode != "net123" || !reflect.DeepEqual(got.HostConfig.Mounts, []mount.Mount{home}) {
		t.Errorf("HostConfig = network %q mounts %+v", got.HostConfig.NetworkMode, got.HostConfig.Mounts)
	}
	wantNet := map[string]*network.EndpointSettings{"wm-net-alice": {NetworkID: "net123", Aliases: []string{"box"}}}
	if !reflect.DeepEqual(got.NetworkingConfig.EndpointsConfig, wantNet) {
		t.Errorf("EndpointsConfig = %+v", got.NetworkingConfig.EndpointsConfig)
	}
	if got.HostConfig.Privileged || len(got.Config.Labels) != 0 {
		t.Error("run options carry privileges or labels: those are createContainer's to set")
	}
}
