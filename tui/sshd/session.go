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
	"whalemountain/tui/bridge"
	"whalemountain/tui/cli"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/dashboard/class"
	"whalemountain/tui/dashboard/containers"
	"whalemountain/tui/dashboard/gpus"
	"whalemountain/tui/dashboard/images"
	"whalemountain/tui/dashboard/pods"
	"whalemountain/tui/dashboard/runners"
	"whalemountain/tui/files"
	"whalemountain/tui/input"
	"whalemountain/tui/screen"
	"whalemountain/tui/share"
)

// session is one authenticated SSH session: a dashboard, a command, or a subsystem.
type session struct {
	srv  *Server
	sess ssh.Session
	id   backend.Identity

	since  time.Time
	hasPty bool

	mu   sync.Mutex
	prog *tea.Program  // the dashboard while it runs
	idle time.Duration // set when the connection was closed for idleness
	what string        // what it is doing now, for who: "dashboard", "shell in box"
}

func newSession(s *Server, sess ssh.Session, id backend.Identity) *session {
	_, hasPty := ptyOf(sess)
	return &session{srv: s, sess: sess, id: id, since: time.Now(), hasPty: hasPty,
		what: initialWhat(sess.Command(), sess.Subsystem(), hasPty)}
}

// run serves the session and returns its exit status.
func (se *session) run() int {
	sess := se.sess
	if sub := sess.Subsystem(); sub != "" {
		if sub == "sftp" && se.srv.deps.Files != nil {
			return se.sftp()
		}
		fmt.Fprintf(sess.Stderr(), "subsystem %q is not available on this server\n", sub)
		return 1
	}
	pty, hasPty := ptyOf(sess)
	_, winch, _ := sess.Pty()
	args := sess.Command()
	if len(args) == 0 && hasPty {
		return se.dashboard(pty, winch)
	}
	var stdout, stderr io.Writer = sess, sess.Stderr()
	var term *cli.Terminal
	if hasPty {
		// A terminal wants CRLF line ends, except what a process in a container writes.
		stdout, stderr = ssh.NewPtyWriter(sess), ssh.NewPtyWriter(sess.Stderr())
		term = &cli.Terminal{
			Term:  pty.Term,
			Size:  input.Size{Width: pty.Window.Width, Height: pty.Window.Height},
			Sizes: latestSizes(winch),
			In:    sess,
			Out:   sess,
		}
	} else if winch != nil {
		go drain(winch)
	}
	env := se.cliEnv(stdout, stderr)
	env.Terminal = term
	return cli.Run(env, args)
}

// sftp serves the file tree (sftp, scp) until the client ends the session.
func (se *session) sftp() int {
	d := se.srv.deps
	if err := files.Subsystem(se.sess.Context(), se.sess, d.Files, se.id, se.srv.log, d.FilesOptions); err != nil {
		se.srv.log.Warn("sftp session ended with an error", "user", se.id.User, "err", err)
		return 1
	}
	return 0
}

// latestSizes turns the session's window changes into sizes, keeping only the newest when
// nobody is reading, so the SSH request loop never blocks.
func latestSizes(winch <-chan ssh.Window) <-chan input.Size {
	out := make(chan input.Size, 1)
	go func() {
		defer close(out)
		for w := range winch {
			s := input.Size{Width: w.Width, Height: w.Height}
			select {
			case out <- s:
			default:
				select {
				case <-out:
				default:
				}
				out <- s
			}
		}
	}()
	return out
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
	var back returnPoint
	for {
		shellIn, active, code := se.dashboardOnce(rt, envs, styles, back)
		if shellIn == nil || code != 0 || sess.Context().Err() != nil {
			return code
		}
		back = se.shell(rt, pty.Term, *shellIn, active)
		if sess.Context().Err() != nil {
			return 0
		}
	}
}

// returnPoint is where the dashboard comes back to after a shell: the tab that asked for
// it, its row (the tab's own reference), and a line about how the shell ended.
type returnPoint struct {
	active   int
	selected string
	status   dashboard.StatusMsg
}

