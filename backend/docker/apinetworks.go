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
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// Users' own networks (docker network create, docker compose's per-project networks). Every
// user has a default network the server makes on first use (what `bridge` and `default`
// name for them); they may make a few more. Like volumes, a network is the user's by its
// labels (owner, kind=network, the user's name for it), set by the server on every create;
// its engine name "<prefix>-unet-<len(user)>-<user>-<name>" is only cosmetic. Bridge driver
// only, without driver options, addresses or IPv6: the server's address pools are shared.
// Only the user's own containers are ever attached to them, and the engine keeps bridge
// networks apart from each other, so the names a container resolves (its DNS aliases) are
// those of its owner's containers on that network.

// KindNetwork is the LabelKind of a user's own network.
const KindNetwork = "network"

// maxUserNetworks is how many networks one user may make besides their default one: each
// takes a subnet from the engine's address pools, which the whole server shares.
const maxUserNetworks = 5

// apiNetworkEngine is the part of the SDK the networks need beyond engine.
type apiNetworkEngine interface {
	NetworkInspect(ctx context.Context, networkID string, options client.NetworkInspectOptions) (client.NetworkInspectResult, error)
	NetworkRemove(ctx context.Context, networkID string, options client.NetworkRemoveOptions) (client.NetworkRemoveResult, error)
	NetworkConnect(ctx context.Context, networkID string, options client.NetworkConnectOptions) (client.NetworkConnectResult, error)
	NetworkDisconnect(ctx context.Context, networkID string, options client.NetworkDisconnectOptions) (client.NetworkDisconnectResult, error)
}

var _ apiNetworkEngine = (*client.Client)(nil)

func (c Config) userNetworkEngineName(user, name string) string {
	return c.NamePrefix + "-unet-" + strconv.Itoa(len(user)) + "-" + user + "-" + name
}

// userNetworkName is the user's name for an engine network name of theirs: "bridge" for
// their default network.
func (s *Service) userNetworkName(user, engineName string) (string, bool) {
	if engineName == s.cfg.networkName(user) {
		return network.NetworkBridge, true
	}
	name, ok := strings.CutPrefix(engineName, s.cfg.userNetworkEngineName(user, ""))
	if !ok || ValidateNetworkName(name) != nil {
		return "", false
	}
	return name, true
}

// ValidateNetworkName checks the name of a user's own network as users type it.
func ValidateNetworkName(name string) error {
	if !volumeNameRE.MatchString(name) {
		return errorf(ErrInvalid, "invalid network name %s: use 1-64 letters, digits, '_', '.' and '-', starting and ending with a letter or digit", shown(name))
	}
	return nil
}

// isUserNetwork reports whether labels are those of one of user's own networks, by value.
func (s *Service) isUserNetwork(labels map[string]string, user string) bool {
	return s.managedBy(labels, user) && labels[LabelKind] == KindNetwork && labels[LabelName] != ""
}

// userNet is one network a user may use: their default one (name "bridge") or one they made.
type userNet struct {
	name    string // the user's name for it
	summary network.Summary
}

// userNetworks lists the user's networks: the default one first (when it exists), then
// those they made, by name.
func (s *Service) userNetworks(ctx context.Context, user string) ([]userNet, error) {
	res, err := s.api.NetworkList(ctx, client.NetworkListOptions{Filters: s.filters(user)})
	if err != nil {
		return nil, apiErr("list networks", err)
	}
	var def, made []userNet
	for _, n := range res.Items {
		switch {
		case n.Name == s.cfg.networkName(user) && s.managedBy(n.Labels, user) && n.Labels[LabelKind] == "":
			def = append(def, userNet{name: network.NetworkBridge, summary: n})
		case s.isUserNetwork(n.Labels, user):
			made = append(made, userNet{name: n.Labels[LabelName], summary: n})
		}
	}
	slices.SortFunc(made, func(a, b userNet) int { return strings.Compare(a.name, b.name) })
	return append(def[:min(len(def), 1)], made...), nil
}

// noSuchNetwork is the one answer for a network that is missing or someone else's.
func noSuchNetwork(ref string) error {
	return errorf(ErrNotFound, "network %s not found", shown(ref))
}

