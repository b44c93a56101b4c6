package recording

import (
	"bufio"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"whalemountain/backend"
)

var (
	alice  = backend.Identity{User: "alice", Role: backend.RoleStudent}
	bob    = backend.Identity{User: "bob", Role: backend.RoleStudent}
	tanaka = backend.Identity{User: "tanaka", Role: backend.RoleTA}
)

// parseCast reads a cast v2 file: its header and events, each checked for shape.
func parseCast(t *testing.T, r io.Reader) (Header, [][3]string) {
	t.Helper()
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	if !sc.Scan() {
		t.Fatal("empty cast")
	}
	var h Header
	if err := json.Unmarshal(sc.Bytes(), &h); err != nil || h.Version != 2 || h.Width <= 0 || h.Height <= 0 {
		t.Fatalf("header %s: %v", sc.Bytes(), err)
	}
	var evs [][3]string
	last := -1.0
	for sc.Scan() {
		var ev []any
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || len(ev) != 3 {
			t.Fatalf("event %s: %v", sc.Bytes(), err)
		}
		ts, ok1 := ev[0].(float64)
		kind, ok2 := ev[1].(string)
		data, ok3 := ev[2].(string)
		if !ok1 || !ok2 || !ok3 || ts < last {
			t.Fatalf("event %s is malformed or out of order", sc.Bytes())
		}
		last = ts
		evs = append(evs, [3]string{"", kind, data})
	}
	return h, evs
}

func TestWriteAndRead(t *testing.T) {
	s, err := NewStore(t.TempDir(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	w, info, err := s.Create("alice", "my box!", "alice: shell in box", 100, 30, "xterm-256color")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(info.Name, "-my_box_-"+info.Name[len(info.Name)-11:len(info.Name)-5]+".cast") {
		t.Errorf("name %q", info.Name)
	}
	text := "héllo 日本\x1b[31m red\r\n"
	b := []byte(text)
	// Split inside the multi-byte characters.
	for _, part := range [][]byte{b[:2], b[2:8], b[8:9], b[9:]} {
		if err := w.Output(part); err != nil {
			t.Fatal(err)
		}
	}
	_ = w.Resize(120, 40)
	_ = w.Mark("tanaka joined")
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(s.dir, "alice", info.Name))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode: %v %v", fi, err)
	}

	f, _, err := s.Open(alice, "alice", info.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h, evs := parseCast(t, f)
	if h.Width != 100 || h.Height != 30 || h.Env["TERM"] != "xterm-256color" || h.Title != "alice: shell in box" {
		t.Errorf("header %+v", h)
	}
	var out strings.Builder
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e[1])
		if e[1] == Output {
			out.WriteString(e[2])
		}
	}
	if out.String() != text {
		t.Errorf("output %q, want %q", out.String(), text)
	}
	if k := strings.Join(kinds, ""); !strings.HasSuffix(k, "rm") || evs[len(evs)-2][2] != "120x40" || evs[len(evs)-1][2] != "tanaka joined" {
		t.Errorf("events %q", evs)
	}

	// Who may read it.
	if _, _, err := s.Open(tanaka, "alice", info.Name); err != nil {
		t.Errorf("a TA cannot read alice's recording: %v", err)
	}
	for _, tc := range []struct {
		id          backend.Identity
		owner, name string
	}{
		{bob, "alice", info.Name},
		{bob, "bob", info.Name},
		{alice, "alice", "../alice/" + info.Name},
		{alice, "alice", "nothere.cast"},
		{alice, "..", info.Name},
		{backend.Identity{}, "alice", info.Name},
	} {
		if _, _, err := s.Open(tc.id, tc.owner, tc.name); !errors.Is(err, ErrNotFound) {
			t.Errorf("%s opens %s/%s: %v, want ErrNotFound", tc.id, tc.owner, tc.name, err)
		}
	}
	if l, _ := s.List(bob, ""); len(l) != 0 {
		t.Errorf("bob lists %+v", l)
	}
	if l, _ := s.List(bob, "alice"); len(l) != 0 {
		t.Errorf("bob lists alice's: %+v", l)
	}
	if l, _ := s.List(alice, ""); len(l) != 1 || l[0].Name != info.Name {
		t.Errorf("alice lists %+v", l)
	}
	if l, _ := s.List(tanaka, ""); len(l) != 1 || l[0].Owner != "alice" {
		t.Errorf("tanaka lists %+v", l)
	}
}

func TestMaxSize(t *testing.T) {
	s, err := NewStore(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	s.SetMaxSize(4096)
	w, info, err := s.Create("alice", "box", "", 80, 24, "")
	if err != nil {
		t.Fatal(err)
	}
	var last error
	for i := 0; i < 100 && last == nil; i++ {
		last = w.Output([]byte(strings.Repeat("x", 100)))
	}
	if !errors.Is(last, ErrFull) {
		t.Fatalf("100 x 100 bytes under a 4096-byte limit: %v, want ErrFull", last)
	}
	if err := w.Close(); !errors.Is(err, ErrFull) {
		t.Errorf("close: %v", err)
	}
	f, fi, err := s.Open(alice, "alice", info.Name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if fi.Size > 4096+1024 {
		t.Errorf("the recording is %d bytes, over its limit", fi.Size)
	}
	_, evs := parseCast(t, f)
	if e := evs[len(evs)-1]; e[1] != Marker || !strings.Contains(e[2], "size limit") {
		t.Errorf("the last event %q does not say the recording stopped", e)
	}
}

func TestSweep(t *testing.T) {
	s, err := NewStore(t.TempDir(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	old, oi, _ := s.Create("alice", "box", "", 80, 24, "")
	old.Close()
	fresh, fi, _ := s.Create("alice", "box", "", 80, 24, "")
	fresh.Close()
	past := time.Now().Add(-48 * time.Hour)
	if err := os.Chtimes(filepath.Join(s.dir, "alice", oi.Name), past, past); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Sweep(); err != nil || n != 1 {
		t.Fatalf("sweep removed %d (%v), want 1", n, err)
	}
	l, _ := s.List(alice, "")
	if len(l) != 1 || l[0].Name != fi.Name {
		t.Errorf("left %+v, want only %s", l, fi.Name)
	}
}

func TestCompleteUTF8(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0}, {"abc", 3}, {"a\xe6", 1}, {"a\xe6\x97", 1}, {"a\xe6\x97\xa5", 4}, {"\xff", 1}, {"é", 2}, {"\xc3", 0},
	} {
		if got := completeUTF8([]byte(tc.in)); got != tc.want {
			t.Errorf("completeUTF8(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
