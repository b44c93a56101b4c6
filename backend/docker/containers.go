package docker

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// ListOptions selects what List and Snapshot return.
type ListOptions struct {
	All      bool // stopped containers too, not only running ones
	AllUsers bool // every user's containers: TAs only; for students it means their own
}

// RunSpec is what a user asks for when creating a container.
type RunSpec struct {
	Name   string   // empty: generated from the image
	Image  string   // must exist on this server
	Cmd    []string // empty: the image's own, or a keep-alive when that is only a shell
	Env    []string // KEY=value
	CPUs   float64  // 0: Config.DefaultCPUs
	Memory int64    // bytes; 0: Config.DefaultMemory
	GPUs   string   // "": none; "N": any N GPUs; "0,2": those GPU indices
}

// LogOptions selects which logs Logs returns.
type LogOptions struct {
	Follow     bool // keep streaming until the context ends or the reader is closed
	Tail       int  // last N lines; 0 or less: all
	Timestamps bool // prefix every line with its RFC 3339 time
}

// keepAlive keeps a container with nothing else to do running, and stops at once on TERM.
var keepAlive = []string{"sh", "-c", "trap exit TERM; while :; do sleep 3600 & wait; done"}

// found is a resolved reference.
type found struct {
	target
	ID      string
	State   string
	summary container.Summary
}

// filters selects managed objects (this service's labels), of one owner unless owner is "".
func (s *Service) filters(owner string) client.Filters {
	f := client.Filters{}
	for k, v := range s.cfg.selectors() {
		f.Add("label", k+"="+v)
	}
	if owner != "" {
		f.Add("label", LabelOwner+"="+owner)
	}
	return f
}

// labels are the labels for a new volume or network of owner.
func (s *Service) labels(owner string) map[string]string {
	m := s.cfg.selectors()
	m[LabelOwner] = owner
	return m
}

// managedBy reports whether labels carry every selector and the given owner.
func (s *Service) managedBy(labels map[string]string, owner string) bool {
	for k, v := range s.cfg.selectors() {
		if labels[k] != v {
			return false
		}
	}
	return labels[LabelOwner] == owner
}

// find resolves what a user typed to one of the containers they may act on, by labels only:
// a user's container (kind=container) of that owner and name. Two that claim the same
// owner/name resolve to neither.
func (s *Service) find(ctx context.Context, id backend.Identity, ref string) (found, error) {
	if err := checkIdentity(id); err != nil {
		return found{}, err
	}
	if err := s.admit(); err != nil {
		return found{}, err
	}
	t, err := parseRef(id, ref)
	if err != nil {
		return found{}, err
	}
	// All the owner's: a renamed container's name is not its label's (withNames).
	res, err := s.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: s.containerFilters(t.owner)})
	if err != nil {
		return found{}, engineErr("look up container "+shown(ref), err)
	}
	switch cs := s.claimants(s.withNames(res.Items), t.owner, t.name); len(cs) {
	case 0:
		return found{}, notFound(ref)
	case 1:
		return found{target: t, ID: cs[0].ID, State: string(cs[0].State), summary: cs[0]}, nil
	default:
		return found{}, ambiguous(ref, cs)
	}
}

// ownContainers lists every container of one user, in any state.
func (s *Service) ownContainers(ctx context.Context, user string) ([]container.Summary, error) {
	res, err := s.api.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: s.containerFilters(user)})
	if err != nil {
		return nil, engineErr("list containers of "+user, err)
	}
	return slices.DeleteFunc(s.withNames(res.Items), func(c container.Summary) bool { return !s.isUserContainer(c.Labels, user) }), nil
}

