package docker

import (
	"archive/tar"
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
	"syscall"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// Files: paths in a user's own containers and in their persistent home, for file transfer.
//
// Containers are reached through the engine's archive API only (stat, a tar stream out, a
// tar stream in), so it works for running and stopped containers alike and starts no
// process. Every path is resolved by the engine inside the container's own root: a symlink
// in a container can lead anywhere in that container, never to the host.
//
// The home works from the user's first login, whether they have a container or not. It is
// reached in one of these ways, after the configuration:
//   - HomeHostPath set: straight from the host directory, through an os.Root opened on it,
//     so no name, "..", or symlink can lead outside it (symlinks must be relative and stay
//     inside; an absolute one is refused by os.Root).
//   - the default per-user volume, on an engine on this machine: the volume is made if it
//     does not exist yet (as the user's first container would make it), and the directory
//     the engine keeps it in is opened the same way, through an os.Root.
//   - the volume, where the server cannot open that directory (the engine elsewhere):
//     through one of the user's containers that mounts it at HomeTarget (every container
//     made here does), with the archive API at HomeTarget/<path>. A user with no container
//     gets an error saying to run one. A symlink whose target the engine resolves to
//     outside the home is treated as missing.
// No helper container is ever made for a home.
//
// What the archive API cannot do, files in containers (and a home reached through one)
// cannot either: deleting and renaming are refused with ErrUnsupported (a shell in the
// container does them); making directories and writing files are tar streams with one
// entry; the mode and time of an existing directory are changed by writing its entry again,
// those of an existing file are not (upload it again instead). A home opened directly
// supports all of these through os.Root.
//
// The engine holds a container's lock while an archive stream of it is open: a stat, an
// inspect, a stop of that container (and the live snapshot's look at it) wait until the
// stream is read to its end or closed. Callers read ReadFile's stream promptly (to a spool,
// not at the pace of a network client) and close it.

// File transfer limits.
const (
	maxPathLen     = 4096     // bytes in one path
	maxListEntries = 10000    // direct children ListDir returns
	maxListHeaders = 100000   // tar headers ListDir reads before giving up
	maxListSkip    = 64 << 20 // bytes of file content ListDir reads past before giving up
)

// spot is a resolved Place: the home opened directly (root), or a container with the place's
// top inside it (base: "" for a container's own tree, the home's mount point for a home
// reached through a container).
type spot struct {
	owner string
	name  string // the container's name; "" for the home
	place backend.Place
	root  *os.Root
	cid   string
	base  string

	readOnly bool   // a dataset, or what a TA reads: nothing is changed through the server
	roWhy    string // why, for the refusal
	audited  bool   // every file read is audited (a TA reading what is not theirs)
	limit    int64  // a group workspace's size limit in bytes (0: none)
	sizeKey  string // what dirSize measures it as
}

func (sp *spot) close() {
	if sp != nil && sp.root != nil {
		_ = sp.root.Close()
	}
}

// where is how the path is named in errors: "box:/etc/hostname", "~/notes.txt".
func (sp *spot) where(p string) string {
	if sp.place.IsShared() {
		return whereIn(sp.place, p)
	}
	return whereIn(backend.InContainer(sp.name), p)
}

func whereIn(place backend.Place, p string) string {
	switch {
	case place.Dataset() != "":
		return strings.TrimSuffix("/datasets/"+place.Dataset()+p, "/")
	case place.Group() != "":
		return strings.TrimSuffix("/groups/"+place.Group()+p, "/")
	case place.User() != "":
		return strings.TrimSuffix("/users/"+place.User()+"/home"+p, "/")
	case place.IsHome():
		return "~" + strings.TrimSuffix(p, "/")
	}
	return place.Container() + ":" + p
}

// writable refuses changes to a dataset.
func (sp *spot) writable(p string) error {
	if sp.readOnly {
		return errorf(ErrPermission, "%s is read-only: %s", shown(sp.where(p)), sp.roWhy)
	}
	return nil
}

// auditFile is the audit target for a path: "alice/box:/tmp/x" or "alice:~/x".
func auditFile(id backend.Identity, place backend.Place, p string) string {
	if place.IsHome() || place.IsShared() {
		return id.User + ":" + shown(whereIn(place, p))
	}
	return id.User + "/" + shown(whereIn(place, p))
}

// refusedRead records a read refused because the place is not the caller's: another user's
// container, or none of that name (the caller is told the same "no such file" either way).
// Reads themselves are not audited; these refusals are, as "refused".
func (s *Service) refusedRead(id backend.Identity, action string, place backend.Place, p string, err error) {
	if !place.IsHome() && (errors.Is(err, ErrNotFound) || errors.Is(err, ErrPermission)) {
		s.record(id, action, auditFile(id, place, p), err)
	}
}

// enginePath is p as the engine names it in the container.
func (sp *spot) enginePath(p string) string {
	if sp.base == "" {
		return p
	}
	if p == "/" {
		return sp.base
	}
	return sp.base + p
}

// fromEngine turns an engine path back into a path of the place; false when it lies
// outside the place.
func (sp *spot) fromEngine(ep string) (string, bool) {
	if ep == "" || ep[0] != '/' {
		return "", false
	}
	ep = path.Clean(ep)
	if sp.base == "" {
		return ep, true
	}
	if ep == sp.base {
		return "/", true
	}
	if rest, ok := strings.CutPrefix(ep, sp.base+"/"); ok {
		return "/" + rest, true
	}
	return "", false
}

// rel is p as os.Root names it.
func rel(p string) string {
	if p == "/" {
		return "."
	}
	return p[1:]
}

// noSuchFile is ErrNotFound and backend.ErrNoFile alike.
func noSuchFile(where string) error {
	return &fileGone{userError{kind: ErrNotFound, msg: "no such file: " + shown(where)}}
}

// fileGone is a path that is not there (or not the caller's).
type fileGone struct{ userError }

func (e *fileGone) Is(target error) bool { return target == ErrNotFound || target == backend.ErrNoFile }

// checkPath accepts absolute, clean paths without NUL; anything else does not exist.
func checkPath(place backend.Place, p string) error {
	if p == "" || p[0] != '/' || len(p) > maxPathLen || strings.ContainsRune(p, 0) || path.Clean(p) != p {
		return noSuchFile(whereIn(place, p))
	}
	return nil
}

// open resolves place for id.
func (s *Service) open(ctx context.Context, id backend.Identity, place backend.Place) (*spot, error) {
	if err := checkIdentity(id); err != nil {
		return nil, err
	}
	if place.IsShared() {
		return s.openShared(ctx, id, place)
	}
	if !place.IsHome() {
		// A plain name: "owner/name" and engine names never reach a container here; nor
		// does a place of a kind this room does not serve (a pod).
		if place.Kind() != backend.KindContainer || !nameRE.MatchString(place.Container()) {
			return nil, notFound(place.Name())
		}
		t, err := s.find(ctx, id, place.Container())
		if err != nil {
			return nil, err
		}
		return &spot{owner: t.owner, name: t.name, cid: t.ID}, nil
	}
	if s.cfg.HomeHostPath != "" {
		m, err := s.ensureHome(ctx, id.User)
		if err != nil {
			return nil, err
		}
		root, err := os.OpenRoot(m.Source)
		if err != nil {
			return nil, fmt.Errorf("open the home of %s: %w", id.User, err)
		}
		return &spot{owner: id.User, root: root}, nil
	}
	root, err := s.openVolumeHome(ctx, id.User)
	if err != nil {
		return nil, err
	}
	if root != nil {
		return &spot{owner: id.User, root: root}, nil
	}
	mine, err := s.ownContainers(ctx, id.User)
	if err != nil {
		return nil, err
	}
	target, vol := expand(s.cfg.HomeTarget, id.User), s.cfg.volumeName(id.User)
	var pick *container.Summary
	for i, c := range mine {
		if !slices.ContainsFunc(c.Mounts, func(m container.MountPoint) bool {
			return m.Type == mount.TypeVolume && m.Name == vol && m.Destination == target
		}) {
			continue
		}
		// The same one every time: running ones first, then by name.
		if pick == nil || betterHomeCarrier(c, *pick) {
			pick = &mine[i]
		}
	}
	if pick == nil {
		return nil, errorf(ErrConflict, "your home is reached through one of your containers and you have none; run one first")
	}
	return &spot{owner: id.User, cid: pick.ID, base: target}, nil
}

// openShared opens a dataset the caller may see (read-only) or the workspace of one of
// their groups; anything else is no such file, the same for a name that does not exist.
func (s *Service) openShared(ctx context.Context, id backend.Identity, place backend.Place) (*spot, error) {
	gone := func() error { return noSuchFile(whereIn(place, "/")) }
	if place.Dataset() != "" {
		d, err := s.datasetFor(ctx, id, place.Dataset())
		if errors.Is(err, errNotMember) {
			return nil, gone()
		}
		if err != nil {
			return nil, err
		}
		root, err := s.openDataset(ctx, d)
		if err != nil {
			if errors.Is(err, ErrUnsupported) {
				return nil, err
			}
			slog.Warn("cannot open a dataset", "dataset", d.Name, "err", err)
			return nil, gone()
		}
		return &spot{owner: id.User, place: place, root: root, readOnly: true, roWhy: "datasets are the site's"}, nil
	}
	taReads := id.IsTA() && s.cfg.TAFileAccess
	if place.User() != "" {
		if !taReads || !backend.ValidUser(place.User()) {
			return nil, gone()
		}
		root, err := s.openHomeOf(ctx, place.User())
		if err != nil {
			return nil, err
		}
		if root == nil {
			return nil, gone()
		}
		return &spot{owner: place.User(), place: place, root: root, readOnly: true, roWhy: "TAs read students' files, never change them", audited: true}, nil
	}
	sh, err := s.shareFor(ctx, id.User, place.Group())
	member := err == nil
	if errors.Is(err, errNotMember) && taReads {
		sh, err = s.anyShare(ctx, place.Group())
	}
	if errors.Is(err, errNotMember) {
		return nil, gone()
	}
	if err != nil {
		return nil, err
	}
	root, err := s.openGroup(ctx, sh)
	if err != nil {
		return nil, err
	}
	sp := &spot{owner: id.User, place: place, root: root, limit: sh.ws.Size, sizeKey: "group:" + sh.group}
	if !member {
		sp.readOnly, sp.roWhy, sp.audited = true, "TAs read group workspaces, never change them", true
	}
	return sp, nil
}

// openHomeOf opens user's existing home for reading (a TA's), or nil when there is none the
// server can open; nothing is made for a name that has none.
func (s *Service) openHomeOf(ctx context.Context, user string) (*os.Root, error) {
	if s.cfg.HomeHostPath != "" {
		root, err := os.OpenRoot(expand(s.cfg.HomeHostPath, user))
		if err != nil {
			return nil, nil
		}
		return root, nil
	}
	vi, ok := s.api.(volumeInspector)
	if !ok {
		return nil, errorf(ErrUnsupported, "homes cannot be reached through this Docker connection")
	}
	res, err := vi.VolumeInspect(ctx, s.cfg.volumeName(user), client.VolumeInspectOptions{})
	if cerrdefs.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, engineErr("look up the home of "+user, err)
	}
	if !s.managedBy(res.Volume.Labels, user) {
		return nil, nil
	}
	dir, err := s.localVolumeDir(res.Volume)
	if err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open the home of %s: %w", user, err)
	}
	return root, nil
}

