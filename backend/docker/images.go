package docker

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/distribution/reference"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/registry"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// ImagePolicy says which images users may pull. Patterns are globs over an image reference:
// '*' matches within one path component, '**' across components, '?' one character. A
// pattern matches a reference when it matches its normalised form
// ("docker.io/library/ubuntu:24.04"), its familiar form ("ubuntu:24.04"), or either without
// the tag ("ubuntu" allows every tag of ubuntu). Deny wins over Allow; an empty Allow allows
// everything not denied.
type ImagePolicy struct {
	Allow []string `yaml:"allow" json:"allow,omitempty"`
	Deny  []string `yaml:"deny" json:"deny,omitempty"`
	// RegistryNamespace is the registry host (and optional path) under which every user has a
	// namespace of their own, "<RegistryNamespace>/<user>/...": students may remove tags
	// there, and nowhere else, and the server's registry credential goes with their pulls
	// from there. Empty: students remove no tags at all.
	RegistryNamespace string `yaml:"registry_namespace" json:"registry_namespace,omitempty"`
	// InternalRegistries are registries on the server's own network that users may pull
	// from anyway, host[:port] exactly as image references name them
	// ("registry.ie.example:5000", "10.0.0.5"). A pull from any other registry whose host is
	// (or whose name resolves to) a loopback, private, link-local or otherwise non-public
	// address is refused. The hosts of RegistryNamespace and of the registry credentials
	// count as listed.
	InternalRegistries []string `yaml:"internal_registries" json:"internal_registries,omitempty"`
}

// Validate checks every pattern and the namespace; the error names the bad one.
func (p ImagePolicy) Validate() error {
	_, err := p.compile()
	return err
}

type compiledPolicy struct {
	allow, deny []*regexp.Regexp
	ns          string
	internal    map[string]bool // lower-cased registry host[:port] users may pull from though not public
}

func (p ImagePolicy) compile() (compiledPolicy, error) {
	var c compiledPolicy
	for _, l := range []struct {
		field string
		in    []string
		out   *[]*regexp.Regexp
	}{{"allow", p.Allow, &c.allow}, {"deny", p.Deny, &c.deny}} {
		for _, pat := range l.in {
			re, err := globRE(pat)
			if err != nil {
				return c, fmt.Errorf("images.%s: %w", l.field, err)
			}
			*l.out = append(*l.out, re)
		}
	}
	c.internal = map[string]bool{}
	ns := strings.TrimSuffix(p.RegistryNamespace, "/")
	if ns != "" {
		// The namespace must be a registry host (with a dot or port, or localhost) and path.
		named, err := reference.ParseNormalizedNamed(ns + "/u/x")
		if err != nil || reference.Domain(named) == "docker.io" || !strings.HasPrefix(named.Name(), ns+"/") {
			return c, fmt.Errorf("images.registry_namespace: %q is not a registry host such as registry.example.org", p.RegistryNamespace)
		}
		c.internal[strings.ToLower(reference.Domain(named))] = true
	}
	c.ns = ns
	for i, h := range p.InternalRegistries {
		d, ok := registryDomain(h)
		if !ok {
			return c, fmt.Errorf("images.internal_registries[%d]: %s is not a registry host[:port] such as registry.example.org:5000", i, shown(h))
		}
		c.internal[d] = true
	}
	return c, nil
}

var globCharsRE = regexp.MustCompile(`^[a-zA-Z0-9._:/@*?-]{1,255}$`)

