package class

import (
	"strings"
	"testing"

	"whalemountain/backend/docker"
	"whalemountain/tui/dashboard"
)

func TestSharedSummary(t *testing.T) {
	for _, tc := range []struct {
		name string
		ds   []docker.DatasetInfo
		gs   []docker.GroupInfo
		want string
	}{
		{"none", nil, nil, ""},
		{"datasets", []docker.DatasetInfo{{Name: "imagenet", Size: 3 << 30, Available: true}, {Name: "coco"}, {Name: "big", Size: -1, Available: true}}, nil,
			"datasets: imagenet 3.0 GiB, coco missing, big ?"},
		{"one workspace", nil, []docker.GroupInfo{{Group: "a", Used: 1 << 20}}, "1 group workspace, 1.0 MiB used"},
		{"workspaces, one size unknown, former members", nil, []docker.GroupInfo{
			{Group: "a", Used: 1 << 20, Former: []string{"bob/box"}}, {Group: "b", Used: -1, Former: []string{"carol/x"}},
		}, "2 group workspaces · 2 containers of former members still mount one (groups)"},
		{"both", []docker.DatasetInfo{{Name: "d", Available: true}}, []docker.GroupInfo{{Group: "a", Former: []string{"bob/box"}}},
			"datasets: d 0 B · 1 group workspace, 0 B used · 1 container of a former member still mounts one (groups)"},
	} {
		if got := SharedSummary(tc.ds, tc.gs); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
	// Drawn under the summary line, only when there is one.
	st := dashboard.DefaultStyles()
	with := Render(st, View{Shared: "datasets: d 1 B"}, 80, 10)
	without := Render(st, View{}, 80, 10)
	if !strings.Contains(with, "datasets: d 1 B") || strings.Count(with, "\n") != strings.Count(without, "\n")+1 {
		t.Errorf("render with the shared line:\n%s\nwithout:\n%s", with, without)
	}
}
