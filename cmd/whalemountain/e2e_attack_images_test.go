package main

// Helpers of the attack suite (e2e_attack_test.go) that stand in for the outside world: an
// image whose labels lie, a Docker Engine that records what it is asked and answers with a
// marker, a registry on 127.0.0.1 that does the same, and a tar2sqfs that waits while told to
// (so a SIF build can be caught half-way).

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"whalemountain/backend/docker/dockertest"
)

// forgeImage commits a never-started container of base into ref, with labels added by LABEL
// changes, the way anyone with a Dockerfile could label an image. The image is removed at
// cleanup (with the containers still using it).
func forgeImage(t *testing.T, cli *client.Client, base, ref string, labels map[string]string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	cr, err := cli.ContainerCreate(ctx, client.ContainerCreateOptions{
		Image:  base,
		Config: &container.Config{Labels: map[string]string{dockertest.LabelRun: dockertest.RunID()}},
	})
	if err != nil {
		t.Fatalf("create a container to commit %s: %v", ref, err)
	}
	defer func() {
		_, _ = cli.ContainerRemove(context.Background(), cr.ID, client.ContainerRemoveOptions{Force: true})
	}()
	var changes []string
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		changes = append(changes, fmt.Sprintf("LABEL %s=%q", k, labels[k]))
	}
	res, err := cli.ContainerCommit(ctx, cr.ID, client.ContainerCommitOptions{Reference: ref, Changes: changes})
	if err != nil {
		t.Fatalf("commit %s: %v", ref, err)
	}
	t.Cleanup(func() { removeImageRef(t, cli, ref) })
	in, err := cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	if in.Config == nil {
		t.Fatalf("%s has no config", ref)
	}
	for k, v := range labels {
		if in.Config.Labels[k] != v {
			t.Fatalf("%s: label %s = %q, want %q (the forged image is not what this test needs)", ref, k, in.Config.Labels[k], v)
		}
	}
	return res.ID
}

// tagImage gives src the extra tag ref on the engine, removed at cleanup.
func tagImage(t *testing.T, cli *client.Client, src, ref string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	if _, err := cli.ImageTag(ctx, client.ImageTagOptions{Source: src, Target: ref}); err != nil {
		t.Fatalf("tag %s as %s: %v", src, ref, err)
	}
	t.Cleanup(func() { removeImageRef(t, cli, ref) })
}

// removeImageRef removes one tag and the containers of this run made from it.
func removeImageRef(t *testing.T, cli *client.Client, ref string) {
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	f := client.Filters{}.Add("label", dockertest.LabelRun+"="+dockertest.RunID()).Add("ancestor", ref)
	if cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs.Items {
			_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		}
	}
	if _, err := cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{}); err != nil && !cerrdefs.IsNotFound(err) {
		t.Errorf("remove image %s: %v", ref, err)
	}
}

// fakeEngine is a Docker Engine API on a unix socket that answers just enough for a server to
// start, records every request, and answers a pull with an error that carries marker, so a
// server that asks it at all, or echoes what it says, shows.
type fakeEngine struct {
	Host   string // unix://...
	marker string

	mu   sync.Mutex
	reqs []string // "METHOD PATH?QUERY"
}

var apiVersionRE = regexp.MustCompile(`^/v[0-9.]+`)

func startFakeEngine(t *testing.T, marker string) *fakeEngine {
	t.Helper()
	dir, err := os.MkdirTemp("", "wm-fake-engine-") // short: a socket path has ~100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "engine.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatalf("listen on %s: %v", sock, err)
	}
	fe := &fakeEngine{Host: "unix://" + sock, marker: marker}
	srv := &http.Server{Handler: fe, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return fe
}

func (fe *fakeEngine) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fe.mu.Lock()
	fe.reqs = append(fe.reqs, r.Method+" "+r.URL.Path+"?"+r.URL.RawQuery)
	fe.mu.Unlock()
	p := apiVersionRE.ReplaceAllString(r.URL.Path, "")
	js := func(code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(v)
	}
	w.Header().Set("Api-Version", "1.41")
	w.Header().Set("Ostype", "linux")
	switch p {
	case "/_ping":
		_, _ = w.Write([]byte("OK"))
	case "/version":
		js(200, map[string]string{"ApiVersion": "1.41", "MinAPIVersion": "1.12", "Version": "20.10.24", "Os": "linux", "Arch": "amd64"})
	case "/info":
		js(200, map[string]any{"ID": "fake", "OSType": "linux"})
	case "/events":
		w.WriteHeader(200)
		if fl, ok := w.(http.Flusher); ok {
			fl.Flush()
		}
		<-r.Context().Done()
	case "/containers/json", "/images/json", "/networks":
		js(200, []any{})
	case "/volumes":
		js(200, map[string]any{"Volumes": []any{}, "Warnings": []any{}})
	case "/images/create":
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		enc := json.NewEncoder(w)
		_ = enc.Encode(map[string]string{"status": fe.marker + " Pulling from " + r.URL.Query().Get("fromImage")})
		msg := fe.marker + " Get \"https://registry/v2/\": the registry said: internal body text"
		_ = enc.Encode(map[string]any{"errorDetail": map[string]string{"message": msg}, "error": msg})
	default:
		js(404, map[string]string{"message": fe.marker + " page not found"})
	}
}

// pulls counts the pull requests (POST /images/create) the engine got.
func (fe *fakeEngine) pulls() int {
	fe.mu.Lock()
	defer fe.mu.Unlock()
	n := 0
	for _, r := range fe.reqs {
		if strings.HasPrefix(r, "POST ") && strings.Contains(r, "/images/create") {
			n++
		}
	}
	return n
}

// markerRegistry is an HTTP server on 127.0.0.1 that answers everything with marker, and
// counts what it was asked: a pull aimed at it must be refused before the engine goes there.
type markerRegistry struct {
	*httptest.Server
	mu   sync.Mutex
	hits int
}

func startMarkerRegistry(t *testing.T, marker string) *markerRegistry {
	t.Helper()
	mr := &markerRegistry{}
	mr.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mr.mu.Lock()
		mr.hits++
		mr.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Docker-Distribution-Api-Version", "registry/2.0")
		_, _ = fmt.Fprintf(w, `{"errors":[{"code":"DENIED","message":"%s internal registry body"}]}`, marker)
	}))
	t.Cleanup(mr.Close)
	return mr
}

func (mr *markerRegistry) Hits() int {
	mr.mu.Lock()
	defer mr.mu.Unlock()
	return mr.hits
}

// stallingTar2sqfs writes a tar2sqfs that waits while the file stall exists (at most 30 s)
// and then runs the real one: a SIF build started while stall exists keeps its export
// container until the test removes stall.
func stallingTar2sqfs(t *testing.T) (wrapper, stall string) {
	t.Helper()
	real, err := exec.LookPath("tar2sqfs")
	if err != nil {
		t.Fatalf("tar2sqfs is needed for this test (apt-get install squashfs-tools-ng): %v", err)
	}
	dir := t.TempDir()
	wrapper = filepath.Join(dir, "tar2sqfs")
	stall = filepath.Join(dir, "stall")
	script := fmt.Sprintf("#!/bin/sh\ni=0\nwhile [ -e %q ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\nexec %q \"$@\"\n", stall, real)
	if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return wrapper, stall
}
