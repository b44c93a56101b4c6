package sshauth

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"whalemountain/backend"
	"whalemountain/backend/gitlab"
	"whalemountain/backend/gitlab/gitlabtest"
)

const remote = "192.0.2.7:50022"

func TestNewNeedsSources(t *testing.T) {
	if _, err := New(Options{}); err == nil {
		t.Error("New without sources succeeded")
	}
	if _, err := New(Options{Sources: []KeySource{nil}}); err == nil {
		t.Error("New with a nil source succeeded")
	}
}

func TestGitLabLogins(t *testing.T) {
	e := newEnv(t)
	good, goodLine := newKey(t)
	other, _ := newKey(t)
	expired, expiredLine := newKey(t)
	signing, signingLine := newKey(t)
	both, bothLine := newKey(t)
	past := time.Now().Add(-time.Minute)
	e.srv.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{
		{Key: goodLine + " alice@laptop", UsageType: "auth"},
		{Key: expiredLine, ExpiresAt: &past},
		{Key: signingLine, UsageType: "signing"},
		{Key: bothLine, UsageType: "auth_and_signing"},
	}})
	blocked, blockedLine := newKey(t)
	e.srv.AddUser(gitlabtest.User{Username: "bob", State: "blocked", Keys: []gitlabtest.Key{{Key: blockedLine}}})
	e.srv.AddUser(gitlabtest.User{Username: "carol", Locked: true, Keys: []gitlabtest.Key{{Key: blockedLine}}})
	e.srv.AddUser(gitlabtest.User{Username: "dave", State: "deactivated", Keys: []gitlabtest.Key{{Key: blockedLine}}})

	a := e.auth(t, Options{Sources: []KeySource{e.source(GitLabOptions{})}, FailureLimit: -1})
	ctx := context.Background()

	id, err := a.Check(ctx, "alice", good, remote)
	if err != nil {
		t.Fatal(err)
	}
	want := backend.Identity{User: "alice", Role: backend.RoleStudent, KeyFingerprint: ssh.FingerprintSHA256(good), KeySource: "gitlab", RemoteAddr: remote}
	if id != want {
		t.Errorf("identity = %+v\nwant       %+v", id, want)
	}

	for _, tc := range []struct {
		name   string
		user   string
		key    ssh.PublicKey
		reason string
		is     error
	}{
		{"auth_and_signing key", "alice", both, "", nil},
		{"user name in capitals", "ALICE", good, "", nil},
		{"wrong key", "alice", other, "key not registered", ErrKeyNotRegistered},
		{"expired key dropped", "alice", expired, "key not registered", ErrKeyNotRegistered},
		{"signing-only key dropped", "alice", signing, "key not registered", ErrKeyNotRegistered},
		{"unknown user", "mallory", good, "unknown user", ErrUnknownUser},
		{"blocked user", "bob", blocked, "user blocked: state=blocked", ErrBlocked},
		{"locked user", "carol", blocked, "user blocked: state=active, locked", ErrBlocked},
		{"deactivated user", "dave", blocked, "user blocked: state=deactivated", ErrBlocked},
		{"invalid name", "../alice", good, "unknown user", ErrUnknownUser},
		{"nil key", "alice", nil, "key not registered", ErrKeyNotRegistered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.Check(ctx, tc.user, tc.key, remote)
			if got := reason(t, err); got != tc.reason {
				t.Fatalf("reason = %q, want %q (err %v)", got, tc.reason, err)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
			if err != nil && id != (backend.Identity{}) {
				t.Errorf("refusal came with an identity: %+v", id)
			}
			if err == nil && id.User != "alice" {
				t.Errorf("user = %q, want alice", id.User)
			}
		})
	}
}

