package kube

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"whalemountain/backend"
)

// Files in pods are the places of kind backend.KindPod, reached the way kubectl cp does:
// tar, run in the pod's first container through exec, and its stream read or written
// here; the other changes (mkdir, rm, mv, chmod, touch, truncate) are one small sh script
// each, run the same way. Every path is absolute in the pod and cleaned first: ".." goes
// up inside the pod and stops at its root, so no path names anything but the pod's own
// files, and the pod is resolved (and authorised) like every other call. A place of any
// other kind is no such pod.

// ErrNoFile: no such file or directory in the pod. It is backend.ErrNoFile.
var ErrNoFile = backend.ErrNoFile

// ErrNoTar: the pod's image has no tar (or no sh), so no file can be copied out of it.
var ErrNoTar = errors.New("no tar in the pod")

// ErrUnsupported: the pod's image lacks the tool an operation needs. It is
// backend.ErrUnsupported.
var ErrUnsupported = backend.ErrUnsupported

// maxPathLen is the longest path in a pod a file operation takes, in bytes.
const maxPathLen = 4096

var (
	_ backend.FileStater  = (*Service)(nil)
	_ backend.DirLister   = (*Service)(nil)
	_ backend.FileReader  = (*Service)(nil)
	_ backend.FileWriter  = (*Service)(nil)
	_ backend.DirMaker    = (*Service)(nil)
	_ backend.PathRemover = (*Service)(nil)
	_ backend.PathRenamer = (*Service)(nil)
	_ backend.AttrSetter  = (*Service)(nil)
)

// tarScripts: $1 the directory, $2 the entry (stat, read); each prints a tar stream of what
// was asked on stdout. 127 says tar is missing.
const (
	tarCheck   = `command -v tar >/dev/null 2>&1 || exit 127; cd -- "$1" || exit 2; `
	tarOne     = tarCheck + `exec tar cf - --no-recursion -- "$2"`
	tarFile    = tarCheck + `exec tar cf - -- "$2"`
	tarListing = tarCheck + `for f in * .[!.]* ..?*; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\n' "$f"; fi; done | tar cf - --no-recursion -T -`
)

// podOf is the pod a place names; any other kind of place is no such pod.
func podOf(place backend.Place) (string, error) {
	if place.Kind() != backend.KindPod {
		return "", notFound(place.Name())
	}
	return place.Pod(), nil
}

// cleanPath checks an absolute path in a pod and cleans it: ".." goes up and stops at the
// pod's root, as the kernel resolves "/.." to "/".
func cleanPath(p string) (string, error) {
	if p == "" || p[0] != '/' || len(p) > maxPathLen || strings.ContainsRune(p, 0) {
		return "", errorf(ErrNoFile, "no such file")
	}
	return path.Clean(p), nil
}

// splitPath is a cleaned path as the directory and the entry the tar scripts take.
func splitPath(p string) (dir, entry string) {
	if p == "/" {
		return "/", "."
	}
	return path.Dir(p), path.Base(p)
}

// linkIn is where a symlink in dir with target raw leads in the same pod: an absolute
// target as it is, a relative one from dir; cleaned either way, so never above the root.
func linkIn(dir, raw string) string {
	if raw == "" {
		return ""
	}
	if raw[0] == '/' {
		return path.Clean(raw)
	}
	return path.Join(dir, raw)
}

// tarStream runs script in the pod ref with dir and entry and returns its tar stream; done
// waits for the end and says how it went.
func (s *Service) tarStream(ctx context.Context, id backend.Identity, ref, script, dir, entry string) (*tar.Reader, func() error, func(), error) {
	e, err := s.Exec(ctx, id, ref, backend.ExecSpec{Cmd: []string{"sh", "-c", script, "sh", dir, entry}})
	if err != nil {
		return nil, nil, nil, err
	}
	_ = e.Stdin().Close()
	var stderr limitedBuffer
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_, _ = io.Copy(&stderr, e.Stderr())
	}()
	done := func() error {
		_, _ = io.Copy(io.Discard, e.Stdout())
		wg.Wait()
		code, err := e.Wait(ctx)
		if err != nil {
			return err
		}
		return tarExit(ref, code, string(stderr.b))
	}
	return tar.NewReader(e.Stdout()), done, func() { _ = e.Close() }, nil
}

// tarExit turns tar's exit status and complaint into the error users see.
func tarExit(ref string, code int, stderr string) error {
	if code == 127 {
		return errorf(ErrNoTar, "pod %s has no tar: files cannot be copied out of it (its image needs tar, as for kubectl cp)", shown(ref))
	}
	return scriptExit(ref, "tar", code, stderr)
}

