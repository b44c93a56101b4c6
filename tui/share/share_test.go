package share

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/tui/input"
)

// fakeExec is a process whose output the test writes and whose input it reads.
type fakeExec struct {
	outR *io.PipeReader
	outW *io.PipeWriter
	in   lockedBuf
	size [2]int
	mu   sync.Mutex
	done chan struct{}
	once sync.Once
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}
func (l *lockedBuf) Close() error { return nil }
func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newFake() *fakeExec {
	r, w := io.Pipe()
	return &fakeExec{outR: r, outW: w, done: make(chan struct{})}
}

func (f *fakeExec) Stdin() io.WriteCloser { return &f.in }
func (f *fakeExec) Stdout() io.Reader     { return f.outR }
func (f *fakeExec) Stderr() io.Reader     { return nil }
func (f *fakeExec) Resize(w, h int) error {
	f.mu.Lock()
	f.size = [2]int{w, h}
	f.mu.Unlock()
	return nil
}
func (f *fakeExec) Wait(ctx context.Context) (int, error) {
	select {
	case <-f.done:
		return 0, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}
func (f *fakeExec) Close() error {
	f.once.Do(func() { close(f.done); f.outW.Close() })
	return nil
}

var (
	alice  = backend.Identity{User: "alice", Role: backend.RoleStudent}
	bob    = backend.Identity{User: "bob", Role: backend.RoleStudent}
	tanaka = backend.Identity{User: "tanaka", Role: backend.RoleTA}
)

// drain reads r into a buffer until EOF.
func drain(r io.Reader) *lockedBuf {
	var b lockedBuf
	go func() { _, _ = io.Copy(&b, r) }()
	return &b
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("never: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// auditRec collects audit entries.
type auditRec struct {
	mu      sync.Mutex
	entries []string
}

func (a *auditRec) ActionNote(id backend.Identity, action, target, result, reason, note string) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, strings.Join([]string{id.User, action, target, result, note}, " "))
	return nil
}

func (a *auditRec) has(s string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, e := range a.entries {
		if e == s {
			return true
		}
	}
	return false
}

func TestShareJoinWriteDrop(t *testing.T) {
	au := &auditRec{}
	h := New(Options{Audit: au})
	fx := newFake()
	ex := h.Open(alice, "box", fx, Terminal{Term: "xterm", Width: 100, Height: 30})
	owner := drain(ex.Stdout())
	_, _ = fx.outW.Write([]byte("$ before\r\n"))
	waitFor(t, "owner sees output", func() bool { return strings.Contains(owner.String(), "before") })

	if _, err := h.Join(tanaka, "alice", input.Size{Width: 80, Height: 24}); !errors.Is(err, ErrNotShared) {
		t.Fatalf("join before share: %v, want ErrNotShared", err)
	}
	if _, err := h.Join(tanaka, "nobody", input.Size{}); !errors.Is(err, ErrNotShared) {
		t.Fatalf("join of nobody: %v, want ErrNotShared", err)
	}
	if _, err := h.Share(bob, "box", false); !errors.Is(err, ErrNoShell) {
		t.Fatalf("bob shares alice's box: %v, want ErrNoShell", err)
	}
	if _, err := h.Share(alice, "box", false); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Join(bob, "alice", input.Size{}); !errors.Is(err, ErrNotTA) {
		t.Fatalf("a student joins: %v, want ErrNotTA", err)
	}
	w, err := h.Join(tanaka, "alice/box", input.Size{Width: 80, Height: 24})
	if err != nil {
		t.Fatal(err)
	}
	inR, inW := io.Pipe()
	var view lockedBuf
	ended := make(chan string, 1)
	go func() { ended <- w.Run(context.Background(), ViewTerminal{In: inR, Out: &view}) }()
	waitFor(t, "the replay reaches the viewer", func() bool { return strings.Contains(view.String(), "$ before") })

	payload := []byte("\x1b[31mred\x1b[0m ü 日本\r\n")
	_, _ = fx.outW.Write(payload)
	waitFor(t, "the payload reaches the viewer", func() bool { return bytes.Contains([]byte(view.String()), payload) })
	waitFor(t, "the owner's title names the viewer", func() bool { return strings.Contains(owner.String(), "watching: tanaka") })

	_, _ = inW.Write([]byte("ro"))
	time.Sleep(20 * time.Millisecond)
	if strings.Contains(fx.in.String(), "ro") {
		t.Fatalf("a read-only viewer's keys reached the shell: %q", fx.in.String())
	}
	if _, err := h.Share(alice, "box", true); err != nil {
		t.Fatal(err)
	}
	_, _ = inW.Write([]byte("rw"))
	waitFor(t, "a granted viewer's keys reach the shell", func() bool { return fx.in.String() == "rw" })
	if _, err := h.Share(alice, "box", false); err != nil {
		t.Fatal(err)
	}
	_, _ = inW.Write([]byte("again"))
	time.Sleep(20 * time.Millisecond)
	if fx.in.String() != "rw" {
		t.Fatalf("keys after the grant was taken back reached the shell: %q", fx.in.String())
	}
	if _, err := ex.Stdin().Write([]byte("own")); err != nil || fx.in.String() != "rwown" {
		t.Fatalf("the owner's keys: %v %q", err, fx.in.String())
	}

	if _, err := h.Drop(alice, "box", "tanaka"); err != nil {
		t.Fatal(err)
	}
	select {
	case why := <-ended:
		if !strings.Contains(why, "dropped you") {
			t.Errorf("why the view ended: %q", why)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("the view did not end at the drop")
	}
	n := len(view.String())
	_, _ = fx.outW.Write([]byte("after drop\r\n"))
	waitFor(t, "owner sees later output", func() bool { return strings.Contains(owner.String(), "after drop") })
	if strings.Contains(view.String()[n:], "after drop") {
		t.Errorf("output after the drop reached the viewer")
	}
	for _, e := range []string{"alice share alice/box ok read-only", "tanaka join alice/box ok read-only",
		"alice share alice/box ok read-write", "alice drop alice/box ok tanaka", "bob join alice refused "} {
		if !au.has(e) {
			t.Errorf("audit lacks %q: %q", e, au.entries)
		}
	}
	ex.Close()
}

func TestStopAndShellEnd(t *testing.T) {
	h := New(Options{})
	fx := newFake()
	ex := h.Open(alice, "box", fx, Terminal{Width: 80, Height: 24})
	drain(ex.Stdout())
	if _, err := h.Share(alice, "box", true); err != nil {
		t.Fatal(err)
	}
	w, err := h.Join(tanaka, "alice", input.Size{Width: 80, Height: 24})
	if err != nil {
		t.Fatal(err)
	}
	ended := make(chan string, 1)
	go func() { ended <- w.Run(context.Background(), ViewTerminal{Out: io.Discard}) }()
	if _, err := h.Stop(alice, "box"); err != nil {
		t.Fatal(err)
	}
	if why := <-ended; !strings.Contains(why, "stopped sharing") {
		t.Errorf("why: %q", why)
	}
	if _, err := h.Join(tanaka, "alice", input.Size{}); !errors.Is(err, ErrNotShared) {
		t.Errorf("join after stop: %v", err)
	}
	if _, err := h.Share(alice, "box", false); err != nil {
		t.Fatal(err)
	}
	w, err = h.Join(tanaka, "alice", input.Size{})
	if err != nil {
		t.Fatal(err)
	}
	go func() { ended <- w.Run(context.Background(), ViewTerminal{Out: io.Discard}) }()
	ex.Close()
	if why := <-ended; !strings.Contains(why, "ended") {
		t.Errorf("why: %q", why)
	}
	if got := h.List(alice, false); len(got) != 0 {
		t.Errorf("a closed shell is still listed: %+v", got)
	}
}

// TestSlowViewer: a viewer that reads nothing is dropped; the owner's output never waits.
// TestJoinView: the dashboard's view runs like a process: the shell's output comes out, keys
// go in while writing is allowed, ctrl-p ctrl-q ends it; a user who shares nothing is one line.
func TestJoinView(t *testing.T) {
	h := New(Options{})
	if _, err := h.JoinView(tanaka, "alice", 80, 24); !errors.Is(err, ErrNotShared) || err.Error() != "alice shares no shell" {
		t.Fatalf("join view before any share: %v", err)
	}
	fx := newFake()
	ex := h.Open(alice, "box", fx, Terminal{Width: 80, Height: 24})
	drain(ex.Stdout())
	_, _ = h.Share(alice, "box", true)
	v, err := h.JoinView(tanaka, "alice", 80, 24)
	if err != nil {
		t.Fatal(err)
	}
	if h.Open(tanaka, "alice's shared shell", v, Terminal{}) != v {
		t.Error("a view was wrapped as a shell of its own")
	}
	seen := drain(v.Stdout())
	_, _ = fx.outW.Write([]byte("from-alice\r\n"))
	waitFor(t, "the view shows the shell", func() bool { return strings.Contains(seen.String(), "from-alice") })
	_, _ = v.Stdin().Write([]byte("typed"))
	waitFor(t, "the TA's keys reach the shell", func() bool { return fx.in.String() == "typed" })
	_, _ = v.Stdin().Write([]byte{0x10, 0x11})
	if code, err := v.Wait(context.Background()); code != 0 || err != nil {
		t.Errorf("wait: %d %v", code, err)
	}
	waitFor(t, "the view says it ended", func() bool { return strings.Contains(seen.String(), "you left") })
	if _, err := v.Stdin().Write([]byte("late")); err == nil {
		t.Error("keys after the view ended were taken instead of going back")
	}
	v.Close()
	ex.Close()
}

func TestSlowViewer(t *testing.T) {
	h := New(Options{Backlog: 4})
	fx := newFake()
	ex := h.Open(alice, "box", fx, Terminal{Width: 80, Height: 24})
	owner := drain(ex.Stdout())
	_, _ = h.Share(alice, "box", false)
	w, err := h.Join(tanaka, "alice", input.Size{})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		_, _ = fx.outW.Write([]byte("line\r\n"))
	}
	waitFor(t, "the owner got every line", func() bool { return strings.Count(owner.String(), "line") == 50 })
	select {
	case <-w.done:
		if !strings.Contains(w.reason, "keep up") {
			t.Errorf("reason %q", w.reason)
		}
	default:
		t.Fatal("a viewer 50 chunks behind with room for 4 is still attached")
	}
	ex.Close()

	// Bounded in bytes as well: a few big chunks are enough.
	h = New(Options{BacklogBytes: 64 << 10})
	fx = newFake()
	ex = h.Open(alice, "box", fx, Terminal{Width: 80, Height: 24})
	owner = drain(ex.Stdout())
	_, _ = h.Share(alice, "box", false)
	if w, err = h.Join(tanaka, "alice", input.Size{}); err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("y"), 30<<10)
	for i := 0; i < 3; i++ {
		_, _ = fx.outW.Write(big)
	}
	waitFor(t, "the owner got every byte", func() bool { return len(owner.String()) >= 90<<10 })
	select {
	case <-w.done:
	default:
		t.Fatal("a viewer 90 KiB behind with room for 64 KiB is still attached")
	}
	ex.Close()
}

