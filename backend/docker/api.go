package docker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/api/types/system"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// The per-user Docker Engine API, as the backend sees it (the HTTP side is tui/dockerapi).
//
// API answers the Docker Engine API's operations for one identity at a time, over the same
// rules as every other door: a user sees and touches only their own containers and volumes
// (looked up by labels, never by engine name; an ID or ID prefix is matched among the
// caller's own containers only), everything they create goes through createContainer
// (apicreate.go), pulls through the ImageService's policy, and every mutating call is
// audited. TAs get their own objects here too: the Docker API is a door for one's own work.
//
// What comes back is the engine's own data, rewritten for the user: their names for
// containers ("/box", never "wm-alice-box"), their own network only (as "bridge"), and no
// host path (mount sources, the engine's files, graph driver data).

// apiEngine is the part of the Docker SDK the Docker API door needs beyond engine.
type apiEngine interface {
	engine
	imageEngine
	ServerVersion(ctx context.Context, options client.ServerVersionOptions) (client.ServerVersionResult, error)
	Info(ctx context.Context, options client.InfoOptions) (client.SystemInfoResult, error)
	ContainerKill(ctx context.Context, id string, options client.ContainerKillOptions) (client.ContainerKillResult, error)
	ContainerPause(ctx context.Context, id string, options client.ContainerPauseOptions) (client.ContainerPauseResult, error)
	ContainerUnpause(ctx context.Context, id string, options client.ContainerUnpauseOptions) (client.ContainerUnpauseResult, error)
	ContainerTop(ctx context.Context, id string, options client.ContainerTopOptions) (client.ContainerTopResult, error)
	ContainerRename(ctx context.Context, id string, options client.ContainerRenameOptions) (client.ContainerRenameResult, error)
	ExecStart(ctx context.Context, execID string, options client.ExecStartOptions) (client.ExecStartResult, error)
	ImageTag(ctx context.Context, options client.ImageTagOptions) (client.ImageTagResult, error)
	ImagePush(ctx context.Context, image string, options client.ImagePushOptions) (client.ImagePushResponse, error)
	ImageBuild(ctx context.Context, buildContext io.Reader, options client.ImageBuildOptions) (client.ImageBuildResult, error)
	ImageHistory(ctx context.Context, image string, opts ...client.ImageHistoryOption) (client.ImageHistoryResult, error)
	VolumeList(ctx context.Context, options client.VolumeListOptions) (client.VolumeListResult, error)
	VolumeInspect(ctx context.Context, id string, options client.VolumeInspectOptions) (client.VolumeInspectResult, error)
	VolumeRemove(ctx context.Context, id string, options client.VolumeRemoveOptions) (client.VolumeRemoveResult, error)
}

var _ apiEngine = (*client.Client)(nil)

// API is the per-user Docker Engine API over a Service and its ImageService. It is safe
// for concurrent use.
type API struct {
	svc    *Service
	images *ImageService
	spool  string // where build contexts wait while their Dockerfile is read

	verMu sync.Mutex
	ver   APIVersion // once known

	execs  sync.Map // exec ID -> marker token, for ending an exec whose client went away
	builds buildLocks
}

// APIOptions configure NewAPI.
type APIOptions struct {
	// SpoolDir holds build contexts while their Dockerfile is checked; empty: the system's
	// temporary directory.
	SpoolDir string
}

// NewAPI puts the Docker API door over svc and images (which must be over svc).
func NewAPI(svc *Service, images *ImageService, opts APIOptions) *API {
	return &API{svc: svc, images: images, spool: opts.SpoolDir}
}

// engineAPI returns the engine's methods the door needs, or ErrUnsupported.
func (a *API) engineAPI() (apiEngine, error) {
	ae, ok := a.svc.api.(apiEngine)
	if !ok || ae == nil {
		return nil, errorf(ErrUnsupported, "the Docker API is not supported by this Docker connection")
	}
	return ae, nil
}

// APIVersion is what the door tells clients about the API it speaks.
type APIVersion struct {
	Version    string // highest API version served: the engine's, at most the SDK's
	MinVersion string // lowest
	OSType     string
}

