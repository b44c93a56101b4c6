package pods

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/kube"
	"whalemountain/tui/dashboard"
)

var (
	alice = backend.Identity{User: "alice", Role: backend.RoleStudent}
	tina  = backend.Identity{User: "tina", Role: backend.RoleTA}
	now   = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
)

// fakePods is a cluster in memory: a snapshot, a health, and a record of the calls.
type fakePods struct {
	mu      sync.Mutex
	pods    []kube.Pod
	health  kube.Health
	removed []string
	logs    string
	runs    []kube.RunSpec
}

func (f *fakePods) Snapshot(id backend.Identity, opts kube.ListOptions) ([]kube.Pod, kube.Health) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []kube.Pod
	for _, p := range f.pods {
		if p.Owner == id.User || id.IsTA() && opts.AllUsers {
			out = append(out, p)
		}
	}
	return out, f.health
}

func (f *fakePods) SubscribeFor(backend.Identity, kube.ListOptions) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

func (f *fakePods) Config() kube.Config { return kube.DefaultConfig() }

func (f *fakePods) Run(_ context.Context, id backend.Identity, spec kube.RunSpec) (kube.Pod, error) {
	f.mu.Lock()
	f.runs = append(f.runs, spec)
	f.mu.Unlock()
	if err := kube.ValidateName(spec.Name); err != nil {
		return kube.Pod{}, err
	}
	return kube.Pod{Name: spec.Name, Owner: id.User}, nil
}

func (f *fakePods) Remove(_ context.Context, _ backend.Identity, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, ref)
	return nil
}

func (f *fakePods) Logs(context.Context, backend.Identity, string, kube.LogOptions) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader(f.logs)), nil
}

func (f *fakePods) Inspect(_ context.Context, _ backend.Identity, ref string) (kube.Details, error) {
	for _, p := range f.pods {
		if p.Ref() == ref {
			return kube.Details{Pod: p, Home: "/home/alice", Ports: []int32{8888}, Data: []string{"/datasets/imagenet (read-only)", "/groups/os/team-a"},
				Events: []kube.Event{{Reason: "FailedScheduling", Message: "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", Count: 3, Last: now.Add(-time.Minute)}}}, nil
		}
	}
	return kube.Details{}, errors.New("no such pod")
}

func (f *fakePods) Exec(context.Context, backend.Identity, string, backend.ExecSpec) (backend.Execution, error) {
	return nil, errors.New("not in the fake")
}

func cluster() *fakePods {
	return &fakePods{health: kube.Health{OK: true}, pods: []kube.Pod{
		{Name: "lab", Owner: "alice", Namespace: "wm-alice-1234abcd", Image: "python:3.12", Phase: "Running", Status: "Running",
			Ready: true, Node: "kwok-node-0", Created: now.Add(-2 * time.Hour), CPUs: 1, Memory: 2 << 30},
		{Name: "train", Owner: "alice", Namespace: "wm-alice-1234abcd", Image: "registry.example/alice/cuda-train:12.4", Phase: "Pending",
			Status: "Pending", Reason: "0/2 nodes are available: 2 Insufficient nvidia.com/gpu.", GPUs: 2, Created: now.Add(-5 * time.Minute)},
		{Name: "web", Owner: "bob", Namespace: "wm-bob-5678abcd", Image: "nginx", Phase: "Running", Status: "Running",
			Ready: true, Node: "kwok-node-1", Created: now.Add(-24 * time.Hour)},
	}}
}

