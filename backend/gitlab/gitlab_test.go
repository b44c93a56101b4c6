package gitlab_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"whalemountain/backend/gitlab"
	"whalemountain/backend/gitlab/gitlabtest"
)

func newKey(t *testing.T, comment string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sk))) + " " + comment
}

func newClient(t *testing.T, srv *gitlabtest.Server, opts ...gitlab.Option) *gitlab.Client {
	t.Helper()
	c, err := gitlab.New(srv.URL(), "secret", append([]gitlab.Option{gitlab.WithoutRetries()}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "gitlab.example.com", "ftp://gitlab.example.com", "http://", "://x"} {
		if _, err := gitlab.New(u, "t"); err == nil {
			t.Errorf("New(%q) accepted", u)
		}
	}
	c, err := gitlab.New("https://gitlab.example.com", "t")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c.BaseURL(), "https://gitlab.example.com/api/v4/"; got != want {
		t.Errorf("BaseURL = %q, want %q", got, want)
	}
}

func TestUserKeysFiltersExpiredAndSigningKeys(t *testing.T) {
	srv := gitlabtest.New(gitlabtest.WithToken("secret"))
	defer srv.Close()
	past := time.Now().Add(-time.Hour)
	future := time.Now().Add(24 * time.Hour)
	auth, both, later, expired, signing := newKey(t, "auth"), newKey(t, "both"), newKey(t, "later"), newKey(t, "expired"), newKey(t, "signing")
	id := srv.AddUser(gitlabtest.User{Username: "alice", Name: "Alice A", Keys: []gitlabtest.Key{
		{Key: auth, UsageType: "auth"},
		{Key: both, UsageType: "auth_and_signing"},
		{Key: later, ExpiresAt: &future},
		{Key: expired, ExpiresAt: &past},
		{Key: signing, UsageType: "signing"},
	}})
	c := newClient(t, srv)

	u, keys, err := c.UserKeys(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if u.ID != id || u.Username != "alice" || u.Name != "Alice A" || u.State != "active" || u.Locked {
		t.Errorf("user = %+v", u)
	}
	var got []string
	for _, k := range keys {
		got = append(got, k.Key)
	}
	want := []string{auth, both, later}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("keys = %q\nwant %q", got, want)
	}
	if keys[2].ExpiresAt == nil || !keys[2].ExpiresAt.Equal(future) {
		t.Errorf("expires = %v, want %v", keys[2].ExpiresAt, future)
	}
	if keys[0].Title != "auth" || keys[0].ID == 0 || keys[0].UsageType != "auth" {
		t.Errorf("key = %+v", keys[0])
	}
}

func TestUserKeysIgnoresCase(t *testing.T) {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddUser(gitlabtest.User{Username: "Bob", Keys: []gitlabtest.Key{{Key: newKey(t, "b")}}})
	u, keys, err := newClient(t, srv).UserKeys(context.Background(), "bob")
	if err != nil || u.Username != "Bob" || len(keys) != 1 {
		t.Fatalf("UserKeys = %+v, %d keys, %v", u, len(keys), err)
	}
}

func TestUserKeysExpiryUsesClock(t *testing.T) {
	srv := gitlabtest.New()
	defer srv.Close()
	exp := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	srv.AddUser(gitlabtest.User{Username: "carol", Keys: []gitlabtest.Key{{Key: newKey(t, "c"), ExpiresAt: &exp}}})
	for _, tc := range []struct {
		now  time.Time
		want int
	}{
		{exp.Add(-time.Second), 1},
		{exp, 0},
		{exp.Add(time.Second), 0},
	} {
		c := newClient(t, srv, gitlab.WithClock(func() time.Time { return tc.now }))
		_, keys, err := c.UserKeys(context.Background(), "carol")
		if err != nil || len(keys) != tc.want {
			t.Errorf("at %v: %d keys, %v; want %d", tc.now, len(keys), err, tc.want)
		}
	}
}

func TestUserKeysNoSuchUser(t *testing.T) {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddUser(gitlabtest.User{Username: "alice"})
	_, _, err := newClient(t, srv).UserKeys(context.Background(), "mallory")
	if !errors.Is(err, gitlab.ErrNoSuchUser) {
		t.Fatalf("err = %v, want ErrNoSuchUser", err)
	}
	if gitlab.IsUnavailable(err) {
		t.Error("IsUnavailable(no such user) = true")
	}
}

func TestUserKeysBlocked(t *testing.T) {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddUser(gitlabtest.User{Username: "blocked", State: "blocked", Keys: []gitlabtest.Key{{Key: newKey(t, "x")}}})
	srv.AddUser(gitlabtest.User{Username: "deact", State: "deactivated"})
	srv.AddUser(gitlabtest.User{Username: "locked", Locked: true})
	c := newClient(t, srv)
	for user, reason := range map[string]string{
		"blocked": "state=blocked",
		"deact":   "state=deactivated",
		"locked":  "state=active, locked",
	} {
		u, keys, err := c.UserKeys(context.Background(), user)
		if !errors.Is(err, gitlab.ErrBlocked) {
			t.Errorf("%s: err = %v, want ErrBlocked", user, err)
			continue
		}
		var be *gitlab.BlockedError
		if !errors.As(err, &be) || be.Reason() != reason {
			t.Errorf("%s: err = %v, want reason %q", user, err, reason)
		}
		if u.Username != user || keys != nil {
			t.Errorf("%s: user %+v keys %v", user, u, keys)
		}
		if gitlab.IsUnavailable(err) {
			t.Errorf("%s: IsUnavailable = true", user)
		}
	}
}

func TestUserKeysPaginates(t *testing.T) {
	srv := gitlabtest.New()
	defer srv.Close()
	var keys []gitlabtest.Key
	for i := range 250 {
		keys = append(keys, gitlabtest.Key{Key: newKey(t, fmt.Sprintf("k%d", i))})
	}
	srv.AddUser(gitlabtest.User{Username: "many", Keys: keys})
	before := srv.Requests()
	_, got, err := newClient(t, srv).UserKeys(context.Background(), "many")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 250 {
		t.Fatalf("got %d keys, want 250", len(got))
	}
	for i, k := range got {
		if k.Key != keys[i].Key {
			t.Fatalf("key %d out of order or wrong", i)
		}
	}
	// One user lookup and three pages of 100.
	if n := srv.Requests() - before; n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
}

func TestTokenIsSent(t *testing.T) {
	srv := gitlabtest.New(gitlabtest.WithToken("secret"))
	defer srv.Close()
	srv.AddUser(gitlabtest.User{Username: "alice"})
	c, err := gitlab.New(srv.URL(), "wrong", gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	_, _, err = c.UserKeys(context.Background(), "alice")
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong token: err = %v", err)
	}
	if gitlab.IsUnavailable(err) || errors.Is(err, gitlab.ErrNoSuchUser) {
		t.Errorf("wrong token classified as unavailable or no such user: %v", err)
	}
	if _, _, err := newClient(t, srv).UserKeys(context.Background(), "alice"); err != nil {
		t.Errorf("right token: %v", err)
	}
}

func TestGroupAccessLevel(t *testing.T) {
	srv := gitlabtest.New()
	defer srv.Close()
	ta := srv.AddUser(gitlabtest.User{Username: "ta"})
	head := srv.AddUser(gitlabtest.User{Username: "head"})
	student := srv.AddUser(gitlabtest.User{Username: "student"})
	srv.SetMember("dept/tas", ta, gitlab.Developer)
	srv.SetMember("dept", head, gitlab.Owner)
	srv.SetMember("dept/tas", student, gitlab.Guest)
	srv.SetMember("dept/ta.2026", ta, gitlab.Maintainer)
	c := newClient(t, srv)

	for _, tc := range []struct {
		group string
		user  int64
		want  int
	}{
		{"dept/tas", ta, gitlab.Developer},
		{"dept/tas", head, gitlab.Owner}, // inherited from dept
		{"dept/tas", student, gitlab.Guest},
		{"dept", ta, gitlab.NoAccess},
		{"dept/ta.2026", ta, gitlab.Maintainer}, // '.' is escaped as %2E
		{"nope/group", ta, gitlab.NoAccess},     // no such group
		{"dept/tas", 999, gitlab.NoAccess},      // no such user
		{fmt.Sprint(srv.GroupID("dept/tas")), ta, gitlab.Developer},
	} {
		got, err := c.GroupAccessLevel(context.Background(), tc.group, tc.user)
		if err != nil || got != tc.want {
			t.Errorf("GroupAccessLevel(%q, %d) = %d, %v; want %d", tc.group, tc.user, got, err, tc.want)
		}
	}
}

func TestUnavailable(t *testing.T) {
	ctx := context.Background()

	t.Run("down", func(t *testing.T) {
		srv := gitlabtest.New()
		defer srv.Close()
		id := srv.AddUser(gitlabtest.User{Username: "alice"})
		srv.SetDown(true)
		c := newClient(t, srv)
		_, _, err := c.UserKeys(ctx, "alice")
		if !gitlab.IsUnavailable(err) {
			t.Errorf("UserKeys while down: IsUnavailable(%v) = false", err)
		}
		_, err = c.GroupAccessLevel(ctx, "dept", id)
		if !gitlab.IsUnavailable(err) {
			t.Errorf("GroupAccessLevel while down: IsUnavailable(%v) = false", err)
		}
		srv.SetDown(false)
		if _, _, err := c.UserKeys(ctx, "alice"); err != nil {
			t.Errorf("after coming back: %v", err)
		}
	})

	t.Run("refused", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		c, err := gitlab.New("http://"+addr, "", gitlab.WithoutRetries())
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = c.UserKeys(ctx, "alice")
		if !gitlab.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = false", err)
		}
	})

	for _, tc := range []struct {
		name   string
		status int
		body   string
		want   bool
	}{
		{"502", http.StatusBadGateway, `<html>bad gateway</html>`, true},
		{"503", http.StatusServiceUnavailable, `{"message":"503 Service Unavailable"}`, true},
		{"500", http.StatusInternalServerError, `{"message":"500 Internal Server Error"}`, true},
		{"429", http.StatusTooManyRequests, `{"message":"Retry later"}`, true},
		{"200 html", http.StatusOK, `<html>captive portal</html>`, true},
		{"403", http.StatusForbidden, `{"message":"403 Forbidden"}`, false},
		{"404", http.StatusNotFound, `{"message":"404 Not Found"}`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tc.status)
				fmt.Fprint(w, tc.body)
			}))
			defer hs.Close()
			c, err := gitlab.New(hs.URL, "", gitlab.WithoutRetries())
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = c.UserKeys(ctx, "alice")
			if err == nil {
				t.Fatal("no error")
			}
			if got := gitlab.IsUnavailable(err); got != tc.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}

	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-release:
			}
		}))
		defer hs.Close()
		defer close(release)
		c, err := gitlab.New(hs.URL, "", gitlab.WithoutRetries(), gitlab.WithTimeout(20*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		_, _, err = c.UserKeys(ctx, "alice")
		if !gitlab.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = false", err)
		}
	})

	t.Run("cancelled by caller", func(t *testing.T) {
		srv := gitlabtest.New()
		defer srv.Close()
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, _, err := newClient(t, srv).UserKeys(cctx, "alice")
		if err == nil || gitlab.IsUnavailable(err) {
			t.Errorf("cancelled: err = %v, IsUnavailable = %v", err, gitlab.IsUnavailable(err))
		}
	})
}

func TestIsUnavailableTable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{gitlab.ErrNoSuchUser, false},
		{fmt.Errorf("x: %w", gitlab.ErrNoSuchUser), false},
		{&gitlab.BlockedError{Username: "a", State: "blocked"}, false},
		{context.Canceled, false},
		{context.DeadlineExceeded, true},
		{fmt.Errorf("x: %w", context.DeadlineExceeded), true},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, true},
		{errors.New("something else"), false},
	} {
		if got := gitlab.IsUnavailable(tc.err); got != tc.want {
			t.Errorf("IsUnavailable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
