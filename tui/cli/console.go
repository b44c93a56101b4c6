package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/backend/audit"
	"whalemountain/backend/docker"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// AuditLog is the audit log as commands read it; the log decides what each identity may
// read (a student: their own entries).
type AuditLog interface {
	Read(id backend.Identity, f audit.Filter) ([]audit.Entry, error)
	Follow(ctx context.Context, id backend.Identity, f audit.Filter, fn func(audit.Entry) error) error
}

// SessionInfo is one open SSH session (or one open forward) as `who` shows it.
type SessionInfo struct {
	User  string    `json:"user"`
	Role  string    `json:"role"`
	From  string    `json:"from"`
	Since time.Time `json:"since"`
	What  string    `json:"what"` // "dashboard", "shell in box", "sftp", "forward to box:8888", "command ps"
}

// Console is what the SSH door itself offers the class console: who is connected, and a
// message to every open session. It decides what each identity may see (a student: their
// own sessions) and who may send (TAs).
type Console interface {
	Who(id backend.Identity) []SessionInfo
	Wall(id backend.Identity, message string) (reached int, err error)
}

func consoleCmds(env Env) []*cobra.Command {
	return []*cobra.Command{whoCmd(env), auditCmd(env), wallCmd(env), noticesCmd(env)}
}

func whoCmd(env Env) *cobra.Command {
	var asJSON bool
	short := "List your open sessions"
	if env.Identity.IsTA() {
		short = "List who is connected, from where, doing what"
	}
	c := &cobra.Command{
		Use:   "who [--json]",
		Short: short,
		Args:  exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if env.Deps.Console == nil {
				return errors.New("sessions are not listed on this server")
			}
			list := env.Deps.Console.Who(env.Identity)
			if asJSON {
				if list == nil {
					list = []SessionInfo{}
				}
				return writeJSON(env, list)
			}
			writeWho(env.Stdout, list, time.Now())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// writeWho prints sessions as a table.
func writeWho(w io.Writer, list []SessionInfo, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "USER\tROLE\tFROM\tSINCE\tWHAT")
	for _, s := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s ago\t%s\n", termsafe.Line(s.User), termsafe.Line(s.Role),
			termsafe.Line(s.From), format.Age(now.Sub(s.Since)), termsafe.Line(s.What))
	}
	tw.Flush()
}

func auditCmd(env Env) *cobra.Command {
	var (
		user, action, since string
		follow, asJSON      bool
	)
	short := "Show your entries in the audit log"
	if env.Identity.IsTA() {
		short = "Show the audit log: who did what, when"
	}
	c := &cobra.Command{
		Use:   "audit [--user U] [--action A] [--since 2h|DATE] [-f] [--json]",
		Short: short,
		Args:  exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if env.Deps.Audit == nil {
				return errors.New("the audit log is not kept on this server")
			}
			f := audit.Filter{User: user, Action: action}
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return badUsage(env, c, "%s", err)
				}
				f.Since = t
			}
			if user != "" && !env.Identity.IsTA() && user != env.Identity.User {
				return errors.New("you may read your own audit entries only")
			}
			var tw *tabwriter.Writer
			emit := func(e audit.Entry) error {
				if asJSON {
					return writeJSONLine(env, e)
				}
				fmt.Fprintln(tw, auditRow(e))
				if follow {
					return tw.Flush()
				}
				return nil
			}
			tw = tabwriter.NewWriter(env.Stdout, 0, 0, 2, ' ', 0)
			if !asJSON {
				fmt.Fprintln(tw, "TIME\tUSER\tACTION\tTARGET\tRESULT\tWHY")
			}
			if follow {
				return env.Deps.Audit.Follow(env.Ctx, env.Identity, f, emit)
			}
			es, err := env.Deps.Audit.Read(env.Identity, f)
			if err != nil {
				return err
			}
			for _, e := range es {
				if err := emit(e); err != nil {
					return err
				}
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&user, "user", "", "entries of this user only")
	c.Flags().StringVar(&action, "action", "", "entries of this action only (login, run, stop, rm, wall, ...)")
	c.Flags().StringVar(&since, "since", "", "entries since a time ago (2h, 30m, 3d) or a date (2006-01-02, RFC 3339)")
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new entries until you disconnect")
	c.Flags().BoolVar(&asJSON, "json", false, "print one JSON object a line")
	return c
}

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(env Env, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = env.Stdout.Write(append(b, '\n'))
	return err
}

