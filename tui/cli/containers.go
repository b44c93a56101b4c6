package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Containers is what the container verbs need from backend/docker; the backend authorises
// every call against the Identity.
type Containers interface {
	List(ctx context.Context, id backend.Identity, opts docker.ListOptions) ([]docker.Container, error)
	Run(ctx context.Context, id backend.Identity, spec docker.RunSpec) (docker.Container, error)
	Start(ctx context.Context, id backend.Identity, ref string) error
	Stop(ctx context.Context, id backend.Identity, ref, reason string) error
	Restart(ctx context.Context, id backend.Identity, ref string) error
	Remove(ctx context.Context, id backend.Identity, ref string, force bool, reason string) error
	Logs(ctx context.Context, id backend.Identity, ref string, opts docker.LogOptions) (io.ReadCloser, error)
	Inspect(ctx context.Context, id backend.Identity, ref string) (docker.Details, error)
}

// RefusalRecorder is what a Containers may also be (docker.Service is): where reads that
// were refused — another user's container or none of that name — are audited. The user is
// told the same either way.
type RefusalRecorder interface {
	RecordRefusal(id backend.Identity, action, ref string, err error)
}

var _ RefusalRecorder = (*docker.Service)(nil)

// refused audits a refused read of ref when the backend keeps an audit log.
func refused(env Env, action, ref string, err error) {
	if r, ok := env.Deps.Containers.(RefusalRecorder); ok {
		r.RecordRefusal(env.Identity, action, ref, err)
	}
}

var errNoDocker = errors.New("containers are not available on this server (no Docker Engine configured)")

// failure maps a backend error to the exit status: bad input is a usage error.
func failure(err error) error {
	if errors.Is(err, docker.ErrInvalid) {
		return usageError{err}
	}
	return err
}

func containerCmds(env Env) []*cobra.Command {
	need := func(c *cobra.Command, _ []string) error {
		if env.Deps.Containers == nil {
			return errNoDocker
		}
		return nil
	}
	cmds := []*cobra.Command{psCmd(env), runCmd(env), logsCmd(env), inspectCmd(env), rmCmd(env)}
	for _, verb := range []string{"start", "stop", "restart"} {
		cmds = append(cmds, lifecycleCmd(env, verb))
	}
	for _, c := range cmds {
		c.PreRunE = need
	}
	return cmds
}

func psCmd(env Env) *cobra.Command {
	var all, asJSON, allUsers bool
	c := &cobra.Command{
		Use:   "ps [-a] [--json]" + taOnly(env, " [--all-users]"),
		Short: "List your containers",
		Args:  exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if allUsers && !env.Identity.IsTA() {
				return usagef("--all-users is for TAs")
			}
			list, err := env.Deps.Containers.List(env.Ctx, env.Identity, docker.ListOptions{All: all, AllUsers: allUsers})
			if err != nil {
				return failure(err)
			}
			if asJSON {
				if list == nil {
					list = []docker.Container{}
				}
				return writeJSON(env, list)
			}
			writeContainerTable(env.Stdout, list, allUsers, time.Now())
			return nil
		},
	}
	c.Flags().BoolVarP(&all, "all", "a", false, "include stopped containers")
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&allUsers, "all-users", false, "every user's containers (TAs)")
	if !env.Identity.IsTA() {
		_ = c.Flags().MarkHidden("all-users")
	}
	return c
}

func taOnly(env Env, s string) string {
	if env.Identity.IsTA() {
		return s
	}
	return ""
}

