package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/backend/recording"
	"whalemountain/tui/format"
	"whalemountain/tui/input"
	"whalemountain/tui/share"
	"whalemountain/tui/termsafe"
)

// Shares is the server's shell sharing (share.Hub): every shell is opened through it, so
// its owner can share it and a TA can join it.
type Shares interface {
	Open(id backend.Identity, name string, ex backend.Execution, t share.Terminal) backend.Execution
	Share(id backend.Identity, name string, write bool) (share.Info, error)
	Stop(id backend.Identity, name string) (share.Info, error)
	Drop(id backend.Identity, name, user string) (share.Info, error)
	List(id backend.Identity, all bool) []share.Info
	Join(id backend.Identity, target string, size input.Size) (*share.Watcher, error)
}

var _ Shares = (*share.Hub)(nil)

// Recordings are the recorded shells (recording.Store); the store decides who reads what
// (the owner, and TAs).
type Recordings interface {
	List(id backend.Identity, user string) ([]recording.Info, error)
	Open(id backend.Identity, owner, name string) (*os.File, recording.Info, error)
}

var _ Recordings = (*recording.Store)(nil)

var errNoSharing = errors.New("shell sharing is not available on this server")

func shareCmds(env Env) []*cobra.Command {
	return []*cobra.Command{shareCmd(env), joinCmd(env), recordingsCmd(env)}
}

// joinPrefix is how a TA types a join: "ssh -t -p 2222 host".
func joinPrefix(env Env) string {
	p := strings.Replace(env.Prefix, env.Identity.User+"@", "", 1)
	if rest, ok := strings.CutPrefix(p, "ssh "); ok {
		return "ssh -t " + rest
	}
	return p
}

func shareCmd(env Env) *cobra.Command {
	var (
		write, stop, asJSON bool
		drop                string
	)
	c := &cobra.Command{
		Use:   "share [NAME] [--write] [--drop USER] [--stop] [--json]",
		Short: "Let a TA see your open shell in NAME (read-only unless --write)",
		Long: "Share your open shell in the container NAME with TAs: a TA joins it and sees your screen, live.\n" +
			"Read-only unless you add --write; run share again to change the mode (without --write takes\n" +
			"writing back at once). --drop USER ends that TA's view, --stop ends the sharing. Both take\n" +
			"effect at once; sharing also ends with the shell. Your terminal's title shows who is watching.\n" +
			"Without NAME: your open shells and who watches them. Shared shells are recorded (recordings).\n" +
			"In the shell itself, at the start of a line: ~S shares it read-only, ~W read-write, ~X stops, ~H\n" +
			"lists these keys in the terminal's title.",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return badUsage(env, c, "share takes one NAME, not %d arguments", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			h := env.Deps.Shares
			if h == nil {
				return errNoSharing
			}
			if len(args) == 0 {
				if write || stop || drop != "" {
					return badUsage(env, c, "--write, --drop and --stop need the NAME of the container your shell is in")
				}
				list := h.List(env.Identity, false)
				if asJSON {
					if list == nil {
						list = []share.Info{}
					}
					return writeJSON(env, list)
				}
				if len(list) == 0 {
					fmt.Fprintf(env.Stdout, "You have no open shell. Open one with '%s shell NAME' (add -t), then share it from another terminal.\n", env.Prefix)
					return nil
				}
				writeShells(env.Stdout, list, time.Now(), false)
				return nil
			}
			name := args[0]
			n := 0
			for _, set := range []bool{write, stop, drop != ""} {
				if set {
					n++
				}
			}
			if n > 1 {
				return badUsage(env, c, "--write, --drop and --stop go one at a time")
			}
			var (
				info share.Info
				err  error
			)
			switch {
			case stop:
				info, err = h.Stop(env.Identity, name)
			case drop != "":
				info, err = h.Drop(env.Identity, name, drop)
			default:
				info, err = h.Share(env.Identity, name, write)
			}
			switch {
			case errors.Is(err, share.ErrNoShell):
				return fmt.Errorf("you have no open shell in %s; open one with '%s shell %s' (add -t) and share it from another terminal",
					termsafe.Line(name), env.Prefix, termsafe.Line(name))
			case errors.Is(err, share.ErrNotShared):
				return fmt.Errorf("your shell in %s is not shared", termsafe.Line(name))
			case errors.Is(err, share.ErrNoWatcher):
				return fmt.Errorf("%s is not watching your shell in %s", termsafe.Line(drop), termsafe.Line(name))
			case err != nil:
				return err
			}
			if asJSON {
				return writeJSON(env, info)
			}
			switch {
			case stop:
				fmt.Fprintf(env.Stdout, "%s: no longer shared; every viewer was dropped\n", termsafe.Line(name))
			case drop != "":
				fmt.Fprintf(env.Stdout, "%s: dropped %s; watching now: %s\n", termsafe.Line(name), termsafe.Line(drop), watchingWords(info.Watchers))
			default:
				mode := "read-only: TAs see it, only you type"
				if info.Write {
					mode = "read-write: TAs see it and may type"
				}
				fmt.Fprintf(env.Stdout, "%s: shared with TAs, %s\n", termsafe.Line(name), mode)
				fmt.Fprintf(env.Stdout, "A TA joins with: %s join %s/%s\n", joinPrefix(env), env.Identity.User, termsafe.Line(info.Name))
				fmt.Fprintf(env.Stdout, "Stop with: %s share %s --stop\n", env.Prefix, termsafe.Line(name))
			}
			return nil
		},
	}
	c.Flags().BoolVar(&write, "write", false, "let TAs type into the shell")
	c.Flags().BoolVar(&stop, "stop", false, "stop sharing: every viewer is dropped")
	c.Flags().StringVar(&drop, "drop", "", "end the view of this TA")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func watchingWords(us []string) string {
	if len(us) == 0 {
		return "nobody"
	}
	return termsafe.Line(strings.Join(us, ", "))
}

// writeShells prints open shells as a table; withOwner names them USER/NAME.
func writeShells(w io.Writer, list []share.Info, now time.Time, withOwner bool) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "SHELL IN\tSHARED\tWATCHING\tSIZE\tSINCE")
	for _, s := range list {
		name := s.Name
		if withOwner {
			name = s.Owner + "/" + s.Name
		}
		shared := "no"
		if s.Shared {
			shared = "read-only"
			if s.Write {
				shared = "read-write"
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%dx%d\t%s ago\n", termsafe.Line(name), shared, watchingWords(s.Watchers),
			s.Width, s.Height, format.Age(now.Sub(s.Since)))
	}
	tw.Flush()
}

