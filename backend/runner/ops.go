package runner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/gitlab"
	"whalemountain/backend/kube"
)

func errorf(kind error, format string, a ...any) error {
	return &userError{kind: kind, msg: fmt.Sprintf(format, a...)}
}

type userError struct {
	kind error
	msg  string
}

func (e *userError) Error() string        { return e.msg }
func (e *userError) Is(target error) bool { return target == e.kind }

// gitlabErr turns GitLab's answer to a runner token into the user's words; the token is
// never in them.
func gitlabErr(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, gitlab.ErrRunnerToken):
		return errorf(ErrInvalid, "GitLab does not accept this runner token (revoked, expired or mistyped): "+
			"create a new one under your project -> Settings -> CI/CD -> Runners")
	case gitlab.IsUnavailable(err):
		return errorf(ErrUnavailable, "GitLab could not be reached to check the token; try again later")
	default:
		return err
	}
}

func checkID(id backend.Identity) error {
	if !id.Valid() {
		return errorf(ErrPermission, "permission denied")
	}
	return nil
}

// SetToken checks token with GitLab and starts id's runner for project ("" for none) with
// it; a runner already there for that project is made again with the new token. The token
// is read by the caller from stdin, never from a command line, and is stored 0600.
func (s *Service) SetToken(ctx context.Context, id backend.Identity, project, token string) (Runner, error) {
	return s.SetTokenWith(ctx, id, project, token, "")
}

// SetTokenWith is SetToken with the runner's executor: ExecutorDocker, ExecutorKubernetes
// (a pod in id's namespace), or "" for the one the runner of that project has (docker for
// a new one). A runner that changes executor leaves nothing of the old one behind.
func (s *Service) SetTokenWith(ctx context.Context, id backend.Identity, project, token, executor string) (Runner, error) {
	name := NameFor(project)
	r, err := s.setToken(ctx, id, project, token, 0, false, executor)
	s.record(id, "runner token", id.User+"/"+name, err)
	return r, err
}

// checkExecutor checks the executor asked for ("" for the runner's own).
func (s *Service) checkExecutor(executor string) error {
	switch executor {
	case "", ExecutorDocker:
	case ExecutorKubernetes:
		if s.pods == nil {
			return errorf(ErrUnavailable, "this server lends no pods (kubernetes is off): leave out --kubernetes to run the runner as a container")
		}
	default:
		return errorf(ErrInvalid, "unknown executor %s: docker or kubernetes", shownText(executor))
	}
	return nil
}

// runnerNames are owner's runners on the engine and in the cluster, by name, with their
// executor.
func (s *Service) runnerNames(ctx context.Context, owner string) (map[string]string, error) {
	names := map[string]string{}
	cs, err := s.ctr.Runners(ctx, owner)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		names[c.Name] = ExecutorDocker
	}
	if s.pods != nil {
		ps, err := s.pods.Runners(ctx, owner)
		if err != nil {
			// The cluster cannot be asked: its runners are those the records say, and
			// runners on the engine keep working.
			s.log.Warn("runners: the cluster's runners could not be listed", "owner", owner, "err", err)
			for _, rec := range s.records(owner) {
				if rec.Kubernetes {
					names[rec.Name] = ExecutorKubernetes
				}
			}
			return names, nil
		}
		for _, p := range ps {
			names[p.Name] = ExecutorKubernetes
		}
	}
	return names, nil
}

// records are the records of owner's runners kept here.
func (s *Service) records(owner string) []record {
	var out []record
	ents, _ := os.ReadDir(filepath.Join(s.cfg.Dir, owner))
	for _, e := range ents {
		if rec, err := s.readRecord(owner, e.Name()); err == nil {
			out = append(out, rec)
		}
	}
	return out
}

// kubeErr is an error of the cluster in this package's kinds.
func kubeErr(err error) error {
	for _, k := range [][2]error{{kube.ErrNotFound, ErrNotFound}, {kube.ErrQuota, ErrQuota}, {kube.ErrInvalid, ErrInvalid},
		{kube.ErrPermission, ErrPermission}, {kube.ErrUnavailable, ErrUnavailable}} {
		if errors.Is(err, k[0]) {
			return errorf(k[1], "%s", err.Error())
		}
	}
	return err
}