// resolveNetwork finds what a user typed among their networks: "bridge" or "default" (their
// default network), their name for one, its ID or an unambiguous ID prefix. It never looks
// anywhere else.
func resolveNetwork(nets []userNet, ref string) (userNet, error) {
	if ref == "default" {
		ref = network.NetworkBridge
	}
	for _, n := range nets {
		if n.name == ref || n.summary.ID == ref {
			return n, nil
		}
	}
	if hexRE.MatchString(ref) {
		var hits []userNet
		for _, n := range nets {
			if strings.HasPrefix(n.summary.ID, ref) {
				hits = append(hits, n)
			}
		}
		switch len(hits) {
		case 1:
			return hits[0], nil
		case 0:
		default:
			return userNet{}, errorf(ErrInvalid, "more than one of your networks has an ID starting with %s", ref)
		}
	}
	return userNet{}, noSuchNetwork(ref)
}

// ownNetwork resolves ref to one of the user's networks; "bridge" makes their default one
// when it does not exist yet.
func (s *Service) ownNetwork(ctx context.Context, user, ref string) (userNet, error) {
	nets, err := s.userNetworks(ctx, user)
	if err != nil {
		return userNet{}, err
	}
	n, err := resolveNetwork(nets, ref)
	if err != nil && (ref == network.NetworkBridge || ref == "default") {
		id, err := s.ensureNetwork(ctx, user)
		if err != nil {
			return userNet{}, err
		}
		return userNet{name: network.NetworkBridge, summary: network.Summary{Network: network.Network{ID: id, Name: s.cfg.networkName(user)}}}, nil
	}
	return n, err
}

// networkEngine returns the engine's network methods, or ErrUnsupported.
func (s *Service) networkEngine() (apiNetworkEngine, error) {
	ne, ok := s.api.(apiNetworkEngine)
	if !ok || ne == nil {
		return nil, errorf(ErrUnsupported, "networks are not supported by this Docker connection")
	}
	return ne, nil
}

// userLabels are the labels of a network as its owner sees them: what they asked for, none
// of the server's.
func (s *Service) userLabels(labels map[string]string) map[string]string {
	out := map[string]string{}
	sel := s.cfg.selectors()
	for k, v := range labels {
		if _, server := sel[k]; server || strings.HasPrefix(k, "whalemountain.") {
			continue
		}
		out[k] = v
	}
	return out
}

// redactNetwork rewrites a network for its owner: their name for it and their containers'
// names, no engine options; mine maps their containers' IDs to their names.
func (s *Service) redactNetwork(n network.Inspect, name string, mine map[string]string) network.Inspect {
	n.Name = name
	n.Options = map[string]string{}
	n.Labels = s.userLabels(n.Labels)
	n.ConfigFrom = network.ConfigReference{}
	n.Peers = nil
	n.Services = nil
	cs := map[string]network.EndpointResource{}
	for cid, ep := range n.Containers {
		if cn, ok := mine[cid]; ok {
			ep.Name = cn
			cs[cid] = ep
		}
	}
	n.Containers = cs
	return n
}

// ownNames maps the user's containers' IDs to their names.
func (s *Service) ownNames(ctx context.Context, user string) (map[string]string, []container.Summary, error) {
	mine, err := s.ownContainers(ctx, user)
	if err != nil {
		return nil, nil, err
	}
	m := make(map[string]string, len(mine))
	for _, c := range mine {
		m[c.ID] = c.Labels[LabelName]
	}
	return m, mine, nil
}

// ListNetworks is GET /networks: the identity's own networks (their default one as
// "bridge"), filtered as the engine filters (name, id, label, driver, type, scope).
func (a *API) ListNetworks(ctx context.Context, id backend.Identity, filters map[string][]string) ([]byte, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	for k := range filters {
		switch k {
		case "name", "id", "label", "driver", "type", "scope":
		default:
			return nil, errorf(ErrInvalid, "invalid filter '%s'", shown(k))
		}
	}
	nets, err := a.svc.userNetworks(ctx, id.User)
	if err != nil {
		return nil, err
	}
	if len(nets) == 0 || nets[0].name != network.NetworkBridge {
		// Every engine has its bridge: the user's default network, made on first use.
		if _, err := a.svc.ensureNetwork(ctx, id.User); err != nil {
			return nil, err
		}
		if nets, err = a.svc.userNetworks(ctx, id.User); err != nil {
			return nil, err
		}
	}
	out := []network.Inspect{}
	for _, n := range nets {
		rn := a.svc.redactNetwork(network.Inspect{Network: n.summary.Network}, n.name, nil)
		rn.Containers = nil
		if networkMatches(rn, n.name == network.NetworkBridge, filters) {
			out = append(out, rn)
		}
	}
	return json.Marshal(out)
}

