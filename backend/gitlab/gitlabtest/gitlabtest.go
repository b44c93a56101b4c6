// Package gitlabtest is a local stand-in for a GitLab instance: an HTTP server answering the
// handful of /api/v4 endpoints WhaleMountain uses, with GitLab's JSON shapes, error bodies,
// token check and pagination headers. Tests and demo programs fill it with users, keys,
// group memberships, personal projects and their container registries, and can take it
// down to see how callers cope with an outage.
package gitlabtest

import (
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Version is what GET /api/v4/version reports.
const Version = "17.11.0"

// DefaultRegistryHost is the container registry host a Server reports unless
// WithRegistryHost says otherwise.
const DefaultRegistryHost = "registry.test"

// Key is an SSH key on a stand-in user.
type Key struct {
	Key       string     // authorized_keys text, "ssh-ed25519 AAAA... comment"
	Title     string     // defaults to the key's comment or "key N"
	ExpiresAt *time.Time // nil: never expires
	UsageType string     // "auth", "signing", "auth_and_signing"; "" means "auth_and_signing"
}

// User is a stand-in account.
type User struct {
	Username string
	Name     string // defaults to Username
	State    string // defaults to "active"
	Locked   bool
	Keys     []Key
}

// Server is a running stand-in. It is safe for concurrent use.
type Server struct {
	srv          *httptest.Server
	token        string
	registryHost string

	mu       sync.Mutex
	users    []*user // index i holds the user with ID i+1
	groups   map[string]*group
	groupIDs []*group   // index i holds the group with ID i+1
	projects []*project // index i holds the project with ID i+1
	keyID    int64
	repoID   int64
	runners  []*runner // index i holds the runner with ID i+1
	jobs     []*job    // index i holds the job with ID i+1
	listen   string
	down     bool
	delay    time.Duration
	requests int
}

type user struct {
	id      int64
	u       User
	keys    []storedKey
	created time.Time
}

type storedKey struct {
	id      int64
	created time.Time
	Key
}

type project struct {
	id       int64
	owner    *user
	path     string
	registry bool // container registry enabled
	repos    []*registryRepo
	members  map[int64]int // user ID -> access level, besides the owner (50)
	created  time.Time
}

type registryRepo struct {
	id      int64
	name    string
	tags    []string
	created time.Time
}

type group struct {
	id      int64
	path    string
	members map[int64]member
}

type member struct {
	level   int
	created time.Time
}

// Option configures New.
type Option func(*Server)

// WithToken makes the server require token in the PRIVATE-TOKEN header (or as
// "Authorization: Bearer"), answering 401 otherwise.
func WithToken(token string) Option { return func(s *Server) { s.token = token } }

// WithRegistryHost sets the container registry host ("registry.example.org", with a port
// if any) that registry locations start with. Empty means DefaultRegistryHost.
func WithRegistryHost(host string) Option { return func(s *Server) { s.registryHost = host } }

// WithListenAddress makes the server listen on addr ("0.0.0.0:0": every interface, so
// containers reach it through their gateway) instead of a loopback port.
func WithListenAddress(addr string) Option { return func(s *Server) { s.listen = addr } }

// New starts a stand-in on a local port. Close it when done.
func New(opts ...Option) *Server {
	s := &Server{groups: map[string]*group{}}
	for _, o := range opts {
		o(s)
	}
	if s.registryHost == "" {
		s.registryHost = DefaultRegistryHost
	}
	if s.listen == "" {
		s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
		return s
	}
	l, err := net.Listen("tcp", s.listen)
	if err != nil {
		panic(fmt.Sprintf("gitlabtest: listen on %s: %v", s.listen, err))
	}
	s.srv = &httptest.Server{Listener: l, Config: &http.Server{Handler: http.HandlerFunc(s.serve)}}
	s.srv.Start()
	return s
}

// RegistryHost is the container registry host that registry locations start with.
func (s *Server) RegistryHost() string { return s.registryHost }

// URL is the server's root, e.g. "http://127.0.0.1:41234"; the API is under /api/v4.
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down.
func (s *Server) Close() { s.srv.Close() }

// AddUser adds an account and returns its ID. Keys get IDs in order.
func (s *Server) AddUser(u User) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u.Name == "" {
		u.Name = u.Username
	}
	if u.State == "" {
		u.State = "active"
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	nu := &user{id: int64(len(s.users) + 1), u: u, created: now}
	for _, k := range u.Keys {
		s.keyID++
		if k.UsageType == "" {
			k.UsageType = "auth_and_signing"
		}
		if k.Title == "" {
			k.Title = keyComment(k.Key)
		}
		if k.Title == "" {
			k.Title = "key " + strconv.FormatInt(s.keyID, 10)
		}
		nu.keys = append(nu.keys, storedKey{id: s.keyID, created: now, Key: k})
	}
	nu.u.Keys = nil
	s.users = append(s.users, nu)
	return nu.id
}

// SetUserState changes an account's state ("active", "blocked", ...) and lock.
func (s *Server) SetUserState(id int64, state string, locked bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.userByID(id); u != nil {
		u.u.State, u.u.Locked = state, locked
	}
}

// SetMember makes userID a direct member of group (a full path such as "dept/tas", created
// with its parents when new) at level (10 guest ... 50 owner); level 0 removes the membership. Members of a
// group are inherited by its subgroups, at the highest level found.
func (s *Server) SetMember(group string, userID int64, level int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g := s.groupByPath(group, true)
	if level <= 0 {
		delete(g.members, userID)
		return
	}
	g.members[userID] = member{level: level, created: time.Now().UTC().Truncate(time.Millisecond)}
}

// AddProject adds a project at path (e.g. "proj") in the personal namespace of the user
// with ID owner, with its container registry enabled or disabled, and returns the project's
// ID. It panics when owner is unknown or already has a project at path.
func (s *Server) AddProject(owner int64, path string, registryEnabled bool) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.userByID(owner)
	if u == nil {
		panic(fmt.Sprintf("gitlabtest: AddProject: no user with ID %d", owner))
	}
	for _, p := range s.projects {
		if p.owner == u && strings.EqualFold(p.path, path) {
			panic(fmt.Sprintf("gitlabtest: AddProject: %s/%s exists", u.u.Username, path))
		}
	}
	p := &project{id: int64(len(s.projects) + 1), owner: u, path: path, registry: registryEnabled,
		created: time.Now().UTC().Truncate(time.Millisecond)}
	s.projects = append(s.projects, p)
	return p.id
}