// ownerID is the identity the owner's namespace is made right for when id acts on owner's
// runner: id itself, or, for a TA acting on a student's, the student's.
func ownerID(id backend.Identity, owner string) backend.Identity {
	if id.User == owner {
		return id
	}
	return backend.Identity{User: owner, Role: backend.RoleStudent, KeySource: backend.KeySourceRunner}
}

// start makes the runner of rec run: its container (and socket) or its pod.
func (s *Service) start(ctx context.Context, id backend.Identity, rec record) (Runner, error) {
	if rec.Kubernetes {
		p, err := s.pods.CreateRunner(ctx, kube.RunnerSpec{Owner: ownerID(id, rec.Owner), Name: rec.Name, Project: rec.Project,
			Image: s.cfg.Image, ConfigTOML: []byte(s.toml(rec)), CPUs: s.cfg.CPUs, Memory: s.cfg.Memory})
		if err != nil {
			return Runner{}, kubeErr(err)
		}
		return podRunner(p, rec), nil
	}
	if err := s.listen(rec.Owner, rec.Name); err != nil {
		return Runner{}, err
	}
	c, err := s.ctr.CreateRunner(ctx, docker.RunnerSpec{Owner: rec.Owner, Name: rec.Name, Project: rec.Project, Image: s.cfg.Image,
		ConfigDir: s.dir(rec.Owner, rec.Name), ConfigTarget: ConfigTarget, CPUs: s.cfg.CPUs, Memory: s.cfg.Memory})
	if err != nil {
		return Runner{}, err
	}
	return toRunner(c, rec), nil
}

// stopRuntime removes what runs owner's runner name with executor (its container and
// socket, or its pod and the objects beside it); a runner not there is no error.
func (s *Service) stopRuntime(ctx context.Context, owner, name, executor string) error {
	if executor == ExecutorKubernetes {
		if s.pods == nil {
			return nil
		}
		if err := s.pods.RemoveRunner(ctx, owner, name); err != nil && !errors.Is(err, kube.ErrNotFound) {
			return kubeErr(err)
		}
		return nil
	}
	if err := s.ctr.RemoveRunner(ctx, owner, name); err != nil && !errors.Is(err, docker.ErrNotFound) {
		return err
	}
	s.unlisten(owner, name)
	return nil
}

func (s *Service) setToken(ctx context.Context, id backend.Identity, project, token string, runnerID int64, managed bool, executor string) (Runner, error) {
	if err := checkID(id); err != nil {
		return Runner{}, err
	}
	if err := s.checkExecutor(executor); err != nil {
		return Runner{}, err
	}
	if project != "" {
		if err := CheckProject(project); err != nil {
			return Runner{}, err
		}
	}
	if err := CheckToken(token); err != nil {
		return Runner{}, err
	}
	name := NameFor(project)
	lock := s.userLock(id.User)
	lock.Lock()
	defer lock.Unlock()
	mine, err := s.runnerNames(ctx, id.User)
	if err != nil {
		return Runner{}, err
	}
	_, have := mine[name]
	if !have && len(mine) >= s.cfg.MaxRunners {
		return Runner{}, errorf(ErrQuota, "quota: at most %d runners per user (you have %d); remove one with runner rm", s.cfg.MaxRunners, len(mine))
	}
	verified, err := s.gl.VerifyRunner(ctx, token)
	if err := gitlabErr(err); err != nil {
		return Runner{}, err
	}
	prev, prevErr := s.readRecord(id.User, name)
	if prevErr == nil && runnerID == 0 && prev.Token == token {
		runnerID, managed = prev.RunnerID, prev.Managed
	}
	if runnerID == 0 {
		runnerID = verified // for GitLab's view of it; rotate and rm by ID stay for runners made here
	}
	if executor == "" {
		executor = ExecutorDocker
		if prevErr == nil {
			executor = prev.executor()
		} else if e, ok := mine[name]; ok {
			executor = e
		}
		if err := s.checkExecutor(executor); err != nil {
			return Runner{}, err
		}
	}
	rec := record{Owner: id.User, Name: name, Project: project, Token: token, RunnerID: runnerID, Managed: managed,
		Kubernetes: executor == ExecutorKubernetes}
	// A runner of that name with the other executor goes first.
	if e, ok := mine[name]; ok && e != executor {
		if err := s.stopRuntime(ctx, id.User, name, e); err != nil {
			return Runner{}, err
		}
	}
	if err := s.save(rec); err != nil {
		return Runner{}, err
	}
	r, err := s.start(ctx, id, rec)
	if err != nil {
		if prevErr != nil { // nothing was there before: nothing is left
			_ = s.stopRuntime(context.WithoutCancel(ctx), id.User, name, executor)
			_ = os.RemoveAll(s.dir(id.User, name))
		}
		return Runner{}, err
	}
	s.log.Info("runner started", "owner", id.User, "runner", name, "project", project, "executor", executor)
	return r, nil
}

