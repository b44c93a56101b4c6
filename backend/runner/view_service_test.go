package runner

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/gitlab"
)

// fakeJobs is the live container list: each identity sees its own containers only.
type fakeJobs struct {
	mu  sync.Mutex
	all []docker.Container
}

func (f *fakeJobs) Snapshot(id backend.Identity, _ docker.ListOptions) ([]docker.Container, docker.Health) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.DeleteFunc(slices.Clone(f.all), func(c docker.Container) bool { return c.Owner != id.User }), docker.Health{OK: true}
}

type fakeViewer struct{ v gitlab.RunnerView }

func (f fakeViewer) RunnerView(context.Context, int64) (gitlab.RunnerView, error) { return f.v, nil }

// TestRefreshView: the refresh loop's view of a runner — last contact from its log, jobs
// from its owner's containers only, a removed job kept among the last ones — and GitLab's
// own word once the runner's ID is known and the server may read it.
func TestRefreshView(t *testing.T) {
	ctx := context.Background()
	svc, gl, ctr, _ := newTestService(t)
	jobs := &fakeJobs{}
	svc.jobs = jobs
	gl.valid["glrt-aaaaaaaaaaaaaaaaaaaa"] = true
	if _, err := svc.SetToken(ctx, alice, "alice/demo", "glrt-aaaaaaaaaaaaaaaaaaaa"); err != nil {
		t.Fatal(err)
	}
	name := NameFor("alice/demo")
	contact := time.Now().Add(-time.Minute).UTC().Truncate(time.Second)
	ctr.mu.Lock()
	ctr.log = "Runtime platform arch=amd64\n" + contact.Format("2006/01/02 15:04:05") + " Checking for jobs... received job=1\n"
	ctr.mu.Unlock()
	jobs.all = []docker.Container{
		{Name: "build-1", Owner: "alice", Runner: name, State: "running", Created: contact},
		{Name: "other", Owner: "alice", State: "running"},
		{Name: "bobs", Owner: "bob", Runner: name, State: "running"},
	}
	list, _ := svc.List(ctx, alice, false)
	if len(list) != 1 || list[0].Online != "" || len(list[0].JobsNow) != 0 || list[0].RecentJobs == nil {
		t.Fatalf("before the first refresh: %+v", list)
	}
	svc.refresh(ctx)
	list, _ = svc.List(ctx, alice, false)
	r := list[0]
	if r.Online != Online || !r.LastContact.Equal(contact) || r.ViewFrom != FromLog {
		t.Errorf("from the log: online %q, last contact %v, from %q; want online, %v, log", r.Online, r.LastContact, r.ViewFrom, contact)
	}
	if len(r.JobsNow) != 1 || r.JobsNow[0].Name != "build-1" {
		t.Errorf("jobs now: %+v, want only build-1 (not bob's, not a container of no runner)", r.JobsNow)
	}

	jobs.mu.Lock()
	jobs.all = nil
	jobs.mu.Unlock()
	svc.refresh(ctx)
	list, _ = svc.List(ctx, alice, false)
	if r := list[0]; len(r.JobsNow) != 0 || len(r.RecentJobs) != 1 || r.RecentJobs[0].State != "removed" {
		t.Errorf("after the job container went: now %+v, last %+v", r.JobsNow, r.RecentJobs)
	}

	rec, err := svc.readRecord("alice", name)
	if err != nil {
		t.Fatal(err)
	}
	rec.RunnerID = 7
	if err := svc.save(rec); err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	svc.viewer = fakeViewer{gitlab.RunnerView{Online: false, Status: "offline", ContactedAt: at}}
	svc.askEvery = 0
	svc.refresh(ctx)
	list, _ = svc.List(ctx, alice, false)
	if r := list[0]; r.Online != Offline || !r.LastContact.Equal(at) || r.ViewFrom != FromGitLab {
		t.Errorf("from GitLab: online %q, last contact %v, from %q; want offline, %v, gitlab", r.Online, r.LastContact, r.ViewFrom, at)
	}
	if list, _ := svc.List(ctx, bob, false); len(list) != 0 {
		t.Errorf("bob sees %+v", list)
	}
}