func TestEscState(t *testing.T) {
	for _, tc := range []struct {
		in     string
		ground bool
	}{
		{"plain", true},
		{"\x1b", false},
		{"\x1b[", false},
		{"\x1b[31", false},
		{"\x1b[31m", true},
		{"\x1b]0;title", false},
		{"\x1b]0;title\x07", true},
		{"\x1b]0;title\x1b", false},
		{"\x1b]0;title\x1b\\", true},
		{"\x1b(", false},
		{"\x1b(B", true},
		{"\xe6\x97", false},
		{"\xe6\x97\xa5", true},
		{"\x1bPq#0\x1b\\", true},
		{"\x1b7", true},
	} {
		var e escState
		e.feed([]byte(tc.in))
		if e.ground() != tc.ground {
			t.Errorf("%q: ground %v, want %v", tc.in, e.ground(), tc.ground)
		}
		// Byte by byte ends the same.
		var f escState
		for i := range len(tc.in) {
			f.feed([]byte{tc.in[i]})
		}
		if f != e {
			t.Errorf("%q: fed byte by byte %+v, at once %+v", tc.in, f, e)
		}
	}
}

func TestSeedFrom(t *testing.T) {
	for _, tc := range []struct {
		buf  string
		cut  bool
		want string
	}{
		{"abc\r\ndef", false, "abc\r\ndef"},
		{"bc\r\ndef", true, "def"},
		{"nonewline", true, ""},
		{"old\x1b[?1049h\x1b[H\x1b[2Jnew", false, "old\x1b[?1049h\x1b[H\x1b[2Jnew"},
	} {
		if got := string(seedFrom([]byte(tc.buf), tc.cut)); got != tc.want {
			t.Errorf("seedFrom(%q, %v) = %q, want %q", tc.buf, tc.cut, got, tc.want)
		}
	}
}

