// Package sshd is the SSH door: it assembles the charm.land/ssh server (host keys, public-key
// authentication through sshauth, connection limits, the middleware chain in one place) and
// hands each session to the dashboard or the command line.
package sshd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"charm.land/ssh"
	"charm.land/wish/v2"
	gossh "golang.org/x/crypto/ssh"

	"whalemountain/backend"
	"whalemountain/backend/audit"
	"whalemountain/tui/cli"
)

// Authenticator decides who a key belongs to (sshauth.Authenticator).
type Authenticator interface {
	Check(ctx context.Context, user string, key gossh.PublicKey, remote string) (backend.Identity, error)
	Allow(remote string) error
	RecordRefusal(remote string, err error)
}

// Config is the door's configuration; zero fields take safe defaults.
type Config struct {
	Listen             string
	ServerName         string // shown in the header and in usage text
	Version            string
	HostSigners        []gossh.Signer
	MaxAuthTries       int           // per connection; default 6
	LoginGrace         time.Duration // to finish authentication; default 30s
	IdleTimeout        time.Duration // no traffic at all; default 1h
	MaxSessionsPerUser int           // open sessions at once; default 10
	ShutdownGrace      time.Duration // for open sessions at stop; default 10s
	Startups           Startups      // connections not yet logged in; zero: DefaultStartups
	MaxForwards        int           // open ssh -L channels per connection; default 64
}

func (c *Config) defaults() {
	if c.MaxAuthTries <= 0 {
		c.MaxAuthTries = 6
	}
	if c.LoginGrace <= 0 {
		c.LoginGrace = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = time.Hour
	}
	if c.MaxSessionsPerUser <= 0 {
		c.MaxSessionsPerUser = 10
	}
	if c.ShutdownGrace <= 0 {
		c.ShutdownGrace = 10 * time.Second
	}
	if c.Startups == (Startups{}) {
		c.Startups = DefaultStartups
	}
	if c.MaxForwards <= 0 {
		c.MaxForwards = 64
	}
}

// Server is the running door.
type Server struct {
	cfg    Config
	auth   Authenticator
	audit  *audit.Log
	deps   cli.Deps
	log    *slog.Logger
	srv    *ssh.Server
	prefix string

	conns    sync.Map // remote address -> *connState, for the handshake's outcome
	startups *startups

	mu       sync.Mutex
	perUser  map[string]int
	sessions map[*session]struct{}
	forwards map[*openForward]struct{}
	// presence are the Class tabs on screen, each woken when a session opens or closes.
	presence map[chan struct{}]struct{}
	stopping atomic.Bool
	wg       sync.WaitGroup
}

// connState follows one connection: authentication, then its sessions and idle time.
type connState struct {
	mu       sync.Mutex
	user     string
	attempts int
	reason   string // why the last key was refused
	lastKey  string // fingerprint of the last key refused
	lastErr  error
	accepted bool
	sessions map[*session]struct{}
	release  func() // frees its place among the connections not yet logged in
	forwards int    // open ssh -L channels
	// ptys are the PTY requests of the connection's sessions, by session: the context
	// charm.land/ssh hands the PTY handler is the connection's, shared by all its sessions.
	ptys map[ssh.Session]ssh.Pty

	conn *activityConn
}

// activityConn records when the client last sent anything (keys, keepalives): what the
// server writes (a live dashboard redrawing) does not keep a forgotten session open.
type activityConn struct {
	net.Conn
	last atomic.Int64 // unix nanoseconds
}

func (c *activityConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 {
		c.last.Store(time.Now().UnixNano())
	}
	return n, err
}

func (c *activityConn) idleFor() time.Duration {
	return time.Since(time.Unix(0, c.last.Load()))
}

type ctxKey struct{ name string }

var (
	connKey = &ctxKey{"conn-state"}
)

