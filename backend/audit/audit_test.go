package audit

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"sync"
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