// AddRegistryRepository adds a repository to the container registry of the project with
// ID projectID and returns its ID: name "" is the project's own image ("alice/proj"), a
// name such as "img" an image below it ("alice/proj/img"). Tags are listed in the order
// given. It panics when the project is unknown.
func (s *Server) AddRegistryRepository(projectID int64, name string, tags ...string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	p := s.projectByID(projectID)
	if p == nil {
		panic(fmt.Sprintf("gitlabtest: AddRegistryRepository: no project with ID %d", projectID))
	}
	s.repoID++
	p.repos = append(p.repos, &registryRepo{id: s.repoID, name: name, tags: slices.Clone(tags),
		created: time.Now().UTC().Truncate(time.Millisecond)})
	return s.repoID
}

// GroupID returns the numeric ID of group, creating the group when new.
func (s *Server) GroupID(group string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.groupByPath(group, true).id
}

// SetDown takes the server down (true) or brings it back (false). While down it accepts
// connections and closes them without an answer, as a GitLab behind a failing proxy or a
// restarting host does.
func (s *Server) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
}

// SetDelay makes every answer wait d (0: none), or until the client gives up, as a GitLab
// under load does.
func (s *Server) SetDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.delay = d
}

// Requests is the number of HTTP requests received so far, answered or not.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

func (s *Server) userByID(id int64) *user {
	if id < 1 || id > int64(len(s.users)) {
		return nil
	}
	return s.users[id-1]
}

// userByIDOrName finds a user by numeric ID or, failing that, by username (any case).
func (s *Server) userByIDOrName(idOrName string) *user {
	if id, err := strconv.ParseInt(idOrName, 10, 64); err == nil {
		return s.userByID(id)
	}
	for _, u := range s.users {
		if strings.EqualFold(u.u.Username, idOrName) {
			return u
		}
	}
	return nil
}

func (s *Server) projectByID(id int64) *project {
	if id < 1 || id > int64(len(s.projects)) {
		return nil
	}
	return s.projects[id-1]
}

// projectByIDOrPath finds a project by numeric ID or by path with namespace
// ("alice/proj", any case), as GitLab's :id accepts both.
func (s *Server) projectByIDOrPath(idOrPath string) *project {
	if id, err := strconv.ParseInt(idOrPath, 10, 64); err == nil {
		return s.projectByID(id)
	}
	for _, p := range s.projects {
		if strings.EqualFold(p.pathWithNamespace(), idOrPath) {
			return p
		}
	}
	return nil
}

