package docker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// Runner containers: one gitlab-runner container per user and project (backend/runner
// decides when, with which configuration, and authorises the caller; this file only makes,
// finds and removes them). They are labelled like every container (owner, name) with
// kind=runner, so no lookup of users' containers, no listing and no quota ever takes one
// for a user's container, and no user can name one with run, exec, rm or the Docker API.

// LabelRunnerProject is the GitLab project a runner container serves ("" when unknown).
const LabelRunnerProject = "whalemountain.runner.project"

// LabelRunner is, on a user's container, the name of their runner that made it for a CI
// job (through the runner's socket); "" for every other container.
const LabelRunner = "whalemountain.runner"

// RunnerSocketDirBind is the directory of the Docker API socket as a runner container sees
// it (in the runner's directory, mounted at /etc/gitlab-runner; the socket is docker.sock
// in it). A bind of exactly this path in a create request made through that runner's socket
// is the one host path a job may ask for: the server replaces it with the runner's own
// socket directory on the host (Config.RunnerSocketDir), the owner's own API, read-only.
// The directory, not the file: a server that starts again makes a new socket file in it,
// which a running job then sees.
const RunnerSocketDirBind = "/etc/gitlab-runner/api"

// RunnerAddrPrefix starts the RemoteAddr of a runner's identity: "runner NAME".
const RunnerAddrPrefix = "runner "

// runnerOf is the runner name of an identity that is a user's runner, "" otherwise.
func runnerOf(id backend.Identity) string {
	if id.KeySource != backend.KeySourceRunner {
		return ""
	}
	name, _ := strings.CutPrefix(id.RemoteAddr, RunnerAddrPrefix)
	if ValidateName(name) != nil {
		return ""
	}
	return name
}

// RunnerSpec is a runner container to make.
type RunnerSpec struct {
	Owner   string // the user the runner belongs to
	Name    string // the runner's name among the owner's runners (a validated slug)
	Project string // the GitLab project path it serves, for display
	Image   string // the pinned gitlab-runner image
	// ConfigDir is the host directory holding config.toml and the socket of the owner's
	// Docker API; it is mounted at ConfigTarget, the only mount the container gets.
	ConfigDir    string
	ConfigTarget string
	CPUs         float64
	Memory       int64
}

// RunnerContainer is a runner container as the engine reports it.
type RunnerContainer struct {
	ID      string
	Owner   string
	Name    string
	Project string
	State   string // running, restarting, exited, ...
	Status  string // the engine's words, "Up 3 minutes"
	Created time.Time
}

// runnerFilters selects runner containers, of one owner unless owner is "".
func (s *Service) runnerFilters(owner string) client.Filters {
	f := s.filters(owner)
	f.Add("label", LabelKind+"="+KindRunner)
	return f
}

// Runners lists the runner containers of owner ("" for everyone's).
func (s *Service) Runners(ctx context.Context, owner string) ([]RunnerContainer, error) {
	res, err := s.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: s.runnerFilters(owner)})
	if err != nil {
		return nil, engineErr("list runner containers", err)
	}
	out := make([]RunnerContainer, 0, len(res.Items))
	for _, c := range res.Items {
		o := c.Labels[LabelOwner]
		if o == "" || (owner != "" && o != owner) || !s.managedBy(c.Labels, o) || c.Labels[LabelKind] != KindRunner || c.Labels[LabelName] == "" {
			continue
		}
		out = append(out, RunnerContainer{
			ID: c.ID, Owner: o, Name: c.Labels[LabelName], Project: c.Labels[LabelRunnerProject],
			State: string(c.State), Status: c.Status, Created: time.Unix(c.Created, 0),
		})
	}
	slices.SortFunc(out, func(a, b RunnerContainer) int {
		if a.Owner != b.Owner {
			if a.Owner < b.Owner {
				return -1
			}
			return 1
		}
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

// findRunner is the runner container owner/name, or ErrNotFound.
func (s *Service) findRunner(ctx context.Context, owner, name string) (RunnerContainer, error) {
	rs, err := s.Runners(ctx, owner)
	if err != nil {
		return RunnerContainer{}, err
	}
	for _, r := range rs {
		if r.Name == name {
			return r, nil
		}
	}
	return RunnerContainer{}, errorf(ErrNotFound, "no such runner: %s", shown(name))
}

// CreateRunner makes and starts the runner container of spec, replacing one of the same
// owner and name. Its only mount is spec.ConfigDir; it is on the owner's own network,
// hardened like every container, and restarts unless stopped.
func (s *Service) CreateRunner(ctx context.Context, spec RunnerSpec) (RunnerContainer, error) {
	if err := ValidateName(spec.Name); err != nil {
		return RunnerContainer{}, err
	}
	if spec.Owner == "" || spec.ConfigDir == "" || spec.ConfigTarget == "" {
		return RunnerContainer{}, fmt.Errorf("create runner %s: owner, config directory and target are required", spec.Name)
	}
	image, err := ParseImage(spec.Image)
	if err != nil {
		return RunnerContainer{}, err
	}
	if err := s.RemoveRunner(ctx, spec.Owner, spec.Name); err != nil && !errors.Is(err, ErrNotFound) {
		return RunnerContainer{}, err
	}
	if _, err := s.localImage(ctx, image); err != nil {
		return RunnerContainer{}, err
	}
	netID, err := s.ensureNetwork(ctx, spec.Owner)
	if err != nil {
		return RunnerContainer{}, err
	}
	opts := client.ContainerCreateOptions{
		Config: &container.Config{
			Hostname: "runner-" + spec.Name,
			Image:    image,
		},
		HostConfig: &container.HostConfig{
			NetworkMode:   container.NetworkMode(netID),
			RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyUnlessStopped},
			Mounts: []mount.Mount{{Type: mount.TypeBind, Source: spec.ConfigDir, Target: spec.ConfigTarget,
				BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate}}},
		},
		NetworkingConfig: &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			s.cfg.networkName(spec.Owner): {NetworkID: netID},
		}},
	}
	l := objectLabels{kind: KindRunner, owner: spec.Owner, name: spec.Name, project: spec.Project, runnerDir: spec.ConfigDir}
	id, err := s.createContainer(ctx, opts, l, limits{cpus: spec.CPUs, memory: spec.Memory},
		s.cfg.NamePrefix+"-runner-"+spec.Owner+"-"+spec.Name)
	if err != nil {
		return RunnerContainer{}, err
	}
	if _, err := s.api.ContainerStart(ctx, id, client.ContainerStartOptions{}); err != nil {
		_, _ = s.api.ContainerRemove(context.WithoutCancel(ctx), id, client.ContainerRemoveOptions{Force: true})
		return RunnerContainer{}, engineErr("start runner "+spec.Name+" of "+spec.Owner, err)
	}
	return s.findRunner(ctx, spec.Owner, spec.Name)
}

