package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"whalemountain/backend/docker"
	"whalemountain/backend/recording"
	"whalemountain/tui/sshd"
)

// Config is the whole server configuration: embedded defaults, then the YAML file, then
// environment variables, then flags.
type Config struct {
	Listen     string       `yaml:"listen"`
	DataDir    string       `yaml:"data_dir"`
	ServerName string       `yaml:"server_name"`
	LogLevel   string       `yaml:"log_level"`
	HostKeys   HostKeys     `yaml:"host_keys"`
	KeysDir    string       `yaml:"keys_dir"`
	TAs        []string     `yaml:"tas"`
	GitLab     GitLabConfig `yaml:"gitlab"`
	Limits     Limits       `yaml:"limits"`
	Docker     DockerConfig `yaml:"docker"`
	Images     ImagesConfig `yaml:"images"`
	// Kubernetes lends pods on a cluster (kubeconfig.go); off unless configured.
	Kubernetes KubeConfig `yaml:"kubernetes"`
	// Presets are the course's ready-made containers (presets.go).
	Presets []PresetConfig `yaml:"presets"`
	// Datasets and Groups are the data that is not one user's (shared.go).
	Datasets []DatasetConfig `yaml:"datasets"`
	Groups   []GroupConfig   `yaml:"groups"`
	// TAFileAccess is "read" to let TAs read students' homes and group workspaces over sftp
	// (audited per file); "" or "off" (the default) does not.
	TAFileAccess string `yaml:"ta_file_access"`
	// MetricsAddr is where the Prometheus endpoint listens (plain HTTP); empty turns it off.
	MetricsAddr string `yaml:"metrics_addr"`
	// Recordings say which shells are recorded and how long recordings are kept.
	Recordings RecordingsConfig `yaml:"recordings"`
	// Runners are users' personal GitLab runners (runnerconfig.go).
	Runners RunnersConfig `yaml:"runners"`
}

// RecordingsConfig is the recordings section. Shared shells are recorded from their first
// viewer on; AllShells records every shell from its start.
type RecordingsConfig struct {
	Enabled   bool          `yaml:"enabled"`
	AllShells bool          `yaml:"all_shells"`
	Retention time.Duration `yaml:"retention"` // recordings older than this are removed; 0 keeps them
	MaxSize   ByteSize      `yaml:"max_size"`  // one recording at most; past it, it stops with a marker
}

// HostKeys says which host keys to serve.
type HostKeys struct {
	RSA bool `yaml:"rsa"` // also an RSA key, for old clients
}

// GitLabConfig connects the department GitLab; an empty URL turns it off.
type GitLabConfig struct {
	URL            string        `yaml:"url"`
	TokenFile      string        `yaml:"token_file"`
	TAGroup        string        `yaml:"ta_group"`
	TAMinAccess    int           `yaml:"ta_min_access_level"`
	CacheTTL       time.Duration `yaml:"cache_ttl"`
	StaleFor       time.Duration `yaml:"stale_for"`
	RequestTimeout time.Duration `yaml:"request_timeout"`

	token string // from WM_GITLAB_TOKEN or TokenFile, never from the YAML itself
}

// ImagesConfig is the images section: who may pull what (the policy's fields sit directly
// under images:), credentials for private registries, and SIF export.
type ImagesConfig struct {
	docker.ImagePolicy `yaml:",inline"`
	RegistryAuth       []RegistryAuth `yaml:"registry_auth"`
	SIF                SIFConfig      `yaml:"sif"`
}

// RegistryAuth is a deploy or registry token the server pulls with from one registry. The
// token is read from TokenFile (mode 0600), never written in the YAML itself.
type RegistryAuth struct {
	Registry  string `yaml:"registry"`
	Username  string `yaml:"username"`
	TokenFile string `yaml:"token_file"`
	// Shared are images every user may pull with the token (globs, as in images.allow);
	// students otherwise use it only for their own namespace <registry_namespace>/<user>/...
	Shared []string `yaml:"shared"`

	token string
}

// SIFConfig tunes SIF export.
type SIFConfig struct {
	Quota     ByteSize `yaml:"quota"`      // bytes of SIF files per user
	MaxBuilds int      `yaml:"max_builds"` // builds at once on the server
	Tar2sqfs  string   `yaml:"tar2sqfs"`   // the tar2sqfs binary; empty: from PATH
}

