package gitlabtest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The runner side of GitLab, with its shapes: what a gitlab-runner calls with its runner
// authentication token (POST /runners/verify, POST /jobs/request answering 201 with a job
// or 204, PATCH /jobs/:id/trace, PUT /jobs/:id, DELETE /runners) and what a server token
// calls to manage runners (POST /user/runners, POST /runners/:id/reset_authentication_token,
// GET /runners/:id, DELETE /runners/:id, GET /projects/:id/members/all/:user_id).

type runner struct {
	id          int64
	project     *project
	token       string
	deleted     bool
	contactedAt time.Time
	verifies    int
	requests    int
	queue       []*job // jobs not yet handed out
}

type job struct {
	id       int64
	runner   *runner
	token    string // the job token (JOB-TOKEN)
	spec     Job
	state    string // pending, running, success, failed
	trace    []byte
	exitCode int
	failure  string
}

// Job is a CI job a test hands to a runner: the image it runs in and its script.
type Job struct {
	Name      string // defaults to "build"
	Image     string
	Script    []string
	Variables map[string]string
}

// JobState is what GitLab knows of a job.
type JobState struct {
	State         string // "pending", "running", "success", "failed"
	Trace         string
	ExitCode      int
	FailureReason string
}

// RunnerState is what GitLab knows of a runner.
type RunnerState struct {
	Exists      bool // not deleted
	Token       string
	ContactedAt time.Time // zero: never
	Verifies    int       // POST /runners/verify calls with its token
	Requests    int       // POST /jobs/request calls with its token
}

func randomToken(prefix string) string {
	b := make([]byte, 15)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// AddRunner makes a project runner for the project with ID projectID, as a user does in
// Settings -> CI/CD -> Runners, and returns its ID and authentication token ("glrt-...").
func (s *Server) AddRunner(projectID int64) (int64, string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projectByID(projectID)
	if p == nil {
		panic(fmt.Sprintf("gitlabtest: AddRunner: no project with ID %d", projectID))
	}
	r := s.newRunner(p)
	return r.id, r.token
}

func (s *Server) newRunner(p *project) *runner {
	r := &runner{id: int64(len(s.runners) + 1), project: p, token: randomToken("glrt-")}
	s.runners = append(s.runners, r)
	return r
}

// Runner reports what GitLab knows of runner id.
func (s *Server) Runner(id int64) RunnerState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 1 || id > int64(len(s.runners)) {
		return RunnerState{}
	}
	r := s.runners[id-1]
	return RunnerState{Exists: !r.deleted, Token: r.token, ContactedAt: r.contactedAt, Verifies: r.verifies, Requests: r.requests}
}

// SetProjectMember makes userID a member of project projectID at level (0 removes).
func (s *Server) SetProjectMember(projectID, userID int64, level int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projectByID(projectID)
	if p == nil {
		panic(fmt.Sprintf("gitlabtest: SetProjectMember: no project with ID %d", projectID))
	}
	if p.members == nil {
		p.members = map[int64]int{}
	}
	if level <= 0 {
		delete(p.members, userID)
		return
	}
	p.members[userID] = level
}

// QueueJob queues a job for runner id and returns the job's ID; the runner gets it on its
// next POST /jobs/request.
func (s *Server) QueueJob(runnerID int64, j Job) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if runnerID < 1 || runnerID > int64(len(s.runners)) {
		panic(fmt.Sprintf("gitlabtest: QueueJob: no runner with ID %d", runnerID))
	}
	r := s.runners[runnerID-1]
	if j.Name == "" {
		j.Name = "build"
	}
	jb := &job{id: int64(len(s.jobs) + 1), runner: r, token: randomToken("glcbt-"), spec: j, state: "pending"}
	s.jobs = append(s.jobs, jb)
	r.queue = append(r.queue, jb)
	return jb.id
}

// Job reports a job's state and trace.
func (s *Server) Job(id int64) JobState {
	s.mu.Lock()
	defer s.mu.Unlock()
	if id < 1 || id > int64(len(s.jobs)) {
		return JobState{}
	}
	j := s.jobs[id-1]
	return JobState{State: j.state, Trace: string(j.trace), ExitCode: j.exitCode, FailureReason: j.failure}
}

