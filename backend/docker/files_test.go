package docker_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
)

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

// readAll reads a file of place through the service.
func (r *rig) readAll(svc *docker.Service, id backend.Identity, place backend.Place, p string) ([]byte, backend.FileInfo, error) {
	rc, fi, err := svc.ReadFile(r.ctx, id, place, p)
	if err != nil {
		return nil, fi, err
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	return b, fi, err
}

func names(fis []backend.FileInfo) []string {
	var out []string
	for _, fi := range fis {
		out = append(out, fi.Name)
	}
	return out
}

func entry(fis []backend.FileInfo, name string) (backend.FileInfo, bool) {
	for _, fi := range fis {
		if fi.Name == name {
			return fi, true
		}
	}
	return backend.FileInfo{}, false
}

// TestFilesContainerPutGet: a multi-megabyte file goes into a container and comes back the
// same, with its mode and time; stat and list see it; it works on a stopped container too.
func TestFilesContainerPutGet(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "box"})
	box := backend.InContainer("box")
	data := randomBytes(t, 3<<20+12345)
	mtime := time.Date(2024, 3, 1, 12, 30, 0, 0, time.UTC)
	if err := r.svc.WriteFile(r.ctx, alice, box, "/tmp/data.bin", bytes.NewReader(data), int64(len(data)), 0o640, mtime); err != nil {
		t.Fatalf("put: %v", err)
	}
	fi, err := r.svc.StatPath(r.ctx, alice, box, "/tmp/data.bin")
	if err != nil {
		t.Fatalf("stat: %v", err)
	}
	if fi.Name != "data.bin" || fi.Size != int64(len(data)) || fi.Mode != 0o640 || !fi.ModTime.Equal(mtime) {
		t.Errorf("stat = %+v, want data.bin, %d bytes, 0640, %v", fi, len(data), mtime)
	}
	got, gfi, err := r.readAll(r.svc, alice, box, "/tmp/data.bin")
	if err != nil {
		t.Fatalf("get: %v", err)
	}
	if sha256.Sum256(got) != sha256.Sum256(data) || gfi.Size != int64(len(data)) {
		t.Fatalf("get: %d bytes back (info %d), want %d, checksums differ", len(got), gfi.Size, len(data))
	}

	fis, truncated, err := r.svc.ListDir(r.ctx, alice, box, "/tmp")
	if err != nil || truncated {
		t.Fatalf("list /tmp: %v (truncated %v)", err, truncated)
	}
	if e, ok := entry(fis, "data.bin"); !ok || e.Size != int64(len(data)) || e.Mode != 0o640 {
		t.Errorf("list /tmp = %+v, want data.bin of %d bytes", fis, len(data))
	}
	fis, _, err = r.svc.ListDir(r.ctx, alice, box, "/")
	if err != nil {
		t.Fatalf("list /: %v", err)
	}
	for _, want := range []string{"bin", "etc", "tmp"} {
		if e, ok := entry(fis, want); !ok || !e.IsDir() {
			t.Errorf("list / has no directory %s: %v", want, names(fis))
		}
	}
	if _, ok := entry(fis, "busybox"); ok {
		t.Errorf("list / shows an entry from below: %v", names(fis))
	}

	// Replaced with something smaller; then read from a stopped container.
	small := []byte("hello\n")
	if err := r.svc.WriteFile(r.ctx, alice, box, "/tmp/data.bin", bytes.NewReader(small), int64(len(small)), 0o600, time.Time{}); err != nil {
		t.Fatalf("put again: %v", err)
	}
	if err := r.svc.Stop(r.ctx, alice, "box", ""); err != nil {
		t.Fatal(err)
	}
	got, _, err = r.readAll(r.svc, alice, box, "/tmp/data.bin")
	if err != nil || !bytes.Equal(got, small) {
		t.Fatalf("get from a stopped container = %q, %v", got, err)
	}
	if err := r.svc.WriteFile(r.ctx, alice, box, "/etc/motd", strings.NewReader("hi"), 2, 0o644, time.Time{}); err != nil {
		t.Errorf("put into a stopped container: %v", err)
	}

	// A short reader fails the put.
	err = r.svc.WriteFile(r.ctx, alice, box, "/tmp/short", strings.NewReader("abc"), 10, 0o644, time.Time{})
	if err == nil {
		t.Errorf("a put with less content than announced succeeded")
	}
}