// List asks the engine for the containers the identity may see. Dashboards should use
// Snapshot instead, which costs no API call.
func (s *Service) List(ctx context.Context, id backend.Identity, opts ListOptions) ([]Container, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	owner := id.User
	if id.IsTA() && opts.AllUsers {
		owner = ""
	}
	res, err := s.api.ContainerList(ctx, client.ContainerListOptions{All: opts.All, Filters: s.containerFilters(owner)})
	if err != nil {
		return nil, engineErr("list containers", err)
	}
	out := make([]Container, 0, len(res.Items))
	for _, sum := range s.withNames(res.Items) {
		if !s.isUserContainer(sum.Labels, cmp.Or(owner, sum.Labels[LabelOwner])) {
			continue
		}
		c := fromSummary(sum)
		if c.Owner == "" || c.Name == "" {
			continue
		}
		s.live.fill(&c)
		s.notices.markStopped(&c)
		out = append(out, c)
	}
	sortContainers(out)
	return out, nil
}

// Run creates and starts a container for the identity.
func (s *Service) Run(ctx context.Context, id backend.Identity, spec RunSpec) (Container, error) {
	var c Container
	err := s.gpuRunAllowed(spec.GPUs)
	if err == nil {
		c, err = s.run(ctx, id, &spec, "")
	}
	s.record(id, "run", id.User+"/"+shown(spec.Name), err)
	return c, err
}

// run creates and starts spec for id; preset is the course preset it comes from ("": none).
func (s *Service) run(ctx context.Context, id backend.Identity, spec *RunSpec, preset string) (Container, error) {
	plan, err := s.checkRun(id, spec)
	if err != nil {
		return Container{}, err
	}
	image := plan.image
	s.noteRole(id)
	lock := s.userLock(id.User)
	lock.Lock()
	defer lock.Unlock()

	mine, err := s.ownContainers(ctx, id.User)
	if err != nil {
		return Container{}, err
	}
	names, err := s.createRoom(id, mine, spec.Name, true)
	if err != nil {
		return Container{}, err
	}

	img, err := s.localImage(ctx, image)
	if err != nil {
		return Container{}, err
	}
	if spec.Name == "" {
		spec.Name = generateName(image, names)
	}
	var entrypoint, imageCmd []string
	if img.Config != nil {
		entrypoint, imageCmd = img.Config.Entrypoint, img.Config.Cmd
	}
	cmd := runCommand(spec.Cmd, img.Config != nil, entrypoint, imageCmd)

	home, err := s.ensureHome(ctx, id.User)
	if err != nil {
		return Container{}, err
	}
	netID, err := s.ensureNetwork(ctx, id.User)
	if err != nil {
		return Container{}, err
	}
	data, err := s.grantFor(ctx, id)
	if err != nil {
		return Container{}, err
	}

	opts := runOptions(spec.Name, image, cmd, runEnv(spec.Env, home.Target), home, netID, s.cfg.networkName(id.User))
	labels := objectLabels{kind: KindContainer, owner: id.User, name: spec.Name, preset: preset, data: data}
	if plan.nGPUs > 0 {
		// The choice, the create and the start happen as one for the whole server, so two
		// runs never take the same free GPU.
		s.gpuAlloc.Lock()
		defer s.gpuAlloc.Unlock()
		taken, err := s.takenGPUs(ctx)
		if err != nil {
			return Container{}, err
		}
		chosen, err := ChooseGPUs(plan.inv, taken, plan.gpuCount, plan.gpuIndices, s.cfg.GPUPolicy)
		if errors.Is(err, ErrConflict) {
			return Container{}, errGPUsBusy{err}
		}
		if err != nil {
			return Container{}, err
		}
		req, uuids := gpuDeviceRequest(chosen)
		opts.HostConfig.Resources.DeviceRequests = []container.DeviceRequest{req}
		labels.gpus, labels.gpuIndices = uuids, indicesLabel(chosen)
	}
	created, err := s.createContainer(ctx, opts, labels, limits{cpus: plan.cpus, memory: plan.mem}, s.cfg.containerName(id.User, spec.Name))
	if err != nil {
		if e := noNvidiaRuntime(err); e != nil {
			return Container{}, e
		}
		return Container{}, err
	}
	if _, err := s.api.ContainerStart(ctx, created, client.ContainerStartOptions{}); err != nil {
		// A container that cannot start (say, its command does not exist) is not left behind.
		_, _ = s.api.ContainerRemove(context.WithoutCancel(ctx), created, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		if e := noNvidiaRuntime(err); e != nil {
			return Container{}, e
		}
		return Container{}, engineErr("start container "+spec.Name, err)
	}
	ins, err := s.api.ContainerInspect(ctx, created, client.ContainerInspectOptions{})
	if err != nil {
		return Container{}, engineErr("inspect container "+spec.Name, err)
	}
	var c Container
	s.applyInspect(&c, ins.Container)
	return c, nil
}

// localImage finds an image on this server by the reference the user typed. A match by ID
// or ID prefix does not count: the reference must be one of the image's tags or digests.
func (s *Service) localImage(ctx context.Context, image string) (client.ImageInspectResult, error) {
	res, err := s.api.ImageInspect(ctx, image)
	if err != nil && !cerrdefs.IsNotFound(err) {
		return res, engineErr("look up image "+image, err)
	}
	if err == nil {
		named, _ := reference.ParseNormalizedNamed(image)
		want := reference.FamiliarString(reference.TagNameOnly(named))
		if _, digested := named.(reference.Digested); digested {
			want = reference.FamiliarString(named)
		}
		for _, t := range slices.Concat(res.RepoTags, res.RepoDigests) {
			if n, perr := reference.ParseNormalizedNamed(t); perr == nil && reference.FamiliarString(n) == want {
				return res, nil
			}
		}
	}
	return res, errorf(ErrNoImage, "image %s not found on this server", image)
}

// onlyShell reports whether an image command would just be an interactive shell (or nothing).
func onlyShell(cmd []string) bool {
	if len(cmd) == 0 {
		return true
	}
	switch path.Base(cmd[0]) {
	case "sh", "bash", "ash", "dash", "zsh", "ksh", "fish":
	default:
		return false
	}
	for _, a := range cmd[1:] {
		if a != "-l" && a != "-i" && a != "--login" {
			return false
		}
	}
	return true
}

// generateName makes "<image>-<4 random>", unused among taken.
func generateName(image string, taken map[string]bool) string {
	base := image
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	base, _, _ = strings.Cut(base, ":")
	base, _, _ = strings.Cut(base, "@")
	base = strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		return '-'
	}, strings.ToLower(base))
	base = strings.Trim(base, "-")
	if len(base) > 20 {
		base = strings.TrimRight(base[:20], "-")
	}
	if base == "" {
		base = "box"
	}
	for {
		name := base + "-" + randomSuffix(4)
		if !taken[name] && nameRE.MatchString(name) {
			return name
		}
	}
}