// daemonHoster is the engine client's address (the SDK client has it).
type daemonHoster interface{ DaemonHost() string }

// volumeHomeOnce logs, once, why home volumes cannot be opened directly.
var volumeHomeOnce sync.Once

// openVolumeHome makes the user's home volume when it does not exist yet (as every container
// of theirs would) and opens the directory the engine keeps it in, so the home works from
// the first login, container or not, with every operation a home on the host has. That
// needs the engine on this machine (a unix socket), a plain local volume, and the server
// allowed to open the directory. Without that it returns nil, and the home is reached
// through one of the user's containers.
func (s *Service) openVolumeHome(ctx context.Context, user string) (*os.Root, error) {
	name := s.cfg.volumeName(user)
	res, err := s.api.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Driver: "local", Labels: s.labels(user)})
	if err != nil {
		return nil, engineErr("create home volume for "+user, err)
	}
	v := res.Volume
	// An existing volume of that name that is not this user's is never opened.
	if !s.managedBy(v.Labels, user) {
		return nil, fmt.Errorf("home volume %s exists but does not belong to %s", name, user)
	}
	why := ""
	switch dh, ok := s.api.(daemonHoster); {
	case !ok || !strings.HasPrefix(dh.DaemonHost(), "unix://"):
		why = "the Docker Engine is not on this machine"
	case v.Driver != "local" || len(v.Options) > 0 || !path.IsAbs(v.Mountpoint):
		why = "home volumes are not plain local volumes"
	}
	var root *os.Root
	if why == "" {
		if root, err = os.OpenRoot(v.Mountpoint); err != nil {
			why = "the server cannot open the engine's volume directory (" + err.Error() + ")"
		}
	}
	if why != "" {
		volumeHomeOnce.Do(func() {
			slog.Info("homes in volumes are reached through the users' containers: "+why, "volume", name)
		})
		return nil, nil
	}
	return root, nil
}

