package files_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
	"whalemountain/tui/files"
)

var (
	alice = backend.Identity{User: "alice", Role: backend.RoleStudent}
	bob   = backend.Identity{User: "bob", Role: backend.RoleStudent}
	tina  = backend.Identity{User: "tina", Role: backend.RoleTA}
)

// rig is one test's engine, image, service and spool directory.
type rig struct {
	t     *testing.T
	ctx   context.Context
	img   string
	svc   *docker.Service
	spool string
}

func newRig(t *testing.T, configure ...func(*docker.Config)) *rig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cli := dockertest.Client(t)
	img := dockertest.BusyboxImage(ctx, t, cli)
	return &rig{t: t, ctx: ctx, img: img, svc: dockertest.NewService(t, configure...), spool: t.TempDir()}
}

func (r *rig) run(id backend.Identity, name string) {
	r.t.Helper()
	if _, err := r.svc.Run(r.ctx, id, docker.RunSpec{Name: name, Image: r.img}); err != nil {
		r.t.Fatalf("run %s for %s: %v", name, id.User, err)
	}
}

// conn is a client talking to the subsystem over in-memory pipes.
type conn struct {
	*sftp.Client
	kill func() // drops the connection, as a lost network would
	done chan error
}

type pipeRWC struct {
	io.Reader
	io.WriteCloser
}

// dial starts the subsystem for id and connects a client to it.
func (r *rig) dial(id backend.Identity) *conn {
	r.t.Helper()
	return r.dialWith(id, files.Options{TempDir: r.spool})
}

