package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"whalemountain/backend"
	"whalemountain/backend/gpu"
)

// fakeGPUs is a sampler that answers each identity with the view set for it (what
// gpu.Sampler.Snapshot would cut down for that user), and records who asked.
type fakeGPUs struct {
	views  map[backend.Identity]gpu.State
	ok     bool
	reason string
	asked  []backend.Identity
}

func (f *fakeGPUs) Snapshot(id backend.Identity) gpu.State {
	f.asked = append(f.asked, id)
	return f.views[id].Clone()
}
func (f *fakeGPUs) Available() (bool, string) { return f.ok, f.reason }

func p[T any](v T) *T { return &v }

const gib = int64(1) << 30

var (
	aliceProc = gpu.Process{PID: 100, MemUsed: p(26 * gib), Where: gpu.WhereContainer, ContainerID: strings.Repeat("a", 64), Owner: "alice", ContainerName: "jupyter"}
	bobProc   = gpu.Process{PID: 200, MemUsed: p(gib), Where: gpu.WhereContainer, ContainerID: strings.Repeat("b", 64), Owner: "bob", ContainerName: "train"}
	hostProc  = gpu.Process{PID: 400, MemUsed: p(int64(300 << 20)), Where: gpu.WhereHost}
	otherProc = gpu.Process{PID: 300, Where: gpu.WhereOtherContainer, ContainerID: strings.Repeat("c", 64)}
)

func a100(index, util int, used int64, procs ...gpu.Process) gpu.GPU {
	return gpu.GPU{Index: index, UUID: "GPU-x", Name: "NVIDIA A100-SXM4-40GB", Util: p(util), MemUsed: p(used), MemTotal: p(40 * gib),
		TempC: p(61), PowerW: p(231.4), Processes: procs, ProcessesKnown: true}
}