func TestGitLabPagination(t *testing.T) {
	e := newEnv(t)
	var keys []gitlabtest.Key
	var last ssh.PublicKey
	for range 230 {
		k, l := newKey(t)
		keys = append(keys, gitlabtest.Key{Key: l})
		last = k
	}
	e.srv.AddUser(gitlabtest.User{Username: "hoarder", Keys: keys})
	a := e.auth(t, Options{Sources: []KeySource{e.source(GitLabOptions{})}})
	if _, err := a.Check(context.Background(), "hoarder", last, remote); err != nil {
		t.Fatalf("key on the third page: %v", err)
	}
	// The user, then three pages of keys.
	if n := e.srv.Requests(); n != 4 {
		t.Errorf("%d requests, want 4", n)
	}
}

func TestGitLabCache(t *testing.T) {
	e := newEnv(t)
	k, l := newKey(t)
	uid := e.srv.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{{Key: l}}})
	e.srv.SetMember("dept/tas", uid, gitlab.Developer)
	roles := NewRoleResolver(RoleConfig{GitLabGroup: "dept/tas", Now: e.clock.Now}, e.client)
	a := e.auth(t, Options{Sources: []KeySource{e.source(GitLabOptions{TTL: time.Minute})}, Roles: roles})
	ctx := context.Background()

	id, err := a.Check(ctx, "alice", k, remote)
	if err != nil || id.Role != backend.RoleTA {
		t.Fatalf("first check: %+v, %v", id, err)
	}
	warm := e.srv.Requests() // user, keys, membership
	if warm != 3 {
		t.Errorf("%d requests for a cold login, want 3", warm)
	}
	for range 5 {
		if _, err := a.Check(ctx, "alice", k, remote); err != nil {
			t.Fatal(err)
		}
		e.clock.Advance(10 * time.Second)
	}
	if n := e.srv.Requests(); n != warm {
		t.Errorf("%d requests within the TTL, want %d", n, warm)
	}
	e.clock.Advance(10 * time.Second) // 60s after the first lookup
	if _, err := a.Check(ctx, "alice", k, remote); err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Requests(); n != 2*warm {
		t.Errorf("%d requests after the TTL, want %d", n, 2*warm)
	}

	// Blocking on GitLab takes effect once the TTL has passed.
	e.srv.SetUserState(uid, "blocked", false)
	if _, err := a.Check(ctx, "alice", k, remote); err != nil {
		t.Fatalf("within TTL of the block: %v", err)
	}
	e.clock.Advance(time.Minute)
	if _, err := a.Check(ctx, "alice", k, remote); reason(t, err) != "user blocked: state=blocked" {
		t.Fatalf("after TTL of the block: %v", err)
	}
	e.srv.SetUserState(uid, "active", false)
	e.clock.Advance(time.Minute)

	// Negative answers are cached too.
	before := e.srv.Requests()
	for range 3 {
		if _, err := a.Check(ctx, "nobody", k, remote); reason(t, err) != "unknown user" {
			t.Fatal(err)
		}
	}
	if n := e.srv.Requests() - before; n != 1 {
		t.Errorf("%d requests for a repeated unknown user, want 1", n)
	}
	// A key added on GitLab is seen once the TTL has passed.
	k2, l2 := newKey(t)
	e.srv.AddUser(gitlabtest.User{Username: "nobody", Keys: []gitlabtest.Key{{Key: l2}}})
	if _, err := a.Check(ctx, "nobody", k2, remote); reason(t, err) != "unknown user" {
		t.Fatalf("within TTL: %v", err)
	}
	e.clock.Advance(time.Minute)
	if _, err := a.Check(ctx, "nobody", k2, remote); err != nil {
		t.Fatalf("after TTL: %v", err)
	}
}

