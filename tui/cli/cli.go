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
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/dockerapi"
	"whalemountain/tui/files"
	"whalemountain/tui/format"
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
	// Live is the live list of containers and the policy it is kept under, for the
	// dashboard (the Containers, Class and Runner tabs); nil when containers are off. The
	// Containers tab offers whatever else the same value can do (create, start, logs, ...).
	Live Live
	// Notices are users' notices (the notices command, the dashboard); nil when containers
	// are off.
	Notices Notices
	// Wall keeps a TA's message to everyone with the users' notices; nil when containers
	// are off.
	Wall Wall
	// Files is the same service again, for the file tree served over sftp and scp;
	// FilesOptions say where transfers are spooled.
	Files        files.Backend
	FilesOptions files.Options
	// DockerAPI is the per-user Docker Engine API (docker system dial-stdio, forwarded
	// sockets); the commands themselves do not use it. nil when containers are off.
	DockerAPI dockerapi.Backend
	// Audit is the audit log, for reading; nil when none is kept.
	Audit AuditLog
	// Presets are the course presets; nil when containers are off.
	Presets Presets
	// Console is the SSH door's own list of sessions and its wall; set by the door.
	Console Console
	// Shared lists datasets and group workspaces; nil when containers are off.
	Shared SharedData
	// Shares opens every shell, so that it can be shared with TAs; nil: no sharing.
	Shares Shares
	// Recordings are the recorded shells; nil when none are kept.
	Recordings Recordings
	// GPUHours is the GPU-hours ledger; nil when containers are off.
	GPUHours GPUHours
	// Pods lends pods on the Kubernetes cluster (commands, the Pods tab, forwards); nil
	// when no cluster is configured.
	Pods Pods
	// Runners are users' personal GitLab runners; nil when runners are off.
	Runners Runners
}

// Live is the live list of containers (no engine call per read) and the container policy.
type Live interface {
	Snapshot(id backend.Identity, opts docker.ListOptions) ([]docker.Container, docker.Health)
	SubscribeFor(id backend.Identity, opts docker.ListOptions) (<-chan struct{}, func())
	Config() docker.Config
}

// Wall keeps message from the TA id as a notice for every user (and those in also);
// users is how many it reached.
type Wall interface {
	Wall(id backend.Identity, message string, also []string) (users int, err error)
}

var (
	_ Live    = (*docker.Service)(nil)
	_ Notices = (*docker.Service)(nil)
	_ Wall    = (*docker.Service)(nil)
)

// usageError marks an error as bad usage (exit status 2).
type usageError struct{ error }

func usagef(format string, a ...any) error { return usageError{fmt.Errorf(format, a...)} }

// Run executes args for env and returns the exit status. Errors are written to env.Stderr as
// one clean line.
func Run(env Env, args []string) int {
	env = forUser(env)
	root := newRoot(env)
	if len(args) == 0 || len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
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

// forUser makes every hint show the command line as this user types it on their own
// machine: "ssh -p 2222 alice@host".
func forUser(env Env) Env {
	env.Prefix = format.UserPrefix(env.Prefix, env.Identity.User)
	return env
}

func newRoot(env Env) *cobra.Command {
	env = forUser(env)
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
		return usageError{fmt.Errorf("%s (%s)", flagWords(c, err), usageOf(env, c))}
	})
	root.SetHelpFunc(func(c *cobra.Command, _ []string) { printHelp(env, root, c) })
	root.AddCommand(
		whoamiCmd(env),
		versionCmd(env),
	)
	root.AddCommand(containerCmds(env)...)
	root.AddCommand(imageCmds(env, env.Deps.Images)...)
	root.AddCommand(sifCmd(env, env.Deps.SIFs))
	root.AddCommand(registryCmd(env, env.Deps.Registry))
	root.AddCommand(shellCmds(env)...)
	root.AddCommand(podCmds(env)...)
	root.AddCommand(gpusCmd(env, env.Deps.GPUs))
	root.AddCommand(consoleCmds(env)...)
	root.AddCommand(presetsCmd(env))
	root.AddCommand(datasetsCmd(env), groupsCmd(env))
	root.AddCommand(shareCmds(env)...)
	root.AddCommand(fairCmds(env)...)
	root.AddCommand(runnerCmd(env))
	// Ours replaces cobra's default help command, which Execute would otherwise add beside
	// it; added now (it needs the others in place), so help is listed and found before
	// anything runs.
	root.SetHelpCommand(helpCmd(env, root))
	root.InitDefaultHelpCmd()
	return root
}

