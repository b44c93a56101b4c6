package images

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/gitlab"
	"whalemountain/tui/dashboard"
)

type fakeSIFs struct {
	built   []string
	steps   []docker.SIFProgress
	result  docker.SIFFile
	err     error
	files   []docker.SIFFile
	removed []string
	rmErr   error
}

func (f *fakeSIFs) List(context.Context, backend.Identity) ([]docker.SIFFile, error) {
	return f.files, nil
}

func (f *fakeSIFs) Remove(_ context.Context, _ backend.Identity, name string) error {
	if f.rmErr != nil {
		return f.rmErr
	}
	f.removed = append(f.removed, name)
	var kept []docker.SIFFile
	for _, x := range f.files {
		if x.Name != name {
			kept = append(kept, x)
		}
	}
	f.files = kept
	return nil
}

func (f *fakeSIFs) Quota() int64 { return 20 << 30 }

func (f *fakeSIFs) Build(_ context.Context, _ backend.Identity, ref string, progress func(docker.SIFProgress)) (docker.SIFFile, bool, error) {
	f.built = append(f.built, ref)
	for _, s := range f.steps {
		progress(s)
	}
	return f.result, false, f.err
}

type fakeRegistry struct {
	users []string
	repos []gitlab.RegistryRepository
	err   error
}

func (f *fakeRegistry) UserRegistry(_ context.Context, user string) ([]gitlab.RegistryRepository, error) {
	f.users = append(f.users, user)
	return f.repos, f.err
}

func newFullTab(t *testing.T, deps Deps) *Tab {
	t.Helper()
	tab := New(deps, me, dashboard.DefaultStyles())
	tab.now = func() time.Time { return created.Add(72 * time.Hour) }
	t.Cleanup(tab.Close)
	drain(t, tab, tab.Init())
	return tab
}

func keyHelp(tab *Tab) string {
	var out []string
	for _, k := range tab.Keys() {
		out = append(out, k.Help().Key)
	}
	return strings.Join(out, " ")
}

func TestSIFKey(t *testing.T) {
	sifs := &fakeSIFs{result: docker.SIFFile{Name: "ubuntu_24.04.sif", Size: 30 << 20},
		steps: []docker.SIFProgress{{Phase: "exporting", Done: 1, Total: 2}, {Phase: "writing"}}}
	tab := newFullTab(t, Deps{Images: &fakeService{list: sampleList()}, SIFs: sifs, Prefix: "ssh -p 2222 gpu1"})
	if !strings.Contains(keyHelp(tab), "f") {
		t.Errorf("keys %q lack f", keyHelp(tab))
	}
	st := press(t, tab, "f")
	if len(sifs.built) != 1 || sifs.built[0] != "ubuntu:24.04" {
		t.Fatalf("built %v", sifs.built)
	}
	if len(st) != 2 || !strings.Contains(st[0].Text, "making a SIF of ubuntu:24.04") ||
		st[1].Text != "ubuntu_24.04.sif made (30 MiB); download: scp -P 2222 gpu1:/sif/ubuntu_24.04.sif ." || st[1].Err {
		t.Errorf("status %+v", st)
	}
	if tab.building != nil || strings.Contains(plain(tab.View(80, 24)), "SIF of") {
		t.Error("progress still shown after the build")
	}

	// Untagged images have no name to build from; errors reach the status line as errors.
	for range 3 {
		press(t, tab, "j")
	}
	st = press(t, tab, "f")
	if len(sifs.built) != 1 || len(st) != 1 || !st[0].Err || !strings.Contains(st[0].Text, "tagged image") {
		t.Errorf("untagged: built %v status %+v", sifs.built, st)
	}
	press(t, tab, "k")
	sifs.err = errors.New("SIF quota reached: 10 GiB of 10 GiB used; remove a file with `sif rm NAME`")
	st = press(t, tab, "f")
	if last := st[len(st)-1]; !last.Err || !strings.Contains(last.Text, "SIF quota reached") {
		t.Errorf("error status %+v", st)
	}

	// Without SIF export there is no f.
	plainTab := newFullTab(t, Deps{Images: &fakeService{list: sampleList()}})
	if strings.Contains(keyHelp(plainTab), "f") {
		t.Errorf("keys %q offer f without SIF export", keyHelp(plainTab))
	}
	if st := press(t, plainTab, "f"); len(st) != 0 {
		t.Errorf("f without SIF export: %+v", st)
	}
}

