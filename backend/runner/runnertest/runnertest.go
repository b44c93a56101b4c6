// Package runnertest builds the stand-in gitlab-runner image for tests: the static program
// in ./standin (it speaks GitLab's runner API and drives its Docker host with the docker
// executor's calls) on Debian's busybox, imported through the image import API.
package runnertest

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/moby/moby/client"

	"whalemountain/backend/docker/dockertest"
)

// Image returns the stand-in runner image, "wm-test-gitlab-runner:<RunID>", removed when
// the test ends. Its entrypoint is the stand-in, reading /etc/gitlab-runner/config.toml.
func Image(ctx context.Context, t testing.TB, cli *client.Client) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "gitlab-runner")
	gobin := "go"
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	} else if root := os.Getenv("GOROOT"); root != "" {
		gobin = filepath.Join(root, "bin", "go")
	}
	build := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-o", bin, "whalemountain/backend/runner/runnertest/standin")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build the stand-in runner: %v\n%s", err, out)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	return dockertest.ImageWithFiles(ctx, t, cli, "gitlab-runner", map[string][]byte{"bin/gitlab-runner": data},
		`ENTRYPOINT ["/bin/gitlab-runner"]`, `CMD ["run"]`)
}
