package containers

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
	units "github.com/docker/go-units"

	"whalemountain/backend"
	"whalemountain/backend/docker"
	"whalemountain/tui/dashboard"
	"whalemountain/tui/format"
	"whalemountain/tui/termsafe"
)

// The new-container form: image, name, command, CPUs, memory, GPUs, each checked as it is
// typed. When the course offers presets to the user, the form starts with them: picking one
// asks only for a name (the preset says the rest, and the backend checks it as any run);
// the last choice opens the fields.

type field int

const (
	fImage field = iota
	fName
	fCommand
	fCPUs
	fMemory
	fGPUs
	fWait
	numFields
)

var fieldLabels = [numFields]string{"image", "name", "command", "CPUs", "memory", "GPUs", "wait"}

// formLabelW is the width of the field labels.
const formLabelW = 10

// minMemory is the smallest memory limit the engine accepts.
const minMemory = 6 << 20

// form is the state of the new-container form.
type form struct {
	inputs     [numFields]textinput.Model
	focus      field
	touched    [numFields]bool
	errs       [numFields]string
	submitting bool
	limits     formLimits
	shared     string // the shared data every new container gets, once known

	presets []docker.Preset
	picking bool           // choosing among the presets and a custom container
	pick    int            // the highlighted choice; len(presets) is the custom container
	preset  *docker.Preset // the one chosen: only the name is asked
}

// sharedLister is what a service offers when it mounts shared data (docker.Service); the
// form then says what a new container will get.
type sharedLister interface {
	Datasets(ctx context.Context, id backend.Identity) ([]docker.DatasetInfo, error)
	Groups(ctx context.Context, id backend.Identity) ([]docker.GroupInfo, error)
}

// sharedMsg is the form's line about shared data.
type sharedMsg string

