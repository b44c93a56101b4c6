package format

import (
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
)

func TestAge(t *testing.T) {
	cases := map[time.Duration]string{
		0:                              "–",
		-time.Second:                   "–",
		45 * time.Second:               "45s",
		12*time.Minute + 5*time.Second: "12m",
		2*time.Hour + 13*time.Minute:   "2h13m",
		3 * time.Hour:                  "3h",
		5*24*time.Hour + time.Hour:     "5d",
		30 * 24 * time.Hour:            "4w",
	}
	for d, want := range cases {
		if got := Age(d); got != want {
			t.Errorf("Age(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestBytes(t *testing.T) {
	cases := map[int64]string{
		0:          "0 B",
		512:        "512 B",
		2048:       "2.0 KiB",
		210 << 20:  "210 MiB",
		3328599654: "3.1 GiB",
		8 << 30:    "8.0 GiB",
	}
	for n, want := range cases {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestPercentStateCPUs(t *testing.T) {
	if got := Percent(12.4); got != "12%" {
		t.Errorf("Percent(12.4) = %q", got)
	}
	if got := Percent(0.44); got != "0.4%" {
		t.Errorf("Percent(0.44) = %q", got)
	}
	if got := Percent(0); got != "0%" {
		t.Errorf("Percent(0) = %q", got)
	}
	if got := State("exited", 137); got != "exited(137)" {
		t.Errorf("State = %q", got)
	}
	if got := State("running", 0); got != "running" {
		t.Errorf("State = %q", got)
	}
	for c, want := range map[float64]string{2: "2", 0.5: "0.5", 1.25: "1.25"} {
		if got := CPUs(c); got != want {
			t.Errorf("CPUs(%v) = %q, want %q", c, got, want)
		}
	}
}

func TestUserPrefixAndSCPDownload(t *testing.T) {
	for prefix, want := range map[string]string{
		"ssh -p 2222 gpu1":     "ssh -p 2222 alice@gpu1",
		"ssh gpu1.example.jp":  "ssh alice@gpu1.example.jp",
		"ssh -p 2222 bob@gpu1": "ssh -p 2222 bob@gpu1",
		"":                     "",
		"ssh":                  "ssh",
		"mosh gpu1":            "mosh gpu1",
	} {
		if got := UserPrefix(prefix, "alice"); got != want {
			t.Errorf("UserPrefix(%q) = %q, want %q", prefix, got, want)
		}
	}
	if got := UserPrefix("ssh -p 2222 gpu1", ""); got != "ssh -p 2222 gpu1" {
		t.Errorf("without a user: %q", got)
	}
	if got := SCPDownload(UserPrefix("ssh -p 2222 gpu1", "alice"), "/sif/x.sif"); got != "scp -P 2222 alice@gpu1:/sif/x.sif ." {
		t.Errorf("SCPDownload = %q", got)
	}
}

func TestAgeChangesIn(t *testing.T) {
	for _, tc := range []struct {
		d, want time.Duration
	}{
		{0, time.Second},
		{-3 * time.Second, 4 * time.Second},
		{1500 * time.Millisecond, 500 * time.Millisecond},
		{59 * time.Second, time.Second},
		{time.Minute, time.Minute},
		{90 * time.Second, 30 * time.Second},
		{2*time.Hour + 13*time.Minute + 20*time.Second, 40 * time.Second},
		{23*time.Hour + 59*time.Minute + 59*time.Second, time.Second},
		{24 * time.Hour, 24 * time.Hour},
		{5*24*time.Hour + 6*time.Hour, 18 * time.Hour},
		{14 * 24 * time.Hour, 7 * 24 * time.Hour},
	} {
		got := AgeChangesIn(tc.d)
		if got != tc.want {
			t.Errorf("AgeChangesIn(%s) = %s, want %s", tc.d, got, tc.want)
		}
		// Just before the change the text is the same; at it, it differs.
		if tc.d > 0 && (Age(tc.d+got-time.Nanosecond) != Age(tc.d) || Age(tc.d+got) == Age(tc.d)) {
			t.Errorf("Age around %s+%s: %q %q %q", tc.d, got, Age(tc.d), Age(tc.d+got-time.Nanosecond), Age(tc.d+got))
		}
	}
}

func TestShortImage(t *testing.T) {
	for _, tc := range []struct {
		ref   string
		width int
		want  string
	}{
		{"ubuntu:24.04", 20, "ubuntu:24.04"},
		{"registry.example.org/group/alice/ml:latest", 42, "registry.example.org/group/alice/ml:latest"},
		{"registry.example.org/group/alice/ml:latest", 41, "…/group/alice/ml:latest"},
		{"registry.example.org/group/alice/ml:latest", 22, "…/alice/ml:latest"},
		{"registry.example.org/group/alice/ml:latest", 17, "…/alice/ml:latest"},
		{"registry.example.org/group/alice/ml:latest", 16, "…/ml:latest"},
		{"registry.example.org/group/alice/ml:latest", 10, "ml:latest"},
		{"registry.example.org/group/alice/ml:latest", 8, "ml:late…"},
		{"registry.example.org/group/alice/ml:latest", 1, "…"},
		{"registry.example.org/group/alice/ml:latest", 0, ""},
		{"ghcr.io/org/averyverylongrepositoryname:v1", 16, "averyverylongre…"},
		{"alice/ml@sha256:0123456789abcdef0123", 20, "ml@sha256:012345678…"},
		{"registry.example.org/ゆき/ノート:latest", 20, "…/ゆき/ノート:latest"},
		{"registry.example.org/ゆき/ノート:latest", 19, "…/ノート:latest"},
	} {
		got := ShortImage(tc.ref, tc.width)
		if got != tc.want {
			t.Errorf("ShortImage(%q, %d) = %q, want %q", tc.ref, tc.width, got, tc.want)
		}
		if w := ansi.StringWidth(got); w > tc.width {
			t.Errorf("ShortImage(%q, %d) is %d cells wide", tc.ref, tc.width, w)
		}
	}
}

func TestContainerState(t *testing.T) {
	for _, tc := range []struct {
		state   string
		code    int
		stopped bool
		want    string
	}{
		{"exited", 143, true, "stopped"},
		{"exited", 137, true, "stopped"},
		{"exited", 143, false, "exited(143)"},
		{"exited", 1, false, "exited(1)"},
		{"running", 0, true, "running"}, // started again since: the stop no longer counts
		{"", 0, false, "unknown"},
	} {
		if got := ContainerState(tc.state, tc.code, tc.stopped); got != tc.want {
			t.Errorf("ContainerState(%q, %d, %v) = %q, want %q", tc.state, tc.code, tc.stopped, got, tc.want)
		}
	}
}

func TestForwardLine(t *testing.T) {
	for _, tc := range []struct{ prefix, user, want string }{
		{"ssh -p 2222 gpu1.ie.example", "alice", "ssh -L 8888:jupyter:8888 -p 2222 alice@gpu1.ie.example"},
		{"ssh gpu1", "alice", "ssh -L 8888:jupyter:8888 alice@gpu1"},
		{"", "alice", "ssh -L 8888:jupyter:8888 HOST"},
	} {
		if got := ForwardLine(tc.prefix, tc.user, "jupyter", 8888); got != tc.want {
			t.Errorf("ForwardLine(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
}
