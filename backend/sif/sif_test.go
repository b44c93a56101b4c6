package sif

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
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
	s := Runscript([]string{"/bin/ep", "it's"}, []string{"a b", "$X"}, "")
	if !strings.HasPrefix(s, "#!/bin/sh\n") {
		t.Fatalf("no shebang: %q", s)
	}
	if got := runScript(t, s); got != "/bin/ep\nit's\na b\n$X\n" {
		t.Errorf("no args: %q", got)
	}
	if got := runScript(t, s, "x y"); got != "/bin/ep\nit's\nx y\n" {
		t.Errorf("args: %q", got)
	}
	s = Runscript(nil, []string{"echo", "hi there"}, "")
	if got := runScript(t, s); got != "echo\nhi there\n" {
		t.Errorf("cmd only: %q", got)
	}
	if got := runScript(t, s, "ls", "-l"); got != "ls\n-l\n" {
		t.Errorf("cmd only with args: %q", got)
	}
	if s := Runscript(nil, nil, ""); !strings.Contains(s, "exec /bin/sh\n") {
		t.Errorf("empty: %q", s)
	}
}

// shells are the shells the generated scripts are run with: the system's /bin/sh (dash
// on Debian) and busybox's.
func shells(t *testing.T) [][]string {
	t.Helper()
	if _, err := exec.LookPath("busybox"); err != nil {
		t.Fatal("busybox not installed: apt-get install busybox-static")
	}
	return [][]string{{"/bin/sh"}, {"busybox", "sh"}}
}

// envOf runs script with sh under `set -eu` in an environment of only pre, then prints
// the environment with env -0.
func envOf(t *testing.T, sh []string, script string, pre ...string) map[string]string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "env.sh")
	if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{"-i"}, pre...), sh...)
	args = append(args, "-c", `set -eu; . "$1"; exec env -0`, "sh", p)
	out, err := exec.Command("env", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s\n%s", sh, err, out, script)
	}
	m := map[string]string{}
	for _, kv := range strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00") {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// hardValues are environment values that need quoting.
var hardValues = []string{
	"it's", `say "hi"`, "$HOME and ${X:-y}", "`id` $(id)", `back\slash`, `trailing\`, `\\two`,
	"two  spaces", "line1\nline2\n", "}", "a}b", "{}", "*", "'", `\"`, `\$x`, "=eq=", "tab\there", "日本語", "",
}

func TestEnvScriptShells(t *testing.T) {
	env := []string{"PATH=/opt/my bin:/bin", "PRESET=image", "EMPTYPRE=image", "NOVALUE", "bad-name=1", "9X=1"}
	want := map[string]string{"PATH": "/opt/my bin:/bin", "PRESET": "kept", "EMPTYPRE": "image", "NOVALUE": ""}
	for i, v := range hardValues {
		k := fmt.Sprintf("V%d", i)
		env = append(env, k+"="+v)
		want[k] = v
	}
	script := EnvScript(env)
	for _, sh := range shells(t) {
		got := envOf(t, sh, script, "PATH=/usr/bin:/bin", "PRESET=kept", "EMPTYPRE=")
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s: %s = %q (set %v), want %q", sh, k, g, ok, v)
			}
		}
		for _, k := range []string{"bad-name", "9X"} {
			if _, ok := got[k]; ok {
				t.Errorf("%s: invalid name %s exported", sh, k)
			}
		}
	}
	if strings.Contains(script, "bad-name") || strings.Contains(script, "9X") {
		t.Errorf("invalid names in the script:\n%s", script)
	}
}

