package runner

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/gitlab"
	"whalemountain/backend/kube"
)

// Viewer reads GitLab's view of a runner by its ID with the server's token (an
// administrator's, or a Maintainer's of the runner's project: GET /runners/:id takes no
// runner token); nil when the server has none that may.
type Viewer interface {
	RunnerView(ctx context.Context, id int64) (gitlab.RunnerView, error)
}

// Jobs is the live list of containers (backend/docker's Service), read with no engine call.
type Jobs interface {
	Snapshot(id backend.Identity, opts docker.ListOptions) ([]docker.Container, docker.Health)
}

// Job is one job container a runner made.
type Job struct {
	Name      string    `json:"name"`
	Image     string    `json:"image"`
	State     string    `json:"state"`
	ExitCode  int       `json:"exit_code"`
	Created   time.Time `json:"created"`
	StartedAt time.Time `json:"started_at,omitzero"`
}

// Online words of a runner, as GitLab would say them.
const (
	Online         = "online"
	Offline        = "offline"
	NeverContacted = "never_contacted"
)

// Where GitLab's view of a runner came from.
const (
	FromGitLab = "gitlab" // GET /runners/:id with the server's token
	FromLog    = "log"    // the runner container's own log
)

// keepJobs is how many finished jobs are kept per runner.
const keepJobs = 5

// Refresh rates: jobs are read from memory every viewEvery; GitLab (or the runner's log)
// is asked at most once per askEvery per runner.
const (
	viewEvery = 5 * time.Second
	askEvery  = 30 * time.Second
)

// view is what the refresh loop knows of one runner.
type view struct {
	online      string
	lastContact time.Time
	from        string
	asked       time.Time
	jobs        []Job // every job container seen, newest first, at most keepJobs finished
}

// contactMarks are the words gitlab-runner logs when it talks with GitLab about a job.
var contactMarks = []string{"Checking for jobs... received", "Checking for jobs... nothing", "Appending trace", "Submitting job to coordinator", "Job succeeded", "Job failed"}

// LastContact is when a runner's log last shows it talking with GitLab: the time at the
// start of the last line with one of gitlab-runner's contact words ("Checking for jobs...
// received", "Appending trace"), read as the engine's RFC 3339 timestamp (the service asks
// for them: gitlab-runner's own lines carry none), logrus's time="...", or Go's log prefix
// (2006/01/02 15:04:05, UTC); false when no such line has a time.
func LastContact(log string) (time.Time, bool) {
	lines := strings.Split(log, "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !slices.ContainsFunc(contactMarks, func(m string) bool { return strings.Contains(l, m) }) {
			continue
		}
		if t, ok := lineTime(l); ok {
			return t, true
		}
	}
	return time.Time{}, false
}

