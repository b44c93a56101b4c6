package files

import (
	"errors"
	"slices"
	"testing"

	"github.com/pkg/sftp"

	"whalemountain/backend"
)

func TestResolveGroup(t *testing.T) {
	mine := []string{"os-2026/team-a", "lab/x/y"}
	for _, tc := range []struct {
		rest string
		want node
		err  bool
	}{
		{rest: "os-2026/team-a", want: node{kind: nodePlace, place: backend.InGroup("os-2026/team-a"), path: "/"}},
		{rest: "os-2026/team-a/notes/a.txt", want: node{kind: nodePlace, place: backend.InGroup("os-2026/team-a"), path: "/notes/a.txt"}},
		{rest: "os-2026", want: node{kind: nodeGroupsDir, path: "os-2026"}},
		{rest: "lab/x", want: node{kind: nodeGroupsDir, path: "lab/x"}},
		{rest: "lab/x/y/z", want: node{kind: nodePlace, place: backend.InGroup("lab/x/y"), path: "/z"}},
		{rest: "os-2026/team-b", err: true},
		{rest: "os-2026/team-ab", err: true},
		{rest: "os-2026/team", err: true},
		{rest: "OS-2026/team-a", err: true},
		{rest: "os", err: true},
	} {
		got, err := resolveGroup(tc.rest, mine)
		if tc.err {
			if !errors.Is(err, sftp.ErrSSHFxNoSuchFile) {
				t.Errorf("%q: %+v %v, want no such file", tc.rest, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v, want %+v", tc.rest, got, err, tc.want)
		}
	}
}

func TestGroupLevel(t *testing.T) {
	mine := []string{"os-2026/team-b", "os-2026/team-a", "lab/x/y"}
	for prefix, want := range map[string][]string{
		"":        {"lab", "os-2026"},
		"os-2026": {"team-a", "team-b"},
		"lab":     {"x"},
		"lab/x":   {"y"},
		"nope":    nil,
	} {
		if got := groupLevel(prefix, mine); !slices.Equal(got, want) {
			t.Errorf("%q: %v, want %v", prefix, got, want)
		}
	}
}

func TestResolveShared(t *testing.T) {
	for p, want := range map[string]node{
		"/datasets":              {kind: nodeDatasets},
		"/datasets/imagenet":     {kind: nodePlace, place: backend.InDataset("imagenet"), path: "/"},
		"/datasets/imagenet/a/b": {kind: nodePlace, place: backend.InDataset("imagenet"), path: "/a/b"},
		"/groups":                {kind: nodeGroupsDir},
		"/groups/os/team-a/f":    {kind: nodeGroupsDir, path: "os/team-a/f"},
		"/users":                 {kind: nodeUsers},
		"/users/alice":           {kind: nodeUser, path: "alice"},
		"/users/alice/home":      {kind: nodePlace, place: backend.InHomeOf("alice"), path: "/"},
		"/users/alice/home/a/b":  {kind: nodePlace, place: backend.InHomeOf("alice"), path: "/a/b"},
	} {
		if got, err := resolve(p); err != nil || got != want {
			t.Errorf("%q: %+v %v, want %+v", p, got, err, want)
		}
	}
	for _, p := range []string{"/datasets/../home", "/groups/../home", "/datasets//x", "/users/alice/containers/box", "/users/../home"} {
		if _, err := resolve(p); err == nil {
			t.Errorf("%q resolved", p)
		}
	}
}