// TestEnvScriptForm: single quotes only, which Apptainer's built-in interpreter reads
// back unchanged; it keeps the backslash of a single quote written as quote, backslash,
// quote, quote, and reads \\, \", \$ and \` in double quotes wrongly.
func TestEnvScriptForm(t *testing.T) {
	s := EnvScript([]string{"PATH=/a b:/bin", "Q=it's \"q\" $x `id` a\\\\b", "E=", "N"})
	want := "#!/bin/sh\n" +
		"export PATH='/a b:/bin'\n" +
		"[ -n \"${Q:-}\" ] || Q='it'\"'\"'s \"q\" $x `id` a\\\\b'; export Q\n" +
		"[ -n \"${E:-}\" ] || E=''; export E\n" +
		"export N=\"${N:-}\"\n"
	if s != want {
		t.Errorf("EnvScript:\n%s\nwant:\n%s", s, want)
	}
	for _, v := range hardValues {
		for _, q := range []string{EnvQuote(v), ShellQuote(v)} {
			if strings.Contains(q, `'\''`) || (!strings.HasPrefix(q, "'") && q != v) {
				t.Errorf("%q quoted as %s", v, q)
			}
		}
	}
}

// wantEnvScripts are the env scripts of Apptainer's images from Docker sources.
var wantEnvScripts = []string{"01-base.sh", "10-docker2singularity.sh", "90-environment.sh", "94-appsbase.sh", "95-apps.sh", "99-base.sh", "99-runtimevars.sh"}

// writeRoot writes the files RewriteTar generates under root, with every absolute
// /.singularity.d path in them moved there, and returns the moved .singularity.d.
func writeRoot(t *testing.T, root string, im image) string {
	t.Helper()
	sd := filepath.Join(root, ".singularity.d")
	files, err := im.generated()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		p := filepath.Join(root, f.name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		data := strings.ReplaceAll(string(f.data), "/.singularity.d", sd)
		data = strings.ReplaceAll(data, "kill -CONT 1\n", ": kill -CONT 1\n")
		if err := os.WriteFile(p, []byte(data), fs.FileMode(f.mode)); err != nil {
			t.Fatal(err)
		}
	}
	return sd
}

