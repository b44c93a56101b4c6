package dockertest

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/moby/moby/client"
)

// Proxy is a unix socket in front of the engine's, for tests that cut and stall the
// connection between a server and dockerd: point the server's docker host at Host.
type Proxy struct {
	path   string // the proxy's socket
	target string // the engine's socket

	mu      sync.Mutex
	ln      net.Listener
	conns   map[net.Conn]struct{} // both ends of every open pair
	stalled chan struct{}         // non-nil while stalled: closed by Resume
	wg      sync.WaitGroup
}

// NewProxy listens on a socket in a temporary directory and forwards every connection to
// the engine's unix socket (DOCKER_HOST when it is unix://, else the default socket). It is
// closed, and every connection through it, when the test ends.
func NewProxy(t testing.TB) *Proxy {
	t.Helper()
	target := strings.TrimPrefix(client.DefaultDockerHost, "unix://")
	if h := os.Getenv(client.EnvOverrideHost); h != "" {
		if !strings.HasPrefix(h, "unix://") {
			t.Fatalf("the engine proxy needs a unix socket, DOCKER_HOST is %s", h)
		}
		target = strings.TrimPrefix(h, "unix://")
	}
	dir, err := os.MkdirTemp("", "wm-proxy-") // short: a socket path has a length limit
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{path: filepath.Join(dir, "docker.sock"), target: target, conns: map[net.Conn]struct{}{}}
	if err := p.listen(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		_ = os.RemoveAll(dir)
	})
	return p
}

// Host is the docker host address of the proxy ("unix://...").
func (p *Proxy) Host() string { return "unix://" + p.path }

func (p *Proxy) listen() error {
	ln, err := net.Listen("unix", p.path)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.serve(c)
		}
	}()
	return nil
}

// serve pipes one accepted connection to the engine.
func (p *Proxy) serve(c net.Conn) {
	e, err := net.Dial("unix", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[e] = struct{}{}, struct{}{}
	p.mu.Unlock()
	p.wg.Add(2)
	go p.pipe(e, c)
	go p.pipe(c, e)
}

// pipe copies from src to dst, holding each chunk while the proxy is stalled; when either
// side ends, both are closed.
func (p *Proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	defer p.drop(dst, src)
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			gate := p.stalled
			p.mu.Unlock()
			if gate != nil {
				<-gate
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *Proxy) drop(cs ...net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range cs {
		_ = c.Close()
		delete(p.conns, c)
	}
}

// Cut closes every connection and stops listening, as when dockerd goes away: new
// connections fail to connect until Resume.
func (p *Proxy) Cut() {
	p.mu.Lock()
	ln := p.ln
	p.ln = nil
	conns := make([]net.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
	p.mu.Unlock()
	if ln != nil {
		_ = ln.Close()
	}
	for _, c := range conns {
		_ = c.Close()
	}
}

// Stall lets every connection, open and new, stay open while no byte passes either way, as
// when dockerd hangs.
func (p *Proxy) Stall() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stalled == nil {
		p.stalled = make(chan struct{})
	}
}

// Resume ends a stall (what was held passes) or a cut (the socket listens again).
func (p *Proxy) Resume() error {
	p.mu.Lock()
	if p.stalled != nil {
		close(p.stalled)
		p.stalled = nil
	}
	listening := p.ln != nil
	p.mu.Unlock()
	if listening {
		return nil
	}
	return p.listen()
}

// Open is how many connections to the engine are open through the proxy now.
func (p *Proxy) Open() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns) / 2
}

// Close cuts everything and waits for the proxy's goroutines to end.
func (p *Proxy) Close() {
	p.Cut()
	p.wg.Wait()
}
