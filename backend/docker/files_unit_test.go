package docker

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"whalemountain/backend"
)

// archiveFake serves one container whose directory /d is the tar stream tree makes; it
// counts the bytes the service read of it.
type archiveFake struct {
	*fakeEngine
	tree func(tw *tar.Writer) error
	read atomic.Int64
}

func (f *archiveFake) ContainerStatPath(_ context.Context, _ string, o client.ContainerStatPathOptions) (client.ContainerStatPathResult, error) {
	if o.Path != "/d" {
		return client.ContainerStatPathResult{}, errors.New("unexpected stat of " + o.Path)
	}
	return client.ContainerStatPathResult{Stat: container.PathStat{Name: "d", Mode: os.ModeDir | 0o755}}, nil
}

func (f *archiveFake) CopyFromContainer(_ context.Context, _ string, o client.CopyFromContainerOptions) (client.CopyFromContainerResult, error) {
	if o.SourcePath != "/d/." {
		return client.CopyFromContainerResult{}, errors.New("unexpected archive of " + o.SourcePath)
	}
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: "./", Mode: 0o755})
		if err == nil {
			err = f.tree(tw)
		}
		if err == nil {
			err = tw.Close()
		}
		pw.CloseWithError(err)
	}()
	return client.CopyFromContainerResult{Content: &countingReader{r: pr, n: &f.read}}, nil
}

type countingReader struct {
	r *io.PipeReader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func (c *countingReader) Close() error { return c.r.Close() }

func newArchiveFake(t *testing.T, tree func(tw *tar.Writer) error) (*Service, *archiveFake) {
	t.Helper()
	f := &archiveFake{fakeEngine: &fakeEngine{}, tree: tree}
	f.set(nil, summary("c1", "alice", "box", container.StateRunning))
	return newService(DefaultConfig(), f, nil), f
}

func file(tw *tar.Writer, name string, size int64) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644}); err != nil {
		return err
	}
	_, err := io.CopyN(tw, zeros{}, size)
	return err
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestListDirDirectChildrenOnly: entries below a child are not listed; links carry targets.
func TestListDirDirectChildrenOnly(t *testing.T) {
	s, _ := newArchiveFake(t, func(tw *tar.Writer) error {
		for _, h := range []*tar.Header{
			{Typeflag: tar.TypeDir, Name: "./sub/", Mode: 0o700},
			{Typeflag: tar.TypeReg, Name: "./sub/deep", Mode: 0o600},
			{Typeflag: tar.TypeDir, Name: "./sub/deeper/", Mode: 0o700},
			{Typeflag: tar.TypeSymlink, Name: "./up", Linkname: "../etc/passwd", Mode: 0o777},
			{Typeflag: tar.TypeSymlink, Name: "./abs", Linkname: "/etc", Mode: 0o777},
		} {
			if err := tw.WriteHeader(h); err != nil {
				return err
			}
		}
		return file(tw, "./zfile", 10)
	})
	fis, truncated, err := s.ListDir(context.Background(), alice, backend.InContainer("box"), "/d")
	if err != nil || truncated {
		t.Fatalf("list: %v (truncated %v)", err, truncated)
	}
	var got []string
	for _, fi := range fis {
		got = append(got, fmt.Sprintf("%s %v %d %s", fi.Name, fi.Mode, fi.Size, fi.LinkTarget))
	}
	want := []string{"abs Lrwxrwxrwx 0 /etc", "sub drwx------ 0 ", "up Lrwxrwxrwx 0 /etc/passwd", "zfile -rw-r--r-- 10 "}
	if !slices.Equal(got, want) {
		t.Errorf("list =\n%q\nwant\n%q", got, want)
	}
}