// dialWith is dial with options of the test's own.
func (r *rig) dialWith(id backend.Identity, opts files.Options) *conn {
	r.t.Helper()
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan error, 1)
	logger := slog.New(slog.DiscardHandler)
	go func() {
		err := files.Subsystem(ctx, pipeRWC{c2sR, s2cW}, r.svc, id, logger, opts)
		// As the SSH layer closes the channel once its handler returns.
		_ = s2cW.Close()
		done <- err
		close(done)
	}()
	cl, err := sftp.NewClientPipe(s2cR, c2sW)
	if err != nil {
		cancel()
		r.t.Fatalf("sftp client: %v", err)
	}
	c := &conn{Client: cl, done: done, kill: func() {
		cancel()
		_ = c2sW.CloseWithError(errors.New("connection lost"))
		_ = s2cR.CloseWithError(errors.New("connection lost"))
	}}
	r.t.Cleanup(func() {
		_ = cl.Close()
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			r.t.Errorf("the subsystem did not end after the client closed")
		}
	})
	return c
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func put(t *testing.T, c *conn, p string, data []byte) {
	t.Helper()
	f, err := c.Create(p)
	if err != nil {
		t.Fatalf("create %s: %v", p, err)
	}
	if _, err := f.ReadFrom(bytes.NewReader(data)); err != nil {
		t.Fatalf("write %s: %v", p, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", p, err)
	}
}

func get(t *testing.T, c *conn, p string) []byte {
	t.Helper()
	f, err := c.Open(p)
	if err != nil {
		t.Fatalf("open %s: %v", p, err)
	}
	defer f.Close()
	var buf bytes.Buffer
	if _, err := f.WriteTo(&buf); err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	return buf.Bytes()
}

// unsupported reports whether err is "operation unsupported" with a message saying more.
func unsupported(err error) bool {
	var se *sftp.StatusError
	return errors.As(err, &se) && se.FxCode() == sftp.ErrSSHFxOpUnsupported && len(se.Error()) > 40
}

// TestPutGet: files go into a container and a home and come back byte for byte, with the
// client writing and reading many chunks at once and out of order.
func TestPutGet(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, "box")
	c := r.dial(alice)
	data := randomBytes(t, 4<<20+777)
	want := sha256.Sum256(data)
	for _, p := range []string{"/containers/box/tmp/data.bin", "/home/data.bin"} {
		put(t, c, p, data)
		if got := get(t, c, p); sha256.Sum256(got) != want {
			t.Errorf("%s: %d bytes back, want %d with the same checksum", p, len(got), len(data))
		}
		fi, err := c.Stat(p)
		if err != nil || fi.Size() != int64(len(data)) || fi.Mode().Perm() != 0o644 {
			t.Errorf("stat %s = %v, %v", p, fi, err)
		}
	}
	// The home is the container's /home/alice; relative paths start in the home.
	if got := get(t, c, "/containers/box/home/alice/data.bin"); sha256.Sum256(got) != want {
		t.Errorf("the home's file is not in the container's home")
	}
	if wd, err := c.Getwd(); err != nil || wd != "/home" {
		t.Errorf("start directory = %q, %v; want /home", wd, err)
	}
	if got := get(t, c, "data.bin"); sha256.Sum256(got) != want {
		t.Errorf("a relative path does not land in the home")
	}
	// Mode and time set on the open handle (put -p) are applied when the file lands.
	f, err := c.Create("/containers/box/tmp/p.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("preserved\n")); err != nil {
		t.Fatal(err)
	}
	if err := f.Chmod(0o600); err != nil {
		t.Fatalf("fchmod: %v", err)
	}
	mtime := time.Date(2021, 2, 3, 4, 5, 6, 0, time.UTC)
	if err := c.Chtimes("/containers/box/tmp/p.txt", mtime, mtime); err != nil {
		t.Fatalf("setstat times on the open file: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	fi, err := c.Stat("/containers/box/tmp/p.txt")
	if err != nil || fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(mtime) {
		t.Errorf("after put -p: %v %v %v, %v", fi.Mode(), fi.ModTime(), fi.Size(), err)
	}
	// Nothing is left in the spool directory.
	if ents, err := os.ReadDir(r.spool); err != nil || len(ents) != 0 {
		t.Errorf("spool directory holds %v, %v", ents, err)
	}
}

// TestTree: the tree's top, the user's own containers only, directories and what is
// refused.
func TestTree(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, "box")
	r.run(alice, "web")
	r.run(bob, "bobbox")
	r.run(tina, "tabox")
	list := func(c *conn, p string) []string {
		t.Helper()
		fis, err := c.ReadDir(p)
		if err != nil {
			t.Fatalf("ls %s: %v", p, err)
		}
		var out []string
		for _, fi := range fis {
			out = append(out, fi.Name())
		}
		slices.Sort(out)
		return out
	}
	c := r.dial(alice)
	if got := list(c, "/"); !slices.Equal(got, []string{"containers", "home"}) {
		t.Errorf("ls / = %v", got)
	}
	if got := list(c, "/containers"); !slices.Equal(got, []string{"box", "web"}) {
		t.Errorf("alice: ls /containers = %v, want box web", got)
	}
	if got := list(r.dial(tina), "/containers"); !slices.Equal(got, []string{"tabox"}) {
		t.Errorf("tina: ls /containers = %v, want her own only", got)
	}
	if got := list(c, "/containers/box/etc"); !slices.Contains(got, "hostname") {
		t.Errorf("ls /containers/box/etc = %v", got)
	}
	for _, p := range []string{"/", "/containers", "/containers/box", "/home"} {
		if fi, err := c.Stat(p); err != nil || !fi.IsDir() {
			t.Errorf("stat %s = %v, %v; want a directory", p, fi, err)
		}
	}
	if err := c.Mkdir("/containers/box/tmp/sub"); err != nil {
		t.Errorf("mkdir: %v", err)
	}
	if fi, err := c.Stat("/containers/box/tmp/sub"); err != nil || !fi.IsDir() {
		t.Errorf("stat the new directory = %v, %v", fi, err)
	}
	put(t, c, "/containers/box/tmp/sub/f", []byte("x"))
	for what, err := range map[string]error{
		"rm":     c.Remove("/containers/box/tmp/sub/f"),
		"rename": c.Rename("/containers/box/tmp/sub/f", "/containers/box/tmp/sub/g"),
		"link":   c.Symlink("/etc/passwd", "/containers/box/tmp/sub/l"),
		"chmod":  c.Chmod("/containers/box/tmp/sub/f", 0o600),
		"across": c.Rename("/home/x", "/containers/box/tmp/x"),
	} {
		if !unsupported(err) {
			t.Errorf("%s in a container: %v, want operation unsupported with a reason", what, err)
		}
	}
	if err := c.Mkdir("/containers/new"); !errors.Is(err, fs.ErrPermission) {
		t.Errorf("mkdir /containers/new: %v, want permission denied", err)
	}
	if _, err := c.Create("/containers/x"); err == nil {
		t.Errorf("a file was made in /containers")
	}
	if err := c.Mkdir("/containers/box/tmp/sub"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("mkdir of an existing directory: %v", err)
	}
}

// TestNoWayOut: other users' containers, engine names, "..", NUL: all "no such file".
func TestNoWayOut(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, "box")
	r.run(bob, "bobbox")
	bobc := r.dial(bob)
	put(t, bobc, "/containers/bobbox/tmp/secret", []byte("bob's"))
	c := r.dial(alice)
	engine := r.svc.Config().NamePrefix + "-bob-bobbox"
	for _, p := range []string{
		"/containers/bobbox/tmp/secret",
		"/containers/bobbox",
		"/containers/" + engine + "/tmp/secret",
		"/containers/bob/bobbox/tmp/secret",
		"/containers/box/../bobbox/tmp/secret",
		"/containers/box/../../containers/bobbox/tmp/secret",
		"/home/../containers/bobbox/tmp/secret",
		"/containers/box/../../etc/passwd",
		"/../../etc/passwd",
		"/etc/passwd",
		"/containers/BOX/etc/hostname",
		"/containers/box\x00/etc/hostname",
		"/containers/box/etc/hostname\x00.txt",
	} {
		if _, err := c.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat %q: %v, want no such file", p, err)
		}
		if f, err := c.Open(p); !errors.Is(err, fs.ErrNotExist) {
			if err == nil {
				f.Close()
			}
			t.Errorf("open %q: %v, want no such file", p, err)
		}
		if _, err := c.ReadDir(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ls %q: %v, want no such file", p, err)
		}
		if f, err := c.Create(p); err == nil {
			f.Close()
			t.Errorf("create %q succeeded", p)
		}
	}
	if got := string(get(t, bobc, "/containers/bobbox/tmp/secret")); got != "bob's" {
		t.Errorf("bob's file changed: %q", got)
	}
	// ".." inside the container's own tree stays in it.
	if got := strings.TrimSpace(string(get(t, c, "/containers/box/tmp/../etc/hostname"))); got != "box" {
		t.Errorf("/containers/box/tmp/../etc/hostname = %q, want box's hostname", got)
	}
}

