// Package files is the virtual tree users see over sftp and scp (modern scp speaks SFTP):
//
//	/                         containers, datasets, groups, home, recordings, sif
//	/containers               the user's own containers, one directory each (TAs too: own only)
//	/containers/NAME/PATH     PATH inside the container NAME, running or stopped
//	/home/PATH                the user's persistent home (where a session starts)
//	/sif/NAME.sif             the user's SIF files, read-only (made with the sif command), shown 0755
//	/datasets/NAME/PATH       the site's datasets the user may see, read-only
//	/groups/GROUP/PATH        the workspaces of the user's groups (GROUP is a path: os-2026/team-a)
//	/users/USER/home/PATH     TAs, where the site allows: a student's home, read-only
//	/recordings/NAME.cast     the recordings of the user's shared shells, read-only
//	/pods                     the user's own pods, one directory each (TAs too: own only)
//	/pods/NAME/PATH           PATH inside the user's own running pod NAME (files copied whole, tar through exec)
//
// It turns SFTP requests into calls that carry the session's Identity on the room that serves
// the path's place (backend.Place): the container room (backend/docker's Service) for the
// home, containers, datasets, groups and students' homes, the pod room (backend/kube's
// Service) for pods. Authorisation is the room's. Every place goes through the same code:
// an operation is offered where the place's room has it (backend.FileWriter, DirMaker,
// PathRemover, PathRenamer, AttrSetter) and refused in one line where it has not. Anything
// that is not the user's own (another user's container or pod, an engine name, "..", a NUL)
// is "no such file".
//
// Transfers go through a spool: an unlinked temporary file in Options.TempDir. An upload is
// written there as the client sends it (in any order) and streamed into the container or
// home when the client closes the file, so a broken connection never leaves half a file
// behind. A download from a container is copied from the engine's tar stream to the spool at
// disk speed while the client reads it from there: the engine holds the container's lock as
// long as its stream is open, so it is never left open at the pace of a network client. A
// home opened directly is read straight from the file.
//
// What the archive API cannot do in a container (or in a home reached through one) is
// refused with "operation unsupported" and a line saying what to do instead: delete, rename,
// links, the mode or time of an existing file. mkdir, put (with mode and time, `put -p`/
// `scp -p`), get, ls and stat work everywhere. In a pod everything but links works, each
// operation a tool run in the pod (tar, mkdir, rm, mv, chmod, touch, truncate). The home works from the first login, before
// the user has any container, and supports every operation but links where the server
// opens it directly (on the host, or a volume of an engine on this machine).
package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/kube"
	"whalemountain/backend/recording"
	"whalemountain/tui/termsafe"
)

// Places is the least a room serves its places with: stat, list, read. What else can be
// done there is what else of backend's file interfaces the same value implements
// (backend.FileWriter, DirMaker, PathRemover, PathRenamer, AttrSetter).
type Places interface {
	backend.FileStater
	backend.DirLister
	backend.FileReader
}

// Backend is what the tree needs from the container service (docker.Service): its places
// (the home, containers, datasets, groups, students' homes) and the lists that name them.
type Backend interface {
	Places
	List(ctx context.Context, id backend.Identity, opts docker.ListOptions) ([]docker.Container, error)
	Datasets(ctx context.Context, id backend.Identity) ([]docker.DatasetInfo, error)
	MyGroups(ctx context.Context, id backend.Identity) ([]string, error)
}

var (
	_ Backend             = (*docker.Service)(nil)
	_ backend.FileWriter  = (*docker.Service)(nil)
	_ backend.DirMaker    = (*docker.Service)(nil)
	_ backend.PathRemover = (*docker.Service)(nil)
	_ backend.PathRenamer = (*docker.Service)(nil)
	_ backend.AttrSetter  = (*docker.Service)(nil)
)

// SIFStore is what the read-only /sif directory needs (docker.SIFService).
type SIFStore interface {
	List(ctx context.Context, id backend.Identity) ([]docker.SIFFile, error)
	Open(ctx context.Context, id backend.Identity, name string) (*os.File, docker.SIFFile, error)
}

var _ SIFStore = (*docker.SIFService)(nil)

// Defaults for Options.
const (
	DefaultMaxFileSize = 4 << 30 // bytes
	DefaultMaxOpen     = 16      // files open at once in one session
)

// putTimeout bounds putting one spooled upload in place once its client has closed it.
const putTimeout = 10 * time.Minute

// StartDirectory is where a session starts: relative paths (`scp f host:`) land in the home.
const StartDirectory = "/home"

// Options tune the spool.
type Options struct {
	// TempDir holds the spool files (created 0700 when missing; each file is unlinked as soon
	// as it is made). Empty: os.TempDir().
	TempDir string
	// MaxFileSize is the largest file moved in either direction through the spool; 0 means
	// DefaultMaxFileSize.
	MaxFileSize int64
	// MaxOpen bounds the files one session has open at once; 0 means DefaultMaxOpen.
	MaxOpen int
	// SIF serves the user's SIF files as the read-only /sif; nil: there is no /sif.
	SIF SIFStore
	// Recordings serves the user's recordings as the read-only /recordings; nil: there is
	// no /recordings.
	Recordings RecordingStore
	// TAFileAccess shows TAs /users/USER/home (the backend decides what they may read).
	TAFileAccess bool
	// Pods serves the user's own pods as /pods/NAME/PATH (files copied whole in and out,
	// tar through exec, as kubectl cp); nil: no Kubernetes.
	Pods PodFiles
}

// PodFiles is what /pods needs (kube.Service): its places, the pods, and the user's pods
// to list.
type PodFiles interface {
	Places
	Snapshot(id backend.Identity, opts kube.ListOptions) ([]kube.Pod, kube.Health)
}

var _ PodFiles = (*kube.Service)(nil)

// RecordingStore is what the read-only /recordings directory needs (recording.Store).
type RecordingStore interface {
	List(id backend.Identity, user string) ([]recording.Info, error)
	Open(id backend.Identity, owner, name string) (*os.File, recording.Info, error)
}

var _ RecordingStore = (*recording.Store)(nil)

