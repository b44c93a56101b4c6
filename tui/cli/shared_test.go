package cli

import (
	"slices"
	"testing"

	"whalemountain/backend/docker"
)

func TestDatasetRow(t *testing.T) {
	for _, tc := range []struct {
		d    docker.DatasetInfo
		ta   bool
		want []string
	}{
		{docker.DatasetInfo{Name: "imagenet", Target: "/datasets/imagenet", Size: 3 << 30, Available: true, Description: "ImageNet"}, false,
			[]string{"imagenet", "/datasets/imagenet (read-only)", "3.0 GiB", "ImageNet"}},
		{docker.DatasetInfo{Name: "gone", Target: "/data/gone", Size: -1}, false,
			[]string{"gone", "/data/gone (read-only)", "missing", "–"}},
		{docker.DatasetInfo{Name: "big", Target: "/datasets/big", Size: -1, Available: true, Who: "TAs", Source: "/srv/big"}, true,
			[]string{"big", "/datasets/big (read-only)", "?", "–", "TAs", "/srv/big"}},
		{docker.DatasetInfo{Name: "x\x1b[31m", Target: "/datasets/x", Available: true}, false,
			[]string{"x\\x1b[31m", "/datasets/x (read-only)", "0 B", "–"}},
	} {
		if got := datasetRow(tc.d, tc.ta); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.d, got, tc.want)
		}
		if len(datasetHeader(tc.ta)) != len(tc.want) {
			t.Errorf("header and row of %+v differ in length", tc.d)
		}
	}
}

func TestGroupRow(t *testing.T) {
	for _, tc := range []struct {
		g    docker.GroupInfo
		want []string
	}{
		{docker.GroupInfo{Group: "os/team-a", Target: "/groups/os/team-a", Used: 1 << 20, Size: 10 << 30, Quota: "engine", Members: []string{"alice", "bob"}},
			[]string{"os/team-a", "/groups/os/team-a", "1.0 MiB", "10 GiB", "alice,bob"}},
		{docker.GroupInfo{Group: "os/team-b", Target: "/g/b", Used: -1, Size: 1 << 30, Quota: "server"},
			[]string{"os/team-b", "/g/b", "?", "1.0 GiB (uploads only)", "–"}},
		{docker.GroupInfo{Group: "lab", Target: "/groups/lab", Quota: "none", Members: []string{"carol"}},
			[]string{"lab", "/groups/lab", "0 B", "none", "carol"}},
	} {
		if got := groupRow(tc.g); !slices.Equal(got, tc.want) {
			t.Errorf("%+v: %q, want %q", tc.g, got, tc.want)
		}
	}
}
