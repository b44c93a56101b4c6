package sshd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"charm.land/ssh"
	gossh "golang.org/x/crypto/ssh"

	"whalemountain/backend"
	"whalemountain/backend/audit"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// forwardRequest is the direct-tcpip payload of RFC 4254, section 7.2.
type forwardRequest struct {
	DestAddr   string
	DestPort   uint32
	OriginAddr string
	OriginPort uint32
}

// dialFunc opens the connection a forward carries.
type dialFunc func(ctx context.Context) (io.ReadWriteCloser, error)

// podPrefix names a pod as a forward's destination: `ssh -L 8888:pod/lab:8888`.
const podPrefix = "pod/"

// forwardTarget decides where `ssh -L PORT:NAME:PORT` may go: only to a port of one of the
// user's own running containers, or of their own running pod as pod/NAME, named as the user
// names it. Raw addresses, host names and other users' containers and pods all resolve to
// nothing, because NAME is only ever looked up among the caller's own. id is who asked, as
// far as it is known (for the audit log): the key's fingerprint always, the role once the
// key has been checked again.
func (s *Server) forwardTarget(ctx ssh.Context, dest string, port uint32) (dial dialFunc, target string, id backend.Identity, err error) {
	target = dest + ":" + strconv.FormatUint(uint64(port), 10)
	id = backend.Identity{User: ctx.User(), RemoteAddr: remoteIP(ctx.RemoteAddr())}
	key, _ := ctx.Value(ssh.ContextKeyPublicKey).(ssh.PublicKey)
	if key == nil {
		return nil, target, id, fmt.Errorf("no public key")
	}
	id.KeyFingerprint = gossh.FingerprintSHA256(key)
	checked, err := s.auth.Check(ctx, ctx.User(), key, id.RemoteAddr)
	if err != nil {
		return nil, target, id, err
	}
	id = checked
	if port == 0 || port > 65535 {
		return nil, target, id, fmt.Errorf("port %d is not a TCP port", port)
	}
	if name, ok := strings.CutPrefix(dest, podPrefix); ok {
		return s.podTarget(ctx, id, name, int(port), target)
	}
	if s.deps.Containers == nil {
		return nil, target, id, fmt.Errorf("containers are not available on this server")
	}
	if dest == "" || strings.ContainsAny(dest, ":%[]") || net.ParseIP(dest) != nil {
		hint := strings.Replace(format.UserPrefix(s.prefix, id.User), "ssh ", "ssh -L 8888:box:8888 ", 1)
		return nil, target, id, fmt.Errorf("forward to a container by name, not to an address: %s", hint)
	}
	d, err := s.deps.Containers.Inspect(ctx, id, dest)
	if err != nil {
		return nil, target, id, err
	}
	if d.State != "running" || d.IPAddress == "" {
		return nil, target, id, fmt.Errorf("container %s is not running", dest)
	}
	addr := net.JoinHostPort(d.IPAddress, strconv.FormatUint(uint64(port), 10))
	return func(ctx context.Context) (io.ReadWriteCloser, error) {
		d := net.Dialer{Timeout: 10 * time.Second}
		return d.DialContext(ctx, "tcp", addr)
	}, target, id, nil
}

// podTarget is a forward to port of the user's own pod name, through the API server's
// port-forward; the pod is looked up among the caller's own only (no owner/name, even for a
// TA), as containers are.
func (s *Server) podTarget(ctx context.Context, id backend.Identity, name string, port int, target string) (dialFunc, string, backend.Identity, error) {
	if s.deps.Pods == nil {
		return nil, target, id, errors.New("no Kubernetes cluster is configured on this server")
	}
	if name == "" || strings.ContainsAny(name, "/:%[]") {
		hint := strings.Replace(format.UserPrefix(s.prefix, id.User), "ssh ", "ssh -L 8888:pod/NAME:8888 ", 1)
		return nil, target, id, fmt.Errorf("forward to one of your own pods by name: %s", hint)
	}
	// Checked now, so that a refusal is an SSH refusal; the connection is opened when the
	// channel is accepted.
	d, err := s.deps.Pods.Inspect(ctx, id, name)
	if err != nil {
		return nil, target, id, err
	}
	if !d.Running() {
		return nil, target, id, fmt.Errorf("pod %s is not running (%s)", name, d.Status)
	}
	pods := s.deps.Pods
	return func(ctx context.Context) (io.ReadWriteCloser, error) {
		return pods.Forward(ctx, id, name, port)
	}, target, id, nil
}