// globRE turns a policy glob into an anchored regular expression.
func globRE(pat string) (*regexp.Regexp, error) {
	if !globCharsRE.MatchString(pat) {
		return nil, fmt.Errorf("invalid pattern %s: use image reference characters and * ** ?", shown(pat))
	}
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pat); i++ {
		switch {
		case strings.HasPrefix(pat[i:], "**"):
			b.WriteString(".*")
			i++
		case pat[i] == '*':
			b.WriteString("[^/]*")
		case pat[i] == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(pat[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.Compile(b.String())
}

// allows reports whether the policy lets named be pulled.
func (c compiledPolicy) allows(named reference.Named) bool {
	forms := refForms(named)
	match := func(res []*regexp.Regexp) bool {
		for _, re := range res {
			for _, f := range forms {
				if re.MatchString(f) {
					return true
				}
			}
		}
		return false
	}
	if match(c.deny) {
		return false
	}
	return len(c.allow) == 0 || match(c.allow)
}

// refForms are the strings a policy pattern is matched against.
func refForms(named reference.Named) []string {
	full := reference.TagNameOnly(named)
	return []string{full.String(), reference.FamiliarString(full), named.Name(), reference.FamiliarName(named)}
}

// Allows reports whether the policy lets ref be pulled; false for a bad reference or policy.
// The services decide; this is for display and checks at the edge.
func (p ImagePolicy) Allows(ref string) bool {
	c, err := p.compile()
	if err != nil {
		return false
	}
	named, err := parseImageRef(ref)
	return err == nil && c.allows(named)
}

// MayRemove reports whether the ownership rule lets id remove the tag ref (in-use aside):
// TAs any tag, students only tags under "<RegistryNamespace>/<user>/".
func (p ImagePolicy) MayRemove(id backend.Identity, ref string) bool {
	named, err := parseImageRef(ref)
	if err != nil || !id.Valid() {
		return false
	}
	if _, ok := named.(reference.Digested); ok {
		return false
	}
	return mayRemoveTag(id, p.RegistryNamespace, reference.TagNameOnly(named))
}

// mayRemoveTag is the ownership rule for removing a tag: TAs any tag, students only tags in
// their own namespace (ownNamespace).
func mayRemoveTag(id backend.Identity, ns string, named reference.Named) bool {
	return id.IsTA() || ownNamespace(id, ns, named)
}

// ownNamespace reports whether named lies in id's own namespace "<ns>/<user>/..." of the
// registry namespace ns (host[:port][/path]); never when ns is empty. Image paths are lower
// case, so the user name is compared lower-cased. Being a TA makes no difference here: the
// callers decide what TAs may do.
func ownNamespace(id backend.Identity, ns string, named reference.Named) bool {
	ns = strings.TrimSuffix(ns, "/")
	if ns == "" || !id.Valid() || id.User == "" {
		return false
	}
	prefix := strings.ToLower(ns + "/" + id.User + "/")
	return strings.HasPrefix(strings.ToLower(named.Name()), prefix)
}

// Image is one image on the engine as users see it.
type Image struct {
	Tags       []string  `json:"tags"` // familiar "repo:tag" forms; empty when untagged
	ID         string    `json:"id"`   // short: 12 hex digits
	Size       int64     `json:"size"` // bytes
	Created    time.Time `json:"created"`
	InUseByYou bool      `json:"in_use_by_you"` // one of the caller's containers uses it
}

// PullProgress is one step of a pull: a layer (ID) changing state, or a line about the whole
// image (ID empty: "Pulling from library/ubuntu", "Digest: sha256:...").
type PullProgress struct {
	ID      string `json:"id,omitempty"`
	Status  string `json:"status"`
	Current int64  `json:"current,omitempty"` // bytes done, while downloading or extracting
	Total   int64  `json:"total,omitempty"`
}

// RegistryCredential lets the server pull private images from one registry, such as the
// department GitLab's, with a deploy or registry token. It is handed to the engine with a
// pull from that registry (never shown to users: String leaves the password out) when the
// caller is a TA, when the image is in the caller's own namespace under the policy's
// RegistryNamespace ("<RegistryNamespace>/<user>/...", the same rule as for removing tags),
// or when it matches Shared. Other students' images are pulled without it, so only public
// ones come.
type RegistryCredential struct {
	Registry string // host[:port], "registry.example.org"
	Username string
	Password string
	// Shared are patterns (the policy's globs) of images every user may pull with the
	// credential, such as "registry.example.org/courses/**".
	Shared []string
}

// String names the credential without its password.
func (c RegistryCredential) String() string {
	return c.Username + "@" + c.Registry
}

// GoString is String, so %#v does not print the password either.
func (c RegistryCredential) GoString() string { return c.String() }

var registryHostRE = regexp.MustCompile(`^([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)*[a-z0-9]([a-z0-9-]*[a-z0-9])?(:[0-9]{1,5})?$`)

// registryAuth is one credential ready for use.
type registryAuth struct {
	header string           // X-Registry-Auth
	shared []*regexp.Regexp // images anyone may pull with it
}

// encodeCredentials checks creds and returns each registry's credential ready for use.
func encodeCredentials(creds []RegistryCredential) (map[string]registryAuth, error) {
	out := map[string]registryAuth{}
	for i, c := range creds {
		host := strings.ToLower(c.Registry)
		switch {
		case !registryHostRE.MatchString(host) || (!strings.ContainsAny(host, ".:") && host != "localhost"):
			return nil, fmt.Errorf("images.registry_auth[%d].registry: %s is not a registry host such as registry.example.org", i, shown(c.Registry))
		case c.Username == "":
			return nil, fmt.Errorf("images.registry_auth[%d].username: empty", i)
		case c.Password == "":
			return nil, fmt.Errorf("images.registry_auth[%d]: no token for %s", i, host)
		case out[host].header != "":
			return nil, fmt.Errorf("images.registry_auth[%d].registry: %s is given twice", i, host)
		}
		js, err := json.Marshal(registry.AuthConfig{Username: c.Username, Password: c.Password, ServerAddress: host})
		if err != nil {
			return nil, err
		}
		ra := registryAuth{header: base64.URLEncoding.EncodeToString(js)}
		for _, pat := range c.Shared {
			re, err := globRE(pat)
			if err != nil {
				return nil, fmt.Errorf("images.registry_auth[%d].shared: %w", i, err)
			}
			ra.shared = append(ra.shared, re)
		}
		out[host] = ra
	}
	return out, nil
}

// authFor is the credential header a pull of named by id carries, or "" for none: TAs,
// the caller's own namespace (ownNamespace) and the credential's shared images.
func (is *ImageService) authFor(id backend.Identity, named reference.Named) string {
	ra, ok := is.auth[strings.ToLower(reference.Domain(named))]
	if !ok {
		return ""
	}
	if id.IsTA() || ownNamespace(id, is.policy.ns, named) {
		return ra.header
	}
	for _, re := range ra.shared {
		for _, f := range refForms(named) {
			if re.MatchString(f) {
				return ra.header
			}
		}
	}
	return ""
}

// ImageService lists, pulls and removes images on the Service's engine under a policy.
// It is safe for concurrent use.
type ImageService struct {
	svc    *Service
	policy compiledPolicy
	auth   map[string]registryAuth // by registry host
	lookup LookupFunc              // resolves registry host names
	log    *slog.Logger            // what the engine answered to failed requests

	mu      sync.Mutex
	flights map[string]*pullFlight // by normalised reference
}

// NewImageService puts policy over svc's images, pulling from the registries in creds with
// those credentials; a bad pattern, host or credential is an error. The hosts of creds may
// be pulled from even when they are on the server's own network.
func NewImageService(svc *Service, policy ImagePolicy, creds []RegistryCredential, opts ...ImageOption) (*ImageService, error) {
	cp, err := policy.compile()
	if err != nil {
		return nil, err
	}
	auth, err := encodeCredentials(creds)
	if err != nil {
		return nil, err
	}
	for host := range auth {
		cp.internal[host] = true
	}
	o := imageOptions{lookup: systemLookup, log: slog.Default()}
	for _, opt := range opts {
		opt(&o)
	}
	return &ImageService{svc: svc, policy: cp, auth: auth, lookup: o.lookup, log: o.log, flights: map[string]*pullFlight{}}, nil
}

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// familiarRef is ref in its familiar form, or ref as typed when it does not parse.
func familiarRef(ref string) string {
	if n, err := reference.ParseNormalizedNamed(ref); err == nil {
		return reference.FamiliarString(reference.TagNameOnly(n))
	}
	return ref
}

// Images lists every image on the engine; InUseByYou looks only at the caller's containers.
func (is *ImageService) Images(ctx context.Context, id backend.Identity) ([]Image, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	ie, err := is.svc.imageAPI()
	if err != nil {
		return nil, err
	}
	res, err := ie.ImageList(ctx, client.ImageListOptions{})
	if err != nil {
		return nil, is.engineFailure("list images", err)
	}
	mine, err := is.svc.ownContainers(ctx, id.User)
	if err != nil {
		return nil, is.engineFailure("list images", err)
	}
	usedIDs, usedRefs := map[string]bool{}, map[string]bool{}
	for _, c := range mine {
		usedIDs[c.ImageID] = true
		usedRefs[familiarRef(c.Image)] = true
	}
	out := make([]Image, 0, len(res.Items))
	for _, sum := range res.Items {
		img := Image{ID: shortID(sum.ID), Size: sum.Size, Created: time.Unix(sum.Created, 0).UTC(), InUseByYou: usedIDs[sum.ID]}
		for _, t := range sum.RepoTags {
			if t == "" || t == "<none>:<none>" {
				continue
			}
			f := familiarRef(t)
			img.Tags = append(img.Tags, f)
			if usedRefs[f] {
				img.InUseByYou = true
			}
		}
		slices.Sort(img.Tags)
		out = append(out, img)
	}
	slices.SortFunc(out, func(a, b Image) int {
		ka, kb := "\xff"+a.ID, "\xff"+b.ID // untagged last
		if len(a.Tags) > 0 {
			ka = a.Tags[0]
		}
		if len(b.Tags) > 0 {
			kb = b.Tags[0]
		}
		return strings.Compare(ka, kb)
	})
	return out, nil
}

// parseImageRef parses what a user typed as an image reference.
func parseImageRef(ref string) (reference.Named, error) {
	if ref == "" {
		return nil, errorf(ErrInvalid, "no image given")
	}
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil || len(ref) > 255 {
		return nil, errorf(ErrInvalid, "invalid image reference %s", shown(ref))
	}
	return named, nil
}

// pullFlight is one pull in progress that callers of the same reference join.
type pullFlight struct {
	cancel context.CancelFunc
	done   chan struct{}
	err    error

	mu        sync.Mutex
	subs      map[*pullSub]bool
	waiting   int                     // callers still waiting; at 0 the pull is abandoned
	abandoned bool                    // waiting reached 0: nobody may join any more
	last      map[string]PullProgress // last state per layer, replayed to those who join
	order     []string
}

func (f *pullFlight) emit(p PullProgress) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, seen := f.last[p.ID]; !seen {
		f.order = append(f.order, p.ID)
	}
	f.last[p.ID] = p
	for sub := range f.subs {
		sub.push(p)
	}
}

// join adds a caller, and a subscriber for fn (nil: none) that first gets the current state
// of every layer.
func (f *pullFlight) join(fn func(PullProgress)) (sub *pullSub, leave func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waiting++
	if fn != nil {
		sub = newPullSub(fn)
		for _, id := range f.order {
			sub.push(f.last[id])
		}
		f.subs[sub] = true
	}
	return sub, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		delete(f.subs, sub)
		f.waiting--
		if f.waiting == 0 {
			f.abandoned = true
			f.cancel()
		}
	}
}

// pullSub hands a flight's progress to one caller from a goroutine of its own, so a slow
// reader holds up nobody else. While it lags, byte counts of one layer step are folded into
// the latest, so what waits for it stays small.
type pullSub struct {
	fn    func(PullProgress)
	mu    sync.Mutex
	queue []PullProgress
	wake  chan struct{} // capacity 1
	stop  chan struct{} // closed: deliver what is queued, then end
	quit  chan struct{} // closed: end now
	ended chan struct{}
}

func newPullSub(fn func(PullProgress)) *pullSub {
	s := &pullSub{fn: fn, wake: make(chan struct{}, 1), stop: make(chan struct{}), quit: make(chan struct{}), ended: make(chan struct{})}
	go s.run()
	return s
}

func (s *pullSub) push(p PullProgress) {
	s.mu.Lock()
	folded := false
	for i := len(s.queue) - 1; i >= 0; i-- {
		if s.queue[i].ID == p.ID {
			if s.queue[i].Status == p.Status {
				s.queue[i], folded = p, true
			}
			break
		}
	}
	if !folded {
		s.queue = append(s.queue, p)
	}
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *pullSub) deliver() {
	s.mu.Lock()
	q := s.queue
	s.queue = nil
	s.mu.Unlock()
	for _, p := range q {
		select {
		case <-s.quit:
			return
		default:
		}
		s.fn(p)
	}
}

func (s *pullSub) run() {
	defer close(s.ended)
	for {
		select {
		case <-s.quit:
			return
		case <-s.wake:
			s.deliver()
		case <-s.stop:
			s.deliver()
			return
		}
	}
}

// finish delivers what is queued and waits for it, unless ctx ends first.
func (s *pullSub) finish(ctx context.Context) {
	if s == nil {
		return
	}
	close(s.stop)
	select {
	case <-s.ended:
	case <-ctx.Done():
		close(s.quit)
	}
}

// abort ends delivery at once; fn may still be running when it returns.
func (s *pullSub) abort() {
	if s != nil {
		close(s.quit)
	}
}

// Pull fetches ref from its registry, if the policy allows it, calling progress (which may
// be nil) for each step, from another goroutine, one call at a time. Callers pulling the same
// reference at the same time share one pull and all see its progress (a late one first gets
// each layer's state so far); the pull is abandoned when every caller's ctx has ended. When
// Pull returns because the pull ended, every step has been delivered; when it returns
// because ctx ended, a call of progress may still be under way. Each caller's pull is
// audited as "pull".
func (is *ImageService) Pull(ctx context.Context, id backend.Identity, ref string, progress func(PullProgress)) error {
	err := is.pull(ctx, id, ref, progress)
	is.svc.record(id, "pull", shown(familiarRef(ref)), err)
	return err
}

func (is *ImageService) pull(ctx context.Context, id backend.Identity, ref string, progress func(PullProgress)) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	if err := is.svc.admit(); err != nil {
		return err
	}
	named, err := parseImageRef(ref)
	if err != nil {
		return err
	}
	full := reference.TagNameOnly(named)
	familiar := reference.FamiliarString(full)
	if !is.policy.allows(named) {
		return errorf(ErrPermission, "image %s is not allowed on this server", familiar)
	}
	if err := is.checkRegistry(ctx, named); err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("pull %s: %w", familiar, ctx.Err())
		}
		return &wrapped{kind: ErrPermission, msg: "pull " + familiar + ": " + err.Error(), err: err}
	}
	ie, err := is.svc.imageAPI()
	if err != nil {
		return err
	}

	key := full.String()
	auth := is.authFor(id, named)
	flightKey := key
	if auth != "" {
		flightKey += " with credentials" // never joined by a pull without them, nor the reverse
	}
	is.mu.Lock()
	f, ok := is.flights[flightKey]
	if ok {
		f.mu.Lock()
		ok = !f.abandoned
		f.mu.Unlock()
	}
	if !ok {
		pctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &pullFlight{cancel: cancel, done: make(chan struct{}), subs: map[*pullSub]bool{}, last: map[string]PullProgress{}}
		is.flights[flightKey] = f
		go func() {
			f.err = is.pullOnce(pctx, ie, key, familiar, auth, f.emit)
			is.mu.Lock()
			if is.flights[flightKey] == f {
				delete(is.flights, flightKey)
			}
			is.mu.Unlock()
			cancel()
			close(f.done)
		}()
	}
	sub, leave := f.join(progress)
	is.mu.Unlock()
	defer leave()

	select {
	case <-f.done:
		sub.finish(ctx) // every step reaches the caller before Pull returns
		return f.err
	case <-ctx.Done():
		sub.abort()
		return fmt.Errorf("pull %s: %w", familiar, ctx.Err())
	}
}