// Version reports the API version the door speaks: the engine's own (clients negotiate
// down to it), asked once.
func (a *API) Version(ctx context.Context) (APIVersion, error) {
	a.verMu.Lock()
	defer a.verMu.Unlock()
	if a.ver.Version != "" {
		return a.ver, nil
	}
	ae, err := a.engineAPI()
	if err != nil {
		return APIVersion{}, err
	}
	v, err := ae.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return APIVersion{}, apiErr("ask Docker for its version", err)
	}
	av := APIVersion{Version: v.APIVersion, MinVersion: client.MinAPIVersion, OSType: v.Os}
	if versionLess(client.MaxAPIVersion, av.Version) {
		av.Version = client.MaxAPIVersion
	}
	if versionLess(av.Version, av.MinVersion) {
		return APIVersion{}, errorf(ErrUnsupported, "the Docker Engine's API %s is older than %s", av.Version, av.MinVersion)
	}
	if av.OSType == "" {
		av.OSType = "linux"
	}
	a.ver = av
	return av, nil
}

// versionLess compares API versions "1.41" < "1.9" numerically.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < max(len(pa), len(pb)); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return false
}

// SupportsVersion reports whether a client's API version is one the door serves.
func (a *API) SupportsVersion(ctx context.Context, v string) (APIVersion, bool, error) {
	av, err := a.Version(ctx)
	if err != nil {
		return av, false, err
	}
	return av, !versionLess(av.Version, v) && !versionLess(v, av.MinVersion), nil
}

// VersionJSON is GET /version: the engine's, with the API versions the door serves.
func (a *API) VersionJSON(ctx context.Context, id backend.Identity) ([]byte, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	av, err := a.Version(ctx)
	if err != nil {
		return nil, err
	}
	ae, _ := a.engineAPI()
	v, err := ae.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		return nil, apiErr("ask Docker for its version", err)
	}
	out := system.VersionResponse{
		Platform:      system.PlatformInfo{Name: platformName(v.Platform.Name)},
		Version:       v.Version,
		APIVersion:    av.Version,
		MinAPIVersion: av.MinVersion,
		Os:            v.Os,
		Arch:          v.Arch,
		Experimental:  false,
	}
	for _, c := range v.Components {
		cv := system.ComponentVersion{Name: c.Name, Version: c.Version}
		if c.Name == "Engine" {
			cv.Details = map[string]string{"ApiVersion": av.Version, "MinAPIVersion": av.MinVersion, "Os": v.Os, "Arch": v.Arch}
			for _, k := range []string{"GitCommit", "GoVersion", "KernelVersion", "BuildTime", "Experimental"} {
				if d, ok := c.Details[k]; ok {
					cv.Details[k] = d
				}
			}
		}
		out.Components = append(out.Components, cv)
	}
	return json.Marshal(out)
}

// InfoJSON is GET /info: the engine's, redacted to what is the user's or harmless — their
// own container counts, no paths, no other users' numbers, no engine configuration.
func (a *API) InfoJSON(ctx context.Context, id backend.Identity) ([]byte, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	ae, err := a.engineAPI()
	if err != nil {
		return nil, err
	}
	res, err := ae.Info(ctx, client.InfoOptions{})
	if err != nil {
		return nil, apiErr("ask Docker for its information", err)
	}
	in := res.Info
	mine, err := a.svc.ownContainers(ctx, id.User)
	if err != nil {
		return nil, err
	}
	out := system.Info{
		ID:              "whalemountain",
		Images:          in.Images,
		Driver:          in.Driver,
		MemoryLimit:     in.MemoryLimit,
		SwapLimit:       in.SwapLimit,
		CPUCfsPeriod:    in.CPUCfsPeriod,
		CPUCfsQuota:     in.CPUCfsQuota,
		CPUShares:       in.CPUShares,
		CPUSet:          in.CPUSet,
		PidsLimit:       in.PidsLimit,
		IPv4Forwarding:  in.IPv4Forwarding,
		SystemTime:      in.SystemTime,
		LoggingDriver:   in.LoggingDriver,
		CgroupDriver:    in.CgroupDriver,
		CgroupVersion:   in.CgroupVersion,
		KernelVersion:   in.KernelVersion,
		OperatingSystem: in.OperatingSystem,
		OSVersion:       in.OSVersion,
		OSType:          in.OSType,
		Architecture:    in.Architecture,
		NCPU:            in.NCPU,
		MemTotal:        in.MemTotal,
		Name:            in.Name,
		ServerVersion:   in.ServerVersion,
		DefaultRuntime:  "runc",
		Isolation:       in.Isolation,
		SecurityOptions: slices.Clone(in.SecurityOptions),
		Warnings:        []string{},
		Labels:          []string{},
	}
	for _, c := range mine {
		out.Containers++
		switch c.State {
		case container.StateRunning, container.StateRestarting:
			out.ContainersRunning++
		case container.StatePaused:
			out.ContainersPaused++
		default:
			out.ContainersStopped++
		}
	}
	return json.Marshal(out)
}