// writeContainerTable prints containers as the ps table.
func writeContainerTable(w io.Writer, list []docker.Container, owners bool, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	head := "NAME\tIMAGE\tSTATE\tUP\tCPU\tMEM\tGPU"
	if owners {
		head = "OWNER\t" + head
	}
	fmt.Fprintln(tw, head)
	for _, c := range list {
		row := strings.Join(containerRow(c, now), "\t")
		if owners {
			row = termsafe.Line(c.Owner) + "\t" + row
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
}

// containerRow is one container as table cells: name, image, state, uptime, CPU, memory,
// GPUs.
func containerRow(c docker.Container, now time.Time) []string {
	up, cpu, mem := "–", "–", "–"
	if c.State == "running" {
		if !c.StartedAt.IsZero() {
			up = format.Age(now.Sub(c.StartedAt))
		}
		if !c.StatsAt.IsZero() {
			cpu = format.Percent(c.CPUPercent)
			mem = format.Bytes(c.MemUsage)
			if c.MemLimit > 0 {
				mem += " / " + format.Bytes(c.MemLimit)
			}
		}
	}
	gpus := "–"
	if c.GPUs != "" {
		gpus = termsafe.Line(c.GPUs)
	}
	return []string{termsafe.Line(c.Name), termsafe.Line(c.Image), format.ContainerState(c.State, c.ExitCode, c.Stopped != nil), up, cpu, mem, gpus}
}

func runCmd(env Env) *cobra.Command {
	var (
		name, memory, gpus, preset string
		cpus                       float64
		envs                       []string
		wait, detach               bool
	)
	c := &cobra.Command{
		Use:   "run [--name N] [--cpus X] [--memory M] [--gpus N|0,2 [--wait [-d]]] [-e K=V]... IMAGE [CMD...] | run --preset P [--name N] [--wait [-d]]",
		Short: "Create and start a container",
		Long: "Create and start a container from an image on this server. Your persistent home is\n" +
			"mounted in it; without CMD it runs the image's command, or stays up for `shell`.\n" +
			"With --wait, a request for GPUs that are all taken joins the waiting list and starts\n" +
			"when they free; run stays and shows its place until then (-d: returns at once).",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 && preset == "" {
				return badUsage(env, c, "run needs an IMAGE or --preset")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			if detach && !wait {
				return badUsage(env, c, "-d goes with --wait")
			}
			if wait && preset != "" {
				if len(args) > 0 || c.Flags().Changed("cpus") || c.Flags().Changed("memory") || c.Flags().Changed("env") || c.Flags().Changed("gpus") {
					return usagef("run --preset takes only --name: the preset says the image, limits and command")
				}
				return runWait(env, docker.RunSpec{Name: name}, preset, detach)
			}
			if preset != "" {
				changed := false
				for _, f := range []string{"cpus", "memory", "gpus", "env"} {
					changed = changed || c.Flags().Changed(f)
				}
				return runPreset(env, preset, name, args, changed)
			}
			spec := docker.RunSpec{Name: name, Image: args[0], Cmd: args[1:], Env: envs, CPUs: cpus, GPUs: gpus}
			if memory != "" {
				m, err := units.RAMInBytes(memory)
				if err != nil || m <= 0 {
					return usagef("--memory %q is not a size such as 512m or 2g", memory)
				}
				spec.Memory = m
			}
			if cpus < 0 {
				return usagef("--cpus must be positive")
			}
			if wait {
				return runWait(env, spec, "", detach)
			}
			ct, err := env.Deps.Containers.Run(env.Ctx, env.Identity, spec)
			if err != nil {
				return failure(err)
			}
			printStarted(env, ct)
			return nil
		},
	}
	c.Flags().SetInterspersed(false) // flags after IMAGE belong to CMD
	c.Flags().StringVar(&name, "name", "", "container name (letters, digits, -; default: from the image)")
	c.Flags().Float64Var(&cpus, "cpus", 0, "CPU limit, e.g. 2 or 0.5")
	c.Flags().StringVar(&memory, "memory", "", "memory limit, e.g. 512m, 4g")
	c.Flags().StringVar(&gpus, "gpus", "", "GPUs: a count (1) or GPU indices (0,2)")
	c.Flags().StringArrayVarP(&envs, "env", "e", nil, "environment variable K=V (repeatable)")
	c.Flags().StringVar(&preset, "preset", "", "a course preset (see presets): its image, limits and command")
	c.Flags().BoolVar(&wait, "wait", false, "when the GPUs are taken, wait in line for them")
	c.Flags().BoolVarP(&detach, "detach", "d", false, "with --wait: return once in line")
	return c
}

func lifecycleCmd(env Env, verb string) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   verb + " NAME...",
		Short: strings.ToUpper(verb[:1]) + verb[1:] + " containers",
		Args:  minArgs(env),
		RunE: func(c *cobra.Command, args []string) error {
			do := map[string]func(context.Context, backend.Identity, string) error{
				"start": env.Deps.Containers.Start, "restart": env.Deps.Containers.Restart,
				"stop": func(ctx context.Context, id backend.Identity, ref string) error {
					return env.Deps.Containers.Stop(ctx, id, ref, reason)
				},
			}[verb]
			if verb == "stop" {
				if err := needReason(env, c, args, reason); err != nil {
					return err
				}
			}
			return eachName(env, args, func(ref string) error { return do(env.Ctx, env.Identity, ref) })
		},
	}
	if verb == "stop" {
		reasonFlag(env, c, &reason)
	}
	return c
}