// dashboardOnce runs the dashboard until the user quits (nil) or a tab asks for a shell
// (that shell, and the tab that asked).
func (se *session) dashboardOnce(rt *input.Router, envs []string, styles dashboard.Styles, back returnPoint) (*dashboard.Shell, int, int) {
	sess := se.sess
	var model *dashboard.Model
	var shellIn *dashboard.Shell
	model = dashboard.New(dashboard.Info{Server: se.srv.cfg.ServerName, User: se.id.User, Role: string(se.id.Role)},
		styles, se.tabs(styles)...)
	defer model.Close() // after the program has ended
	model.SetActive(back.active)
	if back.status.Text != "" {
		model.Update(back.status)
	}
	if back.selected != "" {
		model.Select(back.active, back.selected)
	}
	model.SetShell(func(sh dashboard.Shell) tea.Cmd {
		shellIn = &sh
		model.HandOff()
		return tea.Quit
	})
	// The screen paints what changed when it changes; Bubble Tea's own renderer (a frame
	// ticker and two cell buffers per session) stays off, and the ticker it keeps even so is
	// stopped once the program runs (ReleaseTerminal: Bubble Tea holds no terminal here).
	scr := screen.New(sess, colorprofile.Env(envs), "WhaleMountain")
	defer scr.Close()
	size := rt.Size()
	scr.Resize(size.Width, size.Height)
	model.Update(tea.WindowSizeMsg{Width: size.Width, Height: size.Height})
	_, err := rt.ProgramRun(func(opts ...tea.ProgramOption) *tea.Program {
		opts = append(opts,
			tea.WithContext(sess.Context()),
			tea.WithoutRenderer(),
			tea.WithOutput(io.Discard), // the screen writes; nothing of Bubble Tea's reaches the server's stdout
			tea.WithFPS(1),
			tea.WithEnvironment(envs),
			tea.WithColorProfile(colorprofile.Env(envs)),
			tea.WithoutSignalHandler(),
		)
		var p *tea.Program
		p = tea.NewProgram(screen.Wrap(model, scr, func() { _ = p.ReleaseTerminal() }), opts...)
		se.mu.Lock()
		se.prog = p
		se.mu.Unlock()
		return p
	})
	_ = scr.Close() // the terminal is back to its main screen before anything more is said
	se.mu.Lock()
	se.prog = nil
	idle := se.idle
	se.mu.Unlock()
	if idle > 0 {
		_, _ = fmt.Fprintf(sess, "whalemountain: no activity for %s; closing.\r\n", idle)
		return nil, 0, 0
	}
	if err != nil && sess.Context().Err() == nil {
		se.srv.log.Warn("dashboard ended with an error", "user", se.id.User, "err", err)
		return nil, 0, 1
	}
	return shellIn, model.Active(), 0
}

// shell runs sh's terminal on the session's raw input stream, then says where to come back
// to: tab active, on the row sh names.
func (se *session) shell(rt *input.Router, term string, sh dashboard.Shell, active int) returnPoint {
	back := returnPoint{active: active, selected: sh.Back}
	se.setWhat("shell in " + sh.Name)
	defer se.setWhat("dashboard")
	size := rt.Size()
	ex, err := sh.Open(se.sess.Context(), backend.ExecSpec{
		TTY: true, Term: term, Width: size.Width, Height: size.Height,
	})
	if err != nil {
		back.status = dashboard.StatusMsg{Text: "shell in " + sh.Name + ": " + err.Error(), Err: true}
		return back
	}
	if h := se.srv.deps.Shares; h != nil {
		ex = h.Open(se.id, sh.Name, ex, share.Terminal{Term: term, Width: size.Width, Height: size.Height})
	}
	stream := rt.Stream()
	defer stream.Close()
	res, err := bridge.Run(se.sess.Context(), ex, bridge.Terminal{
		In: stream, Out: se.sess, Sizes: stream.Sizes(), StopInput: func() { stream.Close() },
	})
	switch {
	case err != nil:
		back.status = dashboard.StatusMsg{Text: "shell in " + sh.Name + ": " + err.Error(), Err: true}
	default:
		back.status = dashboard.StatusMsg{Text: fmt.Sprintf("shell in %s ended (exit %d)", sh.Name, res.ExitCode)}
	}
	return back
}