func TestSIFProgressDrawn(t *testing.T) {
	st := dashboard.DefaultStyles()
	cases := []struct {
		p    docker.SIFProgress
		want string
	}{
		{docker.SIFProgress{}, "SIF of x:1: starting"},
		{docker.SIFProgress{Phase: "queued", Position: 2}, "waiting for a free build slot (2 in line)"},
		{docker.SIFProgress{Phase: "exporting", Done: 50 << 20, Total: 100 << 20}, "exporting [██████████░░░░░░░░░░] 50 MiB of about 100 MiB"},
		{docker.SIFProgress{Phase: "exporting", Done: 150 << 20, Total: 100 << 20}, "[████████████████████] 150 MiB"},
		{docker.SIFProgress{Phase: "writing"}, "writing the SIF file"},
		{docker.SIFProgress{Phase: "odd\x1b[2J"}, `odd\x1b[2J`},
	}
	for _, c := range cases {
		got := plain(sifLine(st, "x:1", c.p, 120))
		if !strings.Contains(got, c.want) {
			t.Errorf("%+v: %q lacks %q", c.p, got, c.want)
		}
		if w := ansi.StringWidth(sifLine(st, "x:1", c.p, 40)); w > 40 {
			t.Errorf("%+v: %d cells at width 40", c.p, w)
		}
	}
	// While a build runs, the tab shows its progress under the table.
	tab := newTab(t, &fakeService{list: sampleList()})
	tab.building = &sifBuild{seq: 1, shown: "ubuntu:24.04"}
	tab.sifShown = docker.SIFProgress{Phase: "exporting", Done: 1, Total: 4}
	if v := plain(tab.View(80, 24)); !strings.Contains(v, "SIF of ubuntu:24.04: exporting [█████") {
		t.Errorf("view:\n%s", v)
	}
	_, next := tab.Update(sifTickMsg{tab: tab, seq: 1})
	if next == nil {
		t.Error("tick did not schedule the next one while building")
	}
	if _, next := tab.Update(sifTickMsg{tab: tab, seq: 7}); next != nil {
		t.Error("a stale tick scheduled another")
	}
}

func TestRegistryView(t *testing.T) {
	list := append(sampleList(), docker.Image{Tags: []string{"registry.test/alice/proj/img:1.0"}, ID: "dddddddddddd", Created: created})
	f := &fakeService{list: list}
	reg := &fakeRegistry{repos: []gitlab.RegistryRepository{
		{Project: "alice/proj", Path: "alice/proj/img", Location: "registry.test/alice/proj/img", Tags: []gitlab.RegistryTag{
			{Name: "1.0", Location: "registry.test/alice/proj/img:1.0"},
			{Name: "2.0", Location: "registry.test/alice/proj/img:2.0"},
		}},
		{Project: "alice/evil\x1b[2J", Path: "alice/evil", Location: "registry.test/alice/evil", Tags: []gitlab.RegistryTag{
			{Name: "x", Location: "registry.test/alice/evil:x"},
		}},
	}}
	tab := newFullTab(t, Deps{Images: f, Registry: reg})
	if !strings.Contains(keyHelp(tab), "m") {
		t.Errorf("keys %q lack m", keyHelp(tab))
	}
	press(t, tab, "m")
	if len(reg.users) != 1 || reg.users[0] != "alice" {
		t.Fatalf("asked GitLab for %v", reg.users)
	}
	v := tab.View(100, 20)
	if strings.Contains(v, "\x1b[2J") {
		t.Error("raw escape from GitLab reached the view")
	}
	p := plain(v)
	lines := strings.Split(p, "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "My registry") || !strings.Contains(lines[1], "ON SERVER") {
		t.Fatalf("view:\n%s", p)
	}
	for i, want := range [][]string{{"alice/proj", "1.0", "registry.test/alice/proj/img:1.0", "yes"}, {"2.0", "registry.test/alice/proj/img:2.0", "–"}, {`alice/evil\x1b[2J`, "x"}} {
		for _, w := range want {
			if !strings.Contains(lines[2+i], w) {
				t.Errorf("row %d %q lacks %q", i, lines[2+i], w)
			}
		}
	}
	for _, l := range strings.Split(v, "\n") {
		if ansi.StringWidth(l) > 100 {
			t.Errorf("line too wide: %q", l)
		}
	}
	if !strings.Contains(keyHelp(tab), "p/enter") || !strings.Contains(keyHelp(tab), "m/esc") {
		t.Errorf("registry keys %q", keyHelp(tab))
	}
	// One key pulls the selected tag.
	press(t, tab, "j")
	st := press(t, tab, "enter")
	if len(f.pulled) != 1 || f.pulled[0] != "registry.test/alice/proj/img:2.0" {
		t.Errorf("pulled %v (status %+v)", f.pulled, st)
	}
	// d does nothing here; esc goes back to the server's images.
	press(t, tab, "d")
	if tab.confirm != nil || len(f.removed) != 0 {
		t.Error("d acted in the registry view")
	}
	press(t, tab, "esc")
	if tab.registry.on || !strings.Contains(plain(tab.View(100, 20)), "USED BY YOU") {
		t.Error("esc did not go back")
	}

	// GitLab's failures read as one line.
	reg.err = fmt.Errorf("gitlab: list registry: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")})
	press(t, tab, "m")
	if v := plain(tab.View(100, 20)); !strings.Contains(v, "GitLab cannot be reached now") {
		t.Errorf("unavailable:\n%s", v)
	}
	reg.err = fmt.Errorf("gitlab: user: %w", gitlab.ErrNoSuchUser)
	press(t, tab, "R")
	if v := plain(tab.View(100, 20)); !strings.Contains(v, "GitLab has no user by your name") {
		t.Errorf("no such user:\n%s", v)
	}

	// Without GitLab there is no m.
	plainTab := newFullTab(t, Deps{Images: &fakeService{list: sampleList()}})
	press(t, plainTab, "m")
	if plainTab.registry.on || strings.Contains(keyHelp(plainTab), "m") {
		t.Error("m without GitLab")
	}
}

