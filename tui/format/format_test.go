package format

import (
	"testing"
	"time"
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