// RemoveRunner removes the runner container owner/name (ErrNotFound when there is none).
func (s *Service) RemoveRunner(ctx context.Context, owner, name string) error {
	r, err := s.findRunner(ctx, owner, name)
	if err != nil {
		return err
	}
	_, err = s.api.ContainerRemove(ctx, r.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
	if err != nil && !cerrdefs.IsNotFound(err) {
		return engineErr("remove runner "+name+" of "+owner, err)
	}
	return nil
}

// RestartRunner restarts the runner container owner/name.
func (s *Service) RestartRunner(ctx context.Context, owner, name string) error {
	r, err := s.findRunner(ctx, owner, name)
	if err != nil {
		return err
	}
	if _, err := s.api.ContainerRestart(ctx, r.ID, client.ContainerRestartOptions{Timeout: s.stopTimeout()}); err != nil {
		return engineErr("restart runner "+name+" of "+owner, err)
	}
	return nil
}

// StopRunner stops the runner container owner/name; it stays stopped until restarted.
func (s *Service) StopRunner(ctx context.Context, owner, name string) error {
	r, err := s.findRunner(ctx, owner, name)
	if err != nil {
		return err
	}
	if _, err := s.api.ContainerStop(ctx, r.ID, client.ContainerStopOptions{Timeout: s.stopTimeout()}); err != nil {
		return engineErr("stop runner "+name+" of "+owner, err)
	}
	return nil
}

// RunnerLogs streams the output of the runner container owner/name (stdout and stderr
// merged), as opts asks (the same options as a container's logs).
func (s *Service) RunnerLogs(ctx context.Context, owner, name string, opts LogOptions) (io.ReadCloser, error) {
	r, err := s.findRunner(ctx, owner, name)
	if err != nil {
		return nil, err
	}
	t := ""
	if opts.Tail > 0 {
		t = strconv.Itoa(opts.Tail)
	}
	body, err := s.api.ContainerLogs(ctx, r.ID, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: t,
		Timestamps: opts.Timestamps})
	if err != nil {
		return nil, engineErr("logs of runner "+name, err)
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, body)
		_ = pw.CloseWithError(err)
	}()
	return &demuxed{PipeReader: pr, body: body}, nil
}

// engineNameRE is a container name as the engine takes it.
var engineNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,253}$`)

// runnerJobName is the user's name for a container a runner asks for by an engine-style
// name ("runner-AbCd1234-project-7-concurrent-0-0123456789abcdef-build", longer and freer
// than users' names): its first letters and digits in lower case, '-' for anything else,
// then a hash of the whole, 32 characters at most. A valid user's name is kept; a name
// that is not an engine name is left for the usual check to refuse.
func runnerJobName(name string) string {
	if name == "" || ValidateName(name) == nil || !engineNameRE.MatchString(name) {
		return name
	}
	out := Slug(name)
	sum := sha256.Sum256([]byte(name))
	return strings.TrimRight(out[:min(len(out), 23)], "-") + "-" + hex.EncodeToString(sum[:4])
}

// Slug is s in lower case letters and digits, every other run of characters one '-', no
// '-' at either end.
func Slug(s string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case !dash && b.Len() > 0:
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimRight(b.String(), "-")
}