func betterHomeCarrier(a, b container.Summary) bool {
	ar, br := a.State == container.StateRunning, b.State == container.StateRunning
	if ar != br {
		return ar
	}
	return a.Labels[LabelName] < b.Labels[LabelName]
}

// archiveErr words an archive API error for path p.
func (sp *spot) archiveErr(what, p string, err error) error {
	switch {
	case cerrdefs.IsNotFound(err):
		return noSuchFile(sp.where(p))
	case cerrdefs.IsPermissionDenied(err):
		return errorf(ErrPermission, "%s %s: permission denied", what, shown(sp.where(p)))
	case cerrdefs.IsInvalidArgument(err), cerrdefs.IsConflict(err):
		slog.Info("docker refused a file transfer", "what", what, "path", sp.where(p), "err", err)
		return errorf(ErrConflict, "%s %s: not possible there", what, shown(sp.where(p)))
	}
	return engineErr(what+" "+shown(sp.where(p)), err)
}

// hostErr words an error from the home opened directly for path p. Nothing in it names the
// host directory.
func hostErr(what, where string, err error) error {
	var errno syscall.Errno
	switch {
	case errors.Is(err, fs.ErrNotExist), errors.As(err, &errno) && errno == syscall.ELOOP,
		strings.Contains(err.Error(), "path escapes"):
		return noSuchFile(where)
	case errors.As(err, &errno) && (errno == syscall.ENOTEMPTY || errno == syscall.EISDIR ||
		errno == syscall.ENOTDIR || errno == syscall.EBUSY || errno == syscall.EINVAL || errno == syscall.EXDEV):
		return errorf(ErrConflict, "%s %s: %s", what, shown(where), errno.Error())
	case errors.Is(err, fs.ErrExist):
		return errorf(ErrConflict, "%s %s: already exists", what, shown(where))
	case errors.Is(err, fs.ErrPermission):
		return errorf(ErrPermission, "%s %s: permission denied", what, shown(where))
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return fmt.Errorf("%s %s: %w", what, shown(where), err)
}

// hostInfo turns an os.FileInfo of the home into a FileInfo.
func hostInfo(root *os.Root, p string, fi fs.FileInfo) backend.FileInfo {
	out := backend.FileInfo{Name: path.Base(p), Size: fi.Size(), Mode: fi.Mode(), ModTime: fi.ModTime()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		out.UID, out.GID = int(st.Uid), int(st.Gid)
	}
	if fi.Mode()&fs.ModeSymlink != 0 {
		if raw, err := root.Readlink(rel(p)); err == nil {
			out.LinkTarget = relativeLink(path.Dir(p), raw)
		}
	}
	return out
}

// relativeLink is where a link with target raw in directory dir leads, when raw is
// relative and stays inside the place; else "".
func relativeLink(dir, raw string) string {
	if raw == "" || raw[0] == '/' {
		return ""
	}
	j := path.Join(strings.TrimPrefix(dir, "/"), raw)
	if j == ".." || strings.HasPrefix(j, "../") {
		return ""
	}
	if j == "." {
		return "/"
	}
	return "/" + j
}

// engineStat stats p without following a final symlink.
func (s *Service) engineStat(ctx context.Context, sp *spot, p string) (backend.FileInfo, error) {
	res, err := s.api.ContainerStatPath(ctx, sp.cid, client.ContainerStatPathOptions{Path: sp.enginePath(p)})
	if err != nil {
		return backend.FileInfo{}, sp.archiveErr("stat", p, err)
	}
	st := res.Stat
	fi := backend.FileInfo{Name: path.Base(p), Size: st.Size, Mode: st.Mode, ModTime: st.Mtime}
	if st.Mode&fs.ModeSymlink != 0 {
		fi.LinkTarget, _ = sp.fromEngine(st.LinkTarget)
	}
	return fi, nil
}

// follow resolves a final symlink (the engine resolves the whole chain at once) and returns
// the path and what is there.
func (s *Service) follow(ctx context.Context, sp *spot, p string, fi backend.FileInfo) (string, backend.FileInfo, error) {
	if fi.Mode&fs.ModeSymlink == 0 {
		return p, fi, nil
	}
	if fi.LinkTarget == "" {
		return p, fi, noSuchFile(sp.where(p))
	}
	to := fi.LinkTarget
	got, err := s.engineStat(ctx, sp, to)
	if err != nil {
		return p, fi, noSuchFile(sp.where(p))
	}
	if got.Mode&fs.ModeSymlink != 0 {
		return p, fi, noSuchFile(sp.where(p))
	}
	got.Name = fi.Name
	return to, got, nil
}

// statFollow stats p, following a final symlink.
func (s *Service) statFollow(ctx context.Context, sp *spot, p string) (string, backend.FileInfo, error) {
	fi, err := s.engineStat(ctx, sp, p)
	if err != nil {
		return p, fi, err
	}
	return s.follow(ctx, sp, p, fi)
}

// StatPath describes the path p of place, without following a final symlink (LinkTarget
// says where one leads).
func (s *Service) StatPath(ctx context.Context, id backend.Identity, place backend.Place, p string) (backend.FileInfo, error) {
	if err := checkPath(place, p); err != nil {
		return backend.FileInfo{}, err
	}
	sp, err := s.open(ctx, id, place)
	if err != nil {
		s.refusedRead(id, "stat", place, p, err)
		return backend.FileInfo{}, err
	}
	defer sp.close()
	var fi backend.FileInfo
	if sp.root != nil {
		st, err := sp.root.Lstat(rel(p))
		if err != nil {
			return backend.FileInfo{}, hostErr("stat", sp.where(p), err)
		}
		fi = hostInfo(sp.root, p, st)
	} else if fi, err = s.engineStat(ctx, sp, p); err != nil {
		return backend.FileInfo{}, err
	}
	if p == "/" {
		fi.Name = "/"
	}
	return fi, nil
}

// fileReader is a file's content out of a tar stream; Close ends the stream.
type fileReader struct {
	io.Reader
	body io.Closer
}

func (f *fileReader) Close() error { return f.body.Close() }

// ReadFile opens the file at p of place (following a final symlink) and streams its content;
// nothing is held in memory beyond the stream's buffers. For a container the stream holds the
// container's lock in the engine: read it promptly and Close it. A home opened directly
// gives an *os.File, which is also an io.ReaderAt.
func (s *Service) ReadFile(ctx context.Context, id backend.Identity, place backend.Place, p string) (io.ReadCloser, backend.FileInfo, error) {
	if err := checkPath(place, p); err != nil {
		return nil, backend.FileInfo{}, err
	}
	sp, err := s.open(ctx, id, place)
	if err != nil {
		s.refusedRead(id, "get", place, p, err)
		return nil, backend.FileInfo{}, err
	}
	defer sp.close()
	if sp.root != nil {
		f, err := sp.root.Open(rel(p))
		if sp.audited {
			s.record(id, "get", auditFile(id, place, p), err)
		}
		if err != nil {
			return nil, backend.FileInfo{}, hostErr("read", sp.where(p), err)
		}
		st, err := f.Stat()
		if err == nil && !st.Mode().IsRegular() {
			err = notRegular(sp.where(p), st.Mode())
		}
		if err != nil {
			f.Close()
			return nil, backend.FileInfo{}, err
		}
		fi := hostInfo(sp.root, p, st)
		return f, fi, nil
	}
	at, fi, err := s.statFollow(ctx, sp, p)
	if err != nil {
		return nil, backend.FileInfo{}, err
	}
	if !fi.Mode.IsRegular() {
		return nil, backend.FileInfo{}, notRegular(sp.where(p), fi.Mode)
	}
	res, err := s.api.CopyFromContainer(ctx, sp.cid, client.CopyFromContainerOptions{SourcePath: sp.enginePath(at)})
	if err != nil {
		return nil, backend.FileInfo{}, sp.archiveErr("read", p, err)
	}
	tr := tar.NewReader(res.Content)
	hdr, err := tr.Next()
	if err != nil || hdr.Typeflag != tar.TypeReg {
		res.Content.Close()
		if err == nil {
			err = notRegular(sp.where(p), hdr.FileInfo().Mode())
		} else {
			err = fmt.Errorf("read %s: %w", shown(sp.where(p)), err)
		}
		return nil, backend.FileInfo{}, err
	}
	fi = backend.FileInfo{Name: fi.Name, Size: hdr.Size, Mode: hdr.FileInfo().Mode(), ModTime: hdr.ModTime, UID: hdr.Uid, GID: hdr.Gid}
	return &fileReader{Reader: tr, body: res.Content}, fi, nil
}

func notRegular(where string, mode fs.FileMode) error {
	if mode.IsDir() {
		return errorf(ErrInvalid, "%s is a directory", shown(where))
	}
	return errorf(ErrInvalid, "%s is not a regular file", shown(where))
}

// ListDir lists the directory at p of place (following a final symlink), sorted by name. In
// a container the listing comes from a tar stream of the directory, read only as far as
// needed; truncated is true when it stopped early because the directory holds more than
// maxListEntries entries, or more than maxListHeaders or maxListSkip bytes below it before
// its last entry.
func (s *Service) ListDir(ctx context.Context, id backend.Identity, place backend.Place, p string) (entries []backend.FileInfo, truncated bool, err error) {
	if err := checkPath(place, p); err != nil {
		return nil, false, err
	}
	sp, err := s.open(ctx, id, place)
	if err != nil {
		s.refusedRead(id, "ls", place, p, err)
		return nil, false, err
	}
	defer sp.close()
	if sp.root != nil {
		return listHost(sp, p)
	}
	at, fi, err := s.statFollow(ctx, sp, p)
	if err != nil {
		return nil, false, err
	}
	if !fi.IsDir() {
		return nil, false, errorf(ErrInvalid, "%s is not a directory", shown(sp.where(p)))
	}
	ep := sp.enginePath(at)
	res, err := s.api.CopyFromContainer(ctx, sp.cid, client.CopyFromContainerOptions{SourcePath: strings.TrimSuffix(ep, "/") + "/."})
	if err != nil {
		return nil, false, sp.archiveErr("list", p, err)
	}
	defer res.Content.Close()
	tr := tar.NewReader(res.Content)
	var skipped int64
	for headers := 0; ; headers++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, false, fmt.Errorf("list %s: %w", shown(sp.where(p)), err)
		}
		name := strings.TrimSuffix(strings.TrimPrefix(hdr.Name, "./"), "/")
		if name != "" && name != "." && !strings.Contains(name, "/") {
			if len(entries) == maxListEntries {
				return sortInfos(entries), true, nil
			}
			e := backend.FileInfo{Name: name, Size: hdr.Size, Mode: hdr.FileInfo().Mode(), ModTime: hdr.ModTime, UID: hdr.Uid, GID: hdr.Gid}
			if hdr.Typeflag == tar.TypeSymlink {
				target := hdr.Linkname
				if !strings.HasPrefix(target, "/") {
					target = path.Join(ep, target)
				}
				e.LinkTarget, _ = sp.fromEngine(target)
			}
			entries = append(entries, e)
		}
		if hdr.Typeflag == tar.TypeReg {
			skipped += hdr.Size
		}
		if headers >= maxListHeaders || skipped > maxListSkip {
			return sortInfos(entries), true, nil
		}
	}
	return sortInfos(entries), false, nil
}

