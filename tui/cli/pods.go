package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	units "github.com/docker/go-units"
	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/backend/kube"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Pods is what the pod commands, the Pods tab and the doors need from backend/kube;
// *kube.Service satisfies it. Every call is authorised against the Identity.
type Pods interface {
	List(ctx context.Context, id backend.Identity, opts kube.ListOptions) ([]kube.Pod, error)
	Snapshot(id backend.Identity, opts kube.ListOptions) ([]kube.Pod, kube.Health)
	SubscribeFor(id backend.Identity, opts kube.ListOptions) (<-chan struct{}, func())
	Config() kube.Config
	Run(ctx context.Context, id backend.Identity, spec kube.RunSpec) (kube.Pod, error)
	Remove(ctx context.Context, id backend.Identity, ref string) error
	Logs(ctx context.Context, id backend.Identity, ref string, opts kube.LogOptions) (io.ReadCloser, error)
	Inspect(ctx context.Context, id backend.Identity, ref string) (kube.Details, error)
	Forward(ctx context.Context, id backend.Identity, ref string, port int) (io.ReadWriteCloser, error)
	Kubeconfig(ctx context.Context, id backend.Identity) ([]byte, time.Time, error)
	Quotas(ctx context.Context, id backend.Identity, opts kube.ListOptions) ([]kube.QuotaUse, error)
	RecordRefusal(id backend.Identity, action, ref string, err error)
	backend.Executor
}

var _ Pods = (*kube.Service)(nil)

// ErrNoKubernetes is what every pod command says on a server without a cluster.
var ErrNoKubernetes = errors.New("no Kubernetes cluster is configured on this server")

// podFailure maps a backend error to the exit status: bad input is a usage error.
func podFailure(err error) error {
	if errors.Is(err, kube.ErrInvalid) {
		return usageError{err}
	}
	return err
}

func podCmds(env Env) []*cobra.Command {
	need := func(*cobra.Command, []string) error {
		if env.Deps.Pods == nil {
			return ErrNoKubernetes
		}
		return nil
	}
	pod := &cobra.Command{
		Use:   "pod COMMAND",
		Short: "Your Kubernetes pods: run, rm, logs, exec, shell, inspect",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return badUsage(env, c, "pod needs a command: run, rm, logs, exec, shell or inspect")
			}
			return badUsage(env, c, "pod has no command %q", termsafe.Line(args[0]))
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	subs := []*cobra.Command{podRunCmd(env), podRmCmd(env), podLogsCmd(env), podExecCmd(env), podShellCmd(env), podInspectCmd(env), podQuotaCmd(env)}
	pod.AddCommand(subs...)
	top := []*cobra.Command{podsCmd(env), kubeconfigCmd(env)}
	for _, c := range append(subs, top...) {
		c.PreRunE = need
	}
	return append(top, pod)
}