// TestFilesDirsAndAttrs: mkdir, a directory's mode, what is refused in a container.
func TestFilesDirsAndAttrs(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "box"})
	box := backend.InContainer("box")
	if err := r.svc.MakeDir(r.ctx, alice, box, "/tmp/new", 0o750); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	fi, err := r.svc.StatPath(r.ctx, alice, box, "/tmp/new")
	if err != nil || !fi.IsDir() || fi.Mode.Perm() != 0o750 {
		t.Fatalf("stat new dir = %+v, %v", fi, err)
	}
	if err := r.svc.MakeDir(r.ctx, alice, box, "/tmp/new", 0o750); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("mkdir of an existing dir: %v, want ErrConflict", err)
	}
	if err := r.svc.MakeDir(r.ctx, alice, box, "/nope/new", 0o750); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("mkdir without a parent: %v, want ErrNotFound", err)
	}
	mode := fs.FileMode(0o700)
	mtime := time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC)
	if err := r.svc.SetFileAttrs(r.ctx, alice, box, "/tmp/new", backend.FileAttrs{Mode: &mode, ModTime: &mtime}); err != nil {
		t.Fatalf("chmod dir: %v", err)
	}
	fi, err = r.svc.StatPath(r.ctx, alice, box, "/tmp/new")
	if err != nil || fi.Mode.Perm() != 0o700 || !fi.ModTime.Equal(mtime) {
		t.Errorf("after chmod: %+v, %v", fi, err)
	}
	data := []byte("inside")
	if err := r.svc.WriteFile(r.ctx, alice, box, "/tmp/new/f", bytes.NewReader(data), int64(len(data)), 0o644, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.WriteFile(r.ctx, alice, box, "/tmp/new", bytes.NewReader(data), int64(len(data)), 0o644, time.Time{}); !errors.Is(err, docker.ErrConflict) {
		t.Errorf("put over a directory: %v, want ErrConflict", err)
	}
	if err := r.svc.WriteFile(r.ctx, alice, box, "/tmp/new/f/g", bytes.NewReader(data), int64(len(data)), 0o644, time.Time{}); !errors.Is(err, docker.ErrInvalid) {
		t.Errorf("put under a file: %v, want ErrInvalid", err)
	}
	for what, err := range map[string]error{
		"delete":     r.svc.RemovePath(r.ctx, alice, box, "/tmp/new/f"),
		"rename":     r.svc.RenamePath(r.ctx, alice, box, "/tmp/new/f", "/tmp/new/g"),
		"chmod file": r.svc.SetFileAttrs(r.ctx, alice, box, "/tmp/new/f", backend.FileAttrs{Mode: &mode}),
	} {
		if !errors.Is(err, docker.ErrUnsupported) {
			t.Errorf("%s in a container: %v, want ErrUnsupported", what, err)
		}
	}
	if _, _, err := r.readAll(r.svc, alice, box, "/tmp/new"); !errors.Is(err, docker.ErrInvalid) {
		t.Errorf("reading a directory: %v, want ErrInvalid", err)
	}
	if _, _, err := r.svc.ListDir(r.ctx, alice, box, "/tmp/new/f"); !errors.Is(err, docker.ErrInvalid) {
		t.Errorf("listing a file: %v, want ErrInvalid", err)
	}
}

