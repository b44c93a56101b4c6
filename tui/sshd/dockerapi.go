package sshd

import (
	"fmt"
	"slices"
	"strings"

	"charm.land/ssh"
	gossh "golang.org/x/crypto/ssh"

	"whalemountain/backend"
	"whalemountain/backend/audit"
	"whalemountain/tui/dockerapi"
	"whalemountain/tui/format"
)

// The per-user Docker Engine API's two ways in (the API itself is tui/dockerapi):
//
//   - `docker system dial-stdio` as an SSH command, what the docker CLI's ssh:// transport
//     runs on the remote: the session's stdin and stdout are one HTTP connection.
//   - OpenSSH's forwarding of a unix socket (`ssh -L /tmp/gpu1.sock:/docker.sock`), a
//     direct-streamlocal@openssh.com channel per connection to the local socket. Only
//     dockerSocket is served, and it is the caller's own API; every other path — the
//     engine's own /var/run/docker.sock included, so nobody mistakes what they reach for
//     the engine — is refused and audited.

// dockerSocket is the one socket path a forward may name.
const dockerSocket = "/docker.sock"

// isDialStdio reports whether a command is the docker CLI's dial-stdio, with or without a
// --host/-H naming dockerSocket (a docker context with that path in its ssh URL).
func isDialStdio(args []string) bool {
	if len(args) < 3 || args[0] != "docker" {
		return false
	}
	rest := args[1:]
	for len(rest) > 0 && strings.HasPrefix(rest[0], "-") {
		flag, value, inline := strings.Cut(rest[0], "=")
		if flag != "--host" && flag != "-H" {
			return false
		}
		if !inline {
			if len(rest) < 2 {
				return false
			}
			value, rest = rest[1], rest[1:]
		}
		if strings.TrimPrefix(value, "unix://") != dockerSocket {
			return false
		}
		rest = rest[1:]
	}
	return slices.Equal(rest, []string{"system", "dial-stdio"})
}

// serve runs the session: the Docker API for dial-stdio, everything else as before.
func (se *session) serve() int {
	args := se.sess.Command()
	if isDialStdio(args) {
		return se.dockerAPI()
	}
	if len(args) > 0 && args[0] == "docker" && se.sess.Subsystem() == "" {
		fmt.Fprintf(se.sess.Stderr(), "this server speaks the Docker API to your own docker CLI: DOCKER_HOST=ssh://%s docker %s\n",
			dockerHost(se.srv.prefix, se.id.User), strings.Join(args[1:], " "))
		return 2
	}
	return se.run()
}

// dockerHost is the ssh:// address users give DOCKER_HOST: "alice@gpu1:2222".
func dockerHost(prefix, user string) string {
	f := strings.Fields(prefix) // "ssh", ["-p", "2222"], "host"
	host, port := f[len(f)-1], ""
	if len(f) == 4 && f[1] == "-p" {
		port = ":" + f[2]
	}
	return user + "@" + host + port
}

// dockerAPI serves the session's stdin and stdout as one connection of the user's API.
func (se *session) dockerAPI() int {
	if _, ok := ptyOf(se.sess); ok {
		fmt.Fprintln(se.sess.Stderr(), "docker system dial-stdio needs no terminal: run ssh with -T")
		return 2
	}
	b := se.srv.deps.DockerAPI
	if b == nil {
		fmt.Fprintln(se.sess.Stderr(), "the Docker API is not available on this server (docker.enabled: false)")
		return 1
	}
	if _, winch, ok := se.sess.Pty(); ok && winch != nil {
		go drain(winch)
	}
	h := dockerapi.Handler(b, se.id, dockerapi.Options{Logger: se.srv.log})
	if err := dockerapi.Serve(se.sess.Context(), se.sess, h, se.srv.log); err != nil {
		se.srv.log.Warn("docker api connection ended with an error", "user", se.id.User, "err", err)
		return 1
	}
	return 0
}

// streamLocalRequest is the direct-streamlocal@openssh.com payload (OpenSSH's PROTOCOL,
// section 2.4): the socket path, then two reserved fields.
type streamLocalRequest struct {
	SocketPath string
	Reserved0  string
	Reserved1  uint32
}

// channelIdentity is who opened a channel: the connection's key checked again, as for a
// session. id holds what is known of them when it is refused.
func (s *Server) channelIdentity(ctx ssh.Context) (backend.Identity, error) {
	id := backend.Identity{User: ctx.User(), RemoteAddr: remoteIP(ctx.RemoteAddr())}
	key, _ := ctx.Value(ssh.ContextKeyPublicKey).(ssh.PublicKey)
	if key == nil {
		return id, fmt.Errorf("no public key")
	}
	id.KeyFingerprint = gossh.FingerprintSHA256(key)
	checked, err := s.auth.Check(ctx, ctx.User(), key, id.RemoteAddr)
	if err != nil {
		return id, err
	}
	return checked, nil
}

// directStreamLocal serves `ssh -L LOCAL:/docker.sock` channels with the user's own API.
func (s *Server) directStreamLocal(_ *ssh.Server, _ *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	var req streamLocalRequest
	if err := gossh.Unmarshal(newChan.ExtraData(), &req); err != nil {
		_ = newChan.Reject(gossh.ConnectionFailed, "malformed forward request")
		return
	}
	done, ok := s.holdForward(ctx)
	if !ok {
		_ = newChan.Reject(gossh.ResourceShortage, fmt.Sprintf("at most %d forwards open on one connection", s.cfg.MaxForwards))
		return
	}
	target := socketShown(req.SocketPath)
	id, err := s.channelIdentity(ctx)
	switch {
	case err != nil:
	case req.SocketPath != dockerSocket:
		err = fmt.Errorf("only the Docker API can be forwarded to a unix socket: %s", strings.Replace(
			format.UserPrefix(s.prefix, id.User), "ssh ", "ssh -L /tmp/docker.sock:/docker.sock ", 1))
	case s.deps.DockerAPI == nil:
		err = fmt.Errorf("the Docker API is not available on this server")
	}
	if err != nil {
		s.log.Info("socket forward refused", "user", id.User, "role", id.Role, "remote", id.RemoteAddr, "key", id.KeyFingerprint,
			"socket", target, "reason", err)
		_ = s.audit.Record(forwardEntry(id, "unix:"+target, audit.Refused, err.Error()))
		_ = newChan.Reject(gossh.Prohibited, err.Error())
		done()
		return
	}
	ch, reqs, err := newChan.Accept()
	if err != nil {
		done()
		return
	}
	_ = s.audit.Record(forwardEntry(id, "unix:"+target, audit.OK, ""))
	go gossh.DiscardRequests(reqs)
	go func() {
		defer done()
		defer ch.Close()
		h := dockerapi.Handler(s.deps.DockerAPI, id, dockerapi.Options{Logger: s.log})
		if err := dockerapi.Serve(ctx, ch, h, s.log); err != nil {
			s.log.Warn("docker api connection ended with an error", "user", id.User, "err", err)
		}
	}()
}

// socketShown is a socket path as the log and audit may repeat it: printable ASCII, at
// most 200 bytes.
func socketShown(p string) string {
	b := []byte(p)
	if len(b) > 200 {
		b = append(b[:200], "..."...)
	}
	for i, c := range b {
		if c < ' ' || c > '~' {
			b[i] = '?'
		}
	}
	return string(b)
}
