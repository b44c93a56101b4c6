package sif

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sylabs/sif/v2/pkg/sif"
)

func TestShellQuoteRoundTrip(t *testing.T) {
	args := []string{"plain", "with space", "it's", `"dq"`, "$HOME", "`id`", "", "a\nb", "*", "x;y"}
	script := "printf '%s\\0' " + quoteAll(args)
	out, err := exec.Command("/bin/sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if len(got) != len(args) {
		t.Fatalf("got %q want %q", got, args)
	}
	for i := range args {
		if got[i] != args[i] {
			t.Errorf("arg %d: got %q want %q", i, got[i], args[i])
		}
	}
}

func runScript(t *testing.T, script string, args ...string) string {
	t.Helper()
	dir := t.TempDir()
	p := filepath.Join(dir, "runscript")
	// replace exec with echo of arguments, one per line
	script = strings.ReplaceAll(script, "exec ", "printf '%s\\n' ")
	script = strings.Replace(script, "\nfi\n", "\n  exit 0\nfi\n", 1)
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("/bin/sh", append([]string{p}, args...)...).Output()
	if err != nil {
		t.Fatalf("%v\n%s", err, script)
	}
	return string(out)
}

func TestRunscript(t *testing.T) {
	s := Runscript([]string{"/bin/ep", "it's"}, []string{"a b", "$X"})
	if !strings.HasPrefix(s, "#!/bin/sh\n") {
		t.Fatalf("no shebang: %q", s)
	}
	if got := runScript(t, s); got != "/bin/ep\nit's\na b\n$X\n" {
		t.Errorf("no args: %q", got)
	}
	if got := runScript(t, s, "x y"); got != "/bin/ep\nit's\nx y\n" {
		t.Errorf("args: %q", got)
	}
	s = Runscript(nil, []string{"echo", "hi there"})
	if got := runScript(t, s); got != "echo\nhi there\n" {
		t.Errorf("cmd only: %q", got)
	}
	if got := runScript(t, s, "ls", "-l"); got != "ls\n-l\n" {
		t.Errorf("cmd only with args: %q", got)
	}
	if s := Runscript(nil, nil); !strings.Contains(s, "exec /bin/sh\n") {
		t.Errorf("empty: %q", s)
	}
}

func TestEnvScript(t *testing.T) {
	s := EnvScript([]string{"PATH=/usr/bin:/bin", "Q=it's $x", "bad-name=1", "EMPTY="})
	out, err := exec.Command("/bin/sh", "-c", s+"\nprintf '%s|%s|%s' \"$PATH\" \"$Q\" \"${EMPTY-unset}\"").Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != "/usr/bin:/bin|it's $x|" {
		t.Errorf("got %q\n%s", out, s)
	}
	if strings.Contains(s, "bad-name") {
		t.Errorf("invalid name exported: %s", s)
	}
}

type entry struct {
	name, link string
	typ        byte
	data       string
}

func mkTar(t *testing.T, es []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range es {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Linkname: e.link, Mode: 0o755, Size: int64(len(e.data)), ModTime: time.Unix(1, 0)}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.data); err != nil && e.typ == tar.TypeReg {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readTar(t *testing.T, b []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := m[h.Name]; dup {
			t.Errorf("duplicate entry %s", h.Name)
		}
		d, _ := io.ReadAll(tr)
		m[h.Name] = string(d) + h.Linkname
	}
}

