package dockerapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sync"
	"syscall"
	"time"

	"whalemountain/backend/docker"
)

// Conn is one client's connection as the SSH side has it: an SSH session's stdin and
// stdout (dial-stdio) or a forwarded channel (direct-streamlocal). CloseWrite ends what
// the door sends while the client may still send.
type Conn interface {
	io.ReadWriter
	CloseWrite() error
}

// Serve serves h on conn, one HTTP/1.1 connection, until the client is done with it (it
// closes its side and every response has been sent, or a hijacked stream has ended) or
// ctx ends. The caller closes conn afterwards.
//
// The HTTP server runs on one end of a socket pair whose other end is copied to and from
// conn: net/http needs a connection with deadlines (it cancels a pending read with one
// when a handler hijacks the connection) and half-closes, which an SSH channel has not.
func Serve(ctx context.Context, conn Conn, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.Default()
	}
	srvConn, cliConn, err := socketPair()
	if err != nil {
		return fmt.Errorf("docker api: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		// The client's bytes; its end of input is passed on as a half-close.
		_, _ = io.Copy(cliConn, conn)
		_ = cliConn.CloseWrite()
	}()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		// The door's bytes; when the server side is closed, the client's output ends.
		_, _ = io.Copy(conn, cliConn)
		_ = conn.CloseWrite()
		cancel()
	}()
	tc := newTrackedConn(srvConn)
	srv := &http.Server{
		ConnState: func(c net.Conn, st http.ConnState) {
			if tc, ok := c.(*trackedConn); ok {
				tc.setActive(st == http.StateActive)
			}
		},
		Handler:           h,
		ReadHeaderTimeout: time.Minute,
		IdleTimeout:       time.Hour,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithValue(ctx, connCtxKey{}, ctx) },
	}
	stop := context.AfterFunc(ctx, func() {
		_ = srv.Close()
		_ = tc.Close()
		_ = cliConn.Close()
	})
	defer stop()
	err = srv.Serve(&oneConnListener{conn: tc})
	if errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	select {
	case <-sent:
	case <-ctx.Done():
	}
	_ = cliConn.Close()
	return err
}

// connCtxKey holds, in every request's context, the context of the whole connection: a
// request's own context ends when the client half-closes, which clients of a hijacked
// stream do when they have no more input.
type connCtxKey struct{}

// connContext is the context of r's connection (r's own outside Serve).
func connContext(r *http.Request) context.Context {
	if ctx, ok := r.Context().Value(connCtxKey{}).(context.Context); ok {
		return ctx
	}
	return r.Context()
}

// socketPair makes a connected pair of unix stream sockets.
func socketPair() (*net.UnixConn, *net.UnixConn, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socket pair: %w", err)
	}
	conns := make([]*net.UnixConn, 2)
	for i, fd := range fds {
		f := os.NewFile(uintptr(fd), "docker-api")
		c, err := net.FileConn(f)
		f.Close()
		if err != nil {
			for _, c := range conns[:i] {
				c.Close()
			}
			if i == 0 {
				syscall.Close(fds[1])
			}
			return nil, nil, fmt.Errorf("socket pair: %w", err)
		}
		conns[i] = c.(*net.UnixConn)
	}
	return conns[0], conns[1], nil
}

// trackedConn is the server's end of the connection. It tells the listener when it is
// closed, and holds back the client's end of input from net/http while a request is being
// answered: net/http takes an end of input during a request for a client that went away
// and cancels the request, but a client that sends its request and then closes its side
// (a script piping a request into dial-stdio) still wants the answer. Once the answer is
// sent the end of input goes through and the connection ends; a hijacked stream gets it at
// once, as the client's end of stdin.
type trackedConn struct {
	*net.UnixConn
	once   sync.Once
	closed chan struct{}

	mu     sync.Mutex
	active bool          // a request is being answered (http.StateActive)
	abort  chan struct{} // closed while a read deadline in the past is set
}

func newTrackedConn(c *net.UnixConn) *trackedConn {
	return &trackedConn{UnixConn: c, closed: make(chan struct{}), abort: make(chan struct{})}
}

func (c *trackedConn) Close() error {
	err := c.UnixConn.Close()
	c.once.Do(func() { close(c.closed) })
	return err
}

func (c *trackedConn) setActive(on bool) {
	c.mu.Lock()
	c.active = on
	c.mu.Unlock()
}

func (c *trackedConn) Read(p []byte) (int, error) {
	n, err := c.UnixConn.Read(p)
	if n > 0 || !errors.Is(err, io.EOF) {
		return n, err
	}
	c.mu.Lock()
	active, abort := c.active, c.abort
	c.mu.Unlock()
	if !active {
		return n, err
	}
	// Until net/http stops this read (a deadline in the past, when the answer is done).
	select {
	case <-abort:
		return 0, os.ErrDeadlineExceeded
	case <-c.closed:
		return 0, net.ErrClosed
	}
}

func (c *trackedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	past := !t.IsZero() && !t.After(time.Now())
	select {
	case <-c.abort:
		if !past {
			c.abort = make(chan struct{})
		}
	default:
		if past {
			close(c.abort)
		}
	}
	c.mu.Unlock()
	return c.UnixConn.SetReadDeadline(t)
}

func (c *trackedConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.UnixConn.SetWriteDeadline(t)
}

// oneConnListener hands out one connection, then waits for it to be closed.
type oneConnListener struct {
	conn *trackedConn
	once sync.Once
}

func (l *oneConnListener) Accept() (net.Conn, error) {
	var c net.Conn
	l.once.Do(func() { c = l.conn })
	if c != nil {
		return c, nil
	}
	<-l.conn.closed
	return nil, net.ErrClosed
}

func (l *oneConnListener) Close() error   { return l.conn.Close() }
func (l *oneConnListener) Addr() net.Addr { return l.conn.LocalAddr() }

// hijack answers an attach or exec start by taking over the connection: the upgrade (or,
// for a client that did not ask for one, a 200) with the stream's media type, then the
// engine's stream both ways until it ends or the client goes away. A client that goes away
// closes the stream, which ends an exec's process (see docker.APIStream).
func (h *handler) hijack(w http.ResponseWriter, r *http.Request, st *docker.APIStream) {
	defer st.Close()
	hj, ok := w.(http.Hijacker)
	if !ok {
		writeError(w, http.StatusInternalServerError, "this connection cannot carry a stream")
		return
	}
	conn, brw, err := hj.Hijack()
	if err != nil {
		h.log.Warn("docker api: hijack failed", "user", h.id.User, "err", err)
		return
	}
	defer conn.Close()
	ct := streamContentType(st.TTY)
	if r.Header.Get("Upgrade") != "" {
		_, err = fmt.Fprintf(brw, "HTTP/1.1 101 UPGRADED\r\nContent-Type: %s\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n", ct)
	} else {
		_, err = fmt.Fprintf(brw, "HTTP/1.1 200 OK\r\nContent-Type: %s\r\n\r\n", ct)
	}
	if err == nil {
		err = brw.Flush()
	}
	if err != nil {
		return
	}
	stop := context.AfterFunc(connContext(r), func() {
		_ = conn.Close()
		_ = st.Close()
	})
	defer stop()
	go func() {
		// The client's input (what it had sent with the request first), then its end.
		if _, err := io.Copy(st, brw.Reader); err == nil {
			_ = st.CloseWrite()
		}
	}()
	_, _ = io.Copy(conn, st)
}
