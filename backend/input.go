package backend

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// What every backend checks the same way in what users type: the environment and command of
// a run or exec, and how user input is repeated in an error. The rooms wrap these errors in
// their own kinds.

// Limits on what a run or exec may carry.
const (
	maxEnv      = 128
	maxEnvBytes = 32 << 10
	maxArgs     = 256
	maxCmdBytes = 64 << 10
)

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// CheckEnv checks KEY=value entries: at most 128, KEY of letters, digits and '_', no NUL,
// each at most 32 KiB.
func CheckEnv(env []string) error {
	if len(env) > maxEnv {
		return fmt.Errorf("too many environment variables (%d, at most %d)", len(env), maxEnv)
	}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !envKeyRE.MatchString(k) {
			return fmt.Errorf("invalid environment variable %s: use KEY=value with KEY of letters, digits and '_'", Shown(kv))
		}
		if strings.ContainsRune(v, 0) || len(kv) > maxEnvBytes {
			return fmt.Errorf("invalid value for environment variable %s", k)
		}
	}
	return nil
}

// CheckCmd checks a command: at most 256 arguments and 64 KiB, no NUL, a first word when any.
func CheckCmd(cmd []string) error {
	if len(cmd) > maxArgs {
		return fmt.Errorf("command has too many arguments (%d, at most %d)", len(cmd), maxArgs)
	}
	total := 0
	for _, a := range cmd {
		total += len(a)
		if strings.ContainsRune(a, 0) {
			return fmt.Errorf("command contains a NUL byte")
		}
	}
	if total > maxCmdBytes {
		return fmt.Errorf("command is too long (%d bytes, at most %d)", total, maxCmdBytes)
	}
	if len(cmd) > 0 && cmd[0] == "" {
		return fmt.Errorf("command is empty")
	}
	return nil
}

// Shown makes user input safe to echo in an error: text of printable characters of any
// script (letters, digits, marks, punctuation, symbols; no spaces) as typed, anything else
// quoted with escapes for what is not printable — control characters, bidi overrides and
// other invisible format characters, odd spaces, invalid UTF-8 — so no terminal control
// sequence and no text that reads differently than it is survives; cut short when long.
func Shown(s string) string {
	if len(s) <= maxShown && plainText(s) {
		return s
	}
	if len(s) > maxShown {
		cut := maxShown
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return strconv.Quote(s)
}

// maxShown is how many bytes of user input an error repeats.
const maxShown = 128

// plainText reports whether s is non-empty, valid UTF-8 and made of printable characters
// other than spaces only.
func plainText(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == ' ' || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
