package kube_test

import (
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
	"whalemountain/backend/kube"
	"whalemountain/backend/kube/kubetest"
)

// Files in a pod through the real API server's exec: the test cluster runs them on this
// machine (kwok's ClusterExec), so the pod's files are those of a directory here, and what
// each operation did is read back with os.

func TestPodFiles(t *testing.T) {
	t.Parallel()
	log, logPath := auditLog(t)
	svc := kubetest.NewService(t, log)
	ctx := ctxFor(t)
	alice, bob := kubetest.Student("alice"), kubetest.Student("bob")
	runRunning(t, svc, alice, kube.RunSpec{Name: "lab"})
	lab := backend.InPod("lab")
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}

	// Written whole with its mode; read back through "..", which stays in the pod.
	data := "a,b\n1,2\n"
	if err := svc.WriteFile(ctx, alice, lab, dir+"/a.txt", strings.NewReader(data), int64(len(data)), 0o640, time.Time{}); err != nil {
		t.Fatalf("write: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "a.txt")); err != nil || st.Mode().Perm() != 0o640 || st.Size() != int64(len(data)) {
		t.Fatalf("the file written: %v %v", st, err)
	}
	fi, err := svc.StatPath(ctx, alice, lab, dir+"/sub/../a.txt")
	if err != nil || fi.Name != "a.txt" || fi.Size != int64(len(data)) || !fi.Mode.IsRegular() {
		t.Errorf("stat through ..: %+v %v", fi, err)
	}
	rc, fi, err := svc.ReadFile(ctx, alice, lab, dir+"/sub/../../"+filepath.Base(dir)+"/a.txt")
	if err != nil {
		t.Fatalf("read through ..: %v", err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != data || fi.Mode.Perm() != 0o640 {
		t.Errorf("read %q %v", got, fi.Mode)
	}
	if top, err := svc.StatPath(ctx, alice, lab, "/../../.."); err != nil || top.Name != "/" || !top.IsDir() {
		t.Errorf("the pod's root from above it: %+v %v", top, err)
	}

	// chmod, touch and truncate change the file in the pod.
	mode, mtime, size := fs.FileMode(0o600), time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC), int64(3)
	if err := svc.SetFileAttrs(ctx, alice, lab, dir+"/a.txt", backend.FileAttrs{Mode: &mode}); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "a.txt")); st.Mode().Perm() != 0o600 {
		t.Errorf("after chmod 600: %v", st.Mode())
	}
	if err := svc.SetFileAttrs(ctx, alice, lab, dir+"/sub/../a.txt", backend.FileAttrs{ModTime: &mtime, Size: &size}); err != nil {
		t.Fatalf("touch and truncate: %v", err)
	}
	if st, _ := os.Stat(filepath.Join(dir, "a.txt")); !st.ModTime().Equal(mtime) || st.Size() != 3 || st.Mode().Perm() != 0o600 {
		t.Errorf("after touch and truncate: %v %d %v", st.ModTime(), st.Size(), st.Mode())
	}

	// mkdir, mv, rm and rmdir, each refused where it would do something else.
	if err := svc.MakeDir(ctx, alice, lab, dir+"/d", 0o700); err != nil {
		t.Fatalf("mkdir: %v", err)
	}
	if st, err := os.Stat(filepath.Join(dir, "d")); err != nil || !st.IsDir() || st.Mode().Perm() != 0o700 {
		t.Errorf("the directory made: %v %v", st, err)
	}
	if err := svc.MakeDir(ctx, alice, lab, dir+"/d", 0o700); !errors.Is(err, kube.ErrConflict) {
		t.Errorf("mkdir again: %v", err)
	}
	if err := svc.RenamePath(ctx, alice, lab, dir+"/a.txt", dir+"/d/b.txt"); err != nil {
		t.Fatalf("rename: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "d", "b.txt")); err != nil || string(got) != "a,b" {
		t.Errorf("the file renamed: %q %v", got, err)
	}
	if err := svc.RenamePath(ctx, alice, lab, dir+"/d/b.txt", dir+"/sub"); !errors.Is(err, kube.ErrConflict) {
		t.Errorf("rename over a directory: %v", err)
	}
	if err := svc.RemovePath(ctx, alice, lab, dir+"/d"); !errors.Is(err, kube.ErrConflict) {
		t.Errorf("rm of a directory that is not empty: %v", err)
	}
	for _, p := range []string{dir + "/d/b.txt", dir + "/d"} {
		if err := svc.RemovePath(ctx, alice, lab, p); err != nil {
			t.Errorf("rm %s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "d")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the directory removed is there: %v", err)
	}
	if _, err := svc.StatPath(ctx, alice, lab, dir+"/d"); !errors.Is(err, backend.ErrNoFile) {
		t.Errorf("stat of what was removed: %v", err)
	}
	if err := svc.RemovePath(ctx, alice, lab, "/.."); !errors.Is(err, kube.ErrInvalid) {
		t.Errorf("rm of the pod's root: %v", err)
	}

	// A symlink's target is a clean path in the pod, whatever ".." it holds.
	if err := os.WriteFile(filepath.Join(dir, "t.txt"), []byte("t"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, raw := range map[string]string{"up": "../t.txt", "far": strings.Repeat("../", 40) + "etc/hostname"} {
		if err := os.Symlink(raw, filepath.Join(dir, "sub", name)); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := svc.StatPath(ctx, alice, lab, dir+"/sub/up"); err != nil || fi.Mode&fs.ModeSymlink == 0 || fi.LinkTarget != dir+"/t.txt" {
		t.Errorf("stat of a link up: %+v %v", fi, err)
	}
	fis, _, err := svc.ListDir(ctx, alice, lab, dir+"/sub/")
	var links []string
	for _, fi := range fis {
		links = append(links, fi.Name+" -> "+fi.LinkTarget)
	}
	slices.Sort(links)
	if want := []string{"far -> /etc/hostname", "up -> " + dir + "/t.txt"}; err != nil || !slices.Equal(links, want) {
		t.Errorf("ls sub: %q %v, want %q", links, err, want)
	}

	// Bob reaches nothing of alice's pod, by any place, exactly as a pod nobody has; a
	// place of another kind is no pod.
	for _, place := range []backend.Place{lab, backend.InPod("alice/lab"), backend.InPod("nosuch")} {
		if _, err := svc.StatPath(ctx, bob, place, dir+"/t.txt"); !errors.Is(err, kube.ErrNotFound) {
			t.Errorf("bob stats %v: %v", place, err)
		}
		if err := svc.SetFileAttrs(ctx, bob, place, dir+"/t.txt", backend.FileAttrs{Mode: &mode}); !errors.Is(err, kube.ErrNotFound) {
			t.Errorf("bob chmods %v: %v", place, err)
		}
	}
	for _, place := range []backend.Place{backend.InContainer("lab"), backend.Home, backend.InHomeOf("alice")} {
		if _, err := svc.StatPath(ctx, alice, place, dir+"/t.txt"); !errors.Is(err, kube.ErrNotFound) {
			t.Errorf("alice stats %v in the pod room: %v", place, err)
		}
	}
	if st, _ := os.Stat(filepath.Join(dir, "t.txt")); st.Mode().Perm() != 0o644 {
		t.Errorf("bob changed alice's file: %v", st.Mode())
	}

	entries := readAudit(t, logPath)
	for _, action := range []string{"setattr", "mkdir", "rename", "delete"} {
		if !hasAudit(entries, "alice", action, "", "ok") {
			t.Errorf("%s not audited: %+v", action, entries)
		}
	}
	if !hasAudit(entries, "bob", "setattr", "", "refused") {
		t.Errorf("bob's refused chmod not audited")
	}
}
