package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// SIFs is what the sif verbs need from backend/docker's SIFService.
type SIFs interface {
	Build(ctx context.Context, id backend.Identity, ref string, progress func(docker.SIFProgress)) (docker.SIFFile, bool, error)
	List(ctx context.Context, id backend.Identity) ([]docker.SIFFile, error)
	Remove(ctx context.Context, id backend.Identity, name string) error
	Quota() int64
}

var errNoSIF = errors.New("SIF export is not available on this server (no Docker Engine configured)")

func sifCmd(env Env, sifs SIFs) *cobra.Command {
	need := func(*cobra.Command, []string) error {
		if sifs == nil {
			return errNoSIF
		}
		return nil
	}
	root := &cobra.Command{
		Use:   "sif IMAGE | sif ls [--json] | sif rm NAME...",
		Short: "Convert an image into a Singularity/Apptainer SIF file to download",
		Long: "sif IMAGE converts an image on this server into a SIF file that Apptainer and Singularity\n" +
			"run without root, e.g. on an HPC cluster; a SIF of the same image is made only once.\n" +
			"Download it with " + format.SCPDownload(env.Prefix, "/sif/NAME.sif") + " (or sftp),\n" +
			"list yours with 'sif ls', remove them with 'sif rm NAME'.",
		Args:    exactArgs(env, 1),
		PreRunE: need,
		RunE: func(c *cobra.Command, args []string) error {
			if _, err := docker.ParseImage(args[0]); err != nil {
				return failure(err)
			}
			p := &sifPrinter{w: env.Stdout}
			f, cached, err := sifs.Build(env.Ctx, env.Identity, args[0], p.step)
			if err != nil {
				return failure(err)
			}
			how := "made (%s)"
			if cached {
				how = "ready (%s, made before from the same image)"
			}
			fmt.Fprintf(env.Stdout, "%s "+how+"\ndownload: %s\n", termsafe.Line(f.Name), format.Bytes(f.Size),
				format.SCPDownload(env.Prefix, "/sif/"+termsafe.Line(f.Name)))
			return nil
		},
	}
	var asJSON bool
	ls := &cobra.Command{
		Use:     "ls [--json]",
		Short:   "List your SIF files",
		Args:    exactArgs(env, 0),
		PreRunE: need,
		RunE: func(c *cobra.Command, _ []string) error {
			list, err := sifs.List(env.Ctx, env.Identity)
			if err != nil {
				return failure(err)
			}
			if asJSON {
				if list == nil {
					list = []docker.SIFFile{}
				}
				return writeJSON(env, list)
			}
			writeSIFTable(env.Stdout, list, sifs.Quota(), time.Now())
			return nil
		},
	}
	ls.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	rm := &cobra.Command{
		Use:     "rm NAME...",
		Short:   "Remove your SIF files",
		Args:    minArgs(env),
		PreRunE: need,
		RunE: func(c *cobra.Command, args []string) error {
			return eachName(env, args, func(name string) error {
				return sifs.Remove(env.Ctx, env.Identity, name)
			})
		},
	}
	root.AddCommand(ls, rm)
	return root
}

// writeSIFTable prints the caller's SIF files and how much of the quota they use.
func writeSIFTable(w io.Writer, list []docker.SIFFile, quota int64, now time.Time) {
	var used int64
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tIMAGE\tIMAGE ID\tSIZE\tCREATED")
	for _, f := range list {
		used += f.Size
		created := "–"
		if !f.Created.IsZero() {
			created = format.Age(now.Sub(f.Created)) + " ago"
		}
		fmt.Fprintln(tw, strings.Join([]string{termsafe.Line(f.Name), termsafe.Line(firstNonEmpty(f.Image, "–")),
			termsafe.Line(firstNonEmpty(f.ImageID, "–")), format.Bytes(f.Size), created}, "\t"))
	}
	tw.Flush()
	fmt.Fprintf(w, "%s of %s used\n", format.Bytes(used), format.Bytes(quota))
}

// SIFStep words one step of a SIF build: "queued (1st in line)", "exporting 12.0MB of
// 48.0MB", "writing the SIF".
func SIFStep(p docker.SIFProgress) string {
	switch p.Phase {
	case "queued":
		return fmt.Sprintf("waiting for a free build slot (%d in line)", p.Position)
	case "exporting":
		if p.Total > 0 {
			return fmt.Sprintf("exporting %s of about %s", format.Bytes(p.Done), format.Bytes(p.Total))
		}
		return "exporting " + format.Bytes(p.Done)
	case "writing":
		return "writing the SIF file"
	}
	return termsafe.Line(p.Phase)
}

// sifPrinter writes a line when the phase changes, and while exporting at most one per tenth
// of the image.
type sifPrinter struct {
	w     io.Writer
	phase string
	tenth int64
}

func (p *sifPrinter) step(s docker.SIFProgress) {
	tenth := int64(-1)
	if s.Phase == "exporting" && s.Total > 0 {
		tenth = min(s.Done*10/s.Total, 10)
	}
	if s.Phase == p.phase && tenth == p.tenth {
		return
	}
	p.phase, p.tenth = s.Phase, tenth
	fmt.Fprintln(p.w, SIFStep(s))
}