func (o *Options) defaults() {
	if o.TempDir == "" {
		o.TempDir = os.TempDir()
	}
	if o.MaxFileSize <= 0 {
		o.MaxFileSize = DefaultMaxFileSize
	}
	if o.MaxOpen <= 0 {
		o.MaxOpen = DefaultMaxOpen
	}
}

// Subsystem serves SFTP on ch for id until the client ends the session or ctx ends.
func Subsystem(ctx context.Context, ch io.ReadWriteCloser, b Backend, id backend.Identity, logger *slog.Logger, opts Options) error {
	srv := sftp.NewRequestServer(ch, Handler(ctx, b, id, logger, opts), sftp.WithStartDirectory(StartDirectory))
	stop := context.AfterFunc(ctx, func() { _ = srv.Close() })
	defer stop()
	err := srv.Serve()
	if err == nil || errors.Is(err, io.EOF) || ctx.Err() != nil {
		return nil
	}
	return err
}

// Handler is the tree for one session of id as request-server handlers. Every call to the
// backend runs under ctx (the session's): it ends when the session does.
func Handler(ctx context.Context, b Backend, id backend.Identity, logger *slog.Logger, opts Options) sftp.Handlers {
	opts.defaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	h := &handler{ctx: ctx, b: b, id: id, log: logger.With("user", id.User), opts: opts,
		started: time.Now(), uploads: map[string]*upload{}}
	return sftp.Handlers{FileGet: h, FilePut: h, FileCmd: h, FileList: h}
}

type handler struct {
	ctx     context.Context
	b       Backend
	id      backend.Identity
	log     *slog.Logger
	opts    Options
	started time.Time // the time shown for the tree's own directories

	mu      sync.Mutex
	open    int                // spools open now
	uploads map[string]*upload // by virtual path, until closed
}

var (
	_ sftp.FileReader           = (*handler)(nil)
	_ sftp.FileWriter           = (*handler)(nil)
	_ sftp.PosixRenameFileCmder = (*handler)(nil)
	_ sftp.LstatFileLister      = (*handler)(nil)
	_ sftp.ReadlinkFileLister   = (*handler)(nil)
)

// --- the tree ---

// node kinds.
const (
	nodeRoot      = iota // /
	nodePlaces           // a directory of places, one each: /containers, /pods (top: their kind)
	nodePlace            // a path in a place: a container, a pod, the home, a dataset, ...
	nodeSIFDir           // /sif
	nodeSIF              // /sif/NAME
	nodeDatasets         // /datasets
	nodeGroupsDir        // /groups, or a level above the user's groups (path: "os-2026")
	nodeRecDir           // /recordings
	nodeRec              // /recordings/NAME
	nodeUsers            // /users (TAs)
	nodeUser             // /users/USER (path: USER)
)

// node is a virtual path resolved.
type node struct {
	kind  int
	top   backend.PlaceKind // for nodePlaces: the kind of place listed
	place backend.Place
	path  string // in place, absolute and clean; the file name for nodeSIF
}

// topDirs are the directories of places, by the kind of place each holds.
var topDirs = map[backend.PlaceKind]string{backend.KindContainer: "containers", backend.KindPod: "pods"}

// prefix is the virtual path of the place's top.
func (n node) prefix() string {
	switch n.place.Kind() {
	case backend.KindDataset:
		return "/datasets/" + n.place.Name()
	case backend.KindGroup:
		return "/groups/" + n.place.Name()
	case backend.KindHomeOf:
		return "/users/" + n.place.Name() + "/home"
	case backend.KindHome:
		return "/home"
	}
	return "/" + topDirs[n.place.Kind()] + "/" + n.place.Name()
}

// virtual is the virtual path of a path of the same place, "" when p is no absolute,
// clean path (a link target that would climb out of its place).
func (n node) virtual(p string) string {
	if p == "" || p[0] != '/' || path.Clean(p) != p {
		return ""
	}
	if p == "/" {
		return n.prefix()
	}
	return n.prefix() + p
}

// resolve maps a virtual path to a node. Anything malformed, and any container name that
// is not a valid name, is no such file.
func resolve(p string) (node, error) {
	if p == "" || p[0] != '/' || strings.ContainsRune(p, 0) || path.Clean(p) != p {
		return node{}, sftp.ErrSSHFxNoSuchFile
	}
	if p == "/" {
		return node{kind: nodeRoot}, nil
	}
	first, rest, _ := strings.Cut(p[1:], "/")
	switch first {
	case "home":
		return node{kind: nodePlace, place: backend.Home, path: "/" + rest}, nil
	case "containers":
		return resolvePlace(rest, backend.KindContainer, docker.ValidateName, backend.InContainer)
	case "pods":
		return resolvePlace(rest, backend.KindPod, kube.ValidateName, backend.InPod)
	case "sif":
		if rest == "" {
			return node{kind: nodeSIFDir}, nil
		}
		// Any name: reading a name that is no SIF file finds nothing, writing anything here
		// is refused as read-only.
		return node{kind: nodeSIF, path: rest}, nil
	case "datasets":
		if rest == "" {
			return node{kind: nodeDatasets}, nil
		}
		name, inside, _ := strings.Cut(rest, "/")
		return node{kind: nodePlace, place: backend.InDataset(name), path: "/" + inside}, nil
	case "groups":
		// Where a group's path ends is known only from the user's groups (handler.resolve).
		return node{kind: nodeGroupsDir, path: rest}, nil
	case "users":
		if rest == "" {
			return node{kind: nodeUsers}, nil
		}
		user, inside, _ := strings.Cut(rest, "/")
		if inside == "" {
			return node{kind: nodeUser, path: user}, nil
		}
		top, below, _ := strings.Cut(inside, "/")
		if top != "home" {
			return node{}, sftp.ErrSSHFxNoSuchFile
		}
		return node{kind: nodePlace, place: backend.InHomeOf(user), path: "/" + below}, nil
	case "recordings":
		if rest == "" {
			return node{kind: nodeRecDir}, nil
		}
		return node{kind: nodeRec, path: rest}, nil
	}
	return node{}, sftp.ErrSSHFxNoSuchFile
}