// tabs builds the session's tabs, in the order the tab bar shows them; the dashboard owns
// them (and closes them) from then on.
func (se *session) tabs(st dashboard.Styles) []dashboard.Tab {
	d := se.srv.deps
	notice := func(name, line string) dashboard.Tab {
		return dashboard.Notice{Name: name, Line: line, Styles: st}
	}
	var tabs []dashboard.Tab
	if d.Live != nil {
		ctr := containers.New(d.Live, se.id, st, time.Now)
		ctr.SetPrefix(se.srv.prefix)
		if d.GPUHours != nil {
			ctr.SetGPUHours(d.GPUHours)
		}
		tabs = append(tabs, ctr)
	} else {
		tabs = append(tabs, notice("Containers", "Containers are off on this server (docker.enabled: false)."))
	}
	if d.Images != nil {
		tabs = append(tabs, images.New(images.Deps{Images: d.Images, SIFs: d.SIFs, Registry: d.Registry, Prefix: se.srv.prefix}, se.id, st))
	} else {
		tabs = append(tabs, notice("Images", "Images are off on this server (docker.enabled: false)."))
	}
	src, _ := d.GPUs.(gpus.Source) // nil when GPUs are off: the tab says so
	tabs = append(tabs,
		gpus.New(src, se.id, st),
		se.podsTab(st),
		se.runnerTab(st),
	)
	// The Class tab is a TA's alone: everyone's containers and sessions at a glance.
	if se.id.IsTA() {
		if d.Live != nil {
			ct := class.New(d.Live, se.srv, se.id, st)
			if j, ok := d.Shares.(class.Joiner); ok {
				ct.SetJoiner(j) // w: the view of a shell a student shares
			}
			if sh, ok := d.Shares.(class.Sharers); ok {
				ct.SetSharers(sh) // who shares a shell now, marked live
			}
			if p, ok := d.Pods.(class.PodSource); ok {
				ct.SetPods(p) // everyone's pods beside their containers
			}
			if h := d.GPUHours; h != nil {
				ct.SetHours(func(since time.Time) map[string]float64 {
					out := map[string]float64{}
					for u, v := range h.Since(since) {
						out[u] = v.Held
					}
					return out
				}, d.Live.Config().Waiting.Window)
			}
			tabs = append(tabs, ct)
		} else {
			tabs = append(tabs, notice("Class", "The class view needs containers on (docker.enabled: false)."))
		}
	}
	return tabs
}

// podsTab is the Pods tab, or the line saying that no cluster is configured.
func (se *session) podsTab(st dashboard.Styles) dashboard.Tab {
	if se.srv.deps.Pods == nil {
		return dashboard.Notice{Name: "Pods", Line: "No Kubernetes cluster is configured on this server.", Styles: st}
	}
	tab := pods.New(se.srv.deps.Pods, se.id, st, time.Now, se.srv.prefix)
	if p := se.srv.deps.Presets; p != nil {
		tab.SetPresets(p) // the course presets, offered first by the new-pod form
	}
	return tab
}

// runnerTab is the Runner tab, or one line saying why there is none.
func (se *session) runnerTab(st dashboard.Styles) dashboard.Tab {
	if r := se.srv.deps.Runners; r != nil {
		tab := runners.New(r, se.id, st)
		if d := se.srv.deps.Live; d != nil {
			tab.SetJobs(d)
		}
		return tab
	}
	return dashboard.Notice{Name: "Runner", Line: "GitLab CI runners are off on this server (runners.enabled: false).", Styles: st}
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
