// Package cli is the SSH command line: `ssh -p 2222 host CMD ...` runs one command for the
// authenticated user and exits with its status (0 done, 1 failed, 2 bad usage). Each session
// gets a fresh command tree built from the constructors below, so a new verb is added in one
// place and inherits the session's Identity.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/files"
	"whalemountain/tui/termsafe"
)

// Exit statuses.
const (
	ExitOK    = 0
	ExitFail  = 1
	ExitUsage = 2
)

// Env is everything one command run needs: who is asking, where to write, and how users reach
// this server (for usage text).
type Env struct {
	Ctx      context.Context
	Identity backend.Identity
	Stdin    io.Reader
	Stdout   io.Writer
	Stderr   io.Writer
	Prefix   string // how users invoke commands, e.g. "ssh -p 2222 host"
	Version  string
	Deps     Deps
	Terminal *Terminal // nil without a PTY
}

// Deps are the backends commands may use; a nil field means that part is not configured.
type Deps struct {
	Containers Containers
	Exec       Executor
	// Images lists, pulls and removes images under the server's image policy.
	Images Images
	// SIFs converts images into SIF files and keeps each user's; nil when images are off.
	SIFs SIFs
	// Registry lists users' own GitLab container registries; nil without GitLab.
	Registry Registry
	// GPUs is the server's GPU sampler; nil when GPU monitoring is off.
	GPUs GPUs
	// Docker is the same service, for the dashboard's live view.
	Docker *docker.Service
	// Files is the same service again, for the file tree served over sftp and scp;
	// FilesOptions say where transfers are spooled.
	Files        files.Backend
	FilesOptions files.Options
}

// usageError marks an error as bad usage (exit status 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Run executes args for env and returns the exit status. Errors are written to env.Stderr as
// one clean line.
func Run(env Env, args []string) int {
	root := newRoot(env)
	if len(args) == 0 {
		printHelp(env, root, root)
		return ExitOK
	}
	if target, _, err := root.Find(args); err != nil || target == root {
		fmt.Fprintf(env.Stderr, "unknown command %q\n", termsafe.Line(args[0]))
		fmt.Fprintf(env.Stderr, "Run '%s help' for the list of commands.\n", env.Prefix)
		return ExitUsage
	}
	root.SetArgs(args)
	err := root.ExecuteContext(env.Ctx)
	if err == nil {
		return ExitOK
	}
	var code exitCode
	if errors.As(err, &code) {
		// A process's own exit status, passed through as it is.
		return int(code)
	}
	fmt.Fprintln(env.Stderr, "error: "+termsafe.Line(err.Error()))
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFail
}

func newRoot(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:           "whalemountain",
		SilenceErrors: true,
		SilenceUsage:  true,
		CompletionOptions: cobra.CompletionOptions{
			DisableDefaultCmd: true,
		},
	}
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return usageError{fmt.Errorf("%s: %w (see '%s help %s')", c.Name(), err, env.Prefix, c.Name())}
	})
	root.SetHelpFunc(func(c *cobra.Command, _ []string) { printHelp(env, root, c) })
	root.AddCommand(
		helpCmd(env, root),
		whoamiCmd(env),
		versionCmd(env),
	)
	root.AddCommand(containerCmds(env)...)
	root.AddCommand(imageCmds(env, env.Deps.Images)...)
	root.AddCommand(sifCmd(env, env.Deps.SIFs))
	root.AddCommand(registryCmd(env, env.Deps.Registry))
	root.AddCommand(shellCmds(env)...)
	root.AddCommand(gpusCmd(env, env.Deps.GPUs))
	return root
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("%s takes %d argument(s), got %d (usage: %s)", c.Name(), n, len(args), c.Use)
		}
		return nil
	}
}

func helpCmd(env Env, root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Show the commands, or how to use one",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) > 1 {
				return usagef("help takes at most one command")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				printHelp(env, root, root)
				return nil
			}
			target, _, err := root.Find(args)
			if err != nil || target == root {
				return usagef("no such command %q", args[0])
			}
			printHelp(env, root, target)
			return nil
		},
	}
}

func printHelp(env Env, root, c *cobra.Command) {
	w := env.Stdout
	if c == root {
		fmt.Fprintf(w, "WhaleMountain: your containers, images and GPUs on this server.\n\n")
		fmt.Fprintf(w, "Usage:\n  %s COMMAND [ARGS...]\n  %s            (with a terminal: the dashboard)\n\nCommands:\n", env.Prefix, env.Prefix)
		cmds := root.Commands()
		sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name() < cmds[j].Name() })
		for _, sc := range cmds {
			if sc.Hidden {
				continue
			}
			fmt.Fprintf(w, "  %-10s %s\n", sc.Name(), sc.Short)
		}
		fmt.Fprintf(w, "\nRun '%s help COMMAND' for more about a command.\n", env.Prefix)
		return
	}
	fmt.Fprintf(w, "Usage:\n  %s %s\n\n%s\n", env.Prefix, c.Use, firstNonEmpty(c.Long, c.Short))
	if flags := c.LocalFlags().FlagUsages(); strings.TrimSpace(flags) != "" {
		fmt.Fprintf(w, "\nFlags:\n%s", flags)
	}
}

func firstNonEmpty(s ...string) string {
	for _, x := range s {
		if x != "" {
			return x
		}
	}
	return ""
}