func lineTime(l string) (time.Time, bool) {
	l = strings.TrimSpace(l)
	if rest, ok := strings.CutPrefix(l, `time="`); ok {
		if end := strings.IndexByte(rest, '"'); end > 0 {
			if t, err := time.Parse(time.RFC3339Nano, rest[:end]); err == nil {
				return t, true
			}
		}
	}
	if f := strings.Fields(l); len(f) > 0 {
		if t, err := time.Parse(time.RFC3339Nano, f[0]); err == nil {
			return t, true
		}
		if len(f) > 1 {
			if t, err := time.Parse("2006/01/02 15:04:05", f[0]+" "+f[1]); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

// mergeJobs adds the job containers seen now to what was known, newest first: running
// ones all, finished ones at most keepJobs (a removed container stays as last seen).
func mergeJobs(known, seen []Job) []Job {
	byName := map[string]Job{}
	for _, j := range known {
		byName[j.Name] = j
	}
	for _, j := range seen {
		byName[j.Name] = j
	}
	out := make([]Job, 0, len(byName))
	for _, j := range byName {
		out = append(out, j)
	}
	slices.SortFunc(out, func(a, b Job) int {
		if c := b.Created.Compare(a.Created); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	finished := 0
	return slices.DeleteFunc(out, func(j Job) bool {
		if j.State == "running" {
			return false
		}
		finished++
		return finished > keepJobs
	})
}

// runRefresh keeps every runner's view fresh until ctx ends or Close.
func (s *Service) runRefresh(ctx context.Context) {
	defer s.wg.Done()
	t := time.NewTicker(s.viewEvery)
	defer t.Stop()
	for {
		s.refresh(ctx)
		select {
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		case <-t.C:
		}
	}
}

// refresh reads each runner's job containers from memory and, at most once per askEvery,
// GitLab's view of it (or its log).
func (s *Service) refresh(ctx context.Context) {
	rs, err := s.ctr.Runners(ctx, "")
	if err != nil {
		return
	}
	snaps := map[string][]docker.Container{}
	for _, r := range rs {
		key := r.Owner + "/" + r.Name
		s.mu.Lock()
		v := s.views[key]
		s.mu.Unlock()
		if s.jobs != nil {
			cs, ok := snaps[r.Owner]
			if !ok {
				// The runner's own identity: it sees its owner's containers, no one else's.
				cs, _ = s.jobs.Snapshot(backend.Identity{User: r.Owner, Role: backend.RoleStudent, KeySource: backend.KeySourceRunner,
					RemoteAddr: docker.RunnerAddrPrefix + r.Name}, docker.ListOptions{All: true})
				snaps[r.Owner] = cs
			}
			var seen []Job
			for _, c := range cs {
				if c.Runner == r.Name {
					seen = append(seen, Job{Name: c.Name, Image: c.Image, State: c.State, ExitCode: c.ExitCode, Created: c.Created, StartedAt: c.StartedAt})
				}
			}
			// A job that was running and is gone was removed when it ended.
			v.jobs = slices.Clone(v.jobs)
			for i, j := range v.jobs {
				if j.State == "running" && !slices.ContainsFunc(seen, func(n Job) bool { return n.Name == j.Name }) {
					v.jobs[i].State = "removed"
				}
			}
			v.jobs = mergeJobs(v.jobs, seen)
		}
		s.askNow(ctx, key, r.Owner, r.Name, &v)
	}
	if s.pods == nil {
		return
	}
	// Runners in the cluster: GitLab's view only (their jobs are pods, not listed here).
	ps, err := s.pods.Runners(ctx, "")
	if err != nil {
		return
	}
	for _, p := range ps {
		key := p.Owner + "/" + p.Name
		s.mu.Lock()
		v := s.views[key]
		s.mu.Unlock()
		s.askNow(ctx, key, p.Owner, p.Name, &v)
	}
}

// askNow asks for GitLab's view of the runner when it was not asked lately, and keeps v.
func (s *Service) askNow(ctx context.Context, key, owner, name string, v *view) {
	if time.Since(v.asked) >= s.askEvery {
		v.asked = time.Now()
		s.ask(ctx, owner, name, v)
	}
	s.mu.Lock()
	s.views[key] = *v
	s.mu.Unlock()
}

// ask fills v with GitLab's view of the runner: from GitLab when the server may read it,
// else from the runner's own log.
func (s *Service) ask(ctx context.Context, owner, name string, v *view) {
	rec, err := s.readRecord(owner, name)
	if err != nil {
		return
	}
	if s.viewer != nil && rec.RunnerID != 0 {
		gv, err := s.viewer.RunnerView(ctx, rec.RunnerID)
		if err == nil {
			v.online, v.lastContact, v.from = gv.Status, gv.ContactedAt, FromGitLab
			if gv.Status == "" {
				v.online = Offline
				if gv.Online {
					v.online = Online
				}
			}
			return
		}
		s.log.Debug("runners: GitLab's view of a runner could not be read; using its log", "owner", owner, "runner", name, "err", err)
	}
	var rc io.ReadCloser
	if rec.Kubernetes && s.pods != nil {
		rc, err = s.pods.RunnerLogs(ctx, owner, name, kube.LogOptions{Tail: 200, Timestamps: true})
	} else {
		rc, err = s.ctr.RunnerLogs(ctx, owner, name, docker.LogOptions{Tail: 200, Timestamps: true})
	}
	if err != nil {
		return
	}
	defer rc.Close()
	b, _ := io.ReadAll(io.LimitReader(rc, 256<<10))
	v.from = FromLog
	if t, ok := LastContact(string(b)); ok {
		v.lastContact = t
		v.online = Offline
		if time.Since(t) < 2*time.Hour {
			v.online = Online
		}
	} else if v.lastContact.IsZero() {
		v.online = NeverContacted
	}
}

// withView adds the refresh loop's view and jobs to r.
func (s *Service) withView(r Runner) Runner {
	s.mu.Lock()
	v, ok := s.views[r.Owner+"/"+r.Name]
	s.mu.Unlock()
	r.JobsNow, r.RecentJobs = []Job{}, []Job{}
	if !ok {
		return r
	}
	r.Online, r.LastContact, r.ViewFrom = v.online, v.lastContact, v.from
	for _, j := range v.jobs {
		if j.State == "running" {
			r.JobsNow = append(r.JobsNow, j)
		} else {
			r.RecentJobs = append(r.RecentJobs, j)
		}
	}
	return r
}

// OnlineWord is the ONLINE cell of a runner: GitLab's word, "?" while not known.
func OnlineWord(r Runner) string {
	switch r.Online {
	case "":
		return "?"
	case NeverContacted:
		return "never"
	}
	return r.Online
}

// ContactWord is the LAST CONTACT cell of a runner at now: "12s ago", "5m ago", "3h ago",
// "2d ago", "never" when GitLab says so, "?" while not known.
func ContactWord(r Runner, now time.Time) string {
	if r.LastContact.IsZero() {
		if r.Online == NeverContacted {
			return "never"
		}
		return "?"
	}
	d := max(now.Sub(r.LastContact), 0)
	switch {
	case d < time.Minute:
		return d.Truncate(time.Second).String() + " ago"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// JobsLine says what a runner's jobs are at now: "now NAME (running, started 40s ago);
// last NAME (exited 0, started 3m ago), ..."; "" when it has run none that the server saw.
// Names are as the engine has them: a caller shows the line through termsafe.
func JobsLine(r Runner, now time.Time) string {
	var parts []string
	if len(r.JobsNow) > 0 {
		var ns []string
		for _, j := range r.JobsNow {
			ns = append(ns, j.Name+" (running, started "+ContactWord(Runner{LastContact: j.StartedAt}, now)+")")
		}
		parts = append(parts, "now "+strings.Join(ns, ", "))
	}
	if len(r.RecentJobs) > 0 {
		var ns []string
		for _, j := range r.RecentJobs {
			w := j.State
			if j.State == "exited" {
				w = fmt.Sprintf("exited %d", j.ExitCode)
			}
			ns = append(ns, j.Name+" ("+w+", started "+ContactWord(Runner{LastContact: j.Created}, now)+")")
		}
		parts = append(parts, "last "+strings.Join(ns, ", "))
	}
	return strings.Join(parts, "; ")
}
