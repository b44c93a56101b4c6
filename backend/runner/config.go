package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"

	"whalemountain/backend/docker"
)

// Config is the runner policy; none of it comes from a user.
type Config struct {
	// Image is the gitlab-runner image every runner container runs, pinned to a version
	// ("gitlab/gitlab-runner:v17.11.0") or a digest; it must be on this server.
	Image string
	// GitLabURL is the address runners reach GitLab at (the server's gitlab.url unless
	// the containers see GitLab elsewhere).
	GitLabURL string
	// JobImage is the image a job without one runs in.
	JobImage string
	// Concurrent is how many jobs one runner runs at once.
	Concurrent int
	// MaxRunners is how many runners one user may have.
	MaxRunners int
	// CPUs and Memory bound the runner container itself (not its jobs: they are the user's
	// containers, under the user's quota).
	CPUs   float64
	Memory int64
	// RegistryNamespace is images.registry_namespace ("" for none): runner template names
	// the user's namespace under it, where a job's tags must go.
	RegistryNamespace string
	// Dir holds a directory per runner (config.toml, the runner's record, and a directory
	// of its own for the socket of its owner's Docker API). The engine must see it at the
	// same path: it is bind-mounted.
	Dir string
}

// ConfigTarget is where a runner container finds its directory: config.toml, and the
// directory of the socket of its owner's Docker API.
const ConfigTarget = "/etc/gitlab-runner"

// socketDir is the directory, in a runner's directory, that holds nothing but the socket
// of its owner's Docker API; socketName is the socket's file name in it. The server binds
// the directory, never the file, wherever the socket is needed: a server that starts again
// makes a new socket file, and a bind of the directory shows the new one to the containers
// already running (a bind of the file would keep the old one, which nobody answers).
const (
	socketDir  = "api"
	socketName = "docker.sock"
)

// JobSocketDir is where a job's container finds the directory of its owner's Docker API
// socket: the runner asks for a bind of its own socket's directory there (config.toml
// volumes), the server mounts that runner's socket directory read-only, and DOCKER_HOST
// names the socket in it, JobSocket (config.toml environment). Both stay the same across
// restarts of the server.
const (
	JobSocketDir = "/run/whalemountain"
	JobSocket    = JobSocketDir + "/" + socketName
)

// dir is the directory of owner's runner name.
func (c Config) dir(owner, name string) string { return filepath.Join(c.Dir, owner, name) }

// SocketDir is the directory of owner's runner name's Docker API socket on this host, the
// directory the server mounts into that runner's jobs.
func (c Config) SocketDir(owner, name string) string {
	return filepath.Join(c.dir(owner, name), socketDir)
}

// SocketPath is where owner's runner name's Docker API socket is on this host.
func (c Config) SocketPath(owner, name string) string {
	return filepath.Join(c.SocketDir(owner, name), socketName)
}

// maxSocketPath is the longest unix socket path Linux takes (sun_path, with its NUL).
const maxSocketPath = 107

// DefaultConfig returns the defaults: two jobs at once, two runners per user.
func DefaultConfig() Config {
	return Config{JobImage: "alpine:3.20", Concurrent: 2, MaxRunners: 2, CPUs: 0.5, Memory: 256 << 20}
}

// pinnedRE accepts an image pinned by a version tag or a digest.
var pinnedRE = regexp.MustCompile(`(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$`)

