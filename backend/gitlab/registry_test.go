package gitlab_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"whalemountain/backend/gitlab"
	"whalemountain/backend/gitlab/gitlabtest"
)

func TestUserRegistry(t *testing.T) {
	srv := gitlabtest.New(gitlabtest.WithToken("secret"), gitlabtest.WithRegistryHost("registry.example.org"))
	defer srv.Close()
	alice := srv.AddUser(gitlabtest.User{Username: "alice"})
	bob := srv.AddUser(gitlabtest.User{Username: "bob"})
	proj := srv.AddProject(alice, "proj", true)
	img := srv.AddRegistryRepository(proj, "img", "b", "a")
	root := srv.AddRegistryRepository(proj, "", "latest", "1.0", "0.9")
	closed := srv.AddProject(alice, "closed", false)
	srv.AddRegistryRepository(closed, "", "hidden")
	srv.AddProject(alice, "empty", true)
	bobs := srv.AddProject(bob, "proj", true)
	srv.AddRegistryRepository(bobs, "", "bobs")
	c := newClient(t, srv)

	before := time.Now().Add(-time.Minute)
	repos, err := c.UserRegistry(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 2 {
		t.Fatalf("got %d repositories, want 2: %+v", len(repos), repos)
	}
	want := []struct {
		id             int64
		path, location string
		tags           []string
	}{
		{root, "alice/proj", "registry.example.org/alice/proj", []string{"0.9", "1.0", "latest"}},
		{img, "alice/proj/img", "registry.example.org/alice/proj/img", []string{"a", "b"}},
	}
	for i, w := range want {
		r := repos[i]
		if r.ID != w.id || r.ProjectID != proj || r.Project != "alice/proj" || r.Path != w.path || r.Location != w.location {
			t.Errorf("repository %d = %+v, want id %d path %q location %q", i, r, w.id, w.path, w.location)
		}
		if r.CreatedAt == nil || r.CreatedAt.Before(before) {
			t.Errorf("repository %d: created %v", i, r.CreatedAt)
		}
		var names []string
		for _, tag := range r.Tags {
			names = append(names, tag.Name)
			if tag.Location != w.location+":"+tag.Name {
				t.Errorf("tag %s location %q", tag.Name, tag.Location)
			}
		}
		if fmt.Sprint(names) != fmt.Sprint(w.tags) {
			t.Errorf("repository %d tags %q, want %q", i, names, w.tags)
		}
	}

	// Bob's own listing holds only his project; a user without projects has an empty one.
	repos, err = c.UserRegistry(context.Background(), "BOB")
	if err != nil || len(repos) != 1 || repos[0].Project != "bob/proj" || len(repos[0].Tags) != 1 || repos[0].Tags[0].Name != "bobs" {
		t.Errorf("bob: %+v, %v", repos, err)
	}
	srv.AddUser(gitlabtest.User{Username: "carol"})
	repos, err = c.UserRegistry(context.Background(), "carol")
	if err != nil || repos == nil || len(repos) != 0 {
		t.Errorf("carol: %#v, %v", repos, err)
	}
}

func TestUserRegistryPathsAreLowerCase(t *testing.T) {
	srv := gitlabtest.New()
	defer srv.Close()
	dave := srv.AddUser(gitlabtest.User{Username: "Dave"})
	p := srv.AddProject(dave, "MyProj", true)
	srv.AddRegistryRepository(p, "tools", "v1")
	repos, err := newClient(t, srv).UserRegistry(context.Background(), "dave")
	if err != nil || len(repos) != 1 {
		t.Fatalf("UserRegistry = %+v, %v", repos, err)
	}
	r := repos[0]
	if r.Project != "Dave/MyProj" || r.Path != "dave/myproj/tools" || r.Location != gitlabtest.DefaultRegistryHost+"/dave/myproj/tools" ||
		r.Tags[0].Location != gitlabtest.DefaultRegistryHost+"/dave/myproj/tools:v1" {
		t.Errorf("repository = %+v", r)
	}
}

func TestUserRegistryNoSuchUser(t *testing.T) {
	srv := gitlabtest.New()
	defer srv.Close()
	srv.AddUser(gitlabtest.User{Username: "alice"})
	_, err := newClient(t, srv).UserRegistry(context.Background(), "mallory")
	if !errors.Is(err, gitlab.ErrNoSuchUser) {
		t.Fatalf("err = %v, want ErrNoSuchUser", err)
	}
	if gitlab.IsUnavailable(err) {
		t.Error("IsUnavailable(no such user) = true")
	}
	if !strings.Contains(err.Error(), `list registry of "mallory"`) {
		t.Errorf("err = %v", err)
	}
}

func TestUserRegistryPaginates(t *testing.T) {
	srv := gitlabtest.New()
	defer srv.Close()
	id := srv.AddUser(gitlabtest.User{Username: "many"})
	p := srv.AddProject(id, "proj", true)
	var tags []string
	for i := range 250 {
		tags = append(tags, fmt.Sprintf("t%03d", 249-i))
	}
	srv.AddRegistryRepository(p, "", tags...)
	before := srv.Requests()
	repos, err := newClient(t, srv).UserRegistry(context.Background(), "many")
	if err != nil {
		t.Fatal(err)
	}
	if len(repos) != 1 || len(repos[0].Tags) != 250 {
		t.Fatalf("got %d repositories, %d tags", len(repos), len(repos[0].Tags))
	}
	for i, tag := range repos[0].Tags {
		if want := fmt.Sprintf("t%03d", i); tag.Name != want {
			t.Fatalf("tag %d = %q, want %q", i, tag.Name, want)
		}
	}
	// User lookup, projects, repositories, and three pages of 100 tags.
	if n := srv.Requests() - before; n != 6 {
		t.Errorf("%d requests, want 6", n)
	}
}

// TestUserRegistryManyProjects follows projects over several pages and keeps at most four
// projects' registries in flight at once.
func TestUserRegistryManyProjects(t *testing.T) {
	srv := gitlabtest.New()
	defer srv.Close()
	id := srv.AddUser(gitlabtest.User{Username: "busy"})
	for i := range 130 {
		p := srv.AddProject(id, fmt.Sprintf("p%03d", i), i%3 != 0)
		if i%10 == 1 {
			srv.AddRegistryRepository(p, "", "latest")
		}
	}
	target, err := url.Parse(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var (
		mu             sync.Mutex
		inFlight, most int
	)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.Path, "/registry/") {
			mu.Lock()
			inFlight++
			most = max(most, inFlight)
			mu.Unlock()
			time.Sleep(2 * time.Millisecond)
			defer func() {
				mu.Lock()
				inFlight--
				mu.Unlock()
			}()
		}
		proxy.ServeHTTP(w, r)
	}))
	defer hs.Close()
	c, err := gitlab.New(hs.URL, "", gitlab.WithoutRetries())
	if err != nil {
		t.Fatal(err)
	}
	repos, err := c.UserRegistry(context.Background(), "busy")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range repos {
		got = append(got, r.Project)
	}
	var want []string
	for i := range 130 {
		if i%10 == 1 && i%3 != 0 {
			want = append(want, fmt.Sprintf("busy/p%03d", i))
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("projects %q\nwant %q", got, want)
	}
	if most > 4 || most < 2 {
		t.Errorf("at most %d registry requests in flight, want 2 to 4", most)
	}
}

