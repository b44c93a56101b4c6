package cli

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"whalemountain/backend"
	"whalemountain/backend/gpu"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// GPUs is the server's GPU sampler as commands see it. Snapshot cuts the sample down to what
// the identity may see; commands never see more than that.
type GPUs interface {
	Snapshot(id backend.Identity) gpu.State
	Available() (bool, string)
}

// gpusCmd lists the GPUs with what runs on them, as much as the user may see. src may be nil
// (GPU monitoring not configured).
func gpusCmd(env Env, src GPUs) *cobra.Command {
	var asJSON bool
	c := &cobra.Command{
		Use:   "gpus [--json]",
		Short: "Show the GPUs and who is using them",
		Long: "Show every GPU of this server: utilisation, memory, temperature, power and the processes on it.\n" +
			"Your own processes are shown with their container; other users' only as \"in use by another user\".",
		Args: exactArgs(env, 0),
		RunE: func(c *cobra.Command, _ []string) error {
			view := gpuState(src, env.Identity)
			if asJSON {
				if view.GPUs == nil {
					view.GPUs = []gpu.GPU{}
				}
				return writeJSON(env, view)
			}
			renderGPUs(env.Stdout, view)
			return nil
		},
	}
	c.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return c
}

// gpuState is src's snapshot as id may see it, or an unavailable state saying why there is
// none.
func gpuState(src GPUs, id backend.Identity) gpu.State {
	if src == nil {
		return gpu.State{Reason: "GPU monitoring is off"}
	}
	if ok, reason := src.Available(); !ok {
		return gpu.State{Reason: reason}
	}
	return src.Snapshot(id)
}

// renderGPUs writes one line per GPU of a state already cut down by the sampler, then for TAs
// one line per user holding a GPU. With no GPUs it writes one line saying why.
func renderGPUs(w io.Writer, st gpu.State) {
	if !st.Available || len(st.GPUs) == 0 {
		reason := st.Reason
		if reason == "" {
			reason = "none found"
		}
		fmt.Fprintf(w, "no GPUs on this server: %s\n", termsafe.Line(reason))
		return
	}
	for _, g := range st.GPUs {
		fmt.Fprintln(w, gpuLine(g))
	}
	if len(st.Users) > 0 {
		fmt.Fprintln(w)
		for _, u := range st.Users {
			fmt.Fprintln(w, userLine(u))
		}
	}
}

// gpuLine is "GPU 0  NVIDIA A100-SXM4-40GB  util 72%  mem 27 GiB/40 GiB  61°C  231 W  alice/jupyter 26 GiB".
// Unknown readings are "–".
func gpuLine(g gpu.GPU) string {
	name := termsafe.Line(g.Name)
	if name == "" {
		name = "–"
	}
	util := "–"
	if g.Util != nil {
		util = strconv.Itoa(*g.Util) + "%"
	}
	mem := "–"
	if g.MemUsed != nil && g.MemTotal != nil {
		mem = format.Bytes(*g.MemUsed) + "/" + format.Bytes(*g.MemTotal)
	}
	temp := "–"
	if g.TempC != nil {
		temp = strconv.Itoa(*g.TempC) + "°C"
	}
	power := "–"
	if g.PowerW != nil {
		power = fmt.Sprintf("%.0f W", *g.PowerW)
	}
	return fmt.Sprintf("GPU %d  %s  util %s  mem %s  %s  %s  %s", g.Index, name, util, mem, temp, power, processesText(g))
}

// processesText is "free", "processes unknown", or the processes joined by " · ".
func processesText(g gpu.GPU) string {
	if !g.ProcessesKnown {
		return "processes unknown"
	}
	if len(g.Processes) == 0 {
		return "free"
	}
	parts := make([]string, 0, len(g.Processes))
	for _, p := range g.Processes {
		parts = append(parts, processText(p))
	}
	return strings.Join(parts, " · ")
}

func processText(p gpu.Process) string {
	var s string
	switch p.Where {
	case gpu.WhereContainer:
		s = termsafe.Line(p.Owner) + "/" + termsafe.Line(p.ContainerName)
	case gpu.WhereOtherContainer:
		s = "other container"
		if len(p.ContainerID) >= 12 {
			s += " " + termsafe.Line(p.ContainerID[:12])
		}
	case gpu.WhereHost:
		s = "host"
		if p.PID > 0 {
			s += " pid " + strconv.Itoa(p.PID)
		}
	default:
		s = gpu.WhereHidden
	}
	if p.MemUsed != nil {
		s += " " + format.Bytes(*p.MemUsed)
	}
	return s
}

// userLine is "alice  GPUs 0,3  mem 28 GiB  mean util 15%".
func userLine(u gpu.UserSummary) string {
	idx := make([]string, len(u.GPUs))
	for i, n := range u.GPUs {
		idx[i] = strconv.Itoa(n)
	}
	util := "–"
	if u.MeanUtil != nil {
		util = strconv.Itoa(*u.MeanUtil) + "%"
	}
	return fmt.Sprintf("%s  GPUs %s  mem %s  mean util %s", termsafe.Line(u.User), strings.Join(idx, ","), format.Bytes(u.MemUsed), util)
}