// Validate reports the first invalid field, by its config name.
func (c Config) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("runners: %s %s", field, fmt.Sprintf(format, a...))
	}
	if _, err := docker.ParseImage(c.Image); err != nil {
		return bad("image", "%q: %v", c.Image, err)
	}
	if !pinnedRE.MatchString(c.Image) || strings.HasSuffix(c.Image, ":latest") {
		return bad("image", "%q is not pinned: name a version (gitlab/gitlab-runner:v17.11.0) or a digest", c.Image)
	}
	if _, err := docker.ParseImage(c.JobImage); err != nil {
		return bad("job_image", "%q: %v", c.JobImage, err)
	}
	u, err := url.Parse(c.GitLabURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.User != nil {
		return bad("gitlab_url", "%q: want http(s)://host[/path]", c.GitLabURL)
	}
	switch {
	case c.Concurrent < 1 || c.Concurrent > 32:
		return bad("concurrent", "%d: want 1-32", c.Concurrent)
	case c.MaxRunners < 1 || c.MaxRunners > 20:
		return bad("max_per_user", "%d: want 1-20", c.MaxRunners)
	case c.CPUs <= 0 || c.Memory < 64<<20:
		return bad("cpus/memory", "must be positive, memory at least 64 MiB")
	case c.Dir == "" || !strings.HasPrefix(c.Dir, "/"):
		return bad("dir", "%q must be an absolute path", c.Dir)
	}
	// The shortest runner socket below it: Dir/a/b/api/docker.sock; longer names are
	// checked when their socket is made.
	if n := len(c.Dir) + len("/a/b/"+socketDir+"/") + len(socketName); n > maxSocketPath {
		return bad("dir", "%q is too long for a unix socket below it (%d bytes > %d): use a shorter data_dir", c.Dir, n, maxSocketPath)
	}
	return nil
}