func toRunner(c docker.RunnerContainer, rec record) Runner {
	return Runner{Owner: c.Owner, Name: c.Name, Project: c.Project, State: c.State, Status: c.Status,
		RunnerID: rec.RunnerID, Managed: rec.Managed, Executor: ExecutorDocker}
}

func podRunner(p kube.RunnerPod, rec record) Runner {
	project := p.Project
	if project == "" {
		project = rec.Project
	}
	return Runner{Owner: p.Owner, Name: p.Name, Project: project, State: p.State, Status: "pod in " + p.Namespace + ": " + p.Status,
		RunnerID: rec.RunnerID, Managed: rec.Managed, Executor: ExecutorKubernetes, Namespace: p.Namespace}
}

// Create makes a project runner in GitLab with the server's token (id must be at least
// Maintainer of project) and starts it.
func (s *Service) Create(ctx context.Context, id backend.Identity, project string) (Runner, error) {
	return s.CreateWith(ctx, id, project, "")
}

// CreateWith is Create with the runner's executor, as SetTokenWith takes it.
func (s *Service) CreateWith(ctx context.Context, id backend.Identity, project, executor string) (Runner, error) {
	r, err := s.create(ctx, id, project, executor)
	s.record(id, "runner create", id.User+"/"+NameFor(project), err)
	return r, err
}

func (s *Service) create(ctx context.Context, id backend.Identity, project, executor string) (Runner, error) {
	if err := checkID(id); err != nil {
		return Runner{}, err
	}
	if err := s.checkExecutor(executor); err != nil {
		return Runner{}, err
	}
	if s.admin == nil {
		return Runner{}, errorf(ErrUnavailable, "this server cannot create runners in GitLab: create one there and give its token with runner token")
	}
	if err := CheckProject(project); err != nil {
		return Runner{}, err
	}
	level, err := s.admin.ProjectAccessLevel(ctx, project, id.User)
	if err != nil {
		if gitlab.IsUnavailable(err) {
			return Runner{}, errorf(ErrUnavailable, "GitLab could not be reached; try again later")
		}
		return Runner{}, err
	}
	if level < gitlab.Maintainer {
		// The same words whether the project exists or not.
		return Runner{}, errorf(ErrPermission, "you must be at least Maintainer of %s in GitLab to give it a runner", project)
	}
	made, err := s.admin.CreateProjectRunner(ctx, project, "whalemountain "+id.User+"/"+NameFor(project))
	if err != nil {
		return Runner{}, fmt.Errorf("create a runner for %s in GitLab: %w", project, err)
	}
	r, err := s.setToken(ctx, id, project, made.Token, made.ID, true, executor)
	if err != nil {
		_ = s.admin.DeleteRunnerByID(context.WithoutCancel(ctx), made.ID)
	}
	return r, err
}

