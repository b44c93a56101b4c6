package main

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// envMap is a getenv backed by a map, so tests never read the real environment.
func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeFile writes body to a new file in a fresh temporary directory and returns its path.
func writeFile(t *testing.T, name, body string, perm os.FileMode) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(body), perm); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, perm); err != nil { // WriteFile's mode is subject to the umask
		t.Fatal(err)
	}
	return path
}

func TestDefaultConfigIsValid(t *testing.T) {
	c := defaultConfig()
	if err := c.validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	// The values README.md documents.
	checks := []struct {
		name      string
		got, want any
	}{
		{"listen", c.Listen, ":2222"},
		{"data_dir", c.DataDir, "./data"},
		{"log_level", c.LogLevel, "info"},
		{"host_keys.rsa", c.HostKeys.RSA, false},
		{"keys_dir", c.KeysDir, ""},
		{"gitlab.url", c.GitLab.URL, ""},
		{"gitlab.ta_min_access_level", c.GitLab.TAMinAccess, 30},
		{"gitlab.cache_ttl", c.GitLab.CacheTTL, 60 * time.Second},
		{"gitlab.stale_for", c.GitLab.StaleFor, time.Hour},
		{"gitlab.request_timeout", c.GitLab.RequestTimeout, 10 * time.Second},
		{"limits.max_auth_tries", c.Limits.MaxAuthTries, 6},
		{"limits.login_grace", c.Limits.LoginGrace, 30 * time.Second},
		{"limits.idle_timeout", c.Limits.IdleTimeout, time.Hour},
		{"limits.max_sessions_per_user", c.Limits.MaxSessionsPerUser, 10},
		{"limits.failures_per_minute", c.Limits.FailuresPerMinute, 10},
		{"limits.shutdown_grace", c.Limits.ShutdownGrace, 10 * time.Second},
		{"limits.max_startups", c.Limits.MaxStartups, "10:30:100"},
		{"limits.per_source_max_startups", c.Limits.PerSourceMaxStartups, 20},
		{"limits.max_forwards", c.Limits.MaxForwards, 64},
		{"docker.waiting", c.Docker.Waiting, WaitingConfig{Window: 24 * time.Hour, MaxPerUser: 1, HoldWarning: 15 * time.Minute}},
		{"docker.idle.student", c.Docker.Idle.Student, IdleConfig{After: 24 * time.Hour, GPUAfter: 2 * time.Hour, CPUBelow: 5, GPUBelow: 5, WarnBefore: 30 * time.Minute}},
		{"docker.idle.ta", c.Docker.Idle.TA, IdleConfig{CPUBelow: 5, GPUBelow: 5, WarnBefore: 30 * time.Minute}},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("default %s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
}

func TestConfigFileIsMerged(t *testing.T) {
	path := writeFile(t, "wm.yaml", `
listen: "127.0.0.1:2300"
data_dir: /srv/wm
server_name: gpu1
log_level: debug
host_keys:
  rsa: true
tas: [tanaka, suzuki]
gitlab:
  url: https://gitlab.example.com
  ta_group: dept/tas
  ta_min_access_level: 40
  cache_ttl: 30s
limits:
  max_sessions_per_user: 3
  shutdown_grace: 2s
`, 0o600)
	c := defaultConfig()
	if err := c.loadFile(path); err != nil {
		t.Fatalf("loadFile: %v", err)
	}
	if err := c.validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	if c.Listen != "127.0.0.1:2300" || c.DataDir != "/srv/wm" || c.ServerName != "gpu1" || c.LogLevel != "debug" || !c.HostKeys.RSA {
		t.Errorf("top-level fields not taken from the file: %+v", c)
	}
	if !reflect.DeepEqual(c.TAs, []string{"tanaka", "suzuki"}) {
		t.Errorf("tas = %q", c.TAs)
	}
	g := c.GitLab
	if g.URL != "https://gitlab.example.com" || g.TAGroup != "dept/tas" || g.TAMinAccess != 40 || g.CacheTTL != 30*time.Second {
		t.Errorf("gitlab section not taken from the file: %+v", g)
	}
	if g.StaleFor != time.Hour || g.RequestTimeout != 10*time.Second {
		t.Errorf("gitlab fields absent from the file lost their defaults: %+v", g)
	}
	if c.Limits.MaxSessionsPerUser != 3 || c.Limits.ShutdownGrace != 2*time.Second || c.Limits.MaxAuthTries != 6 {
		t.Errorf("limits = %+v", c.Limits)
	}
}

func TestConfigFileEmptyKeepsDefaults(t *testing.T) {
	path := writeFile(t, "empty.yaml", "# nothing here\n", 0o600)
	c := defaultConfig()
	if err := c.loadFile(path); err != nil {
		t.Fatalf("an empty file is refused: %v", err)
	}
	if !reflect.DeepEqual(c, defaultConfig()) {
		t.Errorf("an empty file changed the configuration: %+v", c)
	}
}

func TestConfigFileRefused(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // all must appear in the error
	}{
		{"unknown top-level field", "listen: \":2222\"\nlisten_addr: \":2223\"\n", []string{"listen_addr", "line 2"}},
		{"unknown field in gitlab", "gitlab:\n  url: https://gitlab.example.com\n  tokn: abc\n", []string{"gitlab.tokn (line 3): unknown field tokn"}},
		{"unknown field in limits", "limits:\n  max_sesions_per_user: 3\n", []string{"max_sesions_per_user"}},
		{"token is never read from the YAML", "gitlab:\n  token: secret\n", []string{"token"}},
		{"duration that is not one", "limits:\n  login_grace: banana\n", []string{"limits.login_grace (line 2)", "banana"}},
		{"list that is a string", "tas: tanaka\n", []string{"tas (line 1)"}},
		{"size that is not one", "docker:\n  default_memory: lots\n", []string{"docker.default_memory (line 2)", "lots"}},
		{"number that is not one", "limits:\n  max_auth_tries: many\n", []string{"many", "line 2"}},
		{"list given as a string", "tas: tanaka\n", []string{"tanaka", "line 1"}},
		{"not YAML", "listen: [\n", []string{"wm.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, "wm.yaml", tt.yaml, 0o600)
			c := defaultConfig()
			err := c.loadFile(path)
			if err == nil {
				t.Fatalf("accepted:\n%s", tt.yaml)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestConfigFileMissing(t *testing.T) {
	c := defaultConfig()
	missing := filepath.Join(t.TempDir(), "nope.yaml")
	err := c.loadFile(missing)
	if err == nil || !strings.Contains(err.Error(), missing) {
		t.Fatalf("loadFile(missing) = %v, want an error naming the file", err)
	}
}

func TestConfigValidateRefusesBadValues(t *testing.T) {
	withGitLab := func(c *Config) { c.GitLab.URL = "https://gitlab.example.com" }
	tests := []struct {
		name  string
		edit  func(*Config)
		field string // must appear in the error as "config: <field>:"
		also  string // and this too, when set (usually the bad value)
	}{
		{"listen without a port", func(c *Config) { c.Listen = "localhost" }, "listen", "localhost"},
		{"listen port too large", func(c *Config) { c.Listen = ":65536" }, "listen", "65536"},
		{"listen port not a number", func(c *Config) { c.Listen = "127.0.0.1:ssh" }, "listen", "ssh"},
		{"listen empty", func(c *Config) { c.Listen = "" }, "listen", ""},
		{"data_dir empty", func(c *Config) { c.DataDir = "" }, "data_dir", ""},
		{"data_dir blank", func(c *Config) { c.DataDir = "   " }, "data_dir", ""},
		{"log_level unknown", func(c *Config) { c.LogLevel = "verbose" }, "log_level", "verbose"},
		{"log_level empty", func(c *Config) { c.LogLevel = "" }, "log_level", ""},
		{"recordings.retention negative", func(c *Config) { c.Recordings.Retention = -time.Hour }, "recordings.retention", ""},
		{"recordings.max_size zero", func(c *Config) { c.Recordings.MaxSize = 0 }, "recordings.max_size", ""},
		{"recordings.all_shells without recordings", func(c *Config) { c.Recordings.Enabled, c.Recordings.AllShells = false, true }, "recordings.all_shells", ""},
		{"tas with a space", func(c *Config) { c.TAs = []string{"tanaka", "bad name"} }, "tas", "bad name"},
		{"tas with a slash", func(c *Config) { c.TAs = []string{"../root"} }, "tas", "../root"},
		{"tas starting with a dash", func(c *Config) { c.TAs = []string{"-rf"} }, "tas", "-rf"},
		{"tas empty name", func(c *Config) { c.TAs = []string{""} }, "tas", ""},
		{"gitlab.url ftp scheme", func(c *Config) { c.GitLab.URL = "ftp://gitlab.example.com" }, "gitlab.url", "ftp://"},
		{"gitlab.url without scheme", func(c *Config) { c.GitLab.URL = "gitlab.example.com" }, "gitlab.url", "gitlab.example.com"},
		{"ta_min_access_level too low", func(c *Config) { withGitLab(c); c.GitLab.TAMinAccess = 5 }, "gitlab.ta_min_access_level", "5"},
		{"ta_min_access_level too high", func(c *Config) { withGitLab(c); c.GitLab.TAMinAccess = 60 }, "gitlab.ta_min_access_level", "60"},
		{"cache_ttl zero", func(c *Config) { withGitLab(c); c.GitLab.CacheTTL = 0 }, "gitlab.cache_ttl", ""},
		{"request_timeout negative", func(c *Config) { withGitLab(c); c.GitLab.RequestTimeout = -time.Second }, "gitlab.request_timeout", ""},
		{"stale_for negative", func(c *Config) { withGitLab(c); c.GitLab.StaleFor = -time.Second }, "gitlab.stale_for", ""},
		{"ta_group without url", func(c *Config) { c.GitLab.TAGroup = "dept/tas" }, "gitlab.ta_group", ""},
		{"max_auth_tries zero", func(c *Config) { c.Limits.MaxAuthTries = 0 }, "limits.max_auth_tries", "0"},
		{"max_auth_tries too many", func(c *Config) { c.Limits.MaxAuthTries = 101 }, "limits.max_auth_tries", "101"},
		{"login_grace zero", func(c *Config) { c.Limits.LoginGrace = 0 }, "limits.login_grace", ""},
		{"idle_timeout negative", func(c *Config) { c.Limits.IdleTimeout = -time.Minute }, "limits.idle_timeout", ""},
		{"max_sessions_per_user zero", func(c *Config) { c.Limits.MaxSessionsPerUser = 0 }, "limits.max_sessions_per_user", ""},
		{"failures_per_minute zero", func(c *Config) { c.Limits.FailuresPerMinute = 0 }, "limits.failures_per_minute", ""},
		{"failures_per_minute negative", func(c *Config) { c.Limits.FailuresPerMinute = -1 }, "limits.failures_per_minute", ""},
		{"shutdown_grace negative", func(c *Config) { c.Limits.ShutdownGrace = -time.Second }, "limits.shutdown_grace", ""},
		{"max_startups words", func(c *Config) { c.Limits.MaxStartups = "lots" }, "limits.max_startups", "lots"},
		{"max_startups two numbers", func(c *Config) { c.Limits.MaxStartups = "10:30" }, "limits.max_startups", "10:30"},
		{"max_startups hard under soft", func(c *Config) { c.Limits.MaxStartups = "10:30:5" }, "limits.max_startups", "10:30:5"},
		{"max_startups rate over 100", func(c *Config) { c.Limits.MaxStartups = "10:130:100" }, "limits.max_startups", "130"},
		{"per_source_max_startups zero", func(c *Config) { c.Limits.PerSourceMaxStartups = 0 }, "limits.per_source_max_startups", ""},
		{"max_forwards zero", func(c *Config) { c.Limits.MaxForwards = 0 }, "limits.max_forwards", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			tt.edit(&c)
			err := c.validate()
			if err == nil {
				t.Fatalf("accepted: %+v", c)
			}
			if !strings.Contains(err.Error(), "config: "+tt.field+":") {
				t.Errorf("error %q does not name the field %s", err, tt.field)
			}
			if tt.also != "" && !strings.Contains(err.Error(), tt.also) {
				t.Errorf("error %q does not mention %q", err, tt.also)
			}
		})
	}
}

func TestConfigValidateAcceptsEdgeValues(t *testing.T) {
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{"port 0 (any free port)", func(c *Config) { c.Listen = "127.0.0.1:0" }},
		{"IPv6 listen", func(c *Config) { c.Listen = "[::1]:2222" }},
		{"each log level", func(c *Config) { c.LogLevel = "warn" }},
		{"log level error", func(c *Config) { c.LogLevel = "error" }},
		{"gitlab http", func(c *Config) { c.GitLab.URL = "http://127.0.0.1:8080" }},
		{"gitlab owner level", func(c *Config) { c.GitLab.URL = "https://g.example"; c.GitLab.TAMinAccess = 50 }},
		{"gitlab guest level", func(c *Config) { c.GitLab.URL = "https://g.example"; c.GitLab.TAMinAccess = 10 }},
		{"stale_for zero", func(c *Config) { c.GitLab.URL = "https://g.example"; c.GitLab.StaleFor = 0 }},
		{"tas with dots and dashes", func(c *Config) { c.TAs = []string{"t.tanaka", "ta_2", "a-b"} }},
		{"shutdown_grace zero", func(c *Config) { c.Limits.ShutdownGrace = 0 }},
		{"one try, one session, one failure", func(c *Config) {
			c.Limits.MaxAuthTries, c.Limits.MaxSessionsPerUser, c.Limits.FailuresPerMinute = 1, 1, 1
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			tt.edit(&c)
			if err := c.validate(); err != nil {
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

func TestConfigEnvOverrides(t *testing.T) {
	c := defaultConfig()
	env := map[string]string{
		"WM_LISTEN":          "127.0.0.1:2401",
		"WM_DATA_DIR":        "/var/lib/wm",
		"WM_SERVER_NAME":     "gpu9",
		"WM_LOG_LEVEL":       "warn",
		"WM_KEYS_DIR":        "/etc/wm/keys",
		"WM_TAS":             "tanaka, suzuki,sato",
		"WM_GITLAB_URL":      "https://gitlab.example.com",
		"WM_GITLAB_TOKEN":    "glpat-secret",
		"WM_GITLAB_TA_GROUP": "dept/tas",
	}
	if err := c.applyEnv(envMap(env)); err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil {
		t.Fatalf("validate: %v", err)
	}
	want := defaultConfig()
	want.Listen = "127.0.0.1:2401"
	want.DataDir = "/var/lib/wm"
	want.ServerName = "gpu9"
	want.LogLevel = "warn"
	want.KeysDir = "/etc/wm/keys"
	want.TAs = []string{"tanaka", "suzuki", "sato"}
	want.GitLab.URL = "https://gitlab.example.com"
	want.GitLab.token = "glpat-secret"
	want.GitLab.TAGroup = "dept/tas"
	if !reflect.DeepEqual(c, want) {
		t.Errorf("after env:\n got %+v\nwant %+v", c, want)
	}
}

func TestConfigEnvEmptyChangesNothing(t *testing.T) {
	c := defaultConfig()
	c.TAs = []string{"tanaka"}
	if err := c.applyEnv(envMap(map[string]string{"WM_LISTEN": "", "WM_TAS": ""})); err != nil {
		t.Fatal(err)
	}
	want := defaultConfig()
	want.TAs = []string{"tanaka"}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("empty variables changed the configuration: %+v", c)
	}
}

func TestConfigEnvBeatsFile(t *testing.T) {
	path := writeFile(t, "wm.yaml", "listen: \"127.0.0.1:1111\"\ntas: [fromfile]\ngitlab:\n  url: https://file.example\n", 0o600)
	c := defaultConfig()
	if err := c.loadFile(path); err != nil {
		t.Fatal(err)
	}
	_ = c.applyEnv(envMap(map[string]string{"WM_LISTEN": "127.0.0.1:2222", "WM_TAS": "fromenv", "WM_GITLAB_URL": "https://env.example"}))
	if c.Listen != "127.0.0.1:2222" || !reflect.DeepEqual(c.TAs, []string{"fromenv"}) || c.GitLab.URL != "https://env.example" {
		t.Errorf("env did not win over the file: listen %q tas %q url %q", c.Listen, c.TAs, c.GitLab.URL)
	}
}

// runOut runs the command line with a fake environment and returns the exit status and
// what it wrote.
func runOut(args []string, env map[string]string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(args, envMap(env), &out, &errb)
	return code, out.String(), errb.String()
}

// TestRunPrecedence checks flag > environment > file on the real command line. Every
// candidate value is one that validation refuses, quoted back in the error, so the error
// shows which one won and the server never starts.
func TestRunPrecedence(t *testing.T) {
	cfgPath := writeFile(t, "wm.yaml", "listen: \"127.0.0.1:fromfile\"\n", 0o600)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"file alone", []string{"--config", cfgPath}, nil, "fromfile"},
		{"file via WM_CONFIG", nil, map[string]string{"WM_CONFIG": cfgPath}, "fromfile"},
		{"env beats file", []string{"--config", cfgPath}, map[string]string{"WM_LISTEN": "127.0.0.1:fromenv"}, "fromenv"},
		{"flag beats env and file", []string{"--config", cfgPath, "--listen", "127.0.0.1:fromflag"},
			map[string]string{"WM_LISTEN": "127.0.0.1:fromenv"}, "fromflag"},
		{"flag beats env, explicit serve", []string{"serve", "--listen=127.0.0.1:fromflag"},
			map[string]string{"WM_LISTEN": "127.0.0.1:fromenv"}, "fromflag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runOut(tt.args, tt.env)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, "config: listen:") || !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr does not show %q winning for listen:\n%s", tt.want, stderr)
			}
		})
	}
}

// TestRunDataDirPrecedence does the same for data_dir: each candidate lies under a regular
// file, so creating it fails before anything listens, and the error names the winner.
func TestRunDataDirPrecedence(t *testing.T) {
	blocker := writeFile(t, "not-a-dir", "x", 0o600)
	cfgPath := writeFile(t, "wm.yaml", "listen: \"127.0.0.1:0\"\ndata_dir: "+filepath.Join(blocker, "fromfile")+"\n", 0o600)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"file", []string{"--config", cfgPath}, nil, "fromfile"},
		{"env beats file", []string{"--config", cfgPath}, map[string]string{"WM_DATA_DIR": filepath.Join(blocker, "fromenv")}, "fromenv"},
		{"flag beats env", []string{"--config", cfgPath, "--data-dir", filepath.Join(blocker, "fromflag")},
			map[string]string{"WM_DATA_DIR": filepath.Join(blocker, "fromenv")}, "fromflag"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := runOut(tt.args, tt.env)
			if code != 1 {
				t.Fatalf("exit %d, want 1; stderr:\n%s", code, stderr)
			}
			if !strings.Contains(stderr, filepath.Join(blocker, tt.want)) {
				t.Errorf("stderr does not name the %s data directory:\n%s", tt.want, stderr)
			}
		})
	}
}