func randomSuffix(n int) string {
	const letters = "abcdefghijklmnopqrstuvwxyz0123456789"
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = letters[int(b[i])%len(letters)]
	}
	return string(b)
}

// ensureHome makes sure the user's home exists and returns its mount.
func (s *Service) ensureHome(ctx context.Context, user string) (mount.Mount, error) {
	target := expand(s.cfg.HomeTarget, user)
	if s.cfg.HomeHostPath == "" {
		name := s.cfg.volumeName(user)
		res, err := s.api.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Driver: "local", Labels: s.labels(user)})
		if err != nil {
			return mount.Mount{}, engineErr("create home volume for "+user, err)
		}
		// An existing volume of that name that is not this user's is never mounted.
		if !s.managedBy(res.Volume.Labels, user) {
			return mount.Mount{}, fmt.Errorf("home volume %s exists but does not belong to %s", name, user)
		}
		return mount.Mount{Type: mount.TypeVolume, Source: name, Target: target}, nil
	}
	dir := expand(s.cfg.HomeHostPath, user)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return mount.Mount{}, fmt.Errorf("create home for %s: %w", user, err)
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !os.IsExist(err) {
		return mount.Mount{}, fmt.Errorf("create home for %s: %w", user, err)
	}
	fi, err := os.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return mount.Mount{}, fmt.Errorf("home for %s: %s is not a directory", user, dir)
	}
	return mount.Mount{Type: mount.TypeBind, Source: dir, Target: target,
		BindOptions: &mount.BindOptions{Propagation: mount.PropagationRPrivate}}, nil
}