// resolvePlace maps rest (what follows /containers/ or /pods/) to the directory of places
// of kind top, or to a path in the place named by its first element; a name that is not
// valid for the kind is no such file.
func resolvePlace(rest string, top backend.PlaceKind, valid func(string) error, in func(string) backend.Place) (node, error) {
	if rest == "" {
		return node{kind: nodePlaces, top: top}, nil
	}
	name, inside, _ := strings.Cut(rest, "/")
	if valid(name) != nil {
		return node{}, sftp.ErrSSHFxNoSuchFile
	}
	return node{kind: nodePlace, place: in(name), path: "/" + inside}, nil
}

// pods reports whether n is /pods or a path in a pod.
func (n node) pods() bool {
	return n.kind == nodePlaces && n.top == backend.KindPod || n.place.Kind() == backend.KindPod
}

// resolve maps p to a node of this session's tree (no /sif without a SIF store; under
// /groups, the user's own groups and the levels above them, nothing else).
func (h *handler) resolve(p string) (node, error) {
	n, err := resolve(p)
	if err == nil && (n.kind == nodeSIFDir || n.kind == nodeSIF) && h.opts.SIF == nil {
		return node{}, sftp.ErrSSHFxNoSuchFile
	}
	if err == nil && (n.kind == nodeUsers || n.kind == nodeUser || n.place.Kind() == backend.KindHomeOf) && !h.usersTree() {
		return node{}, sftp.ErrSSHFxNoSuchFile
	}
	if err == nil && (n.kind == nodeRecDir || n.kind == nodeRec) && h.opts.Recordings == nil {
		return node{}, sftp.ErrSSHFxNoSuchFile
	}
	if err == nil && n.pods() && h.opts.Pods == nil {
		return node{}, sftp.ErrSSHFxNoSuchFile
	}
	if err != nil || n.kind != nodeGroupsDir || n.path == "" {
		return n, err
	}
	groups, err := h.b.MyGroups(h.ctx, h.id)
	if err != nil {
		return node{}, h.fxErr("groups", p, err)
	}
	return resolveGroup(n.path, groups)
}

// resolveGroup maps rest (what follows /groups/) to the workspace of one of groups, or to a
// level above them; anything else is no such file.
func resolveGroup(rest string, groups []string) (node, error) {
	for _, g := range groups {
		if rest == g || strings.HasPrefix(rest, g+"/") {
			return node{kind: nodePlace, place: backend.InGroup(g), path: "/" + strings.TrimPrefix(strings.TrimPrefix(rest, g), "/")}, nil
		}
	}
	for _, g := range groups {
		if strings.HasPrefix(g, rest+"/") {
			return node{kind: nodeGroupsDir, path: rest}, nil
		}
	}
	return node{}, sftp.ErrSSHFxNoSuchFile
}

// groupLevel lists the names one level below prefix ("" for /groups) among groups.
func groupLevel(prefix string, groups []string) []string {
	var out []string
	for _, g := range groups {
		rest := g
		if prefix != "" {
			var ok bool
			if rest, ok = strings.CutPrefix(g, prefix+"/"); !ok {
				continue
			}
		}
		first, _, _ := strings.Cut(rest, "/")
		if !slices.Contains(out, first) {
			out = append(out, first)
		}
	}
	slices.Sort(out)
	return out
}

// usersTree reports whether this session has /users: a TA's, where the site allows.
func (h *handler) usersTree() bool { return h.opts.TAFileAccess && h.id.IsTA() }

// errReadOnlyForTA is the answer to any change under /users.
var errReadOnlyForTA = fail(sftp.ErrSSHFxPermissionDenied, "/users is read-only: TAs read students' files, never change them")

// errDatasetReadOnly is the answer to any change under /datasets.
var errDatasetReadOnly = fail(sftp.ErrSSHFxPermissionDenied, "/datasets is read-only: datasets are the site's")

// errRecReadOnly is the answer to any change under /recordings.
var errRecReadOnly = fail(sftp.ErrSSHFxPermissionDenied, "/recordings is read-only: recordings are made by the server and removed after their retention")

// readOnly is the answer to a change of a read-only node, nil for the others.
func readOnly(n node) error {
	switch n.kind {
	case nodeSIF, nodeSIFDir:
		return errSIFReadOnly
	case nodeRec, nodeRecDir:
		return errRecReadOnly
	case nodeDatasets:
		return errDatasetReadOnly
	}
	return nil
}

// places is the room that serves place: the pods' for a pod, the containers' for the rest.
func (h *handler) places(place backend.Place) Places {
	if place.Kind() == backend.KindPod {
		return h.opts.Pods
	}
	return h.b
}

// can is what the room of n's place offers as T (a backend file interface), or the one-line
// refusal of op (a verb: "make directories") there.
func can[T any](h *handler, n node, op string) (T, error) {
	t, ok := h.places(n.place).(T)
	if !ok {
		return t, fail(sftp.ErrSSHFxOpUnsupported, "%s: cannot %s here (not supported in %s)", n.virtual(n.path), op, n.prefix())
	}
	return t, nil
}

// errSIFReadOnly is the answer to any change under /sif.
var errSIFReadOnly = fail(sftp.ErrSSHFxPermissionDenied, "/sif is read-only: SIF files are made with the sif command and removed with sif rm")

// --- errors ---

// status is an SFTP status with a message of ours.
type status struct {
	code error // one of sftp.ErrSSHFx*
	msg  string
}

func (e *status) Error() string { return e.msg }
func (e *status) Unwrap() error { return e.code }

func fail(code error, format string, a ...any) error {
	return &status{code: code, msg: termsafe.Line(fmt.Sprintf(format, a...))}
}

