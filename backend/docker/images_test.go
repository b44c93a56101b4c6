package docker_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

// --- the progress decoder, over recorded streams ---

func TestDecodePullStream(t *testing.T) {
	type step struct {
		id, status     string
		current, total int64
	}
	cases := []struct {
		file    string
		n       int    // messages emitted
		first   step   // the first one
		last    step   // the last one
		layers  int    // distinct layer IDs (the image line's "latest" and "" excluded)
		wantErr string // substring of the error; "" for none
	}{
		{file: "busybox-fresh.jsonl", n: 12, first: step{"latest", "Pulling from library/busybox", 0, 0},
			last: step{"", "Status: Downloaded newer image for busybox:latest", 0, 0}, layers: 1},
		{file: "python-two-layers.jsonl", n: 19, first: step{"3.12-slim", "Pulling from library/python", 0, 0},
			last: step{"", "Status: Downloaded newer image for python:3.12-slim", 0, 0}, layers: 3},
		{file: "up-to-date.jsonl", n: 3, first: step{"24.04", "Pulling from library/ubuntu", 0, 0},
			last: step{"", "Status: Image is up to date for ubuntu:24.04", 0, 0}},
		{file: "manifest-unknown.jsonl", n: 1, first: step{"latest", "Pulling from library/nonexistent", 0, 0},
			last: step{"latest", "Pulling from library/nonexistent", 0, 0}, wantErr: "manifest for nonexistent:latest not found"},
		{file: "error-mid-download.jsonl", n: 3, first: step{"latest", "Pulling from library/busybox", 0, 0},
			last: step{"9ad63333ebc9", "Downloading", 22356, 2217134}, layers: 1, wantErr: "connection reset by peer"},
		{file: "truncated.jsonl", n: 1, first: step{"latest", "Pulling from library/busybox", 0, 0},
			last: step{"latest", "Pulling from library/busybox", 0, 0}, wantErr: "cut short"},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", "pull", c.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			var got []step
			err = docker.DecodePullStream(f, func(p docker.PullProgress) {
				got = append(got, step{p.ID, p.Status, p.Current, p.Total})
			})
			switch {
			case c.wantErr == "" && err != nil:
				t.Fatalf("error %v", err)
			case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, c.wantErr)
			}
			if len(got) != c.n {
				t.Fatalf("%d messages, want %d: %v", len(got), c.n, got)
			}
			if got[0] != c.first || got[len(got)-1] != c.last {
				t.Errorf("first %v last %v, want %v and %v", got[0], got[len(got)-1], c.first, c.last)
			}
			layers := map[string]bool{}
			for _, s := range got {
				if s.id != "" && !strings.HasPrefix(s.status, "Pulling from ") {
					layers[s.id] = true
				}
			}
			if len(layers) != c.layers {
				t.Errorf("%d layers, want %d: %v", len(layers), c.layers, layers)
			}
		})
	}
}

func TestDecodePullStreamGarbage(t *testing.T) {
	err := docker.DecodePullStream(strings.NewReader("<html>502 Bad Gateway</html>"), nil)
	if err == nil || strings.Contains(err.Error(), "\n") {
		t.Fatalf("error %q, want one line", err)
	}
}

// --- the policy and the ownership rule ---

func TestImagePolicyAllows(t *testing.T) {
	p := docker.ImagePolicy{
		Allow: []string{"ubuntu", "python:3.*", "registry.ie.example/**", "docker.io/nvidia/cuda:*"},
		Deny:  []string{"registry.ie.example/banned/**", "ubuntu:14.04"},
	}
	cases := []struct {
		ref  string
		want bool
	}{
		{"ubuntu", true},
		{"ubuntu:24.04", true},
		{"docker.io/library/ubuntu:22.04", true},
		{"ubuntu:14.04", false}, // denied
		{"python:3.12", true},
		{"python:2.7", false},
		{"python", false}, // python:latest is not python:3.*
		{"nvidia/cuda:12.4.1-runtime-ubuntu22.04", true},
		{"nvidia/cuda-other:1", false},
		{"registry.ie.example/alice/ml:latest", true},
		{"registry.ie.example/banned/x:1", false},
		{"evil.example/ubuntu:24.04", false}, // not docker.io's ubuntu
		{"busybox", false},
		{"Not A Ref", false},
		{"", false},
	}
	for _, c := range cases {
		if got := p.Allows(c.ref); got != c.want {
			t.Errorf("Allows(%q) = %v, want %v", c.ref, got, c.want)
		}
	}
	if !(docker.ImagePolicy{}).Allows("anything/at:all") {
		t.Error("the empty policy should allow everything")
	}
	if (docker.ImagePolicy{Deny: []string{"**"}}).Allows("ubuntu") {
		t.Error("deny ** should deny everything")
	}
}

