package docker

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/moby/moby/api/types/container"

	"whalemountain/backend"
)

func TestConfigValidateNamesTheField(t *testing.T) {
	cases := []struct {
		field  string
		change func(*Config)
	}{
		{"NamePrefix", func(c *Config) { c.NamePrefix = "WM" }},
		{"NamePrefix", func(c *Config) { c.NamePrefix = "" }},
		{"Host", func(c *Config) { c.Host = "/var/run/docker.sock" }},
		{"Labels", func(c *Config) { c.Labels = map[string]string{LabelOwner: "x"} }},
		{"Labels", func(c *Config) { c.Labels = map[string]string{"Bad Key": "x"} }},
		{"Capabilities", func(c *Config) { c.Capabilities = []string{"CHOWN", "ALL"} }},
		{"Capabilities", func(c *Config) { c.Capabilities = []string{"SYS_ADMINN"} }},
		{"PidsLimit", func(c *Config) { c.PidsLimit = 0 }},
		{"StopTimeout", func(c *Config) { c.StopTimeout = -1 }},
		{"HomeHostPath", func(c *Config) { c.HomeHostPath = "srv/home/{user}" }},
		{"HomeHostPath", func(c *Config) { c.HomeHostPath = "/srv/home" }},
		{"HomeHostPath", func(c *Config) { c.HomeHostPath = "/srv/../home/{user}" }},
		{"HomeHostPath", func(c *Config) { c.HomeHostPath = "/var/run/docker.sock/{user}" }},
		{"HomeTarget", func(c *Config) { c.HomeTarget = "" }},
		{"Student.MaxContainers", func(c *Config) { c.Student.MaxContainers = 0 }},
		{"Student.MaxRunning", func(c *Config) { c.Student.MaxRunning = 6 }},
		{"TA.MaxCPUs", func(c *Config) { c.TA.MaxCPUs = 0 }},
		{"TA.MaxMemory", func(c *Config) { c.TA.MaxMemory = 1024 }},
		{"DefaultCPUs", func(c *Config) { c.DefaultCPUs = 3 }},
		{"DefaultMemory", func(c *Config) { c.DefaultMemory = 5 * gib }},
		{"DefaultCPUs", func(c *Config) { c.DefaultCPUs = 0 }},
	}
	for _, tc := range cases {
		cfg := DefaultConfig()
		tc.change(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.field+" ") {
			t.Errorf("%s: got %v", tc.field, err)
		}
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	cfg := DefaultConfig()
	cfg.HomeHostPath = "/srv/home/{user}"
	cfg.Capabilities = []string{"cap_chown", "KILL"}
	if err := cfg.Validate(); err != nil {
		t.Errorf("host path home: %v", err)
	}
	if got := cfg.capabilities(); strings.Join(got, ",") != "CAP_CHOWN,CAP_KILL" {
		t.Errorf("capabilities %v", got)
	}
}

func TestDefaultsAreSafe(t *testing.T) {
	c := DefaultConfig()
	if c.AllowNewPrivileges || c.PidsLimit <= 0 || c.HomeHostPath != "" || c.NamePrefix != "wm" {
		t.Errorf("unsafe defaults: %+v", c)
	}
	// The exact allow-list: adding any capability to the defaults (BPF, SYS_RAWIO, ...) is a
	// decision this test makes someone take.
	want := []string{"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "NET_BIND_SERVICE", "SETGID", "SETUID", "SYS_CHROOT"}
	got := slices.Sorted(slices.Values(c.Capabilities))
	if !slices.Equal(got, want) {
		t.Errorf("default capabilities %v, want exactly %v", got, want)
	}
}

func TestParseRef(t *testing.T) {
	student := backend.Identity{User: "bob", Role: backend.RoleStudent}
	ta := backend.Identity{User: "tina", Role: backend.RoleTA}
	cases := []struct {
		id    backend.Identity
		ref   string
		owner string // "" = not found
	}{
		{student, "box", "bob"},
		{student, "bob/box", "bob"},
		{student, "alice/box", ""},
		{student, "wm-alice-box", "bob"}, // a valid name of bob's own, never alice's engine name
		{student, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", ""},
		{student, "Box", ""},
		{student, "../box", ""},
		{student, "/box", ""},
		{student, "alice/", ""},
		{student, "a/b/c", ""},
		{student, "", ""},
		{ta, "alice/box", "alice"},
		{ta, "box", "tina"},
		{ta, "al ice/box", ""},
	}
	for _, tc := range cases {
		tg, err := parseRef(tc.id, tc.ref)
		if tc.owner == "" {
			if !errors.Is(err, ErrNotFound) {
				t.Errorf("%s %q: %v, want not found", tc.id.User, tc.ref, err)
			}
			continue
		}
		if err != nil || tg.owner != tc.owner {
			t.Errorf("%s %q: %+v %v, want owner %s", tc.id.User, tc.ref, tg, err, tc.owner)
		}
	}
}

func TestValidateInput(t *testing.T) {
	for _, n := range []string{"a", "box", "my-box-2", "lab_web_1", strings.Repeat("a", 32)} {
		if err := ValidateName(n); err != nil {
			t.Errorf("name %q: %v", n, err)
		}
	}
	for _, n := range []string{"", "-a", "a-", "_a", "a_", "A", "a.b", "a/b", strings.Repeat("a", 33), "a\nb", "ä"} {
		if err := ValidateName(n); !errors.Is(err, ErrInvalid) || strings.ContainsAny(err.Error(), "\n\x1b") {
			t.Errorf("name %q: %v", n, err)
		}
	}
	for in, want := range map[string]string{
		"ubuntu": "ubuntu", "ubuntu:24.04": "ubuntu:24.04", "docker.io/library/ubuntu": "ubuntu",
		"registry.example:5000/alice/ml:latest": "registry.example:5000/alice/ml:latest",
	} {
		if got, err := ParseImage(in); err != nil || got != want {
			t.Errorf("image %q: %q %v", in, got, err)
		}
	}
	for _, in := range []string{"", "UPPER", "a b", ":x", "x:", "x@sha256:zz"} {
		if _, err := ParseImage(in); !errors.Is(err, ErrInvalid) {
			t.Errorf("image %q: %v", in, err)
		}
	}
	if err := ValidateEnv([]string{"A=1", "_B=", "C_3=x=y"}); err != nil {
		t.Error(err)
	}
	for _, e := range []string{"A", "=1", "1A=2", "A-B=1", "A=\x00"} {
		if err := ValidateEnv([]string{e}); !errors.Is(err, ErrInvalid) {
			t.Errorf("env %q: %v", e, err)
		}
	}
	if err := checkIdentity(backend.Identity{User: "al\x1bce", Role: backend.RoleStudent}); !errors.Is(err, ErrPermission) {
		t.Errorf("odd user name: %v", err)
	}
}

func TestOnlyShell(t *testing.T) {
	for cmd, want := range map[string]bool{
		"": true, "sh": true, "/bin/bash": true, "bash -l": true, "python3": false,
		"sh -c sleep": false, "/usr/bin/jupyter lab": false,
	} {
		if got := onlyShell(strings.Fields(cmd)); got != want {
			t.Errorf("onlyShell(%q) = %v", cmd, got)
		}
	}
}

func TestGenerateName(t *testing.T) {
	for _, img := range []string{"ubuntu:24.04", "registry.example:5000/alice/My_ML@sha256:abc", "---", "averyveryveryverylongimagename"} {
		n := generateName(img, nil)
		if ValidateName(n) != nil {
			t.Errorf("generated %q from %q", n, img)
		}
	}
}

func TestUsageMaths(t *testing.T) {
	t0 := time.Unix(1000, 0)
	if got := cpuPercent(usageSample{cpu: 0, at: t0}, usageSample{cpu: 3e9, at: t0.Add(2 * time.Second)}); got != 150 {
		t.Errorf("cpu %v, want 150 (one and a half CPUs busy)", got)
	}
	if got := cpuPercent(usageSample{cpu: 10, at: t0}, usageSample{cpu: 5, at: t0.Add(time.Second)}); got != 0 {
		t.Errorf("cpu after counter reset %v", got)
	}
	if got := cpuPercent(usageSample{cpu: 0, at: t0}, usageSample{cpu: 5, at: t0}); got != 0 {
		t.Errorf("cpu over no time %v", got)
	}
	m := container.MemoryStats{Usage: 100, Stats: map[string]uint64{"total_inactive_file": 30}}
	if got := memUsage(m); got != 70 {
		t.Errorf("mem v1 %d", got)
	}
	m = container.MemoryStats{Usage: 100, Stats: map[string]uint64{"inactive_file": 40}}
	if got := memUsage(m); got != 60 {
		t.Errorf("mem v2 %d", got)
	}
}

func TestShownNeutralisesEscapes(t *testing.T) {
	if got := notFound("x\x1b]0;pwned\x07").Error(); strings.ContainsAny(got, "\x1b\x07") {
		t.Errorf("%q", got)
	}
	if got := notFound("box").Error(); got != "no such container: box" {
		t.Errorf("%q", got)
	}
}

// TestShownKeepsLetters: what a user typed comes back as typed when every character is a
// printable letter, digit, mark or symbol of any script; control characters, bidi overrides
// and other invisible format characters are escaped (then the whole is quoted).
func TestShownKeepsLetters(t *testing.T) {
	for in, want := range map[string]string{
		"box":            "box",
		"café":           "café",
		"実験":             "実験",
		"Ωmega-1":        "Ωmega-1",
		"my box":         `"my box"`,
		"a\x1b[2Jb":      `"a\x1b[2Jb"`,
		"a\u202eexe.txt": `"a\u202eexe.txt"`,
		"ab\u200bc":      `"ab\u200bc"`,
		"x\u2066y":       `"x\u2066y"`,
		"\xff\xfe":       `"\xff\xfe"`,
		"tab\there":      `"tab\there"`,
		"nbsp\u00a0":     `"nbsp\u00a0"`,
		"line\u2028":     `"line\u2028"`,
		"bom\ufeff":      `"bom\ufeff"`,
		"c1\u0085":       `"c1\u0085"`,
	} {
		if got := shown(in); got != want {
			t.Errorf("shown(%q) = %s, want %s", in, got, want)
		}
	}
	if got := notFound("café").Error(); got != "no such container: café" {
		t.Errorf("%q", got)
	}
	long := strings.Repeat("é", 200)
	if got := shown(long); !utf8.ValidString(got) || len([]rune(got)) > 140 {
		t.Errorf("a long name is not cut at a character: %q", got)
	}
}

func TestGPUsShown(t *testing.T) {
	for _, c := range []struct {
		labels map[string]string
		want   string
	}{
		{nil, ""},
		{map[string]string{LabelGPUs: "GPU-a", LabelGPUIndices: "1"}, "1"},
		{map[string]string{LabelGPUs: "GPU-a,GPU-b", LabelGPUIndices: "0,2"}, "0,2"},
		{map[string]string{LabelGPUs: "GPU-a"}, "1 GPU"},
		{map[string]string{LabelGPUs: "GPU-a,GPU-b"}, "2 GPUs"},
	} {
		if got := gpusShown(c.labels); got != c.want {
			t.Errorf("gpusShown(%v) = %q, want %q", c.labels, got, c.want)
		}
	}
	c := fromSummary(container.Summary{Labels: map[string]string{LabelName: "box", LabelOwner: "alice", LabelGPUs: "GPU-a", LabelGPUIndices: "3"}})
	if c.GPUs != "3" {
		t.Errorf("fromSummary: GPUs %q", c.GPUs)
	}
}

// TestCgroupUsage reads made-up cgroup trees of every layout the engine uses.
func TestCgroupUsage(t *testing.T) {
	id := strings.Repeat("ab", 32)
	write := func(t *testing.T, root string, files map[string]string) {
		for name, body := range files {
			p := filepath.Join(root, name)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	v2 := func(dir string) map[string]string {
		return map[string]string{
			dir + "/cpu.stat":       "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n",
			dir + "/memory.current": "1000\n",
			dir + "/memory.stat":    "anon 600\nfile 400\ninactive_file 300\n",
		}
	}
	for _, tc := range []struct {
		name  string
		files map[string]string
	}{
		{"v2 cgroupfs", v2("docker/" + id)},
		{"v2 systemd", v2("system.slice/docker-" + id + ".scope")},
		{"v1 cgroupfs", map[string]string{
			"cpuacct/docker/" + id + "/cpuacct.usage":        "2500000\n",
			"memory/docker/" + id + "/memory.usage_in_bytes": "1000\n",
			"memory/docker/" + id + "/memory.stat":           "cache 400\ntotal_inactive_file 300\n",
		}},
		{"v1 systemd", map[string]string{
			"cpuacct/system.slice/docker-" + id + ".scope/cpuacct.usage":        "2500000\n",
			"memory/system.slice/docker-" + id + ".scope/memory.usage_in_bytes": "1000\n",
			"memory/system.slice/docker-" + id + ".scope/memory.stat":           "total_inactive_file 300\n",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			write(t, root, tc.files)
			got, ok := cgroupUsage{root: root}.read(id)
			if !ok || got.cpu != 2500000 || got.mem != 700 || got.at.IsZero() {
				t.Errorf("read %+v %v, want 2.5 ms of CPU and 700 bytes", got, ok)
			}
			if _, ok := (cgroupUsage{root: root}).read(strings.Repeat("cd", 32)); ok {
				t.Error("another container's cgroup was found")
			}
			if _, ok := (cgroupUsage{root: root}).read("../" + id); ok {
				t.Error("a path was taken for an ID")
			}
		})
	}
}

func TestRunnerJobName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"box", "box"},
		{"runner-AbCd1234-project-7-concurrent-0-0123456789abcdef-build", "runner-abcd1234-project-"},
		{"../etc", "../etc"},
		{"a b", "a b"},
	} {
		got := runnerJobName(tc.in)
		if !strings.HasPrefix(got, tc.want) || (tc.want != tc.in && (len(got) > 32 || ValidateName(got) != nil)) {
			t.Errorf("runnerJobName(%q) = %q, want %q... and a valid name", tc.in, got, tc.want)
		}
	}
	if runnerJobName("Job_A") == runnerJobName("job-a") || runnerJobName("Job_A") == runnerJobName("job_a") {
		t.Error("names differing only in case or punctuation must map apart")
	}
	if a, b := runnerJobName("x.Y"), runnerJobName("x.Y"); a != b {
		t.Errorf("one name mapped two ways: %q, %q", a, b)
	}
}

func TestUserName(t *testing.T) {
	cfg := Config{NamePrefix: "wm"}
	l := map[string]string{LabelOwner: "alice", LabelName: "box"}
	for _, c := range []struct{ engine, want string }{
		{"/wm-alice-box", "box"},             // as created
		{"/wm-alice-web", "web"},             // renamed
		{"/wm-alice-lab_web_1", "lab_web_1"}, // renamed, compose's form
		{"/wm-alice-box.x7k2", "box"},        // created under a taken engine name
		{"/wm-alice-Bad", "box"},             // not a name
		{"/wm-bob-web", "box"},               // not alice's form
		{"/wm-alice-", "box"},
		{"/other", "box"},
		{"", "box"},
	} {
		if got := cfg.userName(l, c.engine); got != c.want {
			t.Errorf("userName(%q) = %q, want %q", c.engine, got, c.want)
		}
	}
	if got := cfg.userName(map[string]string{LabelOwner: "alice"}, "/wm-alice-web"); got != "" {
		t.Errorf("no name label: %q", got)
	}
}
