// Package dockerapi is the per-user Docker Engine API door: the Docker Engine API's HTTP
// spoken to one authenticated user over their SSH connection (`docker system dial-stdio`
// as an SSH command, which is what the docker CLI's ssh:// transport runs, and OpenSSH's
// forwarding of a unix socket), so the docker CLI, docker compose, lazydocker and VS Code
// work against the server with nothing installed.
//
// It only translates HTTP: the routes of the API it offers (an allow-list; everything else
// is a 403 with a one-line {"message": ...}), version prefixes, query parameters, status
// codes, streams and the hijacked connections of attach and exec. Every decision — whose
// object a name or ID is, what a create may contain, which images may be pulled, tagged,
// pushed or built — is the backend's (backend/docker's API), over the same rules as every
// other door.
package dockerapi

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
)

// Backend is what the door needs of the backend: backend/docker's API implements it. Every
// call carries the identity and authorises it.
type Backend interface {
	Version(ctx context.Context) (docker.APIVersion, error)
	SupportsVersion(ctx context.Context, v string) (docker.APIVersion, bool, error)
	VersionJSON(ctx context.Context, id backend.Identity) ([]byte, error)
	InfoJSON(ctx context.Context, id backend.Identity) ([]byte, error)

	ListContainers(ctx context.Context, id backend.Identity, opts docker.APIListOptions) ([]byte, error)
	InspectContainer(ctx context.Context, id backend.Identity, ref string, size bool) ([]byte, error)
	CreateContainer(ctx context.Context, id backend.Identity, name string, body []byte) ([]byte, error)
	StartContainer(ctx context.Context, id backend.Identity, ref string) error
	StopContainer(ctx context.Context, id backend.Identity, ref string) error
	RestartContainer(ctx context.Context, id backend.Identity, ref string) error
	KillContainer(ctx context.Context, id backend.Identity, ref, signal string) error
	PauseContainer(ctx context.Context, id backend.Identity, ref string, pause bool) error
	RenameContainer(ctx context.Context, id backend.Identity, ref, name string) error
	RemoveContainer(ctx context.Context, id backend.Identity, ref string, force bool) error
	WaitContainer(ctx context.Context, id backend.Identity, ref, condition string) (func() ([]byte, error), error)
	ResizeContainer(ctx context.Context, id backend.Identity, ref string, width, height int) error
	TopContainer(ctx context.Context, id backend.Identity, ref, psArgs string) ([]byte, error)
	ContainerLogs(ctx context.Context, id backend.Identity, ref string, opts docker.APILogOptions) (io.ReadCloser, bool, error)
	ContainerStats(ctx context.Context, id backend.Identity, ref string, stream, oneShot bool) (io.ReadCloser, error)
	AttachContainer(ctx context.Context, id backend.Identity, ref string, opts docker.APIAttachOptions) (*docker.APIStream, error)
	StatPath(ctx context.Context, id backend.Identity, ref, path string) (string, error)
	GetArchive(ctx context.Context, id backend.Identity, ref, path string) (io.ReadCloser, string, error)
	PutArchive(ctx context.Context, id backend.Identity, ref, path string, noOverwriteDirNonDir, copyUIDGID bool, r io.Reader) error

	CreateExec(ctx context.Context, id backend.Identity, ref string, body []byte) ([]byte, error)
	StartExec(ctx context.Context, id backend.Identity, execID string, body []byte) (*docker.APIStream, error)
	ResizeExec(ctx context.Context, id backend.Identity, execID string, width, height int) error
	InspectExec(ctx context.Context, id backend.Identity, execID string) ([]byte, error)

	ListImages(ctx context.Context, id backend.Identity, all bool, filters map[string][]string) ([]byte, error)
	InspectImage(ctx context.Context, id backend.Identity, ref string) ([]byte, error)
	ImageHistory(ctx context.Context, id backend.Identity, ref string) ([]byte, error)
	PullImage(ctx context.Context, id backend.Identity, ref string, emit func([]byte)) error
	TagImage(ctx context.Context, id backend.Identity, source, repo, tag string) error
	PushImage(ctx context.Context, id backend.Identity, name, tag, auth string, emit func([]byte)) error
	RemoveImage(ctx context.Context, id backend.Identity, ref string, force bool) ([]byte, error)
	Build(ctx context.Context, id backend.Identity, params map[string][]string, buildContext io.Reader, emit func([]byte)) error

	ListNetworks(ctx context.Context, id backend.Identity, filters map[string][]string) ([]byte, error)
	InspectNetwork(ctx context.Context, id backend.Identity, ref string) ([]byte, error)
	CreateNetwork(ctx context.Context, id backend.Identity, body []byte) ([]byte, error)
	RemoveNetwork(ctx context.Context, id backend.Identity, ref string) error
	ConnectNetwork(ctx context.Context, id backend.Identity, ref string, body []byte) error
	DisconnectNetwork(ctx context.Context, id backend.Identity, ref string, body []byte) error

	ListVolumes(ctx context.Context, id backend.Identity) ([]byte, error)
	CreateVolume(ctx context.Context, id backend.Identity, body []byte) ([]byte, error)
	InspectVolume(ctx context.Context, id backend.Identity, name string) ([]byte, error)
	RemoveVolume(ctx context.Context, id backend.Identity, name string, force bool) error

	Events(ctx context.Context, id backend.Identity, filters docker.APIEventFilters, until time.Time) (<-chan []byte, func(), error)

	RecordRefusal(id backend.Identity, action, target string, err error)
}