func listHost(sp *spot, p string) ([]backend.FileInfo, bool, error) {
	f, err := sp.root.Open(rel(p))
	if err != nil {
		return nil, false, hostErr("list", sp.where(p), err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, false, hostErr("list", sp.where(p), err)
	}
	if !st.IsDir() {
		return nil, false, errorf(ErrInvalid, "%s is not a directory", shown(sp.where(p)))
	}
	des, err := f.ReadDir(maxListEntries + 1)
	if err != nil && err != io.EOF {
		return nil, false, hostErr("list", sp.where(p), err)
	}
	truncated := len(des) > maxListEntries
	if truncated {
		des = des[:maxListEntries]
	}
	out := make([]backend.FileInfo, 0, len(des))
	for _, de := range des {
		info, err := de.Info()
		if err != nil {
			continue // gone meanwhile
		}
		out = append(out, hostInfo(sp.root, path.Join(p, de.Name()), info))
	}
	return sortInfos(out), truncated, nil
}

func sortInfos(fis []backend.FileInfo) []backend.FileInfo {
	slices.SortFunc(fis, func(a, b backend.FileInfo) int { return strings.Compare(a.Name, b.Name) })
	return fis
}

// WriteFile puts a file of exactly size bytes read from r at p of place, replacing a file
// that is there, with the permission bits of mode and modification time mtime (zero: now).
// The parent directory must exist. In a container the content is streamed in as a one-entry
// tar; a file that is replaced keeps its owner. It is audited as "put".
func (s *Service) WriteFile(ctx context.Context, id backend.Identity, place backend.Place, p string, r io.Reader, size int64, mode fs.FileMode, mtime time.Time) error {
	err := s.writeFile(ctx, id, place, p, r, size, mode, mtime)
	s.record(id, "put", auditFile(id, place, p), err)
	return err
}

func (s *Service) writeFile(ctx context.Context, id backend.Identity, place backend.Place, p string, r io.Reader, size int64, mode fs.FileMode, mtime time.Time) error {
	if err := checkPath(place, p); err != nil {
		return err
	}
	if p == "/" {
		return errorf(ErrInvalid, "%s is a directory", shown(whereIn(place, p)))
	}
	if size < 0 {
		return errorf(ErrInvalid, "invalid size %d", size)
	}
	if mtime.IsZero() {
		mtime = time.Now()
	}
	sp, err := s.open(ctx, id, place)
	if err != nil {
		return err
	}
	defer sp.close()
	if err := sp.writable(p); err != nil {
		return err
	}
	if sp.limit > 0 {
		if used := s.dirSize(sp.root, sp.sizeKey); used >= 0 && used+size > sp.limit {
			return errorf(ErrQuota, "quota: the workspace of %s is limited to %s (%s used)", place.Group(), formatBytes(sp.limit), formatBytes(used))
		}
	}
	if sp.root != nil {
		err := writeHost(sp, p, r, size, mode, mtime)
		if err == nil && sp.sizeKey != "" {
			s.grew(sp.sizeKey, size)
		}
		return err
	}
	dir, err := s.parentDir(ctx, sp, p)
	if err != nil {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: path.Base(p), Mode: int64(mode.Perm()), Size: size, ModTime: mtime}
	switch fi, err := s.engineStat(ctx, sp, p); {
	case err == nil && fi.IsDir():
		return errorf(ErrConflict, "%s is a directory", shown(sp.where(p)))
	case err == nil && fi.Mode.IsRegular():
		// Replaced, it keeps its owner.
		if old, err := s.firstHeader(ctx, sp, p); err == nil {
			hdr.Uid, hdr.Gid = old.Uid, old.Gid
		}
	case err != nil && !errors.Is(err, ErrNotFound):
		return err
	}
	return s.putEntry(ctx, sp, dir, p, hdr, r)
}

// parentDir checks that p's parent is a directory (following a symlink) and returns it.
func (s *Service) parentDir(ctx context.Context, sp *spot, p string) (string, error) {
	parent := path.Dir(p)
	at, fi, err := s.statFollow(ctx, sp, parent)
	if err != nil {
		return "", err
	}
	if !fi.IsDir() {
		return "", errorf(ErrInvalid, "%s is not a directory", shown(sp.where(parent)))
	}
	return at, nil
}

// firstHeader is the tar header of the entry at p (without its content).
func (s *Service) firstHeader(ctx context.Context, sp *spot, p string) (*tar.Header, error) {
	res, err := s.api.CopyFromContainer(ctx, sp.cid, client.CopyFromContainerOptions{SourcePath: sp.enginePath(p)})
	if err != nil {
		return nil, sp.archiveErr("stat", p, err)
	}
	defer res.Content.Close()
	return tar.NewReader(res.Content).Next()
}

// putEntry streams a one-entry tar (hdr, then exactly hdr.Size bytes of body) into the
// directory dir of the container; p names the entry in errors.
func (s *Service) putEntry(ctx context.Context, sp *spot, dir, p string, hdr *tar.Header, body io.Reader) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(hdr)
		if err == nil && hdr.Size > 0 {
			var n int64
			n, err = io.CopyN(tw, body, hdr.Size)
			if err == io.EOF {
				err = fmt.Errorf("content ended after %d of %d bytes", n, hdr.Size)
			}
		}
		if err == nil {
			err = tw.Close()
		}
		_ = pw.CloseWithError(err)
		done <- err
	}()
	_, err := s.api.CopyToContainer(ctx, sp.cid, client.CopyToContainerOptions{
		DestinationPath: sp.enginePath(dir),
		Content:         pr,
	})
	_ = pr.CloseWithError(errors.New("upload ended"))
	werr := <-done
	if err != nil {
		return sp.archiveErr("write", p, err)
	}
	if werr != nil {
		return fmt.Errorf("write %s: %w", shown(sp.where(p)), werr)
	}
	return nil
}