// pullOnce asks the engine to pull ref and follows its progress stream to the end.
func (is *ImageService) pullOnce(ctx context.Context, ie imageEngine, ref, familiar, auth string, emit func(PullProgress)) error {
	resp, err := ie.ImagePull(ctx, ref, client.ImagePullOptions{RegistryAuth: auth})
	if err == nil {
		defer resp.Close()
		err = DecodePullStream(resp, emit)
	}
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("pull %s: %w", familiar, ctx.Err())
	}
	return pullErr(is.log, familiar, err)
}

// What a user is told about a failed pull. The engine's own text (often the registry's
// answer, which may be anyone's web page) goes only to the server's log.
const (
	pullNotFound    = "not found in its registry, or you may not pull it"
	pullDenied      = "the registry refused access"
	pullUnreachable = "the registry could not be reached"
	pullRefused     = "the registry or Docker refused the pull"
)

// pullReason sorts the error of a failed pull into one of the pull* lines, with the kind of
// error it is (nil: none in particular).
func pullReason(err error) (reason string, kind error) {
	var se *streamError
	if !errors.As(err, &se) {
		switch {
		case cerrdefs.IsNotFound(err):
			return pullNotFound, ErrNoImage
		case cerrdefs.IsUnauthorized(err), cerrdefs.IsPermissionDenied(err):
			return pullDenied, nil
		}
	}
	text := strings.ToLower(err.Error())
	has := func(words ...string) bool {
		return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(text, w) })
	}
	switch {
	case has("manifest unknown", "not found", "name unknown", "repository does not exist", "pull access denied"):
		return pullNotFound, ErrNoImage
	case has("unauthorized", "denied", "authentication required", "forbidden"):
		return pullDenied, nil
	case has("no such host", "connection refused", "dial tcp", "timeout", "timed out", "deadline exceeded",
		"network is unreachable", "host is unreachable", "no route to host", "connection reset",
		"server misbehaving", "name resolution"):
		return pullUnreachable, nil
	}
	return pullRefused, nil
}