// reasonFlag is --reason: why a TA stops or removes a student's container; the owner is
// told who did it and why.
func reasonFlag(env Env, c *cobra.Command, reason *string) {
	c.Flags().StringVar(reason, "reason", "", "why, told to the container's owner (for a student's container)")
	if !env.Identity.IsTA() {
		_ = c.Flags().MarkHidden("reason")
		return
	}
	c.Use = strings.Replace(c.Use, " NAME...", " [--reason TEXT] NAME...", 1)
}

// needReason refuses, before anything is done, a TA's stop or rm of another user's container
// ("owner/name") without --reason: the owner is always told why.
func needReason(env Env, c *cobra.Command, refs []string, reason string) error {
	if !env.Identity.IsTA() || strings.TrimSpace(reason) != "" {
		return nil
	}
	for _, ref := range refs {
		if owner, _, ok := strings.Cut(ref, "/"); ok && owner != env.Identity.User {
			return badUsage(env, c, "%s is %s's container: say why with --reason TEXT (%s is told)",
				termsafe.Line(ref), termsafe.Line(owner), termsafe.Line(owner))
		}
	}
	return nil
}

// eachName applies fn to every name, printing the name on success and a line on stderr for
// each failure; the command fails when any did.
func eachName(env Env, names []string, fn func(string) error) error {
	var failed int
	var last error
	for _, n := range names {
		if err := fn(n); err != nil {
			failed++
			last = err
			if len(names) > 1 {
				fmt.Fprintln(env.Stderr, "error: "+termsafe.Line(err.Error()))
			}
			continue
		}
		fmt.Fprintln(env.Stdout, termsafe.Line(n))
	}
	switch {
	case failed == 0:
		return nil
	case len(names) == 1:
		return failure(last)
	default:
		return fmt.Errorf("%d of %d failed", failed, len(names))
	}
}

func rmCmd(env Env) *cobra.Command {
	var (
		force  bool
		reason string
	)
	c := &cobra.Command{
		Use:   "rm [-f] NAME...",
		Short: "Remove containers (your home is kept)",
		Args:  minArgs(env),
		RunE: func(c *cobra.Command, args []string) error {
			if err := needReason(env, c, args, reason); err != nil {
				return err
			}
			return eachName(env, args, func(ref string) error {
				return env.Deps.Containers.Remove(env.Ctx, env.Identity, ref, force, reason)
			})
		},
	}
	c.Flags().BoolVarP(&force, "force", "f", false, "stop a running container first")
	reasonFlag(env, c, &reason)
	return c
}

func logsCmd(env Env) *cobra.Command {
	var (
		follow, timestamps bool
		tail               int
	)
	c := &cobra.Command{
		Use:   "logs [-f] [--tail N] [--timestamps] NAME",
		Short: "Show a container's output",
		Args:  exactArgs(env, 1),
		RunE: func(c *cobra.Command, args []string) error {
			if tail < 0 {
				return usagef("--tail must be 0 (all) or more")
			}
			rc, err := env.Deps.Containers.Logs(env.Ctx, env.Identity, args[0],
				docker.LogOptions{Follow: follow, Tail: tail, Timestamps: timestamps})
			if err != nil {
				refused(env, "logs", args[0], err)
				return failure(err)
			}
			defer rc.Close()
			// Close the stream when the client goes away, so a follow ends.
			stop := context.AfterFunc(env.Ctx, func() { rc.Close() })
			defer stop()
			w := termsafe.NewWriter(env.Stdout)
			_, err = io.Copy(w, rc)
			w.Flush()
			if err != nil && env.Ctx.Err() == nil && !errors.Is(err, io.ErrClosedPipe) {
				return fmt.Errorf("read logs of %s: %w", args[0], err)
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until you disconnect")
	c.Flags().IntVar(&tail, "tail", 0, "only the last N lines (0: all)")
	c.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "prefix lines with their time")
	return c
}

func inspectCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a container's details as JSON",
		Args:  exactArgs(env, 1),
		RunE: func(c *cobra.Command, args []string) error {
			d, err := env.Deps.Containers.Inspect(env.Ctx, env.Identity, args[0])
			if err != nil {
				refused(env, "inspect", args[0], err)
				return failure(err)
			}
			return writeJSON(env, d)
		},
	}
}
