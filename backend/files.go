package backend

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"time"
)

// Files: the places a user reaches through the file tree (sftp, scp) — their own containers
// and pods, their persistent home, the site's datasets, the workspaces of their groups and,
// for TAs, students' homes — and what can be done with a path in one.
//
// A Place names one without saying how it is reached: each backend room serves the places
// of its own kinds (the container room: homes, containers, datasets, groups; the pod room:
// pods) and answers every other place as not found. The file operations are small
// capability interfaces, each one method; a room implements those it can do, and the file
// tree offers an operation in a place only where the place's room has it.

// PlaceKind is the kind of a Place.
type PlaceKind uint8

// The kinds of place.
const (
	KindHome      PlaceKind = iota // the caller's own persistent home (the zero Place)
	KindContainer                  // one of the caller's containers, by name
	KindPod                        // one of the caller's pods, by name
	KindDataset                    // a dataset of the site, by name (read-only)
	KindGroup                      // the workspace of one of the caller's groups, by path
	KindHomeOf                     // another user's home, as a TA reads it, by user name
)

// Place is where a path lives: a kind and a name, compared with ==. Which object it is, and
// whether the caller may reach it, is for the room that serves the kind to decide, on every
// call: a Place grants nothing. The zero Place is the caller's home.
type Place struct {
	kind PlaceKind
	name string
}

// Home is the caller's persistent home.
var Home = Place{}

// InContainer is the caller's container of that name.
func InContainer(name string) Place { return Place{kind: KindContainer, name: name} }

// InPod is the caller's pod of that name.
func InPod(name string) Place { return Place{kind: KindPod, name: name} }

// InDataset is the dataset of that name.
func InDataset(name string) Place { return Place{kind: KindDataset, name: name} }

// InGroup is the workspace of that group (a path: os-2026/team-a).
func InGroup(group string) Place { return Place{kind: KindGroup, name: group} }

// InHomeOf is user's home, as a TA reads it.
func InHomeOf(user string) Place { return Place{kind: KindHomeOf, name: user} }

// Kind is the place's kind.
func (p Place) Kind() PlaceKind { return p.kind }

// Name is the place's name as given (empty for the home).
func (p Place) Name() string { return p.name }

// IsHome reports whether p is the caller's own home.
func (p Place) IsHome() bool { return p == Place{} }

// IsShared reports whether p is a dataset, a group workspace or another user's home.
func (p Place) IsShared() bool {
	return p.kind == KindDataset || p.kind == KindGroup || p.kind == KindHomeOf
}

// Container is the container's name when p is a container, else "".
func (p Place) Container() string { return p.nameIf(KindContainer) }

// Pod is the pod's name when p is a pod, else "".
func (p Place) Pod() string { return p.nameIf(KindPod) }

// Dataset is the dataset's name when p is a dataset, else "".
func (p Place) Dataset() string { return p.nameIf(KindDataset) }

// Group is the group's path when p is a group workspace, else "".
func (p Place) Group() string { return p.nameIf(KindGroup) }

// User is the user whose home p is, when p is another user's home, else "".
func (p Place) User() string { return p.nameIf(KindHomeOf) }

func (p Place) nameIf(k PlaceKind) string {
	if p.kind != k {
		return ""
	}
	return p.name
}

// FileInfo describes one file, directory or symlink of a place.
type FileInfo struct {
	Name    string // base name; "/" for the top of a place
	Size    int64
	Mode    fs.FileMode // type and permission bits
	ModTime time.Time
	UID     int // as the container (or host) numbers them; 0 when not known
	GID     int
	// LinkTarget is, for a symlink, the absolute, clean path it leads to in the same place;
	// empty when it leads outside the place or is not known.
	LinkTarget string
}

// IsDir reports whether the entry is a directory.
func (fi FileInfo) IsDir() bool { return fi.Mode.IsDir() }

// FileAttrs are the attributes AttrSetter changes; nil fields stay as they are.
type FileAttrs struct {
	Mode    *fs.FileMode // permission bits only
	ModTime *time.Time
	Size    *int64 // truncate or extend
}

// Errors of file operations, shared by every room that serves places.
var (
	// ErrNoFile: no such file or directory at that path of the place.
	ErrNoFile = errors.New("no such file")
	// ErrUnsupported: the operation cannot be done where the path lives (deleting a file in
	// a container through the engine's archive API, for instance).
	ErrUnsupported = errors.New("not supported")
)

// The file operations. Every path is absolute in its place ("/" is the place's top); a room
// refuses anything else as no such file. Every call carries the Identity and is authorised
// by the room: another user's container or pod reads exactly as one nobody has.

// FileStater describes a path without following a final symlink (LinkTarget says where one
// leads).
type FileStater interface {
	StatPath(ctx context.Context, id Identity, place Place, p string) (FileInfo, error)
}

// DirLister lists a directory; truncated says the list was cut at the room's limit.
type DirLister interface {
	ListDir(ctx context.Context, id Identity, place Place, p string) (entries []FileInfo, truncated bool, err error)
}

// FileReader opens a regular file (following a final symlink) and streams its content;
// close it when done. A stream that is also an io.ReaderAt may be read at any offset.
type FileReader interface {
	ReadFile(ctx context.Context, id Identity, place Place, p string) (io.ReadCloser, FileInfo, error)
}

// FileWriter writes a file whole from r (size bytes) with mode and mtime (zero: now).
type FileWriter interface {
	WriteFile(ctx context.Context, id Identity, place Place, p string, r io.Reader, size int64, mode fs.FileMode, mtime time.Time) error
}

// DirMaker makes a directory.
type DirMaker interface {
	MakeDir(ctx context.Context, id Identity, place Place, p string, mode fs.FileMode) error
}

// PathRemover removes a file, a symlink or an empty directory.
type PathRemover interface {
	RemovePath(ctx context.Context, id Identity, place Place, p string) error
}

// PathRenamer renames a path within one place.
type PathRenamer interface {
	RenamePath(ctx context.Context, id Identity, place Place, from, to string) error
}

// AttrSetter changes the mode, time or size of an existing path.
type AttrSetter interface {
	SetFileAttrs(ctx context.Context, id Identity, place Place, p string, attrs FileAttrs) error
}
