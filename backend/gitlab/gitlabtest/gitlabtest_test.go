package gitlabtest

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func get(t *testing.T, s *Server, path, token string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("PRIVATE-TOKEN", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestToken(t *testing.T) {
	s := New(WithToken("tok"))
	defer s.Close()
	resp, body := get(t, s, "/api/v4/version", "")
	if resp.StatusCode != 401 || string(body) != `{"message":"401 Unauthorized"}` {
		t.Errorf("no token: %d %s", resp.StatusCode, body)
	}
	resp, _ = get(t, s, "/api/v4/version", "nope")
	if resp.StatusCode != 401 {
		t.Errorf("wrong token: %d", resp.StatusCode)
	}
	resp, body = get(t, s, "/api/v4/version", "tok")
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"version":"`+Version+`"`) {
		t.Errorf("right token: %d %s", resp.StatusCode, body)
	}
}

func TestNotFoundBodies(t *testing.T) {
	s := New()
	defer s.Close()
	id := s.AddUser(User{Username: "alice"})
	s.SetMember("dept", id, 30)
	for _, tc := range []struct{ path, body string }{
		{"/api/v4/users/99/keys", `{"message":"404 User Not Found"}`},
		{"/api/v4/groups/nope/members/all/1", `{"message":"404 Group Not Found"}`},
		{"/api/v4/groups/dept/members/all/99", `{"message":"404 Not found"}`},
		{"/api/v4/projects/1", `{"message":"404 Project Not Found"}`},
		{"/api/v4/projects/1/nothing", `{"message":"404 Not Found"}`},
		{"/other", `{"message":"404 Not Found"}`},
	} {
		resp, body := get(t, s, tc.path, "")
		if resp.StatusCode != 404 || string(body) != tc.body {
			t.Errorf("GET %s = %d %s, want 404 %s", tc.path, resp.StatusCode, body, tc.body)
		}
	}
	resp, body := get(t, s, "/api/v4/users?username=nobody", "")
	if resp.StatusCode != 200 || string(body) != "[]" {
		t.Errorf("unknown username: %d %s, want 200 []", resp.StatusCode, body)
	}
}

func TestShapes(t *testing.T) {
	s := New()
	defer s.Close()
	exp := time.Date(2031, 2, 3, 4, 5, 6, 0, time.UTC)
	id := s.AddUser(User{Username: "alice", Keys: []Key{{Key: "ssh-ed25519 AAAA alice@laptop", ExpiresAt: &exp, UsageType: "auth"}}})
	_, body := get(t, s, "/api/v4/users?username=ALICE", "")
	var users []map[string]any
	if err := json.Unmarshal(body, &users); err != nil || len(users) != 1 {
		t.Fatalf("users: %s (%v)", body, err)
	}
	u := users[0]
	if u["id"] != float64(id) || u["username"] != "alice" || u["state"] != "active" || u["locked"] != false {
		t.Errorf("user = %v", u)
	}
	_, body = get(t, s, "/api/v4/users/alice/keys", "")
	var keys []map[string]any
	if err := json.Unmarshal(body, &keys); err != nil || len(keys) != 1 {
		t.Fatalf("keys: %s (%v)", body, err)
	}
	k := keys[0]
	if k["title"] != "alice@laptop" || k["key"] != "ssh-ed25519 AAAA alice@laptop" || k["usage_type"] != "auth" ||
		k["expires_at"] != "2031-02-03T04:05:06Z" || k["id"] != float64(1) {
		t.Errorf("key = %v", k)
	}
	// A dotted, nested group path arrives escaped, as client-go sends it.
	s.SetMember("dept/ta.s", id, 40)
	resp, body := get(t, s, "/api/v4/groups/dept%2Fta%2Es/members/all/"+strconv.FormatInt(id, 10), "")
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil || resp.StatusCode != 200 || m["access_level"] != float64(40) || m["username"] != "alice" {
		t.Errorf("member: %d %s", resp.StatusCode, body)
	}
	s.SetUserState(id, "blocked", true)
	_, body = get(t, s, "/api/v4/users?username=alice", "")
	if !strings.Contains(string(body), `"state":"blocked"`) || !strings.Contains(string(body), `"locked":true`) {
		t.Errorf("after SetUserState: %s", body)
	}
	s.SetMember("dept/ta.s", id, 0)
	if resp, _ := get(t, s, "/api/v4/groups/dept%2Fta%2Es/members/all/1", ""); resp.StatusCode != 404 {
		t.Errorf("removed member: %d", resp.StatusCode)
	}
}

func TestPagination(t *testing.T) {
	s := New()
	defer s.Close()
	var keys []Key
	for range 45 {
		keys = append(keys, Key{Key: "ssh-ed25519 AAAA"})
	}
	s.AddUser(User{Username: "many", Keys: keys})
	for _, tc := range []struct {
		query                             string
		n                                 int
		page, perPage, total, totalPages  string
		next, prev                        string
		hasNextLink, hasPrevLink, lastRel bool
	}{
		{"", 20, "1", "20", "45", "3", "2", "", true, false, true},
		{"?page=2", 20, "2", "20", "45", "3", "3", "1", true, true, true},
		{"?page=3", 5, "3", "20", "45", "3", "", "2", false, true, true},
		{"?per_page=100", 45, "1", "100", "45", "1", "", "", false, false, true},
		{"?per_page=500", 45, "1", "100", "45", "1", "", "", false, false, true},
		{"?page=9", 0, "9", "20", "45", "3", "", "", false, false, true},
	} {
		resp, body := get(t, s, "/api/v4/users/1/keys"+tc.query, "")
		var got []any
		if err := json.Unmarshal(body, &got); err != nil {
			t.Fatalf("%s: %s", tc.query, body)
		}
		h := resp.Header
		if len(got) != tc.n || h.Get("X-Page") != tc.page || h.Get("X-Per-Page") != tc.perPage ||
			h.Get("X-Total") != tc.total || h.Get("X-Total-Pages") != tc.totalPages ||
			h.Get("X-Next-Page") != tc.next || h.Get("X-Prev-Page") != tc.prev {
			t.Errorf("%q: %d items, headers %v", tc.query, len(got), h)
		}
		link := h.Get("Link")
		if strings.Contains(link, `rel="next"`) != tc.hasNextLink || strings.Contains(link, `rel="prev"`) != tc.hasPrevLink ||
			!strings.Contains(link, `rel="first"`) || !strings.Contains(link, `rel="last"`) {
			t.Errorf("%q: Link %s", tc.query, link)
		}
	}
}

func TestDownAndRequests(t *testing.T) {
	s := New()
	defer s.Close()
	s.SetDown(true)
	if _, err := http.Get(s.URL() + "/api/v4/version"); err == nil {
		t.Error("request succeeded while down")
	}
	s.SetDown(false)
	if resp, _ := get(t, s, "/api/v4/version", ""); resp.StatusCode != 200 {
		t.Errorf("after down: %d", resp.StatusCode)
	}
	if n := s.Requests(); n != 2 {
		t.Errorf("Requests = %d, want 2", n)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := New()
	defer s.Close()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			id := s.AddUser(User{Username: "u" + strconv.Itoa(i)})
			s.SetMember("g", id, 30)
			resp, err := http.Get(s.URL() + "/api/v4/users/" + strconv.FormatInt(id, 10) + "/keys")
			if err == nil {
				resp.Body.Close()
			}
		})
	}
	wg.Wait()
	if n := s.Requests(); n != 8 {
		t.Errorf("Requests = %d, want 8", n)
	}
}

func TestProjectAndRegistryShapes(t *testing.T) {
	s := New(WithRegistryHost("registry.example.org:5050"))
	defer s.Close()
	if s.RegistryHost() != "registry.example.org:5050" {
		t.Errorf("RegistryHost = %q", s.RegistryHost())
	}
	alice := s.AddUser(User{Username: "Alice", Name: "Alice A"})
	bob := s.AddUser(User{Username: "bob"})
	proj := s.AddProject(alice, "Proj", true)
	closed := s.AddProject(alice, "closed", false)
	s.AddProject(bob, "other", true)
	root := s.AddRegistryRepository(proj, "", "latest", "1.0")
	img := s.AddRegistryRepository(proj, "img")

	// Projects: only Alice's, newest first, by ID or by username.
	for _, who := range []string{strconv.FormatInt(alice, 10), "alice"} {
		resp, body := get(t, s, "/api/v4/users/"+who+"/projects", "")
		var ps []map[string]any
		if err := json.Unmarshal(body, &ps); err != nil || resp.StatusCode != 200 || len(ps) != 2 {
			t.Fatalf("projects of %s: %d %s (%v)", who, resp.StatusCode, body, err)
		}
		if ps[0]["id"] != float64(closed) || ps[1]["id"] != float64(proj) || resp.Header.Get("X-Total") != "2" {
			t.Errorf("projects of %s out of order: %s", who, body)
		}
		p := ps[1]
		ns, _ := p["namespace"].(map[string]any)
		if p["name"] != "Proj" || p["path"] != "Proj" || p["path_with_namespace"] != "Alice/Proj" ||
			p["container_registry_access_level"] != "enabled" || p["container_registry_image_prefix"] != "registry.example.org:5050/alice/proj" ||
			ns["id"] != float64(alice) || ns["name"] != "Alice A" || ns["path"] != "Alice" || ns["kind"] != "user" || ns["full_path"] != "Alice" {
			t.Errorf("project = %v", p)
		}
		if _, err := time.Parse(time.RFC3339Nano, p["created_at"].(string)); err != nil {
			t.Errorf("created_at: %v", err)
		}
		if ps[0]["container_registry_access_level"] != "disabled" || ps[0]["container_registry_enabled"] != false {
			t.Errorf("closed project = %v", ps[0])
		}
	}
	_, body := get(t, s, "/api/v4/users/alice/projects?simple=true", "")
	if strings.Contains(string(body), "container_registry") || !strings.Contains(string(body), `"kind":"user"`) {
		t.Errorf("simple projects: %s", body)
	}

	// Repositories, by project ID or by its escaped path.
	for _, pid := range []string{strconv.FormatInt(proj, 10), "alice%2Fproj", "Alice%2FProj"} {
		resp, body := get(t, s, "/api/v4/projects/"+pid+"/registry/repositories", "")
		var rs []map[string]any
		if err := json.Unmarshal(body, &rs); err != nil || resp.StatusCode != 200 || len(rs) != 2 {
			t.Fatalf("repositories of %s: %d %s (%v)", pid, resp.StatusCode, body, err)
		}
		r := rs[0]
		if r["id"] != float64(root) || r["name"] != "" || r["path"] != "alice/proj" || r["project_id"] != float64(proj) ||
			r["location"] != "registry.example.org:5050/alice/proj" || r["cleanup_policy_started_at"] != nil {
			t.Errorf("repository = %v", r)
		}
		if _, ok := r["tags"]; ok {
			t.Errorf("tags without tags=true: %v", r)
		}
		if _, ok := r["tags_count"]; ok {
			t.Errorf("tags_count without tags_count=true: %v", r)
		}
		if rs[1]["id"] != float64(img) || rs[1]["name"] != "img" || rs[1]["path"] != "alice/proj/img" ||
			rs[1]["location"] != "registry.example.org:5050/alice/proj/img" {
			t.Errorf("repository = %v", rs[1])
		}
	}
	_, body = get(t, s, "/api/v4/projects/1/registry/repositories?tags=true&tags_count=true", "")
	var rs []map[string]any
	if err := json.Unmarshal(body, &rs); err != nil || len(rs) != 2 || rs[0]["tags_count"] != float64(2) ||
		rs[1]["tags_count"] != float64(0) || len(rs[0]["tags"].([]any)) != 2 || len(rs[1]["tags"].([]any)) != 0 {
		t.Errorf("with tags: %s (%v)", body, err)
	}

	// Tags, in the order added.
	resp, body := get(t, s, "/api/v4/projects/alice%2Fproj/registry/repositories/"+strconv.FormatInt(root, 10)+"/tags", "")
	want := `[{"location":"registry.example.org:5050/alice/proj:latest","name":"latest","path":"alice/proj:latest"},` +
		`{"location":"registry.example.org:5050/alice/proj:1.0","name":"1.0","path":"alice/proj:1.0"}]`
	if resp.StatusCode != 200 || string(body) != want {
		t.Errorf("tags: %d %s\nwant %s", resp.StatusCode, body, want)
	}
	if resp, body := get(t, s, "/api/v4/projects/1/registry/repositories/"+strconv.FormatInt(img, 10)+"/tags", ""); resp.StatusCode != 200 || string(body) != "[]" {
		t.Errorf("no tags: %d %s", resp.StatusCode, body)
	}
}

func TestRegistryErrors(t *testing.T) {
	s := New()
	defer s.Close()
	if s.RegistryHost() != DefaultRegistryHost {
		t.Errorf("RegistryHost = %q", s.RegistryHost())
	}
	alice := s.AddUser(User{Username: "alice"})
	proj := s.AddProject(alice, "proj", true)
	closed := s.AddProject(alice, "closed", false)
	s.AddRegistryRepository(closed, "", "x")
	other := s.AddProject(alice, "other", true)
	rid := s.AddRegistryRepository(other, "", "x")
	p := func(id int64) string { return "/api/v4/projects/" + strconv.FormatInt(id, 10) }
	for _, tc := range []struct {
		path   string
		status int
		body   string
	}{
		{"/api/v4/users/99/projects", 404, `{"message":"404 User Not Found"}`},
		{"/api/v4/users/nobody/projects", 404, `{"message":"404 User Not Found"}`},
		{"/api/v4/projects/99/registry/repositories", 404, `{"message":"404 Project Not Found"}`},
		{"/api/v4/projects/alice%2Fnope/registry/repositories", 404, `{"message":"404 Project Not Found"}`},
		{"/api/v4/projects/99/registry/repositories/1/tags", 404, `{"message":"404 Project Not Found"}`},
		{p(closed) + "/registry/repositories", 403, `{"message":"403 Forbidden"}`},
		{p(closed) + "/registry/repositories/1/tags", 403, `{"message":"403 Forbidden"}`},
		{p(proj) + "/registry/repositories/" + strconv.FormatInt(rid, 10) + "/tags", 404, `{"message":"404 Not found"}`},
		{p(proj) + "/registry/repositories/x/tags", 400, `{"message":"400 Bad request - repository_id is invalid"}`},
	} {
		resp, body := get(t, s, tc.path, "")
		if resp.StatusCode != tc.status || string(body) != tc.body {
			t.Errorf("GET %s = %d %s, want %d %s", tc.path, resp.StatusCode, body, tc.status, tc.body)
		}
	}
}

func TestRegistryTokenAndPagination(t *testing.T) {
	s := New(WithToken("tok"))
	defer s.Close()
	id := s.AddUser(User{Username: "alice"})
	proj := s.AddProject(id, "proj", true)
	var tags []string
	for i := range 45 {
		tags = append(tags, "t"+strconv.Itoa(i))
	}
	rid := s.AddRegistryRepository(proj, "", tags...)
	path := "/api/v4/projects/alice%2Fproj/registry/repositories/" + strconv.FormatInt(rid, 10) + "/tags"
	if resp, _ := get(t, s, path, ""); resp.StatusCode != 401 {
		t.Errorf("no token: %d", resp.StatusCode)
	}
	resp, body := get(t, s, path+"?page=3", "tok")
	var got []map[string]any
	if err := json.Unmarshal(body, &got); err != nil || len(got) != 5 || got[0]["name"] != "t40" ||
		resp.Header.Get("X-Total") != "45" || resp.Header.Get("X-Total-Pages") != "3" || resp.Header.Get("X-Prev-Page") != "2" {
		t.Errorf("page 3: %s %v (%v)", body, resp.Header, err)
	}
	// The links keep the escaped project path.
	if link := resp.Header.Get("Link"); !strings.Contains(link, "/projects/alice%2Fproj/registry/") {
		t.Errorf("Link %s", link)
	}
}

func TestAddProjectPanics(t *testing.T) {
	s := New()
	defer s.Close()
	id := s.AddUser(User{Username: "alice"})
	s.AddProject(id, "proj", true)
	for name, f := range map[string]func(){
		"unknown owner":   func() { s.AddProject(99, "x", true) },
		"taken path":      func() { s.AddProject(id, "PROJ", true) },
		"unknown project": func() { s.AddRegistryRepository(99, "") },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			f()
		}()
	}
}
