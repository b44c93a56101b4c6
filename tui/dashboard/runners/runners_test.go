package runners

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/backend"
	"whalemountain/backend/runner"
	"whalemountain/tui/dashboard"
)

func TestRender(t *testing.T) {
	st := dashboard.DefaultStyles()
	two := []runner.Runner{
		{Owner: "alice", Name: "alice-demo", Project: "alice/demo", State: "running", Status: "Up 3 minutes"},
		{Owner: "alice", Name: "default", State: "missing", Status: "its container is gone\x1b]0;x\a"},
	}
	now := time.Date(2026, 12, 2, 8, 30, 0, 0, time.UTC)
	seen := runner.Runner{Owner: "alice", Name: "alice-demo", Project: "alice/demo", State: "running", Status: "Up 3 minutes",
		Online: runner.Online, LastContact: now.Add(-4 * time.Second), ViewFrom: runner.FromLog,
		JobsNow:    []runner.Job{{Name: "build-7", State: "running", StartedAt: now.Add(-40 * time.Second)}},
		RecentJobs: []runner.Job{{Name: "test-6", State: "exited", ExitCode: 1, Created: now.Add(-3 * time.Minute)}}}
	for _, tc := range []struct {
		name string
		v    View
		want []string
	}{
		{"loading", View{}, []string{"loading runners..."}},
		{"none", View{Loaded: true}, []string{"No runner yet.", "press t and paste its token"}},
		{"error", View{Loaded: true, Err: errors.New("docker unreachable")}, []string{"docker unreachable"}},
		{"two", View{Loaded: true, List: two, Sel: 1}, []string{"NAME", "alice-demo", "alice/demo", "running", "missing",
			"default: jobs run as containers of alice through alice's own Docker API"}},
		{"ta", View{Loaded: true, List: two, WithOwner: true}, []string{"OWNER", "alice   ", "alice-demo"}},
		{"jobs", View{Loaded: true, List: two, Jobs: map[string]int{"alice/alice-demo": 2}}, []string{"JOBS", "running     2"}},
		{"question", View{Loaded: true, List: two, Bottom: "remove?"}, []string{"remove?"}},
		{"gitlab's view", View{Loaded: true, List: []runner.Runner{seen}, Now: now}, []string{
			"NAME            PROJECT         STATE       JOBS  ONLINE   LAST CONTACT  STAT",
			"alice-demo      alice/demo      running     1     online   4s ago        Up",
			"GitLab's view (from its log): online, last contact 4s ago; engine: Up 3 minutes",
			"jobs now: build-7 (started 40s ago)", "last jobs:", "   exited 1   started 3m ago   test-6"}},
		{"not known yet", View{Loaded: true, List: two[:1], Now: now}, []string{
			"running     0     ?        ?", "GitLab's view (not known yet): ?, last contact ?", "jobs: none seen yet"}},
		{"ta's view", View{Loaded: true, List: []runner.Runner{seen}, Now: now, WithOwner: true}, []string{
			"OWNER     NAME          PROJECT       STATE       JOBS  ONLINE   LAST CONTACT",
			"alice     alice-demo    alice/demo    running     1     online   4s ago"}},
	} {
		got := Render(st, tc.v, 80, 24)
		plain := ansi.Strip(got)
		lines := strings.Split(got, "\n")
		if len(lines) != 24 {
			t.Errorf("%s: %d lines, want 24", tc.name, len(lines))
		}
		for _, l := range lines {
			if w := ansi.StringWidth(l); w > 80 {
				t.Errorf("%s: a line of %d cells: %q", tc.name, w, l)
			}
		}
		for _, w := range tc.want {
			if !strings.Contains(plain, w) {
				t.Errorf("%s: lacks %q:\n%s", tc.name, w, plain)
			}
		}
		if strings.Contains(plain, "\x1b]") || strings.Contains(plain, "\a") {
			t.Errorf("%s: an escape from a status reached the screen: %q", tc.name, plain)
		}
	}
}

// fakeService records what the tab asked.
type fakeService struct {
	mu     sync.Mutex
	list   []runner.Runner
	tokens []string
	calls  []string
}