// hostOwner is who a new entry at p of a home opened directly is to belong to: the owner of
// the file it replaces, else of the directory it is made in. So a file keeps its owner when
// it is replaced, as one put through a container does, and what the server writes belongs
// to whoever the directory's owner is inside containers (a container running as another
// user; an engine that remaps user IDs). ok is false when the server cannot give files away
// (it does not run as root) or cannot tell.
func hostOwner(sp *spot, p string) (uid, gid int, ok bool) {
	if os.Geteuid() != 0 {
		return 0, 0, false
	}
	st, err := sp.root.Lstat(rel(p))
	if err != nil || !st.Mode().IsRegular() {
		st, err = sp.root.Stat(rel(path.Dir(p)))
	}
	if err != nil {
		return 0, 0, false
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(sys.Uid), int(sys.Gid), true
}

// writeHost writes a file of the home opened directly: into a new file beside it first,
// renamed over the old one when complete, so a failed upload leaves the old file as it was.
func writeHost(sp *spot, p string, r io.Reader, size int64, mode fs.FileMode, mtime time.Time) error {
	where := sp.where(p)
	if st, err := sp.root.Lstat(rel(p)); err == nil && st.IsDir() {
		return errorf(ErrConflict, "%s is a directory", shown(where))
	}
	if st, err := sp.root.Stat(rel(path.Dir(p))); err != nil || !st.IsDir() {
		if err != nil {
			return hostErr("write", sp.where(path.Dir(p)), err)
		}
		return errorf(ErrInvalid, "%s is not a directory", shown(sp.where(path.Dir(p))))
	}
	uid, gid, chown := hostOwner(sp, p)
	// Written beside the home's top, then renamed into place (one file system): a server
	// killed meanwhile leaves it there, where the next put finds and removes it.
	sweepUploads(sp.root, time.Now().Add(-staleUpload))
	tmp := uploadPrefix + randomSuffix(12)
	f, err := sp.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return hostErr("write", where, err)
	}
	n, err := io.CopyN(f, r, size)
	if err == io.EOF {
		err = fmt.Errorf("content ended after %d of %d bytes", n, size)
	}
	if err == nil && chown {
		err = f.Chown(uid, gid)
	}
	if err == nil {
		err = f.Chmod(mode.Perm())
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = sp.root.Chtimes(tmp, time.Time{}, mtime)
	}
	if err == nil {
		err = sp.root.Rename(tmp, rel(p))
	}
	if err != nil {
		_ = sp.root.Remove(tmp)
		return hostErr("write", where, err)
	}
	return nil
}

