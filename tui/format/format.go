// Package format turns backend values into the short words and numbers the dashboard and the
// command line show (uptime, sizes, percentages, states). Pure functions, no styling.
package format

import (
	"fmt"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
)

// Age is a short human duration: "45s", "12m", "2h13m", "5d", "3w". Zero or negative is "–".
func Age(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		h := int(d / time.Hour)
		m := int((d % time.Hour) / time.Minute)
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%02dm", h, m)
	case d < 14*24*time.Hour:
		return fmt.Sprintf("%dd", int(d/(24*time.Hour)))
	default:
		return fmt.Sprintf("%dw", int(d/(7*24*time.Hour)))
	}
}

// AgeChangesIn is how long until Age(d) reads differently as d grows: a second while it
// counts seconds, a minute while it counts minutes or hours and minutes, a day, a week.
func AgeChangesIn(d time.Duration) time.Duration {
	step := time.Second
	switch {
	case d <= 0:
		return -d + time.Second
	case d < time.Minute:
	case d < 24*time.Hour:
		step = time.Minute
	case d < 14*24*time.Hour:
		step = 24 * time.Hour
	default:
		step = 7 * 24 * time.Hour
	}
	return step - d%step
}

// Bytes is a binary size: "512 B", "210 MiB", "3.1 GiB".
func Bytes(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"KiB", "MiB", "GiB", "TiB", "PiB"}
	v := float64(n)
	i := -1
	for v >= 1024 && i < len(units)-1 {
		v /= 1024
		i++
	}
	if v < 10 {
		return fmt.Sprintf("%.1f %s", v, units[i])
	}
	return fmt.Sprintf("%.0f %s", v, units[i])
}

// Percent is "12%"; below 10 one decimal ("0.4%").
func Percent(p float64) string {
	if p < 0 {
		p = 0
	}
	if p < 10 && p != 0 {
		return fmt.Sprintf("%.1f%%", p)
	}
	return fmt.Sprintf("%.0f%%", p)
}

// State is the word for a container state, with the exit code for exited ones:
// "running", "exited(0)", "created".
func State(state string, exitCode int) string {
	if state == "exited" {
		return fmt.Sprintf("exited(%d)", exitCode)
	}
	if state == "" {
		return "unknown"
	}
	return state
}

// ContainerState is State for a container that the server may have stopped on purpose: an
// exited container that was stopped through the server reads "stopped" (its exit code is
// only the signal that stopped it); a crash keeps its exit code.
func ContainerState(state string, exitCode int, stoppedOnPurpose bool) string {
	if state == "exited" && stoppedOnPurpose {
		return "stopped"
	}
	return State(state, exitCode)
}

// ShortImage fits an image reference into width cells, keeping its end, where the
// repository's own name and tag are: whole path components are left out from the start
// ("registry.example.org/group/alice/ml:latest" -> "…/alice/ml:latest"); when even the last
// one does not fit, it is cut at its end, so the name still reads from its start.
func ShortImage(ref string, width int) string {
	if width <= 0 {
		return ""
	}
	if ansi.StringWidth(ref) <= width {
		return ref
	}
	// The path separators before the tag or digest.
	end := len(ref)
	if i := strings.IndexByte(ref, '@'); i >= 0 {
		end = i
	}
	for i := 0; i < end; i++ {
		if ref[i] != '/' {
			continue
		}
		if tail := "…" + ref[i:]; ansi.StringWidth(tail) <= width {
			return tail
		}
	}
	last := ref[strings.LastIndexByte(ref[:end], '/')+1:]
	if ansi.StringWidth(last) <= width {
		return last
	}
	return ansi.Truncate(last, width, "…")
}

// CPUs is a CPU limit: "2", "0.5".
func CPUs(c float64) string {
	s := fmt.Sprintf("%.2f", c)
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// UserPrefix is sshPrefix ("ssh -p 2222 host") logging in as user: "ssh -p 2222 alice@host",
// so a line copied from a hint works from any account on the user's own machine. A prefix
// that already names a user, or no user, leaves it as it is.
func UserPrefix(sshPrefix, user string) string {
	f := strings.Fields(sshPrefix)
	if user == "" || len(f) < 2 || f[0] != "ssh" {
		return sshPrefix
	}
	host := -1
	for i := 1; i < len(f); i++ {
		if f[i] == "-p" {
			i++
			continue
		}
		host = i
	}
	if host < 0 || strings.Contains(f[host], "@") {
		return sshPrefix
	}
	f[host] = user + "@" + f[host]
	return strings.Join(f, " ")
}

// ForwardLine is the ssh command that forwards port on the user's own machine to the same
// port of their container name, through the server users reach with sshPrefix ("ssh -p 2222
// host"): "ssh -L 8888:box:8888 -p 2222 alice@host".
func ForwardLine(sshPrefix, user, name string, port int) string {
	l := fmt.Sprintf("-L %d:%s:%d", port, name, port)
	rest, ok := strings.CutPrefix(UserPrefix(sshPrefix, user), "ssh")
	if !ok || strings.TrimSpace(rest) == "" {
		return "ssh " + l + " HOST"
	}
	return "ssh " + l + rest
}

// SCPDownload is the scp command that downloads remotePath from the server users reach with
// sshPrefix ("ssh -p 2222 alice@host" or "ssh host") into the current directory.
func SCPDownload(sshPrefix, remotePath string) string {
	f := strings.Fields(sshPrefix)
	if len(f) == 0 || f[0] != "ssh" {
		return "scp " + remotePath + " ."
	}
	var port, host string
	for i := 1; i < len(f); i++ {
		if f[i] == "-p" && i+1 < len(f) {
			port = f[i+1]
			i++
			continue
		}
		host = f[i]
	}
	cmd := "scp "
	if port != "" {
		cmd += "-P " + port + " "
	}
	return cmd + host + ":" + remotePath + " ."
}