func (f *fakeService) List(context.Context, backend.Identity, bool) ([]runner.Runner, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.list, nil
}
func (f *fakeService) SetToken(_ context.Context, id backend.Identity, project, token string) (runner.Runner, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.tokens = append(f.tokens, project+" "+token)
	return runner.Runner{Owner: id.User, Name: runner.NameFor(project), Project: project, State: "running"}, nil
}
func (f *fakeService) Restart(_ context.Context, _ backend.Identity, owner, ref, _ string) error {
	f.calls = append(f.calls, "restart "+owner+"/"+ref)
	return nil
}
func (f *fakeService) Remove(_ context.Context, _ backend.Identity, owner, ref, _ string) error {
	f.calls = append(f.calls, "rm "+owner+"/"+ref)
	return nil
}
func (f *fakeService) Logs(context.Context, backend.Identity, string, string, bool, int) (io.ReadCloser, error) {
	return io.NopCloser(strings.NewReader("runner log line\n")), nil
}

// run delivers msg and every message its commands produce, but ticks.
func run(tab *Tab, msg tea.Msg) {
	queue := []tea.Msg{msg}
	for len(queue) > 0 {
		m := queue[0]
		queue = queue[1:]
		_, cmd := tab.Update(m)
		queue = append(queue, drain(cmd)...)
	}
}

// drain runs cmd and the commands it batches; one still waiting after a moment (a tick, a
// cursor blink) is dropped.
func drain(cmd tea.Cmd) []tea.Msg {
	if cmd == nil {
		return nil
	}
	got := make(chan tea.Msg, 1)
	go func() { got <- cmd() }()
	var msg tea.Msg
	select {
	case msg = <-got:
	case <-time.After(2 * time.Second): // a tick
		return nil
	}
	switch m := msg.(type) {
	case tea.BatchMsg:
		var out []tea.Msg
		for _, c := range m {
			out = append(out, drain(c)...)
		}
		return out
	case tickMsg, nil:
		return nil
	default:
		return []tea.Msg{m}
	}
}

func press(s string) tea.KeyPressMsg {
	switch s {
	case "enter":
		return tea.KeyPressMsg{Code: tea.KeyEnter}
	case "esc":
		return tea.KeyPressMsg{Code: tea.KeyEscape}
	}
	return tea.KeyPressMsg{Code: []rune(s)[0], Text: s}
}

func TestTabTokenRestartRemove(t *testing.T) {
	svc := &fakeService{list: []runner.Runner{{Owner: "alice", Name: "alice-demo", Project: "alice/demo", State: "running"}}}
	tab := New(svc, backend.Identity{User: "alice", Role: backend.RoleStudent}, dashboard.DefaultStyles())
	defer tab.Close()
	for _, m := range drain(tab.Show(true)) {
		run(tab, m)
	}
	if !strings.Contains(ansi.Strip(tab.View(80, 24)), "alice-demo") {
		t.Fatalf("the list is not shown:\n%s", ansi.Strip(tab.View(80, 24)))
	}
	// t: the project is the selected runner's; the token is typed and never drawn.
	run(tab, press("t"))
	if !tab.Capturing() {
		t.Fatal("the token form does not take the keys")
	}
	run(tab, press("enter"))
	secret := "glrt-SECRETSECRETSECRET1"
	for _, r := range secret {
		run(tab, press(string(r)))
		if strings.Contains(tab.View(80, 24), "SECRET") {
			t.Fatalf("the token is drawn while typed:\n%s", tab.View(80, 24))
		}
	}
	run(tab, press("enter"))
	if len(svc.tokens) != 1 || svc.tokens[0] != "alice/demo "+secret {
		t.Errorf("SetToken calls: %q", svc.tokens)
	}
	run(tab, press("r"))
	run(tab, press("d"))
	if !strings.Contains(ansi.Strip(tab.View(80, 24)), "remove runner alice-demo") {
		t.Errorf("d asks no question:\n%s", ansi.Strip(tab.View(80, 24)))
	}
	run(tab, press("n"))
	run(tab, press("d"))
	run(tab, press("y"))
	if want := []string{"restart alice/alice-demo", "rm alice/alice-demo"}; strings.Join(svc.calls, ",") != strings.Join(want, ",") {
		t.Errorf("calls %q, want %q", svc.calls, want)
	}
}