// uploadPrefix starts the name of a put under way in a home opened directly; staleUpload is
// how long after its last write one is taken for the leftover of a server that was killed.
const (
	uploadPrefix = ".wm-upload-"
	staleUpload  = time.Hour
)

// sweepUploads removes from the top of root the puts under way that were last written
// before cutoff.
func sweepUploads(root *os.Root, cutoff time.Time) {
	d, err := root.Open(".")
	if err != nil {
		return
	}
	defer d.Close()
	ents, err := d.ReadDir(-1)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), uploadPrefix) || !e.Type().IsRegular() {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(cutoff) {
			_ = root.Remove(e.Name())
		}
	}
}

// MakeDir makes the directory p of place with the permission bits of mode. It is audited as
// "mkdir".
func (s *Service) MakeDir(ctx context.Context, id backend.Identity, place backend.Place, p string, mode fs.FileMode) error {
	err := s.makeDir(ctx, id, place, p, mode)
	s.record(id, "mkdir", auditFile(id, place, p), err)
	return err
}

func (s *Service) makeDir(ctx context.Context, id backend.Identity, place backend.Place, p string, mode fs.FileMode) error {
	if err := checkPath(place, p); err != nil {
		return err
	}
	sp, err := s.open(ctx, id, place)
	if err != nil {
		return err
	}
	defer sp.close()
	if err := sp.writable(p); err != nil {
		return err
	}
	if p == "/" {
		return errorf(ErrConflict, "%s: already exists", shown(sp.where(p)))
	}
	if sp.root != nil {
		uid, gid, chown := hostOwner(sp, p)
		if err := sp.root.Mkdir(rel(p), mode.Perm()); err != nil {
			return hostErr("mkdir", sp.where(p), err)
		}
		if chown {
			if err := sp.root.Lchown(rel(p), uid, gid); err != nil {
				return hostErr("mkdir", sp.where(p), err)
			}
		}
		return nil
	}
	dir, err := s.parentDir(ctx, sp, p)
	if err != nil {
		return err
	}
	if _, err := s.engineStat(ctx, sp, p); err == nil {
		return errorf(ErrConflict, "mkdir %s: already exists", shown(sp.where(p)))
	} else if !errors.Is(err, ErrNotFound) {
		return err
	}
	hdr := &tar.Header{Typeflag: tar.TypeDir, Name: path.Base(p) + "/", Mode: int64(mode.Perm()), ModTime: time.Now()}
	return s.putEntry(ctx, sp, dir, p, hdr, nil)
}

