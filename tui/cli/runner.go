package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/backend/runner"
	"whalemountain/tui/termsafe"
)

// Runners are users' personal GitLab runners (backend/runner's Service).
type Runners interface {
	SetToken(ctx context.Context, id backend.Identity, project, token string) (runner.Runner, error)
	SetTokenWith(ctx context.Context, id backend.Identity, project, token, executor string) (runner.Runner, error)
	CreateWith(ctx context.Context, id backend.Identity, project, executor string) (runner.Runner, error)
	Rotate(ctx context.Context, id backend.Identity, ref string) error
	List(ctx context.Context, id backend.Identity, all bool) ([]runner.Runner, error)
	Restart(ctx context.Context, id backend.Identity, owner, ref, reason string) error
	Stop(ctx context.Context, id backend.Identity, owner, ref, reason string) error
	Remove(ctx context.Context, id backend.Identity, owner, ref, reason string) error
	Logs(ctx context.Context, id backend.Identity, owner, ref string, follow bool, tail int) (io.ReadCloser, error)
	CanCreate() bool
	Template(id backend.Identity) string
}

var _ Runners = (*runner.Service)(nil)

var errNoRunners = errors.New("GitLab runners are not available on this server (runners.enabled: false)")

// maxTokenInput bounds what runner token reads.
const maxTokenInput = 4096

func runnerCmd(env Env) *cobra.Command {
	rs := env.Deps.Runners
	root := &cobra.Command{
		Use:   "runner",
		Short: "Your own GitLab CI runner: token, status, logs, restart, rm, template",
		Long: "Your own GitLab runner runs your projects' CI jobs in containers of yours, made through your\n" +
			"own Docker API (no privileges, no host paths, inside your quota).",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			if rs == nil {
				return errNoRunners
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) > 0 {
				return badUsage(env, c, "runner has no command %s", strconv.Quote(termsafe.Line(hideToken(args[0]))))
			}
			printHelp(env, c.Root(), c)
			return nil
		},
	}
	root.AddCommand(runnerTokenCmd(env, rs), runnerCreateCmd(env, rs), runnerRotateCmd(env, rs), runnerStatusCmd(env, rs),
		runnerLogsCmd(env, rs), runnerRestartCmd(env, rs), runnerStopCmd(env, rs), runnerRmCmd(env, rs), runnerTemplateCmd(env, rs))
	return root
}

// hideToken keeps a runner token typed where it does not belong out of every answer.
func hideToken(s string) string {
	if strings.Contains(s, "glrt-") {
		return "glrt-[hidden]"
	}
	return s
}

// noArgsHidden refuses positional arguments without repeating them (one may be a token).
func noArgsHidden(env Env, why string) cobra.PositionalArgs {
	return func(c *cobra.Command, args []string) error {
		if len(args) > 0 {
			return badUsage(env, c, "%s", why)
		}
		return nil
	}
}

// readToken reads the token: with a terminal, at a prompt that does not echo; otherwise
// the first line of stdin.
func readToken(env Env) (string, error) {
	if t := env.Terminal; t != nil && t.In != nil {
		fmt.Fprint(t.Out, "GitLab runner token (glrt-..., not shown): ")
		var b []byte
		one := make([]byte, 1)
		for len(b) < maxTokenInput {
			n, err := t.In.Read(one)
			if n == 0 && err != nil {
				fmt.Fprint(t.Out, "\r\n")
				return "", fmt.Errorf("read the token: %w", err)
			}
			if n == 0 {
				continue
			}
			switch c := one[0]; c {
			case '\r', '\n':
				fmt.Fprint(t.Out, "\r\n")
				return strings.TrimSpace(string(b)), nil
			case 3, 4: // Ctrl-C, Ctrl-D
				fmt.Fprint(t.Out, "\r\n")
				return "", errors.New("no token given")
			case 127, 8:
				if len(b) > 0 {
					b = b[:len(b)-1]
				}
			default:
				b = append(b, c)
			}
		}
		return "", errors.New("the token is too long")
	}
	if env.Stdin == nil {
		return "", errors.New("no token given")
	}
	line, err := bufio.NewReader(io.LimitReader(env.Stdin, maxTokenInput)).ReadString('\n')
	if err != nil && err != io.EOF {
		return "", fmt.Errorf("read the token from stdin: %w", err)
	}
	return strings.TrimSpace(line), nil
}

// executorFlag is the executor --kubernetes asks for ("": the runner's own).
func executorFlag(kubernetes bool) string {
	if kubernetes {
		return runner.ExecutorKubernetes
	}
	return ""
}