// Options configure a Handler.
type Options struct {
	Logger *slog.Logger // nil: slog.Default()
}

// handler is the API of one identity.
type handler struct {
	b   Backend
	id  backend.Identity
	log *slog.Logger
}

// Handler is the Docker Engine API for id: the routes below, answered by b; every other
// request is a 403.
func Handler(b Backend, id backend.Identity, opts Options) http.Handler {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &handler{b: b, id: id, log: log}
}

// route is one endpoint: a method, a path pattern (its groups are the handler's args).
type route struct {
	method string
	re     *regexp.Regexp
	serve  func(h *handler, w http.ResponseWriter, r *http.Request, args []string)
}

const (
	idPart   = `([^/]+)`
	namePart = `(.+)`
)

// routes are the endpoints the door offers; anything else is refused.
var routes = []route{
	{"GET", re(`/_ping`), (*handler).ping},
	{"HEAD", re(`/_ping`), (*handler).ping},
	{"GET", re(`/version`), (*handler).version},
	{"GET", re(`/info`), (*handler).info},

	{"GET", re(`/containers/json`), (*handler).listContainers},
	{"POST", re(`/containers/create`), (*handler).createContainer},
	{"GET", re(`/containers/` + idPart + `/json`), (*handler).inspectContainer},
	{"POST", re(`/containers/` + idPart + `/(start|stop|restart|kill|pause|unpause|rename)`), (*handler).containerAction},
	{"POST", re(`/containers/` + idPart + `/wait`), (*handler).waitContainer},
	{"POST", re(`/containers/` + idPart + `/resize`), (*handler).resizeContainer},
	{"POST", re(`/containers/` + idPart + `/attach`), (*handler).attachContainer},
	{"POST", re(`/containers/` + idPart + `/exec`), (*handler).createExec},
	{"DELETE", re(`/containers/` + idPart), (*handler).removeContainer},
	{"GET", re(`/containers/` + idPart + `/logs`), (*handler).containerLogs},
	{"GET", re(`/containers/` + idPart + `/top`), (*handler).topContainer},
	{"GET", re(`/containers/` + idPart + `/stats`), (*handler).containerStats},
	{"HEAD", re(`/containers/` + idPart + `/archive`), (*handler).statPath},
	{"GET", re(`/containers/` + idPart + `/archive`), (*handler).getArchive},
	{"PUT", re(`/containers/` + idPart + `/archive`), (*handler).putArchive},

	{"POST", re(`/exec/` + idPart + `/start`), (*handler).startExec},
	{"POST", re(`/exec/` + idPart + `/resize`), (*handler).resizeExec},
	{"GET", re(`/exec/` + idPart + `/json`), (*handler).inspectExec},

	{"GET", re(`/images/json`), (*handler).listImages},
	{"POST", re(`/images/create`), (*handler).pullImage},
	{"POST", re(`/build`), (*handler).build},
	{"GET", re(`/images/` + namePart + `/json`), (*handler).inspectImage},
	{"GET", re(`/images/` + namePart + `/history`), (*handler).imageHistory},
	{"POST", re(`/images/` + namePart + `/tag`), (*handler).tagImage},
	{"POST", re(`/images/` + namePart + `/push`), (*handler).pushImage},
	{"DELETE", re(`/images/` + namePart), (*handler).removeImage},

	{"GET", re(`/volumes`), (*handler).listVolumes},
	{"POST", re(`/volumes/create`), (*handler).createVolume},
	{"GET", re(`/volumes/` + idPart), (*handler).inspectVolume},
	{"DELETE", re(`/volumes/` + idPart), (*handler).removeVolume},

	{"GET", re(`/events`), (*handler).events},

	// The user's own networks: their default one ("bridge") and those they made.
	{"GET", re(`/networks`), (*handler).listNetworks},
	{"POST", re(`/networks/create`), (*handler).createNetwork},
	{"GET", re(`/networks/` + idPart), (*handler).inspectNetwork},
	{"DELETE", re(`/networks/` + idPart), (*handler).removeNetwork},
	{"POST", re(`/networks/` + idPart + `/(connect|disconnect)`), (*handler).connectNetwork},
	// No plugins, which `docker inspect NAME` looks through last.
	{"GET", re(`/plugins`), (*handler).listPlugins},
	{"GET", re(`/plugins/` + namePart + `/json`), (*handler).inspectPlugin},
}