// TestFilesIsolation: bob reaches no file of alice's container by any spelling, and cannot
// tell it from a miss; not even a TA reaches it as a place.
func TestFilesIsolation(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "box"})
	secret := []byte("alice's secret")
	if err := r.svc.WriteFile(r.ctx, alice, backend.InContainer("box"), "/tmp/secret", bytes.NewReader(secret), int64(len(secret)), 0o600, time.Time{}); err != nil {
		t.Fatal(err)
	}
	engineName := r.svc.Config().NamePrefix + "-alice-box"
	for _, ref := range []string{"box", "alice/box", engineName, "../box", "box/../box", "BOX"} {
		for _, id := range []backend.Identity{bob, tina} {
			place := backend.InContainer(ref)
			_, err := r.svc.StatPath(r.ctx, id, place, "/tmp/secret")
			if !errors.Is(err, docker.ErrNotFound) {
				t.Errorf("%s stat %q:/tmp/secret: %v, want ErrNotFound", id.User, ref, err)
			}
			if b, _, err := r.readAll(r.svc, id, place, "/tmp/secret"); !errors.Is(err, docker.ErrNotFound) {
				t.Errorf("%s read %q:/tmp/secret = %q, %v, want ErrNotFound", id.User, ref, b, err)
			}
			if _, _, err := r.svc.ListDir(r.ctx, id, place, "/tmp"); !errors.Is(err, docker.ErrNotFound) {
				t.Errorf("%s list %q:/tmp: %v, want ErrNotFound", id.User, ref, err)
			}
			err = r.svc.WriteFile(r.ctx, id, place, "/tmp/planted", strings.NewReader("x"), 1, 0o644, time.Time{})
			if !errors.Is(err, docker.ErrNotFound) {
				t.Errorf("%s put %q:/tmp/planted: %v, want ErrNotFound", id.User, ref, err)
			}
		}
	}
	// A miss and someone else's read the same.
	_, errOther := r.svc.StatPath(r.ctx, bob, backend.InContainer("box"), "/tmp/secret")
	_, errMiss := r.svc.StatPath(r.ctx, bob, backend.InContainer("nothere"), "/tmp/secret")
	if errOther == nil || errMiss == nil || strings.ReplaceAll(errOther.Error(), "box", "X") != strings.ReplaceAll(errMiss.Error(), "nothere", "X") {
		t.Errorf("not-yours %q differs from missing %q", errOther, errMiss)
	}
	// Bob's own box is his: he sees his own files there, never alice's.
	r.run(bob, docker.RunSpec{Name: "box"})
	if _, err := r.svc.StatPath(r.ctx, bob, backend.InContainer("box"), "/tmp/secret"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("bob's own box shows alice's file: %v", err)
	}
	if _, err := r.svc.StatPath(r.ctx, alice, backend.InContainer("box"), "/tmp/planted"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("something was planted in alice's box: %v", err)
	}
	if _, err := r.svc.StatPath(r.ctx, backend.Identity{}, backend.InContainer("box"), "/"); !errors.Is(err, docker.ErrPermission) {
		t.Errorf("the zero identity: %v, want ErrPermission", err)
	}
}

// TestFilesTraversal: unclean, relative and NUL paths do not exist; a symlink in a container
// is resolved inside that container.
func TestFilesTraversal(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, docker.RunSpec{Name: "box",
		Cmd: []string{"sh", "-c", "ln -s / /tmp/rootlink; ln -s /etc/hostname /tmp/hn; ln -s ../../../../etc/hostname /tmp/up; sleep 3600"}})
	box := backend.InContainer("box")
	ok := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if _, err := r.svc.StatPath(r.ctx, alice, box, "/tmp/up"); err == nil {
			ok = true
			break
		}
	}
	if !ok {
		t.Fatal("the container's links never appeared")
	}
	for _, p := range []string{"/tmp/../etc/hostname", "etc/hostname", "", "/etc/hostname\x00", "/etc/./hostname",
		"/etc//hostname", "/../etc/hostname", "/tmp/", strings.Repeat("/a", 3000)} {
		if _, err := r.svc.StatPath(r.ctx, alice, box, p); !errors.Is(err, docker.ErrNotFound) {
			t.Errorf("stat %q: %v, want ErrNotFound", p, err)
		}
		if _, _, err := r.readAll(r.svc, alice, box, p); !errors.Is(err, docker.ErrNotFound) {
			t.Errorf("read %q: %v, want ErrNotFound", p, err)
		}
		if err := r.svc.WriteFile(r.ctx, alice, box, p, strings.NewReader("x"), 1, 0o644, time.Time{}); !errors.Is(err, docker.ErrNotFound) {
			t.Errorf("put %q: %v, want ErrNotFound", p, err)
		}
	}
	// Links lead within the container: its own hostname, its own root.
	for _, p := range []string{"/tmp/hn", "/tmp/up", "/tmp/rootlink/etc/hostname"} {
		b, _, err := r.readAll(r.svc, alice, box, p)
		if err != nil || strings.TrimSpace(string(b)) != "box" {
			t.Errorf("read %s = %q, %v; want the container's hostname", p, b, err)
		}
	}
	fi, err := r.svc.StatPath(r.ctx, alice, box, "/tmp/hn")
	if err != nil || fi.Mode&fs.ModeSymlink == 0 || fi.LinkTarget != "/etc/hostname" {
		t.Errorf("lstat /tmp/hn = %+v, %v", fi, err)
	}
	hostname, _ := os.ReadFile("/etc/hostname")
	if b, _, _ := r.readAll(r.svc, alice, box, "/tmp/rootlink/etc/hostname"); len(hostname) > 0 && bytes.Equal(b, hostname) && string(b) != "box\n" {
		t.Errorf("a link reached the host's /etc/hostname")
	}
}