// fxErr turns a backend error into what the client is told: missing and not-yours are both
// "no such file"; the rest keep their one line.
func (h *handler) fxErr(op, p string, err error) error {
	var st *status
	switch {
	case err == nil:
		return nil
	case errors.As(err, &st):
		return err
	case missing(err), errors.Is(err, recording.ErrNotFound):
		return sftp.ErrSSHFxNoSuchFile
	case errors.Is(err, docker.ErrPermission), errors.Is(err, kube.ErrPermission):
		return sftp.ErrSSHFxPermissionDenied
	case errors.Is(err, backend.ErrUnsupported):
		return fail(sftp.ErrSSHFxOpUnsupported, "%s", err.Error())
	case errors.Is(err, docker.ErrInvalid), errors.Is(err, docker.ErrConflict), errors.Is(err, docker.ErrQuota),
		errors.Is(err, kube.ErrNoTar), errors.Is(err, kube.ErrInvalid), errors.Is(err, kube.ErrConflict):
		return fail(sftp.ErrSSHFxFailure, "%s", err.Error())
	case errors.Is(err, context.Canceled):
		return sftp.ErrSSHFxConnectionLost
	}
	h.log.Warn("file transfer failed", "op", op, "path", termsafe.Line(p), "err", err)
	return fail(sftp.ErrSSHFxFailure, "%s", err.Error())
}

// missing reports whether err says a path, or the place it would be in, is not there (or
// not the caller's).
func missing(err error) bool {
	return errors.Is(err, backend.ErrNoFile) || errors.Is(err, docker.ErrNotFound) || errors.Is(err, kube.ErrNotFound)
}

// --- listing and stat ---

// info is one entry as the client sees it.
type info struct {
	name     string
	size     int64
	mode     fs.FileMode
	mtime    time.Time
	uid, gid uint32
}

func (i *info) Name() string       { return i.name }
func (i *info) Size() int64        { return i.size }
func (i *info) Mode() fs.FileMode  { return i.mode }
func (i *info) ModTime() time.Time { return i.mtime }
func (i *info) IsDir() bool        { return i.mode.IsDir() }
func (i *info) Sys() any           { return nil }
func (i *info) Uid() uint32        { return i.uid }
func (i *info) Gid() uint32        { return i.gid }

var _ sftp.FileInfoUidGid = (*info)(nil)

func fromBackend(fi backend.FileInfo) *info {
	return &info{name: fi.Name, size: fi.Size, mode: fi.Mode, mtime: fi.ModTime, uid: uint32(fi.UID), gid: uint32(fi.GID)}
}

// sifInfo is a SIF file as listed: 0755, as `apptainer build` leaves its own, so that a
// client creating the downloaded file with the listed mode (OpenSSH's sftp and scp do)
// makes it runnable as ./NAME.sif. The file on disk keeps its private mode; changes are
// refused whatever the mode says (errSIFReadOnly).
func sifInfo(sf docker.SIFFile) *info {
	return &info{name: sf.Name, size: sf.Size, mode: 0o755, mtime: sf.Created}
}

// recInfo is a recording as listed: private to its owner.
func recInfo(ri recording.Info) *info {
	return &info{name: ri.Name, size: ri.Size, mode: 0o600, mtime: ri.Time}
}

func (h *handler) dirInfo(name string, mtime time.Time) *info {
	if mtime.IsZero() {
		mtime = h.started
	}
	return &info{name: name, mode: fs.ModeDir | 0o755, mtime: mtime}
}

// lister serves a fixed list.
type lister []fs.FileInfo

func (l lister) ListAt(out []fs.FileInfo, off int64) (int, error) {
	if off >= int64(len(l)) {
		return 0, io.EOF
	}
	n := copy(out, l[off:])
	if n < len(out) {
		return n, io.EOF
	}
	return n, nil
}

// Filelist lists directories (List) and answers Stat, following a final symlink.
func (h *handler) Filelist(r *sftp.Request) (sftp.ListerAt, error) {
	switch r.Method {
	case "List":
		return h.list(r.Filepath)
	case "Stat":
		fi, err := h.stat(r.Filepath, true)
		if err != nil {
			return nil, err
		}
		return lister{fi}, nil
	case "Readlink":
		return nil, sftp.ErrSSHFxOpUnsupported
	}
	return nil, sftp.ErrSSHFxOpUnsupported
}

// Lstat answers without following a final symlink.
func (h *handler) Lstat(r *sftp.Request) (sftp.ListerAt, error) {
	fi, err := h.stat(r.Filepath, false)
	if err != nil {
		return nil, err
	}
	return lister{fi}, nil
}

// Readlink gives the virtual path a symlink leads to, when that is in the same place.
func (h *handler) Readlink(p string) (string, error) {
	n, err := h.resolve(p)
	if err != nil {
		return "", err
	}
	if n.kind != nodePlace {
		return "", fail(sftp.ErrSSHFxFailure, "%s is not a symbolic link", p)
	}
	fi, err := h.places(n.place).StatPath(h.ctx, h.id, n.place, n.path)
	if err != nil {
		return "", h.fxErr("readlink", p, err)
	}
	if fi.Mode&fs.ModeSymlink == 0 {
		return "", fail(sftp.ErrSSHFxFailure, "%s is not a symbolic link", p)
	}
	to := n.virtual(fi.LinkTarget)
	if to == "" {
		return "", sftp.ErrSSHFxNoSuchFile
	}
	return to, nil
}

