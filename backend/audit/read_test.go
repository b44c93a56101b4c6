package audit

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"whalemountain/backend"
)

func TestReadFiltersAndScopes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	t0 := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	for i, e := range []Entry{
		{User: "alice", Action: "run", Result: OK},
		{User: "bob", Action: "run", Result: OK},
		{User: "ta1", Action: "stop", Target: "alice/box", Result: OK, Note: "exam"},
		{User: "alice", Action: "stop", Result: OK},
	} {
		e.Time = t0.Add(time.Duration(i) * time.Hour)
		if err := l.Record(e); err != nil {
			t.Fatal(err)
		}
	}
	// A torn line is skipped.
	f, _ := os.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
	_, _ = f.WriteString("{\"user\":\"al\n")
	f.Close()

	ta := backend.Identity{User: "ta1", Role: backend.RoleTA}
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	count := func(id backend.Identity, f Filter) int {
		t.Helper()
		es, err := l.Read(id, f)
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	for _, tc := range []struct {
		name string
		id   backend.Identity
		f    Filter
		want int
	}{
		{"TA everything", ta, Filter{}, 4},
		{"TA one user", ta, Filter{User: "bob"}, 1},
		{"TA one action", ta, Filter{Action: "stop"}, 2},
		{"TA since", ta, Filter{Since: t0.Add(2 * time.Hour)}, 2},
		{"student gets own only", alice, Filter{}, 2},
		{"student own action", alice, Filter{Action: "stop"}, 1},
	} {
		if got := count(tc.id, tc.f); got != tc.want {
			t.Errorf("%s: %d entries, want %d", tc.name, got, tc.want)
		}
	}
	if _, err := l.Read(alice, Filter{User: "bob"}); !errors.Is(err, ErrNotYours) {
		t.Errorf("a student reading bob's entries: %v, want ErrNotYours", err)
	}
}

func TestFollowSeesNewEntries(t *testing.T) {
	l, err := Open(filepath.Join(t.TempDir(), "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_ = l.Record(Entry{User: "alice", Action: "run", Result: OK})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	got := make(chan Entry, 10)
	done := make(chan error, 1)
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	go func() {
		done <- l.Follow(ctx, alice, Filter{}, func(e Entry) error { got <- e; return nil })
	}()
	if e := <-got; e.Action != "run" {
		t.Fatalf("first entry %+v", e)
	}
	_ = l.Record(Entry{User: "bob", Action: "rm", Result: OK}) // not alice's: not shown
	_ = l.Record(Entry{User: "alice", Action: "stop", Result: OK})
	select {
	case e := <-got:
		if e.Action != "stop" || e.User != "alice" {
			t.Fatalf("followed entry %+v, want alice's stop", e)
		}
	case <-ctx.Done():
		t.Fatal("the new entry never came")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
