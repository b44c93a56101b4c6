package docker_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/moby/moby/client"

	"whalemountain/backend/docker"
)

// TestAPICreateGoesTheOneWay: a container made through the Docker API is made as run makes
// one: the server's labels whatever the request says, hardened, its GPUs from the same
// allocator under the same quota; another user finds it by no name, ID or prefix.
func TestAPICreateGoesTheOneWay(t *testing.T) {
	r := newRig(t)
	images, err := docker.NewImageService(r.svc, docker.ImagePolicy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := docker.NewAPI(r.svc, images, docker.APIOptions{SpoolDir: t.TempDir()})
	one := []docker.GPUInfo{{Index: 0, UUID: "GPU-1111"}}
	r.svc.SetGPUs(docker.GPUInventoryFunc(func() []docker.GPUInfo { return one }))
	body := func(gpus int) []byte {
		b, _ := json.Marshal(map[string]any{
			"Image": r.img, "Cmd": []string{"sleep", "60"},
			"Labels":     map[string]string{docker.LabelOwner: "bob", docker.LabelGPUs: "GPU-forged", "course": "os"},
			"HostConfig": map[string]any{"DeviceRequests": []map[string]any{{"Count": gpus, "Capabilities": [][]string{{"gpu"}}}}},
		})
		return b
	}
	if _, err := api.CreateContainer(r.ctx, alice, "two", body(2)); err == nil || !errors.Is(err, docker.ErrQuota) {
		t.Fatalf("two GPUs for a student: %v, want the GPU quota", err)
	}
	out, err := api.CreateContainer(r.ctx, alice, "gpu", body(1))
	if err != nil {
		// An engine without the NVIDIA runtime may refuse the request at create.
		if !strings.Contains(err.Error(), "NVIDIA") {
			t.Fatalf("create with a GPU: %v", err)
		}
		t.Logf("the engine refused the GPU at create: %v", err)
		out, err = api.CreateContainer(r.ctx, alice, "gpu", body(0))
		if err != nil {
			t.Fatal(err)
		}
	} else if _, err := api.CreateContainer(r.ctx, alice, "more", body(1)); err == nil || !errors.Is(err, docker.ErrConflict) {
		t.Errorf("a second container on the one exclusive GPU: %v, want no free GPU", err)
	}
	var created struct{ ID string }
	if err := json.Unmarshal(out, &created); err != nil || created.ID == "" {
		t.Fatalf("create answered %s: %v", out, err)
	}
	ins, err := r.cli.ContainerInspect(r.ctx, created.ID, client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := ins.Container.Config.Labels
	if l[docker.LabelOwner] != "alice" || l[docker.LabelName] != "gpu" || l[docker.LabelKind] != docker.KindContainer ||
		l["course"] != "os" || l[docker.LabelGPUs] == "GPU-forged" {
		t.Errorf("labels %v: the server's, with the request's own kept", l)
	}
	if g := l[docker.LabelGPUs]; g != "" && g != "GPU-1111" {
		t.Errorf("GPUs %q, want the allocator's", g)
	}
	checkHardened(t, ins.Container)

	// bob: not by name, ID or prefix; his list is empty.
	for _, ref := range []string{"gpu", created.ID, created.ID[:4], created.ID[:12]} {
		if _, err := api.InspectContainer(r.ctx, bob, ref, false); !errors.Is(err, docker.ErrNotFound) ||
			err.Error() != "No such container: "+ref {
			t.Errorf("bob inspects %s: %v", ref, err)
		}
	}
	if js, err := api.ListContainers(r.ctx, bob, docker.APIListOptions{All: true}); err != nil || string(js) != "[]" {
		t.Errorf("bob's list: %s %v", js, err)
	}
	// alice: by her name, her ID prefix; no host paths, no engine names.
	js, err := api.InspectContainer(r.ctx, alice, created.ID[:5], false)
	if err != nil {
		t.Fatal(err)
	}
	var in struct{ Name string }
	_ = json.Unmarshal(js, &in)
	if in.Name != "/gpu" || strings.Contains(string(js), "/var/lib/docker") || strings.Contains(string(js), r.svc.Config().NamePrefix+"-") {
		t.Errorf("alice's inspect: %s", js)
	}
}