func TestRewriteTar(t *testing.T) {
	in := mkTar(t, []entry{
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/busybox", typ: tar.TypeReg, data: "BB"},
		{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
		{name: ".singularity.d/", typ: tar.TypeDir},
		{name: ".singularity.d/runscript", typ: tar.TypeReg, data: "old"},
	})
	var out bytes.Buffer
	cfg := ImageConfig{Cmd: []string{"sh"}, Env: []string{"A=b"}, Labels: map[string]string{"k": "v"}}
	if err := RewriteTar(bytes.NewReader(in), &out, cfg); err != nil {
		t.Fatal(err)
	}
	m := readTar(t, out.Bytes())
	if m["bin/busybox"] != "BB" || m["bin/sh"] != "busybox" {
		t.Errorf("originals lost: %v", m)
	}
	if m[".singularity.d/runscript"] != Runscript(nil, []string{"sh"}) {
		t.Errorf("runscript: %q", m[".singularity.d/runscript"])
	}
	if !strings.Contains(m[".singularity.d/env/90-environment.sh"], "export A=b\n") {
		t.Errorf("env: %q", m[".singularity.d/env/90-environment.sh"])
	}
	var labels map[string]string
	if err := json.Unmarshal([]byte(m[".singularity.d/labels.json"]), &labels); err != nil || labels["k"] != "v" {
		t.Errorf("labels: %q %v", m[".singularity.d/labels.json"], err)
	}
	if _, ok := m[".singularity.d/env/"]; !ok {
		t.Errorf("env dir missing: %v", m)
	}
	for _, a := range []string{"exec", "run", "shell", "start", "test"} {
		if m[".singularity.d/actions/"+a] != ActionScript(a) {
			t.Errorf("action %s: %q", a, m[".singularity.d/actions/"+a])
		}
	}
}

// TestActionScripts runs the action scripts with /bin/sh, with the image's paths moved under
// a temporary root.
func TestActionScripts(t *testing.T) {
	root := t.TempDir()
	sd := filepath.Join(root, ".singularity.d")
	if err := os.MkdirAll(filepath.Join(sd, "env"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(p, body string) {
		if err := os.WriteFile(p, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(sd, "env", "90-environment.sh"), EnvScript([]string{"GREETING=hello there"}))
	write(filepath.Join(sd, "runscript"), "#!/bin/sh\necho \"run: $GREETING: $*\"\n")
	run := func(action string, args ...string) string {
		t.Helper()
		script := strings.ReplaceAll(ActionScript(action), "/.singularity.d", sd)
		p := filepath.Join(root, action)
		write(p, script)
		if err := exec.Command("/bin/sh", "-n", p).Run(); err != nil {
			t.Fatalf("%s: syntax: %v", action, err)
		}
		out, err := exec.Command("/bin/sh", append([]string{p}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", action, err, out)
		}
		return string(out)
	}
	if got := run("run", "a", "b c"); got != "run: hello there: a b c\n" {
		t.Errorf("run: %q", got)
	}
	if got := run("exec", "/bin/sh", "-c", "echo \"exec: $GREETING\""); got != "exec: hello there\n" {
		t.Errorf("exec: %q", got)
	}
	if got := run("shell", "-c", "echo shell"); got != "shell\n" {
		t.Errorf("shell: %q", got)
	}
	if got := run("start"); got != "" {
		t.Errorf("start: %q", got)
	}
	if got := run("test"); !strings.Contains(got, "no test script") {
		t.Errorf("test: %q", got)
	}
}

func TestCheckToolsMissing(t *testing.T) {
	err := CheckTools("/nonexistent/tar2sqfs")
	if err == nil || !strings.Contains(err.Error(), "apt-get install squashfs-tools-ng") {
		t.Fatalf("got %v", err)
	}
}

func TestBuildReal(t *testing.T) {
	if CheckTools("") != nil {
		t.Fatal("tar2sqfs not installed: apt-get install squashfs-tools-ng")
	}
	for _, tool := range []string{"rdsquashfs"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not installed: apt-get install squashfs-tools-ng", tool)
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatal("no /bin/busybox: apt-get install busybox-static")
	}
	in := mkTar(t, []entry{
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/busybox", typ: tar.TypeReg, data: string(bb)},
		{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
	})
	dir := t.TempDir()
	out := filepath.Join(dir, "img.sif")
	cfg := ImageConfig{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo 'hi'"}, Env: []string{"PATH=/bin"}, Labels: map[string]string{"a": "b"}}
	if err := Build(context.Background(), bytes.NewReader(in), cfg, "amd64", out, Options{Source: "busybox:test"}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	raw, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte(LaunchScript)) {
		t.Errorf("launch script: %q", raw[:32])
	}
	f, err := sif.LoadContainerFromPath(out, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatal(err)
	}
	defer f.UnloadContainer()
	def, err := f.GetDescriptor(sif.WithDataType(sif.DataDeffile))
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := def.GetData(); !strings.Contains(string(d), "bootstrap: docker-daemon") || !strings.Contains(string(d), "busybox:test") {
		t.Errorf("deffile: %q", d)
	}
	js, err := f.GetDescriptor(sif.WithDataType(sif.DataGenericJSON))
	if err != nil {
		t.Fatal(err)
	}
	if js.Name() != "oci-config.json" {
		t.Errorf("json name %q", js.Name())
	}
	var got ImageConfig
	d, _ := js.GetData()
	if err := json.Unmarshal(d, &got); err != nil || got.Cmd[0] != "echo 'hi'" || got.Labels["a"] != "b" {
		t.Errorf("config: %s %v", d, err)
	}
	part, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		t.Fatal(err)
	}
	fs, pt, arch, err := part.PartitionMetadata()
	if err != nil || fs != sif.FsSquash || pt != sif.PartPrimSys || arch != "amd64" {
		t.Errorf("partition: %v %v %q %v", fs, pt, arch, err)
	}
	if f.PrimaryArch() != "amd64" {
		t.Errorf("primary arch %q", f.PrimaryArch())
	}
	if string(raw[part.Offset():part.Offset()+4]) != "hsqs" {
		t.Errorf("no squashfs magic at %d", part.Offset())
	}
	sq := filepath.Join(t.TempDir(), "part.sqfs")
	if err := os.WriteFile(sq, raw[part.Offset():part.Offset()+part.Size()], 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/", "/bin", "/.singularity.d", "/.singularity.d/env"} {
		ls, err := exec.Command("rdsquashfs", "-l", p, sq).CombinedOutput()
		if err != nil {
			t.Fatalf("rdsquashfs -l %s: %v %s", p, err, ls)
		}
		t.Logf("%s:\n%s", p, ls)
	}
	list, _ := exec.Command("rdsquashfs", "-l", "/bin", sq).CombinedOutput()
	if !strings.Contains(string(list), "busybox") || !strings.Contains(string(list), "sh -> busybox") {
		t.Errorf("bin listing: %s", list)
	}
	list, _ = exec.Command("rdsquashfs", "-l", "/.singularity.d", sq).CombinedOutput()
	if !strings.Contains(string(list), "runscript") || !strings.Contains(string(list), "labels.json") {
		t.Errorf(".singularity.d listing: %s", list)
	}
	rs, err := exec.Command("rdsquashfs", "-c", "/.singularity.d/runscript", sq).Output()
	if err != nil || string(rs) != Runscript(cfg.Entrypoint, cfg.Cmd) {
		t.Errorf("runscript in squashfs: %q %v", rs, err)
	}
	bbOut, err := exec.Command("rdsquashfs", "-c", "/bin/busybox", sq).Output()
	if err != nil || !bytes.Equal(bbOut, bb) {
		t.Errorf("busybox content differs (%d vs %d bytes) %v", len(bbOut), len(bb), err)
	}
}

func TestBuildToolFailure(t *testing.T) {
	dir := t.TempDir()
	err := Build(context.Background(), strings.NewReader("not a tar"), ImageConfig{}, "amd64", filepath.Join(dir, "x.sif"), Options{Tar2sqfs: "/bin/false"})
	if err == nil {
		t.Fatal("expected error")
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("files left behind: %v", ents)
	}
}