func re(p string) *regexp.Regexp { return regexp.MustCompile(`^` + p + `$`) }

var versionRE = regexp.MustCompile(`^/v([0-9]{1,2}\.[0-9]{1,3})(/.*)$`)

// ServeHTTP strips the version prefix, checks the version and routes.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if m := versionRE.FindStringSubmatch(p); m != nil {
		av, ok, err := h.b.SupportsVersion(r.Context(), m[1])
		if err != nil {
			h.fail(w, r, err)
			return
		}
		if !ok {
			msg := "client version " + m[1] + " is too new. Maximum supported API version is " + av.Version
			if !versionNewer(m[1], av.MinVersion) {
				msg = "client version " + m[1] + " is too old. Minimum supported API version is " + av.MinVersion +
					", please upgrade your client to a newer version"
			}
			writeError(w, http.StatusBadRequest, msg)
			return
		}
		p = m[2]
	}
	for _, rt := range routes {
		if m := rt.re.FindStringSubmatch(p); m != nil {
			if rt.method != r.Method {
				continue
			}
			rt.serve(h, w, r, m[1:])
			return
		}
	}
	h.refuse(w, r, p)
}

// versionNewer reports whether a >= b as API versions.
func versionNewer(a, b string) bool {
	am, an, _ := strings.Cut(a, ".")
	bm, bn, _ := strings.Cut(b, ".")
	if am != bm {
		return len(am) > len(bm) || len(am) == len(bm) && am > bm
	}
	return len(an) > len(bn) || len(an) == len(bn) && an >= bn
}

// refuse answers a request the door does not offer: a 403 with one line, audited when it
// would have changed something.
func (h *handler) refuse(w http.ResponseWriter, r *http.Request, p string) {
	what := r.Method + " " + shortPath(p)
	msg := what + " is not available through this server's Docker API: it offers your own containers, " +
		"images, volumes and events (see the README: what is refused and why)"
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.b.RecordRefusal(h.id, "docker api", what, errors.New(msg))
	}
	h.log.Info("docker api: request refused", "user", h.id.User, "request", what)
	writeError(w, http.StatusForbidden, msg)
}

// shortPath is a path as it may be repeated: at most 200 bytes, printable ASCII.
func shortPath(p string) string {
	b := []byte(p)
	if len(b) > 200 {
		b = append(b[:200], "..."...)
	}
	for i, c := range b {
		if c < ' ' || c > '~' {
			b[i] = '?'
		}
	}
	return string(b)
}

var _ Backend = (*docker.API)(nil)