// notFoundAPI is the Docker API's "No such container" for what is missing and for what is
// another user's alike.
func notFoundAPI(ref string) error {
	return errorf(ErrNotFound, "No such container: %s", shown(ref))
}

// own resolves what a client named to one of the identity's own containers: their name for
// it, the full engine ID or an unambiguous prefix, looked up among their containers only.
func (a *API) own(ctx context.Context, id backend.Identity, ref string) (container.Summary, error) {
	if err := checkIdentity(id); err != nil {
		return container.Summary{}, err
	}
	mine, err := a.svc.ownContainers(ctx, id.User)
	if err != nil {
		return container.Summary{}, err
	}
	c, ok, err := resolveAmong(mine, ref)
	if err != nil {
		return c, errorf(ErrInvalid, "%s", err.Error())
	}
	if !ok {
		return c, notFoundAPI(ref)
	}
	return c, nil
}

// apiErr is a failed engine call in the Docker API's terms: its kind kept (so the door
// answers with the engine's status), its words the project's (engineErr).
func apiErr(what string, err error) error {
	if err == nil {
		return nil
	}
	switch err.(type) {
	case *userError, *wrapped:
		return err
	}
	w := engineErr(what, err).(*wrapped)
	switch {
	case w.kind != nil:
	case cerrdefs.IsNotFound(err):
		w.kind = ErrNotFound
	case cerrdefs.IsConflict(err):
		w.kind = ErrConflict
	case cerrdefs.IsInvalidArgument(err):
		w.kind = ErrInvalid
	case cerrdefs.IsPermissionDenied(err), cerrdefs.IsUnauthorized(err):
		w.kind = ErrPermission
	case cerrdefs.IsNotModified(err):
		w.kind = ErrNotModified
	}
	return w
}

// ErrNotModified: nothing to do (starting a running container, stopping a stopped one);
// the Docker API answers 304.
var ErrNotModified = errors.New("not modified")

// APIListOptions select what ListContainers returns.
type APIListOptions struct {
	All     bool
	Limit   int
	Size    bool
	Filters map[string][]string // the Docker API's filters: status, label, name, id, ancestor, ...
}

// ListContainers is GET /containers/json: the identity's own containers, as the engine
// lists them, with their names and nothing of anyone else's.
func (a *API) ListContainers(ctx context.Context, id backend.Identity, opts APIListOptions) ([]byte, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	f := a.svc.containerFilters(id.User)
	var names, ids []string
	for k, vs := range opts.Filters {
		switch k {
		case "name":
			names = vs
		case "id":
			ids = vs
		case "status", "label", "ancestor", "exited", "health", "before", "since", "volume", "is-task", "expose", "publish":
			for _, v := range vs {
				f.Add(k, v)
			}
		default:
			return nil, errorf(ErrInvalid, "invalid filter '%s'", shown(k))
		}
	}
	ae, err := a.engineAPI()
	if err != nil {
		return nil, err
	}
	res, err := ae.ContainerList(ctx, client.ContainerListOptions{All: opts.All || len(opts.Filters["status"]) > 0,
		Size: opts.Size, Filters: f})
	if err != nil {
		return nil, apiErr("list containers", err)
	}
	out := make([]container.Summary, 0, len(res.Items))
	for _, c := range a.svc.withNames(res.Items) {
		if !a.svc.isUserContainer(c.Labels, id.User) {
			continue
		}
		name := c.Labels[LabelName]
		if len(names) > 0 && !slices.ContainsFunc(names, func(n string) bool { return matchName(n, name) }) {
			continue
		}
		if len(ids) > 0 && !slices.ContainsFunc(ids, func(p string) bool { return strings.HasPrefix(c.ID, p) }) {
			continue
		}
		out = append(out, a.redactSummary(c, id.User))
	}
	if opts.Limit > 0 && len(out) > opts.Limit {
		out = out[:opts.Limit]
	}
	return json.Marshal(out)
}