// scriptExit turns the exit status and complaint of a file operation's tool in the pod
// into the error users see.
func scriptExit(ref, tool string, code int, stderr string) error {
	switch {
	case code == 0:
		return nil
	case code == 127:
		return errorf(ErrUnsupported, "pod %s has no %s: its image needs it for this", shown(ref), tool)
	case strings.Contains(stderr, "No such file") || strings.Contains(stderr, "can't cd") || strings.Contains(stderr, "can't open") || code == 2:
		return errorf(ErrNoFile, "no such file")
	case strings.Contains(stderr, "ermission denied") || strings.Contains(stderr, "Read-only file system"):
		return errorf(ErrPermission, "permission denied")
	case strings.Contains(stderr, "File exists"):
		return errorf(ErrConflict, "it already exists")
	case strings.Contains(stderr, "ot empty"):
		return errorf(ErrConflict, "the directory is not empty")
	case strings.Contains(stderr, "s a directory"):
		return errorf(ErrConflict, "it is a directory")
	case strings.Contains(stderr, "ot a directory"):
		return errorf(ErrConflict, "not a directory")
	}
	return errorf(ErrConflict, "%s in pod %s failed (exit %d): %s", tool, shown(ref), code, oneLine(stderr, maxReason))
}

// infoOf is a tar header of an entry of dir as a FileInfo.
func infoOf(h *tar.Header, dir string) backend.FileInfo {
	fi := backend.FileInfo{Name: path.Base(strings.TrimSuffix(h.Name, "/")), Size: h.Size, Mode: h.FileInfo().Mode(),
		ModTime: h.ModTime.UTC(), UID: h.Uid, GID: h.Gid}
	if h.Typeflag == tar.TypeSymlink {
		fi.LinkTarget = linkIn(dir, h.Linkname)
	}
	if fi.Mode.IsDir() || fi.Mode&fs.ModeSymlink != 0 {
		fi.Size = 0
	}
	return fi
}

// StatPath describes the path p (absolute) in the pod place, without following a final
// symlink (LinkTarget says where one leads in the pod).
func (s *Service) StatPath(ctx context.Context, id backend.Identity, place backend.Place, p string) (backend.FileInfo, error) {
	ref, err := podOf(place)
	if err != nil {
		return backend.FileInfo{}, err
	}
	if p, err = cleanPath(p); err != nil {
		return backend.FileInfo{}, err
	}
	dir, entry := splitPath(p)
	tr, done, closeIt, err := s.tarStream(ctx, id, ref, tarOne, dir, entry)
	if err != nil {
		return backend.FileInfo{}, err
	}
	defer closeIt()
	h, herr := tr.Next()
	if err := done(); err != nil {
		return backend.FileInfo{}, err
	}
	if herr != nil {
		return backend.FileInfo{}, errorf(ErrNoFile, "no such file")
	}
	fi := infoOf(h, dir)
	if p == "/" {
		fi.Name = "/"
	}
	return fi, nil
}

// ListDir lists the directory dir (absolute) in the pod place; never truncated.
func (s *Service) ListDir(ctx context.Context, id backend.Identity, place backend.Place, dir string) ([]backend.FileInfo, bool, error) {
	ref, err := podOf(place)
	if err != nil {
		return nil, false, err
	}
	if dir, err = cleanPath(dir); err != nil {
		return nil, false, err
	}
	tr, done, closeIt, err := s.tarStream(ctx, id, ref, tarListing, dir, "")
	if err != nil {
		return nil, false, err
	}
	defer closeIt()
	var out []backend.FileInfo
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		out = append(out, infoOf(h, dir))
	}
	if err := done(); err != nil {
		return nil, false, err
	}
	return out, false, nil
}

// ReadFile opens the regular file p (absolute) in the pod place; close it when done.
func (s *Service) ReadFile(ctx context.Context, id backend.Identity, place backend.Place, p string) (io.ReadCloser, backend.FileInfo, error) {
	ref, err := podOf(place)
	if err != nil {
		return nil, backend.FileInfo{}, err
	}
	if p, err = cleanPath(p); err != nil {
		return nil, backend.FileInfo{}, err
	}
	dir, entry := splitPath(p)
	tr, done, closeIt, err := s.tarStream(ctx, id, ref, tarFile, dir, entry)
	if err != nil {
		return nil, backend.FileInfo{}, err
	}
	h, herr := tr.Next()
	if herr != nil {
		err := done()
		closeIt()
		if err == nil {
			err = errorf(ErrNoFile, "no such file")
		}
		return nil, backend.FileInfo{}, err
	}
	fi := infoOf(h, dir)
	if !fi.Mode.IsRegular() {
		closeIt()
		return nil, backend.FileInfo{}, errorf(ErrInvalid, "%s is not a regular file", shown(p))
	}
	return &podFile{Reader: io.LimitReader(tr, fi.Size), close: closeIt}, fi, nil
}