// press feeds a key to the tab and runs what it returns that finishes by itself (not the
// waits for changes): the messages go back to the tab, status lines are returned.
func press(t *testing.T, tab *Tab, keys ...string) []dashboard.StatusMsg {
	t.Helper()
	var status []dashboard.StatusMsg
	for _, k := range keys {
		msg := tea.KeyPressMsg{Code: []rune(k)[0], Text: k}
		switch k {
		case "enter":
			msg = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "esc":
			msg = tea.KeyPressMsg{Code: tea.KeyEscape}
		case "tab":
			msg = tea.KeyPressMsg{Code: tea.KeyTab}
		case "right":
			msg = tea.KeyPressMsg{Code: tea.KeyRight}
		case "left":
			msg = tea.KeyPressMsg{Code: tea.KeyLeft}
		}
		_, cmd := tab.Update(msg)
		status = append(status, settle(t, tab, cmd)...)
	}
	return status
}

func settle(t *testing.T, tab *Tab, cmd tea.Cmd) []dashboard.StatusMsg {
	if cmd == nil {
		return nil
	}
	ch := make(chan tea.Msg, 1)
	go func() { ch <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-ch:
	case <-time.After(500 * time.Millisecond):
		return nil // a wait for something that does not happen here
	}
	switch m := msg.(type) {
	case nil:
		return nil
	case dashboard.StatusMsg:
		return []dashboard.StatusMsg{m}
	case tea.BatchMsg:
		var out []dashboard.StatusMsg
		for _, c := range m {
			out = append(out, settle(t, tab, c)...)
		}
		return out
	}
	_, next := tab.Update(msg)
	return settle(t, tab, next)
}

func screen(tab *Tab, w, h int) string { return ansi.Strip(tab.View(w, h)) }

func fits(t *testing.T, view string, w, h int) {
	t.Helper()
	lines := strings.Split(view, "\n")
	if len(lines) > h {
		t.Errorf("%d lines, more than %d:\n%s", len(lines), h, ansi.Strip(view))
	}
	for _, l := range lines {
		if ansi.StringWidth(l) > w {
			t.Errorf("line of %d cells, more than %d: %q", ansi.StringWidth(l), w, ansi.Strip(l))
		}
	}
}

func TestTableDetailsAndShell(t *testing.T) {
	f := cluster()
	tab := New(f, alice, dashboard.DefaultStyles(), func() time.Time { return now }, "ssh -p 2222 gpu1")
	defer tab.Close()
	settle(t, tab, tab.Init())
	view := tab.View(80, 22)
	fits(t, view, 80, 22)
	s := ansi.Strip(view)
	for _, w := range []string{"NAME", "IMAGE", "STATUS", "READY", "RESTARTS", "AGE", "NODE", "GPU", "lab", "Running", "1/1", "kwok-node-0", "2h", "train", "Pending"} {
		if !strings.Contains(s, w) {
			t.Errorf("table lacks %q:\n%s", w, s)
		}
	}
	if strings.Contains(s, "web") || strings.Contains(s, "OWNER") {
		t.Errorf("a student sees bob's pod or the owner column:\n%s", s)
	}

	// s on a running pod asks the session for a shell that comes back to the same row.
	var asked []dashboard.Shell
	tab.SetShell(func(sh dashboard.Shell) tea.Cmd { asked = append(asked, sh); return nil })
	press(t, tab, "s")
	if len(asked) != 1 || asked[0].Name != "pod/lab" || asked[0].Back != "alice/lab" || asked[0].Open == nil {
		t.Fatalf("shell asked: %+v", asked)
	}
	// ... and on a pending one says why not.
	st := press(t, tab, "j", "s")
	if len(asked) != 1 || len(st) != 1 || !strings.Contains(st[0].Text, "train is Pending: a shell needs it running") {
		t.Errorf("shell on a pending pod: asked %d, status %+v", len(asked), st)
	}

	// enter: details with the reason, the warnings and, for the owner, the forward.
	press(t, tab, "enter")
	s = screen(tab, 80, 22)
	for _, w := range []string{"pod train", "status Pending · 0/2 nodes are available", "FailedScheduling (×3, 1m ago): 0/2 nodes",
		"data /datasets/imagenet (read-only) · /groups/os/team-a",
		"ssh -L 8888:pod/train:8888 -p 2222 alice@gpu1"} {
		if !strings.Contains(s, w) {
			t.Errorf("details lack %q:\n%s", w, s)
		}
	}
	fits(t, tab.View(80, 22), 80, 22)
	press(t, tab, "esc")

	// d asks, y deletes.
	press(t, tab, "d")
	if s := screen(tab, 80, 22); !strings.Contains(s, "delete pod train? y/N") {
		t.Errorf("no question:\n%s", s)
	}
	st = press(t, tab, "y")
	if len(f.removed) != 1 || f.removed[0] != "alice/train" || len(st) != 1 || st[0].Text != "pod train: deleted" {
		t.Errorf("removed %v, status %+v", f.removed, st)
	}
	press(t, tab, "d", "n")
	if len(f.removed) != 1 {
		t.Errorf("n deleted: %v", f.removed)
	}

	// / filters.
	press(t, tab, "/")
	tab.Update(tea.PasteMsg{Content: "lab"})
	press(t, tab, "enter")
	if s := screen(tab, 80, 22); strings.Contains(s, "train") || !strings.Contains(s, "lab") {
		t.Errorf("filter lab:\n%s", s)
	}
}