// Rotate gives id's runner a new token in GitLab (runners made with Create only) and
// restarts it with the new one.
func (s *Service) Rotate(ctx context.Context, id backend.Identity, ref string) error {
	name := ref
	err := func() error {
		if err := checkID(id); err != nil {
			return err
		}
		var rec record
		var err error
		name, rec, err = s.resolve(ctx, id, id.User, ref)
		if err != nil {
			return err
		}
		if s.admin == nil || !rec.Managed || rec.RunnerID == 0 {
			return errorf(ErrUnavailable, "runner %s was not created by this server: reset its token in GitLab and give the new one with runner token", name)
		}
		token, err := s.admin.ResetRunnerToken(ctx, rec.RunnerID)
		if err != nil {
			return fmt.Errorf("reset the token of runner %s in GitLab: %w", name, err)
		}
		_, err = s.setToken(ctx, id, rec.Project, token, rec.RunnerID, true, rec.executor())
		return err
	}()
	s.record(id, "runner rotate", id.User+"/"+name, err)
	return err
}

// resolve finds owner's runner by name or project path ("" when owner has exactly one).
// Someone else's runner reads exactly as one that does not exist.
func (s *Service) resolve(ctx context.Context, id backend.Identity, owner, ref string) (string, record, error) {
	if owner != id.User && !id.IsTA() {
		return shownText(ref), record{}, errorf(ErrNotFound, "no such runner: %s", shownText(ref))
	}
	have, err := s.runnerNames(ctx, owner)
	if err != nil {
		return ref, record{}, err
	}
	names := map[string]bool{}
	for n := range have {
		names[n] = true
	}
	// Runners whose container went missing still have their record.
	if ents, err := os.ReadDir(filepath.Join(s.cfg.Dir, owner)); err == nil {
		for _, e := range ents {
			if _, err := s.readRecord(owner, e.Name()); err == nil {
				names[e.Name()] = true
			}
		}
	}
	name := ref
	switch {
	case ref == "" && len(names) == 1:
		for n := range names {
			name = n
		}
	case ref == "" && len(names) == 0:
		return "", record{}, errorf(ErrNotFound, "you have no runner: set one up with runner token")
	case ref == "":
		return "", record{}, errorf(ErrInvalid, "you have %d runners: name one (runner status lists them)", len(names))
	case strings.Contains(ref, "/"):
		name = NameFor(ref)
	}
	if !names[name] {
		return shownText(ref), record{}, errorf(ErrNotFound, "no such runner: %s", shownText(ref))
	}
	rec, err := s.readRecord(owner, name)
	if err != nil {
		rec = record{Owner: owner, Name: name, Kubernetes: have[name] == ExecutorKubernetes}
	}
	return name, rec, nil
}

// List returns id's runners; a TA with all gets everyone's.
func (s *Service) List(ctx context.Context, id backend.Identity, all bool) ([]Runner, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	owner := id.User
	if all && id.IsTA() {
		owner = ""
	}
	cs, err := s.ctr.Runners(ctx, owner)
	if err != nil {
		return nil, err
	}
	out := make([]Runner, 0, len(cs))
	seen := map[string]bool{}
	for _, c := range cs {
		rec, _ := s.readRecord(c.Owner, c.Name)
		out = append(out, s.withView(toRunner(c, rec)))
		seen[c.Owner+"/"+c.Name] = true
	}
	if s.pods != nil {
		ps, err := s.pods.Runners(ctx, owner)
		if err != nil {
			// Degrade: the runners on the engine are listed; those in the cluster read as
			// missing below, with the cluster's error in the log.
			s.log.Warn("runners: the cluster's runners could not be listed", "err", err)
		}
		for _, p := range ps {
			rec, _ := s.readRecord(p.Owner, p.Name)
			out = append(out, s.withView(podRunner(p, rec)))
			seen[p.Owner+"/"+p.Name] = true
		}
		slices.SortFunc(out, func(a, b Runner) int { return strings.Compare(a.Owner+"\x00"+a.Name, b.Owner+"\x00"+b.Name) })
	}
	if owner != "" {
		if ents, err := os.ReadDir(filepath.Join(s.cfg.Dir, owner)); err == nil {
			for _, e := range ents {
				rec, err := s.readRecord(owner, e.Name())
				if err != nil || seen[owner+"/"+e.Name()] {
					continue
				}
				what := "its container"
				if rec.Kubernetes {
					what = "its pod"
				}
				out = append(out, Runner{Owner: owner, Name: rec.Name, Project: rec.Project, State: "missing",
					Status: what + " is gone: runner restart makes it again", RunnerID: rec.RunnerID, Managed: rec.Managed,
					Executor: rec.executor(), JobsNow: []Job{}, RecentJobs: []Job{}})
			}
		}
	}
	return out, nil
}

