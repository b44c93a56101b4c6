package main

import (
	"context"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/moby/moby/client"

	"whalemountain/backend/gitlab/gitlabtest"
)

// registryTags is what the registry at host answers for repo's tags (nil when it has none).
func registryTags(t *testing.T, host, repo string) []string {
	t.Helper()
	resp, err := http.Get("http://" + host + "/v2/" + repo + "/tags/list")
	if err != nil {
		t.Fatalf("ask the registry for %s: %v", repo, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var list struct {
		Tags []string `json:"tags"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the registry's tags of %s: %s, %v", repo, resp.Status, err)
	}
	return list.Tags
}

// TestE2ERunnerRegistry is the whole loop with a real registry (go-containerregistry's
// implementation of the distribution API, on a loopback port the engine pushes to without
// TLS): a runner token; a CI job on the stand-in runner builds the repository's Dockerfile
// with the real docker CLI through its owner's own Docker API and pushes it; the image is in
// the registry under the student's namespace and nowhere else (a push outside it is refused
// and lands nothing); the local copy removed, the student pulls it back from the registry
// and runs it.
func TestE2ERunnerRegistry(t *testing.T) {
	reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(reg.Close)
	host := strings.TrimPrefix(reg.URL, "http://")
	f := newRunnerFixtureWith(t, "g", "", host, "")
	s, alice := f.s, f.alice
	runnerID, token := f.gl.AddRunner(f.demo)
	if r := f.setToken(alice, "alice", "alice/demo", token); r.Code != 0 {
		t.Fatalf("alice's runner token: %s", r)
	}
	f.waitPolling(alice, "alice", runnerID)
	cliImg := dockerCLIImage(t, f)

	// The tag of this run alone ($CI_REGISTRY_IMAGE is host/alice/demo): tags are the
	// engine's, shared by every test run on it.
	tag := s.prefix
	image := host + "/alice/demo:" + tag
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
		defer cancel()
		_, _ = s.cli.ImageRemove(ctx, image, client.ImageRemoveOptions{Force: true})
	})
	job := f.gl.QueueJob(runnerID, gitlabtest.Job{Image: cliImg, Variables: map[string]string{"TAG": tag}, Script: []string{
		`mkdir -p /tmp/ctx && echo pushed-from-ci > /tmp/ctx/hello.txt && cd /tmp/ctx`,
		`printf 'FROM ` + f.img + `\nCOPY hello.txt /hello.txt\nCMD ["cat", "/hello.txt"]\n' > Dockerfile`,
		`docker build -t "$CI_REGISTRY_IMAGE:$TAG" .`,
		`docker push "$CI_REGISTRY_IMAGE:$TAG"`,
		`if docker push ` + host + `/bob/lab:$TAG; then exit 1; fi`,
		`if docker tag "$CI_REGISTRY_IMAGE:$TAG" ` + host + `/bob/lab:$TAG; then exit 1; fi`,
	}})
	if !poll(runnerTimeout, func() bool { st := f.gl.Job(job).State; return st == "success" || st == "failed" }) || f.gl.Job(job).State != "success" {
		t.Fatalf("the build-and-push job: %+v\nrunner logs:\n%s", f.gl.Job(job), s.run(t, alice, "alice", "runner", "logs"))
	}
	tr := f.gl.Job(job).Trace
	for _, want := range []string{
		"\nError response from daemon: push " + host + "/bob/lab:" + tag + ": only into your own registry namespace, " + host + "/alice/...\n",
		"\nError response from daemon: tag " + host + "/bob/lab:" + tag + ": only into your own registry namespace, " + host + "/alice/...\n",
	} {
		if !strings.Contains(tr, want) {
			t.Errorf("the job's trace lacks %q:\n%s", want, tr)
		}
	}

	// In the registry under alice's namespace, and nothing under bob's.
	if tags := registryTags(t, host, "alice/demo"); len(tags) != 1 || tags[0] != tag {
		t.Errorf("the registry's tags of alice/demo: %v, want [%s]", tags, tag)
	}
	if tags := registryTags(t, host, "bob/lab"); len(tags) != 0 {
		t.Errorf("a push outside alice's namespace landed: bob/lab tags %v", tags)
	}

	// The engine's copy removed, alice pulls it back from the registry and runs it.
	s.mustRun(t, alice, "alice", "rmi", image)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	if _, err := s.cli.ImageInspect(ctx, image); err == nil {
		t.Fatalf("%s is still on the engine after rmi", image)
	}
	s.mustRun(t, alice, "alice", "pull", image)
	s.mustRun(t, alice, "alice", "run", "--name", "fromreg", image)
	var out string
	if !poll(pollTimeout, func() bool {
		out = s.run(t, alice, "alice", "logs", "fromreg").Stdout
		return strings.Contains(out, "pushed-from-ci")
	}) {
		t.Errorf("the image pulled back from the registry: logs %q", out)
	}
}