// New builds the door. It does not listen yet.
func New(cfg Config, auth Authenticator, auditLog *audit.Log, deps cli.Deps, logger *slog.Logger) (*Server, error) {
	cfg.defaults()
	if len(cfg.HostSigners) == 0 {
		return nil, errors.New("ssh server: no host key")
	}
	if auth == nil {
		return nil, errors.New("ssh server: no authenticator")
	}
	if err := cfg.Startups.Validate(); err != nil {
		return nil, fmt.Errorf("ssh server: %w", err)
	}
	s := &Server{cfg: cfg, auth: auth, audit: auditLog, deps: deps, log: logger,
		perUser: map[string]int{}, sessions: map[*session]struct{}{}, forwards: map[*openForward]struct{}{},
		presence: map[chan struct{}]struct{}{}, startups: newStartups(cfg.Startups, logger)}
	s.prefix = usagePrefix(cfg.ServerName, cfg.Listen)
	s.deps.Console = s

	srv, err := wish.NewServer(
		wish.WithAddress(cfg.Listen),
		wish.WithVersion("WhaleMountain"),
		wish.WithPublicKeyAuth(s.publicKey),
		wish.WithMiddleware(s.chain()...),
		func(srv *ssh.Server) error {
			srv.HostSigners = nil
			for _, signer := range cfg.HostSigners {
				srv.AddHostKey(signer)
			}
			srv.HandshakeTimeout = cfg.LoginGrace
			srv.PtyHandler = storePty
			srv.ConnCallback = s.onConn
			srv.ConnectionFailedCallback = s.onConnFailed
			srv.ConnectionCloseCallback = s.onConnClose
			srv.ServerConfigCallback = func(ssh.Context) *gossh.ServerConfig {
				return &gossh.ServerConfig{MaxAuthTries: cfg.MaxAuthTries}
			}
			// Everything not explicitly allowed is refused: no remote forwarding, no agent
			// forwarding and no X11 (sessionHandler answers no to both requests, so no agent
			// or X11 channel is ever opened). Local forwarding (ssh -L) reaches only the
			// user's own running containers (forward.go).
			srv.ChannelHandlers = map[string]ssh.ChannelHandler{
				"session":      sessionHandler,
				"direct-tcpip": s.directTCPIP,
				// ssh -L LOCAL:/docker.sock: the user's own Docker API (dockerapi.go).
				"direct-streamlocal@openssh.com": s.directStreamLocal,
			}
			srv.ReversePortForwardingCallback = func(ssh.Context, string, uint32) bool { return false }
			// A subsystem the server does not list is refused before any handler runs; sftp
			// (and scp, which speaks it) goes through the same chain as every session.
			srv.SubsystemHandlers = map[string]ssh.SubsystemHandler{}
			if deps.Files != nil {
				srv.SubsystemHandlers["sftp"] = ssh.SubsystemHandler(srv.Handler)
			}
			return nil
		},
	)
	if err != nil {
		return nil, fmt.Errorf("ssh server: %w", err)
	}
	s.srv = srv
	return s, nil
}

// refusedSessionRequests are the session requests answered "no" before charm.land/ssh sees
// them. It answers yes to agent forwarding on its own (session.go has no option for it) and
// only marks the session, which would tell the client its agent is forwarded; X11 it refuses
// today, but a request it never sees cannot start being accepted by a later version.
var refusedSessionRequests = map[string]bool{
	"auth-agent-req@openssh.com": true,
	"x11-req":                    true,
}

// sessionHandler is charm.land/ssh's session handler, on a channel whose
// refusedSessionRequests are answered no and never passed on.
func sessionHandler(srv *ssh.Server, conn *gossh.ServerConn, newChan gossh.NewChannel, ctx ssh.Context) {
	ssh.DefaultSessionHandler(srv, conn, refusingChannel{newChan}, ctx)
}

// refusingChannel is a session channel whose requests pass a filter once accepted.
type refusingChannel struct{ gossh.NewChannel }

// Accept accepts the channel and passes on its requests, in order, except the refused ones,
// which are answered no. The requests it passes on end when the channel's do.
func (c refusingChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	ch, reqs, err := c.NewChannel.Accept()
	if err != nil {
		return ch, reqs, err
	}
	out := make(chan *gossh.Request)
	go func() {
		defer close(out)
		for req := range reqs {
			if refusedSessionRequests[req.Type] {
				_ = req.Reply(false, nil) // nothing is sent when no reply was asked for
				continue
			}
			out <- req
		}
	}()
	return ch, out, nil
}

// usagePrefix is how users type commands: "ssh -p 2222 host".
func usagePrefix(server, listen string) string {
	host := server
	if host == "" {
		host = "host"
	}
	port := "22"
	if _, p, err := net.SplitHostPort(listen); err == nil && p != "" {
		port = p
	}
	if port == "22" {
		return "ssh " + host
	}
	return "ssh -p " + port + " " + host
}

