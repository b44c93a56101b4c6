package sshd

import (
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"charm.land/ssh"
	gossh "golang.org/x/crypto/ssh"

	"whalemountain/backend/audit"
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
// the caller's containers.
func (s *Server) forwardTarget(ctx ssh.Context, dest string, port uint32) (addr, target string, err error) {
	target = dest + ":" + strconv.FormatUint(uint64(port), 10)
	if port == 0 || port > 65535 {
		return "", target, fmt.Errorf("port %d is not a TCP port", port)
	}
	if s.deps.Containers == nil {
		return "", target, fmt.Errorf("containers are not available on this server")
	}
	if dest == "" || strings.ContainsAny(dest, ":%[]") || net.ParseIP(dest) != nil {
		return "", target, fmt.Errorf("forward to a container by name (ssh -L 8888:box:8888), not to an address")
	}
	key, _ := ctx.Value(ssh.ContextKeyPublicKey).(ssh.PublicKey)
	if key == nil {
		return "", target, fmt.Errorf("no public key")
	}
	id, err := s.auth.Check(ctx, ctx.User(), key, remoteIP(ctx.RemoteAddr()))
	if err != nil {
		return "", target, err
	}
	d, err := s.deps.Containers.Inspect(ctx, id, dest)
	if err != nil {
		return "", target, err
	}
	if d.State != "running" || d.IPAddress == "" {
		return "", target, fmt.Errorf("container %s is not running", dest)
	}
	return net.JoinHostPort(d.IPAddress, strconv.FormatUint(uint64(port), 10)), target, nil
}

// directTCPIP serves `ssh -L` channels after forwardTarget allowed them.
func (s *Server) directTCPIP(_ *ssh.Server, _ *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	var req forwardRequest
	if err := gossh.Unmarshal(newChan.ExtraData(), &req); err != nil {
		_ = newChan.Reject(gossh.ConnectionFailed, "malformed forward request")
		return
	}
	addr, target, err := s.forwardTarget(ctx, req.DestAddr, req.DestPort)
	ip := remoteIP(ctx.RemoteAddr())
	if err != nil {
		s.log.Info("port forward refused", "user", ctx.User(), "remote", ip, "target", target, "reason", err)
		_ = s.audit.Record(audit.Entry{User: ctx.User(), Source: ip, Action: "forward", Target: target, Result: audit.Refused, Reason: err.Error()})
		_ = newChan.Reject(gossh.Prohibited, err.Error())
		return
	}
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		_ = newChan.Reject(gossh.ConnectionFailed, fmt.Sprintf("nothing answers on %s", target))
		return
	}
	ch, reqs, err := newChan.Accept()
	if err != nil {
		conn.Close()
		return
	}
	_ = s.audit.Record(audit.Entry{User: ctx.User(), Source: ip, Action: "forward", Target: target, Result: audit.OK})
	go gossh.DiscardRequests(reqs)
	go func() {
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
