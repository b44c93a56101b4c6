package main

// End-to-end tests: the real binary, the real OpenSSH client, real PTYs. The harness is in
// e2e_harness_test.go and e2e_term_test.go.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"
	"golang.org/x/crypto/ssh"

	"whalemountain/backend/gitlab/gitlabtest"
)

func TestE2EAcceptedKey(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)

	s.mustLogIn(t, alice, "alice", "student", "keys-dir")

	r := s.ssh(t, alice, "alice", "whoami", "--json")
	if r.Code != 0 {
		t.Fatalf("whoami --json: %s", r)
	}
	var w struct {
		User           string `json:"user"`
		Role           string `json:"role"`
		KeyFingerprint string `json:"key_fingerprint"`
		KeySource      string `json:"key_source"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &w); err != nil {
		t.Fatalf("whoami --json is not JSON: %v\n%s", err, r.Stdout)
	}
	if w.User != "alice" || w.Role != "student" || w.KeyFingerprint != alice.Fingerprint || w.KeySource != "keys-dir" {
		t.Errorf("whoami --json = %+v, want alice/student/%s/keys-dir", w, alice.Fingerprint)
	}
	if r.Stderr != "" {
		t.Errorf("whoami --json wrote to stderr: %q", r.Stderr)
	}

	e := s.waitAudit(t, "alice's accepted login", acceptedLogin("alice", alice.Fingerprint))
	if e.Role != "student" || e.Source != "127.0.0.1" || !strings.Contains(e.Target, "whoami") {
		t.Errorf("audit entry %+v: want role student, source 127.0.0.1, target naming whoami", e)
	}
}

func TestE2ERefusedLogins(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	alice, mallory, bob := newKey(t, "alice"), newKey(t, "mallory"), newKey(t, "bob")
	s.addKey(t, "alice", alice)

	t.Run("key not registered", func(t *testing.T) {
		s.mustBeRefused(t, mallory, "alice")
		s.waitAudit(t, "alice refused with another key", refusedLogin("alice", "key not registered"))
	})
	t.Run("unknown user", func(t *testing.T) {
		s.mustBeRefused(t, bob, "bob")
		s.waitAudit(t, "bob refused as unknown", refusedLogin("bob", "unknown user"))
	})
	t.Run("a user name that could escape the keys directory", func(t *testing.T) {
		s.mustBeRefused(t, alice, "../keys/alice")
	})
	t.Run("key added while the server runs", func(t *testing.T) {
		s.addKey(t, "bob", bob)
		s.mustLogIn(t, bob, "bob", "student", "keys-dir")
	})
	t.Run("second key appended while the server runs", func(t *testing.T) {
		alice2 := newKey(t, "alice-laptop")
		s.mustBeRefused(t, alice2, "alice")
		s.addKey(t, "alice", alice2)
		s.mustLogIn(t, alice2, "alice", "student", "keys-dir")
		s.mustLogIn(t, alice, "alice", "student", "keys-dir")
	})
	t.Run("user name case does not matter", func(t *testing.T) {
		w, r := s.whoami(t, alice, "Alice")
		if r.Code != 0 || w["user"] != "alice" || w["key"] != alice.Fingerprint {
			t.Errorf("Alice with alice's key: want user alice, got %s", r)
		}
	})
}

func TestE2ECommandLine(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)

	t.Run("unknown command", func(t *testing.T) {
		r := s.ssh(t, alice, "alice", "frobnicate", "--now")
		if r.Code != 2 {
			t.Errorf("exit %d, want 2\n%s", r.Code, r)
		}
		lines := strings.Split(strings.TrimRight(r.Stderr, "\n"), "\n")
		if lines[0] != `unknown command "frobnicate"` {
			t.Errorf("first line of stderr = %q, want it to name the command", lines[0])
		}
		n := 0
		for _, l := range lines {
			if strings.Contains(l, "frobnicate") {
				n++
			}
		}
		if n != 1 {
			t.Errorf("the error should be one line; stderr:\n%s", r.Stderr)
		}
		if r.Stdout != "" {
			t.Errorf("stdout = %q, want nothing", r.Stdout)
		}
	})
	t.Run("no command, no terminal: help", func(t *testing.T) {
		r := s.sshFlags(t, alice, "alice", []string{"-T"})
		if r.Code != 0 {
			t.Fatalf("%s", r)
		}
		for _, want := range []string{"whoami", "help", "version", "ssh -p " + s.Port} {
			if !strings.Contains(r.Stdout, want) {
				t.Errorf("help does not mention %q:\n%s", want, r.Stdout)
			}
		}
	})
	t.Run("help", func(t *testing.T) {
		r := s.ssh(t, alice, "alice", "help")
		if r.Code != 0 || !strings.Contains(r.Stdout, "whoami") {
			t.Errorf("%s", r)
		}
	})
	t.Run("bad usage of a known command", func(t *testing.T) {
		r := s.ssh(t, alice, "alice", "whoami", "extra")
		if r.Code != 2 || !strings.Contains(r.Stderr, "whoami") {
			t.Errorf("want exit 2 naming whoami: %s", r)
		}
	})
	t.Run("version", func(t *testing.T) {
		r := s.ssh(t, alice, "alice", "version")
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, "whalemountain ") {
			t.Errorf("%s", r)
		}
	})
	t.Run("a terminal with a command runs the command", func(t *testing.T) {
		tm := s.openTerminal(t, alice, "alice", 100, 30, "whoami")
		if code := tm.waitExit(sshTimeout); code != 0 {
			t.Errorf("ssh -tt whoami exited %d", code)
		}
		screen := strings.Join(tm.lines(), "\n")
		if !strings.Contains(screen, alice.Fingerprint) {
			t.Errorf("whoami in a terminal did not show the key:\n%s", screen)
		}
	})
}

// gitlabFixture is a GitLab stand-in with a few users, and a server configured to use it.
type gitlabFixture struct {
	gl   *gitlabtest.Server
	s    *server
	keys map[string]*testKey
	ids  map[string]int64
}

const gitlabToken = "glpat-e2e-0123456789"

func newGitLabFixture(t *testing.T) *gitlabFixture {
	t.Helper()
	gl := gitlabtest.New(gitlabtest.WithToken(gitlabToken))
	t.Cleanup(gl.Close)
	f := &gitlabFixture{gl: gl, keys: map[string]*testKey{}, ids: map[string]int64{}}
	key := func(name string) *testKey {
		k := newKey(t, name)
		f.keys[name] = k
		return k
	}
	past := time.Now().Add(-24 * time.Hour)
	future := time.Now().Add(24 * time.Hour)
	add := func(u gitlabtest.User) {
		f.ids[u.Username] = gl.AddUser(u)
	}
	add(gitlabtest.User{Username: "galice", Keys: []gitlabtest.Key{{Key: key("galice").AuthorizedKey()}}})
	add(gitlabtest.User{Username: "erin", Keys: []gitlabtest.Key{
		{Key: key("erin-expired").AuthorizedKey(), ExpiresAt: &past},
		{Key: key("erin-valid").AuthorizedKey(), ExpiresAt: &future},
	}})
	add(gitlabtest.User{Username: "sam", Keys: []gitlabtest.Key{
		{Key: key("sam-signing").AuthorizedKey(), UsageType: "signing"},
		{Key: key("sam-auth").AuthorizedKey(), UsageType: "auth"},
	}})
	add(gitlabtest.User{Username: "bert", State: "blocked", Keys: []gitlabtest.Key{{Key: key("bert").AuthorizedKey()}}})
	add(gitlabtest.User{Username: "lou", Locked: true, Keys: []gitlabtest.Key{{Key: key("lou").AuthorizedKey()}}})
	add(gitlabtest.User{Username: "tina", Keys: []gitlabtest.Key{{Key: key("tina").AuthorizedKey()}}})
	add(gitlabtest.User{Username: "rei", Keys: []gitlabtest.Key{{Key: key("rei").AuthorizedKey()}}})
	add(gitlabtest.User{Username: "mona", Keys: []gitlabtest.Key{{Key: key("mona").AuthorizedKey()}}})
	add(gitlabtest.User{Username: "carol", Keys: []gitlabtest.Key{{Key: key("carol").AuthorizedKey()}}})
	gl.SetMember("dept/tas", f.ids["tina"], 30)     // developer: TA
	gl.SetMember("dept/tas", f.ids["rei"], 20)      // reporter: not enough
	gl.SetMember("dept", f.ids["mona"], 40)         // maintainer of the parent group: inherited
	gl.SetMember("dept/other", f.ids["galice"], 50) // another group does not count

	cfg := fmt.Sprintf("gitlab:\n  url: %s\n  ta_group: dept/tas\ntas: [carol]\nlimits:\n  failures_per_minute: 100\n", gl.URL())
	f.s = startServer(t, serverOptions{Config: cfg, Env: []string{"WM_GITLAB_TOKEN=" + gitlabToken}})
	return f
}

func TestE2EGitLab(t *testing.T) {
	t.Parallel()
	f := newGitLabFixture(t)
	s, k := f.s, f.keys

	t.Run("active key", func(t *testing.T) {
		s.mustLogIn(t, k["galice"], "galice", "student", "gitlab")
		s.waitAudit(t, "galice accepted", acceptedLogin("galice", k["galice"].Fingerprint))
	})
	t.Run("expired key refused, the valid one accepted", func(t *testing.T) {
		s.mustBeRefused(t, k["erin-expired"], "erin")
		s.waitAudit(t, "erin's expired key refused", refusedLogin("erin", "key not registered"))
		s.mustLogIn(t, k["erin-valid"], "erin", "student", "gitlab")
	})
	t.Run("signing-only key refused, the auth one accepted", func(t *testing.T) {
		s.mustBeRefused(t, k["sam-signing"], "sam")
		s.waitAudit(t, "sam's signing key refused", refusedLogin("sam", "key not registered"))
		s.mustLogIn(t, k["sam-auth"], "sam", "student", "gitlab")
	})
	t.Run("blocked user refused", func(t *testing.T) {
		s.mustBeRefused(t, k["bert"], "bert")
		s.waitAudit(t, "bert refused as blocked", refusedLogin("bert", "blocked"))
	})
	t.Run("locked user refused", func(t *testing.T) {
		s.mustBeRefused(t, k["lou"], "lou")
		s.waitAudit(t, "lou refused as locked", refusedLogin("lou", "locked"))
	})
	t.Run("unknown user refused", func(t *testing.T) {
		s.mustBeRefused(t, k["galice"], "nobody")
		s.waitAudit(t, "nobody refused", refusedLogin("nobody", "unknown user"))
	})
	t.Run("another user's key refused", func(t *testing.T) {
		s.mustBeRefused(t, k["tina"], "galice")
	})
	t.Run("TA by group membership at developer", func(t *testing.T) {
		s.mustLogIn(t, k["tina"], "tina", "ta", "gitlab")
	})
	t.Run("TA by inherited membership at maintainer", func(t *testing.T) {
		s.mustLogIn(t, k["mona"], "mona", "ta", "gitlab")
	})
	t.Run("reporter in the TA group is a student", func(t *testing.T) {
		s.mustLogIn(t, k["rei"], "rei", "student", "gitlab")
	})
	t.Run("TA by the tas list", func(t *testing.T) {
		s.mustLogIn(t, k["carol"], "carol", "ta", "gitlab")
	})
	t.Run("the keys directory is consulted too", func(t *testing.T) {
		local := newKey(t, "local")
		s.addKey(t, "localonly", local)
		s.mustLogIn(t, local, "localonly", "student", "keys-dir")
	})
	if f.gl.Requests() == 0 {
		t.Errorf("the GitLab stand-in was never asked")
	}
}

func TestE2EGitLabWrongTokenRefusesEveryone(t *testing.T) {
	t.Parallel()
	gl := gitlabtest.New(gitlabtest.WithToken(gitlabToken))
	t.Cleanup(gl.Close)
	alice := newKey(t, "alice")
	gl.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{{Key: alice.AuthorizedKey()}}})
	s := startServer(t, serverOptions{
		Config: fmt.Sprintf("gitlab:\n  url: %s\n  request_timeout: 3s\n", gl.URL()),
		Env:    []string{"WM_GITLAB_TOKEN=glpat-not-the-right-one"},
	})
	s.mustBeRefused(t, alice, "alice")
	s.waitAudit(t, "alice refused, GitLab refusing the token", refusedLogin("alice", "gitlab unreachable"))
	s.waitLog(t, "401")
}

func TestE2EGitLabTokenFile(t *testing.T) {
	t.Parallel()
	gl := gitlabtest.New(gitlabtest.WithToken(gitlabToken))
	t.Cleanup(gl.Close)
	alice := newKey(t, "alice")
	gl.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{{Key: alice.AuthorizedKey()}}})
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(gitlabToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := startServer(t, serverOptions{Config: fmt.Sprintf("gitlab:\n  url: %s\n  token_file: %s\n", gl.URL(), tokenFile)})
	s.mustLogIn(t, alice, "alice", "student", "gitlab")
}

func TestE2EGitLabOutage(t *testing.T) {
	t.Parallel()
	gl := gitlabtest.New(gitlabtest.WithToken(gitlabToken))
	t.Cleanup(gl.Close)
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	gl.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{{Key: alice.AuthorizedKey()}}})
	gl.AddUser(gitlabtest.User{Username: "bob", Keys: []gitlabtest.Key{{Key: bob.AuthorizedKey()}}})
	// A tiny cache_ttl: every login asks GitLab, so during the outage only the stale
	// cache can let alice in.
	s := startServer(t, serverOptions{
		Config: fmt.Sprintf("gitlab:\n  url: %s\n  cache_ttl: 1ms\n  stale_for: 1h\n  request_timeout: 2s\nlimits:\n  failures_per_minute: 100\n", gl.URL()),
		Env:    []string{"WM_GITLAB_TOKEN=" + gitlabToken},
	})

	s.mustLogIn(t, alice, "alice", "student", "gitlab") // warms the cache
	gl.SetDown(true)
	before := gl.Requests()

	s.mustLogIn(t, alice, "alice", "student", "gitlab")
	if gl.Requests() == before {
		t.Errorf("GitLab was not asked during the outage: the login was not served from a stale cache")
	}
	s.waitLog(t, "using cached answer")

	s.mustBeRefused(t, bob, "bob")
	s.waitAudit(t, "bob refused while GitLab is down", refusedLogin("bob", "gitlab unreachable"))
	s.mustBeRefused(t, alice, "nobody")
	s.waitAudit(t, "an unknown user refused while GitLab is down", refusedLogin("nobody", "gitlab unreachable"))

	// An administrator can still let someone in through the keys directory.
	s.addKey(t, "bob", bob)
	s.mustLogIn(t, bob, "bob", "student", "keys-dir")

	// GitLab comes back; the server recovers by itself.
	gl.SetDown(false)
	carol := newKey(t, "carol")
	gl.AddUser(gitlabtest.User{Username: "carol", Keys: []gitlabtest.Key{{Key: carol.AuthorizedKey()}}})
	ok := poll(20*time.Second, func() bool {
		r := s.ssh(t, carol, "carol", "whoami")
		if r.Code == 0 {
			return true
		}
		time.Sleep(250 * time.Millisecond)
		return false
	})
	if !ok {
		t.Fatalf("carol never got in after GitLab came back")
	}
	s.mustLogIn(t, carol, "carol", "student", "gitlab")
}

// queryOnlySigner offers a real public key but cannot sign: the client can ask the server
// whether the key would do, but never proves it holds the private half.
type queryOnlySigner struct {
	pub    ssh.PublicKey
	signed *atomic.Int32 // how often a signature was asked for (the server accepted the offer)
}

func (q queryOnlySigner) PublicKey() ssh.PublicKey { return q.pub }

func (q queryOnlySigner) Sign(io.Reader, []byte) (*ssh.Signature, error) {
	q.signed.Add(1)
	return nil, errors.New("this key is only offered, never used")
}

// authInOrder makes a client config that tries the methods one after another, each after
// the previous one failed or broke off.
func authInOrder(user string, methods ...ssh.AuthMethod) *ssh.ClientConfig {
	next := 0
	return &ssh.ClientConfig{
		User: user,
		AuthCallback: func(*ssh.ClientAuthContext) (ssh.AuthMethod, error) {
			if next >= len(methods) {
				return nil, nil
			}
			next++
			return methods[next-1], nil
		},
	}
}

// TestE2EOfferedKeyIsNotTheKeyUsed: a client may offer one key (the server says it would
// accept it) and then authenticate with another. The session must belong to the key that
// signed, never to a key that was only offered.
func TestE2EOfferedKeyIsNotTheKeyUsed(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	k1, k2, bob := newKey(t, "alice-k1"), newKey(t, "alice-k2"), newKey(t, "bob")
	s.addKey(t, "alice", k1)
	s.addKey(t, "alice", k2)
	s.addKey(t, "bob", bob)

	whoamiJSON := func(t *testing.T, c *ssh.Client) map[string]string {
		t.Helper()
		out, err := runOnClient(t, c, "whoami --json")
		if err != nil {
			t.Fatalf("whoami: %v", err)
		}
		var w map[string]string
		if err := json.Unmarshal([]byte(out), &w); err != nil {
			t.Fatalf("whoami --json: %v\n%s", err, out)
		}
		return w
	}

	t.Run("offer K1, sign with K2: the session is K2's", func(t *testing.T) {
		var signed atomic.Int32
		c, err := s.dial(authInOrder("alice",
			ssh.PublicKeys(queryOnlySigner{k1.Public, &signed}),
			ssh.PublicKeys(k2.Signer)))
		if err != nil {
			t.Fatalf("login with K2 after offering K1: %v", err)
		}
		defer c.Close()
		if signed.Load() == 0 {
			t.Fatalf("the server never accepted the offer of K1; the test proves nothing")
		}
		if w := whoamiJSON(t, c); w["user"] != "alice" || w["key_fingerprint"] != k2.Fingerprint {
			t.Errorf("whoami = %v, want alice with K2 %s (K1 is %s)", w, k2.Fingerprint, k1.Fingerprint)
		}
		s.waitAudit(t, "alice's login with K2", acceptedLogin("alice", k2.Fingerprint))
	})

	t.Run("offer K1 then K2, sign with K1: the session is K1's", func(t *testing.T) {
		var signed1, signed2 atomic.Int32
		c, err := s.dial(authInOrder("alice",
			ssh.PublicKeys(queryOnlySigner{k1.Public, &signed1}),
			ssh.PublicKeys(queryOnlySigner{k2.Public, &signed2}),
			ssh.PublicKeys(k1.Signer)))
		if err != nil {
			t.Fatalf("login: %v", err)
		}
		defer c.Close()
		if signed1.Load() == 0 || signed2.Load() == 0 {
			t.Fatalf("the server did not accept both offers (%d, %d); the test proves nothing", signed1.Load(), signed2.Load())
		}
		if w := whoamiJSON(t, c); w["key_fingerprint"] != k1.Fingerprint {
			t.Errorf("whoami key = %s, want K1 %s (the last offered was K2 %s)", w["key_fingerprint"], k1.Fingerprint, k2.Fingerprint)
		}
	})

	t.Run("offer alice's key, sign with bob's: not alice", func(t *testing.T) {
		var signed atomic.Int32
		c, err := s.dial(authInOrder("alice",
			ssh.PublicKeys(queryOnlySigner{k1.Public, &signed}, bob.Signer),
			ssh.PublicKeys(bob.Signer)))
		if err == nil {
			defer c.Close()
			out, _ := runOnClient(t, c, "whoami")
			t.Fatalf("logged in as alice having only offered her key and signed with bob's; whoami:\n%s", out)
		}
		if signed.Load() == 0 {
			t.Fatalf("the server never accepted the offer of alice's key; the test proves nothing")
		}
		s.waitAudit(t, "alice refused", refusedLogin("alice", ""))
	})

	t.Run("only offering alice's key: not alice", func(t *testing.T) {
		var signed atomic.Int32
		c, err := s.dial(authInOrder("alice", ssh.PublicKeys(queryOnlySigner{k1.Public, &signed})))
		if err == nil {
			c.Close()
			t.Fatalf("logged in without any signature")
		}
	})
}

func TestE2EHostKey(t *testing.T) {
	t.Parallel()
	alice := newKey(t, "alice")
	hostKeyOf := func(t *testing.T, s *server) ssh.PublicKey {
		t.Helper()
		var got ssh.PublicKey
		cfg := &ssh.ClientConfig{
			User: "alice",
			Auth: []ssh.AuthMethod{ssh.PublicKeys(alice.Signer)},
			HostKeyCallback: func(_ string, _ net.Addr, key ssh.PublicKey) error {
				got = key
				return nil
			},
		}
		c, err := s.dial(cfg)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		c.Close()
		return got
	}

	s1 := startServer(t, serverOptions{})
	s1.addKey(t, "alice", alice)
	k1 := hostKeyOf(t, s1)
	fp := ssh.FingerprintSHA256(k1)
	if k1.Type() != ssh.KeyAlgoED25519 {
		t.Errorf("host key type %s, want ed25519", k1.Type())
	}
	if !strings.Contains(s1.Log(), "host key created") || !strings.Contains(s1.Log(), fp) {
		t.Errorf("the first start should log the created host key %s:\n%s", fp, s1.Log())
	}
	path := filepath.Join(s1.DataDir, "host_ed25519")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %04o, want 0600", path, st.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.ParsePrivateKey(data)
	if err != nil {
		t.Fatalf("host key file: %v", err)
	}
	if got := ssh.FingerprintSHA256(signer.PublicKey()); got != fp {
		t.Errorf("the server presents %s but %s holds %s", fp, path, got)
	}
	s1.stop(t)

	s2 := startServer(t, serverOptions{DataDir: s1.DataDir})
	if got := ssh.FingerprintSHA256(hostKeyOf(t, s2)); got != fp {
		t.Errorf("host key changed across a restart: %s then %s", fp, got)
	}
	if !strings.Contains(s2.Log(), "host key loaded") {
		t.Errorf("the second start should log a loaded host key:\n%s", s2.Log())
	}
}

func TestE2EStartRefused(t *testing.T) {
	t.Parallel()
	// writeHostKey puts an ed25519 private key at <data>/host_ed25519 with mode perm.
	writeHostKey := func(t *testing.T, perm os.FileMode) string {
		t.Helper()
		dataDir := filepath.Join(t.TempDir(), "data")
		if err := os.MkdirAll(dataDir, 0o700); err != nil {
			t.Fatal(err)
		}
		k := newKey(t, "host")
		data, err := os.ReadFile(k.Path)
		if err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dataDir, "host_ed25519")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(path, perm); err != nil {
			t.Fatal(err)
		}
		return dataDir
	}
	for _, perm := range []os.FileMode{0o644, 0o640, 0o604} {
		t.Run(fmt.Sprintf("host key %04o", perm), func(t *testing.T) {
			t.Parallel()
			code, log := runServerToExit(t, serverOptions{DataDir: writeHostKey(t, perm)})
			if code == 0 {
				t.Errorf("exit status 0, want non-zero")
			}
			if !strings.Contains(log, "too open") || !strings.Contains(log, "host_ed25519") {
				t.Errorf("output should name the host key and say it is too open:\n%s", log)
			}
		})
	}
	t.Run("host key created by a previous start, then chmod 0644", func(t *testing.T) {
		t.Parallel()
		s := startServer(t, serverOptions{})
		s.stop(t)
		if err := os.Chmod(filepath.Join(s.DataDir, "host_ed25519"), 0o644); err != nil {
			t.Fatal(err)
		}
		code, log := runServerToExit(t, serverOptions{DataDir: s.DataDir})
		if code == 0 || !strings.Contains(log, "too open") {
			t.Errorf("exit %d, want non-zero saying too open:\n%s", code, log)
		}
	})
	configs := []struct {
		name, yaml, want string
	}{
		{"unknown field", "log_level: info\nlistn: \":2222\"\n", "listn"},
		{"unknown nested field", "limits:\n  idle_timout: 5m\n", "idle_timout"},
		{"bad value", "limits:\n  max_sessions_per_user: 0\n", "limits.max_sessions_per_user"},
		{"bad gitlab url", "gitlab:\n  url: gitlab.example.com\n", "gitlab.url"},
	}
	for _, c := range configs {
		t.Run("config "+c.name, func(t *testing.T) {
			t.Parallel()
			code, log := runServerToExit(t, serverOptions{Config: c.yaml})
			if code == 0 {
				t.Errorf("exit status 0, want non-zero")
			}
			if !strings.Contains(log, c.want) {
				t.Errorf("output does not name %q:\n%s", c.want, log)
			}
		})
	}
	t.Run("bad env value", func(t *testing.T) {
		t.Parallel()
		code, log := runServerToExit(t, serverOptions{Env: []string{"WM_TAS=ok,not ok!"}})
		if code == 0 || !strings.Contains(log, "tas") {
			t.Errorf("exit %d, want non-zero naming tas:\n%s", code, log)
		}
	})
}

// --- the dashboard ---

// openDashboard logs user in with a terminal of cols x rows and waits for the dashboard.
func (s *server) openDashboard(t *testing.T, key *testKey, user, role string, cols, rows int) *terminal {
	t.Helper()
	tm := s.openTerminal(t, key, user, cols, rows)
	tm.waitText("WhaleMountain", user+" ("+role+")", "[1 Containers]", "[5 Runner]")
	return tm
}

// tabBar returns the row of the tab bar and the screen column of each "[N " label.
func tabBar(lines []string) (row int, cols []int) {
	row = findLine(lines, "[1 ")
	if row < 0 {
		return -1, nil
	}
	line := lines[row]
	for i := 1; ; i++ {
		idx := strings.Index(line, fmt.Sprintf("[%d ", i))
		if idx < 0 {
			return row, cols
		}
		cols = append(cols, ansi.StringWidth(line[:idx]))
	}
}

// activeTab is the 1-based number of the tab whose label is drawn unlike all the others, 0
// if there is no such single one.
func (tm *terminal) activeTab(lines []string) int {
	row, cols := tabBar(lines)
	if row < 0 || len(cols) < 3 {
		return 0
	}
	active := 0
	for i, c := range cols {
		st := tm.styleAt(c+1, row) // the digit
		same := 0
		for j, d := range cols {
			if j != i {
				if o := tm.styleAt(d+1, row); st.Equal(&o) {
					same++
				}
			}
		}
		if same == 0 {
			if active != 0 {
				return 0
			}
			active = i + 1
		}
	}
	return active
}

// layoutFits reports whether the frame is drawn for a cols-wide screen: the header ends
// with "user (role)" one cell before the right edge, the tab bar's rule reaches the edge,
// and the bottom row is the footer ending in "q quit".
func layoutFits(lines []string, cols, rows int, who string) error {
	if len(lines) != rows {
		return fmt.Errorf("%d rows, want %d", len(lines), rows)
	}
	h := findLine(lines, "WhaleMountain")
	if h < 0 || !strings.HasSuffix(lines[h], who) || cellWidth(lines[h]) != cols-1 {
		return fmt.Errorf("header row %d is not %d cells ending in %q", h, cols-1, who)
	}
	row, _ := tabBar(lines)
	if row < 0 || cellWidth(lines[row]) != cols || !strings.HasSuffix(lines[row], "─") {
		return fmt.Errorf("tab bar is not %d cells of rule", cols)
	}
	foot := lines[rows-1]
	if !strings.HasSuffix(foot, "q quit") || cellWidth(foot) != cols-1 {
		return fmt.Errorf("bottom row %q is not the footer ending at column %d", foot, cols-1)
	}
	return nil
}

func TestE2EDashboard(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{Config: "server_name: gpu-e2e\n"})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)

	tm := s.openDashboard(t, alice, "alice", "student", 100, 30)
	lines := tm.waitScreen("the frame drawn for 100x30", func(ls []string) bool {
		return layoutFits(ls, 100, 30, "alice (student)") == nil
	})
	if !screenHas(lines, "WhaleMountain · gpu-e2e") {
		t.Errorf("header does not name the server:\n%s", tm.dump())
	}
	if got := tm.activeTab(lines); got != 1 {
		t.Errorf("active tab %d at start, want 1", got)
	}

	tm.send("?")
	tm.waitText("Everywhere", "next tab", "quit")
	tm.send("x") // any key closes the help
	tm.waitGone("Everywhere")

	tm.send("3")
	lines = tm.waitScreen("tab 3 active", func(ls []string) bool { return tm.activeTab(ls) == 3 })
	row, _ := tabBar(lines)
	gpuLine := false
	for i := row + 1; i < len(lines)-1; i++ {
		if strings.Contains(lines[i], "GPU") {
			gpuLine = true
		}
	}
	if !gpuLine {
		t.Errorf("the GPUs tab shows no line about GPUs:\n%s", tm.dump())
	}

	tm.send("\t")
	tm.waitScreen("tab 4 active after tab", func(ls []string) bool { return tm.activeTab(ls) == 4 })

	tm.resize(80, 24)
	tm.waitScreen("the frame redrawn for 80x24", func(ls []string) bool {
		return layoutFits(ls, 80, 24, "alice (student)") == nil
	})
	tm.resize(120, 40)
	tm.waitScreen("the frame redrawn for 120x40", func(ls []string) bool {
		return layoutFits(ls, 120, 40, "alice (student)") == nil
	})

	tm.send("q")
	if code := tm.waitExit(sshTimeout); code != 0 {
		t.Errorf("ssh exited %d after q, want 0", code)
	}
	s.waitAudit(t, "the dashboard login", func(e auditEntry) bool {
		return e.Action == "login" && e.Result == "accepted" && e.User == "alice" && e.Target == "dashboard"
	})
}

func TestE2EDashboardCtrlC(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)
	tm := s.openDashboard(t, alice, "alice", "student", 80, 24)
	tm.send("\x03")
	if code := tm.waitExit(sshTimeout); code != 0 {
		t.Errorf("ssh exited %d after ctrl+c, want 0", code)
	}
}

func TestE2EGracefulStop(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{Config: "limits:\n  shutdown_grace: 2s\n"})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)
	tm := s.openDashboard(t, alice, "alice", "student", 100, 30)

	s.signal(t, syscall.SIGTERM)
	tm.waitText("server is stopping")
	if code := s.wait(t, 2*time.Second+stopTimeout); code != 0 {
		t.Errorf("server exited %d, want 0", code)
	}
	tm.waitExit(stopTimeout)
	for _, want := range []string{"stopping", "stopped"} {
		if !strings.Contains(s.Log(), want) {
			t.Errorf("server log does not say %q:\n%s", want, s.Log())
		}
	}
}

func TestE2EGracefulStopWithoutSessions(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	s.signal(t, syscall.SIGINT)
	if code := s.wait(t, stopTimeout); code != 0 {
		t.Errorf("server exited %d after SIGINT, want 0", code)
	}
}

func TestE2ESessionLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{Config: "limits:\n  max_sessions_per_user: 1\n"})
	alice, bob := newKey(t, "alice"), newKey(t, "bob")
	s.addKey(t, "alice", alice)
	s.addKey(t, "bob", bob)

	tm := s.openDashboard(t, alice, "alice", "student", 80, 24)
	r := s.ssh(t, alice, "alice", "whoami")
	if r.Code == 0 || !strings.Contains(r.Stderr, "too many open sessions") {
		t.Errorf("a second session of alice: want a failure saying too many open sessions, got %s", r)
	}
	if strings.Contains(r.Stdout, alice.Fingerprint) {
		t.Errorf("the refused session ran the command anyway")
	}
	s.waitAudit(t, "alice's second session refused", refusedLogin("alice", "too many open sessions"))
	s.mustLogIn(t, bob, "bob", "student", "keys-dir") // the limit is per user

	tm.send("q")
	if code := tm.waitExit(sshTimeout); code != 0 {
		t.Errorf("dashboard ssh exited %d", code)
	}
	// The closed session frees its place.
	if !poll(pollTimeout, func() bool { return s.ssh(t, alice, "alice", "whoami").Code == 0 }) {
		t.Errorf("alice cannot log in after closing her only session")
	}
}

func TestE2EFailureLimit(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{Config: "limits:\n  failures_per_minute: 3\n"})
	alice, mallory := newKey(t, "alice"), newKey(t, "mallory")
	s.addKey(t, "alice", alice)

	s.mustLogIn(t, alice, "alice", "student", "keys-dir")
	// Two failed logins are within the limit: the right key still works.
	s.mustBeRefused(t, mallory, "alice")
	s.mustBeRefused(t, mallory, "alice")
	s.mustLogIn(t, alice, "alice", "student", "keys-dir")
	// The third reaches it: from now on even the right key is refused.
	s.mustBeRefused(t, mallory, "alice")
	s.mustBeRefused(t, alice, "alice")
	s.waitAudit(t, "a refusal for too many failures", func(e auditEntry) bool {
		return e.Action == "login" && e.Result == "refused" && strings.Contains(e.Reason, "too many failures")
	})
}

func TestE2EAuditLog(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{})
	alice, mallory := newKey(t, "alice"), newKey(t, "mallory")
	s.addKey(t, "alice", alice)

	s.mustLogIn(t, alice, "alice", "student", "keys-dir")
	s.mustBeRefused(t, mallory, "alice")
	s.mustBeRefused(t, mallory, "zed")
	s.waitAudit(t, "zed refused", refusedLogin("zed", "unknown user"))

	entries := readAudit(t, s.auditPath())
	accepted, refused := 0, 0
	for _, e := range entries {
		if e.Action != "login" {
			t.Errorf("unexpected action %q: %+v", e.Action, e)
		}
		if time.Since(e.Time) > time.Hour || time.Until(e.Time) > time.Minute {
			t.Errorf("entry time %v is not now", e.Time)
		}
		switch e.Result {
		case "accepted":
			accepted++
			if e.User != "alice" || e.Key != alice.Fingerprint || e.Source != "127.0.0.1" || e.Role != "student" {
				t.Errorf("accepted entry %+v", e)
			}
		case "refused":
			refused++
			if e.Source != "127.0.0.1" || e.Reason == "" {
				t.Errorf("refused entry %+v", e)
			}
		}
	}
	if accepted != 1 || refused != 2 {
		t.Errorf("%d accepted and %d refused entries, want 1 and 2:\n%+v", accepted, refused, entries)
	}
	st, err := os.Stat(s.auditPath())
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		t.Errorf("audit.log mode %04o: readable by others", st.Mode().Perm())
	}
}

func TestE2EMaxAuthTries(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{Config: "limits:\n  max_auth_tries: 2\n  failures_per_minute: 100\n"})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)
	var wrong []*testKey
	for i := 0; i < 5; i++ {
		wrong = append(wrong, newKey(t, fmt.Sprintf("wrong%d", i)))
	}
	// tryWith offers n wrong keys, then alice's.
	tryWith := func(n int) sshResult {
		var flags []string
		for _, k := range wrong[1:n] {
			flags = append(flags, "-i", k.Path)
		}
		flags = append(flags, "-i", alice.Path)
		return s.sshFlags(t, wrong[0], "alice", flags, "whoami")
	}
	if r := tryWith(1); r.Code != 0 || !strings.Contains(r.Stdout, alice.Fingerprint) {
		t.Errorf("one wrong key before the right one: want accepted, got %s", r)
	}
	// Every key offered counts: two wrong ones use up max_auth_tries 2.
	if r := tryWith(2); r.Code != 255 {
		t.Errorf("two wrong keys before the right one with max_auth_tries 2: want refused, got %s", r)
	}
	s.waitAudit(t, "refusal for too many keys", func(e auditEntry) bool {
		return e.Action == "login" && e.Result == "refused" && strings.Contains(e.Reason, "too many keys offered (limit 2)") && e.Key != ""
	})
}

func TestE2ELoginGraceAndIdleTimeout(t *testing.T) {
	t.Parallel()
	s := startServer(t, serverOptions{Config: "limits:\n  login_grace: 1s\n  idle_timeout: 1s\n"})
	alice := newKey(t, "alice")
	s.addKey(t, "alice", alice)

	t.Run("a connection that never authenticates is closed", func(t *testing.T) {
		c, err := net.Dial("tcp", s.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(pollTimeout))
		buf := make([]byte, 256)
		var got []byte
		for {
			n, err := c.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					t.Fatalf("still open after %v without authenticating; read %q", pollTimeout, got)
				}
				break
			}
		}
		if !strings.HasPrefix(string(got), "SSH-2.0-") {
			t.Errorf("no SSH banner before the close: %q", got)
		}
	})
	t.Run("an idle connection is closed", func(t *testing.T) {
		tm := s.openDashboard(t, alice, "alice", "student", 80, 24)
		tm.waitExit(pollTimeout)
		// The dashboard ended before the connection closed: the terminal left the alternate
		// screen and the user was told why.
		if lines := tm.lines(); !screenHas(lines, "no activity for 1s; closing.") || screenHas(lines, "[1 Containers]") {
			t.Errorf("after the idle close the screen is:\n%s", tm.dump())
		}
	})
}
