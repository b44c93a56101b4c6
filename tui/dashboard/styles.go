package dashboard

import (
	"strings"

	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
)

// Marker is put before the selected row of every list; NoMarker before the others.
const (
	Marker   = "▸ "
	NoMarker = "  "
)

// Styles is every style the dashboard uses, in one place. Colour carries state but never
// meaning alone: every state is also a word.
type Styles struct {
	Header     lipgloss.Style
	HeaderDim  lipgloss.Style
	Tab        lipgloss.Style
	TabActive  lipgloss.Style
	Rule       lipgloss.Style
	Status     lipgloss.Style
	StatusErr  lipgloss.Style
	Key        lipgloss.Style
	KeyDesc    lipgloss.Style
	Notice     lipgloss.Style
	HelpBox    lipgloss.Style
	HelpTitle  lipgloss.Style
	Running    lipgloss.Style
	Stopped    lipgloss.Style
	Failed     lipgloss.Style
	Selected   lipgloss.Style
	Dim        lipgloss.Style
	ColumnHead lipgloss.Style
	Banner     lipgloss.Style // a TA's message to everyone
}

// DefaultStyles are the dashboard's styles; the session's colour profile downsamples them.
func DefaultStyles() Styles {
	accent := lipgloss.Color("#5FAFFF")
	grey := lipgloss.Color("#8A8A8A")
	return Styles{
		Header:     lipgloss.NewStyle().Bold(true),
		HeaderDim:  lipgloss.NewStyle().Foreground(grey),
		Tab:        lipgloss.NewStyle().Foreground(grey),
		TabActive:  lipgloss.NewStyle().Bold(true).Foreground(accent),
		Rule:       lipgloss.NewStyle().Foreground(grey),
		Status:     lipgloss.NewStyle().Foreground(grey),
		StatusErr:  lipgloss.NewStyle().Foreground(lipgloss.Color("#FF5F5F")),
		Key:        lipgloss.NewStyle().Bold(true),
		KeyDesc:    lipgloss.NewStyle().Foreground(grey),
		Notice:     lipgloss.NewStyle().Foreground(grey).Italic(true),
		HelpBox:    lipgloss.NewStyle().Border(lipgloss.RoundedBorder()).BorderForeground(accent).Padding(0, 1),
		HelpTitle:  lipgloss.NewStyle().Bold(true).Foreground(accent),
		Running:    lipgloss.NewStyle().Foreground(lipgloss.Color("#5FD75F")),
		Stopped:    lipgloss.NewStyle().Foreground(grey),
		Failed:     lipgloss.NewStyle().Foreground(lipgloss.Color("#FF5F5F")),
		Selected:   lipgloss.NewStyle().Reverse(true),
		Dim:        lipgloss.NewStyle().Foreground(grey),
		ColumnHead: lipgloss.NewStyle().Bold(true),
		Banner:     lipgloss.NewStyle().Bold(true).Reverse(true),
	}
}

// Question is a yes/no question as every tab asks it, in one line of width cells:
// " remove box? y/N"; a long question is cut, never its "y/N". The question must be
// neutralised already.
func (st Styles) Question(question string, width int) string {
	const answers = " y/N"
	line := ansi.Truncate(" "+question, max(0, width-len(answers)), "…") + answers
	return st.Failed.Bold(true).Render(ansi.Truncate(line, width, ""))
}

// SelectedRow draws a selected row: the marker, the row, the highlight across width.
// row is plain text; it is cut to fit.
func (st Styles) SelectedRow(row string, width int) string {
	line := ansi.Truncate(Marker+row, width, "…")
	return st.Selected.Render(line + strings.Repeat(" ", max(0, width-ansi.StringWidth(line))))
}

// RuleLine is " ─ title ─────" across width: the line above a details pane, a form or a
// log page.
func RuleLine(st Styles, title string, width int) string {
	title = ansi.Truncate(title, max(0, width-4), "…")
	rest := max(0, width-4-ansi.StringWidth(title))
	return st.Rule.Render(" ─ ") + st.Header.Render(title) + " " + st.Rule.Render(strings.Repeat("─", rest))
}