// podFile is a file's content read from tar's stream.
type podFile struct {
	io.Reader
	close func()
	once  sync.Once
}

func (f *podFile) Close() error {
	f.once.Do(f.close)
	return nil
}

// tarRecord is GNU tar's default record: an archive padded to it ends without the writer
// having to close its side (some kubelets never pass the end of stdin on).
const tarRecord = 20 * 512

// tarPut unpacks the archive on stdin into $1, keeping the names and modes it gives.
const tarPut = tarCheck + `exec tar xf - --no-same-owner`

// WriteFile writes the file p (absolute) in the pod place, whole, from r (size bytes),
// with mode and mtime, as `kubectl cp` does: a one-file archive unpacked by tar in the pod.
func (s *Service) WriteFile(ctx context.Context, id backend.Identity, place backend.Place, p string, r io.Reader, size int64, mode fs.FileMode, mtime time.Time) error {
	ref, err := podOf(place)
	if err != nil {
		return err
	}
	if p, err = cleanPath(p); err != nil || p == "/" {
		return errorf(ErrInvalid, "cannot write %s", shown(p))
	}
	dir, entry := splitPath(p)
	e, err := s.Exec(ctx, id, ref, backend.ExecSpec{Cmd: []string{"sh", "-c", tarPut, "sh", dir, entry}})
	if err != nil {
		return err
	}
	defer e.Close()
	var stderr limitedBuffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(&stderr, e.Stderr()) }()
	go func() { defer wg.Done(); _, _ = io.Copy(io.Discard, e.Stdout()) }()
	werr := writeOneFileTar(e.Stdin(), entry, r, size, mode, mtime)
	_ = e.Stdin().Close()
	wg.Wait()
	code, err := e.Wait(ctx)
	if err != nil {
		return err
	}
	if err := tarExit(ref, code, string(stderr.b)); err != nil {
		return err
	}
	if werr != nil {
		return apiErr("copy "+shown(p)+" into pod "+shown(ref), werr)
	}
	return nil
}

// writeOneFileTar writes an archive of one regular file to w, padded to a whole record.
func writeOneFileTar(w io.Writer, name string, r io.Reader, size int64, mode fs.FileMode, mtime time.Time) error {
	cw := &countingWriter{w: w}
	tw := tar.NewWriter(cw)
	if mtime.IsZero() {
		mtime = time.Now()
	}
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: int64(mode.Perm()), ModTime: mtime, Format: tar.FormatPAX}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	if _, err := io.CopyN(tw, r, size); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if pad := (tarRecord - cw.n%tarRecord) % tarRecord; pad > 0 {
		_, err := cw.Write(make([]byte, pad))
		return err
	}
	return nil
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.w.Write(b)
	c.n += int64(n)
	return n, err
}

// The scripts of the other operations: $1 (and $2) are absolute, clean paths, so no
// argument can be read as an option. An exit status of 127 says a tool is missing.
const (
	// mkdir $1 with mode $2.
	scriptMkdir = `exec mkdir -m "$2" "$1"`
	// rm $1: a directory only when empty, and never through a symlink to one.
	scriptRemove = `if [ -d "$1" ] && [ ! -L "$1" ]; then exec rmdir "$1"; fi; exec rm "$1"`
	// mv $1 $2 in place of $2 (never into a directory $2).
	scriptRename = `if [ -d "$2" ] && [ ! -L "$2" ]; then echo "$2: Is a directory" >&2; exit 1; fi; exec mv -f "$1" "$2"`
	// $2 the size ("" none), $3 the mode ("" none), $4 the time as touch -t takes it in UTC
	// ("" none), in that order, since truncating changes the time.
	scriptAttrs = `if [ -n "$2" ]; then truncate -s "$2" "$1" || exit; fi; ` +
		`if [ -n "$3" ]; then chmod "$3" "$1" || exit; fi; ` +
		`if [ -n "$4" ]; then TZ=UTC0 touch -c -t "$4" "$1" || exit; fi`
)