// runnerByToken is the live runner whose token is token.
func (s *Server) runnerByToken(token string) *runner {
	if token == "" {
		return nil
	}
	for _, r := range s.runners {
		if !r.deleted && r.token == token {
			return r
		}
	}
	return nil
}

// tokenParam is the runner token of a request: in its JSON body, or in the query.
func tokenParam(r *http.Request) (string, map[string]any) {
	body := map[string]any{}
	if b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20)); err == nil && len(b) > 0 {
		_ = json.Unmarshal(b, &body)
	}
	if t, ok := body["token"].(string); ok {
		return t, body
	}
	return r.URL.Query().Get("token"), body
}

// serveRunnerAPI answers the endpoints a runner calls; false when seg is none of them.
func (s *Server) serveRunnerAPI(w http.ResponseWriter, r *http.Request, seg []string) bool {
	switch {
	case r.Method == http.MethodPost && len(seg) == 2 && seg[0] == "runners" && seg[1] == "verify":
		token, _ := tokenParam(r)
		s.mu.Lock()
		defer s.mu.Unlock()
		rn := s.runnerByToken(token)
		if rn == nil {
			writeError(w, http.StatusForbidden, "403 Forbidden")
			return true
		}
		rn.verifies++
		rn.contactedAt = time.Now().UTC()
		writeJSON(w, http.StatusOK, map[string]any{"id": rn.id, "token": rn.token, "token_expires_at": nil})
	case r.Method == http.MethodDelete && len(seg) == 1 && seg[0] == "runners":
		token, _ := tokenParam(r)
		s.mu.Lock()
		defer s.mu.Unlock()
		rn := s.runnerByToken(token)
		if rn == nil {
			writeError(w, http.StatusForbidden, "403 Forbidden")
			return true
		}
		rn.deleted = true
		w.WriteHeader(http.StatusNoContent)
	case r.Method == http.MethodPost && len(seg) == 2 && seg[0] == "jobs" && seg[1] == "request":
		token, _ := tokenParam(r)
		s.mu.Lock()
		defer s.mu.Unlock()
		rn := s.runnerByToken(token)
		if rn == nil {
			writeError(w, http.StatusForbidden, "403 Forbidden")
			return true
		}
		rn.requests++
		rn.contactedAt = time.Now().UTC()
		if len(rn.queue) == 0 {
			w.Header().Set("X-GitLab-Last-Update", strconv.FormatInt(time.Now().UnixNano(), 16))
			w.WriteHeader(http.StatusNoContent)
			return true
		}
		j := rn.queue[0]
		rn.queue = rn.queue[1:]
		j.state = "running"
		writeJSON(w, http.StatusCreated, s.jobJSON(j))
	case r.Method == http.MethodPatch && len(seg) == 3 && seg[0] == "jobs" && seg[2] == "trace":
		s.mu.Lock()
		defer s.mu.Unlock()
		j := s.jobFor(seg[1], r.Header.Get("JOB-TOKEN"))
		if j == nil || j.state != "running" {
			writeError(w, http.StatusForbidden, "403 Forbidden")
			return true
		}
		start, ok := rangeStart(r.Header.Get("Content-Range"))
		if !ok || start != len(j.trace) {
			w.Header().Set("Range", fmt.Sprintf("0-%d", len(j.trace)))
			w.WriteHeader(http.StatusRequestedRangeNotSatisfiable)
			return true
		}
		b, _ := io.ReadAll(io.LimitReader(r.Body, 4<<20))
		j.trace = append(j.trace, b...)
		w.Header().Set("Range", fmt.Sprintf("0-%d", len(j.trace)))
		w.Header().Set("Job-Status", j.state)
		w.Header().Set("X-GitLab-Trace-Update-Interval", "3")
		w.WriteHeader(http.StatusAccepted)
	case r.Method == http.MethodPut && len(seg) == 2 && seg[0] == "jobs":
		token, body := tokenParam(r)
		s.mu.Lock()
		defer s.mu.Unlock()
		j := s.jobFor(seg[1], token)
		if j == nil {
			writeError(w, http.StatusForbidden, "403 Forbidden")
			return true
		}
		if st, _ := body["state"].(string); st == "success" || st == "failed" {
			j.state = st
		}
		if fr, _ := body["failure_reason"].(string); fr != "" {
			j.failure = fr
		}
		if ec, ok := body["exit_code"].(float64); ok {
			j.exitCode = int(ec)
		}
		w.Header().Set("Job-Status", j.state)
		w.WriteHeader(http.StatusOK)
	default:
		return false
	}
	return true
}

