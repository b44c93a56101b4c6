package cli

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// SharedData lists the site's datasets and the group workspaces (docker.Service); the
// backend decides who sees which.
type SharedData interface {
	Datasets(ctx context.Context, id backend.Identity) ([]docker.DatasetInfo, error)
	Groups(ctx context.Context, id backend.Identity) ([]docker.GroupInfo, error)
}

func datasetsCmd(env Env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "datasets [--json]",
		Short: "List the read-only datasets mounted into your containers",
		Long: "List the site's read-only datasets you may see: where they appear in every container you run,\n" +
			"and their size. Over sftp they are under /datasets/NAME.",
		Args: exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if env.Deps.Shared == nil {
				return errNoDocker
			}
			list, err := env.Deps.Shared.Datasets(env.Ctx, env.Identity)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(env, list)
			}
			if len(list) == 0 {
				fmt.Fprintln(env.Stdout, "No datasets for you on this server.")
				return nil
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, strings.Join(datasetHeader(env.Identity.IsTA()), "\t"))
			for _, d := range list {
				fmt.Fprintln(tw, strings.Join(datasetRow(d, env.Identity.IsTA()), "\t"))
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

func datasetHeader(ta bool) []string {
	h := []string{"NAME", "IN CONTAINERS", "SIZE", "DESCRIPTION"}
	if ta {
		h = append(h, "WHO", "SOURCE")
	}
	return h
}

// datasetRow is a dataset as table cells.
func datasetRow(d docker.DatasetInfo, ta bool) []string {
	size := "?"
	switch {
	case !d.Available:
		size = "missing"
	case d.Size >= 0:
		size = format.Bytes(d.Size)
	}
	row := []string{cell(d.Name), cell(d.Target) + " (read-only)", size, cell(d.Description)}
	if ta {
		row = append(row, cell(d.Who), cell(d.Source))
	}
	return row
}

func groupsCmd(env Env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "groups [--json]",
		Short: "List the workspaces of your groups, shared with their members",
		Long: "List the workspaces of your GitLab groups: one persistent folder per group, mounted read-write\n" +
			"into the containers its members run (membership is checked when a container is made and on\n" +
			"every start). Over sftp they are under /groups/GROUP. TAs see every workspace, and the running\n" +
			"containers of users who have left a group (they lose it at their next start).",
		Args: exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if env.Deps.Shared == nil {
				return errNoDocker
			}
			list, err := env.Deps.Shared.Groups(env.Ctx, env.Identity)
			if err != nil {
				return err
			}
			if asJSON {
				return writeJSON(env, list)
			}
			if len(list) == 0 {
				fmt.Fprintln(env.Stdout, "No group workspaces for you on this server.")
				return nil
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "GROUP\tIN CONTAINERS\tUSED\tLIMIT\tMEMBERS")
			var former []string
			for _, g := range list {
				fmt.Fprintln(tw, strings.Join(groupRow(g), "\t"))
				for _, f := range g.Former {
					former = append(former, termsafe.Line(f)+" still mounts "+termsafe.Line(g.Group))
				}
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(former) > 0 {
				fmt.Fprintln(env.Stdout, "\nRunning containers of users who have left the group (they lose it at their next start):")
				for _, f := range former {
					fmt.Fprintln(env.Stdout, "  "+f)
				}
			}
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// groupRow is a group workspace as table cells.
func groupRow(g docker.GroupInfo) []string {
	used := "?"
	if g.Used >= 0 {
		used = format.Bytes(g.Used)
	}
	limit := "none"
	if g.Size > 0 {
		limit = format.Bytes(g.Size)
		if g.Quota == docker.QuotaServer {
			limit += " (uploads only)"
		}
	}
	members := make([]string, len(g.Members))
	for i, m := range g.Members {
		members[i] = termsafe.Line(m)
	}
	return []string{cell(g.Group), cell(g.Target), used, limit, cell(strings.Join(members, ","))}
}

// cell is a table cell: "–" when empty, terminal-safe.
func cell(s string) string {
	if s == "" {
		return "–"
	}
	return termsafe.Line(s)
}
