package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"whalemountain/backend"
)

func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	env := Env{
		Ctx:      context.Background(),
		Identity: backend.Identity{User: "alice", Role: backend.RoleStudent, KeyFingerprint: "SHA256:abc", KeySource: "keys-dir"},
		Stdin:    strings.NewReader(""),
		Stdout:   &out,
		Stderr:   &errb,
		Prefix:   "ssh -p 2222 gpu1",
		Version:  "1.2.3",
	}
	code = Run(env, args)
	return code, out.String(), errb.String()
}

func TestCommands(t *testing.T) {
	cases := []struct {
		name      string
		args      []string
		code      int
		out, errs []string
		noOut     bool
	}{
		{name: "no args prints help", args: nil, code: 0,
			out: []string{"ssh -p 2222 gpu1 COMMAND", "whoami", "version", "help"}},
		{name: "help", args: []string{"help"}, code: 0, out: []string{"Commands:", "whoami"}},
		{name: "help whoami", args: []string{"help", "whoami"}, code: 0, out: []string{"ssh -p 2222 gpu1 whoami [--json]", "--json"}},
		{name: "help nothing", args: []string{"help", "nope"}, code: 2, errs: []string{`no such command "nope"`}},
		{name: "whoami", args: []string{"whoami"}, code: 0, out: []string{"user:   alice", "role:   student", "SHA256:abc", "keys-dir"}},
		{name: "version", args: []string{"version"}, code: 0, out: []string{"whalemountain 1.2.3"}},
		{name: "unknown", args: []string{"frobnicate"}, code: 2, noOut: true,
			errs: []string{`unknown command "frobnicate"`, "ssh -p 2222 gpu1 help"}},
		{name: "unknown with escape", args: []string{"\x1b[2J"}, code: 2, errs: []string{`\\x1b[2J`}},
		{name: "bad flag", args: []string{"whoami", "--nope"}, code: 2, errs: []string{"unknown flag: --nope"}},
		{name: "extra arg", args: []string{"version", "x"}, code: 2, errs: []string{"version takes 0 argument(s)"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, out, errs := runCLI(c.args...)
			if code != c.code {
				t.Errorf("exit %d, want %d (stdout %q, stderr %q)", code, c.code, out, errs)
			}
			for _, w := range c.out {
				if !strings.Contains(out, w) {
					t.Errorf("stdout lacks %q:\n%s", w, out)
				}
			}
			for _, w := range c.errs {
				if !strings.Contains(errs, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errs)
				}
			}
			if c.noOut && out != "" {
				t.Errorf("stdout should be empty, got %q", out)
			}
			if strings.Contains(errs, "\x1b") || strings.Contains(out, "\x1b") {
				t.Error("raw escape reached the terminal")
			}
		})
	}
}

func TestWhoamiJSON(t *testing.T) {
	code, out, _ := runCLI("whoami", "--json")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	var got map[string]string
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	want := map[string]string{"user": "alice", "role": "student", "key_fingerprint": "SHA256:abc", "key_source": "keys-dir"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}