// networkMatches is the engine's network filters over a redacted network.
func networkMatches(n network.Inspect, builtin bool, filters map[string][]string) bool {
	match := func(k string, f func(v string) bool) bool {
		vs := filters[k]
		return len(vs) == 0 || slices.ContainsFunc(vs, f)
	}
	return match("name", func(v string) bool { return strings.Contains(n.Name, v) }) &&
		match("id", func(v string) bool { return strings.HasPrefix(n.ID, v) }) &&
		match("driver", func(v string) bool { return n.Driver == v }) &&
		match("scope", func(v string) bool { return n.Scope == v }) &&
		match("type", func(v string) bool { return (v == "builtin") == builtin && (v == "builtin" || v == "custom") }) &&
		(len(filters["label"]) == 0 || !slices.ContainsFunc(filters["label"], func(v string) bool {
			k, want, hasValue := strings.Cut(v, "=")
			got, ok := n.Labels[k]
			return !ok || hasValue && got != want
		}))
}

// InspectNetwork is GET /networks/{id} for one of the identity's own networks.
func (a *API) InspectNetwork(ctx context.Context, id backend.Identity, ref string) ([]byte, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	nets, err := a.svc.userNetworks(ctx, id.User)
	if err != nil {
		return nil, err
	}
	n, err := resolveNetwork(nets, ref)
	if err != nil {
		return nil, err
	}
	ne, err := a.svc.networkEngine()
	if err != nil {
		return nil, err
	}
	res, err := ne.NetworkInspect(ctx, n.summary.ID, client.NetworkInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil, noSuchNetwork(ref)
	}
	if err != nil {
		return nil, apiErr("inspect network "+shown(ref), err)
	}
	names, _, err := a.svc.ownNames(ctx, id.User)
	if err != nil {
		return nil, err
	}
	return json.Marshal(a.svc.redactNetwork(res.Network, n.name, names))
}

// apiNetworkCreate is the body of POST /networks/create as clients of every API version
// send it.
type apiNetworkCreate struct {
	Name           string
	CheckDuplicate bool
	Driver         string
	Scope          string
	EnableIPv4     *bool
	EnableIPv6     *bool
	IPAM           *network.IPAM
	Internal       bool
	Attachable     bool
	Ingress        bool
	ConfigOnly     bool
	ConfigFrom     *network.ConfigReference
	Options        map[string]string
	Labels         map[string]string
}

// checkNetworkCreate checks a network create request field by field.
func checkNetworkCreate(req apiNetworkCreate) (map[string]string, error) {
	switch req.Name {
	case network.NetworkBridge, network.NetworkHost, network.NetworkNone, "default":
		return nil, errorf(ErrPermission, "%s is a pre-defined network and cannot be created", req.Name)
	}
	if err := ValidateNetworkName(req.Name); err != nil {
		return nil, err
	}
	switch {
	case req.Driver != "" && req.Driver != "bridge":
		return nil, refused("Driver", "--driver", "only the bridge driver is available")
	case len(req.Options) > 0:
		return nil, refused("Options", "--opt", "driver options are not allowed: they configure the server's interfaces")
	case req.Scope != "" && req.Scope != "local":
		return nil, refused("Scope", "--scope", "only local networks are available")
	case req.EnableIPv6 != nil && *req.EnableIPv6:
		return nil, refused("EnableIPv6", "--ipv6", "IPv6 networks are not available")
	case req.EnableIPv4 != nil && !*req.EnableIPv4:
		return nil, refused("EnableIPv4", "--ipv4", "networks without IPv4 are not available")
	case req.Ingress:
		// Attachable is taken and dropped: it only means something in a swarm (docker
		// compose asks for it on every network).
		return nil, refused("Ingress", "--ingress", "swarm networks are not available")
	case req.ConfigOnly || req.ConfigFrom != nil && req.ConfigFrom.Network != "":
		return nil, refused("ConfigFrom", "--config-from", "configuration networks are not available")
	}
	if ip := req.IPAM; ip != nil {
		switch {
		case ip.Driver != "" && ip.Driver != "default":
			return nil, refused("IPAM.Driver", "--ipam-driver", "only the default address management is available")
		case len(ip.Config) > 0:
			return nil, refused("IPAM.Config", "--subnet", "addresses are the server's to give")
		case len(ip.Options) > 0:
			return nil, refused("IPAM.Options", "--ipam-opt", "address management options are not allowed")
		}
	}
	if len(req.Labels) > maxAPILabels {
		return nil, invalidField("Labels", "--label", fmt.Sprintf("at most %d labels", maxAPILabels))
	}
	labels := map[string]string{}
	for k, v := range req.Labels {
		if !apiLabelRE.MatchString(k) || len(v) > 4096 || strings.ContainsRune(v, 0) {
			return nil, invalidField("Labels", "--label", fmt.Sprintf("invalid label %s", shown(k)))
		}
		if !strings.HasPrefix(k, "whalemountain.") {
			labels[k] = v
		}
	}
	return labels, nil
}

