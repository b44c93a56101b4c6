package files_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/kube"
	"whalemountain/tui/files"
)

// room is a place's files in memory, serving only the least a room serves (stat, list,
// read) and recording every call as "Op place path".
type room struct {
	kind backend.PlaceKind
	mu   sync.Mutex
	// by place name, then path: content, or a directory when nil; links by path.
	files map[string]map[string][]byte
	links map[string]string // "name:path" -> LinkTarget
	modes map[string]fs.FileMode
	calls []string
}

func newRoom(kind backend.PlaceKind, names ...string) *room {
	r := &room{kind: kind, files: map[string]map[string][]byte{}, links: map[string]string{}, modes: map[string]fs.FileMode{}}
	for _, n := range names {
		r.files[n] = map[string][]byte{"/": nil, "/etc": nil, "/etc/hostname": []byte(n + "\n")}
	}
	return r
}

func (r *room) call(op string, place backend.Place, p string) (map[string][]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, op+" "+place.Name()+" "+p)
	fsys, ok := r.files[place.Name()]
	if place.Kind() != r.kind || !ok {
		return nil, backend.ErrNoFile
	}
	return fsys, nil
}

func (r *room) took(prefix string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

func (r *room) info(place backend.Place, fsys map[string][]byte, p string) (backend.FileInfo, error) {
	if t, ok := r.links[place.Name()+":"+p]; ok {
		return backend.FileInfo{Name: path.Base(p), Mode: fs.ModeSymlink | 0o777, LinkTarget: t}, nil
	}
	b, ok := fsys[p]
	if !ok {
		return backend.FileInfo{}, backend.ErrNoFile
	}
	fi := backend.FileInfo{Name: path.Base(p), Size: int64(len(b)), Mode: 0o644, ModTime: time.Unix(1e9, 0)}
	if b == nil {
		fi.Mode = fs.ModeDir | 0o755
	}
	if m, ok := r.modes[place.Name()+":"+p]; ok {
		fi.Mode = fi.Mode.Type() | m
	}
	return fi, nil
}

func (r *room) StatPath(_ context.Context, _ backend.Identity, place backend.Place, p string) (backend.FileInfo, error) {
	fsys, err := r.call("stat", place, p)
	if err != nil {
		return backend.FileInfo{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.info(place, fsys, p)
}

func (r *room) ListDir(_ context.Context, _ backend.Identity, place backend.Place, p string) ([]backend.FileInfo, bool, error) {
	fsys, err := r.call("list", place, p)
	if err != nil {
		return nil, false, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []backend.FileInfo
	for q := range fsys {
		if q != "/" && path.Dir(q) == p {
			fi, _ := r.info(place, fsys, q)
			out = append(out, fi)
		}
	}
	return out, false, nil
}

func (r *room) ReadFile(_ context.Context, _ backend.Identity, place backend.Place, p string) (io.ReadCloser, backend.FileInfo, error) {
	fsys, err := r.call("read", place, p)
	if err != nil {
		return nil, backend.FileInfo{}, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	fi, err := r.info(place, fsys, p)
	if err != nil {
		return nil, fi, err
	}
	return io.NopCloser(bytes.NewReader(fsys[p])), fi, nil
}

// fullRoom is a room that can also do every change.
type fullRoom struct{ *room }

func (r fullRoom) WriteFile(_ context.Context, _ backend.Identity, place backend.Place, p string, src io.Reader, size int64, mode fs.FileMode, _ time.Time) error {
	fsys, err := r.call("write", place, p)
	if err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(src, size))
	r.mu.Lock()
	defer r.mu.Unlock()
	fsys[p] = append([]byte{}, b...)
	r.modes[place.Name()+":"+p] = mode
	return err
}

func (r fullRoom) MakeDir(_ context.Context, _ backend.Identity, place backend.Place, p string, _ fs.FileMode) error {
	fsys, err := r.call("mkdir", place, p)
	if err == nil {
		r.mu.Lock()
		fsys[p] = nil
		r.mu.Unlock()
	}
	return err
}

func (r fullRoom) RemovePath(_ context.Context, _ backend.Identity, place backend.Place, p string) error {
	fsys, err := r.call("remove", place, p)
	if err == nil {
		r.mu.Lock()
		delete(fsys, p)
		r.mu.Unlock()
	}
	return err
}

func (r fullRoom) RenamePath(_ context.Context, _ backend.Identity, place backend.Place, from, to string) error {
	fsys, err := r.call("rename", place, from+" "+to)
	if err == nil {
		r.mu.Lock()
		fsys[to] = fsys[from]
		delete(fsys, from)
		r.mu.Unlock()
	}
	return err
}

func (r fullRoom) SetFileAttrs(_ context.Context, _ backend.Identity, place backend.Place, p string, attrs backend.FileAttrs) error {
	_, err := r.call("setattr", place, p)
	if err == nil && attrs.Mode != nil {
		r.mu.Lock()
		r.modes[place.Name()+":"+p] = *attrs.Mode
		r.mu.Unlock()
	}
	return err
}

// containersOf is a container room with the lists the tree's Backend also gives.
type containersOf struct{ fullRoom }

func (c containersOf) List(context.Context, backend.Identity, docker.ListOptions) ([]docker.Container, error) {
	return []docker.Container{{Name: "box", Owner: "alice"}}, nil
}
func (containersOf) Datasets(context.Context, backend.Identity) ([]docker.DatasetInfo, error) {
	return nil, nil
}
func (containersOf) MyGroups(context.Context, backend.Identity) ([]string, error) { return nil, nil }

// podsOf is a pod room that can do no more than look: Snapshot lists its places.
type podsOf struct{ files.Places }

func (podsOf) Snapshot(backend.Identity, kube.ListOptions) ([]kube.Pod, kube.Health) {
	return alicesPods()
}

// fullPods is a pod room that can do everything.
type fullPods struct{ fullRoom }

func (fullPods) Snapshot(backend.Identity, kube.ListOptions) ([]kube.Pod, kube.Health) {
	return alicesPods()
}

func alicesPods() ([]kube.Pod, kube.Health) {
	return []kube.Pod{{Name: "lab", Owner: "alice"}}, kube.Health{}
}

// dialRooms serves the tree on in-memory pipes with these rooms and connects a client.
func dialRooms(t *testing.T, b files.Backend, pods files.PodFiles) *sftp.Client {
	t.Helper()
	c2sR, c2sW := io.Pipe()
	s2cR, s2cW := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = files.Subsystem(ctx, pipeRWC{c2sR, s2cW}, b, alice, slog.New(slog.DiscardHandler), files.Options{TempDir: t.TempDir(), Pods: pods})
		_ = s2cW.Close()
	}()
	cl, err := sftp.NewClientPipe(s2cR, c2sW)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close(); cancel(); <-done })
	return cl
}

// /pods goes through the same operations as /containers, each to the room of its place:
// a pod's paths reach the pod room (as backend.InPod), never the container room.
func TestPodsAreOnePlaceMore(t *testing.T) {
	boxes, pods := newRoom(backend.KindContainer, "box"), newRoom(backend.KindPod, "lab")
	cl := dialRooms(t, containersOf{fullRoom{boxes}}, fullPods{fullRoom{pods}})
	for _, top := range []string{"/containers/box", "/pods/lab"} {
		f, err := cl.Create(top + "/etc/new.txt")
		if err == nil {
			_, err = f.Write([]byte("hello"))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		steps := []error{err,
			cl.Chmod(top+"/etc/new.txt", 0o600),
			cl.Mkdir(top + "/etc/d"),
			cl.Rename(top+"/etc/new.txt", top+"/etc/d/moved.txt"),
			cl.Remove(top + "/etc/d/moved.txt"),
		}
		for i, err := range steps {
			if err != nil {
				t.Errorf("%s: step %d: %v", top, i, err)
			}
		}
		if fis, err := cl.ReadDir(top + "/etc"); err != nil || len(fis) != 2 {
			t.Errorf("ls %s/etc: %v %v", top, fis, err)
		}
	}
	want := []string{"write lab /etc/new.txt", "setattr lab /etc/new.txt", "mkdir lab /etc/d",
		"rename lab /etc/new.txt /etc/d/moved.txt", "remove lab /etc/d/moved.txt"}
	var got []string
	for _, c := range pods.took("") {
		if !strings.HasPrefix(c, "stat") && !strings.HasPrefix(c, "list") && !strings.HasPrefix(c, "read") {
			got = append(got, c)
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("the pod room did %q, want %q", got, want)
	}
	if c := boxes.took(""); slices.ContainsFunc(c, func(s string) bool { return strings.Contains(s, "lab") }) {
		t.Errorf("the container room was asked about the pod: %q", c)
	}
	if fis, err := cl.ReadDir("/pods"); err != nil || len(fis) != 1 || fis[0].Name() != "lab" || !fis[0].IsDir() {
		t.Errorf("ls /pods: %v %v", fis, err)
	}
}

// Where a room lacks an operation, the tree refuses it in one line that says so, before
// anything is sent, and the room is asked for nothing but looks.
func TestAnOperationTheRoomLacksIsRefusedInOneLine(t *testing.T) {
	boxes, pods := newRoom(backend.KindContainer, "box"), newRoom(backend.KindPod, "lab")
	cl := dialRooms(t, containersOf{fullRoom{boxes}}, podsOf{pods})
	if got, err := cl.Open("/pods/lab/etc/hostname"); err != nil {
		t.Fatalf("get from a read-only room: %v", err)
	} else {
		b, _ := io.ReadAll(got)
		got.Close()
		if string(b) != "lab\n" {
			t.Errorf("read %q", b)
		}
	}
	for what, do := range map[string]func() error{
		"write files":           func() error { _, err := cl.Create("/pods/lab/etc/new.txt"); return err },
		"change modes or times": func() error { return cl.Chmod("/pods/lab/etc/hostname", 0o600) },
		"make directories":      func() error { return cl.Mkdir("/pods/lab/etc/d") },
		"remove files":          func() error { return cl.Remove("/pods/lab/etc/hostname") },
		"rename files":          func() error { return cl.Rename("/pods/lab/etc/hostname", "/pods/lab/etc/h2") },
	} {
		err := do()
		var st *sftp.StatusError
		if !errors.As(err, &st) || st.FxCode() != sftp.ErrSSHFxOpUnsupported ||
			!strings.Contains(st.Error(), "cannot "+what+" here (not supported in /pods/lab)") || strings.Contains(st.Error(), "\n") {
			t.Errorf("%s in a room without it: %v", what, err)
		}
	}
	for _, c := range pods.took("") {
		if !strings.HasPrefix(c, "stat") && !strings.HasPrefix(c, "list") && !strings.HasPrefix(c, "read") {
			t.Errorf("the room was asked to change something: %q", c)
		}
	}
}

// A link target is a path in the same place only when it is absolute and clean: anything
// else (a room's mistake, or "..") reads as no such file, never as a path of another place.
func TestLinkTargetsStayInTheirPlace(t *testing.T) {
	pods := newRoom(backend.KindPod, "lab", "other")
	pods.links["lab:/etc/good"] = "/etc/hostname"
	pods.links["lab:/etc/up"] = "/../other/etc/hostname"
	pods.links["lab:/etc/rel"] = "hostname"
	cl := dialRooms(t, containersOf{fullRoom{newRoom(backend.KindContainer)}}, podsOf{pods})
	if to, err := cl.ReadLink("/pods/lab/etc/good"); err != nil || to != "/pods/lab/etc/hostname" {
		t.Errorf("readlink good: %q %v", to, err)
	}
	if fi, err := cl.Stat("/pods/lab/etc/good"); err != nil || fi.Size() != 4 || !fi.Mode().IsRegular() {
		t.Errorf("stat through good: %v %v", fi, err)
	}
	for _, l := range []string{"up", "rel"} {
		to, err := cl.ReadLink("/pods/lab/etc/" + l)
		_, serr := cl.Stat("/pods/lab/etc/" + l)
		if !errors.Is(err, os.ErrNotExist) || !errors.Is(serr, os.ErrNotExist) {
			t.Errorf("link %s: readlink %q %v; stat %v", l, to, err, serr)
		}
	}
	if c := pods.took("stat other"); len(c) != 0 {
		t.Errorf("the other pod was reached: %q", c)
	}
}