// RemovePath removes the file or empty directory p of the home opened directly. Elsewhere
// (in a container, a home reached through one) it is ErrUnsupported. It is audited as
// "delete".
func (s *Service) RemovePath(ctx context.Context, id backend.Identity, place backend.Place, p string) error {
	err := s.hostOnly(ctx, id, place, p, "delete", func(sp *spot) error {
		if p == "/" {
			return errorf(ErrInvalid, "%s cannot be removed", shown(sp.where(p)))
		}
		if err := sp.root.Remove(rel(p)); err != nil {
			return hostErr("delete", sp.where(p), err)
		}
		return nil
	})
	s.record(id, "delete", auditFile(id, place, p), err)
	return err
}

// RenamePath renames from to to, both in place, in the home opened directly. Elsewhere it
// is ErrUnsupported. It is audited as "rename".
func (s *Service) RenamePath(ctx context.Context, id backend.Identity, place backend.Place, from, to string) error {
	err := checkPath(place, to)
	if err == nil {
		err = s.hostOnly(ctx, id, place, from, "rename", func(sp *spot) error {
			if from == "/" || to == "/" {
				return errorf(ErrInvalid, "%s cannot be renamed", shown(sp.where("/")))
			}
			if err := sp.root.Rename(rel(from), rel(to)); err != nil {
				return hostErr("rename", sp.where(from), err)
			}
			return nil
		})
	}
	s.record(id, "rename", auditFile(id, place, from)+" -> "+shown(whereIn(place, to)), err)
	return err
}