func TestRunRefusesBadConfigFile(t *testing.T) {
	path := writeFile(t, "wm.yaml", "listen: \":2222\"\nlimits:\n  shutdown_grase: 5s\n", 0o600)
	code, _, stderr := runOut([]string{"--config", path}, nil)
	if code != 1 || !strings.Contains(stderr, "shutdown_grase") {
		t.Fatalf("exit %d, stderr %q; want 1 naming shutdown_grase", code, stderr)
	}
}

func TestTokenFile(t *testing.T) {
	t.Run("0600 is read and trimmed", func(t *testing.T) {
		path := writeFile(t, "token", "  glpat-abc\n", 0o600)
		c := defaultConfig()
		c.GitLab.URL = "https://gitlab.example.com"
		c.GitLab.TokenFile = path
		if err := c.loadToken(); err != nil {
			t.Fatal(err)
		}
		if c.GitLab.token != "glpat-abc" {
			t.Errorf("token = %q", c.GitLab.token)
		}
	})
	for _, perm := range []os.FileMode{0o644, 0o640, 0o604, 0o660} {
		t.Run("refused "+perm.String(), func(t *testing.T) {
			path := writeFile(t, "token", "glpat-abc\n", perm)
			c := defaultConfig()
			c.GitLab.URL = "https://gitlab.example.com"
			c.GitLab.TokenFile = path
			err := c.loadToken()
			if err == nil {
				t.Fatalf("a token file with mode %v was accepted", perm)
			}
			if !strings.Contains(err.Error(), "gitlab.token_file") || !strings.Contains(err.Error(), "chmod 600") {
				t.Errorf("error %q should name gitlab.token_file and say chmod 600", err)
			}
			if c.GitLab.token != "" {
				t.Errorf("token was read anyway")
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		c := defaultConfig()
		c.GitLab.URL = "https://gitlab.example.com"
		c.GitLab.TokenFile = filepath.Join(t.TempDir(), "none")
		if err := c.loadToken(); err == nil || !strings.Contains(err.Error(), "gitlab.token_file") {
			t.Fatalf("loadToken = %v, want an error naming gitlab.token_file", err)
		}
	})
	t.Run("env token wins over the file", func(t *testing.T) {
		path := writeFile(t, "token", "from-file\n", 0o600)
		c := defaultConfig()
		c.GitLab.URL = "https://gitlab.example.com"
		c.GitLab.TokenFile = path
		_ = c.applyEnv(envMap(map[string]string{"WM_GITLAB_TOKEN": "from-env"}))
		if err := c.loadToken(); err != nil {
			t.Fatal(err)
		}
		if c.GitLab.token != "from-env" {
			t.Errorf("token = %q, want from-env", c.GitLab.token)
		}
	})
	t.Run("run refuses a 0644 token file", func(t *testing.T) {
		path := writeFile(t, "token", "glpat-abc\n", 0o644)
		cfg := writeFile(t, "wm.yaml", "listen: \"127.0.0.1:0\"\ngitlab:\n  url: http://127.0.0.1:1\n  token_file: "+path+"\n", 0o600)
		code, _, stderr := runOut([]string{"--config", cfg, "--data-dir", t.TempDir()}, nil)
		if code != 1 || !strings.Contains(stderr, "gitlab.token_file") || !strings.Contains(stderr, "0644") {
			t.Fatalf("exit %d, stderr %q; want 1 naming gitlab.token_file and 0644", code, stderr)
		}
	})
}

func TestRunSubcommands(t *testing.T) {
	t.Run("bogus", func(t *testing.T) {
		code, stdout, stderr := runOut([]string{"bogus"}, nil)
		if code != 2 {
			t.Errorf("exit %d, want 2", code)
		}
		if !strings.Contains(stderr, `unknown command "bogus"`) || !strings.Contains(stderr, "Usage:") {
			t.Errorf("stderr %q should name the command and show the usage", stderr)
		}
		if stdout != "" {
			t.Errorf("stdout %q, want nothing", stdout)
		}
	})
	t.Run("version", func(t *testing.T) {
		code, stdout, stderr := runOut([]string{"version"}, nil)
		if code != 0 || stdout != "whalemountain "+version+"\n" || stderr != "" {
			t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
		}
	})
	t.Run("help", func(t *testing.T) {
		code, stdout, _ := runOut([]string{"help"}, nil)
		if code != 0 || !strings.Contains(stdout, "WM_GITLAB_TOKEN") || !strings.Contains(stdout, "--data-dir") {
			t.Errorf("exit %d, stdout %q", code, stdout)
		}
	})
	t.Run("unknown flag", func(t *testing.T) {
		code, _, stderr := runOut([]string{"serve", "--lisen", ":1"}, nil)
		if code != 2 || !strings.Contains(stderr, "lisen") {
			t.Errorf("exit %d, stderr %q; want 2 naming the flag", code, stderr)
		}
	})
	t.Run("extra argument", func(t *testing.T) {
		code, _, stderr := runOut([]string{"serve", "now"}, nil)
		if code != 2 || !strings.Contains(stderr, `"now"`) {
			t.Errorf("exit %d, stderr %q; want 2 naming the argument", code, stderr)
		}
	})
	t.Run("bad env value", func(t *testing.T) {
		code, _, stderr := runOut(nil, map[string]string{"WM_LOG_LEVEL": "loud"})
		if code != 1 || !strings.Contains(stderr, "log_level") || !strings.Contains(stderr, "loud") {
			t.Errorf("exit %d, stderr %q; want 1 naming log_level", code, stderr)
		}
	})
}

func TestImagesSection(t *testing.T) {
	token := writeFile(t, "registry-token", "glpat-deploy\n", 0o600)
	path := writeFile(t, "wm.yaml", `images:
  allow: ["ubuntu", "registry.ie.example/**"]
  registry_namespace: registry.ie.example
  internal_registries: ["10.0.0.5:5000", "harbor.ie.example"]
  registry_auth:
    - registry: registry.ie.example
      username: wm-deploy
      token_file: `+token+`
      shared: ["registry.ie.example/courses/**"]
  sif:
    quota: 5g
    max_builds: 3
`, 0o600)
	c := defaultConfig()
	if err := c.loadFile(path); err != nil {
		t.Fatal(err)
	}
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	if err := c.loadToken(); err != nil {
		t.Fatal(err)
	}
	im := c.Images
	if len(im.Allow) != 2 || im.RegistryNamespace != "registry.ie.example" || im.SIF.Quota != 5<<30 || im.SIF.MaxBuilds != 3 ||
		!slices.Equal(im.InternalRegistries, []string{"10.0.0.5:5000", "harbor.ie.example"}) {
		t.Errorf("images: %+v", im)
	}
	creds := im.credentials()
	if len(creds) != 1 || creds[0].Registry != "registry.ie.example" || creds[0].Username != "wm-deploy" || creds[0].Password != "glpat-deploy" ||
		len(creds[0].Shared) != 1 {
		t.Errorf("credentials %v", creds)
	}
	if d := defaultConfig().Images.SIF; d.Quota <= 0 || d.MaxBuilds <= 0 {
		t.Errorf("default SIF settings %+v", d)
	}

	for _, tt := range []struct {
		name, yaml, want string
	}{
		{"token in the yaml", "images:\n  registry_auth:\n    - registry: r.example\n      username: u\n      token: abc\n", "unknown field token"},
		{"no registry", "images:\n  registry_auth:\n    - username: u\n      token_file: /x\n", "images.registry_auth[0].registry"},
		{"no token file", "images:\n  registry_auth:\n    - registry: r.example\n      username: u\n", "images.registry_auth[0].token_file"},
		{"url as registry", "images:\n  registry_auth:\n    - registry: https://r.example\n      username: u\n      token_file: /x\n", "images.registry_auth[0].registry"},
		{"negative quota", "images:\n  sif:\n    quota: -1\n", "images.sif.quota"},
		{"bad shared pattern", "images:\n  registry_auth:\n    - registry: r.example\n      username: u\n      token_file: /x\n      shared: [\"a b\"]\n", "images.registry_auth[0].shared"},
		{"sif typo", "images:\n  sif:\n    qouta: 1g\n", "images.sif.qouta"},
		{"url as internal registry", "images:\n  internal_registries: [\"https://10.0.0.5\"]\n", "images.internal_registries[0]"},
		{"path in internal registry", "images:\n  internal_registries: [harbor.ie.example, 10.0.0.5/x]\n", "images.internal_registries[1]"},
		{"internal registry not a list", "images:\n  internal_registries: 10.0.0.5\n", "internal_registries"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := defaultConfig()
			err := c.loadFile(writeFile(t, "wm.yaml", tt.yaml, 0o600))
			if err == nil {
				err = c.validate()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %v, want one naming %s", err, tt.want)
			}
		})
	}

	open := writeFile(t, "registry-token", "glpat-deploy\n", 0o644)
	c = defaultConfig()
	c.Images.RegistryAuth = []RegistryAuth{{Registry: "r.example", Username: "u", TokenFile: open}}
	if err := c.loadToken(); err == nil || !strings.Contains(err.Error(), "images.registry_auth[0].token_file") || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("0644 token file: %v", err)
	}
}