func (h *handler) stat(p string, follow bool) (fs.FileInfo, error) {
	n, err := h.resolve(p)
	if err != nil {
		return nil, err
	}
	switch n.kind {
	case nodeRoot:
		return h.dirInfo("/", time.Time{}), nil
	case nodePlaces:
		return h.dirInfo(topDirs[n.top], time.Time{}), nil
	case nodeSIFDir:
		return h.dirInfo("sif", time.Time{}), nil
	case nodeDatasets:
		return h.dirInfo("datasets", time.Time{}), nil
	case nodeUsers:
		return h.dirInfo("users", time.Time{}), nil
	case nodeUser:
		return h.dirInfo(n.path, time.Time{}), nil
	case nodeGroupsDir:
		return h.dirInfo(path.Base("/groups/"+n.path), time.Time{}), nil
	case nodeSIF:
		f, sf, err := h.opts.SIF.Open(h.ctx, h.id, n.path)
		if err != nil {
			return nil, h.fxErr("stat", p, err)
		}
		f.Close()
		return sifInfo(sf), nil
	case nodeRecDir:
		return h.dirInfo("recordings", time.Time{}), nil
	case nodeRec:
		f, ri, err := h.opts.Recordings.Open(h.id, h.id.User, n.path)
		if err != nil {
			return nil, h.fxErr("stat", p, err)
		}
		f.Close()
		return recInfo(ri), nil
	}
	if u := h.pending(p); u != nil {
		return u.info(), nil
	}
	places := h.places(n.place)
	fi, err := places.StatPath(h.ctx, h.id, n.place, n.path)
	if err != nil {
		return nil, h.fxErr("stat", p, err)
	}
	if follow && fi.Mode&fs.ModeSymlink != 0 {
		if n.virtual(fi.LinkTarget) == "" {
			return nil, sftp.ErrSSHFxNoSuchFile
		}
		to, err := places.StatPath(h.ctx, h.id, n.place, fi.LinkTarget)
		if err != nil {
			return nil, h.fxErr("stat", p, err)
		}
		to.Name = fi.Name
		fi = to
	}
	out := fromBackend(fi)
	if n.path == "/" {
		out.name = path.Base(n.prefix())
	}
	return out, nil
}

func (h *handler) list(p string) (sftp.ListerAt, error) {
	n, err := h.resolve(p)
	if err != nil {
		return nil, err
	}
	switch n.kind {
	case nodeRoot:
		root := lister{h.dirInfo("containers", time.Time{})}
		if ds, err := h.b.Datasets(h.ctx, h.id); err == nil && len(ds) > 0 {
			root = append(root, h.dirInfo("datasets", time.Time{}))
		}
		if gs, err := h.b.MyGroups(h.ctx, h.id); err == nil && len(gs) > 0 {
			root = append(root, h.dirInfo("groups", time.Time{}))
		}
		root = append(root, h.dirInfo("home", time.Time{}))
		if h.opts.Recordings != nil {
			root = append(root, h.dirInfo("recordings", time.Time{}))
		}
		if h.opts.SIF != nil {
			root = append(root, h.dirInfo("sif", time.Time{}))
		}
		if h.opts.Pods != nil {
			root = append(root, h.dirInfo("pods", time.Time{}))
		}
		return root, nil
	case nodePlaces:
		return h.listPlaces(p, n.top)
	case nodeDatasets:
		ds, err := h.b.Datasets(h.ctx, h.id)
		if err != nil {
			return nil, h.fxErr("list", p, err)
		}
		out := make(lister, 0, len(ds))
		for _, d := range ds {
			out = append(out, h.dirInfo(d.Name, time.Time{}))
		}
		return out, nil
	case nodeUsers:
		cs, err := h.b.List(h.ctx, h.id, docker.ListOptions{All: true, AllUsers: true})
		if err != nil {
			return nil, h.fxErr("list", p, err)
		}
		var users []string
		for _, c := range cs {
			if c.Owner != h.id.User && !slices.Contains(users, c.Owner) {
				users = append(users, c.Owner)
			}
		}
		slices.Sort(users)
		out := make(lister, 0, len(users))
		for _, u := range users {
			out = append(out, h.dirInfo(u, time.Time{}))
		}
		return out, nil
	case nodeUser:
		return lister{h.dirInfo("home", time.Time{})}, nil
	case nodeGroupsDir:
		gs, err := h.b.MyGroups(h.ctx, h.id)
		if err != nil {
			return nil, h.fxErr("list", p, err)
		}
		var out lister
		for _, name := range groupLevel(n.path, gs) {
			out = append(out, h.dirInfo(name, time.Time{}))
		}
		return out, nil
	case nodeSIFDir:
		sifs, err := h.opts.SIF.List(h.ctx, h.id)
		if err != nil {
			return nil, h.fxErr("list", p, err)
		}
		out := make(lister, 0, len(sifs))
		for _, sf := range sifs {
			out = append(out, sifInfo(sf))
		}
		return out, nil
	case nodeSIF:
		f, _, err := h.opts.SIF.Open(h.ctx, h.id, n.path)
		if err != nil {
			return nil, h.fxErr("list", p, err)
		}
		f.Close()
		return nil, fail(sftp.ErrSSHFxFailure, "%s is not a directory", p)
	case nodeRecDir:
		recs, err := h.opts.Recordings.List(h.id, h.id.User)
		if err != nil {
			return nil, h.fxErr("list", p, err)
		}
		out := make(lister, 0, len(recs))
		for _, ri := range recs {
			if ri.Owner == h.id.User {
				out = append(out, recInfo(ri))
			}
		}
		return out, nil
	case nodeRec:
		f, _, err := h.opts.Recordings.Open(h.id, h.id.User, n.path)
		if err != nil {
			return nil, h.fxErr("list", p, err)
		}
		f.Close()
		return nil, fail(sftp.ErrSSHFxFailure, "%s is not a directory", p)
	}
	fis, truncated, err := h.places(n.place).ListDir(h.ctx, h.id, n.place, n.path)
	if err != nil {
		return nil, h.fxErr("list", p, err)
	}
	if truncated {
		h.log.Info("directory listing cut short", "path", termsafe.Line(p), "entries", len(fis))
	}
	out := make(lister, 0, len(fis))
	for _, fi := range fis {
		out = append(out, fromBackend(fi))
	}
	return out, nil
}

// listPlaces lists the user's own places of kind top, one directory each: a TA's too
// (others' are not files here).
func (h *handler) listPlaces(p string, top backend.PlaceKind) (sftp.ListerAt, error) {
	var out lister
	if top == backend.KindPod {
		pods, _ := h.opts.Pods.Snapshot(h.id, kube.ListOptions{}) // the live snapshot
		for _, pd := range pods {
			out = append(out, h.dirInfo(pd.Name, pd.Created))
		}
		return out, nil
	}
	cs, err := h.b.List(h.ctx, h.id, docker.ListOptions{All: true})
	if err != nil {
		return nil, h.fxErr("list", p, err)
	}
	for _, c := range cs {
		if c.Owner != h.id.User {
			continue // display filter only: the backend already answered for this user
		}
		out = append(out, h.dirInfo(c.Name, c.Created))
	}
	return out, nil
}