var (
	tokenRE   = regexp.MustCompile(`^glrt-[A-Za-z0-9_.-]{16,200}$`)
	projectRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*){1,19}$`)
)

// CheckToken checks the form of a runner authentication token without repeating it.
func CheckToken(token string) error {
	if !tokenRE.MatchString(token) {
		return fmt.Errorf("%w: that is not a runner authentication token (glrt-...): create one in GitLab under "+
			"your project -> Settings -> CI/CD -> Runners -> New project runner", ErrInvalid)
	}
	return nil
}

// CheckProject checks a GitLab project path ("alice/demo", "course/2026/alice-lab").
func CheckProject(p string) error {
	if len(p) > 255 || !projectRE.MatchString(p) || strings.Contains(p, "..") {
		return fmt.Errorf("%w: invalid project %q: use its path as GitLab shows it, such as alice/demo", ErrInvalid, shownText(p))
	}
	return nil
}

// NameFor is the runner's name for a project: its path in lower case with '/', '.' and
// '_' as '-', at most 32 characters (a long one ends in a hash of the whole path);
// "default" with no project.
func NameFor(project string) string {
	if project == "" {
		return "default"
	}
	name := docker.Slug(project)
	if len(name) > 32 {
		sum := sha256.Sum256([]byte(project))
		name = strings.TrimRight(name[:23], "-") + "-" + hex.EncodeToString(sum[:4])
	}
	if name == "" {
		return "default"
	}
	return name
}

// tomlString is s as a TOML basic string. Callers pass validated text (URLs, tokens,
// image references, names); anything below ' ' is escaped all the same.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < ' ' || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// TOMLInput is what one runner's config.toml says.
type TOMLInput struct {
	Name       string // the runner's description in GitLab
	URL        string // GitLab
	Token      string // the runner authentication token
	Concurrent int
	JobImage   string
	Namespace  string // the kubernetes executor's: the owner's namespace
}

// RenderTOML is the config.toml of one runner: the docker executor, its host the owner's
// own Docker API socket in its directory beside the file, no privileges, no cache volumes,
// the user's own network (network_mode empty: the API places jobs there). Its one volume
// binds that socket's directory into each job at JobSocketDir (the server mounts the
// runner's own socket directory there, read-only, the one host path it places for a job),
// and DOCKER_HOST names the socket in it, so docker build and docker push in a job go
// through the owner's API; DOCKER_BUILDKIT=0 picks the classic builder, the one the API
// serves.
func RenderTOML(in TOMLInput) string {
	var b strings.Builder
	writeRunnerHead(&b, in, "docker")
	fmt.Fprintf(&b, "  environment = [%s, %s]\n", tomlString("DOCKER_HOST=unix://"+JobSocket), tomlString("DOCKER_BUILDKIT=0"))
	fmt.Fprintf(&b, "  [runners.docker]\n")
	fmt.Fprintf(&b, "    host = %s\n", tomlString("unix://"+docker.RunnerSocketDirBind+"/"+socketName))
	fmt.Fprintf(&b, "    image = %s\n", tomlString(in.JobImage))
	fmt.Fprintf(&b, "    privileged = false\n")
	fmt.Fprintf(&b, "    disable_cache = true\n")
	fmt.Fprintf(&b, "    volumes = [%s]\n", tomlString(docker.RunnerSocketDirBind+":"+JobSocketDir))
	fmt.Fprintf(&b, "    pull_policy = [\"if-not-present\"]\n")
	return b.String()
}

// writeRunnerHead writes what every config.toml starts with: the global section, then the
// one runner's name, GitLab, token, executor and job limit.
func writeRunnerHead(b *strings.Builder, in TOMLInput, executor string) {
	fmt.Fprintf(b, "# Written by WhaleMountain; changes are overwritten.\n")
	fmt.Fprintf(b, "concurrent = %d\ncheck_interval = 3\nshutdown_timeout = 10\nlog_level = \"info\"\n\n", in.Concurrent)
	fmt.Fprintf(b, "[[runners]]\n")
	fmt.Fprintf(b, "  name = %s\n", tomlString(in.Name))
	fmt.Fprintf(b, "  url = %s\n", tomlString(in.URL))
	fmt.Fprintf(b, "  token = %s\n", tomlString(in.Token))
	fmt.Fprintf(b, "  executor = %s\n", tomlString(executor))
	fmt.Fprintf(b, "  limit = %d\n", in.Concurrent)
}

// RenderKubernetesTOML is the config.toml of one runner that runs as a pod in its owner's
// namespace: the kubernetes executor with the pod's own ServiceAccount (in-cluster
// credentials, bound to what the executor needs in that namespace and nowhere else), its
// jobs' pods in that namespace only (no overwrite of the namespace, the service account,
// labels or node selectors from a job), without privileges or privilege escalation, every
// capability dropped in every container; the namespace's Pod Security level, quota, limit
// range and network policy hold the jobs' pods like any pod there.
func RenderKubernetesTOML(in TOMLInput) string {
	var b strings.Builder
	writeRunnerHead(&b, in, "kubernetes")
	fmt.Fprintf(&b, "  [runners.kubernetes]\n")
	fmt.Fprintf(&b, "    namespace = %s\n", tomlString(in.Namespace))
	fmt.Fprintf(&b, "    namespace_overwrite_allowed = \"\"\n")
	fmt.Fprintf(&b, "    service_account_overwrite_allowed = \"\"\n")
	fmt.Fprintf(&b, "    pod_labels_overwrite_allowed = \"\"\n")
	fmt.Fprintf(&b, "    node_selector_overwrite_allowed = \"\"\n")
	fmt.Fprintf(&b, "    image = %s\n", tomlString(in.JobImage))
	fmt.Fprintf(&b, "    privileged = false\n")
	fmt.Fprintf(&b, "    allow_privilege_escalation = false\n")
	fmt.Fprintf(&b, "    pull_policy = [\"if-not-present\"]\n")
	for _, c := range []string{"build", "helper", "service"} {
		fmt.Fprintf(&b, "    [runners.kubernetes.%s_container_security_context]\n", c)
		fmt.Fprintf(&b, "      privileged = false\n")
		fmt.Fprintf(&b, "      allow_privilege_escalation = false\n")
		fmt.Fprintf(&b, "      [runners.kubernetes.%s_container_security_context.capabilities]\n", c)
		fmt.Fprintf(&b, "        drop = [\"ALL\"]\n")
	}
	return b.String()
}

// shownText is user input safe to repeat: printable ASCII, at most 80 bytes.
func shownText(s string) string {
	b := []byte(s)
	if len(b) > 80 {
		b = append(b[:80], "..."...)
	}
	for i, c := range b {
		if c < ' ' || c > '~' {
			b[i] = '?'
		}
	}
	return string(b)
}
