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
			out: []string{"ssh -p 2222 alice@gpu1 COMMAND", "whoami", "version", "help"}},
		{name: "help", args: []string{"help"}, code: 0, out: []string{"Commands:", "whoami"}},
		{name: "--help", args: []string{"--help"}, code: 0, out: []string{"Commands:", "whoami"}},
		{name: "help whoami", args: []string{"help", "whoami"}, code: 0, out: []string{"ssh -p 2222 alice@gpu1 whoami [--json]", "--json"}},
		{name: "help sif ls", args: []string{"help", "sif", "ls"}, code: 0, out: []string{"ssh -p 2222 alice@gpu1 sif ls [--json]"}},
		{name: "help nothing", args: []string{"help", "nope"}, code: 2, errs: []string{`no such command "nope"`}},
		{name: "whoami", args: []string{"whoami"}, code: 0, out: []string{"user:   alice", "role:   student", "SHA256:abc", "keys-dir"}},
		{name: "version", args: []string{"version"}, code: 0, out: []string{"whalemountain 1.2.3"}},
		{name: "unknown", args: []string{"frobnicate"}, code: 2, noOut: true,
			errs: []string{`unknown command "frobnicate"`, "ssh -p 2222 alice@gpu1 help"}},
		{name: "unknown with escape", args: []string{"\x1b[2J"}, code: 2, errs: []string{`\\x1b[2J`}},
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

// TestHelpListsEachCommandOnce: cobra's own help command must not sit beside ours.
func TestHelpListsEachCommandOnce(t *testing.T) {
	for _, args := range [][]string{nil, {"help"}} {
		code, out, _ := runCLI(args...)
		if code != 0 {
			t.Fatalf("%q: exit %d", args, code)
		}
		seen := map[string]int{}
		for _, line := range strings.Split(out, "\n") {
			if f := strings.Fields(line); len(f) > 1 && strings.HasPrefix(line, "  ") && !strings.HasPrefix(f[0], "ssh") {
				seen[f[0]]++
			}
		}
		if seen["help"] != 1 || seen["whoami"] != 1 {
			t.Errorf("%q lists help %d times, whoami %d times:\n%s", args, seen["help"], seen["whoami"], out)
		}
		if strings.Contains(out, "Help about any command") {
			t.Errorf("%q shows cobra's help command:\n%s", args, out)
		}
	}
}

// TestUsageErrorsInPlainWords: bad arguments and flags get one line in the server's words
// with the command's usage; none of cobra's, pflag's or strconv's wording reaches the user.
func TestUsageErrorsInPlainWords(t *testing.T) {
	raw := []string{"strconv", "Parse", "arg(s)", "argument(s)", "unknown flag:", "unknown shorthand flag", "flag needs an argument", "invalid argument \""}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"whoami", "--nope"}, []string{"whoami has no option --nope", "usage: ssh -p 2222 alice@gpu1 whoami [--json]"}},
		{[]string{"ps", "-z"}, []string{"ps has no option -z", "usage: ssh -p 2222 alice@gpu1 ps [-a] [--json]"}},
		{[]string{"logs", "--tail", "x", "box"}, []string{`--tail wants a whole number, not "x"`, "usage: ssh -p 2222 alice@gpu1 logs [-f] [--tail N] [--timestamps] NAME"}},
		{[]string{"logs", "box", "--tail"}, []string{"--tail needs a value", "usage: ssh -p 2222 alice@gpu1 logs"}},
		{[]string{"run", "--cpus", "lots", "img"}, []string{`--cpus wants a number such as 2 or 0.5, not "lots"`, "usage: ssh -p 2222 alice@gpu1 run"}},
		{[]string{"ps", "--json=maybe"}, []string{`--json is on or off (--json, --json=false), not "maybe"`}},
		{[]string{"logs"}, []string{"logs needs a NAME", "usage: ssh -p 2222 alice@gpu1 logs [-f] [--tail N] [--timestamps] NAME"}},
		{[]string{"inspect"}, []string{"inspect needs a NAME", "usage: ssh -p 2222 alice@gpu1 inspect NAME"}},
		{[]string{"inspect", "a", "b"}, []string{"inspect takes one NAME, not 2 arguments", "usage: ssh -p 2222 alice@gpu1 inspect NAME"}},
		{[]string{"sif"}, []string{"sif needs an IMAGE", "usage: ssh -p 2222 alice@gpu1 sif IMAGE"}},
		{[]string{"sif", "ls", "x"}, []string{`sif ls takes no arguments, not "x"`, "usage: ssh -p 2222 alice@gpu1 sif ls [--json]"}},
		{[]string{"version", "x"}, []string{`version takes no arguments, not "x"`, "usage: ssh -p 2222 alice@gpu1 version"}},
		{[]string{"start"}, []string{"start needs at least one NAME", "usage: ssh -p 2222 alice@gpu1 start NAME..."}},
		{[]string{"exec", "box"}, []string{"exec needs a NAME and a command", "usage: ssh -p 2222 alice@gpu1 exec NAME -- CMD..."}},
		{[]string{"run"}, []string{"run needs an IMAGE", "usage: ssh -p 2222 alice@gpu1 run"}},
	}
	for _, c := range cases {
		code, out, errs := runCLI(c.args...)
		if code != ExitUsage {
			t.Errorf("%q: exit %d, want %d (stderr %q)", c.args, code, ExitUsage, errs)
		}
		if out != "" {
			t.Errorf("%q: stdout %q", c.args, out)
		}
		if n := strings.Count(strings.TrimRight(errs, "\n"), "\n"); n != 0 {
			t.Errorf("%q: %d lines on stderr, want one:\n%s", c.args, n+1, errs)
		}
		for _, w := range c.want {
			if !strings.Contains(errs, w) {
				t.Errorf("%q: stderr lacks %q:\n%s", c.args, w, errs)
			}
		}
		for _, r := range raw {
			if strings.Contains(errs, r) {
				t.Errorf("%q: stderr has the raw wording %q:\n%s", c.args, r, errs)
			}
		}
	}
}

// TestHintsNameTheUser: every command line shown to the user logs in as that user.
func TestHintsNameTheUser(t *testing.T) {
	for _, args := range [][]string{nil, {"help", "logs"}, {"frobnicate"}, {"help", "sif"}} {
		_, out, errs := runCLI(args...)
		for _, line := range strings.Split(out+errs, "\n") {
			for _, tool := range []string{"ssh -p 2222 ", "scp -P 2222 "} {
				if i := strings.Index(line, tool); i >= 0 && !strings.HasPrefix(line[i+len(tool):], "alice@gpu1") {
					t.Errorf("%q: a hint without the user: %q", args, line)
				}
			}
		}
	}
	_, out, _ := runCLI("help", "sif")
	if !strings.Contains(out, "scp -P 2222 alice@gpu1:/sif/NAME.sif .") {
		t.Errorf("help sif does not show the download line with the user:\n%s", out)
	}
}
