package docker

import (
	"cmp"
	"context"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"
)

// LabelGPUs records on a container the GPUs allocated to it: comma-separated UUIDs.
const LabelGPUs = "whalemountain.gpus"

// LabelGPUIndices records the same GPUs by their index at allocation ("0,2"), for display;
// the UUIDs are what counts.
const LabelGPUIndices = "whalemountain.gpu-indices"

// gpusShown is a container's GPUs as users read them: "0,2" by index, or "2 GPUs" for a
// container labelled with UUIDs only; "" for none.
func gpusShown(labels map[string]string) string {
	if v := labels[LabelGPUIndices]; v != "" {
		return v
	}
	v := labels[LabelGPUs]
	if v == "" {
		return ""
	}
	n := strings.Count(v, ",") + 1
	if n == 1 {
		return "1 GPU"
	}
	return strconv.Itoa(n) + " GPUs"
}

// GPU policies (Config.GPUPolicy).
const (
	GPUExclusive = "exclusive" // a GPU belongs to at most one running container
	GPUShared    = "shared"    // any number of containers may be given the same GPU
)

// GPUInfo is one GPU of the server as the allocation sees it.
type GPUInfo struct {
	Index      int
	UUID       string
	UsedMemory uint64 // bytes
	Util       uint32 // percent
}

// GPUInventory tells which GPUs the server has and how busy they are.
type GPUInventory interface {
	GPUs() []GPUInfo
}

// GPUInventoryFunc adapts a function to GPUInventory.
type GPUInventoryFunc func() []GPUInfo

// GPUs calls f.
func (f GPUInventoryFunc) GPUs() []GPUInfo { return f() }

// SetGPUs sets where the Service learns the server's GPUs; nil (the default) means none.
func (s *Service) SetGPUs(inv GPUInventory) {
	s.gpuMu.Lock()
	defer s.gpuMu.Unlock()
	s.gpuInv = inv
}

func (s *Service) gpuInventory() []GPUInfo {
	s.gpuMu.Lock()
	inv := s.gpuInv
	s.gpuMu.Unlock()
	if inv == nil {
		return nil
	}
	return inv.GPUs()
}

const gpuSyntax = "--gpus must be a count or a list of GPU indices like 0,2"

// ParseGPUs reads what a user typed for --gpus: "" (none), "N" (any N GPUs, at least 1) or
// "0,2" (those GPU indices, no repeats). Exactly one of count and indices is set, or neither.
func ParseGPUs(s string) (count int, indices []int, err error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil, nil
	}
	bad := errorf(ErrInvalid, gpuSyntax)
	if len(s) > 64 {
		return 0, nil, bad
	}
	num := func(p string) (int, bool) {
		if p == "" || len(p) > 3 || strings.TrimLeft(p, "0123456789") != "" {
			return 0, false
		}
		n, err := strconv.Atoi(p)
		return n, err == nil
	}
	if !strings.Contains(s, ",") {
		n, ok := num(s)
		if !ok || n < 1 {
			return 0, nil, bad
		}
		return n, nil, nil
	}
	for p := range strings.SplitSeq(s, ",") {
		n, ok := num(strings.TrimSpace(p))
		if !ok || slices.Contains(indices, n) {
			return 0, nil, bad
		}
		indices = append(indices, n)
	}
	return 0, indices, nil
}

// ChooseGPUs picks GPUs among inv: the given indices, or else the count least used (by
// utilisation, then memory used, then index). taken are the UUIDs already allocated to
// running containers; under GPUExclusive they are not given out again, under GPUShared
// they are.
func ChooseGPUs(inv []GPUInfo, taken map[string]bool, count int, indices []int, policy string) ([]GPUInfo, error) {
	exclusive := policy != GPUShared
	busy := func(g GPUInfo) bool { return exclusive && taken[g.UUID] }
	if len(indices) > 0 {
		out := make([]GPUInfo, 0, len(indices))
		for _, i := range indices {
			k := slices.IndexFunc(inv, func(g GPUInfo) bool { return g.Index == i })
			if k < 0 {
				return nil, errorf(ErrInvalid, "this server has no GPU %d", i)
			}
			if busy(inv[k]) {
				return nil, errorf(ErrConflict, "GPU %d is in use by another container", i)
			}
			out = append(out, inv[k])
		}
		return out, nil
	}
	free := slices.DeleteFunc(slices.Clone(inv), busy)
	slices.SortStableFunc(free, func(a, b GPUInfo) int {
		return cmp.Or(cmp.Compare(a.Util, b.Util), cmp.Compare(a.UsedMemory, b.UsedMemory), cmp.Compare(a.Index, b.Index))
	})
	if len(free) < count {
		return nil, errorf(ErrConflict, "not enough free GPUs: asked %d, %d free", count, len(free))
	}
	return free[:count], nil
}

// checkGPURequest refuses, before anything is created, n GPUs on a server without GPUs or
// over the role's quota.
func checkGPURequest(n int, inv []GPUInfo, q Quota, role string) error {
	if n == 0 {
		return nil
	}
	if len(inv) == 0 {
		return errorf(ErrUnsupported, "this server has no GPUs")
	}
	if n > q.MaxGPUs {
		plural := "s"
		if q.MaxGPUs == 1 {
			plural = ""
		}
		return errorf(ErrQuota, "quota: at most %d GPU%s per container for %s", q.MaxGPUs, plural, role)
	}
	return nil
}

// takenGPUs lists the UUIDs held by every managed container that is (or is about to be) running.
func (s *Service) takenGPUs(ctx context.Context) (map[string]bool, error) {
	res, err := s.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: s.containerFilters("")})
	if err != nil {
		return nil, engineErr("list containers with GPUs", err)
	}
	taken := map[string]bool{}
	for _, c := range res.Items {
		if !s.isUserContainer(c.Labels, c.Labels[LabelOwner]) {
			continue
		}
		switch c.State {
		case container.StateRunning, container.StateRestarting, container.StatePaused, container.StateCreated:
		default:
			continue
		}
		for u := range strings.SplitSeq(c.Labels[LabelGPUs], ",") {
			if u = strings.TrimSpace(u); u != "" {
				taken[u] = true
			}
		}
	}
	return taken, nil
}

// gpuDeviceRequest asks the engine for exactly these GPUs, by UUID.
func gpuDeviceRequest(gs []GPUInfo) (container.DeviceRequest, string) {
	ids := make([]string, len(gs))
	for i, g := range gs {
		ids[i] = g.UUID
	}
	return container.DeviceRequest{Driver: "nvidia", DeviceIDs: ids, Capabilities: [][]string{{"gpu"}}}, strings.Join(ids, ",")
}

// indicesLabel is the value of LabelGPUIndices for gs.
func indicesLabel(gs []GPUInfo) string {
	idx := make([]string, len(gs))
	for i, g := range gs {
		idx[i] = strconv.Itoa(g.Index)
	}
	return strings.Join(idx, ",")
}

// noNvidiaRuntime maps the engine's refusal of GPU requests to one line for the user.
func noNvidiaRuntime(err error) error {
	if err != nil && strings.Contains(err.Error(), `could not select device driver "nvidia"`) {
		return errorf(ErrUnsupported, "this server has no NVIDIA container runtime")
	}
	return nil
}
