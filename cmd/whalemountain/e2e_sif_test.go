package main

// End-to-end tests of SIF export (`sif IMAGE`, `sif ls`, `sif rm`, the read-only /sif of the
// file tree) and of the registry listing, through the server binary, the real OpenSSH ssh,
// scp and sftp, the real Docker Engine and the GitLab stand-in.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"
	"github.com/moby/moby/client"

	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
	"whalemountain/backend/gitlab/gitlabtest"
)

// needTools fails the test, in one line, when a program it runs is not installed.
func needTools(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed for this test (apt-get install squashfs-tools-ng openssh-client): %v", tool, err)
		}
	}
}

// sifNameOf is the file name the server gives a SIF of ref.
func sifNameOf(t *testing.T, ref string) string {
	t.Helper()
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		t.Fatalf("parse %s: %v", ref, err)
	}
	return docker.SIFName(named)
}

// oneLineError requires r to be a failure with exit status 1, an empty stdout when
// quietStdout, and exactly one line on stderr containing every one of want.
func oneLineError(t *testing.T, what string, r sshResult, quietStdout bool, want ...string) {
	t.Helper()
	oneLineExit(t, what, r, 1, quietStdout, want...)
}

// oneLineExit is oneLineError with exit status code.
func oneLineExit(t *testing.T, what string, r sshResult, code int, quietStdout bool, want ...string) {
	t.Helper()
	if r.Code != code {
		t.Errorf("%s: want exit %d\n%s", what, code, r)
	}
	if strings.Count(r.Stderr, "\n") != 1 || !strings.HasSuffix(r.Stderr, "\n") {
		t.Errorf("%s: want one line on stderr, got %q", what, r.Stderr)
	}
	for _, w := range want {
		if !strings.Contains(r.Stderr, w) {
			t.Errorf("%s: stderr %q does not contain %q", what, r.Stderr, w)
		}
	}
	if quietStdout && r.Stdout != "" {
		t.Errorf("%s: stdout %q, want nothing", what, r.Stdout)
	}
}

// sifList runs `sif ls --json` as user and decodes it.
func (c *ctrServer) sifList(t *testing.T, key *testKey, user string) []docker.SIFFile {
	t.Helper()
	out := c.mustRun(t, key, user, "sif", "ls", "--json")
	var list []docker.SIFFile
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("%s: sif ls --json is not a JSON list: %v\n%s", user, err, out)
	}
	if list == nil {
		t.Fatalf("%s: sif ls --json printed %q, want a list", user, out)
	}
	return list
}

// sifExportContainers counts this server's SIF export containers on the engine.
func (c *ctrServer) sifExportContainers(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	f := c.filters("", "").Add("label", docker.LabelKind+"="+docker.KindSIFExport)
	res, err := c.cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		t.Fatalf("list containers: %v", err)
	}
	return len(res.Items)
}

// userSIFDir lists the names in <data>/sif/<user> (nil when it does not exist).
func userSIFDir(t *testing.T, dataDir, user string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dataDir, "sif", user))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() == ".building" {
			if sub, _ := os.ReadDir(filepath.Join(dataDir, "sif", user, e.Name())); len(sub) == 0 {
				continue // an empty staging directory is nothing
			}
		}
		names = append(names, e.Name())
	}
	return names
}