func TestLastLines(t *testing.T) {
	for _, tc := range []struct {
		buf  string
		n    int
		want string
	}{
		{"a\nb\nc\nd", 2, "b\nc\nd"},
		{"a\nb\n", 1, "b\n"},
		{"a\nb", 5, "a\nb"},
		{"", 2, ""},
	} {
		if got := string(lastLines([]byte(tc.buf), tc.n)); got != tc.want {
			t.Errorf("lastLines(%q, %d) = %q, want %q", tc.buf, tc.n, got, tc.want)
		}
	}
}

func TestViewerKeys(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"ls\r", "ls\r"},
		{"\x1b[12;1R", ""},
		{"a\x1b[12;1Rb", "ab"},
		{"\x1b[?62;22c\x1b[>1;10;0c", ""},
		{"\x1b]11;rgb:0000/0000/0000\x07x", "x"},
		{"\x1b]11;rgb:0000/0000/0000\x1b\\x", "x"},
		{"\x1bP1$r0m\x1b\\", ""},
		{"\x1b[A\x1b[B\x03", "\x1b[A\x1b[B\x03"},
	} {
		if got := string(viewerKeys([]byte(tc.in))); got != tc.want {
			t.Errorf("viewerKeys(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEscapes(t *testing.T) {
	for _, tc := range []struct {
		in        []string // writes, in order
		out, cmds string
	}{
		{[]string{"~S"}, "", "S"},
		{[]string{"ls\r~W"}, "ls\r", "W"},
		{[]string{"a~S"}, "a~S", ""},
		{[]string{"~", "X"}, "", "X"},
		{[]string{"~", "/x"}, "~/x", ""},
		{[]string{"~~"}, "~~", ""},
		{[]string{"~S~X"}, "", "SX"},
		{[]string{"\x1b[3~S"}, "\x1b[3~S", ""},
		{[]string{"x\n~H"}, "x\n", "H"},
		{[]string{"~?"}, "~?", ""},
		{[]string{"ls\r\x1b[12;1R~S"}, "ls\r\x1b[12;1R", "S"},
		{[]string{"\x1b[A~S"}, "\x1b[A~S", ""},
		{[]string{"\x1bb~S"}, "\x1bb~S", ""},
	} {
		var e escapes
		var out, cmds []byte
		for _, w := range tc.in {
			o, c := e.scan([]byte(w))
			out, cmds = append(out, o...), append(cmds, c...)
		}
		if string(out) != tc.out || string(cmds) != tc.cmds {
			t.Errorf("%q: out %q cmds %q, want %q %q", tc.in, out, cmds, tc.out, tc.cmds)
		}
	}
}

func TestOwnerEscapes(t *testing.T) {
	au := &auditRec{}
	h := New(Options{Audit: au})
	fx := newFake()
	ex := h.Open(alice, "box", fx, Terminal{Width: 80, Height: 24})
	owner := drain(ex.Stdout())
	in := ex.Stdin()
	_, _ = in.Write([]byte("~W"))
	if l := h.List(alice, false); len(l) != 1 || !l[0].Shared || !l[0].Write {
		t.Fatalf("after ~W: %+v", l)
	}
	waitFor(t, "the title says read-write", func() bool { return strings.Contains(owner.String(), "shared with TAs, read-write") })
	_, _ = in.Write([]byte("~S"))
	if l := h.List(alice, false); !l[0].Shared || l[0].Write {
		t.Fatalf("after ~S: %+v", l)
	}
	_, _ = in.Write([]byte("echo ~S\r~X"))
	if l := h.List(alice, false); l[0].Shared {
		t.Fatalf("after ~X: %+v", l)
	}
	if got := fx.in.String(); got != "echo ~S\r" {
		t.Errorf("the shell got %q", got)
	}
	_, _ = in.Write([]byte("~H"))
	waitFor(t, "the title lists the escapes", func() bool { return strings.Contains(owner.String(), escapeHelp) })
	if !au.has("alice share alice/box ok read-write") || !au.has("alice unshare alice/box ok ") {
		t.Errorf("audit %q", au.entries)
	}
	ex.Close()
}

func TestRing(t *testing.T) {
	r := ring{max: 4}
	r.write([]byte("ab"))
	if b, cut := r.bytes(); string(b) != "ab" || cut {
		t.Errorf("%q %v", b, cut)
	}
	r.write([]byte("cdefghij"))
	if b, cut := r.bytes(); string(b) != "ghij" || !cut {
		t.Errorf("%q %v", b, cut)
	}
}

func TestTitles(t *testing.T) {
	if got := ownerTitle("box", true, false, []string{"tanaka"}); got != "box · shared with TAs, read-only · watching: tanaka" {
		t.Errorf("owner: %q", got)
	}
	if got := ownerTitle("box", false, false, nil); got != "box · not shared" {
		t.Errorf("owner: %q", got)
	}
	if got := viewerTitle("alice", "box", 100, 30, true, nil, 80, 24); got != "alice/box 100x30 · read-write · watching: nobody · your terminal 80x24 is smaller: clipped" {
		t.Errorf("viewer: %q", got)
	}
	if got := string(titleSeq("a\x1b]b")); strings.Count(got, "\x1b") != 1 {
		t.Errorf("a title with an escape is not neutralised: %q", got)
	}
}

// BenchmarkFanOut is the owner's throughput through the shell: not shared; shared with
// nobody watching (the emulator that keeps the screen runs); with 1 viewer; with 5, one of
// which reads nothing (it is dropped; the owner never waits for it) and one of which sees the
// screen framed (drawn from the emulator).
func BenchmarkFanOut(b *testing.B) {
	chunk := bytes.Repeat([]byte("0123456789abcde\n"), 2048) // 32 KiB of lines: the emulator's worst
	for _, tc := range []struct {
		name    string
		shared  bool
		viewers int
	}{
		{"viewers=0", false, 0},
		{"viewers=0,shared", true, 0},
		{"viewers=1", true, 1},
		{"viewers=5", true, 5},
	} {
		b.Run(tc.name, func(b *testing.B) {
			h := New(Options{})
			fx := newFake()
			ex := h.Open(alice, "box", fx, Terminal{Width: 80, Height: 24})
			if tc.shared {
				_, _ = h.Share(alice, "box", false)
			}
			for i := 0; i < tc.viewers; i++ {
				size := input.Size{Width: 80, Height: 24}
				if i == 1 {
					size = input.Size{Width: 120, Height: 40} // framed
				}
				w, err := h.Join(tanaka, "alice", size)
				if err != nil {
					b.Fatal(err)
				}
				if i == tc.viewers-1 && tc.viewers > 1 {
					continue // the slow one: never read
				}
				go w.Run(context.Background(), ViewTerminal{Out: io.Discard})
			}
			go func() {
				for i := 0; i < b.N; i++ {
					_, _ = fx.outW.Write(chunk)
				}
				fx.outW.Close()
			}()
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			_, _ = io.Copy(io.Discard, ex.Stdout())
			b.StopTimer()
			ex.Close()
		})
	}
}

// TestSharingSubscribers: TAs learn who shares a shell, woken (no polling) when a shell is
// shared, no longer, or ends; a student learns nothing.
func TestSharingSubscribers(t *testing.T) {
	h := New(Options{})
	ch, unsub := h.SubscribeShares()
	defer unsub()
	woken := func(what string) {
		t.Helper()
		select {
		case <-ch:
		case <-time.After(5 * time.Second):
			t.Fatalf("no wake-up: %s", what)
		}
	}
	fx := newFake()
	ex := h.Open(alice, "box", fx, Terminal{Width: 80, Height: 24})
	drain(ex.Stdout())
	if got := h.Sharing(tanaka); len(got) != 0 {
		t.Fatalf("before any share: %v", got)
	}
	_, _ = h.Share(alice, "box", false)
	woken("share")
	if got := h.Sharing(tanaka); !got["alice"] || len(got) != 1 {
		t.Errorf("after the share: %v", got)
	}
	if got := h.Sharing(bob); len(got) != 0 {
		t.Errorf("a student is told who shares: %v", got)
	}
	_, _ = h.Share(alice, "box", true) // the mode changes; who shares does not
	select {
	case <-ch:
		t.Error("a wake-up for a change of mode")
	default:
	}
	_, _ = h.Stop(alice, "box")
	woken("stop")
	if got := h.Sharing(tanaka); len(got) != 0 {
		t.Errorf("after the stop: %v", got)
	}
	_, _ = h.Share(alice, "box", false)
	woken("share again")
	ex.Close()
	woken("the shell ended")
	if got := h.Sharing(tanaka); len(got) != 0 {
		t.Errorf("after the end: %v", got)
	}
}