// credentials are the registry credentials with their tokens (after loadToken).
func (ic ImagesConfig) credentials() []docker.RegistryCredential {
	out := make([]docker.RegistryCredential, 0, len(ic.RegistryAuth))
	for _, r := range ic.RegistryAuth {
		out = append(out, docker.RegistryCredential{Registry: r.Registry, Username: r.Username, Password: r.token, Shared: r.Shared})
	}
	return out
}

// Limits protect the door.
type Limits struct {
	MaxAuthTries       int           `yaml:"max_auth_tries"`
	LoginGrace         time.Duration `yaml:"login_grace"`
	IdleTimeout        time.Duration `yaml:"idle_timeout"`
	MaxSessionsPerUser int           `yaml:"max_sessions_per_user"`
	FailuresPerMinute  int           `yaml:"failures_per_minute"`
	ShutdownGrace      time.Duration `yaml:"shutdown_grace"`
	// MaxStartups is OpenSSH's "soft:rate:hard" for connections not yet logged in;
	// PerSourceMaxStartups caps those from one address.
	MaxStartups          string `yaml:"max_startups"`
	PerSourceMaxStartups int    `yaml:"per_source_max_startups"`
	// MaxForwards caps the ssh -L channels open on one connection.
	MaxForwards int `yaml:"max_forwards"`
}

// startups reads MaxStartups and PerSourceMaxStartups.
func (l Limits) startups() (sshd.Startups, error) {
	st := sshd.Startups{PerSource: l.PerSourceMaxStartups}
	parts := strings.Split(l.MaxStartups, ":")
	var err error
	nums := make([]int, len(parts))
	for i, p := range parts {
		if nums[i], err = strconv.Atoi(p); err != nil {
			break
		}
	}
	switch {
	case err != nil:
		return st, fmt.Errorf("limits.max_startups: %q is not soft:rate:hard, such as 10:30:100", l.MaxStartups)
	case len(nums) == 1:
		st.Soft, st.Rate, st.Hard = nums[0], 100, nums[0]
	case len(nums) == 3:
		st.Soft, st.Rate, st.Hard = nums[0], nums[1], nums[2]
	default:
		return st, fmt.Errorf("limits.max_startups: %q is not soft:rate:hard, such as 10:30:100", l.MaxStartups)
	}
	if err := st.Validate(); err != nil {
		return st, fmt.Errorf("limits.%w", err)
	}
	return st, nil
}

// defaultConfig is what `make run` gets on a fresh clone.
func defaultConfig() Config {
	return Config{
		Listen:   ":2222",
		DataDir:  "./data",
		LogLevel: "info",
		Runners:  defaultRunners(),
		GitLab: GitLabConfig{
			TAMinAccess:    30,
			CacheTTL:       60 * time.Second,
			StaleFor:       time.Hour,
			RequestTimeout: 10 * time.Second,
		},
		Limits: Limits{
			MaxAuthTries:         6,
			LoginGrace:           30 * time.Second,
			IdleTimeout:          time.Hour,
			MaxSessionsPerUser:   10,
			FailuresPerMinute:    10,
			ShutdownGrace:        10 * time.Second,
			MaxStartups:          "10:30:100",
			PerSourceMaxStartups: 20,
			MaxForwards:          64,
		},
		Docker:     defaultDockerConfig(),
		Recordings: RecordingsConfig{Enabled: true, Retention: 30 * 24 * time.Hour, MaxSize: recording.DefaultMaxSize},
		Kubernetes: defaultKubeConfig(),
		Images:     ImagesConfig{SIF: SIFConfig{Quota: docker.DefaultSIFQuota, MaxBuilds: docker.DefaultSIFBuilds}},
	}
}

// loadFile merges the YAML file at path into c. Unknown fields are refused.
func (c *Config) loadFile(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config %s: %w", path, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(c); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config %s: %s", path, explainYAML(data, err))
	}
	return nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)

