package cli

import (
	"context"
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
	"whalemountain/backend/docker"
	"whalemountain/backend/gpuhours"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Fair GPUs: GPU-hours (usage), the waiting list (run --wait, waiting) and TAs' keeps from
// idle stops (keep).

// GPUHours is the GPU-hours ledger as commands read it; *gpuhours.Meter is one.
type GPUHours interface {
	Days(user string, since time.Time) []gpuhours.Day
	Since(since time.Time) map[string]gpuhours.Usage
	Totals() map[string]gpuhours.Usage
}

// Fair is what the waiting list and the keeps need from backend/docker; the backend
// authorises every call against the Identity.
type Fair interface {
	RunOrWait(ctx context.Context, id backend.Identity, spec docker.RunSpec, preset string) (docker.Container, *docker.Waiting, error)
	WaitingList(id backend.Identity) []docker.Waiting
	CancelWaiting(id backend.Identity, ref, reason string) error
	MoveWaiting(id backend.Identity, ref string, pos int, reason string) error
	Keep(ctx context.Context, id backend.Identity, ref string, d time.Duration, reason string) (docker.Keep, error)
	Notices(id backend.Identity) ([]docker.Notice, int64)
	SubscribeFor(id backend.Identity, opts docker.ListOptions) (<-chan struct{}, func())
	Snapshot(id backend.Identity, opts docker.ListOptions) ([]docker.Container, docker.Health)
}

var _ Fair = (*docker.Service)(nil)

func fairCmds(env Env) []*cobra.Command {
	return []*cobra.Command{usageCmd(env), waitingCmd(env), keepCmd(env)}
}

func usageCmd(env Env) *cobra.Command {
	var (
		asJSON      bool
		since, user string
	)
	short := "Your GPU-hours per day"
	if env.Identity.IsTA() {
		short = "GPU-hours per user and day"
	}
	c := &cobra.Command{
		Use:   "usage [--since 7d|DATE] [--json]" + taOnly(env, " [--user U]"),
		Short: short,
		Long: "GPU-hours held (GPUs allocated to your running containers) and used (the same,\n" +
			"weighted by how busy the GPUs were), per day (UTC). Default: the last 7 days.",
		Args: exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if env.Deps.GPUHours == nil {
				return errors.New("GPU-hours are not kept on this server")
			}
			from := time.Now().Add(-7 * 24 * time.Hour)
			if since != "" {
				t, err := parseSince(since, time.Now())
				if err != nil {
					return badUsage(env, c, "%s", err)
				}
				from = t
			}
			who := env.Identity.User
			if env.Identity.IsTA() {
				who = user
			} else if user != "" && user != env.Identity.User {
				return errors.New("you may read your own GPU-hours only")
			}
			days := env.Deps.GPUHours.Days(who, from)
			if asJSON {
				if days == nil {
					days = []gpuhours.Day{}
				}
				return writeJSON(env, days)
			}
			writeUsage(env.Stdout, days, env.Identity.IsTA())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.Flags().StringVar(&since, "since", "", "from this long ago (2h, 7d) or this date (2006-01-02)")
	c.Flags().StringVar(&user, "user", "", "one user's (TAs)")
	if !env.Identity.IsTA() {
		_ = c.Flags().MarkHidden("user")
	}
	return c
}

// writeUsage prints GPU-hours per day, with a total per user.
func writeUsage(w io.Writer, days []gpuhours.Day, users bool) {
	if len(days) == 0 {
		fmt.Fprintln(w, "No GPU-hours in this time.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	head := "DAY\tGPU-H HELD\tGPU-H USED"
	if users {
		head = "DAY\tUSER\tGPU-H HELD\tGPU-H USED"
	}
	fmt.Fprintln(tw, head)
	total := map[string]gpuhours.Usage{}
	for _, d := range days {
		total[d.User] = total[d.User].Add(d.Usage)
		row := []string{d.Day, hours(d.Held), hours(d.Used)}
		if users {
			row = slices.Insert(row, 1, termsafe.Line(d.User))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	names := make([]string, 0, len(total))
	for u := range total {
		names = append(names, u)
	}
	slices.Sort(names)
	for _, u := range names {
		row := []string{"total", hours(total[u].Held), hours(total[u].Used)}
		if users {
			row = slices.Insert(row, 1, termsafe.Line(u))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	tw.Flush()
}

// hours is GPU-hours as a table shows them: "1.25".
func hours(h float64) string { return strconv.FormatFloat(h, 'f', 2, 64) }

// ordinal is "1st", "2nd", "3rd", "11th".
func ordinal(n int) string {
	suffix := "th"
	if n%100 < 11 || n%100 > 13 {
		switch n % 10 {
		case 1:
			suffix = "st"
		case 2:
			suffix = "nd"
		case 3:
			suffix = "rd"
		}
	}
	return strconv.Itoa(n) + suffix
}

// PlaceText is a waiting request's place in words: "2nd of 3 in line".
func PlaceText(w docker.Waiting) string {
	return fmt.Sprintf("%s of %d in line", ordinal(w.Position), w.Of)
}

// runWait is run --wait: the container is created and started now when its GPUs are free
// and nobody waits; otherwise the request joins the waiting list, and, unless detach, the
// command stays and prints each change of its place until it starts. Leaving does not
// cancel the request.
func runWait(env Env, spec docker.RunSpec, preset string, detach bool) error {
	fair, ok := env.Deps.Containers.(Fair)
	if !ok {
		return errors.New("the waiting list is not available on this server")
	}
	ct, w, err := fair.RunOrWait(env.Ctx, env.Identity, spec, preset)
	if err != nil {
		return failure(err)
	}
	if w == nil {
		printStarted(env, ct)
		return nil
	}
	name := w.Name
	fmt.Fprintf(env.Stdout, "%s: waiting for GPUs, %s (leaving does not cancel it: %s waiting cancel %s)\n",
		termsafe.Line(name), PlaceText(*w), env.Prefix, termsafe.Line(name))
	if detach {
		return nil
	}
	ch, cancel := fair.SubscribeFor(env.Identity, docker.ListOptions{All: true})
	defer cancel()
	// Only notices given from now on tell how this request ended.
	var seen int64
	ns, _ := fair.Notices(env.Identity)
	for _, n := range ns {
		seen = max(seen, n.Seq)
	}
	last := PlaceText(*w)
	check := time.NewTicker(30 * time.Second) // fair share can reorder without an event
	defer check.Stop()
	for {
		if i := slices.IndexFunc(fair.WaitingList(env.Identity), func(x docker.Waiting) bool { return x.Name == name }); i >= 0 {
			x := fair.WaitingList(env.Identity)[i]
			if p := PlaceText(x); p != last {
				fmt.Fprintf(env.Stdout, "%s: now %s\n", termsafe.Line(name), p)
				last = p
			}
		} else {
			ns, _ := fair.Notices(env.Identity)
			for _, n := range ns {
				if n.Seq <= seen || n.Container != name {
					continue
				}
				switch n.Action {
				case docker.NoticeWaitStart:
					cs, _ := fair.Snapshot(env.Identity, docker.ListOptions{All: true})
					for _, c := range cs {
						if c.Name == name {
							ct = c
						}
					}
					ct.Name = name
					printStarted(env, ct)
					return nil
				case docker.NoticeWaitFail:
					return fmt.Errorf("%s could not be started: %s", termsafe.Line(name), termsafe.Line(n.Reason))
				case docker.NoticeWaitCancel:
					return fmt.Errorf("%s: a TA cancelled the waiting request: %s", termsafe.Line(name), termsafe.Line(n.Reason))
				}
			}
			return fmt.Errorf("%s: the waiting request was cancelled", termsafe.Line(name))
		}
		select {
		case <-env.Ctx.Done():
			return nil
		case <-ch:
		case <-check.C:
		}
	}
}

func printStarted(env Env, ct docker.Container) {
	if ct.GPUs != "" {
		fmt.Fprintf(env.Stdout, "%s: created and started (GPU %s)\n", termsafe.Line(ct.Name), termsafe.Line(ct.GPUs))
		return
	}
	fmt.Fprintf(env.Stdout, "%s: created and started\n", termsafe.Line(ct.Name))
}

func waitingCmd(env Env) *cobra.Command {
	var asJSON bool
	short := "Your requests waiting for GPUs, and their places"
	if env.Identity.IsTA() {
		short = "The GPU waiting list"
	}
	c := &cobra.Command{
		Use:   "waiting [--json] | waiting cancel NAME" + taOnly(env, " | waiting move USER/NAME --to N"),
		Short: short,
		Long: "Requests made with run --gpus N --wait wait here while no GPU is free, in fair-share\n" +
			"order: whoever held the fewest GPU-hours lately first, then first come.",
		Args: exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			fair, err := fairOf(env)
			if err != nil {
				return err
			}
			list := fair.WaitingList(env.Identity)
			if asJSON {
				if list == nil {
					list = []docker.Waiting{}
				}
				return writeJSON(env, list)
			}
			writeWaiting(env.Stdout, list, env.Identity.IsTA(), time.Now())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	c.AddCommand(waitingCancelCmd(env), waitingMoveCmd(env))
	return c
}

// onFair is the RunE of a verb on one of the fair-share service's requests or containers,
// named by the verb's one argument: when flag is not "" it must be given (missing is the line
// when it is not), then do acts on the name.
func onFair(env Env, flag, missing string, do func(fair Fair, ref string) error) func(*cobra.Command, []string) error {
	return func(c *cobra.Command, args []string) error {
		fair, err := fairOf(env)
		if err != nil {
			return err
		}
		if flag != "" && !c.Flags().Changed(flag) {
			return badUsage(env, c, "%s", missing)
		}
		return do(fair, args[0])
	}
}

func fairOf(env Env) (Fair, error) {
	if env.Deps.Containers == nil {
		return nil, errNoDocker
	}
	fair, ok := env.Deps.Containers.(Fair)
	if !ok {
		return nil, errors.New("the waiting list is not available on this server")
	}
	return fair, nil
}

// writeWaiting prints the waiting list.
func writeWaiting(w io.Writer, list []docker.Waiting, owners bool, now time.Time) {
	if len(list) == 0 {
		fmt.Fprintln(w, "Nothing is waiting for GPUs.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "PLACE\tNAME\tIMAGE\tGPUS\tWAITING\tGPU-H (WINDOW)")
	for _, x := range list {
		name := termsafe.Line(x.Name)
		if owners {
			name = termsafe.Line(x.Ref())
		}
		place := strconv.Itoa(x.Position) + "/" + strconv.Itoa(x.Of)
		if x.Moved > 0 {
			place += " (moved)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", place, name, termsafe.Line(x.Image), termsafe.Line(x.GPUs),
			format.Age(now.Sub(x.Since)), hours(x.HoursHeld))
	}
	tw.Flush()
}

func waitingCancelCmd(env Env) *cobra.Command {
	var reason string
	c := &cobra.Command{
		Use:   "cancel NAME",
		Short: "Take your request off the waiting list" + taOnly(env, " (TAs: USER/NAME --reason TEXT)"),
		Args:  exactArgs(env, 1),
		RunE: onFair(env, "", "", func(fair Fair, ref string) error {
			if err := fair.CancelWaiting(env.Identity, ref, reason); err != nil {
				return failure(err)
			}
			fmt.Fprintf(env.Stdout, "%s: no longer waiting\n", termsafe.Line(ref))
			return nil
		}),
	}
	c.Flags().StringVar(&reason, "reason", "", "why (told to the owner)")
	return c
}

func waitingMoveCmd(env Env) *cobra.Command {
	var (
		to     int
		reason string
	)
	c := &cobra.Command{
		Use:    "move USER/NAME --to N",
		Short:  "Put a waiting request at place N (TAs)",
		Hidden: !env.Identity.IsTA(),
		Args:   exactArgs(env, 1),
		RunE: onFair(env, "to", "waiting move needs --to N", func(fair Fair, ref string) error {
			if err := fair.MoveWaiting(env.Identity, ref, to, reason); err != nil {
				return failure(err)
			}
			fmt.Fprintf(env.Stdout, "%s: moved to place %d\n", termsafe.Line(ref), to)
			return nil
		}),
	}
	c.Flags().IntVar(&to, "to", 0, "the place, 1 is next")
	c.Flags().StringVar(&reason, "reason", "", "why (audited)")
	return c
}

func keepCmd(env Env) *cobra.Command {
	var (
		d      time.Duration
		reason string
	)
	c := &cobra.Command{
		Use:    "keep USER/NAME --for 48h [--reason TEXT]",
		Short:  "Keep a container from idle stops for a while (TAs)",
		Hidden: !env.Identity.IsTA(),
		Args:   exactArgs(env, 1),
		RunE: onFair(env, "for", "keep needs --for DURATION (0 ends a keep)", func(fair Fair, ref string) error {
			k, err := fair.Keep(env.Ctx, env.Identity, ref, d, reason)
			if err != nil {
				return failure(err)
			}
			if d == 0 {
				fmt.Fprintf(env.Stdout, "%s/%s: idle stops apply again\n", termsafe.Line(k.Owner), termsafe.Line(k.Name))
				return nil
			}
			fmt.Fprintf(env.Stdout, "%s/%s: kept from idle stops until %s\n", termsafe.Line(k.Owner), termsafe.Line(k.Name), k.Until.Local().Format("2006-01-02 15:04"))
			return nil
		}),
	}
	c.Flags().DurationVar(&d, "for", 0, "how long, e.g. 48h")
	c.Flags().StringVar(&reason, "reason", "", "why (audited)")
	return c
}