// matchName is the Docker API's name filter: a regular expression over "/name".
func matchName(pattern, name string) bool {
	re, err := regexp.Compile(pattern)
	if err != nil {
		return strings.Contains(name, pattern)
	}
	return re.MatchString("/" + name)
}

// redactSummary rewrites a list entry for its owner.
func (a *API) redactSummary(c container.Summary, user string) container.Summary {
	c.Names = []string{"/" + c.Labels[LabelName]}
	c.Labels = maps.Clone(c.Labels)
	var eps map[string]*network.EndpointSettings
	if c.NetworkSettings != nil {
		eps = c.NetworkSettings.Networks
		c.NetworkSettings = &container.NetworkSettingsSummary{Networks: a.svc.shownNetworks(user, eps)}
	}
	c.HostConfig.NetworkMode = a.svc.shownNetworkMode(user, c.HostConfig.NetworkMode, eps)
	for i := range c.Mounts {
		c.Mounts[i] = a.redactMount(c.Mounts[i], user)
	}
	return c
}

// redactMount hides the host side of a mount and names the user's own volumes as they do.
func (a *API) redactMount(m container.MountPoint, user string) container.MountPoint {
	m.Source = ""
	m.Driver = ""
	if m.Name == a.svc.cfg.volumeName(user) {
		m.Name = "home"
	} else if name, ok := a.svc.userVolumeName(user, m.Name); ok {
		m.Name = name
	}
	if m.Type == "bind" {
		m.Name = "home"
	}
	return m
}

// InspectContainer is GET /containers/{id}/json for one of the identity's own containers,
// redacted: their name, their network only, no host paths.
func (a *API) InspectContainer(ctx context.Context, id backend.Identity, ref string, size bool) ([]byte, error) {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		a.svc.RecordRefusal(id, "inspect", ref, err)
		return nil, err
	}
	res, err := a.svc.api.ContainerInspect(ctx, c.ID, client.ContainerInspectOptions{Size: size})
	if cerrdefs.IsNotFound(err) {
		return nil, notFoundAPI(ref)
	}
	if err != nil {
		return nil, apiErr("inspect container "+shown(ref), err)
	}
	return json.Marshal(a.redactInspect(res.Container, id.User))
}

// redactInspect rewrites an inspect for its owner.
func (a *API) redactInspect(in container.InspectResponse, user string) container.InspectResponse {
	name := ""
	if in.Config != nil {
		name = a.svc.cfg.userName(in.Config.Labels, in.Name)
	}
	in.Name = "/" + name
	in.ResolvConfPath, in.HostnamePath, in.HostsPath, in.LogPath = "", "", "", ""
	in.GraphDriver, in.Storage = nil, nil
	for i := range in.Mounts {
		in.Mounts[i] = a.redactMount(in.Mounts[i], user)
	}
	if hc := in.HostConfig; hc != nil {
		h := *hc
		h.Binds = nil
		var eps map[string]*network.EndpointSettings
		if in.NetworkSettings != nil {
			eps = in.NetworkSettings.Networks
		}
		h.NetworkMode = container.NetworkMode(a.svc.shownNetworkMode(user, string(h.NetworkMode), eps))
		h.Mounts = slices.Clone(h.Mounts)
		for i, m := range h.Mounts {
			if m.Type == "bind" {
				m.Source = ""
			} else if m.Source == a.svc.cfg.volumeName(user) {
				m.Source = "home"
			} else if n, ok := a.svc.userVolumeName(user, m.Source); ok {
				m.Source = n
			}
			h.Mounts[i] = m
		}
		in.HostConfig = &h
	}
	if ns := in.NetworkSettings; ns != nil {
		n := *ns
		n.SandboxKey, n.SandboxID = "", ""
		n.Networks = a.svc.shownNetworks(user, ns.Networks)
		in.NetworkSettings = &n
	}
	return in
}

