package groups_test

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"whalemountain/backend/gitlab"
	"whalemountain/backend/gitlab/gitlabtest"
	"whalemountain/backend/groups"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newStandIn(t *testing.T) (*gitlabtest.Server, *gitlab.Client, map[string]int64) {
	t.Helper()
	srv := gitlabtest.New()
	t.Cleanup(srv.Close)
	users := map[string]int64{}
	for _, u := range []string{"alice", "bob", "carol", "dave"} {
		users[u] = srv.AddUser(gitlabtest.User{Username: u})
	}
	srv.SetMember("os-2026/team-a", users["alice"], gitlab.Developer)
	srv.SetMember("os-2026/team-a", users["bob"], gitlab.Guest)
	srv.SetMember("os-2026/team-b", users["carol"], gitlab.Maintainer)
	srv.SetMember("os-2026", users["dave"], gitlab.Owner) // inherited by every team
	srv.GroupID("os-2026/staff")
	srv.GroupID("other/team-a")
	c, err := gitlab.New(srv.URL(), "", gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	return srv, c, users
}

func TestMembersFromGitLab(t *testing.T) {
	srv, c, users := newStandIn(t)
	clk := &clock{t: time.Unix(1e9, 0)}
	d := groups.New(groups.Config{TTL: time.Minute, StaleFor: time.Hour, Now: clk.Now}, c)
	ctx := context.Background()

	ms, err := d.Members(ctx, "OS-2026/team-a/")
	if err != nil || !slices.Equal(ms, []string{"alice", "bob", "dave"}) {
		t.Fatalf("members: %v %v", ms, err)
	}
	got, err := d.Expand(ctx, "os-2026/team-*")
	if err != nil || !slices.Equal(got, []string{"os-2026/team-a", "os-2026/team-b"}) {
		t.Fatalf("expand: %v %v", got, err)
	}
	if got, _ := d.Expand(ctx, "os-2026/staff"); !slices.Equal(got, []string{"os-2026/staff"}) {
		t.Fatalf("a plain path: %v", got)
	}

	// Cached for the TTL, then asked again.
	srv.SetMember("os-2026/team-a", users["bob"], 0)
	if ok, _ := d.IsMember(ctx, "os-2026/team-a", "bob"); !ok {
		t.Fatal("the cached answer was not used")
	}
	clk.Add(2 * time.Minute)
	if ok, err := d.IsMember(ctx, "os-2026/team-a", "bob"); ok || err != nil {
		t.Fatalf("bob still a member after the TTL: %v", err)
	}

	// GitLab down: the older answer serves for StaleFor, then the error comes through.
	srv.SetDown(true)
	clk.Add(2 * time.Minute)
	if ok, err := d.IsMember(ctx, "os-2026/team-a", "alice"); !ok || err != nil {
		t.Fatalf("stale answer while down: %v %v", ok, err)
	}
	clk.Add(2 * time.Hour)
	if _, err := d.IsMember(ctx, "os-2026/team-a", "alice"); err == nil {
		t.Fatal("an answer older than StaleFor was used")
	}
	if _, err := d.Members(ctx, "never/asked"); err == nil {
		t.Fatal("no answer at all, and no error")
	}
}

func TestStaticGroups(t *testing.T) {
	d := groups.New(groups.Config{Static: map[string][]string{"lab/seminar": {"Alice", "bob", "bob"}, "lab/other": nil}}, nil)
	ctx := context.Background()
	if ms, err := d.Members(ctx, "lab/seminar"); err != nil || !slices.Equal(ms, []string{"alice", "bob"}) {
		t.Fatalf("members: %v %v", ms, err)
	}
	if ok, _ := d.IsMember(ctx, "lab/other", "alice"); ok {
		t.Fatal("member of an empty group")
	}
	if got, err := d.Expand(ctx, "lab/*"); err != nil || !slices.Equal(got, []string{"lab/other", "lab/seminar"}) {
		t.Fatalf("expand: %v %v", got, err)
	}
	if _, err := d.Members(ctx, "lab/unlisted"); err == nil {
		t.Fatal("a group nobody listed, without GitLab, has members")
	}
}

func TestValidatePattern(t *testing.T) {
	for p, ok := range map[string]bool{
		"os-2026/team-*": true, "os-2026": true, "a/b/c_d.e": true, "a/team-[ab]": true,
		"": false, "/a": false, "a/": false, "a//b": false, "*/x": false, "a/../b": false, "a/b c": false, "a/[": false,
	} {
		if err := groups.ValidatePattern(p); (err == nil) != ok {
			t.Errorf("%q: %v", p, err)
		}
	}
}

func TestMissingGroupHasNobody(t *testing.T) {
	_, c, _ := newStandIn(t)
	d := groups.New(groups.Config{}, c)
	ctx := context.Background()
	if ms, err := d.Members(ctx, "no/such"); err != nil || len(ms) != 0 {
		t.Fatalf("members of a missing group: %v %v", ms, err)
	}
	if gs, err := d.Expand(ctx, "nope/team-*"); err != nil || len(gs) != 0 {
		t.Fatalf("groups below a missing parent: %v %v", gs, err)
	}
}

func TestTargetPrefix(t *testing.T) {
	for tpl, want := range map[string]string{
		"/groups/{group}": "/groups/", "/work/{group}/shared": "/work/", "/{group}": "/",
		"/groups/x{group}": "", "/groups/{group}/{group}": "", "groups/{group}": "", "/groups": "", "/a/../{group}": "", "/g:/{group}": "",
	} {
		got, err := groups.TargetPrefix(tpl)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("TargetPrefix(%q) = %q, %v; want %q", tpl, got, err, want)
		}
	}
}

func TestTargets(t *testing.T) {
	ts := groups.Targets{}
	if err := ts.Claim("a", "/datasets/a"); err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]string{
		"/datasets/a": "also the target of a", "/": "clean absolute path", "rel": "clean absolute path",
		"/x/../y": "clean absolute path", "/x:y": "clean absolute path", "/x,y": "clean absolute path",
	} {
		if err := ts.Claim("b", target); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Claim(%q) = %v, want %q", target, err, want)
		}
	}
	if got := ts.Among("/datasets/"); got != "a" {
		t.Errorf("Among(/datasets/) = %q, want a", got)
	}
	if got := ts.Among("/groups/"); got != "" {
		t.Errorf("Among(/groups/) = %q, want none", got)
	}
}

func TestDefaultTargets(t *testing.T) {
	for _, tc := range []struct{ got, want string }{
		{groups.DatasetTarget("imagenet", ""), "/datasets/imagenet"},
		{groups.DatasetTarget("imagenet", "/data/in"), "/data/in"},
		{groups.WorkspaceTarget("", "os-2026/team-a"), "/groups/os-2026/team-a"},
		{groups.WorkspaceTarget("/work/{group}/shared", "team-b"), "/work/team-b/shared"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