// ensureNetwork returns the ID of the user's own bridge network, creating it on first use.
func (s *Service) ensureNetwork(ctx context.Context, user string) (string, error) {
	name := s.cfg.networkName(user)
	f := s.filters(user)
	f.Add("name", name)
	res, err := s.api.NetworkList(ctx, client.NetworkListOptions{Filters: f})
	if err != nil {
		return "", engineErr("look up network of "+user, err)
	}
	for _, n := range res.Items {
		if n.Name == name && s.managedBy(n.Labels, user) {
			return n.ID, nil
		}
	}
	created, err := s.api.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: s.labels(user)})
	if err != nil {
		return "", engineErr("create network for "+user, err)
	}
	return created.ID, nil
}

// Start starts a stopped container.
func (s *Service) Start(ctx context.Context, id backend.Identity, ref string) error {
	t, err := s.startCheck(ctx, id, ref)
	if err == nil {
		err = s.startHoldingGPUs(ctx, t)
	}
	if err == nil {
		_ = s.notices.forget(t.owner, t.ID)
	}
	s.record(id, "start", auditTarget(t, ref), err)
	return err
}

// startHoldingGPUs starts a container; one that was given GPUs gets them back only when,
// under the exclusive policy, no other running container holds them meanwhile.
func (s *Service) startHoldingGPUs(ctx context.Context, t found) error {
	held := t.summary.Labels[LabelGPUs]
	if held != "" {
		s.gpuAlloc.Lock()
		defer s.gpuAlloc.Unlock()
		if s.cfg.GPUPolicy != GPUShared && t.State != string(container.StateRunning) {
			// Its GPUs are promised to the first in line while anyone waits.
			if s.othersWait() != nil {
				return errGPUsBusy{errorf(ErrConflict, "requests wait for GPUs: %s can start once none wait, or run a new one with --wait", shown(t.typed))}
			}
			taken, err := s.takenGPUs(ctx)
			if err != nil {
				return err
			}
			for u := range strings.SplitSeq(held, ",") {
				if taken[strings.TrimSpace(u)] {
					return errorf(ErrConflict, "GPU %s of %s is in use by another container; remove %s and run a new one", shown(u), shown(t.typed), shown(t.typed))
				}
			}
		}
	}
	_, err := s.api.ContainerStart(ctx, t.ID, client.ContainerStartOptions{})
	if nerr := noNvidiaRuntime(err); nerr != nil {
		return nerr
	}
	return engineErr("start container "+t.typed, err)
}

// startCheck resolves ref and checks that its owner still may have the shared data it
// mounts; for the owner's own stopped container, it checks the running quota too. TAs acting
// on someone else's container are not bound by their own quota.
func (s *Service) startCheck(ctx context.Context, id backend.Identity, ref string) (found, error) {
	t, err := s.find(ctx, id, ref)
	if err != nil {
		return t, err
	}
	if err := s.checkGrant(ctx, id, t); err != nil {
		return t, err
	}
	if t.owner != id.User || t.State == string(container.StateRunning) {
		return t, nil
	}
	mine, err := s.ownContainers(ctx, id.User)
	if err != nil {
		return t, err
	}
	running := 0
	for _, c := range mine {
		if c.State == container.StateRunning || c.State == container.StateRestarting {
			running++
		}
	}
	if q := s.cfg.quota(id.Role); running >= q.MaxRunning {
		return t, errorf(ErrQuota, "quota: at most %d running containers for %s (you have %d)", q.MaxRunning, roleWord(id.Role), running)
	}
	return t, nil
}

func (s *Service) stopTimeout() *int {
	secs := int(math.Ceil(s.cfg.StopTimeout.Seconds()))
	return &secs
}