// StartContainer starts one of the identity's own containers under the running quota and
// the GPU rules (Service.Start).
func (a *API) StartContainer(ctx context.Context, id backend.Identity, ref string) error {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		a.svc.record(id, "start", shown(ref), err)
		return err
	}
	if c.State == container.StateRunning {
		return errorf(ErrNotModified, "container %s is already running", shown(ref))
	}
	return a.svc.Start(ctx, id, c.Labels[LabelName])
}

// StopContainer stops one of the identity's own containers (Service.Stop).
func (a *API) StopContainer(ctx context.Context, id backend.Identity, ref string) error {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		a.svc.record(id, "stop", shown(ref), err)
		return err
	}
	if c.State != container.StateRunning && c.State != container.StateRestarting && c.State != container.StatePaused {
		return errorf(ErrNotModified, "container %s is not running", shown(ref))
	}
	return a.svc.Stop(ctx, id, c.Labels[LabelName], "")
}

// RestartContainer restarts one of the identity's own containers (Service.Restart).
func (a *API) RestartContainer(ctx context.Context, id backend.Identity, ref string) error {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		a.svc.record(id, "restart", shown(ref), err)
		return err
	}
	return a.svc.Restart(ctx, id, c.Labels[LabelName])
}

// RemoveContainer removes one of the identity's own containers (Service.Remove); their
// home and named volumes stay.
func (a *API) RemoveContainer(ctx context.Context, id backend.Identity, ref string, force bool) error {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		a.svc.record(id, "rm", shown(ref), err)
		return err
	}
	err = a.svc.Remove(ctx, id, c.Labels[LabelName], force, "")
	if errors.Is(err, ErrConflict) && !force {
		return errorf(ErrConflict, "You cannot remove a running container %s. Stop the container before attempting removal or force remove", shown(ref))
	}
	return err
}

var signalRE = regexp.MustCompile(`^(SIG)?[A-Z0-9+-]{1,16}$|^[0-9]{1,2}$`)

// KillContainer signals the main process of one of the identity's own containers.
// Audited as "kill".
func (a *API) KillContainer(ctx context.Context, id backend.Identity, ref, signal string) error {
	c, err := a.own(ctx, id, ref)
	if err == nil && signal != "" && !signalRE.MatchString(signal) {
		err = errorf(ErrInvalid, "invalid signal %s", shown(signal))
	}
	if err == nil {
		var ae apiEngine
		if ae, err = a.engineAPI(); err == nil {
			_, err = ae.ContainerKill(ctx, c.ID, client.ContainerKillOptions{Signal: signal})
			err = apiErr("kill container "+shown(ref), err)
		}
	}
	a.svc.record(id, "kill", a.auditRef(id, c, ref), err)
	return err
}

// PauseContainer pauses (pause true) or unpauses one of the identity's own containers.
// Audited as "pause" or "unpause".
func (a *API) PauseContainer(ctx context.Context, id backend.Identity, ref string, pause bool) error {
	action := "unpause"
	if pause {
		action = "pause"
	}
	c, err := a.own(ctx, id, ref)
	if err == nil {
		var ae apiEngine
		if ae, err = a.engineAPI(); err == nil {
			if pause {
				_, err = ae.ContainerPause(ctx, c.ID, client.ContainerPauseOptions{})
			} else {
				_, err = ae.ContainerUnpause(ctx, c.ID, client.ContainerUnpauseOptions{})
			}
			err = apiErr(action+" container "+shown(ref), err)
		}
	}
	a.svc.record(id, action, a.auditRef(id, c, ref), err)
	return err
}

// RenameContainer gives one of the identity's own containers a new name, free among their
// containers (docker compose renames a container it recreates). Labels cannot change once a
// container exists, so the server renames the engine's name of it to
// "<prefix>-<user>-<name>", which is where the user's name is read from from then on
// (userName); owner, kind and everything else stay the labels'. The container's DNS aliases
// on its networks stay those it was created with. Audited as "rename".
func (a *API) RenameContainer(ctx context.Context, id backend.Identity, ref, name string) error {
	c, err := a.rename(ctx, id, ref, name)
	target := a.auditRef(id, c, ref)
	if err == nil || c.ID != "" {
		target += " -> " + shown(strings.TrimPrefix(name, "/"))
	}
	a.svc.record(id, "rename", target, err)
	return err
}

