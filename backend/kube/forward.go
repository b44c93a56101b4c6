package kube

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"
	"k8s.io/streaming/pkg/httpstream"

	"whalemountain/backend"
)

// Forward opens a connection to a port of a running pod the identity may use, through the
// API server's port-forward (WebSocket, or SPDY when that is refused): what
// `ssh -L PORT:NAME:PORT` reaches. It is audited as "pod forward". Close the connection
// when done; CloseWrite sends EOF and keeps reading.
func (s *Service) Forward(ctx context.Context, id backend.Identity, ref string, port int) (io.ReadWriteCloser, error) {
	t, c, err := s.forward(ctx, id, ref, port)
	target := auditTarget(t, ref)
	if port > 0 && port < 65536 {
		target += ":" + strconv.Itoa(port)
	}
	s.record(id, "pod forward", target, err)
	if err != nil {
		return nil, err
	}
	return c, nil
}

func (s *Service) forward(ctx context.Context, id backend.Identity, ref string, port int) (target, *forwardConn, error) {
	if err := checkIdentity(id); err != nil {
		return target{}, nil, err
	}
	if port < 1 || port > 65535 {
		return target{}, nil, errorf(ErrInvalid, "invalid port %d: use 1-65535", port)
	}
	f, err := s.runningPod(ctx, id, ref)
	if err != nil {
		return f.target, nil, err
	}
	what := fmt.Sprintf("forward to %s:%d", f.target, port)
	url := s.cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(f.ns).Name(f.pod.Name).SubResource("portforward").URL()
	tr, upgrader, err := spdy.RoundTripperFor(s.rest)
	if err != nil {
		return f.target, nil, apiErr(what, err)
	}
	dialer := spdy.NewDialerForStreaming(upgrader, &http.Client{Transport: tr}, "POST", url)
	ws, err := portforward.NewSPDYOverWebsocketDialerForStreaming(url, s.rest)
	if err != nil {
		return f.target, nil, apiErr(what, err)
	}
	dialer = portforward.NewFallbackDialerForStreaming(ws, dialer, func(err error) bool {
		return httpstream.IsUpgradeFailure(err) || httpstream.IsHTTPSProxyError(err)
	})
	type dialed struct {
		conn httpstream.Connection
		err  error
	}
	ch := make(chan dialed, 1)
	go func() {
		conn, _, err := dialer.Dial(portforward.PortForwardProtocolV1Name)
		ch <- dialed{conn, err}
	}()
	var conn httpstream.Connection
	select {
	case d := <-ch:
		if d.err != nil {
			return f.target, nil, apiErr(what, d.err)
		}
		conn = d.conn
	case <-ctx.Done():
		go func() {
			if d := <-ch; d.conn != nil {
				_ = d.conn.Close()
			}
		}()
		return f.target, nil, ctx.Err()
	}

	headers := http.Header{}
	headers.Set(corev1.StreamType, corev1.StreamTypeError)
	headers.Set(corev1.PortHeader, strconv.Itoa(port))
	headers.Set(corev1.PortForwardRequestIDHeader, "0")
	errStream, err := conn.CreateStream(headers)
	if err != nil {
		_ = conn.Close()
		return f.target, nil, apiErr(what, err)
	}
	_ = errStream.Close() // nothing is written to it
	headers.Set(corev1.StreamType, corev1.StreamTypeData)
	data, err := conn.CreateStream(headers)
	if err != nil {
		_ = conn.Close()
		return f.target, nil, apiErr(what, err)
	}
	fc := &forwardConn{what: what, conn: conn, data: data, errDone: make(chan struct{})}
	go func() {
		b, _ := io.ReadAll(io.LimitReader(errStream, 4096))
		if msg := strings.TrimSpace(string(b)); msg != "" {
			fc.remoteErr.Store(errors.New(what + ": " + oneLine(msg, maxReason)))
			_ = data.Reset()
		}
		close(fc.errDone)
	}()
	return f.target, fc, nil
}

// forwardConn is one forwarded connection: its own port-forward session to the pod.
type forwardConn struct {
	what      string
	conn      httpstream.Connection
	data      httpstream.Stream
	errDone   chan struct{}
	remoteErr atomic.Value // error reported by the pod's side
	closeOnce sync.Once
}

func (c *forwardConn) Read(b []byte) (int, error) {
	n, err := c.data.Read(b)
	if err != nil {
		if e, ok := c.remoteErr.Load().(error); ok {
			return n, e
		}
	}
	return n, err
}

func (c *forwardConn) Write(b []byte) (int, error) { return c.data.Write(b) }

// CloseWrite tells the pod's side that nothing more will be written.
func (c *forwardConn) CloseWrite() error { return c.data.Close() }

// Err is the error the pod's side reported (a refused connection), if any.
func (c *forwardConn) Err() error {
	if e, ok := c.remoteErr.Load().(error); ok {
		return e
	}
	return nil
}

func (c *forwardConn) Close() error {
	c.closeOnce.Do(func() {
		_ = c.data.Reset()
		_ = c.conn.Close()
	})
	return nil
}
