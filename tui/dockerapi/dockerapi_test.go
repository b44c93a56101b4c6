package dockerapi

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
)

// fakeBackend answers the version; any other call is a test failure (a nil method).
type fakeBackend struct {
	Backend
	refused []string
	removed []string
}

func (f *fakeBackend) Version(context.Context) (docker.APIVersion, error) {
	return docker.APIVersion{Version: "1.41", MinVersion: "1.40", OSType: "linux"}, nil
}

func (f *fakeBackend) SupportsVersion(ctx context.Context, v string) (docker.APIVersion, bool, error) {
	av, _ := f.Version(ctx)
	return av, versionNewer(v, av.MinVersion) && versionNewer(av.Version, v), nil
}

// InfoJSON takes a while, and fails if the request is cancelled meanwhile.
func (f *fakeBackend) InfoJSON(ctx context.Context, _ backend.Identity) ([]byte, error) {
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(300 * time.Millisecond):
		return []byte(`{"ID":"x"}`), nil
	}
}

func (f *fakeBackend) RecordRefusal(_ backend.Identity, action, target string, _ error) {
	f.refused = append(f.refused, action+" "+target)
}

func (f *fakeBackend) RemoveContainer(_ context.Context, _ backend.Identity, ref string, _ bool) error {
	f.removed = append(f.removed, ref)
	if ref == "bob-box" {
		return errors.Join(docker.ErrNotFound, errors.New("No such container: bob-box"))
	}
	return nil
}

func serve(t *testing.T, f *fakeBackend, method, path string) *httptest.ResponseRecorder {
	t.Helper()
	h := Handler(f, backend.Identity{User: "alice", Role: backend.RoleStudent}, Options{Logger: slog.New(slog.DiscardHandler)})
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest(method, path, nil))
	return w
}

// message is the {"message": ...} of an error answer, which must be one line.
func message(t *testing.T, w *httptest.ResponseRecorder) string {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(w.Body.Bytes(), &m); err != nil || len(m) != 1 {
		t.Fatalf("answer %q is not {\"message\": ...}: %v", w.Body.String(), err)
	}
	if strings.Contains(m["message"], "\n") {
		t.Errorf("message on more than one line: %q", m["message"])
	}
	if ct := w.Header().Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	return m["message"]
}

// TestDenyByDefault: whatever the door does not offer is a 403 with one line, audited
// when it would change something.
func TestDenyByDefault(t *testing.T) {
	cases := []struct{ method, path string }{
		{"POST", "/v1.41/containers/box/update"},
		{"POST", "/containers/box/commit"},
		{"POST", "/commit?container=box"},
		{"GET", "/v1.41/containers/box/export"},
		{"GET", "/v1.41/containers/box/changes"},
		{"POST", "/v1.41/containers/prune"},
		{"POST", "/v1.41/images/load"},
		{"GET", "/v1.41/images/get?names=x"},
		{"GET", "/v1.41/images/search?term=x"},
		{"POST", "/v1.41/networks/prune"},
		{"PUT", "/v1.41/networks/x"},
		{"POST", "/v1.41/containers/box/rename/x"},
		{"POST", "/v1.41/swarm/init"},
		{"GET", "/v1.41/secrets"},
		{"POST", "/v1.41/plugins/pull"},
		{"GET", "/v1.41/system/df"},
		{"POST", "/v1.41/session"},
		{"POST", "/v1.41/grpc"},
		{"POST", "/v1.41/auth"},
		{"PUT", "/v1.41/containers/box/json"},
		{"GET", "/v1.41/../../etc/passwd"},
		{"GET", "/v1.41/containers/box/attach/ws"},
		{"GET", "/v1.41/distribution/x/json"},
		{"POST", "/v1.41/build/prune"},
		{"POST", "/v1.41/volumes/prune"},
	}
	for _, c := range cases {
		f := &fakeBackend{}
		w := serve(t, f, c.method, c.path)
		if w.Code != http.StatusForbidden {
			t.Errorf("%s %s: %d, want 403", c.method, c.path, w.Code)
			continue
		}
		if msg := message(t, w); !strings.Contains(msg, "is not available through this server's Docker API") {
			t.Errorf("%s %s: %q", c.method, c.path, msg)
		}
		if mutating := c.method != "GET"; mutating != (len(f.refused) == 1) {
			t.Errorf("%s %s: audited %q", c.method, c.path, f.refused)
		}
	}
}