// TestE2ESIF: alice makes a SIF of the busybox image, downloads it with scp as the server
// says, sees it in /sif over sftp (read-only), remakes it from what is there and removes it;
// bob reaches none of it. Not parallel, for the reason TestE2EContainers gives.
func TestE2ESIF(t *testing.T) {
	needTools(t, "tar2sqfs", "scp", "sftp")
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	s := startContainerServer(t, cli, img, containerPrefix("sx"), ctrOptions{Top: "server_name: 127.0.0.1\n"})
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	s.addKey(t, "alice", alice)
	s.addKey(t, "bob", bob)
	name := sifNameOf(t, img)
	stored := filepath.Join(s.DataDir, "sif", "alice", name)
	dir := t.TempDir()

	// The first build: progress, the result and how to download it.
	start := time.Now()
	r := s.run(t, alice, "alice", "sif", img)
	firstBuild := time.Since(start)
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("sif %s: %s", img, r)
	}
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	if len(lines) < 4 {
		t.Fatalf("sif printed too little:\n%s", r.Stdout)
	}
	progress := lines[:len(lines)-2]
	if !strings.HasPrefix(progress[0], "exporting ") || !slices.Contains(progress, "writing the SIF file") {
		t.Errorf("progress lines %q: want exporting ... then writing the SIF file", progress)
	}
	if got := lines[len(lines)-2]; !strings.HasPrefix(got, name+" made (") || !strings.HasSuffix(got, ")") {
		t.Errorf("result line %q, want %q", got, name+" made (SIZE)")
	}
	wantDownload := fmt.Sprintf("download: scp -P %s alice@127.0.0.1:/sif/%s .", s.Port, name)
	if got := lines[len(lines)-1]; got != wantDownload {
		t.Errorf("download line %q, want %q", got, wantDownload)
	}
	fi, err := os.Stat(stored)
	if err != nil || fi.Size() == 0 {
		t.Fatalf("the SIF file is not in the data directory: %v", err)
	}
	if n := s.sifExportContainers(t); n != 0 {
		t.Errorf("%d export containers left after the build", n)
	}

	// sif ls --json: the file with its size and the image it came from.
	list := s.sifList(t, alice, "alice")
	imgID := strings.TrimPrefix(s.engineImageID(t, img), "sha256:")[:12]
	if len(list) != 1 || list[0].Name != name || list[0].Size != fi.Size() || list[0].Image != img ||
		list[0].ImageID != imgID || list[0].Created.IsZero() {
		t.Errorf("sif ls --json = %+v, want %s of %d bytes from %s (%s)", list, name, fi.Size(), img, imgID)
	}
	if out := s.mustRun(t, alice, "alice", "sif", "ls"); !strings.Contains(out, name) || !strings.Contains(out, " used") {
		t.Errorf("sif ls does not show %s and the quota used:\n%s", name, out)
	}

	// Downloading as the server said: the same bytes as in the data directory.
	remote := strings.TrimSuffix(strings.TrimPrefix(wantDownload, fmt.Sprintf("download: scp -P %s ", s.Port)), " .")
	local := filepath.Join(dir, "alice.sif")
	if r := s.fileClient(t, "scp", alice, remote, local); r.Code != 0 {
		t.Fatalf("scp %s: %s", remote, r)
	}
	want := sha256File(t, stored)
	if sha256File(t, local) != want {
		t.Errorf("the downloaded SIF differs from %s", stored)
	}
	// Runnable as ./NAME.sif, as Apptainer's own: scp gives the new file the listed mode.
	if fi, err := os.Stat(local); err != nil || fi.Mode().Perm()&0o100 == 0 {
		t.Errorf("the downloaded SIF is not executable: %v %v", fi.Mode(), err)
	}

	// sftp: listed in /sif, read-only.
	r = s.sftpBatch(t, alice, "alice", "ls -l /sif", "ls /")
	if r.Code != 0 || !strings.Contains(r.Stdout, name) || !strings.Contains(r.Stdout, fmt.Sprint(fi.Size())) {
		t.Errorf("sftp ls -l /sif does not show %s of %d bytes: %s", name, fi.Size(), r)
	}
	before := userSIFDir(t, s.DataDir, "alice")
	for _, c := range []struct{ what, cmd string }{
		{"put into /sif", "put " + local + " /sif/mine.sif"},
		{"put over the SIF", "put " + local + " /sif/" + name},
		{"rm of the SIF", "rm /sif/" + name},
		{"rename of the SIF", "rename /sif/" + name + " /sif/other.sif"},
		{"rename into the home", "rename /sif/" + name + " /home/" + name},
		{"mkdir in /sif", "mkdir /sif/d.sif"},
		{"mkdir of another name in /sif", "mkdir /sif/d"},
		{"put of another name into /sif", "put " + local + " /sif/notes.txt"},
	} {
		r := s.sftpBatch(t, alice, "alice", c.cmd)
		if r.Code == 0 {
			t.Errorf("sftp %s succeeded: %s", c.what, r)
		}
		if !strings.Contains(r.Stderr, "Permission denied") {
			t.Errorf("sftp %s is not refused as a permission: %s", c.what, r)
		}
	}
	if after := userSIFDir(t, s.DataDir, "alice"); !slices.Equal(before, after) {
		t.Errorf("refused sftp changes altered alice's SIF directory: %v -> %v", before, after)
	}
	if sha256File(t, stored) != want {
		t.Errorf("refused sftp changes altered %s", stored)
	}
	// bob: alice's file is not there for him by any path; his list is empty; he cannot remove it.
	stolen := filepath.Join(dir, "stolen.sif")
	for _, p := range []string{
		"/sif/" + name,
		"/sif/../sif/" + name,
		"/sif/../alice/" + name,
		"/sif/../../sif/alice/" + name,
		"/sif/alice/" + name,
		"/sif/../../../../../../" + stored,
	} {
		r := s.fileClient(t, "scp", bob, "bob@127.0.0.1:"+p, stolen)
		if r.Code == 0 {
			t.Errorf("bob got %s with scp: %s", p, r)
		}
		if !strings.Contains(r.Stderr, "No such file") {
			t.Errorf("bob's scp of %s does not say no such file: %s", p, r)
		}
		if r := s.sftpBatch(t, bob, "bob", "get "+p+" "+stolen); r.Code == 0 {
			t.Errorf("bob got %s with sftp: %s", p, r)
		}
		if _, err := os.Stat(stolen); err == nil {
			t.Fatalf("a file arrived for bob from %s", p)
		}
	}
	if r := s.sftpBatch(t, bob, "bob", "ls -l /sif"); r.Code != 0 || strings.Contains(r.Stdout, name) {
		t.Errorf("bob's /sif: %s", r)
	}
	if list := s.sifList(t, bob, "bob"); len(list) != 0 {
		t.Errorf("bob's sif ls --json = %+v, want nothing", list)
	}
	if out := s.mustRun(t, bob, "bob", "sif", "ls"); strings.Contains(out, name) {
		t.Errorf("bob's sif ls shows alice's file:\n%s", out)
	}
	oneLineError(t, "bob's sif rm of alice's file", s.run(t, bob, "bob", "sif", "rm", name), true, "no SIF file named "+name)
	if sha256File(t, stored) != want {
		t.Errorf("alice's SIF changed after bob's sif rm")
	}

	// Again: made before from the same image, so nothing is built.
	start = time.Now()
	r = s.run(t, alice, "alice", "sif", img)
	again := time.Since(start)
	t.Logf("sif of %s: %v the first time, %v when it was there already", img, firstBuild.Round(time.Millisecond), again.Round(time.Millisecond))
	if r.Code != 0 || r.Stderr != "" {
		t.Fatalf("second sif: %s", r)
	}
	wantAgain := name + " ready ("
	if !strings.HasPrefix(r.Stdout, wantAgain) || !strings.Contains(r.Stdout, "made before from the same image)") ||
		!strings.Contains(r.Stdout, "\n"+wantDownload+"\n") || strings.Count(r.Stdout, "\n") != 2 {
		t.Errorf("second sif: want %q... and the download line, nothing else\n%s", wantAgain, r.Stdout)
	}
	if fi2, err := os.Stat(stored); err != nil || !os.SameFile(fi, fi2) || !fi2.ModTime().Equal(fi.ModTime()) {
		t.Errorf("the second sif replaced the file (%v)", err)
	}
	if again > 5*time.Second {
		t.Errorf("the second sif took %v; nothing had to be built", again)
	}

	// Bad references are refused in one line and leave nothing.
	oneLineError(t, "sif of a missing image", s.run(t, alice, "alice", "sif", "no-such-image:1"), true, "not found")
	oneLineExit(t, "sif of an invalid reference", s.run(t, alice, "alice", "sif", "UPPER:case"), 2, true, "invalid image reference")

	// sif rm: gone from the data directory and from every listing.
	if out := s.mustRun(t, alice, "alice", "sif", "rm", name); strings.TrimSpace(out) != name {
		t.Errorf("sif rm printed %q, want %q", out, name)
	}
	if _, err := os.Stat(stored); !os.IsNotExist(err) {
		t.Errorf("%s is still in the data directory after sif rm (%v)", name, err)
	}
	if _, err := os.Stat(filepath.Join(s.DataDir, "sif", "alice", ".meta", name+".json")); !os.IsNotExist(err) {
		t.Errorf("the record of %s is still there after sif rm (%v)", name, err)
	}
	if list := s.sifList(t, alice, "alice"); len(list) != 0 {
		t.Errorf("sif ls --json after sif rm = %+v", list)
	}
	if r := s.sftpBatch(t, alice, "alice", "ls -l /sif"); r.Code != 0 || strings.Contains(r.Stdout, name) {
		t.Errorf("/sif after sif rm: %s", r)
	}
	oneLineError(t, "a second sif rm", s.run(t, alice, "alice", "sif", "rm", name), true, "no SIF file named")

	// The audit log has every build and removal.
	target := img + " -> " + name
	s.waitAudit(t, "alice's sif", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "sif" && e.Target == target && e.Result == "ok"
	})
	s.waitAudit(t, "bob's refused sif rm", func(e auditEntry) bool {
		return e.User == "bob" && e.Action == "sif rm" && e.Target == name && e.Result == "refused" &&
			strings.Contains(e.Reason, "no SIF file")
	})
	s.waitAudit(t, "alice's sif rm", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "sif rm" && e.Target == name && e.Result == "ok"
	})
	s.waitAudit(t, "alice's sif of a missing image", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "sif" && e.Target == "no-such-image:1" && e.Result == "refused"
	})
	builds := 0
	for _, e := range readAudit(t, s.auditPath()) {
		if e.User == "alice" && e.Action == "sif" && e.Target == target && e.Result == "ok" {
			builds++
		}
	}
	if builds != 2 {
		t.Errorf("%d audited sif of %s by alice, want 2", builds, img)
	}
	if n := s.sifExportContainers(t); n != 0 {
		t.Errorf("%d export containers left", n)
	}
}