// Prefix is the usage prefix shown to users.
func (s *Server) Prefix() string { return s.prefix }

// storePty records the PTY request of one session without emulating one, so writes stay
// byte-exact and the session's one input reader stays ours. It is kept for that session
// alone: another session on the same connection (OpenSSH's ControlMaster, a Go client)
// has a terminal only if it asked for one.
func storePty(ctx ssh.Context, sess ssh.Session, pty ssh.Pty) (func() error, error) {
	st, _ := ctx.Value(connKey).(*connState)
	if st == nil {
		return nil, errors.New("no connection state")
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.ptys == nil {
		st.ptys = map[ssh.Session]ssh.Pty{}
	}
	st.ptys[sess] = pty
	return func() error {
		st.mu.Lock()
		defer st.mu.Unlock()
		delete(st.ptys, sess)
		return nil
	}, nil
}

// ptyOf is the PTY session s asked for, if it did.
func ptyOf(s ssh.Session) (ssh.Pty, bool) {
	st, _ := s.Context().Value(connKey).(*connState)
	if st == nil {
		return ssh.Pty{}, false
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	p, ok := st.ptys[s]
	return p, ok
}

func remoteIP(a net.Addr) string {
	if a == nil {
		return ""
	}
	if h, _, err := net.SplitHostPort(a.String()); err == nil {
		return h
	}
	return a.String()
}

// onConn refuses connections from an address that failed too often, before any handshake.
func (s *Server) onConn(ctx ssh.Context, c net.Conn) net.Conn {
	if s.stopping.Load() {
		c.Close()
		return nil
	}
	ip := remoteIP(c.RemoteAddr())
	if err := s.auth.Allow(ip); err != nil {
		s.log.Warn("connection refused", "remote", ip, "reason", err)
		_ = s.audit.Record(audit.Entry{Source: ip, Action: "login", Result: audit.Refused, Reason: err.Error()})
		c.Close()
		return nil
	}
	release, ok := s.startups.admit(ip)
	if !ok {
		c.Close() // logged once per burst by the limiter
		return nil
	}
	ac := &activityConn{Conn: c}
	ac.last.Store(time.Now().UnixNano())
	st := &connState{conn: ac, sessions: map[*session]struct{}{}, release: release}
	ctx.SetValue(connKey, st)
	s.conns.Store(c.RemoteAddr().String(), st)
	go s.watchIdle(ctx, st)
	return ac
}

// watchIdle closes a connection whose client sent nothing for the idle timeout. Dashboards on
// it are ended first, so the user's terminal is restored and told why.
func (s *Server) watchIdle(ctx ssh.Context, st *connState) {
	period := min(s.cfg.IdleTimeout/4, 30*time.Second)
	period = max(period, 50*time.Millisecond)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if st.conn.idleFor() < s.cfg.IdleTimeout {
			continue
		}
		st.mu.Lock()
		open := make([]*session, 0, len(st.sessions))
		for se := range st.sessions {
			open = append(open, se)
		}
		st.mu.Unlock()
		s.log.Info("closing idle connection", "user", st.user, "idle", s.cfg.IdleTimeout)
		for _, se := range open {
			se.idleClose(s.cfg.IdleTimeout)
		}
		deadline := time.Now().Add(2 * time.Second)
		for time.Now().Before(deadline) {
			st.mu.Lock()
			n := len(st.sessions)
			st.mu.Unlock()
			if n == 0 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		st.conn.Close()
		return
	}
}

// publicKey answers whether key may log in as the requested user. It may be asked about keys
// the client only offers; the session re-checks the key actually used.
func (s *Server) publicKey(ctx ssh.Context, key ssh.PublicKey) bool {
	st, _ := ctx.Value(connKey).(*connState)
	if st == nil {
		return false
	}
	st.mu.Lock()
	st.attempts++
	over := st.attempts > s.cfg.MaxAuthTries
	st.mu.Unlock()
	if over {
		// Every key offered counts, whichever the client would sign with.
		return false
	}
	id, err := s.auth.Check(ctx, ctx.User(), key, remoteIP(ctx.RemoteAddr()))
	{
		st.mu.Lock()
		st.user = ctx.User()
		if err != nil {
			st.reason = err.Error()
			st.lastErr = err
			st.lastKey = gossh.FingerprintSHA256(key)
		} else {
			st.accepted = true
			st.release()
		}
		st.mu.Unlock()
	}
	if err != nil {
		s.log.Debug("key refused", "user", ctx.User(), "remote", remoteIP(ctx.RemoteAddr()),
			"key", gossh.FingerprintSHA256(key), "reason", err)
		return false
	}
	_ = id
	return true
}

// onConnFailed runs when a handshake fails: a refused login counts against the address.
func (s *Server) onConnFailed(c net.Conn, err error) {
	v, ok := s.conns.LoadAndDelete(c.RemoteAddr().String())
	if !ok {
		return
	}
	st := v.(*connState)
	st.release()
	st.mu.Lock()
	user, attempts, reason, lastErr, lastKey := st.user, st.attempts, st.reason, st.lastErr, st.lastKey
	st.mu.Unlock()
	ip := remoteIP(c.RemoteAddr())
	if attempts > s.cfg.MaxAuthTries {
		reason = fmt.Sprintf("too many keys offered (limit %d); last refusal: %s", s.cfg.MaxAuthTries, reason)
	}
	if reason == "" {
		reason = "no usable key offered"
		if attempts == 0 && user == "" {
			reason = "handshake failed: " + err.Error()
		}
	}
	if attempts > 0 {
		s.auth.RecordRefusal(ip, lastErr)
	}
	s.log.Info("login refused", "user", user, "remote", ip, "reason", reason)
	_ = s.audit.Record(audit.Entry{User: user, Source: ip, Key: lastKey, Action: "login", Result: audit.Refused, Reason: reason})
}

func (s *Server) onConnClose(c net.Conn) {
	if v, ok := s.conns.LoadAndDelete(c.RemoteAddr().String()); ok {
		v.(*connState).release()
	}
}

// Serve accepts connections on l until Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.srv.Serve(l)
	if errors.Is(err, ssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, tells every open session in one line, waits up to the grace
// period for them to end, then closes what is left. Containers are never touched.
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopping.Store(true)
	s.mu.Lock()
	open := make([]*session, 0, len(s.sessions))
	for se := range s.sessions {
		open = append(open, se)
	}
	s.mu.Unlock()
	for _, se := range open {
		se.notifyShutdown(s.cfg.ShutdownGrace)
	}
	done := make(chan struct{})
	go func() {
		_ = s.srv.Shutdown(context.Background())
		close(done)
	}()
	// Sessions end on their own (a dashboard quits after the notice); past the grace period,
	// close the rest.
	graceCtx, cancel := context.WithTimeout(ctx, s.cfg.ShutdownGrace)
	defer cancel()
	sessionsDone := make(chan struct{})
	go func() { s.wg.Wait(); close(sessionsDone) }()
	select {
	case <-sessionsDone:
	case <-graceCtx.Done():
		for _, se := range open {
			se.quit()
		}
		select {
		case <-sessionsDone:
		case <-time.After(time.Second):
		}
	}
	_ = s.srv.Close()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
	}
	return nil
}

// OpenSessions is the number of sessions open now.
func (s *Server) OpenSessions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

func (s *Server) admit(se *session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping.Load() {
		return errors.New("the server is stopping; try again in a minute")
	}
	if s.perUser[se.id.User] >= s.cfg.MaxSessionsPerUser {
		return fmt.Errorf("too many open sessions for %s (limit %d); close one and try again", se.id.User, s.cfg.MaxSessionsPerUser)
	}
	s.perUser[se.id.User]++
	s.sessions[se] = struct{}{}
	s.wg.Add(1)
	s.presenceChanged()
	return nil
}

// presenceChanged wakes every presence subscriber that is not already awake; s.mu is held.
func (s *Server) presenceChanged() {
	for ch := range s.presence {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// SubscribeSessions returns a channel that receives when a session opens or closes (changes
// coalesce: one wake-up may stand for several), and the func that lets go of it.
func (s *Server) SubscribeSessions() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.presence[ch] = struct{}{}
	s.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.presence, ch)
			s.mu.Unlock()
		})
	}
}

