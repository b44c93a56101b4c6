package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/image"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// Images through the Docker API: the same list as the Images tab (every image on the
// server: the engine is shared), pulls through the ImageService's policy, tags and pushes
// only into the caller's own registry namespace, removal as rmi allows, and builds
// (apibuild.go).

// ListImages is GET /images/json: every image on the engine, as the Images tab lists them.
func (a *API) ListImages(ctx context.Context, id backend.Identity, all bool, filters map[string][]string) ([]byte, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	f := client.Filters{}
	for k, vs := range filters {
		switch k {
		case "dangling", "label", "reference", "before", "since", "until":
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
	res, err := ae.ImageList(ctx, client.ImageListOptions{All: all, Filters: f})
	if err != nil {
		return nil, apiErr("list images", err)
	}
	if res.Items == nil {
		res.Items = []image.Summary{}
	}
	return json.Marshal(res.Items)
}

// noSuchImage is the Docker API's answer for an image that is not on the server.
func noSuchImage(ref string) error {
	return errorf(ErrNoImage, "No such image: %s", shown(ref))
}

// InspectImage is GET /images/{name}/json, without the engine's paths (graph driver data).
func (a *API) InspectImage(ctx context.Context, id backend.Identity, ref string) ([]byte, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	if ref == "" || len(ref) > 255 || strings.ContainsAny(ref, "\x00 ") {
		return nil, noSuchImage(ref)
	}
	var raw bytes.Buffer
	res, err := a.svc.api.ImageInspect(ctx, ref, client.ImageInspectWithRawResponse(&raw))
	if cerrdefs.IsNotFound(err) {
		return nil, noSuchImage(ref)
	}
	if err != nil {
		return nil, apiErr("inspect image "+shown(ref), err)
	}
	in := res.InspectResponse
	in.GraphDriver = nil
	b, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	// ContainerConfig is gone from the SDK's type (API 1.45) but older clients read it
	// (docker compose 1.x does when it recreates a container): the engine's own, or empty.
	var eng struct{ ContainerConfig json.RawMessage }
	_ = json.Unmarshal(raw.Bytes(), &eng)
	var out map[string]json.RawMessage
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	out["ContainerConfig"] = json.RawMessage("{}")
	if len(eng.ContainerConfig) > 0 && eng.ContainerConfig[0] == '{' {
		out["ContainerConfig"] = eng.ContainerConfig
	}
	return json.Marshal(out)
}

// ImageHistory is GET /images/{name}/history.
func (a *API) ImageHistory(ctx context.Context, id backend.Identity, ref string) ([]byte, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	ae, err := a.engineAPI()
	if err != nil {
		return nil, err
	}
	res, err := ae.ImageHistory(ctx, ref)
	if cerrdefs.IsNotFound(err) {
		return nil, noSuchImage(ref)
	}
	if err != nil {
		return nil, apiErr("history of image "+shown(ref), err)
	}
	return json.Marshal(res.Items)
}

// progressJSON is one pull step in the engine's JSON message form.
func progressJSON(p PullProgress) []byte {
	m := map[string]any{"status": p.Status}
	if p.ID != "" {
		m["id"] = p.ID
	}
	if p.Total > 0 || p.Current > 0 {
		m["progressDetail"] = map[string]int64{"current": p.Current, "total": p.Total}
	}
	js, _ := json.Marshal(m)
	return js
}

// PullImage is POST /images/create?fromImage=: a pull through the ImageService (the site's
// policy, the private-network refusal, the credential rules, audited as "pull"), each step
// handed to emit as one JSON message.
func (a *API) PullImage(ctx context.Context, id backend.Identity, ref string, emit func([]byte)) error {
	return a.images.Pull(ctx, id, ref, func(p PullProgress) { emit(progressJSON(p)) })
}

// namespaceRefusal is the line for a tag or push outside the user's own namespace.
func (a *API) namespaceRefusal(id backend.Identity, verb, ref string) error {
	ns := a.images.policy.ns
	if ns == "" {
		return errorf(ErrPermission, "%s %s: this server has no registry namespace for users (images.registry_namespace)", verb, shown(ref))
	}
	return errorf(ErrPermission, "%s %s: only into your own registry namespace, %s/%s/...", verb, shown(ref), ns, strings.ToLower(id.User))
}

// TagImage is POST /images/{name}/tag: a new tag, only in the identity's own registry
// namespace (so nobody's tag of a shared image can be taken over). Audited as "tag".
func (a *API) TagImage(ctx context.Context, id backend.Identity, source, repo, tag string) error {
	target, err := a.tagImage(ctx, id, source, repo, tag)
	a.svc.record(id, "tag", shown(source)+" "+shown(target), err)
	return err
}

func (a *API) tagImage(ctx context.Context, id backend.Identity, source, repo, tag string) (string, error) {
	target := repo
	if tag != "" {
		target += ":" + tag
	}
	if err := checkIdentity(id); err != nil {
		return target, err
	}
	named, err := parseImageRef(repo)
	if err != nil {
		return target, err
	}
	if _, ok := named.(reference.NamedTagged); ok && tag != "" {
		return target, errorf(ErrInvalid, "invalid tag %s", shown(target))
	}
	if tag != "" {
		if named, err = reference.WithTag(named, tag); err != nil {
			return target, errorf(ErrInvalid, "invalid tag %s", shown(tag))
		}
	}
	named = reference.TagNameOnly(named)
	target = reference.FamiliarString(named)
	if !ownNamespace(id, a.images.policy.ns, named) {
		return target, a.namespaceRefusal(id, "tag", target)
	}
	ae, err := a.engineAPI()
	if err != nil {
		return target, err
	}
	if _, err := a.svc.api.ImageInspect(ctx, source); cerrdefs.IsNotFound(err) {
		return target, noSuchImage(source)
	} else if err != nil {
		return target, apiErr("tag image", err)
	}
	_, err = ae.ImageTag(ctx, client.ImageTagOptions{Source: source, Target: named.String()})
	return target, apiErr("tag image "+shown(source), err)
}

// PushImage is POST /images/{name}/push: only from the identity's own registry namespace,
// to a registry the policy lets the server reach, with the client's registry credential
// (X-Registry-Auth) or else the server's for the user's own namespace. Each engine message
// is handed to emit. Audited as "push".
func (a *API) PushImage(ctx context.Context, id backend.Identity, name, tag, clientAuth string, emit func([]byte)) error {
	target, err := a.pushImage(ctx, id, name, tag, clientAuth, emit)
	a.svc.record(id, "push", shown(target), err)
	return err
}

func (a *API) pushImage(ctx context.Context, id backend.Identity, name, tag, clientAuth string, emit func([]byte)) (string, error) {
	target := name
	if tag != "" {
		target += ":" + tag
	}
	if err := checkIdentity(id); err != nil {
		return target, err
	}
	named, err := parseImageRef(target)
	if err != nil {
		return target, err
	}
	named = reference.TagNameOnly(named)
	target = reference.FamiliarString(named)
	if !ownNamespace(id, a.images.policy.ns, named) {
		return target, a.namespaceRefusal(id, "push", target)
	}
	if err := a.images.checkRegistry(ctx, named); err != nil {
		return target, &wrapped{kind: ErrPermission, msg: "push " + target + ": " + err.Error(), err: err}
	}
	if len(clientAuth) > 16<<10 {
		return target, errorf(ErrInvalid, "the registry credential is too long")
	}
	auth := clientAuth
	if auth == "" {
		auth = a.images.authFor(id, named)
	}
	ae, err := a.engineAPI()
	if err != nil {
		return target, err
	}
	resp, err := ae.ImagePush(ctx, named.String(), client.ImagePushOptions{RegistryAuth: auth})
	if cerrdefs.IsNotFound(err) {
		return target, noSuchImage(target)
	}
	if err != nil {
		return target, apiErr("push "+target, err)
	}
	defer resp.Close()
	return target, copyMessages(resp, emit)
}

// copyMessages hands each JSON value of an engine's message stream to emit; an error
// message in the stream ends it with that error (after it was handed on).
func copyMessages(r io.Reader, emit func([]byte)) error {
	dec := json.NewDecoder(r)
	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return errorf(ErrUnavailable, "the engine's message stream broke off")
		}
		emit(raw)
		var m pullMessage
		if json.Unmarshal(raw, &m) == nil {
			if msg := m.Error; msg != "" || m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
				if msg == "" {
					msg = m.ErrorDetail.Message
				}
				return &streamError{msg: msg}
			}
		}
	}
}

// RemoveImage is DELETE /images/{name}: as rmi allows (ImageService.RemoveImage: a tag of
// one's own namespace, never in use, never forced), audited there as "rmi".
func (a *API) RemoveImage(ctx context.Context, id backend.Identity, ref string, force bool) ([]byte, error) {
	if force {
		err := errorf(ErrPermission, "rmi --force is not available on this server: a tag in use stays")
		a.svc.record(id, "rmi", shown(ref), err)
		return nil, err
	}
	if err := a.images.RemoveImage(ctx, id, ref); err != nil {
		return nil, err
	}
	return json.Marshal([]map[string]string{{"Untagged": familiarRef(ref)}})
}