func joinCmd(env Env) *cobra.Command {
	short := "Watch a shell a student shares with you (TAs; needs ssh -t)"
	return &cobra.Command{
		Use:   "join [USER[/NAME]]",
		Short: short,
		Long: "Join the shell USER shares (USER/NAME when they share more than one): you see their screen,\n" +
			"live, and type only when they shared it with --write. ctrl-p ctrl-q leaves. Without USER: the\n" +
			"shells shared now. Needs a terminal: ssh -t.",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return badUsage(env, c, "join takes one USER, not %d arguments", len(args))
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			h := env.Deps.Shares
			if h == nil {
				return errNoSharing
			}
			if !env.Identity.IsTA() {
				if len(args) > 0 {
					_, _ = h.Join(env.Identity, args[0], input.Size{}) // refused, and audited
				}
				return share.ErrNotTA
			}
			if len(args) == 0 {
				list := h.List(env.Identity, true)
				var shared []share.Info
				for _, s := range list {
					if s.Shared {
						shared = append(shared, s)
					}
				}
				if len(shared) == 0 {
					fmt.Fprintln(env.Stdout, "Nobody shares a shell now.")
					return nil
				}
				writeShells(env.Stdout, shared, time.Now(), true)
				return nil
			}
			term := env.Terminal
			if term == nil {
				return usagef("join needs a terminal: add -t (%s join %s)", joinPrefix(env), termsafe.Line(args[0]))
			}
			w, err := h.Join(env.Identity, args[0], term.Size)
			if errors.Is(err, share.ErrNotShared) {
				return fmt.Errorf("%s shares no shell (the student shares one with '%s share NAME')", termsafe.Line(args[0]), strings.Replace(env.Prefix, env.Identity.User+"@", "", 1))
			}
			if err != nil {
				return err
			}
			why := w.Run(env.Ctx, share.ViewTerminal{In: term.In, Out: term.Out, Sizes: term.Sizes})
			fmt.Fprintf(term.Out, "\r\n%s\r\n", termsafe.Line(why))
			return nil
		},
	}
}

func recordingsCmd(env Env) *cobra.Command {
	var (
		user   string
		all    bool
		asJSON bool
	)
	short := "List the recordings of your shared shells"
	if env.Identity.IsTA() {
		short = "List the recordings of shared shells (yours, --user U or --all)"
	}
	c := &cobra.Command{
		Use:   "recordings [--user U | --all] [--json]",
		Short: short,
		Long: "Shared shells are recorded in asciinema's format (cast v2), kept for their owner and readable\n" +
			"by TAs. Download one with 'recordings cat NAME > NAME' (no -t) or sftp/scp from /recordings;\n" +
			"play it with 'asciinema play NAME'.",
		Args: exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			st := env.Deps.Recordings
			if st == nil {
				return errors.New("shells are not recorded on this server")
			}
			if (user != "" || all) && !env.Identity.IsTA() && user != env.Identity.User {
				return errors.New("you may list your own recordings only")
			}
			who := env.Identity.User
			if all {
				who = ""
			} else if user != "" {
				who = user
			}
			list, err := st.List(env.Identity, who)
			if err != nil {
				return err
			}
			if asJSON {
				if list == nil {
					list = []recording.Info{}
				}
				return writeJSON(env, list)
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tSIZE\tWRITTEN")
			now := time.Now()
			for _, r := range list {
				name := r.Name
				if r.Owner != env.Identity.User {
					name = r.Owner + "/" + r.Name
				}
				fmt.Fprintf(tw, "%s\t%s\t%s ago\n", termsafe.Line(name), format.Bytes(r.Size), format.Age(now.Sub(r.Time)))
			}
			return tw.Flush()
		},
	}
	c.Flags().StringVar(&user, "user", "", "a user's recordings (TAs)")
	c.Flags().BoolVar(&all, "all", false, "everyone's recordings (TAs)")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(&cobra.Command{
		Use:   "cat [USER/]NAME",
		Short: "Write a recording to stdout (without -t)",
		Args:  exactArgs(env, 1),
		RunE: func(c *cobra.Command, args []string) error {
			st := env.Deps.Recordings
			if st == nil {
				return errors.New("shells are not recorded on this server")
			}
			owner, name, ok := strings.Cut(args[0], "/")
			if !ok {
				owner, name = env.Identity.User, args[0]
			}
			f, _, err := st.Open(env.Identity, owner, name)
			if err != nil {
				return fmt.Errorf("no such recording: %s", termsafe.Line(args[0]))
			}
			defer f.Close()
			_, err = io.Copy(env.Stdout, f)
			return err
		},
	})
	return c
}