func (s *Server) release(se *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.sessions[se]; !ok {
		return
	}
	delete(s.sessions, se)
	if s.perUser[se.id.User]--; s.perUser[se.id.User] <= 0 {
		delete(s.perUser, se.id.User)
	}
	s.presenceChanged()
	s.wg.Done()
}

// chain is the whole middleware chain, outermost first. wish runs the last listed first, so
// the list is reversed here to read in order.
func (s *Server) chain() []wish.Middleware {
	inOrder := []wish.Middleware{
		s.recoverMiddleware, // a panic ends one session, never the server
		s.identify,          // re-check the key actually used; admit or refuse
	}
	out := make([]wish.Middleware, len(inOrder))
	for i, m := range inOrder {
		out[len(inOrder)-1-i] = m
	}
	return out
}

func (s *Server) recoverMiddleware(next ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("session panic", "user", sess.User(), "panic", r)
				_, _ = fmt.Fprintln(sess.Stderr(), "internal error; the incident was logged")
				_ = sess.Exit(1)
			}
		}()
		next(sess)
	}
}

// identify turns the session's authenticated key into an Identity. The key the client
// offered first is not trusted: only s.PublicKey(), the one it signed with, counts.
func (s *Server) identify(_ ssh.Handler) ssh.Handler {
	return func(sess ssh.Session) {
		ip := remoteIP(sess.RemoteAddr())
		s.conns.Delete(sess.RemoteAddr().String())
		key := sess.PublicKey()
		if key == nil {
			s.refuse(sess, ip, "", "no public key")
			return
		}
		id, err := s.auth.Check(sess.Context(), sess.User(), key, ip)
		if err != nil {
			s.refuse(sess, ip, gossh.FingerprintSHA256(key), err.Error())
			return
		}
		if err := s.audit.Ready(); err != nil {
			// A login that cannot be recorded is refused, as every action is then.
			s.refuseUnrecorded(sess, id, err)
			return
		}
		se := newSession(s, sess, id)
		if err := s.admit(se); err != nil {
			_ = s.audit.Action(id, "login", "", audit.Refused, err.Error())
			_, _ = fmt.Fprintln(sess.Stderr(), err.Error())
			_ = sess.Exit(1)
			return
		}
		defer s.release(se)
		if st, ok := sess.Context().Value(connKey).(*connState); ok {
			st.mu.Lock()
			st.sessions[se] = struct{}{}
			st.mu.Unlock()
			defer func() {
				st.mu.Lock()
				delete(st.sessions, se)
				st.mu.Unlock()
			}()
		}
		if err := s.audit.Action(id, "login", sessionKind(sess), audit.Accepted, ""); err != nil {
			s.refuseUnrecorded(sess, id, err)
			return
		}
		s.log.Info("session", "user", id.User, "role", id.Role, "remote", ip, "key", id.KeyFingerprint,
			"source", id.KeySource, "kind", sessionKind(sess))
		code := se.serve()
		_ = sess.Exit(code)
	}
}