// TestListDirStopsEarly: a big file below the directory ends the listing before its content
// is pulled; so does a directory with too many entries.
func TestListDirStopsEarly(t *testing.T) {
	const big = 1 << 30
	s, f := newArchiveFake(t, func(tw *tar.Writer) error {
		if err := file(tw, "./a", 1); err != nil {
			return err
		}
		if err := file(tw, "./big", big); err != nil {
			return err
		}
		return file(tw, "./z", 1)
	})
	fis, truncated, err := s.ListDir(context.Background(), alice, backend.InContainer("box"), "/d")
	if err != nil || !truncated {
		t.Fatalf("list: %v, truncated %v; want a truncated listing", err, truncated)
	}
	if len(fis) != 2 || fis[0].Name != "a" || fis[1].Name != "big" || fis[1].Size != big {
		t.Errorf("list = %+v, want a and big", fis)
	}
	if n := f.read.Load(); n > maxListSkip {
		t.Errorf("read %d bytes of the stream, want no more than %d", n, maxListSkip)
	}

	s, _ = newArchiveFake(t, func(tw *tar.Writer) error {
		for i := range maxListEntries + 5 {
			if err := file(tw, fmt.Sprintf("./f%06d", i), 0); err != nil {
				return err
			}
		}
		return nil
	})
	fis, truncated, err = s.ListDir(context.Background(), alice, backend.InContainer("box"), "/d")
	if err != nil || !truncated || len(fis) != maxListEntries {
		t.Errorf("many entries: %d listed, truncated %v, %v", len(fis), truncated, err)
	}
}

// TestArchiveEventsIgnored: file transfers do not make the live snapshot look at a container
// (the engine holds its lock while they run); other events still do.
func TestArchiveEventsIgnored(t *testing.T) {
	t.Parallel()
	f := &fakeEngine{}
	f.set(nil, summary("c1", "alice", "box", container.StateRunning))
	s := fakeService(t, f)
	waitFor(t, s, "healthy", func() bool { _, h := s.Snapshot(alice, ListOptions{}); return h.OK })
	lists := func() int {
		f.mu.Lock()
		defer f.mu.Unlock()
		return f.lists
	}
	send := func(action events.Action) {
		f.mu.Lock()
		ch := f.msgs
		f.mu.Unlock()
		select {
		case ch <- events.Message{Type: events.ContainerEventType, Action: action, Actor: events.Actor{ID: "c1"}}:
		case <-time.After(10 * time.Second):
			t.Fatal("watcher does not read events")
		}
	}
	before := lists()
	for range 20 {
		send(events.ActionArchivePath)
		send(events.ActionExtractToDir)
	}
	time.Sleep(3 * coalesce)
	if n := lists() - before; n != 0 {
		t.Errorf("file transfer events caused %d list calls", n)
	}
	f.set(nil, summary("c1", "alice", "box", container.StateExited))
	send(events.ActionDie)
	waitFor(t, s, "exited", func() bool {
		cs, _ := s.Snapshot(alice, ListOptions{All: true})
		return len(cs) == 1 && cs[0].State == "exited"
	})
}

func TestPathHelpers(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"/", true}, {"/etc/hostname", true}, {"/a b/ü", true},
		{"", false}, {"etc", false}, {"/etc/", false}, {"/etc/../x", false}, {"/./x", false},
		{"//x", false}, {"/x\x00", false}, {"/" + string(make([]byte, maxPathLen)), false},
	} {
		if err := checkPath(backend.Home, tc.p); (err == nil) != tc.ok || err != nil && !errors.Is(err, ErrNotFound) {
			t.Errorf("checkPath(%q) = %v, want ok %v", tc.p, err, tc.ok)
		}
	}
	for _, tc := range []struct{ dir, raw, want string }{
		{"/", "f", "/f"}, {"/a", "../b", "/b"}, {"/a", "..", "/"}, {"/a", "../..", ""},
		{"/", "../etc", ""}, {"/a/b", "../../../x", ""}, {"/a", "/etc", ""}, {"/a", "", ""},
	} {
		if got := relativeLink(tc.dir, tc.raw); got != tc.want {
			t.Errorf("relativeLink(%q, %q) = %q, want %q", tc.dir, tc.raw, got, tc.want)
		}
	}
	home := &spot{base: "/home/alice"}
	for _, tc := range []struct {
		ep, want string
		ok       bool
	}{
		{"/home/alice", "/", true}, {"/home/alice/x/y", "/x/y", true}, {"/home/alice/../bob", "", false},
		{"/home/alicex", "", false}, {"/etc", "", false}, {"x", "", false},
	} {
		if got, ok := home.fromEngine(tc.ep); got != tc.want || ok != tc.ok {
			t.Errorf("fromEngine(%q) = %q, %v; want %q, %v", tc.ep, got, ok, tc.want, tc.ok)
		}
	}
}

// WithoutDirectHome is a Service on s's engine and audit log that cannot open home volumes
// itself, as when the engine is on another machine: its engine is not the SDK client. For
// the tests of package docker_test.
func WithoutDirectHome(s *Service) *Service {
	return newService(s.cfg, struct{ engine }{s.api}, s.audit)
}