// explainYAML turns a decoding error into lines that name the field, e.g.
// "limits.login_grace (line 2): cannot unmarshal !!str `banana` into time.Duration".
func explainYAML(data []byte, err error) string {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return strings.TrimPrefix(err.Error(), "yaml: ")
	}
	var root yaml.Node
	_ = yaml.Unmarshal(data, &root)
	var out []string
	for _, e := range te.Errors {
		m := yamlLineRE.FindStringSubmatch(e)
		if m == nil {
			out = append(out, e)
			continue
		}
		line, _ := strconv.Atoi(m[1])
		msg := m[2]
		if f := strings.TrimPrefix(msg, "field "); f != msg {
			// "field tokn not found in type main.GitLabConfig"
			name := strings.Fields(f)[0]
			msg = "unknown field " + name
		}
		if key := keyAtLine(&root, line, ""); key != "" {
			out = append(out, fmt.Sprintf("%s (line %d): %s", key, line, msg))
		} else {
			out = append(out, fmt.Sprintf("line %d: %s", line, msg))
		}
	}
	return strings.Join(out, "; ")
}

// keyAtLine finds the dotted path of the mapping key on the given line.
func keyAtLine(n *yaml.Node, line int, prefix string) string {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if k := keyAtLine(c, line, prefix); k != "" {
				return k
			}
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			if k.Line == line {
				return path
			}
			if r := keyAtLine(v, line, path); r != "" {
				return r
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if c.Line == line && c.Kind == yaml.ScalarNode {
				return prefix
			}
			if r := keyAtLine(c, line, prefix); r != "" {
				return r
			}
		}
	}
	return ""
}

// applyEnv applies WM_* environment overrides.
func (c *Config) applyEnv(getenv func(string) string) error {
	str := map[string]*string{
		"WM_LISTEN":       &c.Listen,
		"WM_DATA_DIR":     &c.DataDir,
		"WM_SERVER_NAME":  &c.ServerName,
		"WM_LOG_LEVEL":    &c.LogLevel,
		"WM_KEYS_DIR":     &c.KeysDir,
		"WM_GITLAB_URL":   &c.GitLab.URL,
		"WM_METRICS_ADDR": &c.MetricsAddr,
	}
	for k, p := range str {
		if v := getenv(k); v != "" {
			*p = v
		}
	}
	if v := getenv("WM_TAS"); v != "" {
		c.TAs = splitList(v)
	}
	if v := getenv("WM_GITLAB_TOKEN"); v != "" {
		c.GitLab.token = v
	}
	if v := getenv("WM_DOCKER"); v != "" {
		switch v {
		case "on", "true", "1":
			c.Docker.Enabled = true
		case "off", "false", "0":
			c.Docker.Enabled = false
		default:
			return fmt.Errorf("config: WM_DOCKER=%q: use on or off", v)
		}
	}
	if v := getenv("WM_DOCKER_HOST"); v != "" {
		c.Docker.Host = v
	}
	if v := getenv("WM_GITLAB_TA_GROUP"); v != "" {
		c.GitLab.TAGroup = v
	}
	return nil
}

func splitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' })
}