func podsCmd(env Env) *cobra.Command {
	var asJSON, allUsers bool
	c := &cobra.Command{
		Use:   "pods [--json]" + taOnly(env, " [--all-users]"),
		Short: "List your Kubernetes pods",
		Args:  exactArgs(env, 0),
		RunE: func(*cobra.Command, []string) error {
			if allUsers && !env.Identity.IsTA() {
				return usagef("--all-users is for TAs")
			}
			list, err := env.Deps.Pods.List(env.Ctx, env.Identity, kube.ListOptions{AllUsers: allUsers})
			if err != nil {
				return podFailure(err)
			}
			if asJSON {
				if list == nil {
					list = []kube.Pod{}
				}
				return writeJSON(env, list)
			}
			writePodTable(env.Stdout, list, allUsers, time.Now())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&allUsers, "all-users", false, "every user's pods (TAs)")
	if !env.Identity.IsTA() {
		_ = c.Flags().MarkHidden("all-users")
	}
	return c
}

// writePodTable prints pods as the pods table, the reason a pod waits or fails below it.
func writePodTable(w io.Writer, list []kube.Pod, owners bool, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	head := "NAME\tIMAGE\tSTATUS\tREADY\tRESTARTS\tAGE\tNODE\tGPU"
	if owners {
		head = "OWNER\t" + head
	}
	fmt.Fprintln(tw, head)
	for _, p := range list {
		row := strings.Join(podRow(p, now), "\t")
		if owners {
			row = termsafe.Line(p.Owner) + "\t" + row
		}
		fmt.Fprintln(tw, row)
	}
	tw.Flush()
	for _, p := range list {
		if p.Reason != "" {
			name := p.Name
			if owners {
				name = p.Ref()
			}
			fmt.Fprintf(w, "%s: %s\n", termsafe.Line(name), termsafe.Line(p.Reason))
		}
	}
}

// podRow is one pod as table cells: name, image, status, ready, restarts, age, node, GPUs.
func podRow(p kube.Pod, now time.Time) []string {
	ready, node, gpus := "0/1", "–", "–"
	if p.Ready {
		ready = "1/1"
	}
	if p.Node != "" {
		node = termsafe.Line(p.Node)
	}
	if p.GPUs > 0 {
		gpus = strconv.FormatInt(p.GPUs, 10)
	}
	return []string{termsafe.Line(p.Name), termsafe.Line(p.Image), termsafe.Line(p.Status), ready,
		strconv.Itoa(int(p.Restarts)), format.Age(now.Sub(p.Created)), node, gpus}
}

var podNameCut = regexp.MustCompile(`[^a-z0-9]+`)

// defaultPodName is a pod name from an image: "registry/alice/ml-notebook:latest" gives
// "ml-notebook".
func defaultPodName(image string) string {
	base := image
	if i := strings.LastIndexByte(base, '/'); i >= 0 {
		base = base[i+1:]
	}
	base, _, _ = strings.Cut(base, "@")
	base, _, _ = strings.Cut(base, ":")
	base = strings.Trim(podNameCut.ReplaceAllString(strings.ToLower(base), "-"), "-")
	if len(base) > 32 {
		base = strings.TrimRight(base[:32], "-")
	}
	if base == "" {
		return "pod"
	}
	return base
}

func podRunCmd(env Env) *cobra.Command {
	var (
		name, memory string
		cpus         float64
		gpus         int
		envs         []string
	)
	c := &cobra.Command{
		Use:   "run [--name N] [--cpus X] [--memory M] [--gpus N] [-e K=V]... IMAGE [CMD...]",
		Short: "Create a pod in your namespace",
		Long: "Create a pod from an image in your own namespace on the cluster. Without CMD it runs\n" +
			"the image's command. GPUs, CPUs and memory come out of your namespace's quota.",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return badUsage(env, c, "pod run needs an IMAGE")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			spec := kube.RunSpec{Name: name, Image: args[0], Cmd: args[1:], Env: envs, CPUs: cpus, GPUs: gpus}
			if spec.Name == "" {
				spec.Name = defaultPodName(args[0])
			}
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
			if gpus < 0 {
				return usagef("--gpus must be 0 or more")
			}
			p, err := env.Deps.Pods.Run(env.Ctx, env.Identity, spec)
			if err != nil {
				return podFailure(err)
			}
			line := fmt.Sprintf("pod %s: created (%s)", termsafe.Line(p.Name), termsafe.Line(p.Status))
			if p.Reason != "" {
				line += ": " + termsafe.Line(p.Reason)
			}
			fmt.Fprintln(env.Stdout, line)
			return nil
		},
	}
	c.Flags().SetInterspersed(false) // flags after IMAGE belong to CMD
	c.Flags().StringVar(&name, "name", "", "pod name (lower-case letters, digits, -; default: from the image)")
	c.Flags().Float64Var(&cpus, "cpus", 0, "CPU limit, e.g. 2 or 0.5")
	c.Flags().StringVar(&memory, "memory", "", "memory limit, e.g. 512m, 4g")
	c.Flags().IntVar(&gpus, "gpus", 0, "how many GPUs")
	c.Flags().StringArrayVarP(&envs, "env", "e", nil, "environment variable K=V (repeatable)")
	return c
}

func podRmCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "rm NAME...",
		Short: "Delete pods (your home is kept when it is persistent)",
		Args:  minArgs(env),
		RunE: func(c *cobra.Command, args []string) error {
			var failed int
			var last error
			for _, n := range args {
				if err := env.Deps.Pods.Remove(env.Ctx, env.Identity, n); err != nil {
					failed, last = failed+1, err
					if len(args) > 1 {
						fmt.Fprintln(env.Stderr, "error: "+termsafe.Line(err.Error()))
					}
					continue
				}
				fmt.Fprintln(env.Stdout, termsafe.Line(n))
			}
			switch {
			case failed == 0:
				return nil
			case len(args) == 1:
				return podFailure(last)
			}
			return fmt.Errorf("%d of %d failed", failed, len(args))
		},
	}
}

func podLogsCmd(env Env) *cobra.Command {
	var (
		follow, previous, timestamps bool
		tail                         int
	)
	c := &cobra.Command{
		Use:   "logs [-f] [--tail N] [--previous] [--timestamps] NAME",
		Short: "Show a pod's output",
		Args:  exactArgs(env, 1),
		RunE: func(c *cobra.Command, args []string) error {
			if tail < 0 {
				return usagef("--tail must be 0 (all) or more")
			}
			rc, err := env.Deps.Pods.Logs(env.Ctx, env.Identity, args[0],
				kube.LogOptions{Follow: follow, Tail: tail, Previous: previous, Timestamps: timestamps})
			if err != nil {
				env.Deps.Pods.RecordRefusal(env.Identity, "pod logs", args[0], err)
				return podFailure(err)
			}
			defer rc.Close()
			stop := context.AfterFunc(env.Ctx, func() { rc.Close() })
			defer stop()
			w := termsafe.NewWriter(env.Stdout)
			_, err = io.Copy(w, rc)
			w.Flush()
			if err != nil && env.Ctx.Err() == nil && !errors.Is(err, io.ErrClosedPipe) {
				return fmt.Errorf("read logs of pod %s: %w", termsafe.Line(args[0]), err)
			}
			return nil
		},
	}
	c.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing new output until you disconnect")
	c.Flags().IntVar(&tail, "tail", 0, "only the last N lines (0: all)")
	c.Flags().BoolVarP(&previous, "previous", "p", false, "the output of the run before the last restart")
	c.Flags().BoolVarP(&timestamps, "timestamps", "t", false, "prefix lines with their time")
	return c
}