// cmdName is the command as typed after the prefix, without its arguments: "logs", "sif ls".
func cmdName(c *cobra.Command) string {
	path := c.CommandPath()
	if c.HasParent() {
		_, path, _ = strings.Cut(path, " ")
	}
	return path
}

// useLine is how c is typed after the prefix, with its arguments: "sif ls [--json]".
func useLine(c *cobra.Command) string {
	if _, args, ok := strings.Cut(c.Use, " "); ok {
		return cmdName(c) + " " + args
	}
	return cmdName(c)
}

// usageOf is the one-line usage of c: "usage: ssh -p 2222 alice@host logs [-f] NAME".
func usageOf(env Env, c *cobra.Command) string {
	return "usage: " + env.Prefix + " " + useLine(c)
}

// badUsage is a usage error of one line that ends with c's usage.
func badUsage(env Env, c *cobra.Command, format string, a ...any) error {
	return usageError{fmt.Errorf("%s (%s)", fmt.Sprintf(format, a...), usageOf(env, c))}
}

// flagWords says what is wrong with a flag in the server's words instead of pflag's.
func flagWords(c *cobra.Command, err error) string {
	var (
		notExist *pflag.NotExistError
		noValue  *pflag.ValueRequiredError
		invalid  *pflag.InvalidValueError
		syntax   *pflag.InvalidSyntaxError
	)
	switch {
	case errors.As(err, &notExist):
		name := "--" + notExist.GetSpecifiedName()
		if notExist.GetSpecifiedShortnames() != "" {
			name = "-" + notExist.GetSpecifiedName()
		}
		return fmt.Sprintf("%s has no option %s", cmdName(c), termsafe.Line(name))
	case errors.As(err, &noValue):
		return fmt.Sprintf("--%s needs a value", noValue.GetFlag().Name)
	case errors.As(err, &invalid):
		f, v := invalid.GetFlag(), strconv.Quote(invalid.GetValue())
		switch f.Value.Type() {
		case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
			return fmt.Sprintf("--%s wants a whole number, not %s", f.Name, v)
		case "float32", "float64":
			return fmt.Sprintf("--%s wants a number such as 2 or 0.5, not %s", f.Name, v)
		case "bool":
			return fmt.Sprintf("--%s is on or off (--%s, --%s=false), not %s", f.Name, f.Name, f.Name, v)
		}
		return fmt.Sprintf("--%s cannot be %s", f.Name, v)
	case errors.As(err, &syntax):
		return fmt.Sprintf("%s is not an option (options look like -a or --name)", strconv.Quote(syntax.GetSpecifiedFlag()))
	}
	return fmt.Sprintf("%s: %s", cmdName(c), err)
}

// argNoun is what c's first positional argument is called in its Use: "NAME", "IMAGE".
func argNoun(c *cobra.Command) string {
	for _, w := range strings.Fields(c.Use)[1:] {
		w = strings.TrimSuffix(w, "...")
		if w != "" && strings.Trim(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") == "" {
			return w
		}
	}
	return "argument"
}

// article puts "a" or "an" before w.
func article(w string) string {
	if strings.ContainsRune("AEIOUaeiou", rune(w[0])) {
		return "an " + w
	}
	return "a " + w
}

// exactArgs requires exactly n positional arguments (0 or 1), else a usage error.
func exactArgs(env Env, n int) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		switch {
		case len(args) == n:
			return nil
		case n == 0:
			return badUsage(env, c, "%s takes no arguments, not %s", cmdName(c), strconv.Quote(args[0]))
		case len(args) < n:
			return badUsage(env, c, "%s needs %s", cmdName(c), article(argNoun(c)))
		}
		return badUsage(env, c, "%s takes one %s, not %d arguments", cmdName(c), argNoun(c), len(args))
	}
}

// minArgs requires at least one positional argument, else a usage error.
func minArgs(env Env) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) == 0 {
			return badUsage(env, c, "%s needs at least one %s", cmdName(c), argNoun(c))
		}
		return nil
	}
}

func helpCmd(env Env, root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "help [COMMAND]",
		Short: "Show the commands, or how to use one",
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				printHelp(env, root, root)
				return nil
			}
			target, rest, err := root.Find(args)
			if err != nil || target == root || len(rest) > 0 {
				return usagef("no such command %q", termsafe.Line(strings.Join(args, " ")))
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
	fmt.Fprintf(w, "Usage:\n  %s %s\n\n%s\n", env.Prefix, useLine(c), firstNonEmpty(c.Long, c.Short))
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