func TestEnvScriptsAndActions(t *testing.T) {
	root := t.TempDir()
	wd := filepath.Join(root, "work dir")
	if err := os.Mkdir(wd, 0o755); err != nil {
		t.Fatal(err)
	}
	im := image{cfg: ImageConfig{
		Env:        []string{"PATH=/usr/bin:/bin", "GREETING=hello 'there' \"$USER\"", "LD_LIBRARY_PATH=/opt/lib"},
		Entrypoint: []string{"/bin/sh", "-c", `echo "run in $PWD: $GREETING: $*"`, "ep"},
		WorkingDir: wd,
	}, source: "busybox:test", arch: "amd64", built: time.Now()}
	sd := writeRoot(t, root, im)
	for _, name := range wantEnvScripts {
		fi, err := os.Stat(filepath.Join(sd, "env", name))
		if err != nil || fi.Mode().Perm() != 0o755 {
			t.Errorf("env/%s: %v %v", name, fi, err)
		}
	}
	for _, sh := range shells(t) {
		run := func(action string, env []string, args ...string) (string, error) {
			t.Helper()
			p := filepath.Join(sd, "actions", action)
			if out, err := exec.Command(sh[0], append(sh[1:], "-n", p)...).CombinedOutput(); err != nil {
				t.Fatalf("%s %s: syntax: %v %s", sh, action, err, out)
			}
			cmd := exec.Command(sh[0], append(append(sh[1:], p), args...)...)
			cmd.Env = append([]string{"PATH=/usr/bin:/bin"}, env...)
			cmd.Dir = root
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		for name := range envScripts {
			if out, err := exec.Command(sh[0], append(sh[1:], "-n", filepath.Join(sd, "env", name))...).CombinedOutput(); err != nil {
				t.Errorf("%s env/%s: syntax: %v %s", sh, name, err, out)
			}
		}
		out, err := run("exec", nil, "env", "-0")
		if err != nil {
			t.Fatalf("%s exec: %v %s", sh, err, out)
		}
		got := map[string]string{}
		for _, kv := range strings.Split(out, "\x00") {
			k, v, _ := strings.Cut(kv, "=")
			got[k] = v
		}
		// The image's environment, then 99-base.sh: the host libraries' directory goes last.
		if got["GREETING"] != `hello 'there' "$USER"` || got["LD_LIBRARY_PATH"] != "/opt/lib:"+sd+"/libs" {
			t.Errorf("%s exec: environment %q", sh, got)
		}
		out, err = run("exec", []string{"SING_USER_DEFINED_PREPEND_PATH=/pre", "SING_USER_DEFINED_APPEND_PATH=/post"}, "/bin/sh", "-c", `echo "$PATH ${SING_USER_DEFINED_PREPEND_PATH-unset}"`)
		if err != nil || out != "/pre:/usr/bin:/bin:/post unset\n" {
			t.Errorf("%s exec with a PATH asked at run time: %q %v", sh, out, err)
		}
		out, err = run("run", nil, "a", "b c")
		if want := "run in " + wd + ": hello 'there' \"$USER\": a b c\n"; err != nil || out != want {
			t.Errorf("%s run: %q %v, want %q", sh, out, err, want)
		}
		if out, err := run("shell", nil, "-c", "echo shell"); err != nil || out != "shell\n" {
			t.Errorf("%s shell: %q %v", sh, out, err)
		}
		if out, err := run("start", nil); err != nil || out != "" {
			t.Errorf("%s start: %q %v", sh, out, err)
		}
		if out, err := run("test", nil); err != nil || !strings.Contains(out, "No test script") {
			t.Errorf("%s test: %q %v", sh, out, err)
		}
		if out, err := run("run", []string{"SINGULARITY_APPNAME=nope"}); err == nil || !strings.Contains(out, "Could not locate the container application: nope") {
			t.Errorf("%s run of a missing app: %q %v", sh, out, err)
		}
	}
	if s := ActionScript("start"); !strings.HasPrefix(s, "#!/bin/sh\nkill -CONT 1\n") {
		t.Errorf("start does not signal process 1 first:\n%s", s)
	}
}

// TestRunscriptWorkingDir: the image's own command runs in its WorkingDir; a command
// given in full runs where the caller is.
func TestRunscriptWorkingDir(t *testing.T) {
	wd, caller := t.TempDir(), t.TempDir()
	run := func(script string, args ...string) string {
		t.Helper()
		p := filepath.Join(t.TempDir(), "runscript")
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("/bin/sh", append([]string{p}, args...)...)
		cmd.Dir = caller
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v %s\n%s", err, out, script)
		}
		return strings.TrimSpace(string(out))
	}
	ep := Runscript([]string{"/bin/sh", "-c", `echo "$PWD $*"`, "sh"}, []string{"x"}, wd)
	if got := run(ep); got != wd+" x" {
		t.Errorf("entrypoint: %q, want %q", got, wd+" x")
	}
	if got := run(ep, "y"); got != wd+" y" {
		t.Errorf("entrypoint with arguments: %q", got)
	}
	cmd := Runscript(nil, []string{"/bin/sh", "-c", "pwd"}, wd)
	if got := run(cmd); got != wd {
		t.Errorf("cmd: %q, want %q", got, wd)
	}
	if got := run(cmd, "/bin/sh", "-c", "pwd"); got != caller {
		t.Errorf("a command of the caller's: %q, want %q", got, caller)
	}
	if got := run(Runscript(nil, []string{"/bin/sh", "-c", "pwd"}, wd+"/missing")); got == "" || !strings.HasSuffix(got, caller) {
		t.Errorf("a missing WorkingDir: %q", got)
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

type tarEntry struct {
	h    *tar.Header
	data string
}

func readTar(t *testing.T, b []byte) map[string]tarEntry {
	t.Helper()
	m := map[string]tarEntry{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return m
		}
		if err != nil {
			t.Fatal(err)
		}
		name := cleanName(h.Name)
		if _, dup := m[name]; dup {
			t.Errorf("duplicate entry %s", h.Name)
		}
		d, _ := io.ReadAll(tr)
		m[name] = tarEntry{h, string(d)}
	}
}

// exportLike is a rootfs as the engine exports it: the image's files and the engine's
// own (/.dockerenv, /etc/hostname, /etc/hosts, /etc/resolv.conf).
func exportLike(t *testing.T, more ...entry) []byte {
	es := []entry{
		{name: ".dockerenv", typ: tar.TypeReg},
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/busybox", typ: tar.TypeReg, data: "BB"},
		{name: "bin/sh", typ: tar.TypeSymlink, link: "busybox"},
		{name: "etc/", typ: tar.TypeDir},
		{name: "etc/hostname", typ: tar.TypeReg},
		{name: "etc/hosts", typ: tar.TypeReg},
		{name: "etc/passwd", typ: tar.TypeReg, data: "root:x:0:0::/root:/bin/sh\n"},
		{name: "etc/resolv.conf", typ: tar.TypeReg},
		{name: "home/", typ: tar.TypeDir},
		{name: "tmp/", typ: tar.TypeDir},
	}
	return mkTar(t, append(es, more...))
}

func TestRewriteTar(t *testing.T) {
	in := exportLike(t,
		entry{name: "var/", typ: tar.TypeDir},
		entry{name: ".singularity.d/", typ: tar.TypeDir},
		entry{name: ".singularity.d/runscript", typ: tar.TypeReg, data: "old"},
		entry{name: ".singularity.d/env/", typ: tar.TypeDir},
		entry{name: ".singularity.d/env/91-custom.sh", typ: tar.TypeReg, data: "custom"},
		entry{name: "environment", typ: tar.TypeReg, data: "mine"},
	)
	var out bytes.Buffer
	cfg := ImageConfig{Cmd: []string{"sh"}, Env: []string{"A=b"}, Labels: map[string]string{"k": "v", "org.label-schema.schema-version": "0.1"}, WorkingDir: "/srv"}
	built := time.Date(2026, 12, 2, 3, 4, 5, 0, time.UTC)
	if err := RewriteTar(bytes.NewReader(in), &out, cfg, "busybox:test", "arm64", built); err != nil {
		t.Fatal(err)
	}
	m := readTar(t, out.Bytes())
	if m["bin/busybox"].data != "BB" || m["bin/sh"].h.Linkname != "busybox" || m["etc/passwd"].data == "" {
		t.Errorf("originals lost: %v", m)
	}
	// The engine's files are not the image's.
	for _, gone := range []string{".dockerenv", "etc/hostname"} {
		if _, ok := m[gone]; ok {
			t.Errorf("%s carried over", gone)
		}
	}
	// Empty, 0644: as in Apptainer's images, for the runtime to bind the host's over.
	for _, f := range []string{"etc/hosts", "etc/resolv.conf"} {
		if e, ok := m[f]; !ok || e.h.Typeflag != tar.TypeReg || e.h.Size != 0 || e.h.Mode != 0o644 {
			t.Errorf("%s: %+v", f, e.h)
		}
	}
	// Where Apptainer binds, there are directories.
	for _, d := range []string{"var/tmp", "home", "tmp", "root", "proc", "sys", "dev", ".singularity.d/libs", ".singularity.d/actions"} {
		if e, ok := m[d]; !ok || e.h.Typeflag != tar.TypeDir {
			t.Errorf("directory %s missing", d)
		}
	}
	if m[".singularity.d/runscript"].data != Runscript(nil, []string{"sh"}, "/srv") {
		t.Errorf("runscript: %q", m[".singularity.d/runscript"].data)
	}
	if m[".singularity.d/env/91-custom.sh"].data != "custom" || m["environment"].data != "mine" {
		t.Errorf("the image's own files replaced")
	}
	for _, name := range wantEnvScripts {
		if e := m[".singularity.d/env/"+name]; e.h == nil || e.h.Mode != 0o755 {
			t.Errorf("env/%s missing", name)
		}
	}
	for name, text := range envScripts {
		if e := m[".singularity.d/env/"+name]; e.data != text || e.h.Mode != 0o755 {
			t.Errorf("env/%s: %q mode %o", name, e.data, e.h.Mode)
		}
	}
	if e := m[".singularity.d/env/10-docker2singularity.sh"]; !strings.Contains(e.data, "[ -n \"${A:-}\" ] || A='b'; export A\n") || e.h.Mode != 0o755 {
		t.Errorf("env: %q", e.data)
	}
	if m[".singularity.d/Singularity"].data != Definition("busybox:test") {
		t.Errorf("definition: %q", m[".singularity.d/Singularity"].data)
	}
	var labels map[string]string
	if err := json.Unmarshal([]byte(m[".singularity.d/labels.json"].data), &labels); err != nil {
		t.Fatalf("labels: %q %v", m[".singularity.d/labels.json"].data, err)
	}
	wantLabels := map[string]string{
		"k":                               "v",
		"org.label-schema.schema-version": "1.0",
		"org.label-schema.build-arch":     "arm64",
		"org.label-schema.build-date":     "Wednesday_2_December_2026_3:4:5_UTC",
		"org.label-schema.usage.singularity.deffile.bootstrap": "docker-daemon",
		"org.label-schema.usage.singularity.deffile.from":      "busybox:test",
	}
	if !maps.Equal(labels, wantLabels) {
		t.Errorf("labels %v, want %v", labels, wantLabels)
	}
	for _, l := range genLinks {
		if l[0] == "environment" {
			continue
		}
		if e := m[l[0]]; e.h == nil || e.h.Typeflag != tar.TypeSymlink || e.h.Linkname != l[1] {
			t.Errorf("link %s -> %s missing", l[0], l[1])
		}
	}
	for _, a := range actionNames {
		if e := m[".singularity.d/actions/"+a]; e.data != ActionScript(a) || e.h.Mode != 0o755 {
			t.Errorf("action %s: %q", a, e.data)
		}
	}

	// Nothing is added beneath a link: /var may be one.
	in = exportLike(t, entry{name: "var", typ: tar.TypeSymlink, link: "/data/var"})
	out.Reset()
	if err := RewriteTar(bytes.NewReader(in), &out, cfg, "x", "amd64", built); err != nil {
		t.Fatal(err)
	}
	m = readTar(t, out.Bytes())
	if _, ok := m["var/tmp"]; ok || m["var"].h.Typeflag != tar.TypeSymlink {
		t.Errorf("var/tmp added beneath the link var")
	}
}

func TestCheckToolsMissing(t *testing.T) {
	err := CheckTools("/nonexistent/tar2sqfs")
	if err == nil || !strings.Contains(err.Error(), "apt-get install squashfs-tools-ng") {
		t.Fatalf("got %v", err)
	}
}

var (
	siftoolOnce sync.Once
	siftoolPath string
	siftoolErr  error
)

// siftool builds the SIF library's own siftool from the module cache, once per run.
func siftool(t *testing.T) string {
	t.Helper()
	siftoolOnce.Do(func() {
		dir, err := os.MkdirTemp("", "siftool-")
		if err != nil {
			siftoolErr = err
			return
		}
		siftoolPath = filepath.Join(dir, "siftool")
		out, err := exec.Command("go", "build", "-o", siftoolPath, "github.com/sylabs/sif/v2/cmd/siftool").CombinedOutput()
		if err != nil {
			siftoolErr = fmt.Errorf("go build siftool: %v\n%s", err, out)
		}
	})
	if siftoolErr != nil {
		t.Fatal(siftoolErr)
	}
	return siftoolPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if siftoolPath != "" {
		os.RemoveAll(filepath.Dir(siftoolPath))
	}
	os.Exit(code)
}

// named selects the descriptor of that name.
func named(name string) sif.DescriptorSelectorFunc {
	return func(d sif.Descriptor) (bool, error) { return d.Name() == name, nil }
}

// partition writes the primary partition of the SIF at path to a file of its own.
func partition(t *testing.T, f *sif.FileImage) string {
	t.Helper()
	part, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		t.Fatal(err)
	}
	data, err := part.GetData()
	if err != nil || len(data) < 4 || string(data[:4]) != "hsqs" {
		t.Fatalf("no squashfs magic at the partition offset (%v)", err)
	}
	sq := filepath.Join(t.TempDir(), "part.sqfs")
	if err := os.WriteFile(sq, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return sq
}

// CheckSIF checks a SIF as Apptainer lays out its own: descriptors, their names, the
// inspect metadata and the OCI config, read back with the SIF library and siftool.
func checkSIF(t *testing.T, path string, cfg ImageConfig, source, arch string) *sif.FileImage {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(raw, []byte(LaunchScript)) {
		t.Errorf("launch script: %q", raw[:32])
	}
	f, err := sif.LoadContainerFromPath(path, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.UnloadContainer() })
	ds, err := f.GetDescriptors()
	if err != nil {
		t.Fatal(err)
	}
	var layout []string
	for _, d := range ds {
		layout = append(layout, fmt.Sprintf("%s %s", d.DataType(), d.Name()))
	}
	wantLayout := []string{"Def.FILE ", "JSON.Generic inspect-metadata.json", "JSON.Generic oci-config.json", "FS "}
	if !slices.Equal(layout, wantLayout) {
		t.Errorf("descriptors %q, want %q", layout, wantLayout)
	}
	def, _ := f.GetDescriptor(sif.WithDataType(sif.DataDeffile))
	if d, _ := def.GetData(); string(d) != Definition(source) {
		t.Errorf("deffile: %q", d)
	}
	ins, err := f.GetDescriptor(named(InspectMetadataName))
	if err != nil {
		t.Fatal(err)
	}
	insData, _ := ins.GetData()
	var md InspectMetadata
	if err := json.Unmarshal(insData, &md); err != nil {
		t.Fatalf("inspect metadata: %v\n%s", err, insData)
	}
	a := md.Data.Attributes
	if md.Type != "container" || a.Deffile != strings.TrimRight(Definition(source), "\n") ||
		a.Runscript != strings.TrimRight(Runscript(cfg.Entrypoint, cfg.Cmd, cfg.WorkingDir), "\n") ||
		a.Environment["/.singularity.d/env/10-docker2singularity.sh"] != strings.TrimRight(EnvScript(cfg.Env), "\n") ||
		a.Labels["org.label-schema.schema-version"] != "1.0" || a.Labels["org.label-schema.build-arch"] != arch ||
		a.Labels["org.label-schema.usage.singularity.deffile.from"] != source ||
		!regexp.MustCompile(`^[A-Z][a-z]+day_[0-9]{1,2}_[A-Z][a-z]+_[0-9]{4}_[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}_[A-Za-z0-9+-]+$`).MatchString(a.Labels["org.label-schema.build-date"]) {
		t.Errorf("inspect metadata: %s", insData)
	}
	for k, v := range cfg.Labels {
		if a.Labels[k] != v {
			t.Errorf("label %s = %q in the inspect metadata, want %q", k, a.Labels[k], v)
		}
	}
	js, err := f.GetDescriptor(named(OCIConfigName))
	if err != nil {
		t.Fatal(err)
	}
	cfgData, _ := js.GetData()
	var got ImageConfig
	if err := json.Unmarshal(cfgData, &got); err != nil {
		t.Fatalf("oci-config.json: %v\n%s", err, cfgData)
	}
	if !reflect.DeepEqual(got, cfg) {
		t.Errorf("oci-config.json %s, want %+v", cfgData, cfg)
	}
	part, err := f.GetDescriptor(sif.WithPartitionType(sif.PartPrimSys))
	if err != nil {
		t.Fatal(err)
	}
	fs, pt, parch, err := part.PartitionMetadata()
	if err != nil || fs != sif.FsSquash || pt != sif.PartPrimSys || parch != arch || f.PrimaryArch() != arch {
		t.Errorf("partition: %v %v %q %v", fs, pt, parch, err)
	}

	// siftool reads the same.
	tool := siftool(t)
	list, err := exec.Command(tool, "list", path).CombinedOutput()
	if err != nil {
		t.Fatalf("siftool list: %v\n%s", err, list)
	}
	for _, want := range []string{"Def.FILE", "JSON.Generic", "FS (Squashfs/*System/" + arch + ")"} {
		if !strings.Contains(string(list), want) {
			t.Errorf("siftool list lacks %q:\n%s", want, list)
		}
	}
	for id, want := range map[int][]byte{1: []byte(Definition(source)), 2: insData, 3: cfgData} {
		out, err := exec.Command(tool, "dump", fmt.Sprint(id), path).Output()
		if err != nil || !bytes.Equal(out, want) {
			t.Errorf("siftool dump %d: %q %v, want %q", id, out, err, want)
		}
	}
	if out, err := exec.Command(tool, "info", "2", path).CombinedOutput(); err != nil || !strings.Contains(string(out), InspectMetadataName) {
		t.Errorf("siftool info 2: %v\n%s", err, out)
	}
	return f
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
	in := exportLike(t, entry{name: "bin/busybox2", typ: tar.TypeReg, data: string(bb)})
	dir := t.TempDir()
	out := filepath.Join(dir, "img.sif")
	cfg := ImageConfig{Entrypoint: []string{"/bin/sh", "-c"}, Cmd: []string{"echo 'hi'"}, Env: []string{"PATH=/bin", "Q=it's"},
		Labels: map[string]string{"a": "b"}, WorkingDir: "/srv/app", User: "1000:1000"}
	if err := Build(context.Background(), bytes.NewReader(in), cfg, "amd64", out, Options{Source: "busybox:test"}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("temporary files left: %v", ents)
	}
	f := checkSIF(t, out, cfg, "busybox:test", "amd64")
	sq := partition(t, f)
	ls := func(p string) string {
		out, err := exec.Command("rdsquashfs", "-l", p, sq).CombinedOutput()
		if err != nil {
			t.Fatalf("rdsquashfs -l %s: %v %s", p, err, out)
		}
		return string(out)
	}
	if l := ls("/"); !strings.Contains(l, "singularity -> .singularity.d/runscript") || strings.Contains(l, ".dockerenv") {
		t.Errorf("/:\n%s", l)
	}
	if l := ls("/var"); !strings.Contains(l, "tmp") {
		t.Errorf("/var:\n%s", l)
	}
	if l := ls("/etc"); strings.Contains(l, "hostname") || !strings.Contains(l, "hosts") {
		t.Errorf("/etc:\n%s", l)
	}
	if l := ls("/bin"); !strings.Contains(l, "busybox2") || !strings.Contains(l, "sh -> busybox") {
		t.Errorf("/bin:\n%s", l)
	}
	l := ls("/.singularity.d/env")
	for _, name := range wantEnvScripts {
		if !strings.Contains(l, name) {
			t.Errorf("/.singularity.d/env lacks %s:\n%s", name, l)
		}
	}
	for p, want := range map[string]string{
		"/.singularity.d/runscript":                    Runscript(cfg.Entrypoint, cfg.Cmd, cfg.WorkingDir),
		"/.singularity.d/env/10-docker2singularity.sh": EnvScript(cfg.Env),
		"/.singularity.d/env/99-base.sh":               baseScript,
		"/etc/hosts":                                   "",
	} {
		got, err := exec.Command("rdsquashfs", "-c", p, sq).Output()
		if err != nil || string(got) != want {
			t.Errorf("%s in squashfs: %q %v", p, got, err)
		}
	}
	bbOut, err := exec.Command("rdsquashfs", "-c", "/bin/busybox2", sq).Output()
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

// TestRewriteRefusesPathsOutside: an entry, or a hard link's target, that climbs out of the
// image stops the build instead of reaching tar2sqfs.
func TestRewriteRefusesPathsOutside(t *testing.T) {
	for _, h := range []*tar.Header{
		{Name: "../../etc/evil", Typeflag: tar.TypeReg, Mode: 0o644},
		{Name: "a/../../x", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/hard", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"},
	} {
		var in bytes.Buffer
		tw := tar.NewWriter(&in)
		_ = tw.WriteHeader(h)
		_ = tw.Close()
		err := RewriteTar(&in, io.Discard, ImageConfig{}, "x:1", "amd64", time.Unix(0, 0))
		if err == nil || !strings.Contains(err.Error(), "outside") {
			t.Errorf("%s (%q): %v, want refused", h.Name, h.Linkname, err)
		}
	}
}