// podNotRunning says how a pod that cannot run a command is: its status and why.
func podNotRunning(err error, name string, env Env) error {
	if errors.Is(err, backend.ErrNotRunning) {
		return fmt.Errorf("%s (see '%s pods')", err.Error(), env.Prefix)
	}
	return podFailure(err)
}

func podExecCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "exec NAME -- CMD...",
		Short: "Run a command in your pod, for scripts (stdin, stdout, stderr, exit status)",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) < 2 {
				return badUsage(env, c, "pod exec needs a NAME and a command")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return pipesIn(env, env.Deps.Pods, args[0], args[1:], podNotRunning)
		},
	}
}

func podShellCmd(env Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "shell NAME [CMD...]",
		Short: "A terminal in your pod (needs ssh -t)",
		Long: "Open a terminal in your running pod: bash if it has one, else sh, or CMD.\n" +
			"Needs a terminal: ssh -t. The exit status is the shell's.",
		Args: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				return badUsage(env, c, "pod shell needs a pod NAME")
			}
			return nil
		},
		RunE: func(c *cobra.Command, args []string) error {
			return terminalIn(env, env.Deps.Pods, "pod shell", args[0], "pod/"+args[0], args[1:], podNotRunning)
		},
	}
	c.Flags().SetInterspersed(false)
	return c
}

func podInspectCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a pod's details and newest warnings as JSON",
		Args:  exactArgs(env, 1),
		RunE: func(c *cobra.Command, args []string) error {
			d, err := env.Deps.Pods.Inspect(env.Ctx, env.Identity, args[0])
			if err != nil {
				env.Deps.Pods.RecordRefusal(env.Identity, "pod inspect", args[0], err)
				return podFailure(err)
			}
			return writeJSON(env, d)
		},
	}
}

func podQuotaCmd(env Env) *cobra.Command {
	var asJSON, allUsers bool
	c := &cobra.Command{
		Use:   "quota [--json]" + taOnly(env, " [--all-users]"),
		Short: "Show how much of your namespace's quota your pods use",
		Args:  exactArgs(env, 0),
		RunE: func(*cobra.Command, []string) error {
			if allUsers && !env.Identity.IsTA() {
				return usagef("--all-users is for TAs")
			}
			qs, err := env.Deps.Pods.Quotas(env.Ctx, env.Identity, kube.ListOptions{AllUsers: allUsers})
			if err != nil {
				return podFailure(err)
			}
			if asJSON {
				if qs == nil {
					qs = []kube.QuotaUse{}
				}
				return writeJSON(env, qs)
			}
			if len(qs) == 0 {
				fmt.Fprintln(env.Stdout, "No pods yet: your namespace and its quota are made with your first pod.")
				return nil
			}
			writeQuotaTable(env.Stdout, qs)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().BoolVar(&allUsers, "all-users", false, "every user's namespace (TAs)")
	if !env.Identity.IsTA() {
		_ = c.Flags().MarkHidden("all-users")
	}
	return c
}

// writeQuotaTable prints one line per namespace: each resource as used/hard.
func writeQuotaTable(w io.Writer, qs []kube.QuotaUse) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "OWNER\tNAMESPACE\tPODS\tCPUS\tMEMORY\tGPUS")
	num := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
	bytes := func(v float64) string { return format.Bytes(int64(v)) }
	for _, q := range qs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", termsafe.Line(q.Owner), termsafe.Line(q.Namespace),
			QuotaCell(q.Pods, num), QuotaCell(q.CPUs, num), QuotaCell(q.Memory, bytes), QuotaCell(q.GPUs, num))
	}
	tw.Flush()
}

// QuotaCell is "used/hard", or "used" alone where there is no limit, each written by num.
func QuotaCell(r kube.Resource, num func(float64) string) string {
	if !r.HasHard {
		return num(r.Used)
	}
	return num(r.Used) + "/" + num(r.Hard)
}

func kubeconfigCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print a kubeconfig for your own namespace (kubectl, k9s)",
		Long: "Print a kubeconfig that reaches your own namespace only, with a short-lived token.\n" +
			"Save it and point kubectl at it: " + env.Prefix + " kubeconfig > ~/.kube/whalemountain; export KUBECONFIG=~/.kube/whalemountain",
		Args: exactArgs(env, 0),
		RunE: func(*cobra.Command, []string) error {
			b, until, err := env.Deps.Pods.Kubeconfig(env.Ctx, env.Identity)
			if err != nil {
				return podFailure(err)
			}
			if _, err := env.Stdout.Write(b); err != nil {
				return err
			}
			fmt.Fprintf(env.Stderr, "The token is valid until %s; run '%s kubeconfig' again for a new one.\n",
				until.UTC().Format(time.RFC3339), env.Prefix)
			return nil
		},
	}
}
