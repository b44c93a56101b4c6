package docker_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"whalemountain/backend"
	"whalemountain/backend/docker"
)

func TestPresetsByRole(t *testing.T) {
	svc, err := docker.New(docker.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	for _, bad := range [][]docker.Preset{
		{{Name: "a", Image: "x:1"}, {Name: "a", Image: "y:1"}},
		{{Name: "bad name", Image: "x:1"}},
		{{Name: "a", Image: ""}},
		{{Name: "a", Image: "x:1", Roles: []string{"admin"}}},
		{{Name: "a", Image: "x:1", Env: []string{"NOEQUALS"}}},
		{{Name: "a", Image: "x:1", GPUs: "many"}},
		{{Name: "a", Image: "x:1", Groups: []string{"os-2026/team-*"}}},
		{{Name: "a", Image: "x:1", Groups: []string{"../x"}}},
	} {
		if err := svc.SetPresets(bad); err == nil {
			t.Errorf("presets %+v accepted", bad)
		}
	}
	if err := svc.SetPresets([]docker.Preset{
		{Name: "lab", Image: "x:1"},
		{Name: "grading", Image: "x:1", Roles: []string{"ta"}},
	}); err != nil {
		t.Fatal(err)
	}
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	tina := backend.Identity{User: "tina", Role: backend.RoleTA}
	if ps := svc.Presets(context.Background(), alice); len(ps) != 1 || ps[0].Name != "lab" {
		t.Errorf("alice is offered %+v", ps)
	}
	if ps := svc.Presets(context.Background(), tina); len(ps) != 2 {
		t.Errorf("tina is offered %+v", ps)
	}
	// Not offered is not found, before anything reaches the engine.
	if _, err := svc.RunPreset(context.Background(), alice, "grading", ""); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("alice's run of the TAs' preset: %v, want not found", err)
	}
}

// staticGroups is a group directory of fixed members.
type staticGroups map[string][]string

func (g staticGroups) Members(_ context.Context, group string) ([]string, error) {
	return g[group], nil
}
func (g staticGroups) IsMember(_ context.Context, group, user string) (bool, error) {
	return slices.Contains(g[group], user), nil
}
func (g staticGroups) Expand(_ context.Context, p string) ([]string, error) { return []string{p}, nil }

func TestPresetsByGroup(t *testing.T) {
	svc, err := docker.New(docker.DefaultConfig(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	if err := svc.SetPresets([]docker.Preset{
		{Name: "team-a-lab", Image: "x:1", Groups: []string{"os-2026/team-a"}},
		{Name: "graders", Image: "x:1", Roles: []string{"ta"}, Groups: []string{"os-2026/graders"}},
	}); err != nil {
		t.Fatal(err)
	}
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	bob := backend.Identity{User: "bob", Role: backend.RoleStudent}
	tina := backend.Identity{User: "tina", Role: backend.RoleTA}
	ctx := context.Background()
	// Without a directory nobody is a member.
	if ps := svc.Presets(ctx, alice); len(ps) != 0 {
		t.Errorf("without a group directory alice is offered %+v", ps)
	}
	svc.SetGroupDirectory(staticGroups{"os-2026/team-a": {"alice"}, "os-2026/graders": {"bob"}})
	names := func(ps []docker.Preset) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.Name)
		}
		return out
	}
	for _, c := range []struct {
		id   backend.Identity
		want []string
	}{
		{alice, []string{"team-a-lab"}},
		{bob, []string{"graders"}},
		{tina, []string{"graders"}},
	} {
		if got := names(svc.Presets(ctx, c.id)); !slices.Equal(got, c.want) {
			t.Errorf("%s is offered %v, want %v", c.id.User, got, c.want)
		}
	}
	if _, err := svc.RunPreset(ctx, bob, "team-a-lab", ""); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("bob's run of team a's preset: %v, want not found", err)
	}
}