func TestGitLabOutage(t *testing.T) {
	e := newEnv(t)
	k, l := newKey(t)
	e.srv.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{{Key: l}}})
	e.srv.AddUser(gitlabtest.User{Username: "bob", State: "blocked", Keys: []gitlabtest.Key{{Key: l}}})
	src := e.source(GitLabOptions{TTL: time.Minute, StaleFor: time.Hour, RetryAfter: 5 * time.Second})
	a := e.auth(t, Options{Sources: []KeySource{src}, FailureLimit: 3})
	ctx := context.Background()

	if _, err := a.Check(ctx, "alice", k, remote); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Check(ctx, "bob", k, remote); reason(t, err) != "user blocked: state=blocked" {
		t.Fatal(err)
	}
	e.srv.SetDown(true)

	// Within StaleFor: the keys last seen are served, and each use is logged.
	e.clock.Advance(2 * time.Minute)
	var afterFirst int
	for i := range 3 {
		id, err := a.Check(ctx, "alice", k, remote)
		if err != nil || id.KeySource != "gitlab" {
			t.Fatalf("stale check %d: %+v, %v", i, id, err)
		}
		if i == 0 {
			afterFirst = e.srv.Requests()
		}
	}
	if n := e.logs.Count("gitlab unreachable, using cached answer"); n != 3 {
		t.Errorf("logged %d stale uses, want 3:\n%s", n, e.logs)
	}
	// An outage costs one attempt per RetryAfter, not one per login.
	if n := e.srv.Requests(); n != afterFirst {
		t.Errorf("%d requests after the first failed attempt, want none", n-afterFirst)
	}
	if _, err := a.Check(ctx, "bob", k, remote); reason(t, err) != "user blocked: state=blocked" {
		t.Errorf("blocked user during outage: %v", err)
	}

	// A user never seen: a clear reason, not counted as the client's failure.
	for range 5 {
		_, err := a.Check(ctx, "carol", k, remote)
		if reason(t, err) != "gitlab unreachable" {
			t.Fatalf("unknown user during outage: %v", err)
		}
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("errors.Is(%v, ErrUnavailable) = false", err)
		}
		a.RecordRefusal(remote, err)
	}
	var ue *UnavailableError
	if _, err := src.Keys(ctx, "carol"); !errors.As(err, &ue) || ue.Source != "gitlab" ||
		err.Error()[:len("gitlab unreachable")] != "gitlab unreachable" {
		t.Errorf("source error = %v", err)
	}
	if err := a.Allow(remote); err != nil {
		t.Errorf("outage counted against the client: %v", err)
	}

	// Past StaleFor: refused.
	e.clock.Advance(time.Hour)
	if _, err := a.Check(ctx, "alice", k, remote); reason(t, err) != "gitlab unreachable" {
		t.Errorf("past StaleFor: %v", err)
	}

	// Back up: answers again at once.
	e.srv.SetDown(false)
	e.clock.Advance(5 * time.Second)
	if _, err := a.Check(ctx, "alice", k, remote); err != nil {
		t.Errorf("after recovery: %v", err)
	}
}

func TestGitLabConcurrentLookupsShareOneRequest(t *testing.T) {
	e := newEnv(t)
	k, l := newKey(t)
	e.srv.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{{Key: l}}})
	a := e.auth(t, Options{Sources: []KeySource{e.source(GitLabOptions{})}})
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			_, err := a.Check(context.Background(), "alice", k, remote)
			errs <- err
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Without sharing every lookup would cost two requests.
	if got := e.srv.Requests(); got >= 2*n {
		t.Errorf("%d requests for %d concurrent lookups", got, n)
	}
}