// Stop stops a running container (TERM, then KILL after Config.StopTimeout). The stop is
// remembered, so the container reads "stopped" rather than the exit code of the signal.
// When someone else (a TA) stops it, reason is why: the owner is told who did it and why
// (Notices), and the audit line carries it.
func (s *Service) Stop(ctx context.Context, id backend.Identity, ref, reason string) error {
	reason, err := ValidateReason(reason)
	var t found
	if err == nil {
		t, err = s.find(ctx, id, ref)
	}
	if err == nil {
		_, err = s.api.ContainerStop(ctx, t.ID, client.ContainerStopOptions{Timeout: s.stopTimeout()})
		err = engineErr("stop container "+t.typed, err)
	}
	if err == nil && slices.Contains([]container.ContainerState{container.StateRunning, container.StateRestarting, container.StatePaused},
		container.ContainerState(t.State)) {
		s.rememberStop(ctx, id, t, reason)
	}
	s.recordNote(id, "stop", auditTarget(t, ref), err, reason)
	return err
}

// rememberStop records that id stopped t on purpose and, when t is someone else's, tells
// its owner; then the dashboards showing t read it again.
func (s *Service) rememberStop(ctx context.Context, id backend.Identity, t found, reason string) {
	info := StopInfo{By: id.User, ByRole: string(id.Role), Reason: reason}
	ins, err := s.api.ContainerInspect(context.WithoutCancel(ctx), t.ID, client.ContainerInspectOptions{})
	if err == nil && ins.Container.State != nil && ins.Container.State.Status == container.StateExited {
		if started := parseTime(ins.Container.State.StartedAt); !started.IsZero() {
			_ = s.notices.recordStop(t.owner, t.ID, started, info)
		}
	}
	if id.User != t.owner {
		_ = s.notices.addNotice(t.owner, Notice{Container: t.name, Action: "stop", By: id.User, ByRole: string(id.Role), Reason: reason})
	}
	s.pokeOwner(t.owner)
}

// Restart stops (if running) and starts a container.
func (s *Service) Restart(ctx context.Context, id backend.Identity, ref string) error {
	t, err := s.startCheck(ctx, id, ref)
	if err == nil {
		_, err = s.api.ContainerRestart(ctx, t.ID, client.ContainerRestartOptions{Timeout: s.stopTimeout()})
		err = engineErr("restart container "+t.typed, err)
	}
	if err == nil {
		_ = s.notices.forget(t.owner, t.ID)
	}
	s.record(id, "restart", auditTarget(t, ref), err)
	return err
}

// Remove removes a container; a running one only with force. The user's home stays. When
// someone else (a TA) removes it, reason is why: the owner is told, and the audit line
// carries it.
func (s *Service) Remove(ctx context.Context, id backend.Identity, ref string, force bool, reason string) error {
	reason, err := ValidateReason(reason)
	var t found
	if err == nil {
		t, err = s.find(ctx, id, ref)
	}
	if err == nil && !force && (t.State == string(container.StateRunning) || t.State == string(container.StateRestarting)) {
		err = errorf(ErrConflict, "container %s is running; stop it or use -f", t.typed)
	}
	if err == nil {
		_, err = s.api.ContainerRemove(ctx, t.ID, client.ContainerRemoveOptions{Force: force, RemoveVolumes: true})
		if cerrdefs.IsNotFound(err) {
			err = notFound(ref)
		}
		err = engineErr("remove container "+t.typed, err)
	}
	if err == nil {
		_ = s.notices.forget(t.owner, t.ID)
		if id.User != t.owner {
			_ = s.notices.addNotice(t.owner, Notice{Container: t.name, Action: "rm", By: id.User, ByRole: string(id.Role), Reason: reason})
			s.pokeOwner(t.owner)
		}
	}
	s.recordNote(id, "rm", auditTarget(t, ref), err, reason)
	return err
}

func auditTarget(t found, typed string) string {
	if t.owner != "" {
		return t.target.String()
	}
	return shown(typed)
}