// sharedText says which datasets and group workspaces a new container gets, and where:
// "also mounted: /datasets/imagenet (read-only), /groups/os/team-a"; "" when none.
func sharedText(ds []docker.DatasetInfo, gs []docker.GroupInfo) string {
	var parts []string
	for _, d := range ds {
		if d.Available && d.Mounted {
			parts = append(parts, d.Target+" (read-only)")
		}
	}
	for _, g := range gs {
		if g.Member {
			parts = append(parts, g.Target)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "also mounted: " + strings.Join(parts, ", ")
}

// formLimits are the defaults and the per-container quota the form checks against.
type formLimits struct {
	defaultCPUs float64
	defaultMem  int64
	maxCPUs     float64
	maxMem      int64
}

// presetsMsg are the presets the user may use.
type presetsMsg struct {
	tab     *Tab
	presets []docker.Preset
}

// newForm is a form with its fields; setPresets puts presets before them.
func newForm(lim formLimits) *form {
	f := &form{limits: lim}
	placeholders := [numFields]string{
		fImage:   "e.g. ubuntu:24.04",
		fName:    "optional: made from the image",
		fCommand: "optional: the image's own",
		fCPUs:    fmt.Sprintf("%s (at most %s)", format.CPUs(lim.defaultCPUs), format.CPUs(lim.maxCPUs)),
		fMemory:  fmt.Sprintf("%s (at most %s)", format.Bytes(lim.defaultMem), format.Bytes(lim.maxMem)),
		fGPUs:    "optional: a count (1) or GPU indices (0,2)",
		fWait:    "n; y: when the GPUs are taken, wait in line for them",
	}
	for i := range f.inputs {
		in := textinput.New()
		in.Prompt = ""
		in.Placeholder = placeholders[i]
		in.CharLimit = 256
		if i == int(fCommand) {
			in.CharLimit = 4096
		}
		s := in.Styles()
		s.Cursor.Blink = false // no timer per open form
		in.SetStyles(s)
		f.inputs[i] = in
	}
	f.inputs[fImage].Focus()
	return f
}

// resize fits the inputs into a body width cells wide.
func (f *form) resize(width int) {
	for i := range f.inputs {
		f.inputs[i].SetWidth(max(4, width-formLabelW-4))
	}
}

// formResult is what a key did to the form.
type formResult int

const (
	formKeep formResult = iota
	formSubmit
	formCancel
)

// key handles one key press.
func (f *form) key(msg tea.KeyPressMsg) (formResult, tea.Cmd) {
	if f.submitting {
		return formKeep, nil // one creation at a time; esc waits too
	}
	if f.picking {
		return f.pickKey(msg), nil
	}
	if f.preset != nil {
		switch msg.String() {
		case "tab", "down", "shift+tab", "up":
			return formKeep, nil // the name is the only field
		}
	}
	switch msg.String() {
	case "esc":
		return formCancel, nil
	case "tab", "down":
		f.move(1)
		return formKeep, nil
	case "shift+tab", "up":
		f.move(-1)
		return formKeep, nil
	case "enter":
		for i := range f.touched {
			f.touched[i] = true
		}
		f.validate()
		for i, e := range f.errs {
			if e != "" {
				f.setFocus(field(i))
				return formKeep, nil
			}
		}
		f.submitting = true
		return formSubmit, nil
	}
	before := f.inputs[f.focus].Value()
	var cmd tea.Cmd
	f.inputs[f.focus], cmd = f.inputs[f.focus].Update(msg)
	if f.inputs[f.focus].Value() != before {
		f.touched[f.focus] = true
	}
	f.validate()
	return formKeep, cmd
}

// setPresets offers ps before the fields, when there are any.
func (f *form) setPresets(ps []docker.Preset) {
	f.presets = ps
	f.picking = len(ps) > 0
}

// pickKey handles a key while the presets are offered.
func (f *form) pickKey(msg tea.KeyPressMsg) formResult {
	switch msg.String() {
	case "esc":
		return formCancel
	case "up", "k", "shift+tab":
		f.pick = (f.pick + len(f.presets)) % (len(f.presets) + 1)
	case "down", "j", "tab":
		f.pick = (f.pick + 1) % (len(f.presets) + 1)
	case "enter":
		f.picking = false
		if f.pick < len(f.presets) {
			f.preset = &f.presets[f.pick]
			f.setFocus(fName)
		}
	}
	return formKeep
}

// presetRun is the preset and name to run, when a preset was chosen and the name is valid.
func (f *form) presetRun() (preset, name string, ok bool) {
	if f.preset == nil {
		return "", "", false
	}
	_, errs := f.parse()
	return f.preset.Name, strings.TrimSpace(f.inputs[fName].Value()), errs[fName] == ""
}

func (f *form) move(d int) {
	f.touched[f.focus] = f.touched[f.focus] || f.inputs[f.focus].Value() != ""
	f.setFocus(field((int(f.focus) + d + int(numFields)) % int(numFields)))
	f.validate()
}

func (f *form) setFocus(to field) {
	f.inputs[f.focus].Blur()
	f.focus = to
	f.inputs[to].Focus()
}

// validate checks every field; errors show for fields the user has touched.
func (f *form) validate() {
	_, errs := f.parse()
	for i := range errs {
		if !f.touched[i] {
			errs[i] = ""
		}
	}
	f.errs = errs
}

// spec is the RunSpec of a valid form.
func (f *form) spec() (docker.RunSpec, bool) {
	s, errs := f.parse()
	for _, e := range errs {
		if e != "" {
			return docker.RunSpec{}, false
		}
	}
	return s, true
}

// parse turns the fields into a RunSpec and one error per field ("" when fine).
func (f *form) parse() (docker.RunSpec, [numFields]string) {
	var errs [numFields]string
	var spec docker.RunSpec
	val := func(i field) string { return strings.TrimSpace(f.inputs[i].Value()) }
	if f.preset != nil {
		if v := val(fName); v != "" {
			if err := docker.ValidateName(v); err != nil {
				errs[fName] = err.Error()
			}
		}
		return spec, errs
	}

	if v := val(fImage); v == "" {
		errs[fImage] = "an image is required, e.g. ubuntu:24.04"
	} else if img, err := docker.ParseImage(v); err != nil {
		errs[fImage] = err.Error()
	} else {
		spec.Image = img
	}
	if v := val(fName); v != "" {
		if err := docker.ValidateName(v); err != nil {
			errs[fName] = err.Error()
		} else {
			spec.Name = v
		}
	}
	if v := val(fCommand); v != "" {
		cmd, err := splitCommand(v)
		if err != nil {
			errs[fCommand] = err.Error()
		} else {
			spec.Cmd = cmd
		}
	}
	if v := val(fCPUs); v != "" {
		c, err := parseCPUs(v, f.limits.maxCPUs)
		if err != nil {
			errs[fCPUs] = err.Error()
		} else {
			spec.CPUs = c
		}
	}
	if v := val(fMemory); v != "" {
		m, err := parseMemory(v, f.limits.maxMem)
		if err != nil {
			errs[fMemory] = err.Error()
		} else {
			spec.Memory = m
		}
	}
	if v := val(fGPUs); v != "" {
		if _, _, err := docker.ParseGPUs(v); err != nil {
			errs[fGPUs] = err.Error()
		} else {
			spec.GPUs = v
		}
	}
	switch wait, ok := f.wait(); {
	case !ok:
		errs[fWait] = "y to wait for the GPUs, n (or nothing) not to"
	case wait && val(fGPUs) == "":
		errs[fWait] = "waiting is for GPUs: give the GPUs above"
	}
	return spec, errs
}

// wait is the wait field: yes, and whether it reads as yes or no at all.
func (f *form) wait() (yes, ok bool) {
	switch strings.ToLower(strings.TrimSpace(f.inputs[fWait].Value())) {
	case "", "n", "no":
		return false, true
	case "y", "yes":
		return true, true
	}
	return false, false
}

// parseCPUs reads a CPU limit such as "2" or "0.5", at most maxCPUs.
func parseCPUs(s string, maxCPUs float64) (float64, error) {
	c, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(c) || math.IsInf(c, 0) {
		return 0, fmt.Errorf("CPUs %q is not a number such as 0.5 or 2", s)
	}
	if c < 0.01 {
		return 0, fmt.Errorf("CPUs must be at least 0.01")
	}
	if maxCPUs > 0 && c > maxCPUs {
		return 0, fmt.Errorf("at most %s CPUs per container (quota)", format.CPUs(maxCPUs))
	}
	return c, nil
}

// parseMemory reads a memory limit such as "512m" or "2g", at least 6 MiB and at most maxMem.
func parseMemory(s string, maxMem int64) (int64, error) {
	m, err := units.RAMInBytes(s)
	if err != nil || m <= 0 {
		return 0, fmt.Errorf("memory %q is not a size such as 512m or 2g", s)
	}
	if m < minMemory {
		return 0, fmt.Errorf("memory must be at least %s", format.Bytes(minMemory))
	}
	if maxMem > 0 && m > maxMem {
		return 0, fmt.Errorf("at most %s memory per container (quota)", format.Bytes(maxMem))
	}
	return m, nil
}

// splitCommand splits a command line the way a shell would split words: spaces separate,
// '...' keeps everything, "..." keeps everything but \" and \\, a backslash outside quotes
// keeps the next character. Nothing is expanded.
func splitCommand(s string) ([]string, error) {
	var (
		args  []string
		cur   strings.Builder
		inArg bool
		quote rune
		esc   bool
	)
	for _, r := range s {
		switch {
		case esc:
			if quote == '"' && r != '"' && r != '\\' {
				cur.WriteRune('\\')
			}
			cur.WriteRune(r)
			esc = false
		case quote == '\'':
			if r == '\'' {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case quote == '"':
			switch r {
			case '"':
				quote = 0
			case '\\':
				esc = true
			default:
				cur.WriteRune(r)
			}
		case r == '\\':
			esc, inArg = true, true
		case r == '\'' || r == '"':
			quote, inArg = r, true
		case r == ' ' || r == '\t':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			cur.WriteRune(r)
			inArg = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("command has an unterminated %c quote", quote)
	}
	if esc {
		return nil, errors.New("command ends with a lone backslash")
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args, nil
}

// renderForm draws the form: one line per field with its error (if any) on the line
// below, then the quota line and, while creating, a note.
func renderForm(st dashboard.Styles, f *form, quotaLine string, width int) []string {
	lines := []string{dashboard.RuleLine(st, "New container", width)}
	const labelW = formLabelW
	if f.picking {
		lines = append(lines, st.Dim.Render(ansi.Truncate("  Your course's presets (j/k choose, enter takes it):", width, "…")))
		for i := range len(f.presets) + 1 {
			text := "custom container: image, command and limits of your own"
			if i < len(f.presets) {
				text = presetLine(f.presets[i])
			}
			mark := "  "
			if i == f.pick {
				mark = "▸ "
			}
			line := ansi.Truncate(mark+termsafe.Line(text), width, "…")
			if i == f.pick {
				line = st.Key.Render(line)
			}
			lines = append(lines, line)
		}
		if quotaLine != "" {
			lines = append(lines, "", st.Dim.Render(ansi.Truncate("  "+quotaLine, width, "…")))
		}
		return lines
	}
	if p := f.preset; p != nil {
		lines = append(lines, ansi.Truncate(fmt.Sprintf("  %-*s", labelW, "preset")+termsafe.Line(presetLine(*p)), width, "…"))
	}
	for i := range f.inputs {
		if f.preset != nil && field(i) != fName {
			continue
		}
		label := fmt.Sprintf("  %-*s", labelW, fieldLabels[i])
		if field(i) == f.focus {
			label = fmt.Sprintf("▸ %-*s", labelW, fieldLabels[i])
			label = st.Key.Render(label)
		} else {
			label = st.KeyDesc.Render(label)
		}
		lines = append(lines, ansi.Truncate(label+f.inputs[i].View(), width, "…"))
		if e := f.errs[i]; e != "" {
			msg := strings.Repeat(" ", labelW+2) + "✗ " + termsafe.Line(e)
			lines = append(lines, st.Failed.Render(ansi.Truncate(msg, width, "…")))
		}
	}
	lines = append(lines, "")
	if quotaLine != "" {
		lines = append(lines, st.Dim.Render(ansi.Truncate("  "+quotaLine, width, "…")))
	}
	if f.shared != "" {
		lines = append(lines, st.Dim.Render(ansi.Truncate("  "+termsafe.Line(f.shared), width, "…")))
	}
	if f.submitting {
		lines = append(lines, st.Status.Render(ansi.Truncate("  creating and starting…", width, "…")))
	}
	return lines
}

// presetLine is one preset as the form offers it: "lab · Python for the lab · python:3.12 ·
// 2 CPUs, 4.0 GiB, 1 GPU".
func presetLine(p docker.Preset) string {
	parts := []string{p.Name}
	if p.Description != "" {
		parts = append(parts, p.Description)
	}
	parts = append(parts, p.Image)
	var lim []string
	if p.CPUs > 0 {
		lim = append(lim, format.CPUs(p.CPUs)+" CPUs")
	}
	if p.Memory > 0 {
		lim = append(lim, format.Bytes(p.Memory))
	}
	if p.GPUs != "" {
		lim = append(lim, "GPUs "+p.GPUs)
	}
	if len(lim) > 0 {
		parts = append(parts, strings.Join(lim, ", "))
	}
	return strings.Join(parts, " · ")
}

// quotaText is the user's quota line: "quota: 2 of 5 containers, 1 of 3 running · up to 2
// CPUs and 4.0 GiB each".
func quotaText(q docker.Quota, have, running int) string {
	if q.MaxContainers <= 0 {
		return fmt.Sprintf("you have %d containers, %d running", have, running)
	}
	return fmt.Sprintf("quota: %d of %d containers, %d of %d running · up to %s CPUs and %s each",
		have, q.MaxContainers, running, q.MaxRunning, format.CPUs(q.MaxCPUs), format.Bytes(q.MaxMemory))
}
