package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/volume"
	"github.com/moby/moby/client"
)

// A group workspace with a size limit gets a file system of its own, of that size, where the
// server can make one: an ext4 image file (sparse: it takes host disk only as it fills)
// loop-mounted under the workspace directory, whose data directory is the workspace's
// volume (the local driver's bind of it). Writes past the size then fail with "No space left
// on device" whoever makes them: a container, sftp, a TA. It needs the server to run as root
// on the engine's machine, with mkfs.ext4 and mount (util-linux); elsewhere the engine's own
// size (XFS project quota) or the server's check of uploads apply, as GroupInfo.Quota says.
//
// The volume binds the data directory inside the mounted file system, not the mount point:
// when the image is not mounted (after a reboot, before the server mounts it again), that
// directory does not exist and the engine refuses to start a container with it, rather than
// letting it write to the host's disk unlimited. The server mounts every image in the
// directory when it starts, and again before it hands out a workspace.

// Quota words of GroupInfo.Quota.
const (
	QuotaFilesystem = "filesystem" // a file system of the workspace's own size
	QuotaEngine     = "engine"     // the local driver's size (XFS project quota)
	QuotaServer     = "server"     // the server refuses uploads past it; containers can write past it
	QuotaNone       = "none"
)

// workspaceFS makes and mounts the file systems of group workspaces.
type workspaceFS struct {
	dir  string
	mkfs string
	mnt  string
	mu   sync.Mutex // one make or mount at a time
}

// SetWorkspaceDir gives group workspaces with a size limit a file system of their own
// under dir (made 0700), and mounts those made before. When the server cannot make them
// (not root, the engine elsewhere, no mkfs.ext4 or mount), it says why in the log and the
// limits fall back to the engine's or the server's; that is not an error.
func (s *Service) SetWorkspaceDir(dir string) error {
	if !anySized(s.cfg.Groups) {
		return nil
	}
	why := ""
	mkfs, err1 := exec.LookPath("mkfs.ext4")
	mnt, err2 := exec.LookPath("mount")
	dh, ok := s.api.(daemonHoster)
	switch {
	case os.Geteuid() != 0:
		why = "the server does not run as root"
	case !ok || !strings.HasPrefix(dh.DaemonHost(), "unix://"):
		why = "the Docker Engine does not run on this machine"
	case err1 != nil || err2 != nil:
		why = "mkfs.ext4 or mount is not installed (e2fsprogs, util-linux)"
	}
	if why != "" {
		slog.Warn("group workspaces get no file system of their own size ("+why+"): "+
			"their limits are the engine's where it enforces sizes, else the server's for uploads only", "dir", dir)
		return nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("workspace directory %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("workspace directory %s: %w", dir, err)
	}
	fsys := &workspaceFS{dir: dir, mkfs: mkfs, mnt: mnt}
	imgs, err := filepath.Glob(filepath.Join(dir, "*.img"))
	if err != nil {
		return err
	}
	for _, img := range imgs {
		name := strings.TrimSuffix(filepath.Base(img), ".img")
		if _, err := fsys.mount(name); err != nil {
			slog.Error("a group workspace's file system does not mount: containers with it do not start until it does", "image", img, "err", err)
		}
	}
	s.wsfs = fsys
	return nil
}

func anySized(ws []GroupWorkspace) bool {
	for _, w := range ws {
		if w.Size > 0 {
			return true
		}
	}
	return false
}

// paths are the image, mount point and data directory of the workspace volume name.
func (f *workspaceFS) paths(name string) (img, mnt, data string) {
	mnt = filepath.Join(f.dir, name)
	return mnt + ".img", mnt, filepath.Join(mnt, "data")
}

// make makes (when missing) and mounts the file system of volume name, of size bytes, and
// returns its data directory.
func (f *workspaceFS) make(name string, size int64) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	img, _, _ := f.paths(name)
	if _, err := os.Stat(img); errors.Is(err, os.ErrNotExist) {
		tmp := img + ".new"
		file, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
		if err != nil {
			return "", fmt.Errorf("make the file system of %s: %w", name, err)
		}
		err = file.Truncate(size)
		if cerr := file.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = run(f.mkfs, "-q", "-F", "-m", "0", "-L", "wm-workspace", tmp)
		}
		if err == nil {
			err = os.Rename(tmp, img)
		}
		if err != nil {
			_ = os.Remove(tmp)
			return "", fmt.Errorf("make the file system of %s: %w", name, err)
		}
	} else if err != nil {
		return "", err
	}
	return f.mountLocked(name)
}

