package sshauth

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"whalemountain/backend/gitlab"
	"whalemountain/backend/gitlab/gitlabtest"
)

// newKey returns a fresh ed25519 public key and its authorized_keys line.
func newKey(t *testing.T) (ssh.PublicKey, string) {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pk, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pk)))
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 4, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logBuf collects log output from concurrent writers.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) Count(s string) int { return strings.Count(l.String(), s) }

func (l *logBuf) Logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

// env is a GitLab stand-in with a client, a clock and a log.
type env struct {
	srv    *gitlabtest.Server
	client *gitlab.Client
	clock  *clock
	logs   *logBuf
}

func newEnv(t *testing.T) *env {
	t.Helper()
	srv := gitlabtest.New(gitlabtest.WithToken("tok"))
	t.Cleanup(srv.Close)
	c, err := gitlab.New(srv.URL(), "tok", gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	return &env{srv: srv, client: c, clock: newClock(), logs: &logBuf{}}
}

func (e *env) source(opts GitLabOptions) *GitLabSource {
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = e.logs.Logger()
	}
	return NewGitLabSource(e.client, opts)
}

func (e *env) auth(t *testing.T, opts Options) *Authenticator {
	t.Helper()
	if opts.Now == nil {
		opts.Now = e.clock.Now
	}
	if opts.Logger == nil {
		opts.Logger = e.logs.Logger()
	}
	a, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// reason is the short reason of a Check error, "" for nil.
func reason(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		return ""
	}
	re, ok := err.(*RefusedError)
	if !ok {
		t.Fatalf("error %T %v is not a *RefusedError", err, err)
	}
	if re.Error() != re.Reason {
		t.Fatalf("Error() = %q, Reason = %q", re.Error(), re.Reason)
	}
	return re.Reason
}

func sameKeys(a, b ssh.PublicKey) bool { return bytes.Equal(a.Marshal(), b.Marshal()) }
