package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"whalemountain/backend/gitlab"
	"whalemountain/tui/termsafe"
)

// Registry lists a user's own container registry on the department GitLab (gitlab.Client).
type Registry interface {
	UserRegistry(ctx context.Context, username string) ([]gitlab.RegistryRepository, error)
}

var _ Registry = (*gitlab.Client)(nil)

var errNoRegistry = errors.New("the registry view needs GitLab, which this server is not connected to")

func registryCmd(env Env, reg Registry) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "registry [--json]",
		Short: "List the images in your own GitLab container registry",
		Long: "List the repositories and tags of the container registries of your GitLab projects.\n" +
			"Fetch one onto this server with 'pull LOCATION'.",
		Args: exactArgs(env, 0),
		PreRunE: func(*cobra.Command, []string) error {
			if reg == nil {
				return errNoRegistry
			}
			return nil
		},
		RunE: func(c *cobra.Command, _ []string) error {
			repos, err := reg.UserRegistry(env.Ctx, env.Identity.User)
			if err != nil {
				return gitlab.UserError(err)
			}
			if asJSON {
				out := make([]registryRow, 0)
				for _, r := range repos {
					for _, t := range r.Tags {
						out = append(out, registryRow{Project: r.Project, Repository: r.Path, Tag: t.Name, Location: t.Location})
					}
				}
				return writeJSON(env, out)
			}
			writeRegistryTable(env.Stdout, repos)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

type registryRow struct {
	Project    string `json:"project"`
	Repository string `json:"repository"`
	Tag        string `json:"tag"`
	Location   string `json:"location"`
}

// writeRegistryTable prints one row per tag; a repository without tags gets a row saying so.
func writeRegistryTable(w io.Writer, repos []gitlab.RegistryRepository) {
	if len(repos) == 0 {
		fmt.Fprintln(w, "No registry images in your GitLab projects.")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tTAG\tLOCATION")
	for _, r := range repos {
		if len(r.Tags) == 0 {
			fmt.Fprintln(tw, strings.Join([]string{termsafe.Line(r.Project), "(no tags)", termsafe.Line(r.Location)}, "\t"))
		}
		for _, t := range r.Tags {
			fmt.Fprintln(tw, strings.Join([]string{termsafe.Line(r.Project), termsafe.Line(t.Name), termsafe.Line(t.Location)}, "\t"))
		}
	}
	tw.Flush()
}
