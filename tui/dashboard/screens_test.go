package dashboard_test

// Every screen of the dashboard — each tab, each overlay, question, form and view — drawn by
// the root model with the real tabs at 80x24 and at 120x40: exactly that many lines, none
// wider than the window, the footer's last word "quit" on the bottom line, and the same keys
// in the footer at both widths.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/gitlab"
	"whalemountain/backend/gpu"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/dashboard/containers"
	"whalemountain/tui/dashboard/gpus"
	"whalemountain/tui/dashboard/images"
)

var (
	now     = time.Date(2026, 5, 7, 12, 0, 0, 0, time.UTC)
	student = backend.Identity{User: "alice", Role: backend.RoleStudent}
	ta      = backend.Identity{User: "tina", Role: backend.RoleTA}
)

// --- fakes of the backends, with enough in them to fill every screen ---

type ctrs struct{ list []docker.Container }

func (c *ctrs) Snapshot(id backend.Identity, opts docker.ListOptions) ([]docker.Container, docker.Health) {
	var out []docker.Container
	for _, x := range c.list {
		if x.Owner == id.User || id.IsTA() && opts.AllUsers {
			out = append(out, x)
		}
	}
	return out, docker.Health{OK: true}
}
func (c *ctrs) SubscribeFor(backend.Identity, docker.ListOptions) (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}
func (c *ctrs) Config() docker.Config { return docker.DefaultConfig() }
func (c *ctrs) Run(context.Context, backend.Identity, docker.RunSpec) (docker.Container, error) {
	return docker.Container{}, errors.New("not here")
}
func (c *ctrs) Presets(context.Context, backend.Identity) []docker.Preset { return nil }
func (c *ctrs) RunPreset(context.Context, backend.Identity, string, string) (docker.Container, error) {
	return docker.Container{}, nil
}
func (c *ctrs) Start(context.Context, backend.Identity, string) error                { return nil }
func (c *ctrs) Stop(context.Context, backend.Identity, string, string) error         { return nil }
func (c *ctrs) Restart(context.Context, backend.Identity, string) error              { return nil }
func (c *ctrs) Remove(context.Context, backend.Identity, string, bool, string) error { return nil }
func (c *ctrs) Logs(context.Context, backend.Identity, string, docker.LogOptions) (io.ReadCloser, error) {
	var b strings.Builder
	for i := range 60 {
		fmt.Fprintf(&b, "epoch %d: loss 0.%03d accuracy 0.9%02d, a line long enough to be wider than any terminal we draw on here\n", i, 999-i, i)
	}
	return io.NopCloser(strings.NewReader(b.String())), nil
}
func (c *ctrs) Inspect(_ context.Context, _ backend.Identity, ref string) (docker.Details, error) {
	for _, x := range c.list {
		if x.Ref() == ref {
			return docker.Details{Container: x, Home: "/home/" + x.Owner, PidsLimit: 512, Cmd: []string{"jupyter", "lab", "--ip=0.0.0.0"},
				IPAddress: "172.18.0.2", Network: "wm-net-" + x.Owner, ExposedPorts: []string{"6006/tcp", "8888/tcp", "9999/udp"},
				FinishedAt: now.Add(-time.Hour)}, nil
		}
	}
	return docker.Details{}, errors.New("no such container")
}
func (c *ctrs) Notices(backend.Identity) ([]docker.Notice, int64) { return nil, 0 }
func (c *ctrs) MarkNoticesSeen(backend.Identity, int64)           {}

type imgs struct{ fail error }

func (f *imgs) Images(context.Context, backend.Identity) ([]docker.Image, error) {
	return []docker.Image{
		{Tags: []string{"registry.example.org/group/alice/a-rather-long-project-name/ml-notebook:2024-winter-term"}, ID: "0123456789ab", Size: 3 << 30, Created: now.Add(-72 * time.Hour), InUseByYou: true},
		{Tags: []string{"ubuntu:24.04", "ubuntu:latest"}, ID: "1123456789ab", Size: 78 << 20, Created: now.Add(-900 * time.Hour)},
		{ID: "2123456789ab", Size: 1000},
	}, nil
}
func (f *imgs) Pull(ctx context.Context, _ backend.Identity, _ string, progress func(docker.PullProgress)) error {
	if f.fail != nil {
		return f.fail
	}
	progress(docker.PullProgress{Status: "Pulling from library/pytorch"})
	for i := range 8 {
		progress(docker.PullProgress{ID: fmt.Sprintf("%012x", i+0xabc), Status: "Downloading", Current: int64(i+1) << 26, Total: 1 << 29})
	}
	<-ctx.Done()
	return ctx.Err()
}
func (f *imgs) RemoveImage(context.Context, backend.Identity, string) error { return nil }

type sifs struct{}

