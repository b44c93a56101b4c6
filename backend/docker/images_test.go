package docker_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
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
	"whalemountain/backend/audit"
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
		{InternalRegistries: []string{"https://registry.ie.example"}},
		{InternalRegistries: []string{"registry.ie.example/path"}},
		{InternalRegistries: []string{"library"}},
		{InternalRegistries: []string{"docker.io"}},
		{InternalRegistries: []string{""}},
		{InternalRegistries: []string{"10.0.0.5:port"}},
		{InternalRegistries: []string{"ok.example", "\x1b[2J"}},
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
	err := (docker.ImagePolicy{InternalRegistries: []string{"registry.ie.example", "bad host"}}).Validate()
	if err == nil || !strings.HasPrefix(err.Error(), "images.internal_registries[1]: ") {
		t.Errorf("a bad internal registry: %v", err)
	}
	good := []string{"registry.ie.example", "Registry.IE.example:5000", "10.0.0.5", "10.0.0.5:5000", "[fd00::5]:5000", "localhost:5000"}
	if err := (docker.ImagePolicy{InternalRegistries: good}).Validate(); err != nil {
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
	is, _ := standInImages(t, e.srv, p, creds)
	return is
}

// standInImages is an image service on the stand-in engine srv, recording in an audit log of
// its own, whose path it returns with it.
func standInImages(t *testing.T, srv *httptest.Server, p docker.ImagePolicy, creds []docker.RegistryCredential, opts ...docker.ImageOption) (*docker.ImageService, string) {
	cfg := docker.DefaultConfig()
	cfg.Host = "tcp://" + strings.TrimPrefix(srv.URL, "http://")
	path := filepath.Join(t.TempDir(), "audit.log")
	log, err := audit.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	svc, err := docker.New(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	// The engine's errors go to the test log unless a test asks for them.
	opts = append([]docker.ImageOption{docker.WithLogger(slog.New(slog.NewTextHandler(t.Output(), nil)))}, opts...)
	is, err := docker.NewImageService(svc, p, creds, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return is, path
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
	// seen[i] is told when caller i gets progress: the first caller the engine's first
	// message, a joiner the state so far, replayed when it joins.
	seen := []chan struct{}{make(chan struct{}, 1), make(chan struct{}, 1), make(chan struct{}, 1)}
	var wg sync.WaitGroup
	pull := func(i int, id backend.Identity, ref string) {
		defer wg.Done()
		var mu sync.Mutex
		results[i].err = is.Pull(ctx, id, ref, func(p docker.PullProgress) {
			mu.Lock()
			results[i].steps = append(results[i].steps, p)
			mu.Unlock()
			select {
			case seen[i] <- struct{}{}:
			default:
			}
		})
	}
	wg.Add(1)
	go pull(0, alice, "busybox")
	if got := <-e.started; got != "docker.io/library/busybox:latest" {
		t.Fatalf("engine asked for %q", got)
	}
	<-seen[0]
	// The same image, named two other ways, joins the pull under way.
	wg.Add(2)
	go pull(1, bob, "docker.io/library/busybox:latest")
	go pull(2, tina, "busybox:latest")
	<-seen[1]
	<-seen[2]
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
	// Each caller tells when it has progress: the first the engine's first message, the
	// second the same, replayed when it joins.
	seen := make(chan struct{}, 16)
	told := func(docker.PullProgress) { seen <- struct{}{} }
	go func() { errs <- is.Pull(ctx, alice, "nonexistent", told) }()
	<-e.started
	<-seen
	go func() { errs <- is.Pull(ctx, bob, "nonexistent", told) }()
	<-seen
	close(e.release)
	for range 2 {
		err := <-errs
		want := "pull nonexistent:latest: not found in its registry, or you may not pull it"
		if !errors.Is(err, docker.ErrNoImage) || err.Error() != want {
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

// TestPullGoesOnWhenOneCallerLeaves: a client that goes away in the middle of a pull others
// wait for too ends its own wait only; the pull finishes for the others.
func TestPullGoesOnWhenOneCallerLeaves(t *testing.T) {
	e := newPullEngine(t, readSample(t, "busybox-fresh.jsonl"))
	is := e.service(t, docker.ImagePolicy{})
	actx, acancel := context.WithCancel(context.Background())
	defer acancel()
	bctx, bcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer bcancel()
	seen := make(chan struct{}, 16)
	told := func(docker.PullProgress) {
		select {
		case seen <- struct{}{}:
		default:
		}
	}
	aerr, berr := make(chan error, 1), make(chan error, 1)
	go func() { aerr <- is.Pull(actx, alice, "busybox", told) }()
	<-e.started
	<-seen
	go func() { berr <- is.Pull(bctx, bob, "busybox", told) }()
	<-seen // bob has joined: the state so far replayed to him
	acancel()
	if err := <-aerr; !errors.Is(err, context.Canceled) {
		t.Errorf("alice's pull after she left: %v", err)
	}
	close(e.release)
	if err := <-berr; err != nil {
		t.Errorf("bob's pull after alice left: %v", err)
	}
	if n := e.pulls.Load(); n != 1 {
		t.Errorf("%d pulls reached the engine, want 1", n)
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

// TestRemoveImageNotYoursWhateverItsState: a student asking to remove a tag that is not
// theirs gets one answer, whether the tag exists, is in use by someone's container or not:
// the answer tells nothing about other users' containers. In use is refused for everyone.
func TestRemoveImageNotYoursWhateverItsState(t *testing.T) {
	r, is := imageRig(t)
	suffix := dockertest.RunID()[8:]
	bobs := testNS + "/bob/inuse" + suffix + ":1"     // bob's, in use by bob's container
	alices := testNS + "/alice/inuse" + suffix + ":1" // alice's, in use by alice's container
	r.tag(bobs)
	r.tag(alices)
	r.run(bob, docker.RunSpec{Name: "box", Image: bobs})
	r.run(bob, docker.RunSpec{Name: "box2"}) // from r.img
	r.run(alice, docker.RunSpec{Name: "box", Image: alices})
	// The containers go before the tags they were made from (cleanups run last-in first-out).
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		for _, c := range []struct {
			who  backend.Identity
			name string
		}{{bob, "box"}, {bob, "box2"}, {alice, "box"}} {
			if err := r.svc.Remove(ctx, c.who, c.name, true, ""); err != nil {
				t.Errorf("remove %s/%s: %v", c.who.User, c.name, err)
			}
		}
	})

	for _, ref := range []string{
		bobs,                             // another student's, in use
		r.img,                            // outside every namespace, in use
		testNS + "/bob/gone" + suffix,    // another student's, not on the server
		"wm-no-such-image-" + suffix,     // outside every namespace, not on the server
		testNS + "/alicex/x" + suffix,    // a name alice's is a prefix of
		"other.example/alice/x" + suffix, // alice's name under another registry
	} {
		err := is.RemoveImage(r.ctx, alice, ref)
		want := "image " + familiar(ref) + " is not yours to remove"
		if !errors.Is(err, docker.ErrPermission) || err.Error() != want {
			t.Errorf("alice rmi %s: error %v, want %q", ref, err, want)
		}
	}
	inUse := func(who backend.Identity, ref string) {
		t.Helper()
		err := is.RemoveImage(r.ctx, who, ref)
		if want := "image " + ref + " is in use by a container"; !errors.Is(err, docker.ErrConflict) || err.Error() != want {
			t.Errorf("%s rmi %s: error %v, want %q", who.User, ref, err, want)
		}
	}
	inUse(alice, alices)
	inUse(bob, bobs)
	inUse(tina, bobs)
	inUse(tina, r.img)
	if err := is.RemoveImage(r.ctx, alice, testNS+"/alice/gone"+suffix+":1"); !errors.Is(err, docker.ErrNoImage) {
		t.Errorf("alice's own missing tag: %v", err)
	}
	if err := is.RemoveImage(r.ctx, tina, testNS+"/bob/gone"+suffix+":1"); !errors.Is(err, docker.ErrNoImage) {
		t.Errorf("a TA's missing tag: %v", err)
	}
	for _, ref := range []string{r.img, bobs, alices} {
		if _, err := r.cli.ImageInspect(r.ctx, ref); err != nil {
			t.Fatalf("%s is gone: %v", ref, err)
		}
	}
}

// familiar is ref as the services name it ("busybox:latest").
func familiar(ref string) string {
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return ref
	}
	return reference.FamiliarString(reference.TagNameOnly(n))
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
	// In the project's words, whatever the engine said.
	if !slices.Contains(pullLines, strings.TrimPrefix(err.Error(), "pull "+ref+": ")) {
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
// only for the caller's own namespace under images.registry_namespace, shared images and
// TAs; other students' images and other registries are pulled without it; the token shows
// up in no error.
func TestPullWithRegistryCredentials(t *testing.T) {
	const token = "glpat-s3cr3t-deploy-token"
	e := newPullEngine(t, readSample(t, "manifest-unknown.jsonl"))
	close(e.release)
	cred := docker.RegistryCredential{Registry: "Registry.IE.example", Username: "wm-deploy", Password: token,
		Shared: []string{"registry.ie.example/courses/**"}}
	// Every name other than the credential's resolves to a public address.
	lookup := docker.WithLookup(func(context.Context, string) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("93.184.216.34")}, nil
	})
	is, _ := standInImages(t, e.srv, docker.ImagePolicy{RegistryNamespace: "registry.ie.example/"}, []docker.RegistryCredential{cred}, lookup)
	// Without a namespace, students get the token for shared images only.
	noNS, _ := standInImages(t, e.srv, docker.ImagePolicy{}, []docker.RegistryCredential{cred}, lookup)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	pulls := []struct {
		is       *docker.ImageService
		id       backend.Identity
		ref      string
		withAuth bool
	}{
		{is, alice, "registry.ie.example/alice/ml:1", true},
		{is, alice, "registry.ie.example/alice/deep/er:1", true},
		{is, backend.Identity{User: "Alice", Role: backend.RoleStudent}, "registry.ie.example/alice/ml:2", true},
		{is, alice, "registry.ie.example/bob/secret:1", false},
		{is, alice, "registry.ie.example/alicex/ml:1", false},
		{is, alice, "registry.ie.example/alice:1", false}, // a repository named alice, not under it
		{is, alice, "registry.ie.example/courses/os/base:2024", true},
		{is, tina, "registry.ie.example/bob/secret:2", true},
		{is, alice, "busybox", false},
		{is, tina, "registry.ie.example.evil.org/x:1", false},
		{noNS, alice, "registry.ie.example/alice/ml:3", false},
		{noNS, alice, "registry.ie.example/courses/os/base:2025", true},
		{noNS, tina, "registry.ie.example/alice/ml:4", true},
	}
	for _, p := range pulls {
		err := p.is.Pull(ctx, p.id, p.ref, nil)
		if err == nil || strings.Contains(err.Error(), token) {
			t.Errorf("pull %s: %v", p.ref, err)
		}
		select {
		case <-e.started:
		default:
			t.Fatalf("pull %s did not reach the engine: %v", p.ref, err)
		}
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
	cred = docker.RegistryCredential{Registry: "r.example", Username: "u", Password: token}
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

// --- registries on the server's own network, and what users are told about failed pulls ---

// pullLines are the only things a user is told, after "pull IMAGE: ", about a pull the
// registry or the engine refused.
var pullLines = []string{
	"not found in its registry, or you may not pull it",
	"the registry refused access",
	"the registry could not be reached",
	"the registry or Docker refused the pull",
}

// fakeDNS resolves names from a table; a name it does not know does not resolve. It records
// every name asked and checks that each lookup is bounded in time.
type fakeDNS struct {
	t     *testing.T
	names map[string][]string
	mu    sync.Mutex
	asked []string
}

func (d *fakeDNS) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	d.mu.Lock()
	d.asked = append(d.asked, host)
	d.mu.Unlock()
	if dl, ok := ctx.Deadline(); !ok || time.Until(dl) > 10*time.Second {
		d.t.Errorf("lookup of %s without a short deadline", host)
	}
	addrs, ok := d.names[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	var out []netip.Addr
	for _, a := range addrs {
		out = append(out, netip.MustParseAddr(a))
	}
	return out, nil
}

func TestPullRefusesServersOwnNetwork(t *testing.T) {
	e := newPullEngine(t, readSample(t, "up-to-date.jsonl"))
	close(e.release)
	dns := &fakeDNS{t: t, names: map[string][]string{
		"public.example":          {"93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"},
		"internal.ie.example":     {"10.0.0.7"},
		"mixed.ie.example":        {"93.184.216.34", "127.0.0.1"},
		"v6private.ie.example":    {"2606:2800:220:1:248:1893:25c8:1946", "fd00::7"},
		"mapped.ie.example":       {"::ffff:192.168.0.1"},
		"empty.ie.example":        {},
		"dept.ie.example":         {"10.0.0.5"},
		"creds.ie.example":        {"10.0.0.6"},
		"ns.ie.example":           {"10.0.0.8"},
		"registry-1.docker.io":    {"93.184.216.34"},
		"registry.ie.example.com": {"100.64.1.2"},
	}}
	cred := docker.RegistryCredential{Registry: "creds.ie.example", Username: "u", Password: "p"}
	is, auditPath := standInImages(t, e.srv, docker.ImagePolicy{
		RegistryNamespace:  "ns.ie.example:5000/students",
		InternalRegistries: []string{"dept.ie.example", "10.0.0.5:5000", "[fd00::5]:5000", "Localhost:5001"},
	}, []docker.RegistryCredential{cred}, docker.WithLookup(dns.lookup))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	const own, unresolved = "it is on the server's own network", "its name could not be resolved"
	cases := []struct {
		ref, registry, why string // why "": the pull goes to the engine
	}{
		{"127.0.0.1:5000/x/y:1", "127.0.0.1:5000", own},
		{"127.1.2.3/x:1", "127.1.2.3", own},
		{"10.1.2.3/x:1", "10.1.2.3", own},
		{"172.16.0.1:443/x:1", "172.16.0.1:443", own},
		{"172.31.255.255/x:1", "172.31.255.255", own},
		{"192.168.1.1/x:1", "192.168.1.1", own},
		{"169.254.169.254/latest/meta-data:1", "169.254.169.254", own},
		{"100.64.0.1/x:1", "100.64.0.1", own},
		{"0.0.0.0:5000/x:1", "0.0.0.0:5000", own},
		{"224.0.0.1/x:1", "224.0.0.1", own},
		{"255.255.255.255/x:1", "255.255.255.255", own},
		{"[::1]:5000/x:1", "[::1]:5000", own},
		{"[::]/x:1", "[::]", own},
		{"[fe80::1]/x:1", "[fe80::1]", own},
		{"[fd00::5]/x:1", "[fd00::5]", own}, // listed only with port 5000
		{"[fc00::1]:5000/x:1", "[fc00::1]:5000", own},
		{"[ff02::1]/x:1", "[ff02::1]", own},
		{"[::ffff:7f00:1]/x:1", "[::ffff:7f00:1]", own},       // 127.0.0.1 mapped
		{"[64:ff9b::a00:1]/x:1", "[64:ff9b::a00:1]", own},     // NAT64 of 10.0.0.1
		{"[2002:c0a8:101::1]/x:1", "[2002:c0a8:101::1]", own}, // 6to4 of 192.168.1.1
		{"localhost/x:1", "localhost", own},
		{"localhost:5000/x:1", "localhost:5000", own},
		{"box.localhost:5000/x:1", "box.localhost:5000", own},
		{"internal.ie.example/x:1", "internal.ie.example", own},
		{"INTERNAL.ie.example:8080/x:1", "INTERNAL.ie.example:8080", own},
		{"mixed.ie.example/x:1", "mixed.ie.example", own},
		{"v6private.ie.example/x:1", "v6private.ie.example", own},
		{"mapped.ie.example/x:1", "mapped.ie.example", own},
		{"registry.ie.example.com/x:1", "registry.ie.example.com", own},
		{"nxdomain.ie.example/x:1", "nxdomain.ie.example", unresolved},
		{"empty.ie.example/x:1", "empty.ie.example", unresolved},
		{"2130706433:5000/x:1", "2130706433:5000", unresolved},    // 127.0.0.1 as one number
		{"10.0.0.5:5001/x:1", "10.0.0.5:5001", own},               // listed with another port
		{"dept.ie.example:5000/x:1", "dept.ie.example:5000", own}, // listed without a port

		{"busybox:1", "", ""},
		{"docker.io/library/busybox:2", "", ""},
		{"index.docker.io/library/busybox:3", "", ""},
		{"registry-1.docker.io/library/busybox:4", "", ""},
		{"public.example/x:1", "", ""},
		{"public.example:8443/x:1", "", ""},
		{"93.184.216.34/x:1", "", ""},
		{"[2606:2800:220:1:248:1893:25c8:1946]/x:1", "", ""},
		{"dept.ie.example/x:1", "", ""},
		{"DEPT.ie.example/x:1", "", ""},
		{"10.0.0.5:5000/x:1", "", ""},
		{"[fd00::5]:5000/x:1", "", ""},
		{"localhost:5001/x:1", "", ""},
		{"creds.ie.example/x:1", "", ""},
		{"ns.ie.example:5000/students/alice/x:1", "", ""},
	}
	var wantAudit []string
	for _, c := range cases {
		before := e.pulls.Load()
		err := is.Pull(ctx, alice, c.ref, nil)
		reached := e.pulls.Load() != before
		if reached {
			<-e.started
		}
		name := familiar(c.ref)
		if c.why == "" {
			if err != nil || !reached {
				t.Errorf("pull %s: %v (reached the engine: %v)", c.ref, err, reached)
			}
			wantAudit = append(wantAudit, "alice pull "+name+" ok")
			continue
		}
		want := "pull " + name + ": registry " + c.registry + " is not allowed: " + c.why
		if !errors.Is(err, docker.ErrPermission) || err == nil || err.Error() != want {
			t.Errorf("pull %s: error %v, want %q", c.ref, err, want)
		}
		if reached {
			t.Errorf("pull %s reached the engine", c.ref)
		}
		wantAudit = append(wantAudit, "alice pull "+name+" refused")
	}
	if got := auditLines(t, auditPath); !slices.Equal(got, wantAudit) {
		t.Errorf("audit:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantAudit, "\n"))
	}
	// Docker Hub and literal addresses are never looked up (the listed hosts resolve to
	// private addresses above: their pulls went through, so they were not looked up either).
	for _, h := range dns.asked {
		if h == "docker.io" || h == "index.docker.io" || net.ParseIP(h) != nil {
			t.Errorf("looked up %s", h)
		}
	}
	// TAs are held to the same rule.
	if err := is.Pull(ctx, tina, "127.0.0.1:5000/x/y:1", nil); !errors.Is(err, docker.ErrPermission) {
		t.Errorf("a TA's pull from loopback: %v", err)
	}
}

// TestPullRefusalWaitsForNoOne: a lookup that never answers ends with the caller's context
// or the lookup's own short deadline, not the engine.
func TestPullLookupBounded(t *testing.T) {
	e := newPullEngine(t, readSample(t, "up-to-date.jsonl"))
	is, _ := standInImages(t, e.srv, docker.ImagePolicy{}, nil, docker.WithLookup(func(ctx context.Context, _ string) ([]netip.Addr, error) {
		<-ctx.Done()
		return nil, ctx.Err()
	}))
	start := time.Now()
	err := is.Pull(context.Background(), alice, "slow.example/x:1", nil)
	if want := "pull slow.example/x:1: registry slow.example is not allowed: its name could not be resolved"; err == nil || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the lookup took %v", d)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := is.Pull(ctx, alice, "slow.example/x:1", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if n := e.pulls.Load(); n != 0 {
		t.Errorf("%d pulls reached the engine", n)
	}
}

// failEngine is a stand-in engine whose pulls fail as answer says: an HTTP error with a
// message, or a progress stream ending in an error message or cut short.
func failEngine(t *testing.T, answer func(w http.ResponseWriter)) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		switch {
		case strings.HasSuffix(r.URL.Path, "/_ping"):
			fmt.Fprint(w, "OK")
		case strings.HasSuffix(r.URL.Path, "/images/create"):
			answer(w)
		default:
			http.Error(w, `{"message":"not here"}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestPullErrorWording: whatever the engine or the registry behind it says, the user gets
// one of four lines in the project's words, and the engine's text goes only to the log.
func TestPullErrorWording(t *testing.T) {
	const secret = "SECRET-INTERNAL-BODY"
	page := "<html><head><title>Admin</title></head>\n<body>" + secret + " \x1b[2J db password hunter2</body></html>"
	apiErr := func(code int, msg string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_ = json.NewEncoder(w).Encode(map[string]string{"message": msg})
		}
	}
	streamErr := func(msg string) func(http.ResponseWriter) {
		return func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintln(w, `{"status":"Pulling from x/y","id":"1"}`)
			b, _ := json.Marshal(map[string]any{"errorDetail": map[string]string{"message": msg}, "error": msg})
			fmt.Fprintf(w, "%s\n", b)
		}
	}
	notFound, denied, unreachable, refused := pullLines[0], pullLines[1], pullLines[2], pullLines[3]
	cases := []struct {
		name   string
		answer func(http.ResponseWriter)
		want   string
		kind   error
	}{
		{"api manifest unknown", apiErr(404, "manifest for r.example/x/y:1 not found: manifest unknown: "+secret), notFound, docker.ErrNoImage},
		{"api pull access denied", apiErr(404, "pull access denied for x/y, repository does not exist or may require 'docker login': denied: "+secret), notFound, docker.ErrNoImage},
		{"stream manifest unknown", streamErr("manifest unknown: " + secret), notFound, docker.ErrNoImage},
		{"stream name unknown", streamErr("name unknown: repository name not known to registry " + secret), notFound, docker.ErrNoImage},
		{"api unauthorized", apiErr(401, "unauthorized: authentication required "+secret), denied, nil},
		{"api forbidden", apiErr(403, secret), denied, nil},
		{"api denied in 500", apiErr(500, "denied: "+secret), denied, nil},
		{"stream unauthorized", streamErr("unauthorized: " + secret), denied, nil},
		{"api no such host", apiErr(500, `Get "https://r.example/v2/": dial tcp: lookup r.example on 10.0.0.2:53: no such host `+secret), unreachable, nil},
		{"api refused", apiErr(500, `Get "http://10.0.0.9:8080/v2/": dial tcp 10.0.0.9:8080: connect: connection refused`), unreachable, nil},
		{"api timeout", apiErr(500, `Get "https://r.example/v2/": net/http: request canceled while waiting for connection (Client.Timeout exceeded while awaiting headers) `+secret), unreachable, nil},
		{"stream reset", streamErr("read tcp 10.0.0.1:4711->93.184.216.34:443: read: connection reset by peer " + secret), unreachable, nil},
		{"stream tls timeout", streamErr("net/http: TLS handshake timeout"), unreachable, nil},
		{"api html page", apiErr(500, page), refused, nil},
		{"api unmarshalling", apiErr(500, "error unmarshalling content: invalid character '<' looking for beginning of value "+page), refused, nil},
		{"stream html page", streamErr(page), refused, nil},
		{"stream cut short", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"status":"Pulling from x/y","id":"1"}`+"\n"+`{"status":"`+secret)
		}, refused, nil},
		{"plain text body", func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(502)
			fmt.Fprint(w, page)
		}, refused, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var logged strings.Builder
			var mu sync.Mutex
			logger := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
				mu.Lock()
				defer mu.Unlock()
				return logged.Write(b)
			}), nil))
			is, auditPath := standInImages(t, failEngine(t, c.answer), docker.ImagePolicy{}, nil, docker.WithLogger(logger))
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			err := is.Pull(ctx, alice, "x/y:1", nil)
			if want := "pull x/y:1: " + c.want; err == nil || err.Error() != want {
				t.Fatalf("error %q, want %q", err, want)
			}
			if c.kind != nil && !errors.Is(err, c.kind) {
				t.Errorf("error %v is not %v", err, c.kind)
			}
			for _, k := range []error{docker.ErrPermission, docker.ErrInvalid, docker.ErrUnavailable} {
				if errors.Is(err, k) {
					t.Errorf("error %v is %v", err, k)
				}
			}
			b, _ := os.ReadFile(auditPath)
			if strings.Contains(string(b), secret) || strings.Contains(string(b), "hunter2") {
				t.Errorf("the audit log has the engine's text: %s", b)
			}
			mu.Lock()
			defer mu.Unlock()
			if c.name != "stream cut short" && !strings.Contains(logged.String(), secret) && !strings.Contains(logged.String(), "connection") &&
				!strings.Contains(logged.String(), "timeout") {
				t.Errorf("the engine's text is not in the log: %s", logged.String())
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// registryStandIn is an HTTP service on the server's loopback that answers like a registry
// whose manifests are missing, with a body the engine passes on in its error.
func registryStandIn(t *testing.T, secret string) (*httptest.Server, *atomic.Int32) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.URL.Path == "/v2/" {
			fmt.Fprint(w, "{}")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintf(w, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":%q}]}`, secret+" <html>internal admin page</html>")
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// TestPullRealEngineServersOwnNetwork: on the real engine (which fetches from 127.0.0.0/8
// over plain HTTP), a pull from an HTTP service on the server's loopback is refused before
// the engine is asked, and audited as refused; once the administrator lists it, the engine
// fetches from it, and what the service answered reaches the log, not the user.
func TestPullRealEngineServersOwnNetwork(t *testing.T) {
	const secret = "SECRET-INTERNAL-BODY"
	r := newRig(t)
	svc, auditPath := r.auditedService()
	reg, hits := registryStandIn(t, secret)
	host := strings.TrimPrefix(reg.URL, "http://")
	ref := host + "/x/y:1"

	is, err := docker.NewImageService(svc, docker.ImagePolicy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = is.Pull(r.ctx, alice, ref, nil)
	if want := "pull " + ref + ": registry " + host + " is not allowed: it is on the server's own network"; !errors.Is(err, docker.ErrPermission) || err.Error() != want {
		t.Fatalf("error %v, want %q", err, want)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("the service on loopback got %d requests", n)
	}
	if got := auditLines(t, auditPath); !slices.Equal(got, []string{"alice pull " + ref + " refused"}) {
		t.Errorf("audit %q", got)
	}

	var logged strings.Builder
	var mu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(b []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logged.Write(b)
	}), nil))
	listed, err := docker.NewImageService(svc, docker.ImagePolicy{InternalRegistries: []string{host}}, nil, docker.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(r.ctx, 45*time.Second)
	defer cancel()
	err = listed.Pull(ctx, alice, ref, nil)
	if want := "pull " + ref + ": not found in its registry, or you may not pull it"; !errors.Is(err, docker.ErrNoImage) || err.Error() != want {
		t.Errorf("error %v, want %q", err, want)
	}
	if hits.Load() == 0 {
		t.Error("the engine never asked the listed registry")
	}
	mu.Lock()
	defer mu.Unlock()
	if !strings.Contains(logged.String(), secret) {
		t.Errorf("the engine's error is not in the log: %s", logged.String())
	}
}

// TestImageErrorsKeepEngineTextOut: listing and removing images, too, tell the user what
// failed in the project's words, never the engine's text.
func TestImageErrorsKeepEngineTextOut(t *testing.T) {
	const secret = "SECRET-INTERNAL-BODY"
	fail := func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprintf(w, `{"message":%q}`, "<html>"+secret+"</html> /var/lib/docker/overlay2/abc")
	}
	okJSON := func(w http.ResponseWriter, body string) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body)
	}
	const img = `{"Id":"sha256:2376a0c12759aa1214ba83e771ff252c7b1663216b192fbe5e0fb364e952f85c","RepoTags":["registry.ie.example/alice/x:1"]}`
	var failing atomic.Value // the path suffix that fails
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		p := r.URL.Path
		switch {
		case strings.HasSuffix(p, "/_ping"):
			fmt.Fprint(w, "OK")
		case strings.HasSuffix(p, failing.Load().(string)) && (r.Method != http.MethodDelete || failing.Load() == "/images/registry.ie.example/alice/x:1"):
			fail(w)
		case strings.HasSuffix(p, "/images/json"):
			okJSON(w, "["+img+"]")
		case strings.HasSuffix(p, "/containers/json"):
			okJSON(w, "[]")
		case strings.HasSuffix(p, "/json") && strings.Contains(p, "/images/"):
			okJSON(w, img)
		default:
			http.Error(w, `{"message":"not here"}`, http.StatusNotFound)
		}
	}))
	t.Cleanup(srv.Close)
	is, _ := standInImages(t, srv, docker.ImagePolicy{RegistryNamespace: testNS}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cases := []struct {
		failing, want string // want: the error's start; "" where the Service words it
		call          func() error
	}{
		{"/images/json", "list images: ", func() error { _, err := is.Images(ctx, alice); return err }},
		{"/containers/json", "", func() error { _, err := is.Images(ctx, alice); return err }},
		{"/images/registry.ie.example/alice/x:1/json", "", func() error { return is.RemoveImage(ctx, alice, "registry.ie.example/alice/x:1") }},
		{"/containers/json", "remove image registry.ie.example/alice/x:1: ", func() error { return is.RemoveImage(ctx, alice, "registry.ie.example/alice/x:1") }},
		{"/images/registry.ie.example/alice/x:1", "remove image registry.ie.example/alice/x:1: ", func() error { return is.RemoveImage(ctx, alice, "registry.ie.example/alice/x:1") }},
	}
	for _, c := range cases {
		failing.Store(c.failing)
		err := c.call()
		if err == nil || !strings.HasPrefix(err.Error(), c.want) || strings.Contains(err.Error(), secret) ||
			strings.Contains(err.Error(), "/var/lib") || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s failing: error %v, want one line %q...", c.failing, err, c.want)
		}
	}
}
