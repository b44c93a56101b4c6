package kube

import (
	"archive/tar"
	"context"
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"whalemountain/backend"
)

// Files in pods are read the way kubectl cp does: tar, run in the pod's container through
// exec, and its stream read here. Nothing is written in a pod this way (yet).

// ErrNoFile: no such file or directory in the pod.
var ErrNoFile = errors.New("no such file")

// ErrNoTar: the pod's image has no tar (or no sh), so no file can be copied out of it.
var ErrNoTar = errors.New("no tar in the pod")

// FileInfo is one path in a pod, as tar describes it.
type FileInfo struct {
	Name       string // base name
	Size       int64
	Mode       fs.FileMode // type and permission bits
	ModTime    time.Time
	LinkTarget string // for a symlink, as written in it
}

// IsDir reports whether the entry is a directory.
func (fi FileInfo) IsDir() bool { return fi.Mode.IsDir() }

// tarScripts: $1 the directory, $2 the entry (stat, read); each prints a tar stream of what
// was asked on stdout. 127 says tar is missing.
const (
	tarCheck   = `command -v tar >/dev/null 2>&1 || exit 127; cd -- "$1" || exit 2; `
	tarOne     = tarCheck + `exec tar cf - --no-recursion -- "$2"`
	tarFile    = tarCheck + `exec tar cf - -- "$2"`
	tarListing = tarCheck + `for f in * .[!.]* ..?*; do if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\n' "$f"; fi; done | tar cf - --no-recursion -T -`
)

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
	switch {
	case code == 0:
		return nil
	case code == 127:
		return errorf(ErrNoTar, "pod %s has no tar: files cannot be copied out of it (its image needs tar, as for kubectl cp)", shown(ref))
	case strings.Contains(stderr, "No such file") || strings.Contains(stderr, "can't cd") || strings.Contains(stderr, "can't open") || code == 2:
		return errorf(ErrNoFile, "no such file")
	case strings.Contains(stderr, "ermission denied"):
		return errorf(ErrPermission, "permission denied")
	}
	return errorf(ErrConflict, "tar in pod %s failed (exit %d): %s", shown(ref), code, oneLine(stderr, maxReason))
}

func infoOf(h *tar.Header) FileInfo {
	fi := FileInfo{Name: path.Base(strings.TrimSuffix(h.Name, "/")), Size: h.Size, Mode: h.FileInfo().Mode(), ModTime: h.ModTime.UTC()}
	if h.Typeflag == tar.TypeSymlink {
		fi.LinkTarget = h.Linkname
	}
	if fi.Mode.IsDir() || fi.Mode&fs.ModeSymlink != 0 {
		fi.Size = 0
	}
	return fi
}

// cleanPath checks an absolute path in a pod and splits it into directory and entry.
func cleanPath(p string) (dir, entry string, err error) {
	if p == "" || p[0] != '/' || strings.ContainsRune(p, 0) || path.Clean(p) != p {
		return "", "", errorf(ErrNoFile, "no such file")
	}
	if p == "/" {
		return "/", ".", nil
	}
	return path.Dir(p), path.Base(p), nil
}

// PodStat describes the path p (absolute) in the pod ref.
func (s *Service) PodStat(ctx context.Context, id backend.Identity, ref, p string) (FileInfo, error) {
	dir, entry, err := cleanPath(p)
	if err != nil {
		return FileInfo{}, err
	}
	tr, done, closeIt, err := s.tarStream(ctx, id, ref, tarOne, dir, entry)
	if err != nil {
		return FileInfo{}, err
	}
	defer closeIt()
	h, herr := tr.Next()
	if err := done(); err != nil {
		return FileInfo{}, err
	}
	if herr != nil {
		return FileInfo{}, errorf(ErrNoFile, "no such file")
	}
	fi := infoOf(h)
	if p == "/" {
		fi.Name = "/"
	}
	return fi, nil
}

// PodListDir lists the directory dir (absolute) in the pod ref.
func (s *Service) PodListDir(ctx context.Context, id backend.Identity, ref, dir string) ([]FileInfo, error) {
	if _, _, err := cleanPath(dir); err != nil {
		return nil, err
	}
	tr, done, closeIt, err := s.tarStream(ctx, id, ref, tarListing, dir, "")
	if err != nil {
		return nil, err
	}
	defer closeIt()
	var out []FileInfo
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		out = append(out, infoOf(h))
	}
	if err := done(); err != nil {
		return nil, err
	}
	return out, nil
}

// PodReadFile opens the regular file p (absolute) in the pod ref; close it when done.
func (s *Service) PodReadFile(ctx context.Context, id backend.Identity, ref, p string) (io.ReadCloser, FileInfo, error) {
	dir, entry, err := cleanPath(p)
	if err != nil {
		return nil, FileInfo{}, err
	}
	tr, done, closeIt, err := s.tarStream(ctx, id, ref, tarFile, dir, entry)
	if err != nil {
		return nil, FileInfo{}, err
	}
	h, herr := tr.Next()
	if herr != nil {
		err := done()
		closeIt()
		if err == nil {
			err = errorf(ErrNoFile, "no such file")
		}
		return nil, FileInfo{}, err
	}
	fi := infoOf(h)
	if !fi.Mode.IsRegular() {
		closeIt()
		return nil, FileInfo{}, errorf(ErrInvalid, "%s is not a regular file", shown(p))
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

// PodWriteFile writes the file p (absolute) in the pod ref, whole, from r (size bytes),
// with mode and mtime, as `kubectl cp` does: a one-file archive unpacked by tar in the pod.
func (s *Service) PodWriteFile(ctx context.Context, id backend.Identity, ref, p string, r io.Reader, size int64, mode fs.FileMode, mtime time.Time) error {
	dir, entry, err := cleanPath(p)
	if err != nil || p == "/" {
		return errorf(ErrInvalid, "cannot write %s", shown(p))
	}
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