func (p *project) pathWithNamespace() string { return p.owner.u.Username + "/" + p.path }

func (s *Server) groupByPath(path string, create bool) *group {
	key := strings.ToLower(strings.Trim(path, "/"))
	if g, ok := s.groups[key]; ok {
		return g
	}
	if !create {
		return nil
	}
	// GitLab has no subgroup without its parent: the parents are made first.
	if i := strings.LastIndex(strings.Trim(path, "/"), "/"); i > 0 {
		s.groupByPath(strings.Trim(path, "/")[:i], true)
	}
	g := &group{id: int64(len(s.groupIDs) + 1), path: strings.Trim(path, "/"), members: map[int64]member{}}
	s.groups[key] = g
	s.groupIDs = append(s.groupIDs, g)
	return g
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	down, delay := s.down, s.delay
	s.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if down {
		hangUp(w)
		return
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v4/")
	if !ok {
		writeError(w, http.StatusNotFound, "404 Not Found")
		return
	}
	seg := strings.Split(rest, "/")
	for i, p := range seg {
		u, err := url.PathUnescape(p)
		if err != nil {
			writeError(w, http.StatusBadRequest, "400 Bad request - invalid path")
			return
		}
		seg[i] = u
	}
	// The runner API authenticates with runner and job tokens, not PRIVATE-TOKEN.
	if s.serveRunnerAPI(w, r, seg) {
		return
	}
	if s.token != "" && !s.authorized(r) {
		writeError(w, http.StatusUnauthorized, "401 Unauthorized")
		return
	}
	if s.serveRunnerAdmin(w, r, seg) {
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		writeError(w, http.StatusMethodNotAllowed, "405 Method Not Allowed")
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case len(seg) == 1 && seg[0] == "version":
		writeJSON(w, http.StatusOK, map[string]any{"version": Version, "revision": "0000000", "kas": map[string]any{"enabled": false}, "enterprise": false})
	case len(seg) == 1 && seg[0] == "users":
		s.listUsers(w, r)
	case len(seg) == 3 && seg[0] == "users" && seg[2] == "keys":
		s.listKeys(w, r, seg[1])
	case len(seg) == 3 && seg[0] == "users" && seg[2] == "projects":
		s.listUserProjects(w, r, seg[1])
	case len(seg) == 2 && seg[0] == "projects":
		s.getProject(w, seg[1])
	case len(seg) == 5 && seg[0] == "projects" && seg[2] == "members" && seg[3] == "all":
		s.projectMember(w, seg[1], seg[4])
	case len(seg) == 4 && seg[0] == "projects" && seg[2] == "registry" && seg[3] == "repositories":
		s.listRegistryRepositories(w, r, seg[1])
	case len(seg) == 6 && seg[0] == "projects" && seg[2] == "registry" && seg[3] == "repositories" && seg[5] == "tags":
		s.listRegistryTags(w, r, seg[1], seg[4])
	case len(seg) == 5 && seg[0] == "groups" && seg[2] == "members" && seg[3] == "all":
		s.groupMember(w, seg[1], seg[4])
	case len(seg) == 4 && seg[0] == "groups" && seg[2] == "members" && seg[3] == "all":
		s.listGroupMembers(w, r, seg[1])
	case len(seg) == 3 && seg[0] == "groups" && seg[2] == "descendant_groups":
		s.listDescendantGroups(w, r, seg[1])
	default:
		writeError(w, http.StatusNotFound, "404 Not Found")
	}
}

func (s *Server) authorized(r *http.Request) bool {
	if r.Header.Get("PRIVATE-TOKEN") == s.token {
		return true
	}
	bearer, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	return ok && bearer == s.token
}

// listUsers is GET /users: with username=, an array of at most that user (any case).
func (s *Server) listUsers(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("username")
	out := []any{}
	for _, u := range s.users {
		if name == "" || strings.EqualFold(u.u.Username, name) {
			out = append(out, s.userJSON(u))
		}
	}
	writePage(w, r, out)
}

// listKeys is GET /users/:id_or_username/keys.
func (s *Server) listKeys(w http.ResponseWriter, r *http.Request, idOrName string) {
	u := s.userByIDOrName(idOrName)
	if u == nil {
		writeError(w, http.StatusNotFound, "404 User Not Found")
		return
	}
	out := make([]any, 0, len(u.keys))
	for _, k := range u.keys {
		out = append(out, map[string]any{
			"id":         k.id,
			"title":      k.Title,
			"created_at": k.created.Format(time.RFC3339Nano),
			"expires_at": timeOrNil(k.ExpiresAt),
			"key":        k.Key.Key,
			"usage_type": k.UsageType,
		})
	}
	writePage(w, r, out)
}

// groupByIDOrPath finds a group by numeric ID or full path, as GitLab's :id accepts both.
func (s *Server) groupByIDOrPath(gid string) *group {
	if id, err := strconv.ParseInt(gid, 10, 64); err == nil {
		if id >= 1 && id <= int64(len(s.groupIDs)) {
			return s.groupIDs[id-1]
		}
		return nil
	}
	return s.groupByPath(gid, false)
}

// inherited is every member of g with the highest level found in g or its ancestors.
func (s *Server) inherited(g *group) map[int64]member {
	out := map[int64]member{}
	for p := g.path; p != ""; {
		if a := s.groupByPath(p, false); a != nil {
			for id, m := range a.members {
				if have, ok := out[id]; !ok || m.level > have.level {
					out[id] = m
				}
			}
		}
		i := strings.LastIndex(p, "/")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return out
}

// listGroupMembers is GET /groups/:id/members/all: direct and inherited members, each once
// at the highest level, by user ID.
func (s *Server) listGroupMembers(w http.ResponseWriter, r *http.Request, gid string) {
	g := s.groupByIDOrPath(gid)
	if g == nil {
		writeError(w, http.StatusNotFound, "404 Group Not Found")
		return
	}
	ms := s.inherited(g)
	ids := slices.Sorted(maps.Keys(ms))
	out := make([]any, 0, len(ids))
	for _, id := range ids {
		u := s.userByID(id)
		if u == nil {
			continue
		}
		body := s.userJSON(u)
		body["access_level"] = ms[id].level
		body["created_at"] = ms[id].created.Format(time.RFC3339Nano)
		body["expires_at"] = nil
		body["membership_state"] = "active"
		out = append(out, body)
	}
	writePage(w, r, out)
}

// listDescendantGroups is GET /groups/:id/descendant_groups: every group below, by path.
func (s *Server) listDescendantGroups(w http.ResponseWriter, r *http.Request, gid string) {
	g := s.groupByIDOrPath(gid)
	if g == nil {
		writeError(w, http.StatusNotFound, "404 Group Not Found")
		return
	}
	var below []*group
	for _, d := range s.groupIDs {
		if strings.HasPrefix(strings.ToLower(d.path), strings.ToLower(g.path)+"/") {
			below = append(below, d)
		}
	}
	slices.SortFunc(below, func(a, b *group) int { return strings.Compare(a.path, b.path) })
	out := make([]any, 0, len(below))
	for _, d := range below {
		parent := d.path[:strings.LastIndex(d.path, "/")]
		var parentID int64
		if p := s.groupByPath(parent, false); p != nil {
			parentID = p.id
		}
		out = append(out, map[string]any{
			"id": d.id, "name": path.Base(d.path), "path": path.Base(d.path), "full_path": d.path,
			"full_name": strings.ReplaceAll(d.path, "/", " / "), "parent_id": parentID, "visibility": "private",
			"web_url": s.srv.URL + "/groups/" + d.path,
		})
	}
	writePage(w, r, out)
}

// groupMember is GET /groups/:id/members/all/:user_id.
func (s *Server) groupMember(w http.ResponseWriter, gid, uid string) {
	g := s.groupByIDOrPath(gid)
	if g == nil {
		writeError(w, http.StatusNotFound, "404 Group Not Found")
		return
	}
	id, err := strconv.ParseInt(uid, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "400 Bad request - user_id is invalid")
		return
	}
	u := s.userByID(id)
	best, found := member{}, false
	// The group itself and every ancestor: "a/b/c", "a/b", "a".
	for p := g.path; p != ""; {
		if a := s.groupByPath(p, false); a != nil {
			if m, ok := a.members[id]; ok && (!found || m.level > best.level) {
				best, found = m, true
			}
		}
		i := strings.LastIndex(p, "/")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	if u == nil || !found {
		writeError(w, http.StatusNotFound, "404 Not found")
		return
	}
	body := s.userJSON(u)
	body["access_level"] = best.level
	body["created_at"] = best.created.Format(time.RFC3339Nano)
	body["expires_at"] = nil
	body["membership_state"] = "active"
	writeJSON(w, http.StatusOK, body)
}

// listUserProjects is GET /users/:id_or_username/projects: the projects in the user's
// personal namespace, newest first (GitLab's default order, created_at descending).
func (s *Server) listUserProjects(w http.ResponseWriter, r *http.Request, idOrName string) {
	u := s.userByIDOrName(idOrName)
	if u == nil {
		writeError(w, http.StatusNotFound, "404 User Not Found")
		return
	}
	simple, _ := strconv.ParseBool(r.URL.Query().Get("simple"))
	out := []any{}
	for i := len(s.projects) - 1; i >= 0; i-- {
		if p := s.projects[i]; p.owner == u {
			out = append(out, s.projectJSON(p, simple))
		}
	}
	writePage(w, r, out)
}

// listRegistryRepositories is GET /projects/:id/registry/repositories[?tags=true&tags_count=true].
func (s *Server) listRegistryRepositories(w http.ResponseWriter, r *http.Request, pid string) {
	p := s.registryProject(w, pid)
	if p == nil {
		return
	}
	q := r.URL.Query()
	withTags, _ := strconv.ParseBool(q.Get("tags"))
	withCount, _ := strconv.ParseBool(q.Get("tags_count"))
	out := make([]any, 0, len(p.repos))
	for _, rr := range p.repos {
		m := s.registryRepoJSON(p, rr)
		if withTags {
			tags := make([]any, 0, len(rr.tags))
			for _, t := range rr.tags {
				tags = append(tags, s.registryTagJSON(p, rr, t))
			}
			m["tags"] = tags
		}
		if withCount {
			m["tags_count"] = len(rr.tags)
		}
		out = append(out, m)
	}
	writePage(w, r, out)
}

// listRegistryTags is GET /projects/:id/registry/repositories/:repository_id/tags.
func (s *Server) listRegistryTags(w http.ResponseWriter, r *http.Request, pid, rid string) {
	p := s.registryProject(w, pid)
	if p == nil {
		return
	}
	id, err := strconv.ParseInt(rid, 10, 64)
	if err != nil {
		writeError(w, http.StatusBadRequest, "400 Bad request - repository_id is invalid")
		return
	}
	i := slices.IndexFunc(p.repos, func(rr *registryRepo) bool { return rr.id == id })
	if i < 0 {
		writeError(w, http.StatusNotFound, "404 Not found")
		return
	}
	rr := p.repos[i]
	out := make([]any, 0, len(rr.tags))
	for _, t := range rr.tags {
		out = append(out, s.registryTagJSON(p, rr, t))
	}
	writePage(w, r, out)
}

// registryProject finds the project whose registry a request asks for, answering 404 when
// there is none and 403 when its registry is disabled.
func (s *Server) registryProject(w http.ResponseWriter, pid string) *project {
	p := s.projectByIDOrPath(pid)
	if p == nil {
		writeError(w, http.StatusNotFound, "404 Project Not Found")
		return nil
	}
	if !p.registry {
		writeError(w, http.StatusForbidden, "403 Forbidden")
		return nil
	}
	return p
}

// projectJSON is a project as GET /users/:id/projects shows it: with simple=true GitLab's
// basic fields only, otherwise also visibility, owner and container registry settings.
func (s *Server) projectJSON(p *project, simple bool) map[string]any {
	u := p.owner
	full := p.pathWithNamespace()
	web := s.srv.URL + "/" + full
	host := strings.TrimPrefix(s.srv.URL, "http://")
	m := map[string]any{
		"id":                  p.id,
		"description":         nil,
		"name":                p.path,
		"name_with_namespace": u.u.Name + " / " + p.path,
		"path":                p.path,
		"path_with_namespace": full,
		"created_at":          p.created.Format(time.RFC3339Nano),
		"default_branch":      "main",
		"tag_list":            []string{},
		"topics":              []string{},
		"ssh_url_to_repo":     "git@" + host + ":" + full + ".git",
		"http_url_to_repo":    web + ".git",
		"web_url":             web,
		"readme_url":          nil,
		"forks_count":         0,
		"avatar_url":          nil,
		"star_count":          0,
		"last_activity_at":    p.created.Format(time.RFC3339Nano),
		// A personal namespace; its ID is the owner's user ID here.
		"namespace": map[string]any{
			"id":         u.id,
			"name":       u.u.Name,
			"path":       u.u.Username,
			"kind":       "user",
			"full_path":  u.u.Username,
			"parent_id":  nil,
			"avatar_url": "",
			"web_url":    s.srv.URL + "/" + u.u.Username,
		},
	}
	if simple {
		return m
	}
	access := "enabled"
	if !p.registry {
		access = "disabled"
	}
	m["visibility"] = "private"
	m["owner"] = s.userJSON(u)
	m["container_registry_enabled"] = p.registry
	m["container_registry_access_level"] = access
	m["container_registry_image_prefix"] = s.registryHost + "/" + strings.ToLower(full)
	return m
}

// registryRepoPath is the repository's path in the registry: the project's path with
// namespace, lower case as registry paths are, then "/name" unless name is empty.
func registryRepoPath(p *project, rr *registryRepo) string {
	path := strings.ToLower(p.pathWithNamespace())
	if rr.name != "" {
		path += "/" + rr.name
	}
	return path
}

func (s *Server) registryRepoJSON(p *project, rr *registryRepo) map[string]any {
	path := registryRepoPath(p, rr)
	return map[string]any{
		"id":                        rr.id,
		"name":                      rr.name,
		"path":                      path,
		"project_id":                p.id,
		"location":                  s.registryHost + "/" + path,
		"created_at":                rr.created.Format(time.RFC3339Nano),
		"cleanup_policy_started_at": nil,
		"status":                    nil,
	}
}

func (s *Server) registryTagJSON(p *project, rr *registryRepo, tag string) map[string]any {
	path := registryRepoPath(p, rr) + ":" + tag
	return map[string]any{
		"name":     tag,
		"path":     path,
		"location": s.registryHost + "/" + path,
	}
}

func (s *Server) userJSON(u *user) map[string]any {
	return map[string]any{
		"id":         u.id,
		"username":   u.u.Username,
		"name":       u.u.Name,
		"state":      u.u.State,
		"locked":     u.u.Locked,
		"avatar_url": "",
		"web_url":    s.srv.URL + "/" + u.u.Username,
	}
}

// writePage answers with the slice of items that page/per_page select, with GitLab's
// offset-pagination headers (per_page defaults to 20, at most 100).
func writePage(w http.ResponseWriter, r *http.Request, items []any) {
	q := r.URL.Query()
	perPage := atoiDefault(q.Get("per_page"), 20)
	if perPage < 1 {
		perPage = 20
	}
	perPage = min(perPage, 100)
	page := max(atoiDefault(q.Get("page"), 1), 1)
	total := len(items)
	totalPages := max((total+perPage-1)/perPage, 1)
	start := min((page-1)*perPage, total)
	end := min(start+perPage, total)

	h := w.Header()
	h.Set("X-Page", strconv.Itoa(page))
	h.Set("X-Per-Page", strconv.Itoa(perPage))
	h.Set("X-Total", strconv.Itoa(total))
	h.Set("X-Total-Pages", strconv.Itoa(totalPages))
	h.Set("X-Next-Page", "")
	h.Set("X-Prev-Page", "")
	link := func(p int, rel string) string {
		lq := url.Values{}
		for k, v := range q {
			lq[k] = v
		}
		lq.Set("page", strconv.Itoa(p))
		lq.Set("per_page", strconv.Itoa(perPage))
		u := url.URL{Scheme: "http", Host: r.Host, Path: r.URL.Path, RawPath: r.URL.RawPath, RawQuery: lq.Encode()}
		return fmt.Sprintf("<%s>; rel=\"%s\"", u.String(), rel)
	}
	var links []string
	if page > 1 && page <= totalPages {
		h.Set("X-Prev-Page", strconv.Itoa(page-1))
		links = append(links, link(page-1, "prev"))
	}
	if page < totalPages {
		h.Set("X-Next-Page", strconv.Itoa(page+1))
		links = append(links, link(page+1, "next"))
	}
	links = append(links, link(1, "first"), link(totalPages, "last"))
	h.Set("Link", strings.Join(links, ", "))
	writeJSON(w, http.StatusOK, items[start:end])
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"message":"500 Internal Server Error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{"message": msg})
}

// hangUp closes the connection without answering.
func hangUp(w http.ResponseWriter) {
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			_ = conn.Close()
			return
		}
	}
	writeError(w, http.StatusServiceUnavailable, "503 Service Unavailable")
}

func timeOrNil(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func atoiDefault(s string, def int) int {
	if n, err := strconv.Atoi(s); err == nil {
		return n
	}
	return def
}

// keyComment is the comment of an authorized_keys line, "" if none.
func keyComment(line string) string {
	f := strings.Fields(line)
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[2:], " ")
}