// CreateNetwork is POST /networks/create: a bridge network of the identity's, its labels
// the server's over what they asked for. Audited as "network create".
func (a *API) CreateNetwork(ctx context.Context, id backend.Identity, body []byte) ([]byte, error) {
	var req apiNetworkCreate
	netID, err := a.createNetwork(ctx, id, body, &req)
	a.svc.record(id, "network create", id.User+"/"+shown(req.Name), err)
	if err != nil {
		return nil, err
	}
	return json.Marshal(network.CreateResponse{ID: netID})
}

func (a *API) createNetwork(ctx context.Context, id backend.Identity, body []byte, req *apiNetworkCreate) (string, error) {
	if err := checkIdentity(id); err != nil {
		return "", err
	}
	if err := json.Unmarshal(body, req); err != nil {
		return "", errorf(ErrInvalid, "the network request is not valid JSON")
	}
	extra, err := checkNetworkCreate(*req)
	if err != nil {
		return "", err
	}
	lock := a.svc.userLock(id.User)
	lock.Lock()
	defer lock.Unlock()
	nets, err := a.svc.userNetworks(ctx, id.User)
	if err != nil {
		return "", err
	}
	made := 0
	for _, n := range nets {
		if n.name == req.Name {
			return "", errorf(ErrConflict, "network with name %s already exists", req.Name)
		}
		if n.name != network.NetworkBridge {
			made++
		}
	}
	if made >= maxUserNetworks {
		return "", errorf(ErrQuota, "quota: at most %d networks per user besides your default one (you have %d)", maxUserNetworks, made)
	}
	labels := extra
	maps.Copy(labels, a.svc.labels(id.User))
	labels[LabelKind] = KindNetwork
	labels[LabelName] = req.Name
	res, err := a.svc.api.NetworkCreate(ctx, a.svc.cfg.userNetworkEngineName(id.User, req.Name), client.NetworkCreateOptions{
		Driver: "bridge", Internal: req.Internal, Labels: labels,
	})
	if err != nil {
		return "", apiErr("create network "+shown(req.Name), err)
	}
	return res.ID, nil
}

// RemoveNetwork is DELETE /networks/{id} for one of the identity's own networks; their
// default one stays (the engine's answer for its predefined networks). Audited as
// "network rm".
func (a *API) RemoveNetwork(ctx context.Context, id backend.Identity, ref string) error {
	err := a.removeNetwork(ctx, id, ref)
	a.svc.record(id, "network rm", id.User+"/"+shown(ref), err)
	return err
}

func (a *API) removeNetwork(ctx context.Context, id backend.Identity, ref string) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	nets, err := a.svc.userNetworks(ctx, id.User)
	if err != nil {
		return err
	}
	n, err := resolveNetwork(nets, ref)
	if err != nil {
		return err
	}
	if n.name == network.NetworkBridge {
		return errorf(ErrPermission, "bridge is a pre-defined network and cannot be removed")
	}
	ne, err := a.svc.networkEngine()
	if err != nil {
		return err
	}
	_, err = ne.NetworkRemove(ctx, n.summary.ID, client.NetworkRemoveOptions{})
	switch {
	case cerrdefs.IsNotFound(err):
		return noSuchNetwork(ref)
	case err != nil && (cerrdefs.IsConflict(err) || cerrdefs.IsPermissionDenied(err) || strings.Contains(err.Error(), "active endpoints")):
		return errorf(ErrConflict, "error while removing network: network %s has active endpoints", shown(ref))
	}
	return apiErr("remove network "+shown(ref), err)
}

// endpointAliases checks the endpoint settings of a connect or a create and returns the
// DNS aliases asked for (everything else in them is the server's).
func endpointAliases(ep *network.EndpointSettings, field string) ([]string, error) {
	if ep == nil {
		return nil, nil
	}
	if ep.IPAMConfig != nil && (ep.IPAMConfig.IPv4Address.IsValid() || ep.IPAMConfig.IPv6Address.IsValid() || len(ep.IPAMConfig.LinkLocalIPs) > 0) {
		return nil, refused(field, "--ip", "addresses are the server's to give")
	}
	if len(ep.Links) > 0 {
		return nil, refused(field, "--link", "links are not available")
	}
	if len(ep.DriverOpts) > 0 {
		return nil, refused(field, "--driver-opt", "driver options are not allowed")
	}
	var out []string
	for _, a := range ep.Aliases {
		if !nameRE.MatchString(a) {
			return nil, invalidField(field, "--alias", fmt.Sprintf("invalid alias %s", shown(a)))
		}
		if !slices.Contains(out, a) {
			out = append(out, a)
		}
	}
	if len(out) > maxAPIAliases {
		return nil, invalidField(field, "--alias", fmt.Sprintf("at most %d aliases", maxAPIAliases))
	}
	return out, nil
}