func TestRoles(t *testing.T) {
	e := newEnv(t)
	users := map[string]int64{}
	keys := map[string]ssh.PublicKey{}
	for _, name := range []string{"dev", "maint", "head", "reporter", "student", "listed"} {
		k, l := newKey(t)
		keys[name] = k
		users[name] = e.srv.AddUser(gitlabtest.User{Username: name, Keys: []gitlabtest.Key{{Key: l}}})
	}
	e.srv.SetMember("dept/tas", users["dev"], gitlab.Developer)
	e.srv.SetMember("dept/tas", users["maint"], gitlab.Maintainer)
	e.srv.SetMember("dept", users["head"], gitlab.Owner) // inherited by dept/tas
	e.srv.SetMember("dept/tas", users["reporter"], gitlab.Reporter)

	roles := NewRoleResolver(RoleConfig{
		TAs:         []string{"Listed", " root "},
		GitLabGroup: "dept/tas",
		TTL:         time.Minute,
		Now:         e.clock.Now,
		Logger:      e.logs.Logger(),
	}, e.client)
	a := e.auth(t, Options{Sources: []KeySource{e.source(GitLabOptions{TTL: time.Hour})}, Roles: roles})
	ctx := context.Background()
	check := func(when string, want map[string]backend.Role) {
		t.Helper()
		for name, role := range want {
			id, err := a.Check(ctx, name, keys[name], remote)
			if err != nil || id.Role != role {
				t.Errorf("%s: %s = %q, %v; want %q", when, name, id.Role, err, role)
			}
		}
	}
	check("up", map[string]backend.Role{
		"dev": backend.RoleTA, "maint": backend.RoleTA, "head": backend.RoleTA,
		"reporter": backend.RoleStudent, "student": backend.RoleStudent, "listed": backend.RoleTA,
	})

	// A higher minimum level.
	strict := NewRoleResolver(RoleConfig{GitLabGroup: "dept/tas", MinAccessLevel: gitlab.Maintainer}, e.client)
	if r := strict.Role(ctx, "dev", users["dev"]); r != backend.RoleStudent {
		t.Errorf("developer with maintainer minimum = %q", r)
	}
	if r := strict.Role(ctx, "maint", users["maint"]); r != backend.RoleTA {
		t.Errorf("maintainer with maintainer minimum = %q", r)
	}

	// Cached group answers: no requests within the TTL.
	before := e.srv.Requests()
	check("warm", map[string]backend.Role{"dev": backend.RoleTA, "student": backend.RoleStudent})
	if n := e.srv.Requests() - before; n != 0 {
		t.Errorf("%d requests on a warm cache", n)
	}

	// GitLab down after the TTL: keys come from the stale cache, roles from the list only.
	e.srv.SetDown(true)
	e.clock.Advance(2 * time.Minute)
	check("down", map[string]backend.Role{"dev": backend.RoleStudent, "listed": backend.RoleTA})
	if n := e.logs.Count("role from the configured TA list only"); n == 0 {
		t.Errorf("fallback not logged:\n%s", e.logs)
	}

	// No client, no group: the list alone.
	listOnly := NewRoleResolver(RoleConfig{TAs: []string{"listed"}}, nil)
	if r := listOnly.Role(ctx, "LISTED", 0); r != backend.RoleTA {
		t.Errorf("listed = %q", r)
	}
	if r := listOnly.Role(ctx, "dev", users["dev"]); r != backend.RoleStudent {
		t.Errorf("unlisted without gitlab = %q", r)
	}
	var none *RoleResolver
	if r := none.Role(ctx, "listed", 1); r != backend.RoleStudent {
		t.Errorf("nil resolver = %q", r)
	}
}