// serveRunnerAdmin answers the runner endpoints a server token calls; false when seg is
// none of them.
func (s *Server) serveRunnerAdmin(w http.ResponseWriter, r *http.Request, seg []string) bool {
	switch {
	case r.Method == http.MethodPost && len(seg) == 2 && seg[0] == "user" && seg[1] == "runners":
		_, body := tokenParam(r)
		s.mu.Lock()
		defer s.mu.Unlock()
		if typ, _ := body["runner_type"].(string); typ != "project_type" {
			writeError(w, http.StatusBadRequest, "400 Bad request - runner_type is invalid")
			return true
		}
		pid, _ := body["project_id"].(float64)
		p := s.projectByID(int64(pid))
		if p == nil {
			writeError(w, http.StatusForbidden, "403 Forbidden")
			return true
		}
		rn := s.newRunner(p)
		writeJSON(w, http.StatusCreated, map[string]any{"id": rn.id, "token": rn.token, "token_expires_at": nil})
	case r.Method == http.MethodPost && len(seg) == 3 && seg[0] == "runners" && seg[2] == "reset_authentication_token":
		s.mu.Lock()
		defer s.mu.Unlock()
		rn := s.runnerByID(seg[1])
		if rn == nil {
			writeError(w, http.StatusNotFound, "404 Runner Not Found")
			return true
		}
		rn.token = randomToken("glrt-")
		writeJSON(w, http.StatusCreated, map[string]any{"token": rn.token, "token_expires_at": nil})
	case r.Method == http.MethodGet && len(seg) == 2 && seg[0] == "runners":
		s.mu.Lock()
		defer s.mu.Unlock()
		rn := s.runnerByID(seg[1])
		if rn == nil {
			writeError(w, http.StatusNotFound, "404 Runner Not Found")
			return true
		}
		writeJSON(w, http.StatusOK, runnerDetailsJSON(rn, time.Now()))
	case r.Method == http.MethodDelete && len(seg) == 2 && seg[0] == "runners":
		s.mu.Lock()
		defer s.mu.Unlock()
		rn := s.runnerByID(seg[1])
		if rn == nil {
			writeError(w, http.StatusNotFound, "404 Runner Not Found")
			return true
		}
		rn.deleted = true
		w.WriteHeader(http.StatusNoContent)
	default:
		return false
	}
	return true
}

// onlineWithin is how recently a runner must have asked GitLab to count as online.
const onlineWithin = 2 * time.Hour

// runnerDetailsJSON is GitLab's answer to GET /runners/:id: online while the runner asked
// within the last two hours, status online, offline or never_contacted, contacted_at null
// before the first contact.
func runnerDetailsJSON(rn *runner, now time.Time) map[string]any {
	var contacted any
	status, online := "never_contacted", false
	if !rn.contactedAt.IsZero() {
		contacted = rn.contactedAt.Format(time.RFC3339Nano)
		online = now.Sub(rn.contactedAt) < onlineWithin
		status = "offline"
		if online {
			status = "online"
		}
	}
	projects := []map[string]any{}
	if rn.project != nil {
		projects = append(projects, map[string]any{"id": rn.project.id, "path_with_namespace": rn.project.path})
	}
	return map[string]any{"id": rn.id, "description": "", "active": true, "paused": false, "is_shared": false,
		"runner_type": "project_type", "name": nil, "online": online, "status": status, "contacted_at": contacted,
		"tag_list": []string{}, "run_untagged": true, "locked": true, "access_level": "not_protected",
		"maximum_timeout": nil, "projects": projects, "groups": []any{}, "maintenance_note": nil}
}