// pullErr words a failed pull in one line of the project's own; the engine's text is logged.
func pullErr(log *slog.Logger, familiar string, err error) error {
	var se *streamError
	if !errors.As(err, &se) && client.IsErrConnectionFailed(err) {
		return &wrapped{kind: ErrUnavailable, msg: "pull " + familiar + ": Docker unreachable", err: err}
	}
	reason, kind := pullReason(err)
	log.Warn("image pull failed", "image", familiar, "reason", reason, "err", err.Error())
	return &wrapped{kind: kind, msg: "pull " + familiar + ": " + reason, err: err}
}

// engineFailure is a failed engine call as the user sees it: Docker unreachable, the
// context's end, or that Docker refused; what the engine said goes only to the log. Errors
// this package has already worded for the user (the Service's) pass unchanged.
func (is *ImageService) engineFailure(what string, err error) error {
	switch err.(type) {
	case nil:
		return nil
	case *userError, *wrapped:
		return err
	}
	switch {
	case client.IsErrConnectionFailed(err):
		return &wrapped{kind: ErrUnavailable, msg: what + ": Docker unreachable", err: err}
	case errors.Is(err, context.Canceled):
		return &wrapped{msg: what + ": " + context.Canceled.Error(), err: err}
	case errors.Is(err, context.DeadlineExceeded):
		return &wrapped{msg: what + ": " + context.DeadlineExceeded.Error(), err: err}
	}
	is.log.Warn("Docker refused a request", "what", what, "err", err.Error())
	return &wrapped{msg: what + ": Docker refused the request", err: err}
}

