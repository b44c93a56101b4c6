package backend_test

import (
	"strings"
	"testing"

	"whalemountain/backend"
)

func TestCheckEnv(t *testing.T) {
	if err := backend.CheckEnv([]string{"A=1", "_B=", "C_3=x=y"}); err != nil {
		t.Error(err)
	}
	for in, want := range map[string]string{
		"A": "invalid environment variable A:", "1A=2": "invalid environment variable 1A=2:",
		"A\x1b=1": `invalid environment variable "A\x1b=1":`, "A=\x00": "invalid value for environment variable A",
	} {
		if err := backend.CheckEnv([]string{in}); err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("CheckEnv(%q) = %v, want %q", in, err, want)
		}
	}
	if err := backend.CheckEnv(make([]string, 129)); err == nil || !strings.Contains(err.Error(), "at most 128") {
		t.Errorf("129 variables: %v", err)
	}
}

func TestCheckCmd(t *testing.T) {
	for _, ok := range [][]string{nil, {"sh"}, {"sh", "-c", ""}} {
		if err := backend.CheckCmd(ok); err != nil {
			t.Errorf("CheckCmd(%q): %v", ok, err)
		}
	}
	for want, cmd := range map[string][]string{
		"command is empty":            {""},
		"command contains a NUL byte": {"a\x00"},
		"too many arguments":          make([]string, 257),
		"command is too long":         {strings.Repeat("a", 64<<10+1)},
	} {
		if err := backend.CheckCmd(cmd); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("CheckCmd: %v, want %q", err, want)
		}
	}
}

func TestShown(t *testing.T) {
	for in, want := range map[string]string{
		"box": "box", "café": "café", "my box": `"my box"`, "a\x1b[2Jb": `"a\x1b[2Jb"`,
		"a\u202eexe.txt": `"a\u202eexe.txt"`, "": `""`,
	} {
		if got := backend.Shown(in); got != want {
			t.Errorf("Shown(%q) = %s, want %s", in, got, want)
		}
	}
	if got := backend.Shown(strings.Repeat("é", 200)); !strings.HasSuffix(got, `..."`) || len(got) > 140 {
		t.Errorf("a long text is not cut: %q", got)
	}
}