// TestFilesHomeVolume: the home in a volume works from the first login, before the user has
// any container: read, write, mkdir, delete, rename, chmod. It is the /home/<user> of every
// container the user makes, it outlives them, and nothing in it leads outside it.
func TestFilesHomeVolume(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	home := backend.Home
	if fi, err := r.svc.StatPath(r.ctx, alice, home, "/"); err != nil || !fi.IsDir() {
		t.Fatalf("stat the home of a user without a container = %+v, %v", fi, err)
	}
	data := randomBytes(t, 1<<20)
	if err := r.svc.WriteFile(r.ctx, alice, home, "/notes.bin", bytes.NewReader(data), int64(len(data)), 0o600, time.Time{}); err != nil {
		t.Fatalf("put into the home without a container: %v", err)
	}
	if err := r.svc.MakeDir(r.ctx, alice, home, "/proj", 0o755); err != nil {
		t.Fatalf("mkdir in the home without a container: %v", err)
	}
	if b, _, err := r.readAll(r.svc, alice, home, "/notes.bin"); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("get from the home without a container: %d bytes, %v", len(b), err)
	}
	for _, f := range []string{"/gone.txt", "/proj/old.txt"} {
		if err := r.svc.WriteFile(r.ctx, alice, home, f, strings.NewReader("x"), 1, 0o644, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.svc.RemovePath(r.ctx, alice, home, "/gone.txt"); err != nil {
		t.Errorf("delete in a volume home: %v", err)
	}
	if err := r.svc.RenamePath(r.ctx, alice, home, "/proj/old.txt", "/proj/new.txt"); err != nil {
		t.Errorf("rename in a volume home: %v", err)
	}
	mode := fs.FileMode(0o640)
	if err := r.svc.SetFileAttrs(r.ctx, alice, home, "/proj/new.txt", backend.FileAttrs{Mode: &mode}); err != nil {
		t.Errorf("chmod in a volume home: %v", err)
	}
	fis, _, err := r.svc.ListDir(r.ctx, alice, home, "/")
	if err != nil || !slices.Equal(names(fis), []string{"notes.bin", "proj"}) {
		t.Fatalf("list home = %v, %v", names(fis), err)
	}
	if fis, _, err := r.svc.ListDir(r.ctx, alice, home, "/proj"); err != nil || !slices.Equal(names(fis), []string{"new.txt"}) || fis[0].Mode != 0o640 {
		t.Errorf("list /proj = %+v, %v", fis, err)
	}
	if err := r.svc.RemovePath(r.ctx, alice, home, "/"); err == nil {
		t.Errorf("the home itself was removed")
	}

	// It is the /home/alice of the container she makes next.
	c := r.run(alice, docker.RunSpec{Name: "one",
		Cmd: []string{"sh", "-c", "cd /home/alice; ln -s / rootlink; ln -s /etc/hostname abs; ln -s ../../etc/hostname up; " +
			"mkdir owned; chown 1234:2345 owned; echo old > kept; chown 4321:4322 kept; ln -s proj in; sleep 3600"}})
	if b, _, err := r.readAll(r.svc, alice, backend.InContainer("one"), "/home/alice/notes.bin"); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("the home file in the container: %d bytes, %v", len(b), err)
	}
	if _, err := r.svc.StatPath(r.ctx, alice, backend.InContainer("one"), "/home/alice/proj/new.txt"); err != nil {
		t.Errorf("the renamed file in the container: %v", err)
	}
	// Links the container made lead nowhere outside the home; one inside works.
	ok := false
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline) && !ok; time.Sleep(50 * time.Millisecond) {
		_, err := r.svc.StatPath(r.ctx, alice, home, "/in")
		ok = err == nil
	}
	if !ok {
		t.Fatal("the container's links never appeared in the home")
	}
	for _, p := range []string{"/rootlink/etc/passwd", "/abs", "/up"} {
		if b, _, err := r.readAll(r.svc, alice, home, p); !errors.Is(err, docker.ErrNotFound) {
			t.Errorf("read %s = %q, %v, want ErrNotFound", p, b, err)
		}
		if err := r.svc.WriteFile(r.ctx, alice, home, p+"/x", strings.NewReader("x"), 1, 0o644, time.Time{}); err == nil {
			t.Errorf("put under %s succeeded", p)
		}
	}
	if fis, _, err := r.svc.ListDir(r.ctx, alice, home, "/in"); err != nil || !slices.Equal(names(fis), []string{"new.txt"}) {
		t.Errorf("list /in (a link to proj) = %v, %v", names(fis), err)
	}
	// What the server writes belongs to whoever owns the directory in the container; a
	// replaced file keeps its owner.
	if err := r.svc.WriteFile(r.ctx, alice, home, "/owned/new.txt", strings.NewReader("x"), 1, 0o644, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.MakeDir(r.ctx, alice, home, "/owned/sub", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.WriteFile(r.ctx, alice, home, "/kept", strings.NewReader("new"), 3, 0o644, time.Time{}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string][2]int{"/owned/new.txt": {1234, 2345}, "/owned/sub": {1234, 2345}, "/kept": {4321, 4322}, "/notes.bin": {0, 0}} {
		if fi, err := r.svc.StatPath(r.ctx, alice, home, p); err != nil || fi.UID != want[0] || fi.GID != want[1] {
			t.Errorf("owner of %s = %d:%d (%v), want %d:%d", p, fi.UID, fi.GID, err, want[0], want[1])
		}
	}

	// Bob's home is his own, container or not.
	if _, err := r.svc.StatPath(r.ctx, bob, home, "/notes.bin"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("bob's home shows alice's file: %v", err)
	}
	// The home outlives the container.
	if err := r.svc.Remove(r.ctx, alice, c.Name, true, ""); err != nil {
		t.Fatal(err)
	}
	if b, _, err := r.readAll(r.svc, alice, home, "/notes.bin"); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("the home after its container went: %d bytes, %v", len(b), err)
	}
}

