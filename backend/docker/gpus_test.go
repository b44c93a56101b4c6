package docker_test

import (
	"context"
	"errors"
	"maps"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

func TestParseGPUs(t *testing.T) {
	const syntax = "--gpus must be a count or a list of GPU indices like 0,2"
	for _, tc := range []struct {
		in      string
		count   int
		indices []int
		err     bool
	}{
		{in: ""},
		{in: "1", count: 1},
		{in: " 3 ", count: 3},
		{in: "0,2", indices: []int{0, 2}},
		{in: "2,0", indices: []int{2, 0}},
		{in: "1,", err: true},
		{in: ",1", err: true},
		{in: "0", err: true},
		{in: "-1", err: true},
		{in: "all", err: true},
		{in: "1.5", err: true},
		{in: "0,0", err: true},
		{in: "0,,2", err: true},
		{in: "0;2", err: true},
		{in: "1e3", err: true},
		{in: "99999", err: true},
		{in: "+1", err: true},
	} {
		count, indices, err := docker.ParseGPUs(tc.in)
		if tc.err {
			if err == nil || err.Error() != syntax || !errors.Is(err, docker.ErrInvalid) {
				t.Errorf("ParseGPUs(%q) error = %v, want %q (ErrInvalid)", tc.in, err, syntax)
			}
			continue
		}
		if err != nil || count != tc.count || !slices.Equal(indices, tc.indices) {
			t.Errorf("ParseGPUs(%q) = %d, %v, %v; want %d, %v", tc.in, count, indices, err, tc.count, tc.indices)
		}
	}
}

var fourGPUs = []docker.GPUInfo{
	{Index: 0, UUID: "GPU-a", Util: 50, UsedMemory: 1 << 30},
	{Index: 1, UUID: "GPU-b", Util: 0, UsedMemory: 2 << 30},
	{Index: 2, UUID: "GPU-c", Util: 0, UsedMemory: 1 << 30},
	{Index: 3, UUID: "GPU-d", Util: 90, UsedMemory: 0},
}

func TestChooseGPUs(t *testing.T) {
	for _, tc := range []struct {
		name    string
		taken   []string
		count   int
		indices []int
		policy  string
		want    []int // indices chosen
		err     string
	}{
		{name: "least used first", count: 1, policy: docker.GPUExclusive, want: []int{2}},
		{name: "then by memory", count: 2, policy: docker.GPUExclusive, want: []int{2, 1}},
		{name: "all four", count: 4, policy: docker.GPUExclusive, want: []int{2, 1, 0, 3}},
		{name: "taken skipped", taken: []string{"GPU-c"}, count: 2, policy: docker.GPUExclusive, want: []int{1, 0}},
		{name: "empty policy is exclusive", taken: []string{"GPU-c", "GPU-b"}, count: 1, want: []int{0}},
		{name: "not enough free", taken: []string{"GPU-a", "GPU-b"}, count: 3, policy: docker.GPUExclusive,
			err: "not enough free GPUs: asked 3, 2 free"},
		{name: "shared gives taken ones", taken: []string{"GPU-c", "GPU-b"}, count: 2, policy: docker.GPUShared, want: []int{2, 1}},
		{name: "explicit free", taken: []string{"GPU-b"}, indices: []int{3, 0}, policy: docker.GPUExclusive, want: []int{3, 0}},
		{name: "explicit taken", taken: []string{"GPU-c"}, indices: []int{0, 2}, policy: docker.GPUExclusive,
			err: "GPU 2 is in use by another container"},
		{name: "explicit taken shared", taken: []string{"GPU-c"}, indices: []int{0, 2}, policy: docker.GPUShared, want: []int{0, 2}},
		{name: "explicit unknown", indices: []int{0, 7}, policy: docker.GPUExclusive, err: "this server has no GPU 7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			taken := map[string]bool{}
			for _, u := range tc.taken {
				taken[u] = true
			}
			got, err := docker.ChooseGPUs(fourGPUs, taken, tc.count, tc.indices, tc.policy)
			if tc.err != "" {
				if err == nil || err.Error() != tc.err {
					t.Fatalf("error = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var idx []int
			for _, g := range got {
				idx = append(idx, g.Index)
			}
			if !slices.Equal(idx, tc.want) {
				t.Fatalf("chose %v, want %v", idx, tc.want)
			}
		})
	}
}

func TestGPUConfigValidate(t *testing.T) {
	c := docker.DefaultConfig()
	if c.GPUPolicy != docker.GPUExclusive || c.Student.MaxGPUs != 1 || c.TA.MaxGPUs != 4 {
		t.Fatalf("defaults: policy %q, student %d, TA %d", c.GPUPolicy, c.Student.MaxGPUs, c.TA.MaxGPUs)
	}
	c.GPUPolicy = "greedy"
	if err := c.Validate(); err == nil {
		t.Fatal("GPUPolicy greedy accepted")
	}
	c = docker.DefaultConfig()
	c.Student.MaxGPUs = -1
	if err := c.Validate(); err == nil {
		t.Fatal("negative MaxGPUs accepted")
	}
}

// TestGPURefusedBeforeEngine: a Service that never reached an engine refuses bad GPU
// requests by itself.
func TestGPURefusedBeforeEngine(t *testing.T) {
	cfg := docker.DefaultConfig()
	cfg.Host = "unix:///nonexistent/docker.sock"
	svc, err := docker.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	run := func(id backend.Identity, gpus string) error {
		_, err := svc.Run(t.Context(), id, docker.RunSpec{Image: "busybox:latest", GPUs: gpus})
		return err
	}
	if err := run(alice, "1"); err == nil || err.Error() != "this server has no GPUs" {
		t.Fatalf("no inventory: %v", err)
	}
	svc.SetGPUs(docker.GPUInventoryFunc(func() []docker.GPUInfo { return nil }))
	if err := run(alice, "0,1"); err == nil || err.Error() != "this server has no GPUs" {
		t.Fatalf("empty inventory: %v", err)
	}
	svc.SetGPUs(docker.GPUInventoryFunc(func() []docker.GPUInfo { return fourGPUs }))
	for _, tc := range []struct {
		id   backend.Identity
		gpus string
		want string
		kind error
	}{
		{alice, "2", "quota: at most 1 GPU per container for students", docker.ErrQuota},
		{alice, "0,1", "quota: at most 1 GPU per container for students", docker.ErrQuota},
		{tina, "5", "quota: at most 4 GPUs per container for TAs", docker.ErrQuota},
		{alice, "x", "--gpus must be a count or a list of GPU indices like 0,2", docker.ErrInvalid},
	} {
		err := run(tc.id, tc.gpus)
		if err == nil || err.Error() != tc.want || !errors.Is(err, tc.kind) {
			t.Errorf("%s --gpus %s: %v, want %q", tc.id.User, tc.gpus, err, tc.want)
		}
	}
}

// TestGPURunOnEngineWithoutNvidia runs against the real engine, which has no NVIDIA runtime.
func TestGPURunOnEngineWithoutNvidia(t *testing.T) {
	// The engine is reached through a proxy that inspects every container just before the
	// engine is asked to start it, so a container the engine accepts and then cannot start
	// (Docker 20.10 checks device drivers only at start) can still be looked at.
	real := dockertest.Client(t)
	host := real.DaemonHost()
	if !strings.HasPrefix(host, "unix://") {
		t.Skipf("the proxy needs a unix socket engine, not %s", host)
	}
	var mu sync.Mutex
	var beforeStart []container.InspectResponse
	startRE := regexp.MustCompile(`^/v[0-9.]+/containers/([0-9a-f]+)/start$`)
	proxy := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(&url.URL{Scheme: "http", Host: "docker"})
			pr.Out.Host = "docker"
		},
		FlushInterval: -1,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", strings.TrimPrefix(host, "unix://"))
		}},
	}
	sock := filepath.Join(t.TempDir(), "docker.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if m := startRE.FindStringSubmatch(req.URL.Path); m != nil && req.Method == http.MethodPost {
			if ins, err := real.ContainerInspect(req.Context(), m[1], client.ContainerInspectOptions{}); err == nil {
				mu.Lock()
				beforeStart = append(beforeStart, ins.Container)
				mu.Unlock()
			}
		}
		proxy.ServeHTTP(w, req)
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	r := newRig(t, func(c *docker.Config) { c.Host = "unix://" + sock })
	two := []docker.GPUInfo{{Index: 0, UUID: "GPU-1111", Util: 30}, {Index: 1, UUID: "GPU-2222", Util: 10}}
	r.svc.SetGPUs(docker.GPUInventoryFunc(func() []docker.GPUInfo { return two }))

	_, err = r.svc.Run(r.ctx, alice, docker.RunSpec{Image: r.img, Name: "gpu", GPUs: "1"})
	if err == nil || err.Error() != "this server has no NVIDIA container runtime" || !errors.Is(err, docker.ErrUnsupported) {
		t.Fatalf("run --gpus 1: %v", err)
	}
	if n, _, _ := r.count(); n != 0 {
		t.Fatalf("%d containers left behind", n)
	}
	// Either the engine refused the create (newer engines) and nothing was started, or it
	// created the container and refused the start: then the request was exactly this.
	mu.Lock()
	seen := slices.Clone(beforeStart)
	mu.Unlock()
	switch len(seen) {
	case 0:
		t.Log("the engine refused the GPU request at create")
	case 1:
		t.Log("the engine accepted the create and refused the start")
		ins := seen[0]
		want := []container.DeviceRequest{{Driver: "nvidia", DeviceIDs: []string{"GPU-2222"}, Capabilities: [][]string{{"gpu"}}}}
		got := ins.HostConfig.DeviceRequests
		if len(got) != 1 || got[0].Driver != want[0].Driver || got[0].Count != 0 ||
			!slices.Equal(got[0].DeviceIDs, want[0].DeviceIDs) || len(got[0].Capabilities) != 1 ||
			!slices.Equal(got[0].Capabilities[0], want[0].Capabilities[0]) {
			t.Fatalf("device requests %+v, want %+v", got, want)
		}
		if l := ins.Config.Labels[docker.LabelGPUs]; l != "GPU-2222" {
			t.Fatalf("label %s = %q, want GPU-2222 (the less used GPU)", docker.LabelGPUs, l)
		}
		if l := ins.Config.Labels[docker.LabelGPUIndices]; l != "1" {
			t.Fatalf("label %s = %q, want 1", docker.LabelGPUIndices, l)
		}
	default:
		t.Fatalf("%d starts for one run", len(seen))
	}
	if _, err := r.svc.Run(r.ctx, tina, docker.RunSpec{Image: r.img, Name: "gpu2", GPUs: "0,1"}); err == nil ||
		err.Error() != "this server has no NVIDIA container runtime" {
		t.Fatalf("run --gpus 0,1: %v", err)
	}

	// A running managed container holding GPU 1 makes it taken for everybody.
	cfg := r.svc.Config()
	labels := map[string]string{"whalemountain.managed": "true", docker.LabelKind: docker.KindContainer, docker.LabelOwner: "bob", docker.LabelName: "holder",
		docker.LabelGPUs: "GPU-2222"}
	for k, v := range cfg.Labels {
		labels[k] = v
	}
	created, err := r.cli.ContainerCreate(r.ctx, client.ContainerCreateOptions{
		Name:   cfg.NamePrefix + "-bob-holder",
		Config: &container.Config{Image: r.img, Cmd: []string{"sleep", "600"}, Labels: labels},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = r.cli.ContainerRemove(t.Context(), created.ID, client.ContainerRemoveOptions{Force: true})
	})
	if _, err := r.cli.ContainerStart(r.ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Run(r.ctx, alice, docker.RunSpec{Image: r.img, GPUs: "0,1"}); err == nil ||
		err.Error() != "quota: at most 1 GPU per container for students" {
		t.Fatalf("quota before taken: %v", err)
	}
	if _, err := r.svc.Run(r.ctx, tina, docker.RunSpec{Image: r.img, GPUs: "1,0"}); err == nil ||
		err.Error() != "GPU 1 is in use by another container" {
		t.Fatalf("explicit taken: %v", err)
	}
	if _, err := r.svc.Run(r.ctx, tina, docker.RunSpec{Image: r.img, GPUs: "2"}); err == nil ||
		err.Error() != "not enough free GPUs: asked 2, 1 free" {
		t.Fatalf("count over free: %v", err)
	}
	// Once it stops, the GPU is free again.
	if _, err := r.cli.ContainerKill(r.ctx, created.ID, client.ContainerKillOptions{}); err != nil {
		t.Fatal(err)
	}
	r.wait(docker.Container{ID: created.ID, Name: "holder"})
	if _, err := r.svc.Run(r.ctx, tina, docker.RunSpec{Image: r.img, GPUs: "1,0"}); err == nil ||
		err.Error() != "this server has no NVIDIA container runtime" {
		t.Fatalf("after stop: %v", err)
	}
	if n, _, _ := r.count(); n != 1 {
		t.Fatalf("%d containers, want only the stopped holder", n)
	}
	func() {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) != 1 { // the engine refused the create: no start was seen
			return
		}
		// The engine creates before it refuses: every run was seen.
		if len(beforeStart) != 3 {
			t.Fatalf("%d starts, want 3", len(beforeStart))
		}
		for i, want := range []string{"GPU-1111,GPU-2222", "GPU-2222,GPU-1111"} {
			ins := beforeStart[i+1]
			if l := ins.Config.Labels[docker.LabelGPUs]; l != want {
				t.Errorf("run %d: label %q, want %q (in the order asked)", i+2, l, want)
			}
			if l, wantIdx := ins.Config.Labels[docker.LabelGPUIndices], []string{"0,1", "1,0"}[i]; l != wantIdx {
				t.Errorf("run %d: indices label %q, want %q", i+2, l, wantIdx)
			}
			if ids := ins.HostConfig.DeviceRequests[0].DeviceIDs; strings.Join(ids, ",") != want {
				t.Errorf("run %d: device IDs %v, want %s", i+2, ids, want)
			}
		}
	}()

	// Starting the stopped holder again while another container holds its GPU is refused
	// under the exclusive policy; once that one is gone, it starts.
	otherLabels := maps.Clone(labels)
	otherLabels[docker.LabelName] = "other"
	other, err := r.cli.ContainerCreate(r.ctx, client.ContainerCreateOptions{
		Name:   cfg.NamePrefix + "-bob-other",
		Config: &container.Config{Image: r.img, Cmd: []string{"sleep", "600"}, Labels: otherLabels},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = r.cli.ContainerRemove(t.Context(), other.ID, client.ContainerRemoveOptions{Force: true})
	})
	if _, err := r.cli.ContainerStart(r.ctx, other.ID, client.ContainerStartOptions{}); err != nil {
		t.Fatal(err)
	}
	bob := backend.Identity{User: "bob", Role: backend.RoleStudent}
	if err := r.svc.Start(r.ctx, bob, "holder"); err == nil ||
		err.Error() != "GPU GPU-2222 of holder is in use by another container; remove holder and run a new one" {
		t.Fatalf("start while its GPU is held: %v", err)
	}
	if _, err := r.cli.ContainerRemove(r.ctx, other.ID, client.ContainerRemoveOptions{Force: true}); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Start(r.ctx, bob, "holder"); err != nil {
		t.Fatalf("start once the GPU is free: %v", err)
	}
}