func TestImagePolicyValidate(t *testing.T) {
	for _, p := range []docker.ImagePolicy{
		{Allow: []string{""}},
		{Deny: []string{"ubuntu; rm -rf /"}},
		{Allow: []string{"\x1b[2J"}},
		{RegistryNamespace: "not a host"},
		{RegistryNamespace: "library"}, // would be docker.io/library
	} {
		if err := p.Validate(); err == nil {
			t.Errorf("%+v: no error", p)
		} else if strings.Contains(err.Error(), "\x1b") {
			t.Errorf("raw escape in %q", err)
		}
	}
	if err := (docker.ImagePolicy{Allow: []string{"**"}, RegistryNamespace: "registry.ie.example/"}).Validate(); err != nil {
		t.Error(err)
	}
	if _, err := docker.NewImageService(nil, docker.ImagePolicy{Allow: []string{"a b"}}, nil); err == nil {
		t.Error("NewImageService took a bad pattern")
	}
}

func TestImagePolicyMayRemove(t *testing.T) {
	p := docker.ImagePolicy{RegistryNamespace: "registry.ie.example"}
	carol := backend.Identity{User: "carol", Role: backend.RoleStudent}
	cases := []struct {
		who  backend.Identity
		ref  string
		want bool
	}{
		{alice, "registry.ie.example/alice/ml:latest", true},
		{alice, "registry.ie.example/alice/ml", true},
		{alice, "registry.ie.example/alice/deep/er:1", true},
		{alice, "registry.ie.example/bob/ml:latest", false},
		{alice, "registry.ie.example/alice2/ml:1", false},
		{alice, "registry.ie.example/alice:1", false}, // a repository named alice, not under it
		{alice, "other.example/alice/ml:1", false},
		{alice, "alice/ml:1", false}, // docker.io/alice
		{alice, "ubuntu:24.04", false},
		{alice, "registry.ie.example/alice/ml@sha256:2376a0c12759aa1214ba83e771ff252c7b1663216b192fbe5e0fb364e952f85c", false},
		{carol, "registry.ie.example/alice/ml:latest", false},
		{tina, "ubuntu:24.04", true},
		{tina, "registry.ie.example/alice/ml:latest", true},
		{backend.Identity{}, "registry.ie.example//ml:1", false},
		{backend.Identity{User: "alice"}, "registry.ie.example/alice/ml:1", false}, // no role
	}
	for _, c := range cases {
		if got := p.MayRemove(c.who, c.ref); got != c.want {
			t.Errorf("%s MayRemove(%q) = %v, want %v", c.who.User, c.ref, got, c.want)
		}
	}
	if (docker.ImagePolicy{}).MayRemove(alice, "registry.ie.example/alice/ml:1") {
		t.Error("without a namespace a student may remove nothing")
	}
}

// --- pulls against a stand-in engine speaking the Engine API ---

// pullEngine answers /_ping and /images/create; every pull waits for release.
type pullEngine struct {
	srv     *httptest.Server
	pulls   atomic.Int32
	started chan string // fromImage:tag of each pull, as it starts
	release chan struct{}
	body    string
	auth    sync.Map // "fromImage:tag" -> the X-Registry-Auth header it came with
}