func (s *Server) runnerByID(id string) *runner {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 1 || n > int64(len(s.runners)) || s.runners[n-1].deleted {
		return nil
	}
	return s.runners[n-1]
}

// jobFor is job id when token is its job token.
func (s *Server) jobFor(id, token string) *job {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 1 || n > int64(len(s.jobs)) || token == "" || s.jobs[n-1].token != token {
		return nil
	}
	return s.jobs[n-1]
}

// rangeStart is the first byte of a Content-Range "start-end".
func rangeStart(h string) (int, bool) {
	a, _, ok := strings.Cut(h, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(a)
	return n, err == nil && n >= 0
}

// jobJSON is a job as POST /jobs/request hands it out (the fields a runner reads).
func (s *Server) jobJSON(j *job) map[string]any {
	p := j.runner.project
	vars := []any{
		map[string]any{"key": "CI_JOB_ID", "value": strconv.FormatInt(j.id, 10), "public": true},
		map[string]any{"key": "CI_JOB_TOKEN", "value": j.token, "public": false, "masked": true},
		map[string]any{"key": "CI_PROJECT_PATH", "value": p.pathWithNamespace(), "public": true},
		map[string]any{"key": "CI_REGISTRY_IMAGE", "value": s.registryHost + "/" + strings.ToLower(p.pathWithNamespace()), "public": true},
	}
	for k, v := range j.spec.Variables {
		vars = append(vars, map[string]any{"key": k, "value": v, "public": true})
	}
	return map[string]any{
		"id":              j.id,
		"token":           j.token,
		"allow_git_fetch": true,
		"job_info": map[string]any{"id": j.id, "name": j.spec.Name, "stage": "build",
			"project_id": p.id, "project_name": p.path},
		"git_info": map[string]any{"repo_url": s.srv.URL + "/" + p.pathWithNamespace() + ".git", "ref": "main",
			"sha": strings.Repeat("0", 40), "before_sha": strings.Repeat("0", 40), "ref_type": "branch",
			"refspecs": []string{}, "depth": 20},
		"runner_info": map[string]any{"timeout": 3600},
		"variables":   vars,
		"steps": []any{map[string]any{"name": "script", "script": j.spec.Script, "timeout": 3600,
			"when": "on_success", "allow_failure": false}},
		"image":        map[string]any{"name": j.spec.Image, "entrypoint": nil},
		"services":     []any{},
		"artifacts":    nil,
		"cache":        []any{},
		"credentials":  []any{},
		"dependencies": []any{},
		"features":     map[string]any{"trace_sections": true},
	}
}

// getProject is GET /projects/:id.
func (s *Server) getProject(w http.ResponseWriter, idOrPath string) {
	p := s.projectByIDOrPath(idOrPath)
	if p == nil {
		writeError(w, http.StatusNotFound, "404 Project Not Found")
		return
	}
	writeJSON(w, http.StatusOK, s.projectJSON(p, false))
}

// projectMember is GET /projects/:id/members/all/:user_id: the owner of a personal project
// is its Owner (50).
func (s *Server) projectMember(w http.ResponseWriter, pid, uid string) {
	p := s.projectByIDOrPath(pid)
	if p == nil {
		writeError(w, http.StatusNotFound, "404 Project Not Found")
		return
	}
	id, err := strconv.ParseInt(uid, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "400 Bad request - user_id is invalid")
		return
	}
	u := s.userByID(id)
	level := p.members[id]
	if p.owner.id == id {
		level = 50
	}
	if u == nil || level == 0 {
		writeError(w, http.StatusNotFound, "404 Not found")
		return
	}
	body := s.userJSON(u)
	body["access_level"] = level
	body["created_at"] = p.created.Format(time.RFC3339Nano)
	body["expires_at"] = nil
	body["membership_state"] = "active"
	writeJSON(w, http.StatusOK, body)
}
