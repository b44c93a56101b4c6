package gitlab_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"whalemountain/backend/gitlab"
	"whalemountain/backend/gitlab/gitlabtest"
)

// TestRunners: a runner token is checked, reset, and deleted through GitLab's runner API,
// and no error ever repeats it.
func TestRunners(t *testing.T) {
	ctx := context.Background()
	srv := gitlabtest.New(gitlabtest.WithToken("secret"))
	defer srv.Close()
	alice := srv.AddUser(gitlabtest.User{Username: "alice"})
	bob := srv.AddUser(gitlabtest.User{Username: "bob"})
	carol := srv.AddUser(gitlabtest.User{Username: "carol"})
	proj := srv.AddProject(alice, "demo", true)
	srv.SetProjectMember(proj, bob, gitlab.Developer)
	c := newClient(t, srv)

	id, token := srv.AddRunner(proj)
	if v, err := c.RunnerView(ctx, id); err != nil || v.Online || v.Status != "never_contacted" || !v.ContactedAt.IsZero() {
		t.Errorf("GitLab's view of a runner never contacted: %+v, %v", v, err)
	}
	before := time.Now().Add(-time.Second)
	if got, err := c.VerifyRunner(ctx, token); err != nil || got != id {
		t.Fatalf("verify a good token: runner %d, %v; want runner %d", got, err, id)
	}
	if v, err := c.RunnerView(ctx, id); err != nil || !v.Online || v.Status != "online" || v.ContactedAt.Before(before) {
		t.Errorf("GitLab's view of a runner that just asked: %+v, %v; want online, contacted after %v", v, err, before)
	}
	if _, err := c.RunnerView(ctx, 9999); err == nil {
		t.Error("GitLab's view of a runner that does not exist: no error")
	}
	if srv.Runner(id).Verifies != 1 {
		t.Errorf("GitLab saw %d verifies, want 1", srv.Runner(id).Verifies)
	}
	bad := "glrt-" + strings.Repeat("x", 20)
	if _, err := c.VerifyRunner(ctx, bad); !errors.Is(err, gitlab.ErrRunnerToken) || strings.Contains(err.Error(), bad) {
		t.Errorf("verify a bad token: %v, want ErrRunnerToken without the token", err)
	}

	for user, want := range map[string]int{"alice": gitlab.Owner, "bob": gitlab.Developer, "carol": gitlab.NoAccess} {
		got, err := c.ProjectAccessLevel(ctx, "alice/demo", user)
		if err != nil || got != want {
			t.Errorf("%s in alice/demo: %d, %v; want %d", user, got, err, want)
		}
	}
	_ = carol

	made, err := c.CreateProjectRunner(ctx, "alice/demo", "whalemountain alice")
	if err != nil || !strings.HasPrefix(made.Token, "glrt-") {
		t.Fatalf("create a project runner: %+v, %v", made, err)
	}
	fresh, err := c.ResetRunnerToken(ctx, made.ID)
	if err != nil || fresh == made.Token {
		t.Fatalf("reset: %q, %v", fresh, err)
	}
	if _, err := c.VerifyRunner(ctx, made.Token); !errors.Is(err, gitlab.ErrRunnerToken) {
		t.Errorf("the old token still verifies: %v", err)
	}
	if err := c.DeleteRunner(ctx, fresh); err != nil {
		t.Fatalf("delete by token: %v", err)
	}
	if srv.Runner(made.ID).Exists {
		t.Error("the runner still exists after DELETE /runners")
	}
	if err := c.DeleteRunnerByID(ctx, id); err != nil || srv.Runner(id).Exists {
		t.Errorf("delete by ID: %v (exists %v)", err, srv.Runner(id).Exists)
	}

	// GitLab down: the error says so and never carries the token (a DELETE puts it in the URL).
	srv.SetDown(true)
	err = c.DeleteRunner(ctx, token)
	if err == nil || !gitlab.IsUnavailable(err) || strings.Contains(err.Error(), token) {
		t.Errorf("delete while GitLab is down: %v, want unavailable without the token", err)
	}
	if _, err := c.VerifyRunner(ctx, token); err == nil || strings.Contains(err.Error(), token) {
		t.Errorf("verify while GitLab is down: %v", err)
	}
}