// auditRow is one entry as tab-separated cells.
func auditRow(e audit.Entry) string {
	why := e.Note
	if e.Reason != "" {
		why = strings.TrimSpace(why + " " + e.Reason)
	}
	cell := func(s string) string {
		if s == "" {
			return "–"
		}
		return termsafe.Line(s)
	}
	return strings.Join([]string{e.Time.UTC().Format("2006-01-02 15:04:05"), cell(e.User), cell(e.Action),
		cell(e.Target), cell(e.Result), cell(why)}, "\t")
}

// parseSince reads --since: a time ago (90s, 30m, 2h, 3d) or a date or time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if d, err := strconv.Atoi(n); err == nil && d >= 0 {
			return now.Add(-time.Duration(d) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("--since %q is neither a time ago (2h, 30m, 3d) nor a date (2006-01-02)", termsafe.Line(s))
}

func wallCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:    "wall MESSAGE...",
		Short:  "Show a message to everyone on the server (TAs)",
		Hidden: !env.Identity.IsTA(),
		Args:   minArgs(env),
		RunE: func(c *cobra.Command, args []string) error {
			if !env.Identity.IsTA() {
				return errors.New("wall is for TAs")
			}
			if env.Deps.Console == nil {
				return errors.New("wall is not available on this server")
			}
			n, err := env.Deps.Console.Wall(env.Identity, strings.Join(args, " "))
			if err != nil {
				return failure(err)
			}
			fmt.Fprintf(env.Stdout, "sent to %d open session(s); kept as a notice for everyone\n", n)
			return nil
		},
	}
	return c
}

// Notices is a user's notices: what TAs did to their containers, and TAs' messages.
type Notices interface {
	Notices(id backend.Identity) ([]docker.Notice, int64)
	MarkNoticesSeen(id backend.Identity, seq int64)
}

func noticesCmd(env Env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "notices [--json]",
		Short: "Show your messages: TAs' actions on your containers, messages to everyone",
		Args:  exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			src := env.Deps.Notices
			if src == nil {
				return errNoDocker
			}
			ns, seen := src.Notices(env.Identity)
			slices.Reverse(ns) // newest first
			type row struct {
				docker.Notice
				New bool `json:"new"`
			}
			rows := make([]row, len(ns))
			for i, n := range ns {
				rows[i] = row{n, n.Seq > seen}
			}
			if len(ns) > 0 {
				src.MarkNoticesSeen(env.Identity, ns[0].Seq)
			}
			if asJSON {
				return writeJSON(env, rows)
			}
			if len(rows) == 0 {
				fmt.Fprintln(env.Stdout, "No notices.")
				return nil
			}
			now := time.Now()
			for _, r := range rows {
				mark := " "
				if r.New {
					mark = "*"
				}
				fmt.Fprintf(env.Stdout, "%s %s  %s\n", mark, r.At.Local().Format("2006-01-02 15:04"), noticeText(r.Notice, now))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// noticeText is one notice in words: "tina (TA) stopped your container box: exam".
func noticeText(n docker.Notice, _ time.Time) string {
	if text, ok := n.ServerText(); ok {
		return termsafe.Line(text)
	}
	by := termsafe.Line(n.By)
	if n.ByRole == string(backend.RoleTA) {
		by += " (TA)"
	}
	switch n.Action {
	case docker.NoticeWall:
		return "message from " + by + ": " + termsafe.Line(n.Message)
	case "rm":
		by += " removed your container " + termsafe.Line(n.Container)
	default:
		by += " stopped your container " + termsafe.Line(n.Container)
	}
	if n.Reason == "" {
		return by + " (no reason given)"
	}
	return by + ": " + termsafe.Line(n.Reason)
}
