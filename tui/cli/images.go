package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// Images is what the image verbs need from backend/docker; the backend applies the pull
// policy and the removal rules to every call.
type Images interface {
	Images(ctx context.Context, id backend.Identity) ([]docker.Image, error)
	Pull(ctx context.Context, id backend.Identity, ref string, progress func(docker.PullProgress)) error
	RemoveImage(ctx context.Context, id backend.Identity, ref string) error
}

var errNoImages = errors.New("images are not available on this server (no Docker Engine configured)")

// imageCmds are the image verbs over images, which may be nil (not configured).
func imageCmds(env Env, images Images) []*cobra.Command {
	need := func(*cobra.Command, []string) error {
		if images == nil {
			return errNoImages
		}
		return nil
	}
	cmds := []*cobra.Command{imagesCmd(env, images), pullCmd(env, images), rmiCmd(env, images)}
	for _, c := range cmds {
		c.PreRunE = need
	}
	return cmds
}

func imagesCmd(env Env, images Images) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "images [--json]",
		Short: "List the images on this server",
		Args:  exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			list, err := images.Images(env.Ctx, env.Identity)
			if err != nil {
				return failure(err)
			}
			if asJSON {
				if list == nil {
					list = []docker.Image{}
				}
				for i := range list {
					if list[i].Tags == nil {
						list[i].Tags = []string{}
					}
				}
				return writeJSON(env, list)
			}
			writeImageTable(env.Stdout, list, time.Now())
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// writeImageTable prints images as the images table: one row per tag, untagged as <none>.
func writeImageTable(w io.Writer, list []docker.Image, now time.Time) {
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "IMAGE\tID\tCREATED\tSIZE\tUSED BY YOU")
	for _, im := range list {
		tags := im.Tags
		if len(tags) == 0 {
			tags = []string{"<none>"}
		}
		used := "–"
		if im.InUseByYou {
			used = "yes"
		}
		created := "–"
		if !im.Created.IsZero() {
			created = format.Age(now.Sub(im.Created)) + " ago"
		}
		for _, t := range tags {
			fmt.Fprintln(tw, strings.Join([]string{termsafe.Line(t), termsafe.Line(im.ID), created, format.Bytes(im.Size), used}, "\t"))
		}
	}
	tw.Flush()
}

func pullCmd(env Env, images Images) *cobra.Command {
	return &cobra.Command{
		Use:   "pull IMAGE",
		Short: "Fetch an image from its registry",
		Long: "Fetch an image from its registry onto this server, if the server's image policy allows it.\n" +
			"Progress is one line per layer step; several users pulling the same image share one download.",
		Args: exactArgs(env, 1),
		RunE: func(c *cobra.Command, args []string) error {
			ref, err := docker.ParseImage(args[0])
			if err != nil {
				return failure(err)
			}
			p := newPullPrinter(env.Stdout)
			err = images.Pull(env.Ctx, env.Identity, args[0], p.step)
			p.done()
			if err != nil {
				return failure(err)
			}
			fmt.Fprintln(env.Stdout, "pulled "+termsafe.Line(ref))
			return nil
		},
	}
}

// pullPrinter writes a line each time a layer changes state (not for every byte).
type pullPrinter struct {
	mu     sync.Mutex
	w      io.Writer
	last   map[string]string // layer ID -> last status printed
	closed bool
}

func newPullPrinter(w io.Writer) *pullPrinter {
	return &pullPrinter{w: w, last: map[string]string{}}
}

func (p *pullPrinter) step(s docker.PullProgress) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || p.last[s.ID] == s.Status && s.ID != "" {
		return
	}
	p.last[s.ID] = s.Status
	line := termsafe.Line(s.Status)
	if s.ID != "" {
		line = termsafe.Line(s.ID) + ": " + line
	}
	if s.Total > 0 && (s.Status == "Downloading" || s.Status == "Extracting") {
		line += " (" + format.Bytes(s.Total) + ")"
	}
	fmt.Fprintln(p.w, line)
}

// done stops further lines: after a cancelled pull, a last step may still be on its way.
func (p *pullPrinter) done() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
}

func rmiCmd(env Env, images Images) *cobra.Command {
	return &cobra.Command{
		Use:   "rmi IMAGE...",
		Short: "Remove image tags (your own; TAs any no container uses)",
		Args:  minArgs(env),
		RunE: func(c *cobra.Command, args []string) error {
			return eachName(env, args, func(ref string) error {
				return images.RemoveImage(env.Ctx, env.Identity, ref)
			})
		},
	}
}
