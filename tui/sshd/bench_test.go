package sshd

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/backend/docker/dockertest"
	"whalemountain/tui/cli"
)

// keyAuth lets in any user whose key is the given one, as a student.
type keyAuth struct{ key gossh.PublicKey }

func (a keyAuth) Check(_ context.Context, user string, key gossh.PublicKey, remote string) (backend.Identity, error) {
	if !bytes.Equal(key.Marshal(), a.key.Marshal()) {
		return backend.Identity{}, errors.New("key not registered")
	}
	return backend.Identity{User: user, Role: backend.RoleStudent, KeyFingerprint: gossh.FingerprintSHA256(key), KeySource: "test", RemoteAddr: remote}, nil
}
func (keyAuth) Allow(string) error          { return nil }
func (keyAuth) RecordRefusal(string, error) {}

// startServer runs the door in process on 127.0.0.1 and returns its address and a client
// signer for any user.
func startServer(tb testing.TB, deps cli.Deps) (string, gossh.Signer) {
	tb.Helper()
	_, hostPriv, _ := ed25519.GenerateKey(rand.Reader)
	host, _ := gossh.NewSignerFromKey(hostPriv)
	_, userPriv, _ := ed25519.GenerateKey(rand.Reader)
	user, _ := gossh.NewSignerFromKey(userPriv)
	srv, err := New(Config{Listen: "127.0.0.1:0", ServerName: "bench", HostSigners: []gossh.Signer{host}, MaxSessionsPerUser: 1000},
		keyAuth{user.PublicKey()}, nil, deps, slog.New(slog.DiscardHandler))
	if err != nil {
		tb.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	go srv.Serve(l)
	tb.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return l.Addr().String(), user
}

// capture collects what a dashboard session writes.
type capture struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *capture) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.buf.Len() > 1<<20 {
		s.buf.Reset()
	}
	return s.buf.Write(p)
}

func (s *capture) contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Contains(s.buf.String(), sub)
}

// openDashboard opens one PTY session with no command: the dashboard.
func openDashboard(tb testing.TB, addr, user string, signer gossh.Signer) (*gossh.Client, *capture) {
	tb.Helper()
	c, err := gossh.Dial("tcp", addr, &gossh.ClientConfig{
		User: user, Auth: []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.InsecureIgnoreHostKey(), Timeout: 10 * time.Second,
	})
	if err != nil {
		tb.Fatal(err)
	}
	s, err := c.NewSession()
	if err != nil {
		tb.Fatal(err)
	}
	if err := s.RequestPty("xterm-256color", 24, 80, gossh.TerminalModes{}); err != nil {
		tb.Fatal(err)
	}
	scr := &capture{}
	s.Stdout = scr
	s.Stdin = io.MultiReader() // empty: nothing typed
	if err := s.Shell(); err != nil {
		tb.Fatal(err)
	}
	return c, scr
}

// BenchmarkDockerCallsPerDashboards opens N dashboards, makes a burst of container changes
// and reports the Docker API calls made meanwhile: with one event stream per server the
// figure does not grow with N.
func BenchmarkDockerCallsPerDashboards(b *testing.B) {
	ctx := context.Background()
	cli := dockertest.Client(b)
	image := dockertest.BusyboxImage(ctx, b, cli)
	for _, n := range []int{1, 10, 50} {
		b.Run(fmt.Sprintf("dashboards=%d", n), func(b *testing.B) {
			svc := dockertest.NewService(b) // already watching
			addr, signer := startServer(b, cliDeps(svc))
			id := backend.Identity{User: "benchuser", Role: backend.RoleStudent}
			var clients []*gossh.Client
			for i := 0; i < n; i++ {
				c, scr := openDashboard(b, addr, "benchuser", signer)
				clients = append(clients, c)
				waitFor(b, func() bool { return scr.contains("WhaleMountain") }, "dashboard drawn")
			}
			defer func() {
				for _, c := range clients {
					c.Close()
				}
			}()
			quiet(svc)
			var total int64
			for i := 0; i < b.N; i++ {
				before := svc.APICalls()
				burst(b, svc, id, image, i)
				quiet(svc)
				total += svc.APICalls() - before
			}
			b.ReportMetric(float64(total)/float64(b.N), "docker-calls/burst")
		})
	}
}

func cliDeps(svc *docker.Service) cli.Deps {
	return cli.Deps{Containers: svc, Live: svc, Notices: svc, Wall: svc, Exec: svc}
}

// burst creates three containers, stops and removes them.
func burst(tb testing.TB, svc *docker.Service, id backend.Identity, image string, round int) {
	ctx := context.Background()
	for j := 0; j < 3; j++ {
		name := fmt.Sprintf("b%d-%d", round, j)
		if _, err := svc.Run(ctx, id, docker.RunSpec{Name: name, Image: image}); err != nil {
			tb.Fatal(err)
		}
		if err := svc.Remove(ctx, id, name, true, ""); err != nil {
			tb.Fatal(err)
		}
	}
}

// quiet waits until the service has made no API call for a while (events settled).
func quiet(svc *docker.Service) {
	last := svc.APICalls()
	for stable := 0; stable < 5; {
		time.Sleep(200 * time.Millisecond)
		if now := svc.APICalls(); now == last {
			stable++
		} else {
			last, stable = now, 0
		}
	}
}

func waitFor(tb testing.TB, cond func() bool, what string) {
	tb.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