func (sifs) Build(context.Context, backend.Identity, string, func(docker.SIFProgress)) (docker.SIFFile, bool, error) {
	return docker.SIFFile{}, false, errors.New("not here")
}
func (sifs) List(context.Context, backend.Identity) ([]docker.SIFFile, error) {
	return []docker.SIFFile{{Name: "ubuntu_24.04.sif", Size: 30 << 20, Image: "ubuntu:24.04", Created: now.Add(-time.Hour)},
		{Name: "registry.example.org_group_alice_a-rather-long-project-name_ml-notebook_2024-winter-term.sif", Size: 3 << 30,
			Image: "registry.example.org/group/alice/a-rather-long-project-name/ml-notebook:2024-winter-term", Created: now.Add(-time.Hour)}}, nil
}
func (sifs) Remove(context.Context, backend.Identity, string) error { return nil }
func (sifs) Quota() int64                                           { return 20 << 30 }

type reg struct{}

func (reg) UserRegistry(context.Context, string) ([]gitlab.RegistryRepository, error) {
	return []gitlab.RegistryRepository{{Project: "alice/a-rather-long-project-name", Location: "registry.example.org/alice/a-rather-long-project-name/ml",
		Tags: []gitlab.RegistryTag{{Name: "2024-winter-term", Location: "registry.example.org/alice/a-rather-long-project-name/ml:2024-winter-term"}, {Name: "latest", Location: "registry.example.org/alice/a-rather-long-project-name/ml:latest"}}}}, nil
}

type gpuSrc struct{}

func (gpuSrc) Snapshot(backend.Identity) gpu.State {
	p := func(n int) *int { return &n }
	b := func(n int64) *int64 { return &n }
	w := 231.0
	var gs []gpu.GPU
	for i := range 4 {
		gs = append(gs, gpu.GPU{Index: i, Name: "NVIDIA A100-SXM4-40GB", Util: p(20 * i), MemUsed: b(int64(i) << 33), MemTotal: b(40 << 30),
			TempC: p(40 + i), PowerW: &w, ProcessesKnown: true, Processes: []gpu.Process{{MemUsed: b(1 << 30), Where: gpu.WhereContainer, Owner: "alice", ContainerName: "jupyter-notebook"}}})
	}
	return gpu.State{Available: true, At: now, GPUs: gs, Users: []gpu.UserSummary{{User: "alice", GPUs: []int{0, 1, 2, 3}, MemUsed: 4 << 30, MeanUtil: p(30)}}}
}
func (gpuSrc) Available() (bool, string) { return true, "" }
func (gpuSrc) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{})
	var once sync.Once
	return ch, func() { once.Do(func() { close(ch) }) }
}

func containerList() []docker.Container {
	var out []docker.Container
	for i, owner := range []string{"alice", "alice", "alice", "bob", "bob", "carol"} {
		c := docker.Container{Owner: owner, Name: fmt.Sprintf("%s-notebook-%d", owner, i), ID: fmt.Sprint(i),
			Image: "registry.example.org/group/" + owner + "/a-rather-long-project-name/ml-notebook:2024-winter-term",
			State: "running", StartedAt: now.Add(-time.Duration(i+1) * time.Hour), GPUs: "0,1", CPUs: 2, MemLimit: 8 << 30,
			CPUPercent: 123.4, MemUsage: 3 << 30, StatsAt: now}
		if i == 2 {
			c.State, c.ExitCode = "exited", 137
		}
		out = append(out, c)
	}
	return out
}

// --- the program, run by hand ---

// rig is one dashboard with the real tabs, its commands run as the program would run them.
type rig struct {
	t    *testing.T
	m    *dashboard.Model
	msgs chan tea.Msg
	done chan struct{}
}

func newRig(t *testing.T, id backend.Identity, withGitLab bool, pullErr error, w, h int) *rig {
	st := dashboard.DefaultStyles()
	ctr := containers.New(&ctrs{list: containerList()}, id, st, func() time.Time { return now })
	ctr.SetPrefix("ssh -p 2222 gpu1.ie.example")
	ctr.SetShell(func(dashboard.Shell) tea.Cmd { return nil })
	deps := images.Deps{Images: &imgs{fail: pullErr}, SIFs: sifs{}, Prefix: "ssh -p 2222 gpu1.ie.example"}
	if withGitLab {
		deps.Registry = reg{}
	}
	img := images.New(deps, id, st)
	g := gpus.New(gpuSrc{}, id, st)
	r := &rig{t: t, msgs: make(chan tea.Msg, 256), done: make(chan struct{})}
	t.Cleanup(func() { close(r.done); ctr.Close(); img.Close(); g.Close() })
	r.m = dashboard.New(dashboard.Info{Server: "gpu1.ie.example", User: id.User, Role: string(id.Role)}, st,
		ctr, img, g,
		dashboard.Notice{Name: "Pods", Line: "No Kubernetes cluster is configured on this server.", Styles: st},
		dashboard.Notice{Name: "Runner", Line: "GitLab CI runners are not available on this server yet.", Styles: st})
	r.m.Update(tea.WindowSizeMsg{Width: w, Height: h})
	r.exec(r.m.Init())
	r.settle()
	return r
}

