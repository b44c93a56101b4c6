package docker_test

import (
	"context"
	"errors"
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
	if ps := svc.Presets(alice); len(ps) != 1 || ps[0].Name != "lab" {
		t.Errorf("alice is offered %+v", ps)
	}
	if ps := svc.Presets(tina); len(ps) != 2 {
		t.Errorf("tina is offered %+v", ps)
	}
	// Not offered is not found, before anything reaches the engine.
	if _, err := svc.RunPreset(context.Background(), alice, "grading", ""); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("alice's run of the TAs' preset: %v, want not found", err)
	}
}
