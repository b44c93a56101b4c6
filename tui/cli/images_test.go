package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/termsafe"
)

// kindErr is a one-line error of a backend kind, as the backend returns them.
type kindErr struct {
	kind error
	msg  string
}

func (e kindErr) Error() string        { return e.msg }
func (e kindErr) Is(target error) bool { return target == e.kind }

type fakeImages struct {
	list    []docker.Image
	steps   []docker.PullProgress
	pullErr error
	rmErr   map[string]error
	removed []string
	pulled  []string
}

func (f *fakeImages) Images(context.Context, backend.Identity) ([]docker.Image, error) {
	return f.list, nil
}

func (f *fakeImages) Pull(_ context.Context, _ backend.Identity, ref string, progress func(docker.PullProgress)) error {
	f.pulled = append(f.pulled, ref)
	for _, s := range f.steps {
		progress(s)
	}
	return f.pullErr
}

func (f *fakeImages) RemoveImage(_ context.Context, _ backend.Identity, ref string) error {
	if err := f.rmErr[ref]; err != nil {
		return err
	}
	f.removed = append(f.removed, ref)
	return nil
}

// runImageCLI runs args with the image verbs over images, the way Run does.
func runImageCLI(images Images, args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := aliceEnv(&out, &errb)
	root := newRoot(env)
	for _, c := range root.Commands() {
		if slices.Contains([]string{"images", "pull", "rmi"}, c.Name()) {
			root.RemoveCommand(c)
		}
	}
	root.AddCommand(imageCmds(env, images)...)
	root.SetArgs(args)
	err := root.ExecuteContext(env.Ctx)
	if err == nil {
		return ExitOK, out.String(), errb.String()
	}
	fmt.Fprintln(&errb, "error: "+termsafe.Line(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage, out.String(), errb.String()
	}
	return ExitFail, out.String(), errb.String()
}

func sampleImages() []docker.Image {
	now := time.Now()
	return []docker.Image{
		{Tags: []string{"registry.ie.example/alice/ml:latest"}, ID: "0123456789ab", Size: 3 << 30, Created: now.Add(-2 * time.Hour), InUseByYou: true},
		{Tags: []string{"ubuntu:24.04", "ubuntu:latest"}, ID: "aaaaaaaaaaaa", Size: 78 << 20, Created: now.Add(-72 * time.Hour)},
		{ID: "bbbbbbbbbbbb", Size: 1024},
		{Tags: []string{"evil\x1b[2J:1"}, ID: "cccccccccccc"},
	}
}

func TestImagesTable(t *testing.T) {
	code, out, errs := runImageCLI(&fakeImages{list: sampleImages()}, "images")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines:\n%s", len(lines), out)
	}
	for i, want := range [][]string{
		{"IMAGE", "ID", "CREATED", "SIZE", "USED BY YOU"},
		{"registry.ie.example/alice/ml:latest", "0123456789ab", "2h ago", "3.0 GiB", "yes"},
		{"ubuntu:24.04", "aaaaaaaaaaaa", "3d ago", "78 MiB", "–"},
		{"ubuntu:latest", "aaaaaaaaaaaa"},
		{"<none>", "bbbbbbbbbbbb", "1.0 KiB"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("line %d %q lacks %q", i, lines[i], w)
			}
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("raw escape reached the terminal")
	}
}

func TestImagesJSON(t *testing.T) {
	code, out, _ := runImageCLI(&fakeImages{list: sampleImages()[:3]}, "images", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var got []map[string]any
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0]["in_use_by_you"] != true || got[0]["id"] != "0123456789ab" {
		t.Errorf("got %v", got)
	}
	if tags, ok := got[2]["tags"].([]any); !ok || len(tags) != 0 {
		t.Errorf("untagged image tags %v, want []", got[2]["tags"])
	}
	_, out, _ = runImageCLI(&fakeImages{}, "images", "--json")
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("empty list printed %q", out)
	}
}