// Inspect returns the safe details of a container.
func (s *Service) Inspect(ctx context.Context, id backend.Identity, ref string) (Details, error) {
	t, err := s.find(ctx, id, ref)
	if err != nil {
		return Details{}, err
	}
	res, err := s.api.ContainerInspect(ctx, t.ID, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return Details{}, notFound(ref)
	}
	if err != nil {
		return Details{}, engineErr("inspect container "+t.typed, err)
	}
	in := res.Container
	d := Details{Container: fromSummary(t.summary)}
	s.applyInspect(&d.Container, in)
	s.live.fill(&d.Container)
	s.notices.markStopped(&d.Container)
	d.Home = expand(s.cfg.HomeTarget, t.owner)
	if in.State != nil {
		d.FinishedAt = parseTime(in.State.FinishedAt)
		d.Error = in.State.Error
		d.OOMKilled = in.State.OOMKilled
	}
	if in.HostConfig != nil && in.HostConfig.PidsLimit != nil {
		d.PidsLimit = *in.HostConfig.PidsLimit
	}
	if in.Config != nil {
		d.Cmd = in.Config.Cmd
		d.Entrypoint = in.Config.Entrypoint
		d.WorkingDir = in.Config.WorkingDir
		d.ExposedPorts = exposedPorts(in.Config.ExposedPorts)
		for _, kv := range in.Config.Env {
			k, _, _ := strings.Cut(kv, "=")
			d.EnvNames = append(d.EnvNames, k)
		}
	}
	if in.NetworkSettings != nil {
		for _, name := range slices.Sorted(maps.Keys(in.NetworkSettings.Networks)) {
			if name != s.cfg.networkName(t.owner) {
				continue
			}
			d.Network = name
			if ep := in.NetworkSettings.Networks[name]; ep != nil && ep.IPAddress.IsValid() {
				d.IPAddress = ep.IPAddress.String()
			}
		}
	}
	return d, nil
}

// exposedPorts are the ports of a port set as "8888/tcp", in numeric order.
func exposedPorts(set network.PortSet) []string {
	ports := slices.Collect(maps.Keys(set))
	slices.SortFunc(ports, func(a, b network.Port) int {
		return cmp.Or(cmp.Compare(a.Num(), b.Num()), strings.Compare(string(a.Proto()), string(b.Proto())))
	})
	out := make([]string, 0, len(ports))
	for _, p := range ports {
		out = append(out, p.String())
	}
	return out
}

// Logs streams a container's output. TTY containers give the raw stream; others are
// demultiplexed (stdout and stderr merged). Close the reader when done.
func (s *Service) Logs(ctx context.Context, id backend.Identity, ref string, opts LogOptions) (io.ReadCloser, error) {
	t, err := s.find(ctx, id, ref)
	if err != nil {
		return nil, err
	}
	ins, err := s.api.ContainerInspect(ctx, t.ID, client.ContainerInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil, notFound(ref)
	}
	if err != nil {
		return nil, engineErr("inspect container "+t.typed, err)
	}
	tail := ""
	if opts.Tail > 0 {
		tail = strconv.Itoa(opts.Tail)
	}
	body, err := s.api.ContainerLogs(ctx, t.ID, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: tail, Timestamps: opts.Timestamps,
	})
	if err != nil {
		return nil, engineErr("logs of container "+t.typed, err)
	}
	if ins.Container.Config != nil && ins.Container.Config.Tty {
		return body, nil
	}
	pr, pw := io.Pipe()
	go func() {
		_, err := stdcopy.StdCopy(pw, pw, body)
		_ = pw.CloseWithError(err)
	}()
	return &demuxed{PipeReader: pr, body: body}, nil
}

type demuxed struct {
	*io.PipeReader
	body io.Closer
}

func (d *demuxed) Close() error {
	err := d.body.Close()
	_ = d.PipeReader.Close()
	return err
}

func sortContainers(cs []Container) {
	slices.SortFunc(cs, func(a, b Container) int {
		if c := strings.Compare(a.Owner, b.Owner); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
}