// forwardEntry is the audit entry of a forward by id.
func forwardEntry(id backend.Identity, target, result, reason string) audit.Entry {
	return audit.Entry{User: id.User, Role: string(id.Role), Source: id.RemoteAddr, Key: id.KeyFingerprint,
		Action: "forward", Target: target, Result: result, Reason: reason}
}

// directTCPIP serves `ssh -L` channels after forwardTarget allowed them.
func (s *Server) directTCPIP(_ *ssh.Server, _ *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	var req forwardRequest
	if err := gossh.Unmarshal(newChan.ExtraData(), &req); err != nil {
		_ = newChan.Reject(gossh.ConnectionFailed, "malformed forward request")
		return
	}
	done, ok := s.holdForward(ctx)
	if !ok {
		_ = newChan.Reject(gossh.ResourceShortage, fmt.Sprintf("at most %d forwards open on one connection", s.cfg.MaxForwards))
		return
	}
	dial, target, id, err := s.forwardTarget(ctx, req.DestAddr, req.DestPort)
	if err != nil {
		done()
		s.log.Info("port forward refused", "user", id.User, "role", id.Role, "remote", id.RemoteAddr, "key", id.KeyFingerprint,
			"target", target, "reason", err)
		_ = s.audit.Record(forwardEntry(id, target, audit.Refused, err.Error()))
		_ = newChan.Reject(gossh.Prohibited, err.Error())
		return
	}
	conn, err := dial(ctx)
	if err != nil {
		done()
		reason := fmt.Sprintf("nothing answers on %s", target)
		if strings.HasPrefix(req.DestAddr, podPrefix) {
			reason = termsafe.Line(err.Error())
		}
		_ = newChan.Reject(gossh.ConnectionFailed, reason)
		return
	}
	ch, reqs, err := newChan.Accept()
	if err != nil {
		done()
		conn.Close()
		return
	}
	_ = s.audit.Record(forwardEntry(id, target, audit.OK, ""))
	open := &openForward{id: id, since: time.Now(), target: target}
	s.mu.Lock()
	s.forwards[open] = struct{}{}
	s.mu.Unlock()
	go gossh.DiscardRequests(reqs)
	go func() {
		defer func() {
			s.mu.Lock()
			delete(s.forwards, open)
			s.mu.Unlock()
		}()
		defer done()
		defer ch.Close()
		defer conn.Close()
		_, _ = io.Copy(ch, conn)
	}()
	go func() {
		// The client finished sending: pass the half-close on; the other copy ends both.
		_, _ = io.Copy(conn, ch)
		if hc, ok := conn.(interface{ CloseWrite() error }); ok {
			_ = hc.CloseWrite()
		} else {
			conn.Close()
		}
	}()
}

// holdForward takes one of the connection's places for an open forward, and says how to give
// it back (once); false when the connection already holds Config.MaxForwards.
func (s *Server) holdForward(ctx ssh.Context) (done func(), ok bool) {
	st, _ := ctx.Value(connKey).(*connState)
	if st == nil {
		return nil, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.forwards >= s.cfg.MaxForwards {
		return nil, false
	}
	st.forwards++
	var once sync.Once
	return func() {
		once.Do(func() {
			st.mu.Lock()
			st.forwards--
			st.mu.Unlock()
		})
	}, true
}