func TestLogsFormAndUnreachable(t *testing.T) {
	f := cluster()
	f.logs = "hello from the pod\nevil \x1b[2J end\n"
	tab := New(f, alice, dashboard.DefaultStyles(), func() time.Time { return now }, "ssh -p 2222 gpu1")
	defer tab.Close()
	settle(t, tab, tab.Init())
	tab.View(80, 22)
	press(t, tab, "l")
	s := screen(tab, 80, 22)
	if !strings.Contains(s, "logs: pod lab") || !strings.Contains(s, "hello from the pod") || !strings.Contains(s, `evil \x1b[2J end`) {
		t.Errorf("log viewer:\n%s", s)
	}
	press(t, tab, "esc")
	if tab.logs != nil {
		t.Fatal("esc did not close the logs")
	}

	press(t, tab, "n")
	if s := screen(tab, 80, 22); !strings.Contains(s, "New pod") || !strings.Contains(s, "quota: 2 of 5 pods") {
		t.Errorf("form:\n%s", s)
	}
	press(t, tab, "enter")
	if s := screen(tab, 80, 22); !strings.Contains(s, "an image is needed") {
		t.Errorf("empty form accepted:\n%s", s)
	}
	tab.Update(tea.PasteMsg{Content: "python:3.12"})
	press(t, tab, "tab")
	tab.Update(tea.PasteMsg{Content: "Bad"})
	press(t, tab, "enter")
	if s := screen(tab, 80, 22); !strings.Contains(s, "invalid pod name") {
		t.Errorf("the backend's refusal not shown:\n%s", s)
	}
	press(t, tab, "esc")

	// The cluster goes away: one line says so, the last list stays, greyed.
	f.mu.Lock()
	f.health = kube.Health{OK: false, Err: "connection refused"}
	f.mu.Unlock()
	tab.reload()
	s = screen(tab, 80, 22)
	if !strings.HasPrefix(s, " Kubernetes unreachable: connection refused — showing the last known list") || !strings.Contains(s, "train") {
		t.Errorf("unreachable:\n%s", s)
	}
}

func TestTAsSeeOwners(t *testing.T) {
	tab := New(cluster(), tina, dashboard.DefaultStyles(), func() time.Time { return now }, "ssh -p 2222 gpu1")
	defer tab.Close()
	settle(t, tab, tab.Init())
	s := screen(tab, 80, 24)
	fits(t, tab.View(80, 24), 80, 24)
	if !strings.Contains(s, "OWNER") || !strings.Contains(s, "bob") || !strings.Contains(s, "web") {
		t.Errorf("TA table:\n%s", s)
	}
	press(t, tab, "G", "enter")
	if s := screen(tab, 80, 24); !strings.Contains(s, "pod bob/web") || strings.Contains(s, "ssh -L") {
		t.Errorf("a TA's details of bob's pod (no forward hint: forwards reach own pods only):\n%s", s)
	}
}

