package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// Users' own named volumes (docker volume create, docker run -v NAME:/path). Like
// containers, a volume is the user's by its labels (owner, kind=volume, the user's name for
// it), set by the server on every create; its engine name is "<prefix>-vol-<len(user)>-
// <user>-<name>" (the length keeps two users' names apart) and only cosmetic. The local
// driver only, without options: its options can mount any host path.

// KindVolume is the LabelKind of a user's named volume.
const KindVolume = "volume"

// maxUserVolumes is how many named volumes one user may have.
const maxUserVolumes = 20

func (c Config) userVolumeEngineName(user, name string) string {
	return c.NamePrefix + "-vol-" + strconv.Itoa(len(user)) + "-" + user + "-" + name
}

// userVolumeName is the user's name for an engine volume name of theirs.
func (s *Service) userVolumeName(user, engineName string) (string, bool) {
	name, ok := strings.CutPrefix(engineName, s.cfg.userVolumeEngineName(user, ""))
	if !ok || ValidateVolumeName(name) != nil {
		return "", false
	}
	return name, true
}

// volumeLabels are the labels of a user's volume.
func (s *Service) volumeLabels(user, name string) map[string]string {
	m := s.labels(user)
	m[LabelKind] = KindVolume
	m[LabelName] = name
	return m
}

// isUserVolume reports whether labels are those of user's volume called name, by value.
func (s *Service) isUserVolume(labels map[string]string, user string) bool {
	return s.managedBy(labels, user) && labels[LabelKind] == KindVolume && labels[LabelName] != ""
}

// userVolumes lists the user's own volumes.
func (s *Service) userVolumes(ctx context.Context, ae apiEngine, user string) ([]volume.Volume, error) {
	f := s.filters(user)
	f.Add("label", LabelKind+"="+KindVolume)
	res, err := ae.VolumeList(ctx, client.VolumeListOptions{Filters: f})
	if err != nil {
		return nil, apiErr("list volumes", err)
	}
	return slices.DeleteFunc(res.Items, func(v volume.Volume) bool { return !s.isUserVolume(v.Labels, user) }), nil
}

// ensureUserVolume returns the engine name of the user's volume called name, creating it
// when missing (as the engine does for docker run -v NAME:/path).
func (s *Service) ensureUserVolume(ctx context.Context, user, name string) (string, error) {
	ae, ok := s.api.(apiEngine)
	if !ok {
		return "", errorf(ErrUnsupported, "volumes are not supported by this Docker connection")
	}
	vs, err := s.userVolumes(ctx, ae, user)
	if err != nil {
		return "", err
	}
	for _, v := range vs {
		if v.Labels[LabelName] == name {
			return v.Name, nil
		}
	}
	return s.createUserVolume(ctx, user, name, len(vs))
}

// createUserVolume makes the user's volume name, the user having have volumes already.
func (s *Service) createUserVolume(ctx context.Context, user, name string, have int) (string, error) {
	if err := ValidateVolumeName(name); err != nil {
		return "", err
	}
	if have >= maxUserVolumes {
		return "", errorf(ErrQuota, "quota: at most %d volumes per user (you have %d)", maxUserVolumes, have)
	}
	engineName := s.cfg.userVolumeEngineName(user, name)
	res, err := s.api.VolumeCreate(ctx, client.VolumeCreateOptions{Name: engineName, Driver: "local", Labels: s.volumeLabels(user, name)})
	if err != nil {
		return "", apiErr("create volume "+shown(name), err)
	}
	// The engine hands back a volume that exists already: never one that is not this user's.
	if !s.isUserVolume(res.Volume.Labels, user) || res.Volume.Labels[LabelName] != name {
		return "", fmt.Errorf("volume %s exists but is not %s's", engineName, user)
	}
	return engineName, nil
}

// redactVolume rewrites a volume for its owner: their name for it, no host path.
func redactVolume(v volume.Volume) volume.Volume {
	v.Name = v.Labels[LabelName]
	v.Mountpoint = ""
	v.Options = nil
	v.Status = nil
	v.Labels = maps.Clone(v.Labels)
	return v
}

// ListVolumes is GET /volumes: the identity's own named volumes.
func (a *API) ListVolumes(ctx context.Context, id backend.Identity) ([]byte, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	ae, err := a.engineAPI()
	if err != nil {
		return nil, err
	}
	vs, err := a.svc.userVolumes(ctx, ae, id.User)
	if err != nil {
		return nil, err
	}
	out := volume.ListResponse{Volumes: []volume.Volume{}, Warnings: []string{}}
	for _, v := range vs {
		rv := redactVolume(v)
		out.Volumes = append(out.Volumes, rv)
	}
	slices.SortFunc(out.Volumes, func(a, b volume.Volume) int { return strings.Compare(a.Name, b.Name) })
	return json.Marshal(out)
}

