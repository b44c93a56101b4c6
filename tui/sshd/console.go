package sshd

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"whalemountain/backend"
	"whalemountain/tui/cli"
	"whalemountain/tui/dashboard/class"
	"whalemountain/tui/share"
	"whalemountain/tui/termsafe"
)

// The class console's view of the door: who is connected, doing what (cli.Console).

var _ cli.Console = (*Server)(nil)

// openForward is one open ssh -L channel, for who.
type openForward struct {
	id     backend.Identity
	since  time.Time
	target string
}

// what says what a new session is for, before it does anything.
func initialWhat(args []string, subsystem string, hasPty bool) string {
	switch {
	case subsystem != "":
		return termsafe.Line(subsystem)
	case isDialStdio(args):
		return "docker API"
	case len(args) >= 2 && args[0] == "shell":
		// shell NAME [CMD...]: the container is the first word after shell (and an optional --).
		name := args[1]
		if name == "--" && len(args) >= 3 {
			name = args[2]
		}
		return "shell in " + termsafe.Line(name)
	case len(args) == 2 && args[0] == "join":
		return "watching " + termsafe.Line(args[1])
	case len(args) > 0:
		return "command " + termsafe.Line(args[0])
	case hasPty:
		return "dashboard"
	}
	return "command help"
}

func (se *session) setWhat(what string) {
	se.mu.Lock()
	se.what = what
	se.mu.Unlock()
}

// Who lists the open sessions and forwards id may see: a TA every one, a student their own.
func (s *Server) Who(id backend.Identity) []cli.SessionInfo {
	if !id.Valid() {
		return nil
	}
	mine := func(user string) bool { return id.IsTA() || user == id.User }
	var out []cli.SessionInfo
	s.mu.Lock()
	for se := range s.sessions {
		if !mine(se.id.User) {
			continue
		}
		se.mu.Lock()
		out = append(out, cli.SessionInfo{User: se.id.User, Role: string(se.id.Role), From: se.id.RemoteAddr, Since: se.since, What: se.what})
		se.mu.Unlock()
	}
	for f := range s.forwards {
		if mine(f.id.User) {
			out = append(out, cli.SessionInfo{User: f.id.User, Role: string(f.id.Role), From: f.id.RemoteAddr, Since: f.since, What: "forward to " + termsafe.Line(f.target)})
		}
	}
	s.mu.Unlock()
	s.sharing(out)
	sort.Slice(out, func(i, j int) bool {
		if out[i].User != out[j].User {
			return out[i].User < out[j].User
		}
		return out[i].Since.Before(out[j].Since)
	})
	return out
}

// sharing adds to each shell in list whether its owner shares it, and who watches.
func (s *Server) sharing(list []cli.SessionInfo) {
	h := s.deps.Shares
	if h == nil {
		return
	}
	shells := map[string][]share.Info{}
	for i, si := range list {
		name, ok := strings.CutPrefix(si.What, "shell in ")
		if !ok {
			continue
		}
		mine, seen := shells[si.User]
		if !seen {
			mine = h.List(backend.Identity{User: si.User, Role: backend.Role(si.Role)}, false)
			shells[si.User] = mine
		}
		for _, sh := range mine {
			if sh.Shared && termsafe.Line(sh.Name) == name {
				mode := "read-only"
				if sh.Write {
					mode = "read-write"
				}
				who := "nobody"
				if len(sh.Watchers) > 0 {
					who = strings.Join(sh.Watchers, ", ")
				}
				list[i].What += fmt.Sprintf(" (shared %s; watching: %s)", mode, termsafe.Line(who))
				break
			}
		}
	}
}

// Users is the number of open sessions of each user now.
func (s *Server) Users() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.perUser))
	for u, n := range s.perUser {
		out[u] = n
	}
	return out
}