// ConnectNetwork is POST /networks/{id}/connect: one of the identity's containers onto one
// of their networks, known there by its name and the aliases asked for. Audited as
// "network connect".
func (a *API) ConnectNetwork(ctx context.Context, id backend.Identity, ref string, body []byte) error {
	var req network.ConnectRequest
	target := id.User + "/" + shown(ref)
	err := a.connectNetwork(ctx, id, ref, body, &req, &target)
	a.svc.record(id, "network connect", target, err)
	return err
}

func (a *API) connectNetwork(ctx context.Context, id backend.Identity, ref string, body []byte, req *network.ConnectRequest, target *string) error {
	if err := json.Unmarshal(body, req); err != nil {
		return errorf(ErrInvalid, "the connect request is not valid JSON")
	}
	n, err := a.svc.ownNetwork(ctx, id.User, ref)
	if err != nil {
		return err
	}
	c, err := a.own(ctx, id, req.Container)
	if err != nil {
		return err
	}
	name := c.Labels[LabelName]
	*target += " " + name
	aliases, err := endpointAliases(req.EndpointConfig, "EndpointConfig")
	if err != nil {
		return err
	}
	ne, err := a.svc.networkEngine()
	if err != nil {
		return err
	}
	aliases = append([]string{name}, slices.DeleteFunc(aliases, func(s string) bool { return s == name })...)
	_, err = ne.NetworkConnect(ctx, n.summary.ID, client.NetworkConnectOptions{Container: c.ID,
		EndpointConfig: &network.EndpointSettings{Aliases: aliases}})
	return apiErr(fmt.Sprintf("connect container %s to network %s", name, shown(ref)), err)
}

// DisconnectNetwork is POST /networks/{id}/disconnect: one of the identity's containers off
// one of their networks. Audited as "network disconnect".
func (a *API) DisconnectNetwork(ctx context.Context, id backend.Identity, ref string, body []byte) error {
	var req network.DisconnectRequest
	target := id.User + "/" + shown(ref)
	err := a.disconnectNetwork(ctx, id, ref, body, &req, &target)
	a.svc.record(id, "network disconnect", target, err)
	return err
}

func (a *API) disconnectNetwork(ctx context.Context, id backend.Identity, ref string, body []byte, req *network.DisconnectRequest, target *string) error {
	if err := json.Unmarshal(body, req); err != nil {
		return errorf(ErrInvalid, "the disconnect request is not valid JSON")
	}
	nets, err := a.svc.userNetworks(ctx, id.User)
	if err != nil {
		return err
	}
	n, err := resolveNetwork(nets, ref)
	if err != nil {
		return err
	}
	c, err := a.own(ctx, id, req.Container)
	if err != nil {
		return err
	}
	*target += " " + c.Labels[LabelName]
	ne, err := a.svc.networkEngine()
	if err != nil {
		return err
	}
	_, err = ne.NetworkDisconnect(ctx, n.summary.ID, client.NetworkDisconnectOptions{Container: c.ID, Force: req.Force})
	return apiErr(fmt.Sprintf("disconnect container %s from network %s", c.Labels[LabelName], shown(ref)), err)
}

// shownNetworks rewrites the endpoints of a container for its owner: their default network
// as "bridge", their own networks by their names, nothing else.
func (s *Service) shownNetworks(user string, in map[string]*network.EndpointSettings) map[string]*network.EndpointSettings {
	out := map[string]*network.EndpointSettings{}
	for engineName, ep := range in {
		if name, ok := s.userNetworkName(user, engineName); ok {
			out[name] = ep
		}
	}
	return out
}

// shownNetworkMode is how the user sees a container's network mode: the name of their
// network it is on ("default" for their default one), none, or another of their
// containers' network.
func (s *Service) shownNetworkMode(user, mode string, eps map[string]*network.EndpointSettings) string {
	if mode == "none" || strings.HasPrefix(mode, "container:") {
		return mode
	}
	for engineName, ep := range eps {
		if ep != nil && (ep.NetworkID == mode || engineName == mode) {
			if name, ok := s.userNetworkName(user, engineName); ok && name != network.NetworkBridge {
				return name
			}
		}
	}
	return "default"
}
