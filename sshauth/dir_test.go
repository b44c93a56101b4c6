package sshauth

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeKeys(t *testing.T, path string, mode os.FileMode, lines ...string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func TestDirSourcePicksUpChangesWithoutRestart(t *testing.T) {
	dir := t.TempDir()
	logs := &logBuf{}
	a, err := New(Options{Sources: []KeySource{NewDirSource(dir, logs.Logger())}})
	if err != nil {
		t.Fatal(err)
	}
	k1, l1 := newKey(t)
	k2, l2 := newKey(t)
	ctx := context.Background()

	if _, err := a.Check(ctx, "alice", k1, "10.0.0.1:1"); reason(t, err) != "unknown user" {
		t.Fatalf("before the file: %v", err)
	}
	writeKeys(t, filepath.Join(dir, "alice.keys"), 0o644, "# alice", l1+" alice@laptop")
	id, err := a.Check(ctx, "alice", k1, "10.0.0.1:1")
	if err != nil {
		t.Fatalf("after the file: %v", err)
	}
	if id.KeySource != "keys-dir" || id.User != "alice" || id.Role != "student" {
		t.Errorf("identity = %+v", id)
	}
	if _, err := a.Check(ctx, "alice", k2, "10.0.0.1:1"); reason(t, err) != "key not registered" {
		t.Fatalf("other key: %v", err)
	}
	writeKeys(t, filepath.Join(dir, "alice.keys"), 0o600, l2)
	if _, err := a.Check(ctx, "alice", k2, "10.0.0.1:1"); err != nil {
		t.Fatalf("changed file, new key: %v", err)
	}
	if _, err := a.Check(ctx, "alice", k1, "10.0.0.1:1"); reason(t, err) != "key not registered" {
		t.Fatalf("changed file, old key: %v", err)
	}
	if err := os.Remove(filepath.Join(dir, "alice.keys")); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Check(ctx, "alice", k2, "10.0.0.1:1"); reason(t, err) != "unknown user" {
		t.Fatalf("removed file: %v", err)
	}
}

func TestDirSourceRefusesTraversal(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "keys")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	k, l := newKey(t)
	// Files a crafted name could reach if it were joined onto the path unchecked.
	writeKeys(t, filepath.Join(root, "x.keys"), 0o600, l)
	if err := os.Mkdir(filepath.Join(dir, "a"), 0o700); err != nil {
		t.Fatal(err)
	}
	writeKeys(t, filepath.Join(dir, "a", "b.keys"), 0o600, l)
	writeKeys(t, filepath.Join(dir, ".hidden.keys"), 0o600, l)

	src := NewDirSource(dir, nil)
	a, err := New(Options{Sources: []KeySource{src}, FailureLimit: -1})
	if err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"../x", "a/b", "..", "../keys/../x", "/x", ".hidden", "a\x00b"} {
		if _, err := src.Keys(context.Background(), user); !errors.Is(err, ErrUnknownUser) {
			t.Errorf("Keys(%q) = %v, want ErrUnknownUser", user, err)
		}
		if _, err := a.Check(context.Background(), user, k, "10.0.0.1:1"); reason(t, err) != "unknown user" {
			t.Errorf("Check(%q) = %v, want unknown user", user, err)
		}
	}
}

func TestDirSourceRefusesWritableFiles(t *testing.T) {
	dir := t.TempDir()
	logs := &logBuf{}
	src := NewDirSource(dir, logs.Logger())
	_, l := newKey(t)
	for _, tc := range []struct {
		mode os.FileMode
		keys int
	}{
		{0o600, 1},
		{0o644, 1},
		{0o400, 1},
		{0o620, 0},
		{0o602, 0},
		{0o666, 0},
	} {
		writeKeys(t, filepath.Join(dir, "bob.keys"), tc.mode, l)
		keys, err := src.Keys(context.Background(), "bob")
		if err != nil || len(keys) != tc.keys {
			t.Errorf("mode %v: %d keys, %v; want %d", tc.mode, len(keys), err, tc.keys)
		}
	}
	if n := logs.Count("writable by group or others"); n != 3 {
		t.Errorf("logged %d refusals, want 3:\n%s", n, logs)
	}

	// A directory, not a file, under the name.
	if err := os.Mkdir(filepath.Join(dir, "carol.keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	if keys, err := src.Keys(context.Background(), "carol"); err != nil || len(keys) != 0 {
		t.Errorf("directory as keys file: %d keys, %v", len(keys), err)
	}

	// A directory others can write is refused as a whole.
	writeKeys(t, filepath.Join(dir, "bob.keys"), 0o600, l)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	defer os.Chmod(dir, 0o700)
	if _, err := src.Keys(context.Background(), "bob"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("world-writable dir: %v, want ErrUnknownUser", err)
	}
	if !strings.Contains(logs.String(), "refusing keys directory") {
		t.Errorf("directory refusal not logged:\n%s", logs)
	}
}

func TestDirSourceMissingDir(t *testing.T) {
	src := NewDirSource(filepath.Join(t.TempDir(), "none"), nil)
	if _, err := src.Keys(context.Background(), "alice"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("missing dir: %v", err)
	}
}

func TestDirSourceFollowsSymlink(t *testing.T) {
	// A keys file may be a symlink (to a file kept elsewhere); the target's mode counts.
	dir := t.TempDir()
	other := t.TempDir()
	k, l := newKey(t)
	writeKeys(t, filepath.Join(other, "real"), 0o600, l)
	if err := os.Symlink(filepath.Join(other, "real"), filepath.Join(dir, "alice.keys")); err != nil {
		t.Fatal("make a symlink:", err)
	}
	a, err := New(Options{Sources: []KeySource{NewDirSource(dir, nil)}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Check(context.Background(), "alice", k, remote); err != nil {
		t.Errorf("symlinked keys file: %v", err)
	}
}
