package sshd

import (
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
)

// forwardRequest is the direct-tcpip payload of RFC 4254, section 7.2.
type forwardRequest struct {
	DestAddr   string
	DestPort   uint32
	OriginAddr string
	OriginPort uint32
}

// forwardTarget decides where `ssh -L PORT:NAME:PORT` may go: only to a port of one of the
// user's own running containers, named as the user names it. Raw addresses, host names and
// other users' containers all resolve to nothing, because NAME is only ever looked up among
// the caller's containers. id is who asked, as far as it is known (for the audit log): the
// key's fingerprint always, the role once the key has been checked again.
func (s *Server) forwardTarget(ctx ssh.Context, dest string, port uint32) (addr, target string, id backend.Identity, err error) {
	target = dest + ":" + strconv.FormatUint(uint64(port), 10)
	id = backend.Identity{User: ctx.User(), RemoteAddr: remoteIP(ctx.RemoteAddr())}
	key, _ := ctx.Value(ssh.ContextKeyPublicKey).(ssh.PublicKey)
	if key == nil {
		return "", target, id, fmt.Errorf("no public key")
	}
	id.KeyFingerprint = gossh.FingerprintSHA256(key)
	checked, err := s.auth.Check(ctx, ctx.User(), key, id.RemoteAddr)
	if err != nil {
		return "", target, id, err
	}
	id = checked
	if port == 0 || port > 65535 {
		return "", target, id, fmt.Errorf("port %d is not a TCP port", port)
	}
	if s.deps.Containers == nil {
		return "", target, id, fmt.Errorf("containers are not available on this server")
	}
	if dest == "" || strings.ContainsAny(dest, ":%[]") || net.ParseIP(dest) != nil {
		hint := strings.Replace(format.UserPrefix(s.prefix, id.User), "ssh ", "ssh -L 8888:box:8888 ", 1)
		return "", target, id, fmt.Errorf("forward to a container by name, not to an address: %s", hint)
	}
	d, err := s.deps.Containers.Inspect(ctx, id, dest)
	if err != nil {
		return "", target, id, err
	}
	if d.State != "running" || d.IPAddress == "" {
		return "", target, id, fmt.Errorf("container %s is not running", dest)
	}
	return net.JoinHostPort(d.IPAddress, strconv.FormatUint(uint64(port), 10)), target, id, nil
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
	addr, target, id, err := s.forwardTarget(ctx, req.DestAddr, req.DestPort)
	if err != nil {
		done()
		s.log.Info("port forward refused", "user", id.User, "role", id.Role, "remote", id.RemoteAddr, "key", id.KeyFingerprint,
			"target", target, "reason", err)
		_ = s.audit.Record(forwardEntry(id, target, audit.Refused, err.Error()))
		_ = newChan.Reject(gossh.Prohibited, err.Error())
		return
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		done()
		_ = newChan.Reject(gossh.ConnectionFailed, fmt.Sprintf("nothing answers on %s", target))
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
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
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
