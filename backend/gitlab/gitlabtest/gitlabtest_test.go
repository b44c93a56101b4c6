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
		{"/api/v4/projects/1", `{"message":"404 Not Found"}`},
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