// TestFilesHomeVolumeThroughContainer: where the server cannot open the engine's volume
// directory (the engine on another machine), the home is reached through one of the user's
// containers; without one, it says to run one.
func TestFilesHomeVolumeThroughContainer(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	svc := docker.WithoutDirectHome(r.svc)
	_, err := svc.StatPath(r.ctx, alice, backend.Home, "/")
	if !errors.Is(err, docker.ErrConflict) || !strings.Contains(err.Error(), "run one first") {
		t.Fatalf("home without a container: %v, want ErrConflict saying to run one", err)
	}
	r.run(alice, docker.RunSpec{Name: "one"})
	data := randomBytes(t, 1<<20)
	if err := svc.WriteFile(r.ctx, alice, backend.Home, "/notes.bin", bytes.NewReader(data), int64(len(data)), 0o600, time.Time{}); err != nil {
		t.Fatalf("put into the home: %v", err)
	}
	if err := svc.MakeDir(r.ctx, alice, backend.Home, "/proj", 0o755); err != nil {
		t.Fatal(err)
	}
	if b, _, err := r.readAll(r.svc, alice, backend.InContainer("one"), "/home/alice/notes.bin"); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("the home file in the container: %d bytes, %v", len(b), err)
	}
	fis, _, err := svc.ListDir(r.ctx, alice, backend.Home, "/")
	if err != nil || !slices.Contains(names(fis), "notes.bin") || !slices.Contains(names(fis), "proj") {
		t.Fatalf("list home = %v, %v", names(fis), err)
	}
	if err := svc.RemovePath(r.ctx, alice, backend.Home, "/notes.bin"); !errors.Is(err, docker.ErrUnsupported) {
		t.Errorf("delete in a volume home reached through a container: %v, want ErrUnsupported", err)
	}
	// The same files, opened directly.
	if b, _, err := r.readAll(r.svc, alice, backend.Home, "/notes.bin"); err != nil || !bytes.Equal(b, data) {
		t.Errorf("the home opened directly: %d bytes, %v", len(b), err)
	}
}

