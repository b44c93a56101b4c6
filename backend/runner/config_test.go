package runner

import (
	"errors"
	"strings"
	"testing"

	"whalemountain/backend/docker"
)

func TestNameFor(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "default"},
		{"alice/demo", "alice-demo"},
		{"Course/2026/Alice_Lab.v2", "course-2026-alice-lab-v2"},
		{"a/" + strings.Repeat("x", 40), "a-xxxxxxxxxxxxxxxxxxxxx-"},
	} {
		got := NameFor(tc.in)
		if !strings.HasPrefix(got, tc.want) || len(got) > 32 {
			t.Errorf("NameFor(%q) = %q, want %q (at most 32)", tc.in, got, tc.want)
		}
	}
	if NameFor("a/"+strings.Repeat("x", 40)) == NameFor("a/"+strings.Repeat("x", 41)) {
		t.Error("two long paths share a name")
	}
}

func TestCheckTokenAndProject(t *testing.T) {
	good := "glrt-" + strings.Repeat("A", 20)
	for _, tc := range []struct {
		token string
		ok    bool
	}{
		{good, true}, {"glrt-short", false}, {"", false}, {"glpat-" + strings.Repeat("a", 20), false},
		{good + "\n", false}, {good + " x", false},
	} {
		err := CheckToken(tc.token)
		if (err == nil) != tc.ok || (err != nil && (!errors.Is(err, ErrInvalid) || strings.Contains(err.Error(), tc.token) && tc.token != "")) {
			t.Errorf("CheckToken(%q) = %v", tc.token, err)
		}
	}
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"alice/demo", true}, {"group/sub/proj", true}, {"demo", false}, {"alice/../x", false}, {"/alice/demo", false},
		{"alice/demo;rm", false}, {"alice/de mo", false},
	} {
		if err := CheckProject(tc.p); (err == nil) != tc.ok {
			t.Errorf("CheckProject(%q) = %v", tc.p, err)
		}
	}
}

func TestRenderTOML(t *testing.T) {
	out := RenderTOML(TOMLInput{Name: `whalemountain alice/"x"`, URL: "https://gitlab.example.org", Token: "glrt-abc",
		Concurrent: 3, JobImage: "alpine:3.20"})
	for _, want := range []string{
		"concurrent = 3\n",
		`  name = "whalemountain alice/\"x\""`,
		`  url = "https://gitlab.example.org"`,
		`  token = "glrt-abc"`,
		`  executor = "docker"`,
		"  limit = 3\n",
		`    host = "unix:///etc/gitlab-runner/api/docker.sock"`,
		"    privileged = false\n",
		`    volumes = ["/etc/gitlab-runner/api:/run/whalemountain"]`,
		`  environment = ["DOCKER_HOST=unix:///run/whalemountain/docker.sock", "DOCKER_BUILDKIT=0"]`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("config.toml lacks %q:\n%s", want, out)
		}
	}
	// The bind the server recognises is the socket's directory where the runner container
	// has it.
	if got := ConfigTarget + "/" + socketDir; got != docker.RunnerSocketDirBind {
		t.Errorf("the runner's socket directory is at %s, the server recognises binds of %s", got, docker.RunnerSocketDirBind)
	}
	if got := tomlString("a\nb\\"); got != `"a\u000Ab\\"` {
		t.Errorf("tomlString = %s", got)
	}
}

func TestConfigValidate(t *testing.T) {
	base := DefaultConfig()
	base.Image, base.GitLabURL, base.Dir = "gitlab/gitlab-runner:v17.11.0", "https://gitlab.example.org", "/var/lib/wm/runners"
	if err := base.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	for _, tc := range []struct {
		change func(*Config)
		want   string
	}{
		{func(c *Config) { c.Image = "gitlab/gitlab-runner" }, "not pinned"},
		{func(c *Config) { c.Image = "gitlab/gitlab-runner:latest" }, "not pinned"},
		{func(c *Config) { c.GitLabURL = "ftp://x" }, "gitlab_url"},
		{func(c *Config) { c.Concurrent = 0 }, "concurrent"},
		{func(c *Config) { c.MaxRunners = 0 }, "max_per_user"},
		{func(c *Config) { c.Dir = "relative" }, "absolute"},
		{func(c *Config) { c.Dir = "/" + strings.Repeat("d", 100) }, "too long"},
	} {
		c := base
		tc.change(&c)
		if err := c.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate() = %v, want %q", err, tc.want)
		}
	}
}

// TestTemplate: the template builds the repository's Dockerfile and pushes it to the
// project's registry, with the docker CLI and no docker:dind service or privileges.
func TestTemplate(t *testing.T) {
	out := Template("alpine:3.20", "registry.example.org/alice")
	for _, want := range []string{"your registry namespace, registry.example.org/alice/...", "  image: alpine:3.20\n", "stages: [test, build]\n", "\ndocker-image:\n",
		`IMAGE: "$CI_REGISTRY_IMAGE:$CI_COMMIT_SHORT_SHA"`, `    - docker build -t "$IMAGE" .`, `    - docker push "$IMAGE"`} {
		if !strings.Contains(out, want) {
			t.Errorf("template lacks %q:\n%s", want, out)
		}
	}
	for _, never := range []string{"services:", "privileged: true", "- docker login", "\t"} {
		if strings.Contains(out, never) {
			t.Errorf("template has %q:\n%s", never, out)
		}
	}
}

func TestTemplateWithoutNamespace(t *testing.T) {
	out := Template("alpine:3.20", "")
	if !strings.Contains(out, "this server has none (images.registry_namespace)") || strings.Contains(out, "registry.example") {
		t.Errorf("template without a namespace:\n%s", out)
	}
}