// --- reading ---

// Fileread opens a file for reading: straight from a home opened directly, through a spool
// for everything the engine streams.
func (h *handler) Fileread(r *sftp.Request) (io.ReaderAt, error) {
	n, err := h.resolve(r.Filepath)
	if err != nil {
		return nil, err
	}
	if n.kind == nodeSIF {
		return h.readSIF(r.Filepath, n.path)
	}
	if n.kind == nodeRec {
		return h.readRecording(r.Filepath, n.path)
	}
	if n.kind != nodePlace {
		return nil, fail(sftp.ErrSSHFxFailure, "%s is a directory", r.Filepath)
	}
	if err := h.acquire(); err != nil {
		return nil, err
	}
	rc, fi, err := h.places(n.place).ReadFile(h.ctx, h.id, n.place, n.path)
	if err != nil {
		h.release()
		return nil, h.fxErr("get", r.Filepath, err)
	}
	if ra, ok := rc.(io.ReaderAt); ok {
		return &directReader{ReaderAt: ra, c: rc, release: h.release}, nil
	}
	if fi.Size > h.opts.MaxFileSize {
		rc.Close()
		h.release()
		return nil, fail(sftp.ErrSSHFxFailure, "%s is too large to transfer here (%d bytes, at most %d)", r.Filepath, fi.Size, h.opts.MaxFileSize)
	}
	sp, err := newSpool(h.opts.TempDir, rc, fi.Size, h.release)
	if err != nil {
		rc.Close()
		h.release()
		h.log.Warn("file transfer failed", "op", "spool", "err", err)
		return nil, fail(sftp.ErrSSHFxFailure, "the server cannot spool the file now")
	}
	return sp, nil
}

// readSIF opens one of the user's SIF files: read straight from the file.
func (h *handler) readSIF(vpath, name string) (io.ReaderAt, error) {
	if err := h.acquire(); err != nil {
		return nil, err
	}
	f, _, err := h.opts.SIF.Open(h.ctx, h.id, name)
	if err != nil {
		h.release()
		return nil, h.fxErr("get", vpath, err)
	}
	return &directReader{ReaderAt: f, c: f, release: h.release}, nil
}

// readRecording opens one of the user's recordings: read straight from the file.
func (h *handler) readRecording(vpath, name string) (io.ReaderAt, error) {
	if err := h.acquire(); err != nil {
		return nil, err
	}
	f, _, err := h.opts.Recordings.Open(h.id, h.id.User, name)
	if err != nil {
		h.release()
		return nil, h.fxErr("get", vpath, err)
	}
	return &directReader{ReaderAt: f, c: f, release: h.release}, nil
}

func (h *handler) acquire() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.open >= h.opts.MaxOpen {
		return fail(sftp.ErrSSHFxFailure, "too many files open at once (at most %d)", h.opts.MaxOpen)
	}
	h.open++
	return nil
}

func (h *handler) release() {
	h.mu.Lock()
	h.open--
	h.mu.Unlock()
}

// directReader is a file of a home opened directly.
type directReader struct {
	io.ReaderAt
	c       io.Closer
	once    sync.Once
	release func()
}

func (d *directReader) Close() error {
	err := d.c.Close()
	d.once.Do(d.release)
	return err
}

// spool copies a stream into an unlinked temporary file as fast as it comes, and serves
// reads at any offset from there, waiting for the bytes that have not arrived yet.
type spool struct {
	f       *os.File
	src     io.ReadCloser
	size    int64
	release func()

	mu     sync.Mutex
	cond   *sync.Cond
	have   int64
	done   bool
	err    error // why the copy stopped early
	closed bool
	copied chan struct{}
}

func newSpool(dir string, src io.ReadCloser, size int64, release func()) (*spool, error) {
	f, err := tempFile(dir, "download-")
	if err != nil {
		return nil, err
	}
	s := &spool{f: f, src: src, size: size, release: release, copied: make(chan struct{})}
	s.cond = sync.NewCond(&s.mu)
	go s.fill()
	return s, nil
}

func (s *spool) fill() {
	defer close(s.copied)
	buf := make([]byte, 256<<10)
	var err error
	for {
		var n int
		n, err = s.src.Read(buf)
		if n > 0 {
			if _, werr := s.f.WriteAt(buf[:n], s.have); werr != nil {
				err = werr
				break
			}
			s.mu.Lock()
			s.have += int64(n)
			s.cond.Broadcast()
			s.mu.Unlock()
		}
		if err != nil {
			break
		}
	}
	_ = s.src.Close() // releases the engine's lock on the container
	s.mu.Lock()
	defer s.mu.Unlock()
	s.done = true
	if err != io.EOF {
		s.err = err
	} else if s.have != s.size {
		s.err = fmt.Errorf("stream ended after %d of %d bytes", s.have, s.size)
	}
	s.cond.Broadcast()
}

func (s *spool) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= s.size {
		return 0, io.EOF
	}
	want := min(off+int64(len(p)), s.size)
	s.mu.Lock()
	for s.have < want && !s.done && !s.closed {
		s.cond.Wait()
	}
	have, done, err, closed := s.have, s.done, s.err, s.closed
	s.mu.Unlock()
	switch {
	case closed:
		return 0, os.ErrClosed
	case have < want && done:
		if err == nil {
			err = io.ErrUnexpectedEOF
		}
		return 0, err
	}
	n, rerr := s.f.ReadAt(p[:want-off], off)
	if rerr == nil && n < len(p) {
		rerr = io.EOF
	}
	return n, rerr
}

func (s *spool) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.cond.Broadcast()
	s.mu.Unlock()
	_ = s.src.Close()
	<-s.copied
	err := s.f.Close()
	s.release()
	return err
}

// tempFile makes an unlinked temporary file in dir.
func tempFile(dir, prefix string) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	f, err := os.CreateTemp(dir, prefix+"*")
	if err != nil {
		return nil, err
	}
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// --- writing ---