// refuseUnrecorded ends a session whose login the audit log cannot take, in one line.
func (s *Server) refuseUnrecorded(sess ssh.Session, id backend.Identity, err error) {
	s.log.Error("login refused: the audit log cannot be written", "user", id.User, "err", err)
	_ = s.audit.Action(id, "login", sessionKind(sess), audit.Refused, err.Error())
	msg := "refused: the audit log cannot be written; tell an administrator"
	if errors.Is(err, audit.ErrCannotRecord) {
		msg = "refused: " + err.Error() + "; tell an administrator"
	}
	_, _ = fmt.Fprintln(sess.Stderr(), msg)
	_ = sess.Exit(1)
}

func (s *Server) refuse(sess ssh.Session, ip, fp, reason string) {
	s.log.Warn("session refused", "user", sess.User(), "remote", ip, "reason", reason)
	_ = s.audit.Record(audit.Entry{User: sess.User(), Source: ip, Key: fp, Action: "login", Result: audit.Refused, Reason: reason})
	_, _ = fmt.Fprintln(sess.Stderr(), "permission denied")
	_ = sess.Exit(1)
}

// hideSecrets replaces every argument that holds a GitLab runner token (one typed on the
// command line by mistake: runner token reads it from stdin) before the audit log or the
// server's log repeats the command line.
func hideSecrets(args []string) []string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.Contains(a, "glrt-") {
			a = "glrt-[hidden]"
		}
		out[i] = a
	}
	return out
}

func sessionKind(sess ssh.Session) string {
	switch {
	case sess.Subsystem() != "":
		return "subsystem " + sess.Subsystem()
	case len(sess.Command()) > 0:
		return "command " + strings.Join(hideSecrets(sess.Command()), " ")
	}
	if _, ok := ptyOf(sess); ok {
		return "dashboard"
	}
	return "command help"
}