// TestFilesHomeHostPath: a home on the host is served from the directory itself, and nothing
// (names, "..", symlinks) leads out of it.
func TestFilesHomeHostPath(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	r := newRig(t, func(c *docker.Config) { c.HomeHostPath = filepath.Join(base, "homes", "{user}") })
	outside := filepath.Join(base, "outside.txt")
	if err := os.WriteFile(outside, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	home := backend.Home
	data := randomBytes(t, 2<<20)
	mtime := time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)
	if err := r.svc.WriteFile(r.ctx, alice, home, "/data.bin", bytes.NewReader(data), int64(len(data)), 0o640, mtime); err != nil {
		t.Fatalf("put: %v", err)
	}
	dir := filepath.Join(base, "homes", "alice")
	if b, err := os.ReadFile(filepath.Join(dir, "data.bin")); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("on the host: %d bytes, %v", len(b), err)
	}
	fi, err := r.svc.StatPath(r.ctx, alice, home, "/data.bin")
	if err != nil || fi.Size != int64(len(data)) || fi.Mode != 0o640 || !fi.ModTime.Equal(mtime) {
		t.Errorf("stat = %+v, %v", fi, err)
	}
	got, _, err := r.readAll(r.svc, alice, home, "/data.bin")
	if err != nil || sha256.Sum256(got) != sha256.Sum256(data) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	if err := r.svc.MakeDir(r.ctx, alice, home, "/d", 0o700); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.RenamePath(r.ctx, alice, home, "/data.bin", "/d/moved.bin"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	mode := fs.FileMode(0o600)
	if err := r.svc.SetFileAttrs(r.ctx, alice, home, "/d/moved.bin", backend.FileAttrs{Mode: &mode}); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	fis, _, err := r.svc.ListDir(r.ctx, alice, home, "/d")
	if e, ok := entry(fis, "moved.bin"); err != nil || !ok || e.Mode != 0o600 || e.Size != int64(len(data)) {
		t.Errorf("list /d = %+v, %v", fis, err)
	}
	if err := r.svc.RemovePath(r.ctx, alice, home, "/d/moved.bin"); err != nil {
		t.Errorf("delete: %v", err)
	}
	if err := r.svc.RemovePath(r.ctx, alice, home, "/"); err == nil {
		t.Errorf("the home itself was removed")
	}

	// Ways out of the home: links to the host, "..", absolute links. All missing.
	mustLink := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	mustLink(outside, "abs")
	mustLink("../../outside.txt", "up")
	mustLink("/", "root")
	mustLink("d", "inside")
	for _, p := range []string{"/abs", "/up", "/root/etc/passwd", "/../outside.txt", "/../../outside.txt"} {
		if b, _, err := r.readAll(r.svc, alice, home, p); !errors.Is(err, docker.ErrNotFound) {
			t.Errorf("read %s = %q, %v, want ErrNotFound", p, b, err)
		}
	}
	if fi, err := r.svc.StatPath(r.ctx, alice, home, "/up"); err != nil || fi.LinkTarget != "" {
		t.Errorf("lstat of a link out = %+v, %v; want the link, no target", fi, err)
	}
	for _, p := range []string{"/root/tmp/x", "/root/etc/passwd", "/../outside.txt"} {
		if err := r.svc.WriteFile(r.ctx, alice, home, p, strings.NewReader("pwned"), 5, 0o644, time.Time{}); err == nil {
			t.Errorf("put %s succeeded", p)
		}
	}
	// A put at a link's name replaces the link, in the home.
	for _, p := range []string{"/abs", "/up"} {
		if err := r.svc.WriteFile(r.ctx, alice, home, p, strings.NewReader("mine!"), 5, 0o644, time.Time{}); err != nil {
			t.Errorf("put %s: %v", p, err)
		}
		if fi, err := os.Lstat(filepath.Join(dir, p)); err != nil || !fi.Mode().IsRegular() {
			t.Errorf("after put %s: %v, %v; want a regular file in the home", p, fi, err)
		}
	}
	if b, _ := os.ReadFile(outside); string(b) != "host secret" {
		t.Errorf("the file outside the home changed: %q", b)
	}
	if fi, err := r.svc.StatPath(r.ctx, alice, home, "/inside"); err != nil || fi.LinkTarget != "/d" {
		t.Errorf("lstat of a link in = %+v, %v; want target /d", fi, err)
	}
	// Bob's home is another directory.
	if _, err := r.svc.StatPath(r.ctx, bob, home, "/d"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("bob sees alice's home: %v", err)
	}
}