// Restart restarts owner's runner ref (making its container again when it is gone).
func (s *Service) Restart(ctx context.Context, id backend.Identity, owner, ref, reason string) error {
	name, err := s.restart(ctx, id, owner, ref, reason)
	s.record(id, "runner restart", owner+"/"+name, err)
	return err
}

func (s *Service) restart(ctx context.Context, id backend.Identity, owner, ref, reason string) (string, error) {
	if err := checkID(id); err != nil {
		return ref, err
	}
	if err := needReason(id, owner, reason); err != nil {
		return ref, err
	}
	name, rec, err := s.resolve(ctx, id, owner, ref)
	if err != nil {
		return name, err
	}
	if rec.Kubernetes {
		// The pod is made again from the record (the token, this server's config.toml).
		if rec.Token == "" || s.pods == nil {
			return name, errorf(ErrUnavailable, "runner %s cannot be started here: give its token again with runner token --kubernetes", name)
		}
		_, err := s.start(ctx, id, rec)
		return name, err
	}
	if err := s.listen(owner, name); err != nil {
		return name, err
	}
	err = s.ctr.RestartRunner(ctx, owner, name)
	if errors.Is(err, docker.ErrNotFound) && rec.Token != "" {
		_, err = s.ctr.CreateRunner(ctx, docker.RunnerSpec{Owner: owner, Name: name, Project: rec.Project, Image: s.cfg.Image,
			ConfigDir: s.dir(owner, name), ConfigTarget: ConfigTarget, CPUs: s.cfg.CPUs, Memory: s.cfg.Memory})
	}
	return name, err
}

// Stop stops owner's runner ref until it is restarted (a TA's stop of a student's runner
// needs a reason).
func (s *Service) Stop(ctx context.Context, id backend.Identity, owner, ref, reason string) error {
	name := ref
	err := func() error {
		if err := checkID(id); err != nil {
			return err
		}
		if err := needReason(id, owner, reason); err != nil {
			return err
		}
		var err error
		var rec record
		name, rec, err = s.resolve(ctx, id, owner, ref)
		if err != nil {
			return err
		}
		if rec.Kubernetes && s.pods != nil {
			return kubeErr(s.pods.StopRunner(ctx, owner, name))
		}
		return s.ctr.StopRunner(ctx, owner, name)
	}()
	s.record(id, "runner stop", owner+"/"+name, err)
	return err
}

func needReason(id backend.Identity, owner, reason string) error {
	if owner != id.User && id.IsTA() && strings.TrimSpace(reason) == "" {
		return errorf(ErrInvalid, "acting on %s's runner needs --reason", owner)
	}
	return nil
}

// Remove unregisters owner's runner ref from GitLab and removes its container, its token
// and its socket: nothing is left. A GitLab that cannot be reached does not keep the rest;
// the error says the runner may still be listed in GitLab.
func (s *Service) Remove(ctx context.Context, id backend.Identity, owner, ref, reason string) error {
	name, err := s.remove(ctx, id, owner, ref, reason)
	s.record(id, "runner rm", owner+"/"+name, err)
	return err
}