func TestSIFFilesView(t *testing.T) {
	sifs := &fakeSIFs{files: []docker.SIFFile{
		{Name: "ubuntu_24.04.sif", Size: 30 << 20, Image: "ubuntu:24.04", Created: created},
		{Name: "x_1.sif", Size: 2 << 20, Image: "x:1\x1b[2J", Created: created},
	}}
	tab := newFullTab(t, Deps{Images: &fakeService{list: sampleList()}, SIFs: sifs, Prefix: "ssh -p 2222 gpu1"})
	if !strings.Contains(keyHelp(tab), "v") {
		t.Errorf("keys %q lack v", keyHelp(tab))
	}
	press(t, tab, "v")
	v := tab.View(100, 20)
	if strings.Contains(v, "\x1b[2J") {
		t.Error("raw escape reached the view")
	}
	lines := strings.Split(plain(v), "\n")
	if len(lines) != 5 || !strings.Contains(lines[0], "My SIF files") || !strings.Contains(lines[1], "NAME") ||
		!strings.Contains(lines[2], "ubuntu_24.04.sif") || !strings.Contains(lines[2], "30 MiB") || !strings.Contains(lines[2], "3d ago") ||
		!strings.Contains(lines[4], "32 MiB of 20 GiB used · download: scp -P 2222 gpu1:/sif/ubuntu_24.04.sif .") {
		t.Fatalf("view:\n%s", strings.Join(lines, "\n"))
	}
	press(t, tab, "j")
	press(t, tab, "d")
	if !tab.Capturing() || !strings.Contains(plain(tab.View(100, 20)), "remove x_1.sif? y/N") {
		t.Errorf("no question:\n%s", plain(tab.View(100, 20)))
	}
	st := press(t, tab, "n")
	if len(sifs.removed) != 0 || len(st) != 1 || st[0].Text != "kept x_1.sif" {
		t.Errorf("n: removed %v status %+v", sifs.removed, st)
	}
	press(t, tab, "d")
	st = press(t, tab, "y")
	if len(sifs.removed) != 1 || sifs.removed[0] != "x_1.sif" || len(st) != 1 || st[0].Text != "removed x_1.sif" {
		t.Errorf("y: removed %v status %+v", sifs.removed, st)
	}
	if p := plain(tab.View(100, 20)); strings.Contains(p, "x_1.sif") {
		t.Errorf("removed file still listed:\n%s", p)
	}
	sifs.rmErr = errors.New("no SIF file named ubuntu_24.04.sif")
	press(t, tab, "d")
	st = press(t, tab, "y")
	if len(st) != 1 || !st[0].Err {
		t.Errorf("error status %+v", st)
	}
	press(t, tab, "esc")
	if tab.sifList.on || !strings.Contains(plain(tab.View(100, 20)), "USED BY YOU") {
		t.Error("esc did not go back")
	}
	sifs.files = nil
	press(t, tab, "v")
	if p := plain(tab.View(100, 20)); !strings.Contains(p, "No SIF files yet") {
		t.Errorf("empty view:\n%s", p)
	}
}