// TestFilesAudit: writes are recorded with their target; reads are not, but reads refused
// because the container is someone else's, or nobody's, are.
func TestFilesAudit(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	svc, path := r.auditedService()
	if _, err := svc.Run(r.ctx, alice, docker.RunSpec{Name: "box", Image: r.img}); err != nil {
		t.Fatal(err)
	}
	box := backend.InContainer("box")
	_ = svc.WriteFile(r.ctx, alice, box, "/tmp/f", strings.NewReader("x"), 1, 0o644, time.Time{})
	_ = svc.MakeDir(r.ctx, alice, box, "/tmp/d", 0o755)
	_, _, _ = r.readAll(svc, alice, box, "/tmp/f")
	_ = svc.WriteFile(r.ctx, bob, box, "/tmp/f", strings.NewReader("x"), 1, 0o644, time.Time{})
	_, _, _ = r.readAll(svc, bob, box, "/tmp/f")
	_, _, _ = svc.ListDir(r.ctx, bob, box, "/tmp")
	_, _ = svc.StatPath(r.ctx, bob, backend.InContainer("nothere"), "/")
	_, _ = svc.StatPath(r.ctx, alice, box, "/tmp/missing")
	_, _ = svc.StatPath(r.ctx, bob, backend.Home, "/missing")
	_ = svc.RemovePath(r.ctx, alice, box, "/tmp/f")

	got := auditLines(t, path)
	want := []string{
		"alice run alice/box ok", "alice put alice/box:/tmp/f ok", "alice mkdir alice/box:/tmp/d ok",
		"bob put bob/box:/tmp/f refused", "bob get bob/box:/tmp/f refused", "bob ls bob/box:/tmp refused",
		"bob stat bob/nothere:/ refused", "alice delete alice/box:/tmp/f refused",
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestFilesHomeHostPathLeftoverUploads: a put into a home on the host that a killed server
// left half done (a temporary file at the home's top) is removed by the next put once it is
// stale; one still being written is left alone.
func TestFilesHomeHostPathLeftoverUploads(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	r := newRig(t, func(c *docker.Config) { c.HomeHostPath = filepath.Join(base, "homes", "{user}") })
	put := func(p string) {
		t.Helper()
		if err := r.svc.WriteFile(r.ctx, alice, backend.Home, p, strings.NewReader("whole"), 5, 0o644, time.Time{}); err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
	}
	put("/first.txt")
	dir := filepath.Join(base, "homes", "alice")
	old, fresh := filepath.Join(dir, ".wm-upload-left0ver"), filepath.Join(dir, ".wm-upload-wr1ting")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chtimes(old, time.Time{}, time.Now().Add(-2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	put("/sub/second.txt")
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the stale half put is still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a put under way was removed: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(dir, "sub", "second.txt")); err != nil || string(b) != "whole" {
		t.Errorf("the put through the top: %q, %v", b, err)
	}
}