// engineImageID is the engine's ID of the image ref.
func (c *ctrServer) engineImageID(t *testing.T, ref string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	res, err := c.cli.ImageInspect(ctx, ref)
	if err != nil {
		t.Fatalf("inspect %s: %v", ref, err)
	}
	return res.ID
}

// TestE2ESIFQuota: a SIF that does not fit the quota is refused in one line and leaves
// nothing behind.
func TestE2ESIFQuota(t *testing.T) {
	needTools(t, "tar2sqfs")
	cli := dockertest.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), engineTimeout)
	defer cancel()
	img := dockertest.BusyboxImage(ctx, t, cli)
	s := startContainerServer(t, cli, img, containerPrefix("sq"), ctrOptions{Top: "images:\n  sif:\n    quota: 1k\n"})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)

	oneLineError(t, "sif over the quota", s.run(t, alice, "alice", "sif", img), false, "quota")
	if names := userSIFDir(t, s.DataDir, "alice"); len(names) != 0 {
		t.Errorf("a refused sif left %v in the data directory", names)
	}
	if list := s.sifList(t, alice, "alice"); len(list) != 0 {
		t.Errorf("sif ls --json after a refused sif = %+v", list)
	}
	if out := s.mustRun(t, alice, "alice", "sif", "ls"); !strings.Contains(out, "0 B of 1.0 KiB used") {
		t.Errorf("sif ls after a refused sif does not show nothing used:\n%s", out)
	}
	s.waitAudit(t, "the sif refused for the quota", func(e auditEntry) bool {
		return e.User == "alice" && e.Action == "sif" && e.Result == "refused" && strings.Contains(e.Reason, "quota")
	})
	if n := s.sifExportContainers(t); n != 0 {
		t.Errorf("%d export containers left", n)
	}
}