func (r *rig) exec(cmd tea.Cmd) {
	if cmd == nil {
		return
	}
	go func() {
		msg := cmd()
		select {
		case r.msgs <- msg:
		case <-r.done:
		}
	}()
}

// settle handles what the commands answer until nothing has come for a moment.
func (r *rig) settle() {
	for {
		select {
		case msg := <-r.msgs:
			r.handle(msg)
		case <-time.After(40 * time.Millisecond):
			return
		}
	}
}

func (r *rig) handle(msg tea.Msg) {
	switch m := msg.(type) {
	case nil:
		return
	case tea.BatchMsg:
		for _, c := range m {
			r.exec(c)
		}
		return
	}
	if v := reflect.ValueOf(msg); v.Kind() == reflect.Slice && v.Type().Elem() == reflect.TypeFor[tea.Cmd]() {
		for _, c := range v.Convert(reflect.TypeFor[[]tea.Cmd]()).Interface().([]tea.Cmd) {
			r.exec(c)
		}
		return
	}
	_, cmd := r.m.Update(msg)
	r.exec(cmd)
}

func (r *rig) press(keys ...string) {
	for _, k := range keys {
		var msg tea.KeyPressMsg
		switch k {
		case "(wait)": // for what comes on a timer, such as a pull's progress
			time.Sleep(250 * time.Millisecond)
			r.settle()
			continue
		case "enter":
			msg = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "esc":
			msg = tea.KeyPressMsg{Code: tea.KeyEscape}
		default:
			for _, ch := range k {
				r.handle(tea.KeyPressMsg{Code: ch, Text: string(ch)})
			}
			r.settle()
			continue
		}
		r.handle(msg)
		r.settle()
	}
}

func (r *rig) screen() []string { return strings.Split(r.m.View().Content, "\n") }

// screenCase is one screen: who, the keys that lead to it, and what it must show.
type screenCase struct {
	name     string
	who      backend.Identity
	noGitLab bool
	pullErr  error
	keys     []string
	want     string // on the screen (plain)
}

func screenCases() []screenCase {
	long := errors.New("pull access denied for registry.example.org/group/project/some-image, repository does not exist or may require 'docker login': denied: requested access to the resource is denied")
	return []screenCase{
		{name: "containers", who: student, want: "alice-notebook-0"},
		{name: "containers TA", who: ta, want: "OWNER"},
		{name: "containers details", who: student, keys: []string{"enter"}, want: "ssh -L 8888:alice-notebook-0:8888 -p 2222 alice@gpu1.ie.example"},
		{name: "containers details TA", who: ta, keys: []string{"j", "j", "j", "enter"}, want: "ports "},
		{name: "containers help", who: student, keys: []string{"?"}, want: "enter"},
		{name: "containers confirm", who: student, keys: []string{"d"}, want: "y/N"},
		{name: "containers reason", who: ta, keys: []string{"j", "j", "j", "S"}, want: "why?"},
		{name: "containers reason empty", who: ta, keys: []string{"j", "j", "j", "S", "enter"}, want: "say why"},
		{name: "containers form", who: student, keys: []string{"n"}, want: "New container"},
		{name: "containers logs", who: student, keys: []string{"l"}, want: "logs: alice-notebook-0"},
		{name: "containers logs help", who: student, keys: []string{"l", "?"}, want: "timestamps"},
		{name: "containers logs search", who: student, keys: []string{"l", "/", "epoch"}, want: "/epoch"},
		{name: "containers filter", who: student, keys: []string{"/", "note"}, want: "/note"},
		{name: "images", who: student, keys: []string{"2"}, want: "ubuntu:24.04"},
		{name: "images help", who: student, keys: []string{"2", "?"}, want: "j/↓"},
		{name: "images pull prompt", who: student, keys: []string{"2", "p"}, want: "pull: "},
		{name: "images pull progress", who: student, keys: []string{"2", "p", "pytorch", "enter", "(wait)"}, want: "Downloading"},
		{name: "images pull failed", who: student, pullErr: long, keys: []string{"2", "p", "some-image", "enter"}, want: "docker login"},
		{name: "images confirm", who: ta, keys: []string{"2", "d"}, want: "y/N"},
		{name: "images registry", who: student, keys: []string{"2", "m"}, want: "2024-winter-term"},
		{name: "images registry help", who: student, keys: []string{"2", "m", "?"}, want: "j/↓"},
		{name: "images no GitLab", who: student, noGitLab: true, keys: []string{"2", "m"}, want: "no GitLab"},
		{name: "images SIF files", who: student, keys: []string{"2", "v"}, want: "ubuntu_24.04.sif"},
		{name: "images SIF confirm", who: student, keys: []string{"2", "v", "d"}, want: "y/N"},
		{name: "gpus", who: ta, keys: []string{"3"}, want: "GPU 3"},
		{name: "gpus help", who: student, keys: []string{"3", "?"}, want: "j/↓"},
		{name: "pods", who: student, keys: []string{"4"}, want: "No Kubernetes cluster is configured"},
		{name: "runner help", who: student, keys: []string{"5", "?"}, want: "Everywhere"},
	}
}