func (a *API) rename(ctx context.Context, id backend.Identity, ref, name string) (container.Summary, error) {
	name = strings.TrimPrefix(name, "/")
	if err := ValidateName(name); err != nil {
		return container.Summary{}, err
	}
	ae, err := a.engineAPI()
	if err != nil {
		return container.Summary{}, err
	}
	lock := a.svc.userLock(id.User)
	lock.Lock()
	defer lock.Unlock()
	c, err := a.own(ctx, id, ref)
	if err != nil {
		return c, err
	}
	old := c.Labels[LabelName]
	if name == old {
		return c, nil
	}
	mine, err := a.svc.ownContainers(ctx, id.User)
	if err != nil {
		return c, err
	}
	inUse := errorf(ErrConflict, "Conflict. The container name \"/%s\" is already in use by one of your containers", name)
	for _, o := range mine {
		if o.Labels[LabelName] == name {
			return c, inUse
		}
	}
	_, err = ae.ContainerRename(ctx, c.ID, client.ContainerRenameOptions{NewName: a.svc.cfg.containerName(id.User, name)})
	if cerrdefs.IsConflict(err) {
		return c, errorf(ErrConflict, "Conflict. The container name \"/%s\" is not available on this server", name)
	}
	return c, apiErr("rename container "+shown(old), err)
}

// auditRef is "owner/name" of a resolved container, else what was typed.
func (a *API) auditRef(id backend.Identity, c container.Summary, typed string) string {
	if n := c.Labels[LabelName]; n != "" {
		return id.User + "/" + n
	}
	return shown(typed)
}

// WaitContainer is POST /containers/{id}/wait: once the engine has taken the wait (it
// returns then), the returned func blocks until the condition holds and gives the answer's
// JSON body.
func (a *API) WaitContainer(ctx context.Context, id backend.Identity, ref, condition string) (func() ([]byte, error), error) {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		return nil, err
	}
	cond := container.WaitCondition(condition)
	switch cond {
	case "", container.WaitConditionNotRunning, container.WaitConditionNextExit, container.WaitConditionRemoved:
	default:
		return nil, errorf(ErrInvalid, "invalid condition %s", shown(condition))
	}
	w := a.svc.api.ContainerWait(ctx, c.ID, client.ContainerWaitOptions{Condition: cond})
	return func() ([]byte, error) {
		select {
		case r := <-w.Result:
			return json.Marshal(r)
		case err := <-w.Error:
			return nil, apiErr("wait for container "+shown(ref), err)
		}
	}, nil
}

// ResizeContainer sets the terminal size of one of the identity's own containers.
func (a *API) ResizeContainer(ctx context.Context, id backend.Identity, ref string, width, height int) error {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		return err
	}
	if err := validateSize(width, height); err != nil {
		return err
	}
	_, err = a.svc.api.ContainerResize(ctx, c.ID, client.ContainerResizeOptions{Width: uint(width), Height: uint(height)})
	return apiErr("resize container "+shown(ref), err)
}

var psArgsRE = regexp.MustCompile(`^[A-Za-z, -]{0,64}$`)

// TopContainer is GET /containers/{id}/top.
func (a *API) TopContainer(ctx context.Context, id backend.Identity, ref, psArgs string) ([]byte, error) {
	c, err := a.own(ctx, id, ref)
	if err != nil {
		return nil, err
	}
	if !psArgsRE.MatchString(psArgs) {
		return nil, errorf(ErrInvalid, "invalid ps arguments %s", shown(psArgs))
	}
	ae, err := a.engineAPI()
	if err != nil {
		return nil, err
	}
	var args []string
	if psArgs != "" {
		args = strings.Fields(psArgs)
	}
	res, err := ae.ContainerTop(ctx, c.ID, client.ContainerTopOptions{Arguments: args})
	if err != nil {
		return nil, apiErr("top of container "+shown(ref), err)
	}
	return json.Marshal(container.TopResponse{Processes: res.Processes, Titles: res.Titles})
}

// RecordRefusal records a request the door refused before reaching the backend (an
// endpoint it does not offer), as "refused".
func (a *API) RecordRefusal(id backend.Identity, action, target string, err error) {
	a.svc.record(id, action, target, err)
}

// platformName is the platform /version reports: this server, over the engine's.
func platformName(engine string) string {
	if engine == "" {
		return "WhaleMountain"
	}
	return "WhaleMountain (" + engine + ")"
}