// registryRow is one line of `registry --json`.
type registryRow struct {
	Project    string `json:"project"`
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Location   string `json:"location"`
}

// TestE2ERegistry: `registry` lists the caller's own GitLab registry tags, nobody else's.
func TestE2ERegistry(t *testing.T) {
	t.Parallel()
	const host = "registry.e2e.test:5050"
	gl := gitlabtest.New(gitlabtest.WithToken(gitlabToken), gitlabtest.WithRegistryHost(host))
	t.Cleanup(gl.Close)
	alice, bob, carol := newKey(t, "alice"), newKey(t, "bob"), newKey(t, "carol")
	aliceID := gl.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{{Key: alice.AuthorizedKey()}}})
	bobID := gl.AddUser(gitlabtest.User{Username: "bob", Keys: []gitlabtest.Key{{Key: bob.AuthorizedKey()}}})
	proj := gl.AddProject(aliceID, "proj", true)
	gl.AddRegistryRepository(proj, "img", "latest", "1.0")
	gl.AddRegistryRepository(proj, "", "v2")
	tools := gl.AddProject(aliceID, "tools", true)
	gl.AddRegistryRepository(tools, "cuda", "12.4")
	closed := gl.AddProject(aliceID, "closed", false)
	gl.AddRegistryRepository(closed, "hidden", "x")
	bobProj := gl.AddProject(bobID, "secret", true)
	gl.AddRegistryRepository(bobProj, "bobimg", "1")

	s := startServer(t, serverOptions{
		Config: fmt.Sprintf("gitlab:\n  url: %s\n  request_timeout: 5s\n", gl.URL()),
		Env:    []string{"WM_GITLAB_TOKEN=" + gitlabToken},
	})
	s.addKey(t, "carol", carol) // in the keys directory, unknown to GitLab

	list := func(key *testKey, user string) []registryRow {
		t.Helper()
		r := s.ssh(t, key, user, "registry", "--json")
		if r.Code != 0 || r.Stderr != "" {
			t.Fatalf("%s: registry --json: %s", user, r)
		}
		var rows []registryRow
		if err := json.Unmarshal([]byte(r.Stdout), &rows); err != nil {
			t.Fatalf("%s: registry --json is not JSON: %v\n%s", user, err, r.Stdout)
		}
		return rows
	}
	row := func(project, repo, tag string) registryRow {
		return registryRow{Project: project, Repository: repo, Tag: tag, Location: host + "/" + repo + ":" + tag}
	}
	sortRows := func(rows []registryRow) {
		slices.SortFunc(rows, func(a, b registryRow) int { return strings.Compare(a.Location, b.Location) })
	}

	got := list(alice, "alice")
	want := []registryRow{
		row("alice/proj", "alice/proj", "v2"),
		row("alice/proj", "alice/proj/img", "1.0"),
		row("alice/proj", "alice/proj/img", "latest"),
		row("alice/tools", "alice/tools/cuda", "12.4"),
	}
	sortRows(got)
	sortRows(want)
	if !slices.Equal(got, want) {
		t.Errorf("alice's registry --json:\n got %+v\nwant %+v", got, want)
	}
	r := s.ssh(t, alice, "alice", "registry")
	if r.Code != 0 {
		t.Fatalf("alice: registry: %s", r)
	}
	for _, w := range want {
		if !strings.Contains(r.Stdout, w.Location) {
			t.Errorf("alice's registry table lacks %s:\n%s", w.Location, r.Stdout)
		}
	}
	for _, out := range []string{r.Stdout, fmt.Sprint(got)} {
		if strings.Contains(out, "bob") || strings.Contains(out, "hidden") {
			t.Errorf("alice's registry shows what is not hers:\n%s", out)
		}
	}

	if got := list(bob, "bob"); !slices.Equal(got, []registryRow{row("bob/secret", "bob/secret/bobimg", "1")}) {
		t.Errorf("bob's registry --json = %+v", got)
	}
	oneLineError(t, "registry of a user GitLab does not know", s.ssh(t, carol, "carol", "registry"), true, "GitLab has no user by your name")
}

// TestE2ERegistryWithoutGitLab: a server without GitLab says so in one line.
func TestE2ERegistryWithoutGitLab(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)
	for _, args := range [][]string{{"registry"}, {"registry", "--json"}} {
		oneLineError(t, strings.Join(args, " "), s.ssh(t, alice, "alice", args...), true, "needs GitLab")
	}
}