// streamError is an error the engine reported inside a progress stream.
type streamError struct{ msg string }

func (e *streamError) Error() string { return e.msg }

// pullMessage is one message of the engine's JSON progress stream (the jsonmessage format).
type pullMessage struct {
	Status         string `json:"status"`
	ID             string `json:"id"`
	ProgressDetail *struct {
		Current int64 `json:"current"`
		Total   int64 `json:"total"`
	} `json:"progressDetail"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Error string `json:"error"`
}

// DecodePullStream reads a pull's JSON message stream from r to its end, calling emit for
// every progress message. An error message in the stream ends it with that error; a stream
// cut short is an error too.
func DecodePullStream(r io.Reader, emit func(PullProgress)) error {
	dec := json.NewDecoder(r)
	for {
		var m pullMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			if errors.Is(err, io.ErrUnexpectedEOF) {
				return fmt.Errorf("progress stream cut short")
			}
			return fmt.Errorf("unreadable progress stream: %w", err)
		}
		if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
			return &streamError{msg: m.ErrorDetail.Message}
		}
		if m.Error != "" {
			return &streamError{msg: m.Error}
		}
		if m.Status == "" {
			continue
		}
		p := PullProgress{ID: m.ID, Status: m.Status}
		if m.ProgressDetail != nil {
			p.Current, p.Total = m.ProgressDetail.Current, m.ProgressDetail.Total
		}
		if emit != nil {
			emit(p)
		}
	}
}

// MayRemove reports whether the ownership rule lets id remove the tag ref, as RemoveImage
// decides before anything else: TAs any tag, students only the tags of their own registry
// namespace. Whether the tag is in use is not looked at.
func (is *ImageService) MayRemove(id backend.Identity, ref string) bool {
	if checkIdentity(id) != nil {
		return false
	}
	named, err := parseImageRef(ref)
	if err != nil {
		return false
	}
	if _, ok := named.(reference.Digested); ok {
		return false
	}
	return mayRemoveTag(id, is.policy.ns, reference.TagNameOnly(named))
}

// RemoveImage removes one tag (never by ID or digest, never forced; other tags of the image
// stay). Students may remove only tags in their own namespace: every other tag, whether it
// exists, is in use or not, gets the same "not yours" answer, so nobody learns what others'
// containers use. A tag that a container, anyone's, was made from is refused, and so is the
// last tag of an image any container uses. Audited as "rmi".
func (is *ImageService) RemoveImage(ctx context.Context, id backend.Identity, ref string) error {
	err := is.removeImage(ctx, id, ref)
	is.svc.record(id, "rmi", shown(familiarRef(ref)), err)
	return err
}

func (is *ImageService) removeImage(ctx context.Context, id backend.Identity, ref string) error {
	if err := checkIdentity(id); err != nil {
		return err
	}
	named, err := parseImageRef(ref)
	if err != nil {
		return err
	}
	if _, ok := named.(reference.Digested); ok {
		return errorf(ErrInvalid, "remove a tag, not a digest: %s", shown(ref))
	}
	full := reference.TagNameOnly(named)
	familiar := reference.FamiliarString(full)
	// Ownership first: the answer for another's tag must not depend on the engine's state.
	if !mayRemoveTag(id, is.policy.ns, full) {
		return errorf(ErrPermission, "image %s is not yours to remove", familiar)
	}
	ie, err := is.svc.imageAPI()
	if err != nil {
		return err
	}
	img, err := is.svc.localImage(ctx, familiar)
	if err != nil {
		return is.engineFailure("remove image "+familiar, err)
	}
	inUse, err := is.tagInUse(ctx, ie, familiar, img.ID, len(img.RepoTags) <= 1)
	if err != nil {
		return is.engineFailure("remove image "+familiar, err)
	}
	if inUse {
		return errorf(ErrConflict, "image %s is in use by a container", familiar)
	}
	_, err = ie.ImageRemove(ctx, full.String(), client.ImageRemoveOptions{})
	switch {
	case err == nil:
		return nil
	case cerrdefs.IsConflict(err):
		return errorf(ErrConflict, "image %s is in use by a container", familiar)
	case cerrdefs.IsNotFound(err):
		return errorf(ErrNoImage, "image %s not found on this server", familiar)
	}
	return is.engineFailure("remove image "+familiar, err)
}

// tagInUse reports whether any container (of any user, managed or not) was made from the tag,
// or, when it is the image's last tag, uses the image at all.
func (is *ImageService) tagInUse(ctx context.Context, ie imageEngine, familiar, imageID string, lastTag bool) (bool, error) {
	res, err := ie.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: client.Filters{}.Add("ancestor", imageID)})
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(res.Items, func(c container.Summary) bool {
		return familiarRef(c.Image) == familiar || (lastTag && c.ImageID == imageID)
	}), nil
}