// upload is a file being written: kept in a spool until the client closes it, then put in
// one go.
type upload struct {
	h     *handler
	vpath string
	n     node
	f     *os.File
	max   int64

	mu     sync.Mutex
	size   int64
	mode   fs.FileMode
	mtime  time.Time
	failed error
	closed bool
}

// Filewrite opens a file for writing. Files are written whole: appending and writing into
// the middle of an existing file (resuming) are refused.
func (h *handler) Filewrite(r *sftp.Request) (io.WriterAt, error) {
	n, err := h.resolve(r.Filepath)
	if err != nil {
		return nil, err
	}
	if err := readOnly(n); err != nil {
		return nil, err
	}
	if n.kind == nodeDatasets || n.place.Kind() == backend.KindDataset {
		return nil, errDatasetReadOnly
	}
	if n.kind == nodeUsers || n.kind == nodeUser || n.place.Kind() == backend.KindHomeOf {
		return nil, errReadOnlyForTA
	}
	if n.kind != nodePlace || n.path == "/" {
		return nil, sftp.ErrSSHFxPermissionDenied
	}
	if _, err := can[backend.FileWriter](h, n, "write files"); err != nil {
		return nil, err
	}
	flags := r.Pflags()
	if flags.Append {
		return nil, fail(sftp.ErrSSHFxOpUnsupported, "appending is not supported here: files are written whole")
	}
	mode := fs.FileMode(0o644)
	if r.AttrFlags().Permissions {
		mode = r.Attributes().FileMode().Perm()
	}
	// What is there, and the directory it goes in, are checked now rather than after the
	// whole file has been sent.
	places := h.places(n.place)
	switch fi, err := places.StatPath(h.ctx, h.id, n.place, n.path); {
	case err == nil && fi.IsDir():
		return nil, fail(sftp.ErrSSHFxFailure, "%s is a directory", r.Filepath)
	case err == nil && !flags.Trunc && fi.Size > 0 && fi.Mode.IsRegular():
		return nil, fail(sftp.ErrSSHFxOpUnsupported, "writing into an existing file is not supported here: files are written whole")
	case err != nil && !missing(err):
		return nil, h.fxErr("put", r.Filepath, err)
	case err != nil:
		if !flags.Creat {
			return nil, sftp.ErrSSHFxNoSuchFile
		}
		parent, perr := places.StatPath(h.ctx, h.id, n.place, path.Dir(n.path))
		if perr != nil {
			return nil, h.fxErr("put", r.Filepath, perr)
		}
		if !parent.IsDir() && parent.Mode&fs.ModeSymlink == 0 {
			return nil, fail(sftp.ErrSSHFxFailure, "%s is not a directory", path.Dir(r.Filepath))
		}
	}
	if err := h.acquire(); err != nil {
		return nil, err
	}
	f, err := tempFile(h.opts.TempDir, "upload-")
	if err != nil {
		h.release()
		h.log.Warn("file transfer failed", "op", "spool", "err", err)
		return nil, fail(sftp.ErrSSHFxFailure, "the server cannot take the file now")
	}
	u := &upload{h: h, vpath: r.Filepath, n: n, f: f, max: h.opts.MaxFileSize, mode: mode}
	h.mu.Lock()
	h.uploads[r.Filepath] = u
	h.mu.Unlock()
	return u, nil
}

func (h *handler) pending(p string) *upload {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.uploads[p]
}

func (u *upload) WriteAt(p []byte, off int64) (int, error) {
	end := off + int64(len(p))
	if off < 0 || end > u.max {
		return 0, fail(sftp.ErrSSHFxFailure, "file too large to transfer here (at most %d bytes)", u.max)
	}
	n, err := u.f.WriteAt(p, off)
	u.mu.Lock()
	u.size = max(u.size, off+int64(n))
	if err != nil && u.failed == nil {
		u.failed = err
	}
	u.mu.Unlock()
	if err != nil {
		u.h.log.Warn("file transfer failed", "op", "spool", "err", err)
		return n, fail(sftp.ErrSSHFxFailure, "the server cannot take the file now")
	}
	return n, nil
}

// TransferError is told when the connection broke with the file open: it is then dropped.
func (u *upload) TransferError(err error) {
	u.mu.Lock()
	if u.failed == nil {
		u.failed = err
	}
	u.mu.Unlock()
}

// setAttrs applies a setstat to the file before it is put.
func (u *upload) setAttrs(flags sftp.FileAttrFlags, st *sftp.FileStat) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if flags.Permissions {
		u.mode = st.FileMode().Perm()
	}
	if flags.Acmodtime {
		u.mtime = st.ModTime()
	}
	if flags.Size {
		size := int64(st.Size)
		if size < 0 || size > u.max {
			return fail(sftp.ErrSSHFxFailure, "file too large to transfer here (at most %d bytes)", u.max)
		}
		if err := u.f.Truncate(size); err != nil {
			return fail(sftp.ErrSSHFxFailure, "the server cannot take the file now")
		}
		u.size = size
	}
	return nil
}

func (u *upload) info() *info {
	u.mu.Lock()
	defer u.mu.Unlock()
	mtime := u.mtime
	if mtime.IsZero() {
		mtime = time.Now()
	}
	return &info{name: path.Base(u.vpath), size: u.size, mode: u.mode, mtime: mtime}
}

// Close puts the file where it belongs, unless the transfer broke.
func (u *upload) Close() error {
	u.mu.Lock()
	if u.closed {
		u.mu.Unlock()
		return nil
	}
	u.closed = true
	size, mode, mtime, failed := u.size, u.mode, u.mtime, u.failed
	u.mu.Unlock()
	h := u.h
	h.mu.Lock()
	if h.uploads[u.vpath] == u {
		delete(h.uploads, u.vpath)
	}
	h.mu.Unlock()
	defer h.release()
	defer u.f.Close()
	if failed != nil {
		return fail(sftp.ErrSSHFxFailure, "upload of %s failed; nothing was written", u.vpath)
	}
	// The whole file is here: it is put whole even if the client goes away meanwhile, since
	// a put cut short would leave part of it in the container.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.ctx), putTimeout)
	defer cancel()
	w, err := can[backend.FileWriter](h, u.n, "write files")
	if err == nil {
		err = w.WriteFile(ctx, h.id, u.n.place, u.n.path, io.NewSectionReader(u.f, 0, size), size, mode, mtime)
	}
	return h.fxErr("put", u.vpath, err)
}