// TestVersions: unprefixed and prefixed paths work; a version the door does not speak is
// a 400 saying which it does.
func TestVersions(t *testing.T) {
	f := &fakeBackend{}
	for _, p := range []string{"/_ping", "/v1.41/_ping", "/v1.40/_ping"} {
		w := serve(t, f, "GET", p)
		if w.Code != http.StatusOK || w.Body.String() != "OK" || w.Header().Get("Api-Version") != "1.41" ||
			w.Header().Get("Builder-Version") != "1" || w.Header().Get("Ostype") != "linux" {
			t.Errorf("GET %s: %d %q %v", p, w.Code, w.Body.String(), w.Header())
		}
	}
	if w := serve(t, f, "HEAD", "/_ping"); w.Code != http.StatusOK || w.Body.Len() != 0 {
		t.Errorf("HEAD /_ping: %d %q", w.Code, w.Body.String())
	}
	for p, want := range map[string]string{
		"/v1.51/containers/json": "client version 1.51 is too new. Maximum supported API version is 1.41",
		"/v1.12/containers/json": "client version 1.12 is too old. Minimum supported API version is 1.40",
	} {
		w := serve(t, f, "GET", p)
		if w.Code != http.StatusBadRequest || !strings.HasPrefix(message(t, w), want) {
			t.Errorf("GET %s: %d %q", p, w.Code, w.Body.String())
		}
	}
}

// TestStatusOfBackendErrors: the backend's kinds of error become the engine's statuses.
func TestStatusOfBackendErrors(t *testing.T) {
	f := &fakeBackend{}
	if w := serve(t, f, "DELETE", "/v1.41/containers/bob-box"); w.Code != http.StatusNotFound || message(t, w) == "" {
		t.Errorf("DELETE bob-box: %d %q", w.Code, w.Body.String())
	}
	if w := serve(t, f, "DELETE", "/v1.41/containers/box?force=1"); w.Code != http.StatusNoContent {
		t.Errorf("DELETE box: %d", w.Code)
	}
	if !slices.Equal(f.removed, []string{"bob-box", "box"}) {
		t.Errorf("removed %q", f.removed)
	}
	for err, want := range map[error]int{
		docker.ErrNotFound: 404, docker.ErrNoImage: 404, docker.ErrPermission: 403, docker.ErrQuota: 403,
		docker.ErrInvalid: 400, docker.ErrConflict: 409, docker.ErrNotModified: 304, docker.ErrUnavailable: 503,
		errors.New("other"): 500,
	} {
		if got := statusOf(err); got != want {
			t.Errorf("statusOf(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestParseFilters(t *testing.T) {
	for in, want := range map[string]map[string][]string{
		``:                                 {},
		`{"label":{"a=b":true}}`:           {"label": {"a=b"}},
		`{"name":["box"],"status":["up"]}`: {"name": {"box"}, "status": {"up"}},
		`{"label":{"x":false}}`:            {},
	} {
		got, err := parseFilters(in)
		if err != nil {
			t.Errorf("%s: %v", in, err)
			continue
		}
		for k := range want {
			if !slices.Equal(got[k], want[k]) {
				t.Errorf("%s: %v, want %v", in, got, want)
			}
		}
		if len(got) != len(want) {
			t.Errorf("%s: %v, want %v", in, got, want)
		}
	}
	if _, err := parseFilters(`{"label":"x"}`); err == nil {
		t.Error("a malformed filter was accepted")
	}
}

// TestHalfCloseAfterRequest: a client that sends its request and closes its side at once
// (a script piping into dial-stdio) still gets the whole answer, then the connection ends.
func TestHalfCloseAfterRequest(t *testing.T) {
	srvEnd, cliEnd, err := socketPair()
	if err != nil {
		t.Fatal(err)
	}
	defer cliEnd.Close()
	h := Handler(&fakeBackend{}, backend.Identity{User: "alice", Role: backend.RoleStudent}, Options{Logger: slog.New(slog.DiscardHandler)})
	done := make(chan error, 1)
	go func() {
		defer srvEnd.Close()
		done <- Serve(context.Background(), srvEnd, h, slog.New(slog.DiscardHandler))
	}()
	if _, err := io.WriteString(cliEnd, "GET /v1.41/info HTTP/1.1\r\nHost: docker\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if err := cliEnd.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(cliEnd)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(got), "HTTP/1.1 200 OK") || !strings.Contains(string(got), `{"ID":"x"}`) {
		t.Errorf("answer %q", got)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("Serve did not end after the client's last answer")
	}
}