// TestEveryScreenFits: at 80x24 and 120x40, every screen is exactly the window: no line
// wider, no line more or less, the footer ending in "quit" on the last line; the footer
// lists the same keys at both sizes.
func TestEveryScreenFits(t *testing.T) {
	for _, c := range screenCases() {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var footers []string
			for _, size := range [][2]int{{80, 24}, {120, 40}} {
				w, h := size[0], size[1]
				r := newRig(t, c.who, !c.noGitLab, c.pullErr, w, h)
				r.press(c.keys...)
				lines := r.screen()
				text := ansi.Strip(strings.Join(lines, "\n"))
				if len(lines) != h {
					t.Errorf("%dx%d: %d lines, want %d:\n%s", w, h, len(lines), h, text)
				}
				for i, l := range lines {
					if lw := ansi.StringWidth(l); lw > w {
						t.Errorf("%dx%d: line %d is %d cells wide: %q", w, h, i, lw, ansi.Strip(l))
					}
				}
				foot := ansi.Strip(lines[len(lines)-1])
				if f := strings.Fields(foot); len(f) == 0 || f[len(f)-1] != "quit" {
					t.Errorf("%dx%d: the last line is not the footer ending in quit: %q", w, h, foot)
				}
				if !strings.Contains(text, c.want) {
					t.Errorf("%dx%d: the screen lacks %q:\n%s", w, h, c.want, text)
				}
				if strings.Contains(text, "any key closes this help") && strings.Count(text, "╮")+strings.Count(text, "╯") != 2 {
					t.Errorf("%dx%d: the help's box is not whole:\n%s", w, h, text)
				}
				if strings.Count(foot, "? help") > 1 {
					t.Errorf("%dx%d: the footer says ? help twice: %q", w, h, foot)
				}
				footers = append(footers, strings.Join(strings.Fields(foot), " "))
			}
			if footers[0] != footers[1] {
				t.Errorf("the footer's keys differ with the width:\n 80: %s\n120: %s", footers[0], footers[1])
			}
		})
	}
}

// TestHelpListsMovingKeysInEveryTab: j and k are in the help of every tab with a list or a
// page to move through.
func TestHelpListsMovingKeysInEveryTab(t *testing.T) {
	for _, tab := range []string{"1", "2", "3"} {
		r := newRig(t, student, true, nil, 80, 24)
		r.press(tab, "?")
		text := ansi.Strip(strings.Join(r.screen(), "\n"))
		for _, k := range []string{"j/↓", "k/↑"} {
			if !strings.Contains(text, k) {
				t.Errorf("tab %s: help lacks %s:\n%s", tab, k, text)
			}
		}
	}
}

// TestOneMarkerOneQuestion: the selected row is marked "▸ " in every list, and every
// question reads "...? y/N" with the keys "y yes" and "n no".
func TestOneMarkerOneQuestion(t *testing.T) {
	for _, c := range []struct {
		keys []string
		who  backend.Identity
	}{{nil, student}, {[]string{"2"}, student}, {[]string{"2", "m"}, student}, {[]string{"2", "v"}, student}} {
		r := newRig(t, c.who, true, nil, 80, 24)
		r.press(c.keys...)
		if !slices.ContainsFunc(r.screen(), func(l string) bool { return strings.HasPrefix(ansi.Strip(l), "▸ ") }) {
			t.Errorf("after %q no row is marked ▸:\n%s", c.keys, ansi.Strip(strings.Join(r.screen(), "\n")))
		}
	}
	for _, c := range []struct {
		keys []string
		who  backend.Identity
	}{{[]string{"d"}, student}, {[]string{"G", "s"}, student}, {[]string{"2", "d"}, ta}, {[]string{"2", "v", "d"}, student}} {
		r := newRig(t, c.who, true, nil, 80, 24)
		r.press(c.keys...)
		lines := r.screen()
		text := ansi.Strip(strings.Join(lines, "\n"))
		foot := strings.Join(strings.Fields(ansi.Strip(lines[len(lines)-1])), " ")
		if !strings.Contains(text, "? y/N") || !strings.HasPrefix(foot, "y yes n no") {
			t.Errorf("after %q the question or its keys differ:\n%s", c.keys, text)
		}
	}
}