// kubernetesUsage is the --kubernetes flag's help line.
const kubernetesUsage = "run the runner as a pod in your Kubernetes namespace (kubernetes executor; jobs are pods there)"

func runnerTokenCmd(env Env, rs Runners) *cobra.Command {
	var project string
	var kubernetes bool
	c := &cobra.Command{
		Use:   "token [--project PATH]",
		Short: "Set your runner's token (read from stdin or typed at a hidden prompt) and start it",
		Long: "Create a project runner in GitLab (your project -> Settings -> CI/CD -> Runners -> New project runner),\n" +
			"then give its token here on stdin, never on the command line:\n\n" +
			"  " + env.Prefix + " runner token --project alice/demo < token.txt\n" +
			"  ssh -t ... runner token --project alice/demo      (hidden prompt)\n\n" +
			"The token is checked with GitLab, kept on the server readable by the server alone, and shown\n" +
			"to nobody. A new token for the same project restarts its runner. With --kubernetes the runner\n" +
			"is a pod in your own namespace and its jobs are pods there (where the server lends pods).",
		Args: noArgsHidden(env, "the token is read from stdin or a hidden prompt, never from the command line"),
		RunE: func(c *cobra.Command, _ []string) error {
			token, err := readToken(env)
			if err != nil {
				return err
			}
			if token == "" {
				return badUsage(env, c, "no token on stdin: give it with '< token.txt' or run ssh -t for a hidden prompt")
			}
			r, err := rs.SetTokenWith(env.Ctx, env.Identity, project, token, executorFlag(kubernetes))
			if err != nil {
				return runnerFailure(err)
			}
			fmt.Fprintf(env.Stdout, "runner %s: token accepted by GitLab; runner %s\n", r.Name, stateWord(r.State))
			return nil
		},
	}
	c.Flags().StringVar(&project, "project", "", "the GitLab project the runner is for, such as alice/demo")
	c.Flags().BoolVar(&kubernetes, "kubernetes", false, kubernetesUsage)
	return c
}

func runnerCreateCmd(env Env, rs Runners) *cobra.Command {
	var kubernetes bool
	c := &cobra.Command{
		Use:   "create PROJECT [--kubernetes]",
		Short: "Create a runner for PROJECT in GitLab (you must be at least Maintainer) and start it",
		Args:  exactArgs(env, 1),
		RunE: func(c *cobra.Command, args []string) error {
			r, err := rs.CreateWith(env.Ctx, env.Identity, args[0], executorFlag(kubernetes))
			if err != nil {
				return runnerFailure(err)
			}
			fmt.Fprintf(env.Stdout, "runner %s: created in GitLab for %s; runner %s\n", r.Name, termsafe.Line(r.Project), stateWord(r.State))
			return nil
		},
	}
	c.Flags().BoolVar(&kubernetes, "kubernetes", false, kubernetesUsage)
	return c
}

func runnerRotateCmd(env Env, rs Runners) *cobra.Command {
	return &cobra.Command{
		Use:   "rotate [NAME]",
		Short: "Give your runner a new token in GitLab and restart it (runners made with runner create)",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			ref := firstArg(args)
			if err := rs.Rotate(env.Ctx, env.Identity, ref); err != nil {
				return runnerFailure(err)
			}
			fmt.Fprintln(env.Stdout, "runner: new token set; runner restarted")
			return nil
		},
	}
}

func firstArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

func stateWord(s string) string {
	if s == "" {
		return "unknown"
	}
	return s
}

// runnerFailure maps a runner error to the exit status: bad input is a usage error.
func runnerFailure(err error) error {
	if errors.Is(err, runner.ErrInvalid) {
		return usageError{err}
	}
	return err
}

func runnerStatusCmd(env Env, rs Runners) *cobra.Command {
	var asJSON, all bool
	c := &cobra.Command{
		Use:   "status [--json] [--all]",
		Short: "List your runners and their state (--all: everyone's, for TAs)",
		Args:  exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			list, err := rs.List(env.Ctx, env.Identity, all)
			if err != nil {
				return runnerFailure(err)
			}
			if asJSON {
				return writeJSON(env, list)
			}
			fmt.Fprint(env.Stdout, RenderRunners(list, all && env.Identity.IsTA(), time.Now()))
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&all, "all", false, "every user's runners (TAs)")
	return c
}