// mount mounts the existing file system of volume name and returns its data directory.
func (f *workspaceFS) mount(name string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mountLocked(name)
}

func (f *workspaceFS) mountLocked(name string) (string, error) {
	img, mnt, data := f.paths(name)
	if err := os.MkdirAll(mnt, 0o700); err != nil {
		return "", err
	}
	mounted, err := isMountPoint(mnt)
	if err != nil {
		return "", err
	}
	if !mounted {
		if err := run(f.mnt, "-t", "ext4", "-o", "loop,nosuid,nodev", img, mnt); err != nil {
			return "", fmt.Errorf("mount the file system of %s: %w", name, err)
		}
	}
	if err := os.Mkdir(data, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return "", err
	}
	return data, nil
}

// isMountPoint reports whether dir is on another file system than its parent.
func isMountPoint(dir string) (bool, error) {
	var a, b syscall.Stat_t
	if err := syscall.Stat(dir, &a); err != nil {
		return false, err
	}
	if err := syscall.Stat(filepath.Dir(dir), &b); err != nil {
		return false, err
	}
	return a.Dev != b.Dev, nil
}

// run runs a program and returns its error with its output.
func run(prog string, args ...string) error {
	var out bytes.Buffer
	cmd := exec.Command(prog, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %w: %s", filepath.Base(prog), err, strings.TrimSpace(out.String()))
	}
	return nil
}

// ownVolume reports whether v is a workspace volume bound to a file system of the server's,
// and returns its data directory.
func (f *workspaceFS) ownVolume(v volume.Volume) (string, bool) {
	if f == nil || v.Driver != "local" || v.Options["type"] != "none" || v.Options["o"] != "bind" {
		return "", false
	}
	_, _, data := f.paths(v.Name)
	return data, v.Options["device"] == data
}

// ensureSizedVolume returns the workspace volume of sh with a file system of its size,
// making both when missing. ok is false when the volume exists without one (made before the
// server could make file systems): it is used as it is.
func (s *Service) ensureSizedVolume(ctx context.Context, sh share, name string, labels map[string]string) (v volume.Volume, ok bool, err error) {
	vi, isInspector := s.api.(volumeInspector)
	if !isInspector {
		return volume.Volume{}, false, nil
	}
	res, err := vi.VolumeInspect(ctx, name, client.VolumeInspectOptions{})
	switch {
	case err == nil:
		if _, own := s.wsfs.ownVolume(res.Volume); !own {
			return res.Volume, false, nil
		}
		if _, err := s.wsfs.mount(name); err != nil {
			return volume.Volume{}, false, err
		}
		return res.Volume, true, nil
	case !cerrdefs.IsNotFound(err):
		return volume.Volume{}, false, engineErr("inspect the workspace of group "+sh.group, err)
	}
	data, err := s.wsfs.make(name, sh.ws.Size)
	if err != nil {
		return volume.Volume{}, false, err
	}
	created, err := s.api.VolumeCreate(ctx, client.VolumeCreateOptions{Name: name, Driver: "local", Labels: labels,
		DriverOpts: map[string]string{"type": "none", "o": "bind", "device": data}})
	if err != nil {
		return volume.Volume{}, false, engineErr("create the workspace of group "+sh.group, err)
	}
	_, own := s.wsfs.ownVolume(created.Volume)
	return created.Volume, own, nil
}