// Sessions is who has a session open now, and whether as a TA (the Class tab).
func (s *Server) Sessions() map[string]class.Presence {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]class.Presence, len(s.perUser))
	for se := range s.sessions {
		p := out[se.id.User]
		p.Sessions++
		p.TA = p.TA || se.id.IsTA()
		out[se.id.User] = p
	}
	return out
}

// Wall sends a TA's message to everyone: open dashboards show it in a banner until it is
// dismissed, a terminal in a shell gets one line on stderr, and it is kept as a notice for
// every user (shown at the next login). It returns the number of open sessions reached.
func (s *Server) Wall(id backend.Identity, message string) (int, error) {
	if !id.IsTA() {
		return 0, errors.New("wall is for TAs")
	}
	if s.deps.Wall == nil {
		return 0, errors.New("wall needs containers on (docker.enabled): messages are kept with the users' notices")
	}
	s.mu.Lock()
	open := make([]*session, 0, len(s.sessions))
	users := make([]string, 0, len(s.perUser))
	for se := range s.sessions {
		open = append(open, se)
	}
	for u := range s.perUser {
		users = append(users, u)
	}
	s.mu.Unlock()
	// The notice wakes every open dashboard of those users; the dashboard shows it.
	if _, err := s.deps.Wall.Wall(id, message, users); err != nil {
		return 0, err
	}
	message = termsafe.Line(strings.TrimSpace(message))
	reached := 0
	for _, se := range open {
		se.mu.Lock()
		p, what, pty := se.prog, se.what, se.hasPty
		se.mu.Unlock()
		switch {
		case p != nil:
			reached++
		case pty && strings.HasPrefix(what, "shell in "):
			reached++
			_, _ = fmt.Fprintf(se.sess.Stderr(), "\r\nwhalemountain: message from %s (%s): %s\r\n", termsafe.Line(id.User), dashboardRole(id.Role), message)
		}
	}
	return reached, nil
}

func dashboardRole(r backend.Role) string {
	if r == backend.RoleTA {
		return "TA"
	}
	return string(r)
}

// ContainerInUse reports whether an open session uses owner's container name: a shell, exec
// or attach in it (from the command line or the dashboard), a forward to it, or an sftp or
// Docker API session of its owner (those reach any of the owner's containers). The idle
// culler asks.
func (s *Server) ContainerInUse(owner, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for se := range s.sessions {
		se.mu.Lock()
		what := se.what
		se.mu.Unlock()
		var args []string
		if se.sess != nil {
			args = se.sess.Command()
		}
		if sessionUses(se.id, what, args, owner, name) {
			return true
		}
	}
	for f := range s.forwards {
		dest := f.target
		if i := strings.LastIndexByte(dest, ':'); i >= 0 {
			dest = dest[:i]
		}
		if o, n := refOf(f.id, dest); o == owner && n == name {
			return true
		}
	}
	return false
}

// sessionUses reports whether a session of id, doing what with the command args, uses
// owner's container name.
func sessionUses(id backend.Identity, what string, args []string, owner, name string) bool {
	switch {
	case what == "sftp" || what == "docker API":
		return id.User == owner
	case strings.HasPrefix(what, "shell in pod/"):
		return false // a pod's (the Pods tab names its shells so)
	case strings.HasPrefix(what, "shell in "):
		if o, n := refOf(id, strings.TrimPrefix(what, "shell in ")); o == owner && n == name {
			return true
		}
	}
	if len(args) < 2 || args[0] != "shell" && args[0] != "exec" && args[0] != "attach" {
		return false
	}
	for _, a := range args[1:] {
		if a == "--" {
			return false
		}
		if strings.HasPrefix(a, "-") {
			continue
		}
		o, n := refOf(id, a)
		return o == owner && n == name
	}
	return false
}

// refOf is the owner and name a reference typed by id names: "box" is id's own, a TA's
// "alice/box" alice's.
func refOf(id backend.Identity, ref string) (owner, name string) {
	if o, n, ok := strings.Cut(ref, "/"); ok {
		return o, n
	}
	return id.User, ref
}
