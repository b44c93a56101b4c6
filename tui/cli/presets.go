package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Presets are the course presets: what the caller may use, and a run from one. The backend
// decides who is offered which.
type Presets interface {
	Presets(ctx context.Context, id backend.Identity) []docker.Preset
	RunPreset(ctx context.Context, id backend.Identity, preset, name string) (docker.Container, error)
}

func presetsCmd(env Env) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "presets [--json]",
		Short: "List the course's ready-made containers you may run (run --preset NAME)",
		Args:  exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			if env.Deps.Presets == nil {
				return errNoDocker
			}
			list := env.Deps.Presets.Presets(env.Ctx, env.Identity)
			if asJSON {
				if list == nil {
					list = []docker.Preset{}
				}
				return writeJSON(env, list)
			}
			if len(list) == 0 {
				fmt.Fprintln(env.Stdout, "No presets for you on this server.")
				return nil
			}
			tw := tabwriter.NewWriter(env.Stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "NAME\tIMAGE\tCPUS\tMEMORY\tGPUS\tDESCRIPTION")
			for _, p := range list {
				fmt.Fprintln(tw, strings.Join(presetRow(p), "\t"))
			}
			return tw.Flush()
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// presetRow is a preset as table cells.
func presetRow(p docker.Preset) []string {
	cell := func(s string) string {
		if s == "" {
			return "–"
		}
		return termsafe.Line(s)
	}
	cpus, mem := "default", "default"
	if p.CPUs > 0 {
		cpus = format.CPUs(p.CPUs)
	}
	if p.Memory > 0 {
		mem = format.Bytes(p.Memory)
	}
	return []string{cell(p.Name), cell(p.Image), cpus, mem, cell(p.GPUs), cell(p.Description)}
}

// runPreset is run --preset NAME [--name N]: nothing else may be given.
func runPreset(env Env, preset, name string, args []string, changed bool) error {
	if env.Deps.Presets == nil {
		return errNoDocker
	}
	if len(args) > 0 || changed {
		return usagef("run --preset takes only --name: the preset says the image, limits and command")
	}
	ct, err := env.Deps.Presets.RunPreset(env.Ctx, env.Identity, preset, name)
	if err != nil {
		if errors.Is(err, docker.ErrInvalid) {
			return usageError{err}
		}
		return err
	}
	if ct.GPUs != "" {
		fmt.Fprintf(env.Stdout, "%s: created and started from preset %s (GPU %s)\n", termsafe.Line(ct.Name), termsafe.Line(preset), termsafe.Line(ct.GPUs))
		return nil
	}
	fmt.Fprintf(env.Stdout, "%s: created and started from preset %s\n", termsafe.Line(ct.Name), termsafe.Line(preset))
	return nil
}