func (s *Service) remove(ctx context.Context, id backend.Identity, owner, ref, reason string) (string, error) {
	if err := checkID(id); err != nil {
		return ref, err
	}
	if err := needReason(id, owner, reason); err != nil {
		return ref, err
	}
	name, rec, err := s.resolve(ctx, id, owner, ref)
	if err != nil {
		return name, err
	}
	lock := s.userLock(owner)
	lock.Lock()
	defer lock.Unlock()
	if err := s.stopRuntime(ctx, owner, name, rec.executor()); err != nil {
		return name, err
	}
	s.mu.Lock()
	delete(s.views, owner+"/"+name)
	s.mu.Unlock()
	var glErr error
	switch {
	case rec.Managed && rec.RunnerID != 0 && s.admin != nil:
		glErr = s.admin.DeleteRunnerByID(ctx, rec.RunnerID)
	case rec.Token != "":
		glErr = s.gl.DeleteRunner(ctx, rec.Token)
	}
	if err := os.RemoveAll(s.dir(owner, name)); err != nil {
		return name, fmt.Errorf("remove the files of runner %s: %w", name, err)
	}
	if glErr != nil {
		s.log.Warn("runner removed here but not unregistered in GitLab", "owner", owner, "runner", name, "err", glErr)
		return name, errorf(ErrUnavailable, "runner %s is removed here, but GitLab could not be told: remove it under Settings -> CI/CD -> Runners", name)
	}
	return name, nil
}

// Logs streams the output of owner's runner ref; tail > 0 keeps the last lines.
func (s *Service) Logs(ctx context.Context, id backend.Identity, owner, ref string, follow bool, tail int) (io.ReadCloser, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	name, rec, err := s.resolve(ctx, id, owner, ref)
	if err != nil {
		return nil, err
	}
	if rec.Kubernetes && s.pods != nil {
		rc, err := s.pods.RunnerLogs(ctx, owner, name, kube.LogOptions{Follow: follow, Tail: tail})
		return rc, kubeErr(err)
	}
	return s.ctr.RunnerLogs(ctx, owner, name, docker.LogOptions{Follow: follow, Tail: tail})
}

// Template is the .gitlab-ci.yml of runner template for id: the site's job image, and the
// user's registry namespace.
func (s *Service) Template(id backend.Identity) string {
	ns := ""
	if n := strings.TrimSuffix(s.cfg.RegistryNamespace, "/"); n != "" && id.User != "" {
		ns = n + "/" + strings.ToLower(id.User)
	}
	return Template(s.cfg.JobImage, ns)
}

// Template is a .gitlab-ci.yml for a project whose jobs run on its owner's runner: a test
// job, and a job that builds the repository's Dockerfile and pushes it to the project's
// registry through the owner's own Docker API (the socket the server mounts into jobs).
// namespace is the owner's registry namespace ("registry.example.org/alice"), "" when the
// server has none.
func Template(jobImage, namespace string) string {
	where := "# Tags must be in your registry namespace: this server has none (images.registry_namespace),\n" +
		"# so docker build -t and docker push are refused: drop -t and the push to only build.\n"
	if namespace != "" {
		where = "# Tags must be in your registry namespace, " + namespace + "/...: $CI_REGISTRY_IMAGE is\n" +
			"# when it reads " + namespace + "/<project>; otherwise set IMAGE to " + namespace + "/NAME:TAG.\n"
	}
	return `# .gitlab-ci.yml for your WhaleMountain runner. Each job runs in a container of
# yours (it counts in your container quota and shows in your dashboard while it runs),
# made through your own Docker API: no privileges, no host paths, your network only.
# DOCKER_HOST in every job is that same API (your socket, mounted by the server), so
# docker build and docker push work without privileges or docker:dind.
` + where + `# The server pushes with the site's registry credentials; no docker login is needed.
default:
  image: ` + jobImage + `

stages: [test, build]

test:
  stage: test
  script:
    - echo "running on $CI_RUNNER_DESCRIPTION for $CI_PROJECT_PATH"
    - ls -la

docker-image:
  stage: build
  image: docker:27-cli   # any image with the docker CLI that the server's image policy allows
  variables:
    IMAGE: "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"
  script:
    - docker build -t "$IMAGE" .
    - docker push "$IMAGE"
`
}