// TestBrokenUpload: a connection lost in the middle of an upload writes nothing.
func TestBrokenUpload(t *testing.T) {
	t.Parallel()
	r := newRig(t)
	r.run(alice, "box")
	c := r.dial(alice)
	f, err := c.Create("/containers/box/tmp/half")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(randomBytes(t, 100<<10)); err != nil {
		t.Fatal(err)
	}
	c.kill()
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		t.Fatal("the subsystem did not end when the connection broke")
	}
	if _, err := r.svc.StatPath(r.ctx, alice, backend.InContainer("box"), "/tmp/half"); !errors.Is(err, docker.ErrNotFound) {
		t.Errorf("a broken upload left a file: %v", err)
	}
	if ents, err := os.ReadDir(r.spool); err != nil || len(ents) != 0 {
		t.Errorf("spool directory holds %v, %v", ents, err)
	}
}

// TestHostHome: with the home on the host every operation works there.
func TestHostHome(t *testing.T) {
	t.Parallel()
	base := t.TempDir()
	r := newRig(t, func(c *docker.Config) { c.HomeHostPath = base + "/{user}" })
	c := r.dial(alice)
	data := randomBytes(t, 1<<20)
	put(t, c, "/home/a.bin", data)
	if err := c.Mkdir("/home/d"); err != nil {
		t.Fatal(err)
	}
	if err := c.Rename("/home/a.bin", "/home/d/b.bin"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	put(t, c, "/home/c.bin", []byte("c"))
	if err := c.Rename("/home/c.bin", "/home/d/b.bin"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("rename onto an existing file: %v, want it refused", err)
	}
	if err := c.PosixRename("/home/c.bin", "/home/d/c.bin"); err != nil {
		t.Errorf("posix-rename: %v", err)
	}
	if err := c.Chmod("/home/d/b.bin", 0o600); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	if got := get(t, c, "/home/d/b.bin"); !bytes.Equal(got, data) {
		t.Errorf("get after rename: %d bytes", len(got))
	}
	if b, err := os.ReadFile(base + "/alice/d/b.bin"); err != nil || !bytes.Equal(b, data) {
		t.Errorf("on the host: %d bytes, %v", len(b), err)
	}
	if err := os.Symlink("/etc/passwd", base+"/alice/pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Open("/home/pw"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a link out of the home opened: %v", err)
	}
	if err := c.Remove("/home/d/b.bin"); err != nil {
		t.Errorf("rm: %v", err)
	}
	if err := c.RemoveDirectory("/home/d"); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("rmdir of a directory with a file in it: %v", err)
	}
	if err := c.Remove("/home/d/c.bin"); err != nil {
		t.Errorf("rm: %v", err)
	}
	if err := c.RemoveDirectory("/home/d"); err != nil {
		t.Errorf("rmdir: %v", err)
	}
	// No container is needed for a home on the host.
	if fis, err := c.ReadDir("/containers"); err != nil || len(fis) != 0 {
		t.Errorf("ls /containers = %v, %v", fis, err)
	}
}