// runScript runs a file operation's script in the pod ref with args and says how it went:
// tool names what the image needs for it.
func (s *Service) runScript(ctx context.Context, id backend.Identity, ref, tool, script string, args ...string) error {
	e, err := s.Exec(ctx, id, ref, backend.ExecSpec{Cmd: append([]string{"sh", "-c", script, "sh"}, args...)})
	if err != nil {
		return err
	}
	defer e.Close()
	_ = e.Stdin().Close()
	var stderr limitedBuffer
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _, _ = io.Copy(&stderr, e.Stderr()) }()
	go func() { defer wg.Done(); _, _ = io.Copy(io.Discard, e.Stdout()) }()
	wg.Wait()
	code, err := e.Wait(ctx)
	if err != nil {
		return err
	}
	return scriptExit(ref, tool, code, string(stderr.b))
}

// fileTarget is how the audit log names a path in a pod: "alice/lab:/tmp/x".
func fileTarget(id backend.Identity, ref, p string) string {
	return id.User + "/" + shown(ref+":"+p)
}

// change runs one change (what, for the audit log) on the path p of the pod place, unless
// p is the pod's root, and records it.
func (s *Service) change(ctx context.Context, id backend.Identity, place backend.Place, p, what string, do func(ref, p string) error) error {
	ref, err := podOf(place)
	if err == nil {
		p, err = cleanPath(p)
	}
	if err == nil && p == "/" {
		err = errorf(ErrInvalid, "the top of pod %s cannot be changed here", shown(ref))
	}
	if err == nil {
		err = do(ref, p)
	}
	s.record(id, what, fileTarget(id, place.Name(), p), err)
	return err
}

// MakeDir makes the directory p (absolute) in the pod place with mode. It is audited as
// "mkdir".
func (s *Service) MakeDir(ctx context.Context, id backend.Identity, place backend.Place, p string, mode fs.FileMode) error {
	return s.change(ctx, id, place, p, "mkdir", func(ref, p string) error {
		return s.runScript(ctx, id, ref, "mkdir", scriptMkdir, p, fmt.Sprintf("%o", mode.Perm()))
	})
}

// RemovePath removes the file, symlink or empty directory p (absolute) in the pod place.
// It is audited as "delete".
func (s *Service) RemovePath(ctx context.Context, id backend.Identity, place backend.Place, p string) error {
	return s.change(ctx, id, place, p, "delete", func(ref, p string) error {
		return s.runScript(ctx, id, ref, "rm", scriptRemove, p)
	})
}

// RenamePath renames from to to in the pod place, replacing a file at to (never a
// directory). It is audited as "rename".
func (s *Service) RenamePath(ctx context.Context, id backend.Identity, place backend.Place, from, to string) error {
	return s.change(ctx, id, place, from, "rename", func(ref, from string) error {
		to, err := cleanPath(to)
		if err != nil {
			return err
		}
		if to == "/" {
			return errorf(ErrInvalid, "the top of pod %s cannot be replaced", shown(ref))
		}
		return s.runScript(ctx, id, ref, "mv", scriptRename, from, to)
	})
}

// SetFileAttrs changes the size, mode or modification time of p (absolute) in the pod
// place, following a final symlink, with truncate, chmod and touch in the pod. It is
// audited as "setattr".
func (s *Service) SetFileAttrs(ctx context.Context, id backend.Identity, place backend.Place, p string, attrs backend.FileAttrs) error {
	return s.change(ctx, id, place, p, "setattr", func(ref, p string) error {
		args, tool := attrArgs(attrs)
		if tool == "" {
			return nil
		}
		return s.runScript(ctx, id, ref, tool, scriptAttrs, append([]string{p}, args...)...)
	})
}

// attrArgs are scriptAttrs' arguments after the path for attrs (size, mode, time; "" for
// what stays) and the tools they need, in words ("" when nothing changes).
func attrArgs(attrs backend.FileAttrs) ([]string, string) {
	args := make([]string, 3)
	var tools []string
	if attrs.Size != nil {
		args[0] = strconv.FormatInt(max(*attrs.Size, 0), 10)
		tools = append(tools, "truncate")
	}
	if attrs.Mode != nil {
		args[1] = fmt.Sprintf("%04o", attrs.Mode.Perm())
		tools = append(tools, "chmod")
	}
	if attrs.ModTime != nil {
		args[2] = attrs.ModTime.UTC().Format("200601021504.05")
		tools = append(tools, "touch")
	}
	return args, strings.Join(tools, " or ")
}