var userName = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$`)

// validate checks every field and names the first bad one.
func (c *Config) validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("config: %s: %s", field, fmt.Sprintf(format, a...))
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		return bad("listen", "%q is not host:port (%v)", c.Listen, err)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return bad("listen", "port %q is not a number from 0 to 65535", port)
	}
	if c.MetricsAddr != "" {
		if _, port, err := net.SplitHostPort(c.MetricsAddr); err != nil {
			return bad("metrics_addr", "%q is not host:port (%v)", c.MetricsAddr, err)
		} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
			return bad("metrics_addr", "port %q is not a number from 0 to 65535", port)
		}
	}
	if strings.TrimSpace(c.DataDir) == "" {
		return bad("data_dir", "must not be empty")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		return bad("log_level", "%v", err)
	}
	if c.Recordings.Retention < 0 {
		return bad("recordings.retention", "must not be negative (0 keeps recordings)")
	}
	if c.Recordings.MaxSize <= 0 {
		return bad("recordings.max_size", "must be positive, such as 100m")
	}
	if c.Recordings.AllShells && !c.Recordings.Enabled {
		return bad("recordings.all_shells", "needs recordings.enabled")
	}
	for _, u := range c.TAs {
		if !userName.MatchString(u) {
			return bad("tas", "%q is not a valid user name", u)
		}
	}
	if g := c.GitLab; g.URL != "" {
		if !strings.HasPrefix(g.URL, "http://") && !strings.HasPrefix(g.URL, "https://") {
			return bad("gitlab.url", "%q must start with http:// or https://", g.URL)
		}
		if g.TAMinAccess < 10 || g.TAMinAccess > 50 {
			return bad("gitlab.ta_min_access_level", "%d is not a GitLab access level (10 guest .. 50 owner)", g.TAMinAccess)
		}
		switch {
		case g.CacheTTL <= 0:
			return bad("gitlab.cache_ttl", "must be positive")
		case g.StaleFor < 0:
			return bad("gitlab.stale_for", "must not be negative")
		case g.RequestTimeout <= 0:
			return bad("gitlab.request_timeout", "must be positive")
		}
	} else if c.GitLab.TAGroup != "" {
		return bad("gitlab.ta_group", "set, but gitlab.url is empty")
	}
	l := c.Limits
	switch {
	case l.MaxAuthTries < 1 || l.MaxAuthTries > 100:
		return bad("limits.max_auth_tries", "%d is not from 1 to 100", l.MaxAuthTries)
	case l.LoginGrace <= 0:
		return bad("limits.login_grace", "must be positive")
	case l.IdleTimeout <= 0:
		return bad("limits.idle_timeout", "must be positive")
	case l.MaxSessionsPerUser < 1:
		return bad("limits.max_sessions_per_user", "must be at least 1")
	case l.FailuresPerMinute < 1:
		return bad("limits.failures_per_minute", "must be at least 1")
	case l.ShutdownGrace < 0:
		return bad("limits.shutdown_grace", "must not be negative")
	case l.MaxForwards < 1:
		return bad("limits.max_forwards", "must be at least 1")
	}
	if _, err := l.startups(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if err := c.validateShared(); err != nil {
		return err
	}
	if c.Docker.Enabled {
		if _, err := c.dockerPolicy(); err != nil {
			return err
		}
	}
	if c.Kubernetes.Enabled() {
		if _, err := c.kubePolicy(); err != nil {
			return err
		}
	}
	if err := c.Images.Validate(); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	for i, r := range c.Images.RegistryAuth {
		field := fmt.Sprintf("images.registry_auth[%d]", i)
		switch {
		case r.Registry == "":
			return bad(field+".registry", "must not be empty")
		case r.Username == "":
			return bad(field+".username", "must not be empty")
		case r.TokenFile == "":
			return bad(field+".token_file", "must name a file holding the token (chmod 600)")
		}
	}
	// Hosts and duplicates are checked by the image service, with placeholder tokens.
	creds := c.Images.credentials()
	for i := range creds {
		creds[i].Password = "x"
	}
	if _, err := docker.NewImageService(nil, c.Images.ImagePolicy, creds); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	switch s := c.Images.SIF; {
	case s.Quota < 0:
		return bad("images.sif.quota", "must not be negative")
	case s.MaxBuilds < 0:
		return bad("images.sif.max_builds", "must not be negative")
	}
	if err := c.validateRunners(); err != nil {
		return err
	}
	return c.validatePresets()
}

// loadToken reads the GitLab token from token_file unless the environment gave one. The file
// must not be readable by group or others.
// The registry tokens of images.registry_auth are read the same way.
func (c *Config) loadToken() error {
	for i := range c.Images.RegistryAuth {
		r := &c.Images.RegistryAuth[i]
		tok, err := readSecret(fmt.Sprintf("images.registry_auth[%d].token_file", i), r.TokenFile)
		if err != nil {
			return err
		}
		if tok == "" {
			return fmt.Errorf("config: images.registry_auth[%d].token_file: %s is empty", i, r.TokenFile)
		}
		r.token = tok
	}
	g := &c.GitLab
	if g.URL == "" || g.token != "" || g.TokenFile == "" {
		return nil
	}
	tok, err := readSecret("gitlab.token_file", g.TokenFile)
	if err != nil {
		return err
	}
	g.token = tok
	return nil
}

// readSecret reads a token from path, which must be readable by its owner only; field names
// the setting in errors.
func readSecret(field, path string) (string, error) {
	st, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", field, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("config: %s: %s has permissions %04o; it must be readable by its owner only (chmod 600)", field, path, st.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("config: %s: %w", field, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("%q is not debug, info, warn or error", s)
}
