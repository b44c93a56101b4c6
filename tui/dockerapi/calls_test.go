package dockerapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
	"whalemountain/tui/dockerapi"
)

// pair is a connected pair of unix sockets: one end for Serve, one for the client.
func pair(t *testing.T) (*net.UnixConn, *net.UnixConn) {
	t.Helper()
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	var cs [2]*net.UnixConn
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "pair")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		cs[i] = c.(*net.UnixConn)
	}
	return cs[0], cs[1]
}

// apiConn is one client connection to the door, served as Serve serves an SSH channel.
type apiConn struct {
	c  *net.UnixConn
	br *bufio.Reader
}

func openConn(t *testing.T, ctx context.Context, h http.Handler, wg *sync.WaitGroup) *apiConn {
	t.Helper()
	srv, cli := pair(t)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer srv.Close()
		_ = dockerapi.Serve(ctx, srv, h, slog.New(slog.DiscardHandler))
	}()
	t.Cleanup(func() { cli.Close() })
	return &apiConn{c: cli, br: bufio.NewReader(cli)}
}

// get sends one request and reads the answer's status and headers (and, unless it
// streams, its body).
func (a *apiConn) get(t *testing.T, path string, stream bool) *http.Response {
	t.Helper()
	if _, err := fmt.Fprintf(a.c, "GET %s HTTP/1.1\r\nHost: docker\r\n\r\n", path); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(a.br, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	if !stream {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp
}

// TestIdleConnectionsCostTheEngineNothing: API connections held open by students — idle
// after a ping, or following their events — add no call to the engine: events come from
// the one event stream the live snapshot already has. A change still reaches every one.
func TestIdleConnectionsCostTheEngineNothing(t *testing.T) {
	const idle, following = 40, 40
	svc := dockertest.NewService(t)
	images, err := docker.NewImageService(svc, docker.ImagePolicy{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := docker.NewAPI(svc, images, docker.APIOptions{SpoolDir: t.TempDir()})
	alice := backend.Identity{User: "alice", Role: backend.RoleStudent}
	h := dockerapi.Handler(api, alice, dockerapi.Options{Logger: slog.New(slog.DiscardHandler)})
	if !pollUntil(20*time.Second, func() bool { _, hl := svc.Snapshot(alice, docker.ListOptions{}); return hl.OK }) {
		t.Fatal("the live snapshot never became current")
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()

	window := 3 * time.Second
	quiet := func() int64 {
		before := svc.APICalls()
		time.Sleep(window)
		return svc.APICalls() - before
	}
	baseline := quiet()

	// The first ping asks the engine its version once; later ones answer from memory.
	first := openConn(t, ctx, h, &wg)
	if resp := first.get(t, "/_ping", false); resp.StatusCode != http.StatusOK || resp.Header.Get("Api-Version") == "" {
		t.Fatalf("ping: %s %v", resp.Status, resp.Header)
	}
	var streams []*bufio.Reader
	for i := 0; i < idle+following; i++ {
		c := openConn(t, ctx, h, &wg)
		c.get(t, "/v1.41/_ping", false)
		if i < following {
			resp := c.get(t, `/v1.41/events?filters={"type":{"container":true}}`, true)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("events: %s", resp.Status)
			}
			streams = append(streams, bufio.NewReader(resp.Body))
		}
	}
	held := quiet()
	t.Logf("engine calls in %v: %d with no API connection, %d with %d idle and %d following events", window, baseline, held, idle, following)
	if held > baseline {
		t.Errorf("%d open API connections made %d engine calls in %v (%d without them)", idle+following, held, window, baseline)
	}

	// One change reaches every follower.
	body := `{"Image":"` + dockertest.BusyboxImage(context.Background(), t, dockertest.Client(t)) + `","Cmd":["sleep","60"]}`
	created, err := api.CreateContainer(context.Background(), alice, "evt", []byte(body))
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := api.StartContainer(context.Background(), alice, "evt"); err != nil {
		t.Fatalf("start: %v", err)
	}
	var got sync.WaitGroup
	errs := make(chan string, len(streams))
	for i, br := range streams {
		got.Add(1)
		go func() {
			defer got.Done()
			for {
				line, err := br.ReadString('\n')
				if err != nil {
					errs <- fmt.Sprintf("follower %d: %v", i, err)
					return
				}
				var ev struct {
					Action string
					Actor  struct{ Attributes map[string]string }
				}
				_ = json.Unmarshal([]byte(line), &ev)
				if ev.Action == "start" && ev.Actor.Attributes["name"] == "evt" {
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { got.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("not every follower saw the start")
	}
	close(errs)
	for e := range errs {
		t.Error(e)
	}
	if !strings.Contains(string(created), `"Id"`) {
		t.Errorf("create answered %s", created)
	}
}

func pollUntil(d time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if cond() {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cond()
}