func TestPullPrintsStateChanges(t *testing.T) {
	f := &fakeImages{steps: []docker.PullProgress{
		{ID: "latest", Status: "Pulling from library/busybox"},
		{ID: "9ad63333ebc9", Status: "Pulling fs layer"},
		{ID: "9ad63333ebc9", Status: "Downloading", Current: 1, Total: 2 << 20},
		{ID: "9ad63333ebc9", Status: "Downloading", Current: 1 << 20, Total: 2 << 20},
		{ID: "9ad63333ebc9", Status: "Downloading", Current: 2 << 20, Total: 2 << 20},
		{ID: "9ad63333ebc9", Status: "Download complete"},
		{ID: "9ad63333ebc9", Status: "Extracting", Current: 1, Total: 2 << 20},
		{ID: "9ad63333ebc9", Status: "Extracting", Current: 2 << 20, Total: 2 << 20},
		{ID: "9ad63333ebc9", Status: "Pull complete"},
		{Status: "Digest: sha256:2376a0c12759aa1214ba83e771ff252c7b1663216b192fbe5e0fb364e952f85c"},
		{Status: "Status: Downloaded newer image for busybox:latest\x1b[2J"},
	}}
	code, out, errs := runImageCLI(f, "pull", "busybox")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want := []string{
		"latest: Pulling from library/busybox",
		"9ad63333ebc9: Pulling fs layer",
		"9ad63333ebc9: Downloading (2.0 MiB)",
		"9ad63333ebc9: Download complete",
		"9ad63333ebc9: Extracting (2.0 MiB)",
		"9ad63333ebc9: Pull complete",
		"Digest: sha256:2376a0c12759aa1214ba83e771ff252c7b1663216b192fbe5e0fb364e952f85c",
		`Status: Downloaded newer image for busybox:latest\x1b[2J`,
		"pulled busybox",
	}
	if got := strings.Split(strings.TrimRight(out, "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("output:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestPullFailures(t *testing.T) {
	cases := []struct {
		name string
		args []string
		err  error
		code int
		want string
	}{
		{"policy", []string{"pull", "busybox"}, kindErr{docker.ErrPermission, "image busybox:latest is not allowed on this server"}, 1,
			"error: image busybox:latest is not allowed on this server"},
		{"registry", []string{"pull", "nope"}, errors.New("pull nope:latest: manifest unknown"), 1, "error: pull nope:latest: manifest unknown"},
		{"bad ref", []string{"pull", "Not A Ref"}, nil, 2, "error: invalid image reference"},
		{"no arg", []string{"pull"}, nil, 2, "pull needs an IMAGE (usage: ssh -p 2222 gpu1 pull IMAGE)"},
		{"two args", []string{"pull", "a", "b"}, nil, 2, "pull takes one IMAGE, not 2 arguments"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := &fakeImages{pullErr: c.err}
			code, out, errs := runImageCLI(f, c.args...)
			if code != c.code || !strings.Contains(errs, c.want) {
				t.Errorf("exit %d stderr %q, want %d and %q", code, errs, c.code, c.want)
			}
			if strings.Contains(out, "pulled") {
				t.Errorf("stdout %q", out)
			}
			if c.code == 2 && len(f.pulled) != 0 {
				t.Errorf("bad usage reached the backend: %v", f.pulled)
			}
		})
	}
}

func TestRmi(t *testing.T) {
	f := &fakeImages{rmErr: map[string]error{
		"ubuntu:24.04": kindErr{docker.ErrPermission, "image ubuntu:24.04 is not yours to remove"},
		"busybox":      errors.New("image busybox:latest is in use by a container"),
	}}
	code, out, errs := runImageCLI(f, "rmi", "registry.ie.example/alice/x:1")
	if code != 0 || strings.TrimSpace(out) != "registry.ie.example/alice/x:1" || errs != "" {
		t.Errorf("one: exit %d out %q err %q", code, out, errs)
	}
	code, _, errs = runImageCLI(f, "rmi", "ubuntu:24.04")
	if code != 1 || strings.TrimSpace(errs) != "error: image ubuntu:24.04 is not yours to remove" {
		t.Errorf("refused: exit %d err %q", code, errs)
	}
	code, out, errs = runImageCLI(f, "rmi", "registry.ie.example/alice/y:1", "busybox", "ubuntu:24.04")
	if code != 1 || strings.TrimSpace(out) != "registry.ie.example/alice/y:1" ||
		!strings.Contains(errs, "in use by a container") || !strings.Contains(errs, "not yours") || !strings.Contains(errs, "2 of 3 failed") {
		t.Errorf("several: exit %d out %q err %q", code, out, errs)
	}
	if code, _, _ := runImageCLI(f, "rmi"); code != 2 {
		t.Errorf("no args: exit %d", code)
	}
}

func TestImageVerbsWithoutDocker(t *testing.T) {
	for _, args := range [][]string{{"images"}, {"pull", "busybox"}, {"rmi", "x"}} {
		code, _, errs := runImageCLI(nil, args...)
		if code != 1 || !strings.Contains(errs, "images are not available") {
			t.Errorf("%v: exit %d err %q", args, code, errs)
		}
	}
}

// aliceEnv is the Env of a command run by the student alice, writing to out and errb.
func aliceEnv(out, errb *bytes.Buffer) Env {
	return Env{
		Ctx:      context.Background(),
		Identity: backend.Identity{User: "alice", Role: backend.RoleStudent},
		Stdin:    strings.NewReader(""),
		Stdout:   out,
		Stderr:   errb,
		Prefix:   "ssh -p 2222 gpu1",
	}
}