// noSuchVolume is the one answer for a volume that is missing or someone else's.
func noSuchVolume(name string) error {
	return errorf(ErrNotFound, "get %s: no such volume", shown(name))
}

// findVolume finds the identity's own volume by their name for it.
func (a *API) findVolume(ctx context.Context, id backend.Identity, name string) (volume.Volume, error) {
	if err := checkIdentity(id); err != nil {
		return volume.Volume{}, err
	}
	ae, err := a.engineAPI()
	if err != nil {
		return volume.Volume{}, err
	}
	vs, err := a.svc.userVolumes(ctx, ae, id.User)
	if err != nil {
		return volume.Volume{}, err
	}
	for _, v := range vs {
		if v.Labels[LabelName] == name {
			return v, nil
		}
	}
	return volume.Volume{}, noSuchVolume(name)
}

// CreateVolume is POST /volumes/create: a named volume of the identity's, local driver
// without options. An existing one of theirs is handed back as it is. Audited as
// "volume create".
func (a *API) CreateVolume(ctx context.Context, id backend.Identity, body []byte) ([]byte, error) {
	v, name, err := a.createVolume(ctx, id, body)
	a.svc.record(id, "volume create", id.User+"/"+shown(name), err)
	if err != nil {
		return nil, err
	}
	return json.Marshal(redactVolume(v))
}

func (a *API) createVolume(ctx context.Context, id backend.Identity, body []byte) (volume.Volume, string, error) {
	if err := checkIdentity(id); err != nil {
		return volume.Volume{}, "", err
	}
	var req volume.CreateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		return volume.Volume{}, "", errorf(ErrInvalid, "the volume request is not valid JSON")
	}
	switch {
	case req.Driver != "" && req.Driver != "local":
		return volume.Volume{}, req.Name, refused("Driver", "--driver", "only the local driver is available")
	case len(req.DriverOpts) > 0:
		return volume.Volume{}, req.Name, refused("DriverOpts", "--opt", "driver options are not allowed: they can mount paths of the server")
	case req.ClusterVolumeSpec != nil:
		return volume.Volume{}, req.Name, refused("ClusterVolumeSpec", "", "cluster volumes are not available")
	}
	if req.Name == "" {
		req.Name = "vol-" + randomSuffix(12)
	}
	if err := ValidateVolumeName(req.Name); err != nil {
		return volume.Volume{}, req.Name, err
	}
	ae, err := a.engineAPI()
	if err != nil {
		return volume.Volume{}, req.Name, err
	}
	lock := a.svc.userLock(id.User)
	lock.Lock()
	defer lock.Unlock()
	vs, err := a.svc.userVolumes(ctx, ae, id.User)
	if err != nil {
		return volume.Volume{}, req.Name, err
	}
	for _, v := range vs {
		if v.Labels[LabelName] == req.Name {
			return v, req.Name, nil
		}
	}
	engineName, err := a.svc.createUserVolume(ctx, id.User, req.Name, len(vs))
	if err != nil {
		return volume.Volume{}, req.Name, err
	}
	res, err := ae.VolumeInspect(ctx, engineName, client.VolumeInspectOptions{})
	if err != nil {
		return volume.Volume{}, req.Name, apiErr("inspect volume "+shown(req.Name), err)
	}
	return res.Volume, req.Name, nil
}

// InspectVolume is GET /volumes/{name} for one of the identity's own volumes.
func (a *API) InspectVolume(ctx context.Context, id backend.Identity, name string) ([]byte, error) {
	v, err := a.findVolume(ctx, id, name)
	if err != nil {
		return nil, err
	}
	return json.Marshal(redactVolume(v))
}

// RemoveVolume is DELETE /volumes/{name} for one of the identity's own volumes (the
// engine refuses one in use). Audited as "volume rm".
func (a *API) RemoveVolume(ctx context.Context, id backend.Identity, name string, force bool) error {
	v, err := a.findVolume(ctx, id, name)
	if err == nil {
		var ae apiEngine
		if ae, err = a.engineAPI(); err == nil {
			_, err = ae.VolumeRemove(ctx, v.Name, client.VolumeRemoveOptions{Force: force})
			switch {
			case cerrdefs.IsConflict(err):
				err = errorf(ErrConflict, "remove %s: volume is in use", shown(name))
			case cerrdefs.IsNotFound(err):
				err = noSuchVolume(name)
			default:
				err = apiErr("remove volume "+shown(name), err)
			}
		}
	}
	a.svc.record(id, "volume rm", id.User+"/"+shown(name), err)
	return err
}
