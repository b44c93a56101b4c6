package sshd

import (
	"fmt"
	"io"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/ssh"
	"github.com/charmbracelet/colorprofile"

	"whalemountain/backend"
	"whalemountain/tui/cli"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/dashboard/containers"
	"whalemountain/tui/input"
)

// session is one authenticated SSH session: a dashboard, a command, or a subsystem.
type session struct {
	srv  *Server
	sess ssh.Session
	id   backend.Identity

	mu   sync.Mutex
	prog *tea.Program  // the dashboard while it runs
	idle time.Duration // set when the connection was closed for idleness
}

func newSession(s *Server, sess ssh.Session, id backend.Identity) *session {
	return &session{srv: s, sess: sess, id: id}
}

// run serves the session and returns its exit status.
func (se *session) run() int {
	sess := se.sess
	if sub := sess.Subsystem(); sub != "" {
		fmt.Fprintf(sess.Stderr(), "subsystem %q is not available on this server\n", sub)
		return 1
	}
	pty, hasPty := ptyOf(sess)
	_, winch, _ := sess.Pty()
	args := sess.Command()
	if len(args) == 0 && hasPty {
		return se.dashboard(pty, winch)
	}
	if winch != nil {
		go drain(winch)
	}
	var stdout, stderr io.Writer = sess, sess.Stderr()
	if hasPty {
		// A terminal wants CRLF line ends.
		stdout, stderr = ssh.NewPtyWriter(sess), ssh.NewPtyWriter(sess.Stderr())
	}
	return cli.Run(se.cliEnv(stdout, stderr), args)
}

func (se *session) cliEnv(stdout, stderr io.Writer) cli.Env {
	return cli.Env{
		Ctx:      se.sess.Context(),
		Identity: se.id,
		Stdin:    se.sess,
		Stdout:   stdout,
		Stderr:   stderr,
		Prefix:   se.srv.prefix,
		Version:  se.srv.cfg.Version,
		Deps:     se.srv.deps,
	}
}

// drain keeps the session's window channel empty: a full one blocks the SSH request loop.
func drain(winch <-chan ssh.Window) {
	for range winch {
	}
}

func (se *session) dashboard(pty ssh.Pty, winch <-chan ssh.Window) int {
	sess := se.sess
	rt := input.New(sess, input.Size{Width: pty.Window.Width, Height: pty.Window.Height})
	defer rt.Close()
	go func() {
		for w := range winch {
			rt.Resize(input.Size{Width: w.Width, Height: w.Height})
		}
	}()
	envs := append(sess.Environ(), "TERM="+pty.Term)
	styles := dashboard.DefaultStyles()
	tabs, closeTabs := se.tabs(styles)
	defer closeTabs() // after the program has ended
	model := dashboard.New(dashboard.Info{Server: se.srv.cfg.ServerName, User: se.id.User, Role: string(se.id.Role)},
		styles, tabs...)
	_, err := rt.ProgramRun(func(opts ...tea.ProgramOption) *tea.Program {
		opts = append(opts,
			tea.WithContext(sess.Context()),
			tea.WithOutput(ssh.NewPtyWriter(sess)),
			tea.WithEnvironment(envs),
			tea.WithColorProfile(colorprofile.Env(envs)),
			tea.WithoutSignalHandler(),
			tea.WithFPS(30),
		)
		p := tea.NewProgram(model, opts...)
		se.mu.Lock()
		se.prog = p
		se.mu.Unlock()
		return p
	})
	se.mu.Lock()
	se.prog = nil
	idle := se.idle
	se.mu.Unlock()
	if idle > 0 {
		_, _ = fmt.Fprintf(sess, "whalemountain: no activity for %s; closing.\r\n", idle)
	}
	if err != nil && sess.Context().Err() == nil {
		se.srv.log.Warn("dashboard ended with an error", "user", se.id.User, "err", err)
		return 1
	}
	return 0
}

// tabs builds the session's tabs and the func that releases what they hold.
func (se *session) tabs(st dashboard.Styles) ([]dashboard.Tab, func()) {
	notice := func(name, line string) dashboard.Tab {
		return dashboard.Notice{Name: name, Line: line, Styles: st}
	}
	closeAll := func() {}
	ctr := notice("Containers", "Containers are off on this server (docker.enabled: false).")
	if d := se.srv.deps.Docker; d != nil {
		t := containers.New(d, se.id, st, time.Now)
		ctr, closeAll = t, t.Close
	}
	return []dashboard.Tab{
		ctr,
		notice("Images", "Images are not available on this server yet."),
		notice("GPUs", "GPU monitoring is not available on this server yet."),
		notice("Pods", "Kubernetes pods are not available on this server yet."),
		notice("Runner", "GitLab CI runners are not available on this server yet."),
	}, closeAll
}

// notifyShutdown tells the user, in one line, that the server is stopping.
func (se *session) notifyShutdown(grace time.Duration) {
	line := fmt.Sprintf("The server is stopping; this session ends in %s.", grace.Round(time.Second))
	se.mu.Lock()
	p := se.prog
	se.mu.Unlock()
	if p != nil {
		go p.Send(dashboard.StatusMsg{Text: line, Err: true})
		return
	}
	_, _ = fmt.Fprintf(se.sess.Stderr(), "\r\nwhalemountain: %s\r\n", line)
}

// idleClose ends the session's dashboard because the connection was idle, and says so once
// the terminal is restored.
func (se *session) idleClose(after time.Duration) {
	se.mu.Lock()
	se.idle = after
	p := se.prog
	se.mu.Unlock()
	if p != nil {
		p.Quit()
		return
	}
	_, _ = fmt.Fprintf(se.sess.Stderr(), "\r\nwhalemountain: no activity for %s; closing.\r\n", after)
}

// quit ends a running dashboard so the user's terminal is restored before the connection
// closes.
func (se *session) quit() {
	se.mu.Lock()
	p := se.prog
	se.mu.Unlock()
	if p != nil {
		p.Quit()
	}
}