func TestSourceOrder(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	dirKey, dirLine := newKey(t)
	glKey, glLine := newKey(t)
	writeKeys(t, filepath.Join(dir, "alice.keys"), 0o600, dirLine)
	writeKeys(t, filepath.Join(dir, "bob.keys"), 0o600, dirLine)
	writeKeys(t, filepath.Join(dir, "local.keys"), 0o600, dirLine)
	aliceID := e.srv.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{{Key: glLine}}})
	e.srv.AddUser(gitlabtest.User{Username: "bob", State: "banned", Keys: []gitlabtest.Key{{Key: glLine}}})
	e.srv.SetMember("tas", aliceID, gitlab.Owner)

	roles := NewRoleResolver(RoleConfig{GitLabGroup: "tas", Now: e.clock.Now}, e.client)
	gl := e.source(GitLabOptions{})
	ds := NewDirSource(dir, e.logs.Logger())
	ctx := context.Background()

	dirFirst := e.auth(t, Options{Sources: []KeySource{ds, gl}, Roles: roles})
	for _, tc := range []struct {
		user   string
		key    ssh.PublicKey
		source string
		role   backend.Role
		reason string
	}{
		{"alice", dirKey, "keys-dir", backend.RoleStudent, ""}, // group roles need the GitLab ID
		{"alice", glKey, "gitlab", backend.RoleTA, ""},
		{"local", dirKey, "keys-dir", backend.RoleStudent, ""},
		{"bob", dirKey, "keys-dir", backend.RoleStudent, ""}, // found before GitLab is asked
		{"local", glKey, "", "", "key not registered"},
	} {
		id, err := dirFirst.Check(ctx, tc.user, tc.key, remote)
		if reason(t, err) != tc.reason || id.KeySource != tc.source || id.Role != tc.role {
			t.Errorf("dir first, %s: %+v, %v", tc.user, id, err)
		}
	}

	// A source saying "blocked" ends the search.
	glFirst := e.auth(t, Options{Sources: []KeySource{gl, ds}})
	if _, err := glFirst.Check(ctx, "bob", dirKey, remote); reason(t, err) != "user blocked: state=banned" {
		t.Errorf("gitlab first, blocked bob: %v", err)
	}

	// GitLab down and the dir knows the user but not the key: the outage is the reason.
	e.srv.SetDown(true)
	fresh := e.auth(t, Options{Sources: []KeySource{ds, e.source(GitLabOptions{})}})
	if _, err := fresh.Check(ctx, "local", glKey, remote); reason(t, err) != "gitlab unreachable" {
		t.Errorf("outage: %v", err)
	}
	if id, err := fresh.Check(ctx, "local", dirKey, remote); err != nil || id.KeySource != "keys-dir" {
		t.Errorf("keys-dir during outage: %+v, %v", id, err)
	}
}

func TestRateLimit(t *testing.T) {
	e := newEnv(t)
	dir := t.TempDir()
	k, l := newKey(t)
	wrong, _ := newKey(t)
	writeKeys(t, filepath.Join(dir, "alice.keys"), 0o600, l)
	a := e.auth(t, Options{Sources: []KeySource{NewDirSource(dir, nil)}})
	ctx := context.Background()

	for i := range 10 {
		addr := "198.51.100.9:" + fmt.Sprint(40000+i)
		_, err := a.Check(ctx, "alice", wrong, addr)
		if reason(t, err) != "key not registered" {
			t.Fatalf("failure %d: %v", i, err)
		}
		a.RecordRefusal(addr, err)
	}
	_, err := a.Check(ctx, "alice", k, "198.51.100.9:41000")
	if reason(t, err) != "too many failures from 198.51.100.9" || !errors.Is(err, ErrTooManyFailures) {
		t.Fatalf("11th attempt, right key: %v", err)
	}
	if err := a.Allow("198.51.100.9:1"); err == nil {
		t.Error("Allow let the address in")
	}
	if _, err := a.Check(ctx, "alice", k, "198.51.100.10:1"); err != nil {
		t.Errorf("another address: %v", err)
	}
	e.clock.Advance(5 * time.Minute)
	if _, err := a.Check(ctx, "alice", k, "198.51.100.9:41001"); err != nil {
		t.Errorf("after the block: %v", err)
	}

	// Unknown users and RecordFailure count too; IPv6 by /64.
	if _, err := a.Check(ctx, "nobody", k, "203.0.113.1:1"); err == nil || a.Allow("203.0.113.1:1") != nil {
		t.Fatal("Check alone must not count: a client offers several keys per login")
	}
	for i := range 5 {
		_, err := a.Check(ctx, "nobody", k, fmt.Sprintf("[2001:db8::%x]:22", i))
		a.RecordRefusal(fmt.Sprintf("[2001:db8::%x]:22", i), err)
		a.RecordFailure(fmt.Sprintf("[2001:db8::%x]:22", i+100))
	}
	if err := a.Allow("[2001:db8::ffff]:22"); err == nil || err.Error() != "too many failures from 2001:db8::/64" {
		t.Errorf("IPv6 /64: %v", err)
	}
}

