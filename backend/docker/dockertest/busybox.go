package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/client"
)

// BusyboxPath is where Debian's busybox-static puts its static binary; WM_BUSYBOX overrides.
const BusyboxPath = "/bin/busybox"

// fallbackApplets are linked when `busybox --list` cannot be run.
var fallbackApplets = []string{
	"sh", "ash", "sleep", "cat", "echo", "ls", "vi", "httpd", "top", "ps", "id", "env", "mkdir",
	"rm", "touch", "grep", "sed", "wc", "head", "tail", "true", "false", "printf", "test", "kill",
	"hostname", "uname", "date", "seq", "tr", "cut", "sort", "stty", "tty", "find", "cp", "mv",
	"chmod", "ln", "pwd", "awk", "nc", "wget", "whoami", "yes",
}

// image is the process's busybox image, shared by the tests that hold a reference to it.
var image struct {
	mu   sync.Mutex
	refs int
	ref  string
}

// BusyboxImage returns a tiny local image, "wm-test-busybox:<RunID>", made in process from
// the host's static busybox through the image import API: /bin/busybox, a link for every
// applet (sh, sleep, cat, vi, httpd, ls, echo, top, ...), CMD ["sh"], labelled with the run.
// Tests share it; it is removed (with any container of this run still using it) when the
// last test holding it ends.
func BusyboxImage(ctx context.Context, t testing.TB, cli *client.Client) (ref string) {
	t.Helper()
	image.mu.Lock()
	defer image.mu.Unlock()
	if image.refs == 0 {
		ref, err := importBusybox(ctx, cli, "wm-test-busybox:"+RunID())
		if err != nil {
			t.Fatalf("build test image: %v", err)
		}
		image.ref = ref
	}
	image.refs++
	t.Cleanup(func() {
		image.mu.Lock()
		defer image.mu.Unlock()
		image.refs--
		if image.refs > 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := removeImage(ctx, cli, image.ref); err != nil {
			t.Errorf("remove test image: %v", err)
		}
	})
	return image.ref
}

// LabelledImage returns a new image like BusyboxImage's, named "wm-test-<name>:<RunID>",
// whose configuration carries labels (as a crafted image of a user's would: the server's own
// label keys with forged values, say). It is removed, with the run's containers made from
// it, when the test ends.
func LabelledImage(ctx context.Context, t testing.TB, cli *client.Client, name string, labels map[string]string) string {
	t.Helper()
	changes := make([]string, 0, len(labels))
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		changes = append(changes, "LABEL "+strconv.Quote(k)+"="+strconv.Quote(labels[k]))
	}
	return ImageWith(ctx, t, cli, name, changes...)
}

// ImageWith returns a new image like BusyboxImage's, named "wm-test-<name>:<RunID>", with
// Dockerfile instructions applied to its configuration ("EXPOSE 8888", "LABEL k=v"). It is
// removed, with the run's containers made from it, when the test ends.
func ImageWith(ctx context.Context, t testing.TB, cli *client.Client, name string, changes ...string) string {
	t.Helper()
	ref := "wm-test-" + name + ":" + RunID()
	if _, err := importBusybox(ctx, cli, ref, changes...); err != nil {
		t.Fatalf("build image %s: %v", ref, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := removeImage(ctx, cli, ref); err != nil {
			t.Errorf("remove image %s: %v", ref, err)
		}
	})
	return ref
}

// ImageWithFiles is ImageWith with files added to the image (path without the leading
// slash -> contents, mode 0755): a static test program, say.
func ImageWithFiles(ctx context.Context, t testing.TB, cli *client.Client, name string, files map[string][]byte, changes ...string) string {
	t.Helper()
	ref := "wm-test-" + name + ":" + RunID()
	if _, err := importBusyboxWith(ctx, cli, ref, files, changes...); err != nil {
		t.Fatalf("build image %s: %v", ref, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := removeImage(ctx, cli, ref); err != nil {
			t.Errorf("remove image %s: %v", ref, err)
		}
	})
	return ref
}

func importBusybox(ctx context.Context, cli *client.Client, ref string, changes ...string) (string, error) {
	return importBusyboxWith(ctx, cli, ref, nil, changes...)
}

func importBusyboxWith(ctx context.Context, cli *client.Client, ref string, files map[string][]byte, changes ...string) (string, error) {
	if _, err := cli.ImageInspect(ctx, ref); err == nil {
		return ref, nil
	}
	bin := os.Getenv("WM_BUSYBOX")
	if bin == "" {
		bin = BusyboxPath
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		return "", fmt.Errorf("%w (install Debian's busybox-static, or set WM_BUSYBOX)", err)
	}
	applets := fallbackApplets
	if out, err := exec.CommandContext(ctx, bin, "--list").Output(); err == nil {
		applets = strings.Fields(string(out))
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	dir := func(name string, mode int64) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: now})
	}
	for _, d := range []string{"bin", "etc", "root", "home", "proc", "sys", "dev", "var", "var/www"} {
		dir(d, 0o755)
	}
	dir("tmp", 0o1777)
	file := func(name string, mode int64, body []byte) {
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(body)), ModTime: now})
		_, _ = tw.Write(body)
	}
	file("bin/busybox", 0o755, data)
	file("etc/passwd", 0o644, []byte("root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"))
	file("etc/group", 0o644, []byte("root:x:0:\nnogroup:x:65534:\n"))
	for _, name := range slices.Sorted(maps.Keys(files)) {
		file(name, 0o755, files[name])
	}
	for _, a := range applets {
		if a == "busybox" || strings.Contains(a, "/") {
			continue
		}
		_ = tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: now})
	}
	if err := tw.Close(); err != nil {
		return "", err
	}

	res, err := cli.ImageImport(ctx, client.ImageImportSource{Source: &buf, SourceName: "-"}, ref, client.ImageImportOptions{
		Changes: append([]string{
			`CMD ["sh"]`,
			"ENV PATH=/bin",
			"LABEL " + LabelRun + "=" + RunID(),
		}, changes...),
	})
	if err != nil {
		return "", err
	}
	defer res.Close()
	// The answer is a stream of JSON messages; an error arrives as one of them.
	dec := json.NewDecoder(res)
	for {
		var m struct {
			Error       string `json:"error"`
			ErrorDetail *struct {
				Message string `json:"message"`
			} `json:"errorDetail"`
		}
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return "", err
		}
		if m.Error != "" {
			return "", errors.New(m.Error)
		}
	}
	return ref, nil
}

// removeImage removes the image and the run's containers still made from it.
func removeImage(ctx context.Context, cli *client.Client, ref string) error {
	f := client.Filters{}.Add("label", LabelRun+"="+RunID()).Add("ancestor", ref)
	var errs []error
	cs, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	errs = append(errs, err)
	for _, c := range cs.Items {
		_, err := cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true, RemoveVolumes: true})
		errs = append(errs, ignoreNotFound(err))
	}
	_, err = cli.ImageRemove(ctx, ref, client.ImageRemoveOptions{Force: true, PruneChildren: true})
	errs = append(errs, ignoreNotFound(err))
	return errors.Join(errs...)
}

func ignoreNotFound(err error) error {
	if cerrdefs.IsNotFound(err) {
		return nil
	}
	return err
}