func TestGPULine(t *testing.T) {
	cases := []struct {
		name string
		g    gpu.GPU
		want string
	}{
		{"free", a100(1, 0, 0),
			"GPU 1  NVIDIA A100-SXM4-40GB  util 0%  mem 0 B/40 GiB  61°C  231 W  free"},
		{"own and others", a100(0, 72, 27*gib, aliceProc, bobProc),
			"GPU 0  NVIDIA A100-SXM4-40GB  util 72%  mem 27 GiB/40 GiB  61°C  231 W  alice/jupyter 26 GiB · bob/train 1.0 GiB"},
		{"hidden, host and unknown container", a100(2, 5, gib, gpu.Process{MemUsed: p(gib), Where: gpu.WhereHidden}, hostProc, otherProc),
			"GPU 2  NVIDIA A100-SXM4-40GB  util 5%  mem 1.0 GiB/40 GiB  61°C  231 W  in use by another user 1.0 GiB · host pid 400 300 MiB · other container cccccccccccc"},
		{"unknown readings", gpu.GPU{Index: 3},
			"GPU 3  –  util –  mem –  –  –  processes unknown"},
		{"escape sequences in names are neutralised", a100(4, 1, 0, gpu.Process{Where: gpu.WhereContainer, Owner: "eve", ContainerName: "x\x1b[2Jy"}),
			"GPU 4  NVIDIA A100-SXM4-40GB  util 1%  mem 0 B/40 GiB  61°C  231 W  eve/x\\x1b[2Jy"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := gpuLine(tc.g); got != tc.want {
				t.Errorf("gpuLine:\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestRenderGPUs(t *testing.T) {
	cases := []struct {
		name string
		st   gpu.State
		want string
	}{
		{"no driver", gpu.State{Reason: gpu.ReasonNoDriver},
			"no GPUs on this server: no NVIDIA driver (libnvidia-ml not found)\n"},
		{"available, nothing found", gpu.State{Available: true},
			"no GPUs on this server: none found\n"},
		{"two GPUs", gpu.State{Available: true, GPUs: []gpu.GPU{a100(0, 72, 27*gib, aliceProc), a100(1, 0, 0)}},
			"GPU 0  NVIDIA A100-SXM4-40GB  util 72%  mem 27 GiB/40 GiB  61°C  231 W  alice/jupyter 26 GiB\n" +
				"GPU 1  NVIDIA A100-SXM4-40GB  util 0%  mem 0 B/40 GiB  61°C  231 W  free\n"},
		{"TA summary", gpu.State{Available: true, GPUs: []gpu.GPU{a100(0, 72, 27*gib, aliceProc)},
			Users: []gpu.UserSummary{{User: "alice", GPUs: []int{0, 3}, MemUsed: 28 * gib, MeanUtil: p(15)}, {User: "bob", GPUs: []int{1}, MemUsed: gib}}},
			"GPU 0  NVIDIA A100-SXM4-40GB  util 72%  mem 27 GiB/40 GiB  61°C  231 W  alice/jupyter 26 GiB\n\n" +
				"alice  GPUs 0,3  mem 28 GiB  mean util 15%\n" +
				"bob  GPUs 1  mem 1.0 GiB  mean util –\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			renderGPUs(&b, tc.st)
			if b.String() != tc.want {
				t.Errorf("renderGPUs:\n got %q\nwant %q", b.String(), tc.want)
			}
		})
	}
}

func runGPUs(t *testing.T, id backend.Identity, src GPUs, args ...string) (string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	env := Env{Ctx: context.Background(), Identity: id, Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Prefix: "ssh -p 2222 gpu1"}
	c := gpusCmd(env, src)
	c.SetArgs(args)
	c.SetOut(&out)
	c.SetErr(&errb)
	if err := c.ExecuteContext(env.Ctx); err != nil {
		t.Fatalf("gpus %v: %v", args, err)
	}
	return out.String(), errb.String()
}

func TestGPUsCommandShowsTheCallersView(t *testing.T) {
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	ta := backend.Identity{User: "tanaka", Role: backend.RoleTA}
	hidden := func(mem int64) gpu.Process { return gpu.Process{MemUsed: p(mem), Where: gpu.WhereHidden} }
	src := &fakeGPUs{ok: true, views: map[backend.Identity]gpu.State{
		alice: {Available: true, GPUs: []gpu.GPU{a100(0, 72, 27*gib, aliceProc, hidden(gib), hidden(300<<20)), a100(1, 0, 0)}},
		ta: {Available: true, GPUs: []gpu.GPU{a100(0, 72, 27*gib, aliceProc, bobProc, hostProc), a100(1, 0, 0)},
			Users: []gpu.UserSummary{{User: "alice", GPUs: []int{0}, MemUsed: 26 * gib, MeanUtil: p(72)}, {User: "bob", GPUs: []int{0}, MemUsed: gib, MeanUtil: p(72)}}},
	}}

	out, _ := runGPUs(t, alice, src)
	if !strings.Contains(out, "alice/jupyter 26 GiB · in use by another user 1.0 GiB · in use by another user 300 MiB") ||
		strings.Contains(out, "bob") || strings.Contains(out, "pid 400") || !strings.Contains(out, "GPU 1  NVIDIA A100-SXM4-40GB  util 0%") {
		t.Errorf("student output:\n%s", out)
	}
	if len(src.asked) != 1 || src.asked[0] != alice {
		t.Errorf("the sampler was asked as %v, want only as %v", src.asked, alice)
	}

	src.asked = nil
	out, _ = runGPUs(t, ta, src)
	if !strings.Contains(out, "alice/jupyter 26 GiB · bob/train 1.0 GiB · host pid 400 300 MiB") ||
		!strings.Contains(out, "alice  GPUs 0  mem 26 GiB  mean util 72%") || !strings.Contains(out, "bob  GPUs 0  mem 1.0 GiB") {
		t.Errorf("TA output:\n%s", out)
	}
	if len(src.asked) != 1 || src.asked[0] != ta {
		t.Errorf("the sampler was asked as %v, want only as %v", src.asked, ta)
	}

	src.asked = nil
	out, _ = runGPUs(t, alice, src, "--json")
	var st gpu.State
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("JSON: %v\n%s", err, out)
	}
	if len(st.GPUs) != 2 || st.Users != nil || st.GPUs[0].Processes[1].Owner != "" || st.GPUs[0].Processes[1].PID != 0 ||
		st.GPUs[0].Processes[0].Owner != "alice" || strings.Contains(out, "bob") {
		t.Errorf("student JSON:\n%s", out)
	}
	if len(src.asked) != 1 || src.asked[0] != alice {
		t.Errorf("--json asked the sampler as %v, want only as %v", src.asked, alice)
	}
}

func TestGPUsCommandWithoutGPUs(t *testing.T) {
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	src := &fakeGPUs{ok: false, reason: gpu.ReasonNoDriver}
	out, errs := runGPUs(t, alice, src)
	if out != "no GPUs on this server: no NVIDIA driver (libnvidia-ml not found)\n" || errs != "" {
		t.Errorf("out %q err %q", out, errs)
	}
	if len(src.asked) != 0 {
		t.Error("Snapshot read although the sampler is unavailable")
	}
	out, _ = runGPUs(t, alice, nil)
	if out != "no GPUs on this server: GPU monitoring is off\n" {
		t.Errorf("nil sampler: %q", out)
	}
	out, _ = runGPUs(t, alice, src, "--json")
	var st gpu.State
	if err := json.Unmarshal([]byte(out), &st); err != nil || st.Available || st.Reason != gpu.ReasonNoDriver || st.GPUs == nil {
		t.Errorf("JSON %q: %v", out, err)
	}
}