// presetList is the course presets one user may use.
type presetList []docker.Preset

func (p presetList) Presets(context.Context, backend.Identity) []docker.Preset { return p }

// The form offers the presets first: a choice fills the fields, the pod gets the preset's
// environment and command, and the quota and names are the backend's to check as for any pod.
func TestFormOffersPresets(t *testing.T) {
	f := cluster()
	tab := New(f, alice, dashboard.DefaultStyles(), func() time.Time { return now }, "ssh -p 2222 gpu1")
	tab.SetPresets(presetList{
		{Name: "ml", Description: "PyTorch for the ML course", Image: "registry.example/ml:2026", CPUs: 2, Memory: 4 << 30,
			GPUs: "1", Env: []string{"COURSE=ml"}, Cmd: []string{"jupyter", "lab"}},
		{Name: "os", Image: "debian:12"},
	})
	defer tab.Close()
	settle(t, tab, tab.Init())
	press(t, tab, "n")
	s := screen(tab, 80, 24)
	if !strings.Contains(s, "preset    ‹ none: fill in the fields ›  (0/2, ←/→)") {
		t.Fatalf("the form does not start with the presets:\n%s", s)
	}
	fits(t, tab.View(80, 24), 80, 24)
	press(t, tab, "right")
	s = screen(tab, 80, 24)
	for _, want := range []string{"‹ ml: PyTorch for the ML course ›  (1/2", "registry.example/ml:2026", "4.0 GiB"} {
		if !strings.Contains(s, want) {
			t.Errorf("after choosing ml, no %q:\n%s", want, s)
		}
	}
	press(t, tab, "tab", "tab") // image, then name: ml's name is offered
	press(t, tab, "enter")
	f.mu.Lock()
	runs := f.runs
	f.mu.Unlock()
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
	got := runs[0]
	if got.Image != "registry.example/ml:2026" || got.Name != "ml" || got.CPUs != 2 || got.Memory != 4<<30 || got.GPUs != 1 ||
		!slices.Equal(got.Env, []string{"COURSE=ml"}) || !slices.Equal(got.Cmd, []string{"jupyter", "lab"}) {
		t.Errorf("pod from the preset: %+v", got)
	}

	// Back to none: the fields stay as filled, the preset's command and environment go.
	press(t, tab, "n", "right", "left")
	if s := screen(tab, 80, 24); !strings.Contains(s, "(0/2") {
		t.Errorf("left did not go back to none:\n%s", s)
	}
	press(t, tab, "tab", "tab")
	tab.Update(tea.PasteMsg{Content: "2"})
	press(t, tab, "enter")
	f.mu.Lock()
	last := f.runs[len(f.runs)-1]
	f.mu.Unlock()
	if last.Image != "registry.example/ml:2026" || last.Name != "ml2" || last.Env != nil || last.Cmd != nil {
		t.Errorf("a pod without a preset: %+v", last)
	}
}

func TestPresetChoice(t *testing.T) {
	ps := []docker.Preset{{Name: "ml", Description: "Py\x1b[2JTorch"}, {Name: "os"}}
	for _, c := range []struct {
		pick int
		want string
	}{
		{0, "‹ none: fill in the fields ›  (0/2, ←/→)"},
		{1, `‹ ml: Py\x1b[2JTorch ›  (1/2, ←/→)`},
		{2, "‹ os ›  (2/2, ←/→)"},
		{3, "‹ none: fill in the fields ›  (0/2, ←/→)"},
	} {
		if got := PresetChoice(ps, c.pick); got != c.want {
			t.Errorf("PresetChoice(%d) = %q, want %q", c.pick, got, c.want)
		}
	}
}
