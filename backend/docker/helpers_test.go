package docker_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"whalemountain/backend"
	"whalemountain/backend/audit"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
)

var (
	alice = backend.Identity{User: "alice", Role: backend.RoleStudent}
	bob   = backend.Identity{User: "bob", Role: backend.RoleStudent}
	tina  = backend.Identity{User: "tina", Role: backend.RoleTA}
)

// rig is one test's engine client, image and Service.
type rig struct {
	t   *testing.T
	ctx context.Context
	cli *client.Client
	img string
	svc *docker.Service
}

func newRig(t *testing.T, configure ...func(*docker.Config)) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cli := dockertest.Client(t)
	// The image first: cleanups run last-in first-out, so the service's objects go before it.
	img := dockertest.BusyboxImage(ctx, t, cli)
	return &rig{t: t, ctx: ctx, cli: cli, img: img, svc: dockertest.NewService(t, configure...)}
}

func (r *rig) run(id backend.Identity, spec docker.RunSpec) docker.Container {
	r.t.Helper()
	if spec.Image == "" {
		spec.Image = r.img
	}
	c, err := r.svc.Run(r.ctx, id, spec)
	if err != nil {
		r.t.Fatalf("run %s for %s: %v", spec.Name, id.User, err)
	}
	return c
}

// wait blocks until the container is no longer running and returns its exit code.
func (r *rig) wait(c docker.Container) int64 {
	r.t.Helper()
	w := r.cli.ContainerWait(r.ctx, c.ID, client.ContainerWaitOptions{})
	select {
	case res := <-w.Result:
		return res.StatusCode
	case err := <-w.Error:
		r.t.Fatalf("wait for %s: %v", c.Name, err)
	}
	return 0
}

func (r *rig) logs(id backend.Identity, ref string, opts docker.LogOptions) string {
	r.t.Helper()
	rc, err := r.svc.Logs(r.ctx, id, ref, opts)
	if err != nil {
		r.t.Fatalf("logs %s: %v", ref, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		r.t.Fatalf("read logs %s: %v", ref, err)
	}
	return strings.ReplaceAll(string(b), "\r\n", "\n")
}

// count counts the objects of each kind that carry this service's labels.
func (r *rig) count() (containers, volumes, networks int) {
	r.t.Helper()
	f := client.Filters{}
	for k, v := range r.svc.Config().Labels {
		f.Add("label", k+"="+v)
	}
	cs, err := r.cli.ContainerList(r.ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		r.t.Fatal(err)
	}
	vs, err := r.cli.VolumeList(r.ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		r.t.Fatal(err)
	}
	ns, err := r.cli.NetworkList(r.ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		r.t.Fatal(err)
	}
	return len(cs.Items), len(vs.Items), len(ns.Items)
}

// until waits (on Subscribe, up to a generous bound) for cond on the snapshot.
func until(t *testing.T, svc *docker.Service, what string, cond func() bool) {
	t.Helper()
	ch, cancel := svc.Subscribe()
	defer cancel()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// find returns the named container from a snapshot list.
func find(cs []docker.Container, owner, name string) (docker.Container, bool) {
	for _, c := range cs {
		if c.Owner == owner && c.Name == name {
			return c, true
		}
	}
	return docker.Container{}, false
}

// auditedService is a second Service on r's engine that records in an audit log of its own,
// whose path it returns with it.
func (r *rig) auditedService() (*docker.Service, string) {
	r.t.Helper()
	path := filepath.Join(r.t.TempDir(), "audit.log")
	log, err := audit.Open(path)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { log.Close() })
	cfg := dockertest.Config()
	dockertest.Track(r.t, r.cli, cfg)
	svc, err := docker.New(cfg, log)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { svc.Close() })
	return svc, path
}

// auditLines reads the audit log at path as "user action target result" lines.
func auditLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var e audit.Entry
		if err := json.Unmarshal([]byte(line), &e); err != nil {
			t.Fatal(err)
		}
		got = append(got, e.User+" "+e.Action+" "+e.Target+" "+e.Result)
	}
	return got
}
