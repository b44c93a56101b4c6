package images

import (
	"context"
	"errors"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/dashboard"
)

type fakeService struct {
	mu       sync.Mutex
	list     []docker.Image
	listErr  error
	steps    []docker.PullProgress
	release  chan struct{}
	pullErr  error
	pulled   []string
	removed  []string
	rmErr    error
	pullCtxs []context.Context
}

func (f *fakeService) Images(context.Context, backend.Identity) ([]docker.Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list, f.listErr
}

func (f *fakeService) Pull(ctx context.Context, _ backend.Identity, ref string, progress func(docker.PullProgress)) error {
	for _, s := range f.steps {
		progress(s)
	}
	f.mu.Lock()
	f.pullCtxs = append(f.pullCtxs, ctx)
	f.mu.Unlock()
	if f.release != nil {
		select {
		case <-f.release:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	f.pulled = append(f.pulled, ref)
	f.mu.Unlock()
	return f.pullErr
}

func (f *fakeService) RemoveImage(_ context.Context, _ backend.Identity, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.removed = append(f.removed, ref)
	return f.rmErr
}

var (
	me      = backend.Identity{User: "alice"}
	sgrRE   = regexp.MustCompile("\x1b\\[[0-9;]*m")
	created = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
)

func plain(s string) string { return sgrRE.ReplaceAllString(s, "") }

func sampleList() []docker.Image {
	return []docker.Image{
		{Tags: []string{"ubuntu:24.04", "ubuntu:latest"}, ID: "0123456789ab", Size: 78 << 20, Created: created, InUseByYou: true},
		{Tags: []string{"evil\x1b[2J:tag"}, ID: "bbbbbbbbbbbb", Size: 1 << 30, Created: created},
		{ID: "cccccccccccc", Size: 1000},
	}
}

// runAll runs cmd and every command it yields, feeding messages (other than the status
// line, which it collects) back into tab; ticks are skipped unless keepTicks.
func drain(t *testing.T, tab *Tab, cmd tea.Cmd) []dashboard.StatusMsg {
	t.Helper()
	var status []dashboard.StatusMsg
	queue := []tea.Cmd{cmd}
	for len(queue) > 0 {
		c := queue[0]
		queue = queue[1:]
		if c == nil {
			continue
		}
		switch msg := c().(type) {
		case tea.BatchMsg:
			queue = append(queue, msg...)
		case dashboard.StatusMsg:
			status = append(status, msg)
		case pullTickMsg, sifTickMsg:
			// redraw ticks are tested separately
		case nil:
		default:
			_, next := tab.Update(msg)
			queue = append(queue, next)
		}
	}
	return status
}

func keyMsg(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

func press(t *testing.T, tab *Tab, s string) []dashboard.StatusMsg {
	t.Helper()
	_, cmd := tab.Update(keyMsg(s))
	return drain(t, tab, cmd)
}

func newTab(t *testing.T, f *fakeService) *Tab {
	t.Helper()
	tab := New(Deps{Images: f}, me, dashboard.DefaultStyles())
	tab.now = func() time.Time { return created.Add(72 * time.Hour) }
	t.Cleanup(tab.Close)
	drain(t, tab, tab.Init())
	return tab
}

func TestTableRender(t *testing.T) {
	tab := newTab(t, &fakeService{list: sampleList()})
	v := tab.View(80, 20)
	lines := strings.Split(v, "\n")
	for i, l := range lines {
		if w := ansi.StringWidth(l); w > 80 {
			t.Errorf("line %d is %d cells wide: %q", i, w, l)
		}
	}
	p := plain(v)
	for _, want := range []string{"IMAGE", "ID", "CREATED", "SIZE", "USED BY YOU", "ubuntu:24.04", "ubuntu:latest",
		"0123456789ab", "3d ago", "yes", "<none>", `evil\x1b[2J:tag`} {
		if !strings.Contains(p, want) {
			t.Errorf("view lacks %q:\n%s", want, p)
		}
	}
	if strings.Contains(v, "\x1b[2J") {
		t.Error("raw escape from a tag reached the view")
	}
	if len(lines) != 5 {
		t.Errorf("%d lines, want header and 4 rows", len(lines))
	}
	press(t, tab, "j")
	if tab.sel != 1 {
		t.Errorf("j: sel %d, want 1", tab.sel)
	}
	press(t, tab, "k")
	press(t, tab, "k")
	if tab.sel != 0 {
		t.Errorf("k: sel %d, want 0", tab.sel)
	}
	if got := strings.Split(tab.View(80, 24), "\n"); len(got) > 24 {
		t.Errorf("view is %d lines, more than 24", len(got))
	}
}

func TestPullProgressThenPulled(t *testing.T) {
	f := &fakeService{
		list:    sampleList(),
		release: make(chan struct{}),
		steps: []docker.PullProgress{
			{Status: "Pulling from library/alpine"},
			{ID: "aaaaaaaaaaaa", Status: "Downloading", Current: 50, Total: 100},
			{ID: "bbbbbbbbbbbb", Status: "Pull complete"},
		},
	}
	tab := newTab(t, f)
	press(t, tab, "p")
	if !tab.Capturing() {
		t.Fatal("p did not open the prompt")
	}
	for _, r := range "alpine" {
		press(t, tab, string(r))
	}
	if !strings.Contains(plain(tab.View(80, 24)), "pull: alpine") {
		t.Errorf("prompt not shown:\n%s", plain(tab.View(80, 24)))
	}
	_, cmd := tab.Update(keyMsg("enter"))
	if tab.Capturing() {
		t.Error("prompt still open after enter")
	}
	batch, ok := cmd().(tea.BatchMsg)
	if !ok {
		t.Fatalf("enter gave %T, want a batch", cmd())
	}
	msgs := make(chan tea.Msg, len(batch))
	for _, c := range batch {
		go func() { msgs <- c() }()
	}
	var done tea.Msg
	gotTick := false
	for !gotTick {
		switch msg := (<-msgs).(type) {
		case pullTickMsg:
			gotTick = true
			_, next := tab.Update(msg)
			if next == nil {
				t.Error("tick did not schedule the next one while pulling")
			}
		case dashboard.StatusMsg:
			if !strings.Contains(msg.Text, "pulling alpine") {
				t.Errorf("status %q", msg.Text)
			}
		case pullDoneMsg:
			done = msg
		}
	}
	v := plain(tab.View(80, 24))
	for _, want := range []string{"pulling alpine: Pulling from library/alpine", "aaaaaaaaaaaa", "Downloading", "█", "50 B/100 B", "Pull complete"} {
		if !strings.Contains(v, want) {
			t.Errorf("progress lacks %q:\n%s", want, v)
		}
	}
	for _, l := range strings.Split(tab.View(80, 24), "\n") {
		if ansi.StringWidth(l) > 80 {
			t.Errorf("line too wide: %q", l)
		}
	}
	// Switching tabs is no message to this tab: the pull goes on. Close is what cancels.
	close(f.release)
	for done == nil {
		if msg, ok := (<-msgs).(pullDoneMsg); ok {
			done = msg
		}
	}
	_, cmd = tab.Update(done)
	st := drain(t, tab, cmd)
	if len(st) != 1 || st[0].Text != "pulled alpine" || st[0].Err {
		t.Errorf("status %+v, want pulled alpine", st)
	}
	if tab.pulling != nil || strings.Contains(plain(tab.View(80, 24)), "aaaaaaaaaaaa") {
		t.Error("progress still shown after the pull")
	}
	if len(f.pulled) != 1 || f.pulled[0] != "alpine" {
		t.Errorf("pulled %v", f.pulled)
	}
}

func TestPullErrorAndClose(t *testing.T) {
	f := &fakeService{list: sampleList(), pullErr: errors.New("denied by policy\x1b[31m\nsecond")}
	tab := newTab(t, f)
	press(t, tab, "p")
	press(t, tab, "x")
	_, cmd := tab.Update(keyMsg("enter"))
	st := drain(t, tab, cmd)
	last := st[len(st)-1]
	if !last.Err || !strings.Contains(last.Text, "denied by policy") || strings.ContainsAny(last.Text, "\x1b\n") {
		t.Errorf("error status %+v", last)
	}

	// Close cancels a pull in flight.
	f2 := &fakeService{release: make(chan struct{})}
	tab2 := newTab(t, f2)
	press(t, tab2, "p")
	press(t, tab2, "y")
	_, cmd = tab2.Update(keyMsg("enter"))
	batch := cmd().(tea.BatchMsg)
	res := make(chan tea.Msg, len(batch))
	for _, c := range batch {
		go func() { res <- c() }()
	}
	tab2.Close()
	for {
		if msg, ok := (<-res).(pullDoneMsg); ok {
			if !errors.Is(msg.err, context.Canceled) {
				t.Errorf("pull after Close: %v", msg.err)
			}
			break
		}
	}
}

func TestEscCancelsPrompt(t *testing.T) {
	f := &fakeService{list: sampleList()}
	tab := newTab(t, f)
	press(t, tab, "p")
	press(t, tab, "a")
	press(t, tab, "esc")
	if tab.Capturing() || tab.pulling != nil || len(f.pulled) != 0 {
		t.Error("esc did not cancel the prompt")
	}
}

func TestRemoveConfirm(t *testing.T) {
	f := &fakeService{list: sampleList()}
	tab := newTab(t, f)
	press(t, tab, "j") // ubuntu:latest
	press(t, tab, "d")
	if !strings.Contains(plain(tab.View(80, 24)), "remove ubuntu:latest? y/N") {
		t.Errorf("no question:\n%s", plain(tab.View(80, 24)))
	}
	st := press(t, tab, "n")
	if len(f.removed) != 0 || len(st) != 1 || st[0].Text != "kept ubuntu:latest" {
		t.Errorf("N: removed %v, status %+v", f.removed, st)
	}
	press(t, tab, "d")
	st = press(t, tab, "y")
	if len(f.removed) != 1 || f.removed[0] != "ubuntu:latest" {
		t.Errorf("y: removed %v", f.removed)
	}
	if last := st[len(st)-1]; last.Err || last.Text != "removed ubuntu:latest" {
		t.Errorf("y: status %+v", st)
	}

	// Errors go to the status line as errors.
	f.rmErr = errors.New("image is in use by a container")
	press(t, tab, "j") // evil tag
	press(t, tab, "d")
	st = press(t, tab, "y")
	if last := st[len(st)-1]; !last.Err || last.Text != "image is in use by a container" {
		t.Errorf("error status %+v", st)
	}
	// An untagged image has no tag to remove: d is not offered and asks nothing.
	press(t, tab, "j")
	if slices.Contains(strings.Fields(keyHelp(tab)), "d") {
		t.Errorf("d offered on an untagged image: %s", keyHelp(tab))
	}
	n := len(f.removed)
	st = press(t, tab, "d")
	if tab.confirm != nil || len(f.removed) != n || len(st) != 1 || !st[0].Err || !strings.Contains(st[0].Text, "no tag") {
		t.Errorf("d on an untagged image: confirm %v, removed %v, status %+v", tab.confirm, f.removed, st)
	}
}

// policyService is a fakeService with the backend's ownership rule for removing tags.
type policyService struct {
	*fakeService
	policy docker.ImagePolicy
}

func (p policyService) MayRemove(id backend.Identity, ref string) bool {
	return p.policy.MayRemove(id, ref)
}

func TestRemoveOfferedOnlyWhereAllowed(t *testing.T) {
	f := &fakeService{list: []docker.Image{
		{Tags: []string{"ubuntu:24.04"}, ID: "0123456789ab", Created: created, InUseByYou: true},
		{Tags: []string{"registry.example.org/alice/ml:1"}, ID: "1123456789ab", Created: created},
	}}
	svc := policyService{fakeService: f, policy: docker.ImagePolicy{RegistryNamespace: "registry.example.org"}}
	tab := New(Deps{Images: svc}, backend.Identity{User: "alice", Role: backend.RoleStudent}, dashboard.DefaultStyles())
	t.Cleanup(tab.Close)
	drain(t, tab, tab.Init())

	// Not hers: no d in the footer, only in the help with why; d says "not yours" at once.
	if slices.Contains(strings.Fields(keyHelp(tab)), "d") {
		t.Errorf("d offered on a tag that is not hers: %s", keyHelp(tab))
	}
	if !strings.Contains(fullHelp(tab), "d remove (your own registry tags only)") {
		t.Errorf("help does not say whose tags d removes: %s", fullHelp(tab))
	}
	st := press(t, tab, "d")
	if tab.confirm != nil || len(f.removed) != 0 {
		t.Errorf("d on another's tag asked or removed: %v %v", tab.confirm, f.removed)
	}
	if len(st) != 1 || !st[0].Err || !strings.Contains(st[0].Text, "not yours to remove") || strings.Contains(st[0].Text, "in use") {
		t.Errorf("d on another's tag: status %+v, want not yours", st)
	}
	// Hers: offered and asked.
	press(t, tab, "j")
	if !slices.Contains(strings.Fields(keyHelp(tab)), "d") {
		t.Errorf("d not offered on her own tag: %s", keyHelp(tab))
	}
	press(t, tab, "d")
	if !strings.Contains(plain(tab.View(80, 20)), "remove registry.example.org/alice/ml:1? y/N") {
		t.Errorf("no question for her own tag:\n%s", plain(tab.View(80, 20)))
	}
	press(t, tab, "y")
	if len(f.removed) != 1 || f.removed[0] != "registry.example.org/alice/ml:1" {
		t.Errorf("removed %v", f.removed)
	}
}

func fullHelp(tab *Tab) string {
	var out []string
	for _, b := range tab.FullKeys() {
		out = append(out, b.Help().Key+" "+b.Help().Desc)
	}
	return strings.Join(out, ", ")
}

func TestFailedPullSaysWhyInFull(t *testing.T) {
	reason := "pull access denied for registry.example.org/group/project/a-rather-long-image-name, " +
		"repository does not exist or may require 'docker login': denied: requested access to the resource is denied"
	f := &fakeService{list: sampleList(), pullErr: errors.New(reason)}
	tab := newTab(t, f)
	press(t, tab, "p")
	for _, r := range "registry.example.org/group/project/a-rather-long-image-name" {
		press(t, tab, string(r))
	}
	_, cmd := tab.Update(keyMsg("enter"))
	st := drain(t, tab, cmd)
	if last := st[len(st)-1]; !last.Err || !strings.Contains(last.Text, "failed") {
		t.Errorf("status %+v", st)
	}
	view := tab.View(80, 20)
	for _, l := range strings.Split(view, "\n") {
		if ansi.StringWidth(l) > 80 {
			t.Errorf("line wider than 80: %q", plain(l))
		}
	}
	flat := strings.Join(strings.Fields(plain(view)), " ")
	if !strings.Contains(flat, "requested access to the resource is denied") || !strings.Contains(flat, "may require 'docker login'") {
		t.Errorf("the reason is not shown in full:\n%s", plain(view))
	}
	press(t, tab, "j")
	if strings.Contains(plain(tab.View(80, 20)), "denied") {
		t.Error("the reason stays after the next key")
	}
}

func TestRegistryKeyWithoutGitLabSaysWhy(t *testing.T) {
	tab := newTab(t, &fakeService{list: sampleList()})
	st := press(t, tab, "m")
	if tab.registry.on || len(st) != 1 || !strings.Contains(st[0].Text, "no GitLab") {
		t.Errorf("m without GitLab: on %v, status %+v", tab.registry.on, st)
	}
	if !strings.Contains(fullHelp(tab), "my registry (needs GitLab") {
		t.Errorf("help does not say m needs GitLab: %s", fullHelp(tab))
	}
}

func TestSelectedRowIsMarked(t *testing.T) {
	tab := newTab(t, &fakeService{list: sampleList()})
	lines := strings.Split(plain(tab.View(80, 20)), "\n")
	if !strings.HasPrefix(lines[1], "▸ ubuntu:24.04") || !strings.HasPrefix(lines[2], "  ubuntu:latest") {
		t.Errorf("selection not marked with ▸:\n%s", strings.Join(lines, "\n"))
	}
}

func TestLoadErrorAndReload(t *testing.T) {
	f := &fakeService{listErr: errors.New("engine unreachable")}
	tab := newTab(t, f)
	if !strings.Contains(plain(tab.View(80, 24)), "engine unreachable") {
		t.Errorf("load error not shown:\n%s", plain(tab.View(80, 24)))
	}
	f.mu.Lock()
	f.listErr, f.list = nil, sampleList()
	f.mu.Unlock()
	press(t, tab, "R")
	if !strings.Contains(plain(tab.View(80, 24)), "ubuntu:24.04") {
		t.Error("R did not reload")
	}
}

func TestOtherTabsMessagesIgnored(t *testing.T) {
	tab := newTab(t, &fakeService{list: sampleList()})
	other := New(Deps{Images: &fakeService{}}, me, dashboard.DefaultStyles())
	tab.Update(loadedMsg{tab: other, list: nil})
	if len(tab.rows) != 4 {
		t.Error("another tab's list replaced this one")
	}
}