func TestUserRegistryUnavailable(t *testing.T) {
	t.Run("down", func(t *testing.T) {
		srv := gitlabtest.New()
		defer srv.Close()
		id := srv.AddUser(gitlabtest.User{Username: "alice"})
		srv.AddRegistryRepository(srv.AddProject(id, "proj", true), "", "latest")
		c := newClient(t, srv)
		srv.SetDown(true)
		_, err := c.UserRegistry(context.Background(), "alice")
		if !gitlab.IsUnavailable(err) {
			t.Errorf("IsUnavailable(%v) = false", err)
		}
		srv.SetDown(false)
		if repos, err := c.UserRegistry(context.Background(), "alice"); err != nil || len(repos) != 1 {
			t.Errorf("after coming back: %+v, %v", repos, err)
		}
	})

	// One project's registry failing fails the whole listing.
	for _, tc := range []struct {
		status int
		want   bool
	}{
		{http.StatusBadGateway, true},
		{http.StatusUnauthorized, false},
	} {
		t.Run(fmt.Sprint(tc.status), func(t *testing.T) {
			srv := gitlabtest.New()
			defer srv.Close()
			id := srv.AddUser(gitlabtest.User{Username: "alice"})
			srv.AddRegistryRepository(srv.AddProject(id, "good", true), "", "latest")
			bad := srv.AddProject(id, "bad", true)
			srv.AddRegistryRepository(bad, "", "latest")
			target, err := url.Parse(srv.URL())
			if err != nil {
				t.Fatal(err)
			}
			proxy := httputil.NewSingleHostReverseProxy(target)
			failing := fmt.Sprintf("/api/v4/projects/%d/registry/", bad)
			hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if strings.HasPrefix(r.URL.Path, failing) {
					w.WriteHeader(tc.status)
					fmt.Fprintf(w, `{"message":"%d"}`, tc.status)
					return
				}
				proxy.ServeHTTP(w, r)
			}))
			defer hs.Close()
			c, err := gitlab.New(hs.URL, "", gitlab.WithoutRetries())
			if err != nil {
				t.Fatal(err)
			}
			repos, err := c.UserRegistry(context.Background(), "alice")
			if err == nil {
				t.Fatalf("no error, %+v", repos)
			}
			if got := gitlab.IsUnavailable(err); got != tc.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", err, got, tc.want)
			}
			if !strings.Contains(err.Error(), `gitlab: list registry of "alice"`) || !strings.Contains(err.Error(), "alice/bad") {
				t.Errorf("err = %v", err)
			}
		})
	}
}