// The waiting list's and the idle culling's keys reach the container policy, and bad values
// stop the server with a message naming them.
func TestFairGPUConfig(t *testing.T) {
	c := defaultConfig()
	path := writeFile(t, "wm.yaml", "docker:\n  waiting:\n    window: 48h\n    max_per_user: 2\n    max_hold: 6h\n    hold_warning: 10m\n"+
		"  idle:\n    student: {after: 8h, gpu_after: 1h, cpu_below: 3, gpu_below: 2, warn_before: 15m}\n"+
		"presets:\n  - {name: exam, image: busybox, idle_exempt: true}\n  - {name: ml, image: busybox, gpu_idle_after: 30m}\n", 0o600)
	if err := c.loadFile(path); err != nil {
		t.Fatal(err)
	}
	d, err := c.Docker.backend()
	if err != nil {
		t.Fatal(err)
	}
	if w := d.Waiting; w.Window != 48*time.Hour || w.MaxPerUser != 2 || w.MaxHold != 6*time.Hour || w.HoldWarning != 10*time.Minute {
		t.Errorf("waiting %+v", w)
	}
	if p := d.IdleStudent; p.After != 8*time.Hour || p.GPUAfter != time.Hour || p.CPUBelow != 3 || p.GPUBelow != 2 || p.WarnBefore != 15*time.Minute {
		t.Errorf("idle.student %+v", p)
	}
	if ps := c.presets(); !ps[0].IdleExempt || ps[1].GPUIdleAfter != 30*time.Minute {
		t.Errorf("presets %+v", ps)
	}
	for _, tc := range []struct{ yaml, want string }{
		{"docker:\n  idle:\n    student: {after: 1h, gpu_after: 20m, warn_before: 30m}\n", "IdleStudent: warn_before (30m0s) must be shorter than after and gpu_after"},
		{"docker:\n  waiting:\n    max_per_user: 0\n", "Waiting.MaxPerUser must be between 1 and 100 (got 0)"},
		{"docker:\n  waiting:\n    max_hold: 10m\n    hold_warning: 15m\n", "Waiting.HoldWarning must be between 0 and MaxHold"},
		{"docker:\n  idle:\n    ta: {cpu_below: -1}\n", "IdleTA: cpu_below and gpu_below must be percentages"},
	} {
		c := defaultConfig()
		if err := c.loadFile(writeFile(t, "bad.yaml", tc.yaml, 0o600)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Docker.backend(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