func TestCheckHonoursCancelledContext(t *testing.T) {
	e := newEnv(t)
	k, l := newKey(t)
	e.srv.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{{Key: l}}})
	a := e.auth(t, Options{Sources: []KeySource{e.source(GitLabOptions{})}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := a.Check(ctx, "alice", k, remote); err == nil {
		t.Error("cancelled check succeeded")
	}
	// The shared lookup still finishes and fills the cache for the next login.
	if _, err := a.Check(context.Background(), "alice", k, remote); err != nil {
		t.Error(err)
	}
}

// TestGitLabSlow: GitLab answering only after 30 s holds no login up for it. Within their
// TTL, keys and roles come from the cache without asking; past it, a known user's keys come
// from the stale cache once the request times out (roles from the TA list only), and a user
// never seen is refused with "gitlab unreachable". Each Check runs under a deadline far
// shorter than GitLab's delay, so waiting for GitLab would fail it.
func TestGitLabSlow(t *testing.T) {
	e := newEnv(t)
	c, err := gitlab.New(e.srv.URL(), "tok", gitlab.WithoutRetries(), gitlab.WithTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	ak, al := newKey(t)
	dk, dl := newKey(t)
	ck, cl := newKey(t)
	e.srv.AddUser(gitlabtest.User{Username: "alice", Keys: []gitlabtest.Key{{Key: al}}})
	dev := e.srv.AddUser(gitlabtest.User{Username: "dev", Keys: []gitlabtest.Key{{Key: dl}}})
	e.srv.AddUser(gitlabtest.User{Username: "carol", Keys: []gitlabtest.Key{{Key: cl}}})
	e.srv.SetMember("dept/tas", dev, gitlab.Developer)
	roles := NewRoleResolver(RoleConfig{GitLabGroup: "dept/tas", TTL: time.Minute, Now: e.clock.Now, Logger: e.logs.Logger()}, e.client)
	a := e.auth(t, Options{Sources: []KeySource{e.source(GitLabOptions{TTL: time.Minute, StaleFor: time.Hour})}, Roles: roles})
	check := func(user string, k ssh.PublicKey) (backend.Identity, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		return a.Check(ctx, user, k, remote)
	}
	if id, err := check("alice", ak); err != nil || id.Role != backend.RoleStudent {
		t.Fatalf("alice before: %+v %v", id, err)
	}
	if id, err := check("dev", dk); err != nil || id.Role != backend.RoleTA {
		t.Fatalf("dev before: %+v %v", id, err)
	}

	e.srv.SetDelay(30 * time.Second)
	before := e.srv.Requests()
	e.clock.Advance(30 * time.Second)
	if id, err := check("alice", ak); err != nil || id.Role != backend.RoleStudent {
		t.Errorf("alice within the TTL: %+v %v", id, err)
	}
	if id, err := check("dev", dk); err != nil || id.Role != backend.RoleTA {
		t.Errorf("dev within the TTL: %+v %v", id, err)
	}
	if n := e.srv.Requests() - before; n != 0 {
		t.Errorf("%d requests to a slow GitLab within the TTL", n)
	}

	e.clock.Advance(time.Minute)
	if id, err := check("alice", ak); err != nil || id.KeySource != "gitlab" {
		t.Errorf("alice past the TTL: %+v %v", id, err)
	}
	if n := e.logs.Count("gitlab unreachable, using cached answer"); n == 0 {
		t.Errorf("stale use not logged:\n%s", e.logs)
	}
	if id, err := check("dev", dk); err != nil || id.Role != backend.RoleStudent {
		t.Errorf("dev past the TTL: %+v %v, want a student (the TA list only)", id, err)
	}
	if _, err := check("carol", ck); reason(t, err) != "gitlab unreachable" {
		t.Errorf("a user never seen while GitLab is slow: %v", err)
	}
}
