// Package gitlab is the room that talks to the department GitLab: which SSH keys a user has
// registered, whether the account may log in, and what level of access they hold in a group.
// It also lists the container registry repositories of a user's own projects.
// It is a thin layer over gitlab.com/gitlab-org/api/client-go that turns GitLab's answers into
// the few facts the rest of the server needs, and keeps "GitLab said no" (ErrNoSuchUser,
// ErrBlocked) apart from "GitLab could not be asked" (IsUnavailable).
package gitlab

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	gl "gitlab.com/gitlab-org/api/client-go"
)

// DefaultTimeout bounds each method call (all the pages it fetches) unless WithTimeout says
// otherwise.
const DefaultTimeout = 10 * time.Second

// Client asks one GitLab instance. It is safe for concurrent use.
type Client struct {
	api     *gl.Client
	timeout time.Duration
	now     func() time.Time
}

// Option adjusts a Client built by New.
type Option func(*config)

type config struct {
	httpClient *http.Client
	timeout    time.Duration
	noRetries  bool
	now        func() time.Time
}

// WithoutRetries turns off client-go's retries of 429 and 5xx answers (five by default),
// so a failing GitLab is reported at once. Tests want this.
func WithoutRetries() Option { return func(c *config) { c.noRetries = true } }

// WithHTTPClient sends requests through hc (a custom transport, proxy or TLS setup).
func WithHTTPClient(hc *http.Client) Option { return func(c *config) { c.httpClient = hc } }

// WithTimeout bounds each method call, all pages included. Zero or less means DefaultTimeout.
func WithTimeout(d time.Duration) Option { return func(c *config) { c.timeout = d } }

// WithClock sets the clock used to decide whether a key has expired.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// New returns a client for the GitLab at baseURL (e.g. "https://gitlab.example.com"; the
// "/api/v4" suffix is added when missing) authenticating with the personal, group or
// project access token token (sent as PRIVATE-TOKEN; empty sends none).
func New(baseURL, token string, opts ...Option) (*Client, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gitlab: base URL %q: want http(s)://host[/path]", baseURL)
	}
	cfg := config{timeout: DefaultTimeout, now: time.Now}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.timeout <= 0 {
		cfg.timeout = DefaultTimeout
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	glOpts := []gl.ClientOptionFunc{gl.WithBaseURL(baseURL)}
	if cfg.noRetries {
		glOpts = append(glOpts, gl.WithoutRetries())
	}
	if cfg.httpClient != nil {
		glOpts = append(glOpts, gl.WithHTTPClient(cfg.httpClient))
	}
	api, err := gl.NewClient(token, glOpts...)
	if err != nil {
		return nil, fmt.Errorf("gitlab: client for %s: %w", baseURL, err)
	}
	return &Client{api: api, timeout: cfg.timeout, now: cfg.now}, nil
}

// BaseURL is the API root requests go to, e.g. "https://gitlab.example.com/api/v4/".
func (c *Client) BaseURL() string { return c.api.BaseURL().String() }

// call bounds ctx by the client's timeout.
func (c *Client) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, c.timeout)
}

// ErrNoSuchUser means GitLab has no user by that name.
var ErrNoSuchUser = errors.New("no such gitlab user")

// ErrBlocked means the GitLab account exists but may not log in (blocked, deactivated,
// banned, awaiting approval, or locked). The error returned is a *BlockedError.
var ErrBlocked = errors.New("gitlab user may not log in")

// BlockedError says why an existing GitLab account may not log in. errors.Is(err, ErrBlocked)
// holds for it.
type BlockedError struct {
	Username string
	State    string // GitLab's state: "blocked", "deactivated", "banned", ... ("active" when only locked)
	Locked   bool   // locked after too many failed sign-ins
}

// Reason is the short form, "state=blocked" or "state=active, locked".
func (e *BlockedError) Reason() string {
	r := "state=" + e.State
	if e.Locked {
		r += ", locked"
	}
	return r
}

func (e *BlockedError) Error() string {
	return fmt.Sprintf("gitlab user %q may not log in (%s)", e.Username, e.Reason())
}

// Is makes errors.Is(err, ErrBlocked) true.
func (e *BlockedError) Is(target error) bool { return target == ErrBlocked }

// IsUnavailable reports whether err means GitLab could not give an answer: the network
// failed, the call timed out, the connection was cut, GitLab answered 5xx or 429 (too many
// requests), or the body was not GitLab's JSON (a proxy's error page). It is false for
// GitLab's definite answers (ErrNoSuchUser, ErrBlocked, 404, other 4xx) and for a context
// the caller cancelled.
func IsUnavailable(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, ErrNoSuchUser) || errors.Is(err, ErrBlocked) || errors.Is(err, gl.ErrNotFound) {
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	var er *gl.ErrorResponse
	if errors.As(err, &er) {
		if er.Response == nil {
			return true
		}
		s := er.Response.StatusCode
		return s >= 500 || s == http.StatusTooManyRequests
	}
	var (
		netErr net.Error
		urlErr *url.Error
		synErr *json.SyntaxError
		typErr *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &netErr), errors.As(err, &urlErr),
		errors.As(err, &synErr), errors.As(err, &typErr),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return true
	}
	// A few transport failures arrive without a typed wrapper.
	msg := err.Error()
	return strings.Contains(msg, "connection refused") || strings.Contains(msg, "connection reset")
}
