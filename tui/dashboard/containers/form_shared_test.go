package containers

import (
	"testing"

	"whalemountain/backend/docker"
)

func TestSharedText(t *testing.T) {
	course := docker.DatasetInfo{Name: "course", Target: "/datasets/course", Available: true, Mounted: true}
	for _, tc := range []struct {
		name string
		ds   []docker.DatasetInfo
		gs   []docker.GroupInfo
		want string
	}{
		{"nothing", nil, nil, ""},
		{"a dataset", []docker.DatasetInfo{course}, nil, "also mounted: /datasets/course (read-only)"},
		{"missing or not the caller's", []docker.DatasetInfo{
			{Name: "gone", Target: "/datasets/gone", Mounted: true},
			{Name: "staff", Target: "/datasets/staff", Available: true},
		}, []docker.GroupInfo{{Group: "os/team-b", Target: "/groups/os/team-b"}}, ""},
		{"both", []docker.DatasetInfo{course}, []docker.GroupInfo{{Group: "os/team-a", Target: "/groups/os/team-a", Member: true}},
			"also mounted: /datasets/course (read-only), /groups/os/team-a"},
	} {
		if got := sharedText(tc.ds, tc.gs); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