// --- commands ---

// Filecmd runs setstat, mkdir, rmdir, remove, rename; links are refused.
func (h *handler) Filecmd(r *sftp.Request) error {
	n, err := h.resolve(r.Filepath)
	if r.Method == "Symlink" || r.Method == "Link" {
		return fail(sftp.ErrSSHFxOpUnsupported, "links cannot be made here")
	}
	if err != nil {
		return err
	}
	if n.kind != nodePlace {
		switch {
		case r.Method == "Setstat" && n.kind != nodeSIF && n.kind != nodeRec:
			return nil // the tree's own directories: nothing to change, nothing to complain about
		case readOnly(n) != nil:
			return readOnly(n)
		}
		return sftp.ErrSSHFxPermissionDenied
	}
	if n.place.Kind() == backend.KindDataset && r.Method != "Setstat" {
		return errDatasetReadOnly
	}
	if n.place.Kind() == backend.KindHomeOf && r.Method != "Setstat" {
		return errReadOnlyForTA
	}
	if n.path == "/" && r.Method != "Setstat" {
		// The top of a container, a pod or the home: made and removed elsewhere.
		switch {
		case r.Method != "Mkdir":
		case n.place.Kind() == backend.KindContainer:
			return fail(sftp.ErrSSHFxPermissionDenied, "containers are made with the run command, not mkdir")
		case n.place.Kind() == backend.KindPod:
			return fail(sftp.ErrSSHFxPermissionDenied, "pods are made with the pod run command, not mkdir")
		}
		return sftp.ErrSSHFxPermissionDenied
	}
	switch r.Method {
	case "Setstat":
		return h.setstat(r, n)
	case "Mkdir":
		return h.mkdir(r, n)
	case "Remove", "Rmdir":
		return h.remove(r, n)
	case "Rename":
		return h.rename(r, n, false)
	}
	return sftp.ErrSSHFxOpUnsupported
}

// mkdir makes a directory, 0755 unless the client says otherwise.
func (h *handler) mkdir(r *sftp.Request, n node) error {
	m, err := can[backend.DirMaker](h, n, "make directories")
	if err != nil {
		return err
	}
	mode := fs.FileMode(0o755)
	if r.AttrFlags().Permissions {
		mode = r.Attributes().FileMode().Perm()
	}
	return h.fxErr("mkdir", r.Filepath, m.MakeDir(h.ctx, h.id, n.place, n.path, mode))
}

// remove removes a file (Remove) or an empty directory (Rmdir): rmdir removes directories
// only, rm everything else.
func (h *handler) remove(r *sftp.Request, n node) error {
	rm, err := can[backend.PathRemover](h, n, "remove files")
	if err != nil {
		return err
	}
	if fi, err := h.places(n.place).StatPath(h.ctx, h.id, n.place, n.path); err == nil && fi.IsDir() != (r.Method == "Rmdir") {
		if fi.IsDir() {
			return fail(sftp.ErrSSHFxFailure, "%s is a directory", r.Filepath)
		}
		return fail(sftp.ErrSSHFxFailure, "%s is not a directory", r.Filepath)
	}
	return h.fxErr("delete", r.Filepath, rm.RemovePath(h.ctx, h.id, n.place, n.path))
}

// PosixRename renames, replacing what is at the target (a home opened directly only).
func (h *handler) PosixRename(r *sftp.Request) error {
	n, err := h.resolve(r.Filepath)
	if err != nil {
		return err
	}
	if n.kind != nodePlace {
		return sftp.ErrSSHFxPermissionDenied
	}
	return h.rename(r, n, true)
}

// rename renames within one place; unless posix, an existing target is not replaced.
func (h *handler) rename(r *sftp.Request, from node, posix bool) error {
	to, err := h.resolve(r.Target)
	if err != nil {
		return err
	}
	if to.kind != nodePlace || from.path == "/" || to.path == "/" {
		return sftp.ErrSSHFxPermissionDenied
	}
	if to.place != from.place {
		return fail(sftp.ErrSSHFxOpUnsupported, "renaming between places (containers, pods, the home) is not supported")
	}
	mv, err := can[backend.PathRenamer](h, from, "rename files")
	if err != nil {
		return err
	}
	if !posix {
		switch _, err := h.places(to.place).StatPath(h.ctx, h.id, to.place, to.path); {
		case err == nil:
			return fail(sftp.ErrSSHFxFailure, "%s already exists", r.Target)
		case !missing(err):
			return h.fxErr("rename", r.Target, err)
		}
	}
	return h.fxErr("rename", r.Filepath, mv.RenamePath(h.ctx, h.id, from.place, from.path, to.path))
}

func (h *handler) setstat(r *sftp.Request, n node) error {
	flags, st := r.AttrFlags(), r.Attributes()
	if u := h.pending(r.Filepath); u != nil {
		return u.setAttrs(flags, st)
	}
	var attrs backend.FileAttrs
	if flags.Permissions {
		m := st.FileMode().Perm()
		attrs.Mode = &m
	}
	if flags.Acmodtime {
		t := st.ModTime()
		attrs.ModTime = &t
	}
	if flags.Size {
		size := int64(st.Size)
		attrs.Size = &size
	}
	if flags.UidGid && attrs.Mode == nil && attrs.ModTime == nil && attrs.Size == nil {
		return fail(sftp.ErrSSHFxOpUnsupported, "changing owners is not supported here")
	}
	if attrs.Mode == nil && attrs.ModTime == nil && attrs.Size == nil {
		return nil
	}
	set, err := can[backend.AttrSetter](h, n, "change modes or times")
	if err != nil {
		return err
	}
	return h.fxErr("setstat", r.Filepath, set.SetFileAttrs(h.ctx, h.id, n.place, n.path, attrs))
}