// TestSIFMode: SIF files are listed and stat'ed 0755, as Apptainer leaves its own, so a
// download is runnable as ./NAME.sif; on disk they stay private, and /sif stays read-only.
func TestSIFMode(t *testing.T) {
	r := newRig(t)
	dir := t.TempDir()
	ss, err := docker.NewSIFService(r.svc, docker.SIFOptions{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	stored := dir + "/alice/ml_latest.sif"
	if err := os.MkdirAll(dir+"/alice", 0o700); err != nil {
		t.Fatal(err)
	}
	data := []byte("#!/usr/bin/env run-singularity\nSIF")
	if err := os.WriteFile(stored, data, 0o600); err != nil {
		t.Fatal(err)
	}
	c := r.dialWith(alice, files.Options{TempDir: r.spool, SIF: ss})
	fi, err := c.Stat("/sif/ml_latest.sif")
	if err != nil || fi.Mode() != 0o755 || fi.Size() != int64(len(data)) {
		t.Errorf("stat /sif/ml_latest.sif: %v %v", fi.Mode(), err)
	}
	list, err := c.ReadDir("/sif")
	if err != nil || len(list) != 1 || list[0].Mode() != 0o755 {
		t.Errorf("ls /sif: %v %v", list, err)
	}
	if got := get(t, c, "/sif/ml_latest.sif"); !bytes.Equal(got, data) {
		t.Errorf("download: %q", got)
	}
	if err := c.Chmod("/sif/ml_latest.sif", 0o777); err == nil {
		t.Error("chmod under /sif succeeded")
	}
	if f, err := c.OpenFile("/sif/ml_latest.sif", os.O_WRONLY); err == nil {
		f.Close()
		t.Error("the SIF file opened for writing")
	}
	if on, err := os.Stat(stored); err != nil || on.Mode().Perm() != 0o600 {
		t.Errorf("on disk: %v %v", on.Mode(), err)
	}
}