func newPullEngine(t *testing.T, body string) *pullEngine {
	e := &pullEngine{started: make(chan string, 16), release: make(chan struct{}), body: body}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			fmt.Fprint(w, "OK")
		case strings.HasSuffix(r.URL.Path, "/images/create") && r.Method == http.MethodPost:
			e.pulls.Add(1)
			ref := r.URL.Query().Get("fromImage") + ":" + r.URL.Query().Get("tag")
			e.auth.Store(ref, r.Header.Get("X-Registry-Auth"))
			e.started <- ref
			w.Header().Set("Content-Type", "application/json")
			lines := strings.SplitAfter(e.body, "\n")
			fmt.Fprint(w, lines[0]) // the first message at once, the rest on release
			w.(http.Flusher).Flush()
			select {
			case <-e.release:
			case <-r.Context().Done():
				return
			}
			fmt.Fprint(w, strings.Join(lines[1:], ""))
		default:
			http.Error(w, `{"message":"not here"}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *pullEngine) service(t *testing.T, p docker.ImagePolicy, creds ...docker.RegistryCredential) *docker.ImageService {
	cfg := docker.DefaultConfig()
	cfg.Host = "tcp://" + strings.TrimPrefix(e.srv.URL, "http://")
	svc, err := docker.New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	is, err := docker.NewImageService(svc, p, creds)
	if err != nil {
		t.Fatal(err)
	}
	return is
}

func readSample(t *testing.T, name string) string {
	b, err := os.ReadFile(filepath.Join("testdata", "pull", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPullRefusedByPolicy(t *testing.T) {
	e := newPullEngine(t, readSample(t, "busybox-fresh.jsonl"))
	is := e.service(t, docker.ImagePolicy{Allow: []string{"ubuntu"}})
	err := is.Pull(context.Background(), alice, "busybox", nil)
	if !errors.Is(err, docker.ErrPermission) || err.Error() != "image busybox:latest is not allowed on this server" {
		t.Fatalf("error %v", err)
	}
	if err := is.Pull(context.Background(), alice, "Bad Ref\x1b[2J", nil); !errors.Is(err, docker.ErrInvalid) || strings.Contains(err.Error(), "\x1b") {
		t.Fatalf("bad ref: %v", err)
	}
	if err := is.Pull(context.Background(), backend.Identity{}, "ubuntu", nil); err == nil {
		t.Fatal("nobody pulled")
	}
	if n := e.pulls.Load(); n != 0 {
		t.Fatalf("%d pulls reached the engine", n)
	}
}

func TestPullJoinsOnePull(t *testing.T) {
	e := newPullEngine(t, readSample(t, "busybox-fresh.jsonl"))
	is := e.service(t, docker.ImagePolicy{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	type result struct {
		steps []docker.PullProgress
		err   error
	}
	results := make([]result, 3)
	var wg sync.WaitGroup
	pull := func(i int, id backend.Identity, ref string) {
		defer wg.Done()
		var mu sync.Mutex
		results[i].err = is.Pull(ctx, id, ref, func(p docker.PullProgress) {
			mu.Lock()
			results[i].steps = append(results[i].steps, p)
			mu.Unlock()
		})
	}
	wg.Add(1)
	go pull(0, alice, "busybox")
	if got := <-e.started; got != "docker.io/library/busybox:latest" {
		t.Fatalf("engine asked for %q", got)
	}
	// The same image, named two other ways, joins the pull under way.
	wg.Add(2)
	go pull(1, bob, "docker.io/library/busybox:latest")
	go pull(2, tina, "busybox:latest")
	time.Sleep(200 * time.Millisecond)
	close(e.release)
	wg.Wait()

	if n := e.pulls.Load(); n != 1 {
		t.Fatalf("%d pulls reached the engine, want 1", n)
	}
	for i, r := range results {
		if r.err != nil {
			t.Errorf("caller %d: %v", i, r.err)
		}
		if len(r.steps) == 0 || r.steps[len(r.steps)-1].Status != "Status: Downloaded newer image for busybox:latest" {
			t.Errorf("caller %d saw %v", i, r.steps)
		}
		// Late joiners get the state so far replayed, then everything after.
		if !slices.ContainsFunc(r.steps, func(p docker.PullProgress) bool { return p.Status == "Pulling from library/busybox" }) {
			t.Errorf("caller %d missed the start: %v", i, r.steps)
		}
	}
	// Once done, a new pull goes to the engine again.
	e2 := newPullEngine(t, readSample(t, "up-to-date.jsonl"))
	close(e2.release)
	if err := e2.service(t, docker.ImagePolicy{}).Pull(ctx, alice, "ubuntu:24.04", nil); err != nil {
		t.Fatal(err)
	}
}

func TestPullErrorReachesEveryCaller(t *testing.T) {
	e := newPullEngine(t, readSample(t, "manifest-unknown.jsonl"))
	is := e.service(t, docker.ImagePolicy{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- is.Pull(ctx, alice, "nonexistent", nil) }()
	<-e.started
	go func() { errs <- is.Pull(ctx, bob, "nonexistent", nil) }()
	time.Sleep(200 * time.Millisecond)
	close(e.release)
	for range 2 {
		err := <-errs
		want := "pull nonexistent:latest: manifest for nonexistent:latest not found: manifest unknown: manifest unknown"
		if err == nil || err.Error() != want {
			t.Errorf("error %q, want %q", err, want)
		}
	}
	if n := e.pulls.Load(); n != 1 {
		t.Errorf("%d pulls, want 1", n)
	}
}

func TestPullAbandonedWhenEveryCallerLeaves(t *testing.T) {
	e := newPullEngine(t, readSample(t, "busybox-fresh.jsonl"))
	is := e.service(t, docker.ImagePolicy{})
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { errc <- is.Pull(ctx, alice, "busybox", nil) }()
	<-e.started
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Pull did not return after its context ended")
	}
	// A new caller starts a new pull rather than joining the abandoned one.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	go func() { errc <- is.Pull(ctx2, bob, "busybox", nil) }()
	<-e.started
	close(e.release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if n := e.pulls.Load(); n != 2 {
		t.Errorf("%d pulls, want 2", n)
	}
}

// --- the real engine ---

const testNS = "registry.ie.example"

func imageRig(t *testing.T) (*rig, *docker.ImageService) {
	r := newRig(t)
	is, err := docker.NewImageService(r.svc, docker.ImagePolicy{RegistryNamespace: testNS, Deny: []string{"forbidden/**"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r, is
}

// tag gives the test image one more tag, removed when the test ends.
func (r *rig) tag(target string) {
	r.t.Helper()
	if _, err := r.cli.ImageTag(r.ctx, client.ImageTagOptions{Source: r.img, Target: target}); err != nil {
		r.t.Fatalf("tag %s: %v", target, err)
	}
	r.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := r.cli.ImageRemove(ctx, target, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
			r.t.Errorf("untag %s: %v", target, err)
		}
	})
}

func findImage(t *testing.T, list []docker.Image, tag string) docker.Image {
	t.Helper()
	for _, im := range list {
		if slices.Contains(im.Tags, tag) {
			return im
		}
	}
	t.Fatalf("no image tagged %s in %v", tag, list)
	return docker.Image{}
}

func TestImagesInUseByYou(t *testing.T) {
	r, is := imageRig(t)
	r.run(alice, docker.RunSpec{Name: "box"})
	mine, err := is.Images(r.ctx, alice)
	if err != nil {
		t.Fatal(err)
	}
	im := findImage(t, mine, r.img)
	if !im.InUseByYou || len(im.ID) != 12 || im.Size <= 0 || im.Created.IsZero() {
		t.Errorf("alice sees %+v", im)
	}
	theirs, err := is.Images(r.ctx, bob)
	if err != nil {
		t.Fatal(err)
	}
	if im := findImage(t, theirs, r.img); im.InUseByYou {
		t.Errorf("bob sees alice's use: %+v", im)
	}
	if _, err := is.Images(r.ctx, backend.Identity{}); err == nil {
		t.Error("nobody listed images")
	}
}

func TestRemoveImageInUseRefusedForEveryone(t *testing.T) {
	r, is := imageRig(t)
	r.run(alice, docker.RunSpec{Name: "box"})
	for _, who := range []backend.Identity{tina, alice, bob} {
		err := is.RemoveImage(r.ctx, who, r.img)
		want := "image " + r.img + " is in use by a container"
		if !errors.Is(err, docker.ErrConflict) || err.Error() != want {
			t.Errorf("%s: error %v, want %q", who.User, err, want)
		}
	}
	if _, err := r.cli.ImageInspect(r.ctx, r.img); err != nil {
		t.Fatalf("the image is gone: %v", err)
	}
}

func TestRemoveImageOwnNamespace(t *testing.T) {
	r, is := imageRig(t)
	mine := testNS + "/alice/x" + dockertest.RunID()[8:] + ":1"
	theirs := "wm-test-other" + dockertest.RunID()[8:] + ":1"
	r.tag(mine)
	r.tag(theirs)

	err := is.RemoveImage(r.ctx, bob, mine)
	if !errors.Is(err, docker.ErrPermission) || err.Error() != "image "+mine+" is not yours to remove" {
		t.Fatalf("bob: %v", err)
	}
	err = is.RemoveImage(r.ctx, alice, theirs)
	if !errors.Is(err, docker.ErrPermission) || err.Error() != "image "+theirs+" is not yours to remove" {
		t.Fatalf("alice on another tag: %v", err)
	}
	if err := is.RemoveImage(r.ctx, alice, mine); err != nil {
		t.Fatalf("alice: %v", err)
	}
	if _, err := r.cli.ImageInspect(r.ctx, mine); !cerrdefs.IsNotFound(err) {
		t.Fatalf("tag still there: %v", err)
	}
	// Only the tag went: the image and its other tags stay.
	if _, err := r.cli.ImageInspect(r.ctx, r.img); err != nil {
		t.Fatalf("the image went with the tag: %v", err)
	}
	if err := is.RemoveImage(r.ctx, alice, mine); !errors.Is(err, docker.ErrNoImage) {
		t.Fatalf("again: %v", err)
	}
	// A TA may remove any tag that no container uses.
	if err := is.RemoveImage(r.ctx, tina, theirs); err != nil {
		t.Fatalf("tina: %v", err)
	}
	// Not by ID or digest.
	im, _ := r.cli.ImageInspect(r.ctx, r.img)
	short := strings.TrimPrefix(im.ID, "sha256:")[:12]
	if err := is.RemoveImage(r.ctx, tina, short); !errors.Is(err, docker.ErrNoImage) {
		t.Fatalf("by ID: %v", err)
	}
	if err := is.RemoveImage(r.ctx, tina, "busybox@"+im.ID); !errors.Is(err, docker.ErrInvalid) {
		t.Fatalf("by digest: %v", err)
	}
}

func TestPullRealEngine(t *testing.T) {
	r, is := imageRig(t)
	if err := is.Pull(r.ctx, alice, "forbidden/thing", nil); !errors.Is(err, docker.ErrPermission) ||
		err.Error() != "image forbidden/thing:latest is not allowed on this server" {
		t.Fatalf("policy: %v", err)
	}
	// No registry is reachable here: the pull must fail, in one line, in bounded time.
	ctx, cancel := context.WithTimeout(r.ctx, 45*time.Second)
	defer cancel()
	start := time.Now()
	ref := "wm-no-such-image-" + dockertest.RunID()[8:] + ":1"
	err := is.Pull(ctx, alice, ref, nil)
	if err == nil {
		t.Fatal("pull of an image no registry has succeeded")
	}
	if strings.Contains(err.Error(), "\n") || !strings.HasPrefix(err.Error(), "pull "+ref+": ") {
		t.Errorf("error %q", err)
	}
	t.Logf("pull failed after %v: %v", time.Since(start).Round(time.Millisecond), err)
}

func TestPullSlowReaderHoldsUpNobody(t *testing.T) {
	e := newPullEngine(t, readSample(t, "python-two-layers.jsonl"))
	close(e.release)
	is := e.service(t, docker.ImagePolicy{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	stuck, unstick := make(chan struct{}), make(chan struct{})
	var once sync.Once
	slowErr := make(chan error, 1)
	var slowSteps []docker.PullProgress
	go func() {
		slowErr <- is.Pull(ctx, alice, "python:3.12-slim", func(p docker.PullProgress) {
			slowSteps = append(slowSteps, p)
			once.Do(func() { close(stuck); <-unstick })
		})
	}()
	<-stuck
	// alice's reader is stuck on the first step; bob's pull of the same image still finishes.
	var fast []docker.PullProgress
	if err := is.Pull(ctx, bob, "python:3.12-slim", func(p docker.PullProgress) { fast = append(fast, p) }); err != nil {
		t.Fatal(err)
	}
	if len(fast) == 0 || fast[len(fast)-1].Status != "Status: Downloaded newer image for python:3.12-slim" {
		t.Errorf("bob saw %v", fast)
	}
	close(unstick)
	if err := <-slowErr; err != nil {
		t.Fatal(err)
	}
	// alice gets every step change, the byte counts folded.
	if last := slowSteps[len(slowSteps)-1]; last.Status != "Status: Downloaded newer image for python:3.12-slim" {
		t.Errorf("alice's last step %v", last)
	}
	if n := e.pulls.Load(); n > 2 {
		t.Errorf("%d pulls", n)
	}
}

// TestPullWithRegistryCredentials: the server's token goes with a pull from its registry
// only for the caller's own namespace, shared images and TAs; other students' images and
// other registries are pulled without it; the token shows up in no error.
func TestPullWithRegistryCredentials(t *testing.T) {
	const token = "glpat-s3cr3t-deploy-token"
	e := newPullEngine(t, readSample(t, "manifest-unknown.jsonl"))
	close(e.release)
	is := e.service(t, docker.ImagePolicy{}, docker.RegistryCredential{Registry: "Registry.IE.example", Username: "wm-deploy", Password: token,
		Shared: []string{"registry.ie.example/courses/**"}})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pulls := []struct {
		id       backend.Identity
		ref      string
		withAuth bool
	}{
		{alice, "registry.ie.example/alice/ml:1", true},
		{alice, "registry.ie.example/bob/secret:1", false},
		{alice, "registry.ie.example/alicex/ml:1", false},
		{alice, "registry.ie.example/courses/os/base:2024", true},
		{tina, "registry.ie.example/bob/secret:2", true},
		{alice, "busybox", false},
		{tina, "registry.ie.example.evil.org/x:1", false},
	}
	for _, p := range pulls {
		err := is.Pull(ctx, p.id, p.ref, nil)
		if err == nil || strings.Contains(err.Error(), token) {
			t.Errorf("pull %s: %v", p.ref, err)
		}
		<-e.started
	}
	for _, p := range pulls {
		named, _ := reference.ParseNormalizedNamed(p.ref)
		v, _ := e.auth.Load(reference.TagNameOnly(named).String())
		h, _ := v.(string)
		if !p.withAuth {
			if h != "" {
				t.Errorf("%s's pull of %s carried the server's credentials", p.id.User, p.ref)
			}
			continue
		}
		raw, err := base64.URLEncoding.DecodeString(h)
		if err != nil {
			t.Errorf("%s's pull of %s: X-Registry-Auth %q: %v", p.id.User, p.ref, h, err)
			continue
		}
		var got registry.AuthConfig
		if err := json.Unmarshal(raw, &got); err != nil || got.Username != "wm-deploy" || got.Password != token || got.ServerAddress != "registry.ie.example" {
			t.Errorf("%s's pull of %s: credentials sent %+v %v", p.id.User, p.ref, got, err)
		}
	}
	cred := docker.RegistryCredential{Registry: "r.example", Username: "u", Password: token}
	if s := fmt.Sprintf("%v %+v %#v %s", cred, cred, cred, cred); strings.Contains(s, token) {
		t.Errorf("formatting shows the token: %s", s)
	}
}

func TestRegistryCredentialsChecked(t *testing.T) {
	for _, c := range []docker.RegistryCredential{
		{Registry: "https://registry.example.org", Username: "u", Password: "p"},
		{Registry: "registry.example.org/path", Username: "u", Password: "p"},
		{Registry: "library", Username: "u", Password: "p"},
		{Registry: "registry.example.org", Password: "p"},
		{Registry: "registry.example.org", Username: "u"},
		{Registry: "registry.example.org", Username: "u", Password: "p", Shared: []string{"a b"}},
	} {
		_, err := docker.NewImageService(nil, docker.ImagePolicy{}, []docker.RegistryCredential{c})
		if err == nil || !strings.Contains(err.Error(), "images.registry_auth[0]") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", c, err)
		}
	}
	twice := []docker.RegistryCredential{{Registry: "r.example", Username: "u", Password: "p"}, {Registry: "R.example", Username: "v", Password: "q"}}
	if _, err := docker.NewImageService(nil, docker.ImagePolicy{}, twice); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Errorf("duplicate registry: %v", err)
	}
}