// hostOnly runs do on the home opened directly, and refuses where the archive API would be
// needed.
func (s *Service) hostOnly(ctx context.Context, id backend.Identity, place backend.Place, p, what string, do func(*spot) error) error {
	if err := checkPath(place, p); err != nil {
		return err
	}
	sp, err := s.open(ctx, id, place)
	if err != nil {
		return err
	}
	defer sp.close()
	if err := sp.writable(p); err != nil {
		return err
	}
	if sp.root == nil {
		if place.IsHome() {
			return errorf(ErrUnsupported, "%s in your home is not supported here; use a shell in one of your containers", what)
		}
		return errorf(ErrUnsupported, "%s in a container is not supported here; use a shell in %s (exec %s -- ...)",
			what, place.Container(), place.Container())
	}
	return do(sp)
}

// SetFileAttrs changes the mode, modification time or size of p of place, following a final
// symlink. In a container (and a home in a volume) only a directory's mode and time can be
// changed, by writing its entry again with the same owner; anything else there is
// ErrUnsupported. It is audited as "setattr".
func (s *Service) SetFileAttrs(ctx context.Context, id backend.Identity, place backend.Place, p string, attrs backend.FileAttrs) error {
	err := s.setFileAttrs(ctx, id, place, p, attrs)
	s.record(id, "setattr", auditFile(id, place, p), err)
	return err
}

func (s *Service) setFileAttrs(ctx context.Context, id backend.Identity, place backend.Place, p string, attrs backend.FileAttrs) error {
	if err := checkPath(place, p); err != nil {
		return err
	}
	sp, err := s.open(ctx, id, place)
	if err != nil {
		return err
	}
	defer sp.close()
	if err := sp.writable(p); err != nil {
		return err
	}
	if sp.root != nil {
		return setHostAttrs(sp, p, attrs)
	}
	at, fi, err := s.statFollow(ctx, sp, p)
	if err != nil {
		return err
	}
	if attrs.Size != nil && *attrs.Size != fi.Size {
		return errorf(ErrUnsupported, "changing the size of %s is not supported in a container", shown(sp.where(p)))
	}
	mode, mtime := fi.Mode.Perm(), fi.ModTime
	if attrs.Mode != nil {
		mode = attrs.Mode.Perm()
	}
	if attrs.ModTime != nil {
		mtime = *attrs.ModTime
	}
	if mode == fi.Mode.Perm() && mtime.Unix() == fi.ModTime.Unix() {
		return nil
	}
	if at == "/" {
		return errorf(ErrUnsupported, "changing %s is not supported", shown(sp.where(p)))
	}
	dir := path.Dir(at)
	switch {
	case fi.IsDir():
		hdr, err := s.firstHeader(ctx, sp, at)
		if err != nil {
			return fmt.Errorf("setattr %s: %w", shown(sp.where(p)), err)
		}
		hdr = &tar.Header{Typeflag: tar.TypeDir, Name: path.Base(at) + "/", Uid: hdr.Uid, Gid: hdr.Gid,
			Mode: hdr.Mode&^0o777 | int64(mode), ModTime: mtime}
		return s.putEntry(ctx, sp, dir, p, hdr, nil)
	case fi.Mode.IsRegular():
		// Writing the entry again would need its content streamed out and back in at once,
		// and the engine serialises archive calls on one container: refused instead.
		return errorf(ErrUnsupported, "changing the mode or time of %s is not supported in a container; upload it again (sftp put -p, scp -p)",
			shown(sp.where(p)))
	}
	return errorf(ErrUnsupported, "changing %s is not supported: not a file or directory", shown(sp.where(p)))
}

func setHostAttrs(sp *spot, p string, attrs backend.FileAttrs) error {
	where := sp.where(p)
	if attrs.Size != nil {
		f, err := sp.root.OpenFile(rel(p), os.O_WRONLY, 0)
		if err != nil {
			return hostErr("truncate", where, err)
		}
		err = f.Truncate(*attrs.Size)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return hostErr("truncate", where, err)
		}
	}
	if attrs.Mode != nil {
		if err := sp.root.Chmod(rel(p), attrs.Mode.Perm()); err != nil {
			return hostErr("chmod", where, err)
		}
	}
	if attrs.ModTime != nil {
		if err := sp.root.Chtimes(rel(p), time.Time{}, *attrs.ModTime); err != nil {
			return hostErr("touch", where, err)
		}
	}
	return nil
}
