package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"whalemountain/backend"
)

func TestAppendsJSONLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	if err := os.WriteFile(path, []byte(`{"earlier":"line"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	id := backend.Identity{User: "alice", Role: backend.RoleStudent, KeyFingerprint: "SHA256:x", RemoteAddr: "10.0.0.1"}
	var wg sync.WaitGroup
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := l.Action(id, "run", "box", OK, ""); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if err := l.Record(Entry{User: "bob", Action: "login", Result: Refused, Reason: "key not registered\x1b[2J"}); err != nil {
		t.Fatal(err)
	}
	l.Close()

	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %04o", st.Mode().Perm())
	}
	f, _ := os.Open(path)
	defer f.Close()
	sc := bufio.NewScanner(f)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 52 {
		t.Fatalf("%d lines, want 52 (the earlier line kept, 51 appended)", len(lines))
	}
	if lines[0]["earlier"] != "line" {
		t.Error("existing content was not kept")
	}
	first := lines[1]
	for k, want := range map[string]string{"user": "alice", "role": "student", "source": "10.0.0.1", "key": "SHA256:x", "action": "run", "target": "box", "result": "ok"} {
		if first[k] != want {
			t.Errorf("%s = %v, want %q", k, first[k], want)
		}
	}
	if first["time"] == "" || first["time"] == nil {
		t.Error("no time")
	}
	if last := lines[51]; last["reason"] != "key not registered\x1b[2J" || last["result"] != "refused" {
		t.Errorf("last line %v", last)
	}
}

func TestNilLogRecordsNothing(t *testing.T) {
	var l *Log
	if err := l.Record(Entry{Action: "x"}); err != nil {
		t.Fatal(err)
	}
}

// TestReady: an action may go ahead only while its line can be appended: not with the disk
// (nearly) full, not after an append failed, until there is room again or an append works.
func TestReady(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	var free uint64 = 1 << 30
	w := &switchable{}
	l, err := OpenWith(path, Options{Writer: w, Free: func() (uint64, error) { return free, nil }})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	id := backend.Identity{User: "alice", Role: backend.RoleStudent}
	if err := l.Ready(); err != nil {
		t.Fatalf("ready with room: %v", err)
	}
	free = Reserve - 1
	if err := l.Ready(); !errors.Is(err, ErrCannotRecord) || err.Error() != "the audit log cannot be written: the disk holding it is full" {
		t.Errorf("ready with the disk full: %v", err)
	}
	free = 1 << 30
	w.err = syscall.EIO
	if err := l.Action(id, "run", "box", OK, ""); err == nil {
		t.Fatal("an append that failed reported success")
	}
	if err := l.Ready(); err == nil || err.Error() != "the audit log cannot be written: appending to it failed" {
		t.Errorf("ready after a failed append: %v", err)
	}
	w.err = nil
	if err := l.Action(id, "run", "box", OK, ""); err != nil {
		t.Fatal(err)
	}
	if err := l.Ready(); err != nil {
		t.Errorf("ready after an append worked again: %v", err)
	}
	// Out of space while the file system says there is room again: ready, the next append tells.
	w.err = syscall.ENOSPC
	_ = l.Action(id, "run", "box", OK, "")
	if err := l.Ready(); err != nil {
		t.Errorf("ready with room after ENOSPC: %v", err)
	}
	free = 0
	if err := l.Ready(); err == nil {
		t.Error("ready with no room after ENOSPC")
	}
}

// switchable appends to nothing, or fails with err when set.
type switchable struct{ err error }

func (s *switchable) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	return len(p), nil
}