// RenderRunners is the runner status table at now: each runner's state, its running jobs,
// GitLab's view (online, last contact), then a line per runner with jobs, now and recent.
func RenderRunners(list []runner.Runner, withOwner bool, now time.Time) string {
	if len(list) == 0 {
		return "No runners. Set one up with: runner token --project PATH < token.txt\n"
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 3, ' ', 0)
	head := "NAME\tPROJECT\tSTATE\tJOBS\tONLINE\tLAST CONTACT\tSTATUS"
	if withOwner {
		head = "OWNER\t" + head
	}
	fmt.Fprintln(tw, head)
	for _, r := range list {
		project := r.Project
		if project == "" {
			project = "-"
		}
		row := []string{termsafe.Line(r.Name), termsafe.Line(project), stateWord(r.State), fmt.Sprint(len(r.JobsNow)),
			runner.OnlineWord(r), runner.ContactWord(r, now), termsafe.Line(r.Status)}
		if withOwner {
			row = append([]string{termsafe.Line(r.Owner)}, row...)
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
	for _, r := range list {
		if line := runner.JobsLine(r, now); line != "" {
			fmt.Fprintf(&b, "%s: %s\n", termsafe.Line(r.Name), termsafe.Line(line))
		}
	}
	return b.String()
}

// ownerOf is whose runner a command is about: --user (TAs), else the caller's own.
func ownerOf(env Env, user string) string {
	if user == "" {
		return env.Identity.User
	}
	return user
}

func runnerLogsCmd(env Env, rs Runners) *cobra.Command {
	var (
		follow bool
		tail   int
		user   string
	)
	c := &cobra.Command{
		Use:   "logs [-f] [--tail N] [NAME]",
		Short: "Show your runner's log",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			rc, err := rs.Logs(env.Ctx, env.Identity, ownerOf(env, user), firstArg(args), follow, tail)
			if err != nil {
				return runnerFailure(err)
			}
			defer rc.Close()
			stop := context.AfterFunc(env.Ctx, func() { rc.Close() })
			defer stop()
			w := termsafe.NewWriter(env.Stdout)
			_, err = io.Copy(w, rc)
			w.Flush()
			if err != nil && env.Ctx.Err() == nil && !errors.Is(err, io.ErrClosedPipe) {
				return fmt.Errorf("read the runner's log: %w", err)
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing until you disconnect")
	c.Flags().IntVar(&tail, "tail", 0, "only the last N lines (0: all)")
	c.Flags().StringVar(&user, "user", "", "a student's runner (TAs)")
	return c
}

// runnerActionCmd is restart, stop and rm: NAME optional, --user and --reason for TAs.
func runnerActionCmd(env Env, use, short, done string, act func(ctx context.Context, id backend.Identity, owner, ref, reason string) error) *cobra.Command {
	var user, reason string
	c := &cobra.Command{
		Use:   use + " [--user USER --reason TEXT] [NAME]",
		Short: short,
		Args:  cobra.MaximumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			owner := ownerOf(env, user)
			if err := act(env.Ctx, env.Identity, owner, firstArg(args), reason); err != nil {
				return runnerFailure(err)
			}
			fmt.Fprintf(env.Stdout, "runner %s\n", done)
			return nil
		},
	}
	c.Flags().StringVar(&user, "user", "", "a student's runner (TAs)")
	c.Flags().StringVar(&reason, "reason", "", "why, for the student and the audit log (TAs)")
	return c
}

func runnerRestartCmd(env Env, rs Runners) *cobra.Command {
	return runnerActionCmd(env, "restart", "Restart your runner", "restarted", func(ctx context.Context, id backend.Identity, owner, ref, reason string) error {
		return rs.Restart(ctx, id, owner, ref, reason)
	})
}

func runnerStopCmd(env Env, rs Runners) *cobra.Command {
	return runnerActionCmd(env, "stop", "Stop your runner until it is restarted", "stopped", func(ctx context.Context, id backend.Identity, owner, ref, reason string) error {
		return rs.Stop(ctx, id, owner, ref, reason)
	})
}

func runnerRmCmd(env Env, rs Runners) *cobra.Command {
	return runnerActionCmd(env, "rm", "Unregister your runner from GitLab and remove it, token included", "removed", func(ctx context.Context, id backend.Identity, owner, ref, reason string) error {
		return rs.Remove(ctx, id, owner, ref, reason)
	})
}

func runnerTemplateCmd(env Env, rs Runners) *cobra.Command {
	return &cobra.Command{
		Use:   "template",
		Short: "Print a .gitlab-ci.yml for your runner",
		Args:  exactArgs(env, 0),
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprint(env.Stdout, rs.Template(env.Identity))
			return nil
		},
	}
}
