package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/tui/bridge"
	"whalemountain/tui/input"
	"whalemountain/tui/share"
	"whalemountain/tui/termsafe"
)

// Executor runs processes in a user's containers (backend/docker).
type Executor interface {
	Exec(ctx context.Context, id backend.Identity, ref string, spec backend.ExecSpec) (backend.Execution, error)
	Attach(ctx context.Context, id backend.Identity, ref string, width, height int) (backend.Execution, error)
}

// Terminal is the session's terminal, for commands that need one; Env.Terminal is nil when
// the client asked for no PTY.
type Terminal struct {
	Term  string
	Size  input.Size
	Sizes <-chan input.Size // every window change
	In    io.Reader         // raw keystrokes
	Out   io.Writer         // raw output, no newline translation
}

// exitCode carries a process's exit status to the SSH session.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func shellCmds(env Env) []*cobra.Command {
	need := func(c *cobra.Command, _ []string) error {
		if env.Deps.Exec == nil {
			return errNoDocker
		}
		return nil
	}
	cmds := []*cobra.Command{shellCmd(env), execCmd(env), attachCmd(env)}
	for _, c := range cmds {
		c.PreRunE = need
	}
	return cmds
}

func notRunning(err error, name string, env Env) error {
	if errors.Is(err, backend.ErrNotRunning) {
		return fmt.Errorf("%s is not running; start it with '%s start %s'", termsafe.Line(name), env.Prefix, termsafe.Line(name))
	}
	return failure(err)
}

func shellCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "shell NAME [CMD...]",
		Short: "A terminal in your container (needs ssh -t)",
		Long: "Open a terminal in your running container: bash if it has one, else sh, or CMD.\n" +
			"Needs a terminal: ssh -t. The exit status is the shell's.",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return badUsage(env, c, "shell needs a container NAME")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return terminalIn(env, env.Deps.Exec, "shell", args[0], args[0], args[1:], notRunning)
		},
	}
	c.Flags().SetInterspersed(false)
	return c
}

func execCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "exec NAME -- CMD...",
		Short: "Run a command in your container, for scripts (stdin, stdout, stderr, exit status)",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return badUsage(env, c, "exec needs a NAME and a command")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return pipesIn(env, env.Deps.Exec, args[0], args[1:], notRunning)
		},
	}
	return c
}

func attachCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "attach NAME",
		Short: "Attach to your container's main process (ctrl-p ctrl-q detaches)",
		Args:  exactArgs(env, 1),
		RunE: func(c *cobra.Command, args []string) error {
			term := env.Terminal
			if term == nil {
				return usagef("attach needs a terminal: add -t")
			}
			ex, err := env.Deps.Exec.Attach(env.Ctx, env.Identity, args[0], term.Size.Width, term.Size.Height)
			if err != nil {
				return notRunning(err, args[0], env)
			}
			res, err := bridge.Run(env.Ctx, ex, bridge.Terminal{In: term.In, Out: term.Out, Sizes: term.Sizes, Detach: bridge.DetachKeys})
			if err != nil {
				return err
			}
			if res.Detached {
				fmt.Fprintf(term.Out, "\r\ndetached from %s; it keeps running\r\n", termsafe.Line(args[0]))
				return nil
			}
			return statusOf(res.ExitCode)
		},
	}
}

// terminalIn runs cmd (empty: the default shell) with a terminal in what ex names, on the
// session's terminal, shareable as shareName ("box", "pod/lab"); verb is the command as
// typed ("shell", "pod shell"). The exit status is the process's.
func terminalIn(env Env, ex backend.Executor, verb, name, shareName string, cmd []string, refusal func(error, string, Env) error) error {
	term := env.Terminal
	if term == nil {
		rest, _ := strings.CutPrefix(env.Prefix, "ssh ")
		return usagef("%s needs a terminal: add -t (ssh -t %s %s %s)", verb, rest, verb, termsafe.Line(name))
	}
	e, err := ex.Exec(env.Ctx, env.Identity, name, backend.ExecSpec{
		Cmd: cmd, TTY: true, Term: term.Term, Width: term.Size.Width, Height: term.Size.Height,
	})
	if err != nil {
		return refusal(err, name, env)
	}
	if h := env.Deps.Shares; h != nil {
		e = h.Open(env.Identity, shareName, e, share.Terminal{Term: term.Term, Width: term.Size.Width, Height: term.Size.Height})
	}
	res, err := bridge.Run(env.Ctx, e, bridge.Terminal{In: term.In, Out: term.Out, Sizes: term.Sizes})
	if err != nil {
		return err
	}
	return statusOf(res.ExitCode)
}

// pipesIn runs cmd in what ex names on the session's stdin, stdout and stderr, for scripts.
func pipesIn(env Env, ex backend.Executor, name string, cmd []string, refusal func(error, string, Env) error) error {
	e, err := ex.Exec(env.Ctx, env.Identity, name, backend.ExecSpec{Cmd: cmd})
	if err != nil {
		return refusal(err, name, env)
	}
	res, err := bridge.Run(env.Ctx, e, bridge.Terminal{In: env.Stdin, Out: env.Stdout, ErrOut: env.Stderr})
	if err != nil {
		return err
	}
	return statusOf(res.ExitCode)
}

func statusOf(code int) error {
	if code == 0 {
		return nil
	}
	return exitCode(code)
}
