// Package dashboard is the Bubble Tea dashboard a student or TA sees after `ssh -p 2222 host`:
// a header saying who they are, tabs (Containers, Images, GPUs, Pods, Runner; Class for TAs), a status line
// and a help overlay. Tabs are small components; this root model is the only one that
// returns a tea.View.
package dashboard

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"whalemountain/tui/termsafe"
)

// Info is what the header shows.
type Info struct {
	Server string // host name shown after the product name
	User   string
	Role   string
}

// KeyMap holds the root's key bindings.
type KeyMap struct {
	Next, Prev, Help, Quit key.Binding
	Dismiss                key.Binding // closes the banner of a TA's message
}

// DefaultKeyMap is the root's bindings.
func DefaultKeyMap() KeyMap {
	return KeyMap{
		Next:    key.NewBinding(key.WithKeys("tab", "right"), key.WithHelp("tab", "next tab")),
		Prev:    key.NewBinding(key.WithKeys("shift+tab", "left"), key.WithHelp("shift+tab", "previous tab")),
		Help:    key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:    key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
		Dismiss: key.NewBinding(key.WithKeys("x"), key.WithHelp("x", "dismiss message")),
	}
}

// StatusMsg sets the status line; Err marks it as an error. The line goes with the next
// key press; an error line also by itself after ErrorFor.
type StatusMsg struct {
	Text string
	Err  bool
}

// WallMsg is a message a TA sent to everyone: the dashboard shows it in a banner above the
// tab until the user dismisses it (x).
type WallMsg struct {
	From, Role string
	Text       string
	At         time.Time
}

// Wall is a command that shows a TA's message in the banner.
func Wall(m WallMsg) tea.Cmd { return func() tea.Msg { return m } }

// ErrorFor is how long an error stays in the status line when no key is pressed.
const ErrorFor = 10 * time.Second

// statusExpiredMsg ends the error line with that sequence number, if it still shows.
type statusExpiredMsg struct{ seq int }

// helpMsg opens the help overlay.
type helpMsg struct{}

// OpenHelp is a command that opens the help overlay, for a tab that takes the keys (a log
// viewer) but leaves "?" to the help.
func OpenHelp() tea.Msg { return helpMsg{} }

// Status is a command that sets the status line.
func Status(text string, isErr bool) tea.Cmd {
	return func() tea.Msg { return StatusMsg{Text: text, Err: isErr} }
}

// ErrorStatus is a command that shows err in the status line as one clean error line.
func ErrorStatus(err error) tea.Cmd { return Status(termsafe.Line(err.Error()), true) }

// Model is the root of the dashboard.
type Model struct {
	info    Info
	tabs    []Tab
	active  int
	width   int
	height  int
	help    bool
	status  StatusMsg
	statusN int // counts status lines, so that only the current one expires
	leaving bool
	walls   []WallMsg // TAs' messages not yet dismissed, oldest first
	styles  Styles
	keys    KeyMap
}

// New builds the dashboard with the given tabs (at least one).
func New(info Info, styles Styles, tabs ...Tab) *Model {
	return &Model{info: info, tabs: tabs, styles: styles, keys: DefaultKeyMap(), width: 80, height: 24}
}

// Leaving reports whether the model has handed the terminal on (see input.Leaver).
func (m *Model) Leaving() bool { return m.leaving }

// Active is the index of the active tab.
func (m *Model) Active() int { return m.active }

// SetActive makes tab i active before the program runs (e.g. when coming back from a shell);
// Init tells it that it is on screen.
func (m *Model) SetActive(i int) {
	if i >= 0 && i < len(m.tabs) {
		m.active = i
	}
}

// HandOff marks the model as leaving so that the terminal can go to someone else (a shell):
// from now on no input is consumed by the dashboard. The caller also returns tea.Quit.
func (m *Model) HandOff() { m.leaving = true }

// Close releases what the tabs hold (subscriptions, streams); call it once the program
// has ended.
func (m *Model) Close() {
	for _, t := range m.tabs {
		if c, ok := t.(Closer); ok {
			c.Close()
		}
	}
}

// SetShell gives every tab that offers shells the way to ask for one.
func (m *Model) SetShell(fn ShellFunc) {
	for _, t := range m.tabs {
		if s, ok := t.(ShellOpener); ok {
			s.SetShell(fn)
		}
	}
}

// Select puts the selection of tab i on the row ref, when the tab can.
func (m *Model) Select(i int, ref string) {
	if i >= 0 && i < len(m.tabs) {
		if s, ok := m.tabs[i].(Selecter); ok {
			s.Select(ref)
		}
	}
}

// Init starts every tab and tells the active one it is on screen.
func (m *Model) Init() tea.Cmd {
	cmds := make([]tea.Cmd, 0, len(m.tabs)+1)
	for _, t := range m.tabs {
		cmds = append(cmds, t.Init())
	}
	cmds = append(cmds, show(m.tabs[m.active], true))
	return tea.Batch(cmds...)
}

// show tells t, when it wants to know, whether it is on screen.
func show(t Tab, on bool) tea.Cmd {
	if s, ok := t.(Shower); ok {
		return s.Show(on)
	}
	return nil
}

// switchTo makes tab i the active one, telling the tab that leaves and the one that comes.
func (m *Model) switchTo(i int) tea.Cmd {
	if i == m.active {
		return nil
	}
	old := m.active
	m.active = i
	return tea.Batch(show(m.tabs[old], false), show(m.tabs[i], true))
}

// Update routes messages: window size and status to the root, keys to the root then the
// active tab, everything else to every tab.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		return m, nil
	case StatusMsg:
		m.status = msg
		m.statusN++
		if !msg.Err || msg.Text == "" {
			return m, nil
		}
		n := m.statusN
		return m, tea.Tick(ErrorFor, func(time.Time) tea.Msg { return statusExpiredMsg{seq: n} })
	case statusExpiredMsg:
		if msg.seq == m.statusN {
			m.status = StatusMsg{}
		}
		return m, nil
	case helpMsg:
		m.help = true
		return m, nil
	case WallMsg:
		m.walls = append(m.walls, msg)
		if len(m.walls) > 5 {
			m.walls = m.walls[len(m.walls)-5:]
		}
		return m, nil
	case OpenMsg:
		return m, m.open(msg)
	case tea.KeyPressMsg:
		return m.key(msg)
	}
	var cmds []tea.Cmd
	for i, t := range m.tabs {
		nt, cmd := t.Update(msg)
		m.tabs[i] = nt
		cmds = append(cmds, cmd)
	}
	return m, tea.Batch(cmds...)
}

// open switches to the tab titled msg.Tab, its filter set first; nothing when there is none.
// The tabs titled in msg.Also get the same filter and stay where they are.
func (m *Model) open(msg OpenMsg) tea.Cmd {
	var also []tea.Cmd
	for _, t := range m.tabs {
		if f, ok := t.(Filterer); ok && slices.Contains(msg.Also, t.Title()) && t.Title() != msg.Tab {
			also = append(also, f.SetFilter(msg.Filter))
		}
	}
	for i, t := range m.tabs {
		if t.Title() != msg.Tab {
			continue
		}
		var cmd tea.Cmd
		if f, ok := t.(Filterer); ok {
			cmd = f.SetFilter(msg.Filter)
		}
		return tea.Batch(append(also, cmd, m.switchTo(i))...)
	}
	return tea.Batch(also...)
}

func (m *Model) key(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	// A key is the next action: what the status line said is over.
	m.status = StatusMsg{}
	if msg.String() == "ctrl+c" {
		m.leaving = true
		return m, tea.Quit
	}
	if m.help {
		// Any key closes the overlay; q still quits.
		m.help = false
		if key.Matches(msg, m.keys.Quit) {
			m.leaving = true
			return m, tea.Quit
		}
		return m, nil
	}
	tab := m.tabs[m.active]
	if !tab.Capturing() {
		switch {
		case key.Matches(msg, m.keys.Quit):
			m.leaving = true
			return m, tea.Quit
		case key.Matches(msg, m.keys.Help):
			m.help = true
			return m, nil
		case len(m.walls) > 0 && key.Matches(msg, m.keys.Dismiss):
			m.walls = m.walls[1:]
			return m, nil
		case key.Matches(msg, m.keys.Next):
			return m, m.switchTo((m.active + 1) % len(m.tabs))
		case key.Matches(msg, m.keys.Prev):
			return m, m.switchTo((m.active + len(m.tabs) - 1) % len(m.tabs))
		}
		if s := msg.String(); len(s) == 1 && s[0] >= '1' && s[0] <= '9' {
			if i := int(s[0] - '1'); i < len(m.tabs) {
				return m, m.switchTo(i)
			}
		}
	}
	nt, cmd := tab.Update(msg)
	m.tabs[m.active] = nt
	return m, cmd
}

// View renders the whole screen.
func (m *Model) View() tea.View {
	v := tea.NewView(m.render())
	v.AltScreen = true
	v.WindowTitle = "WhaleMountain"
	return v
}

func (m *Model) render() string {
	w, h := max(m.width, 20), max(m.height, 6)
	header := renderHeader(m.styles, m.info, w)
	titles := make([]string, len(m.tabs))
	for i, t := range m.tabs {
		titles[i] = t.Title()
	}
	tabs := renderTabs(m.styles, titles, m.active, w)
	footer := m.renderFooter(w)
	status := m.renderStatus(w)
	bodyH := h - 4 // header, tabs, status, footer
	banner := m.renderBanner(w)
	if banner != "" {
		bodyH--
	}
	var body string
	if m.help {
		body = m.renderHelp(w, bodyH)
	} else {
		body = m.tabs[m.active].View(w, bodyH)
	}
	body = fit(body, w, bodyH)
	if banner != "" {
		return strings.Join([]string{header, tabs, banner, body, status, footer}, "\n")
	}
	return strings.Join([]string{header, tabs, body, status, footer}, "\n")
}

// Walls is the number of TAs' messages waiting to be dismissed.
func (m *Model) Walls() int { return len(m.walls) }

// renderBanner is the oldest TA message not yet dismissed, in one line with the key that
// closes it: " Message from tina (TA) 14:02: the server restarts at 18:00 · x dismiss".
func (m *Model) renderBanner(width int) string {
	if len(m.walls) == 0 {
		return ""
	}
	wm := m.walls[0]
	from := termsafe.Line(wm.From)
	if wm.Role == "ta" {
		from += " (TA)"
	}
	at := ""
	if !wm.At.IsZero() {
		at = " " + wm.At.Local().Format("15:04")
	}
	more := ""
	if len(m.walls) > 1 {
		more = fmt.Sprintf(" (+%d)", len(m.walls)-1)
	}
	tail := "  x dismiss" + more + " "
	text := truncate(" Message from "+from+at+": "+termsafe.Line(wm.Text), max(1, width-ansi.StringWidth(tail)))
	pad := max(0, width-ansi.StringWidth(text)-ansi.StringWidth(tail))
	return m.styles.Banner.Render(text + strings.Repeat(" ", pad) + tail)
}

// renderHeader is " WhaleMountain · server" on the left and "user (role)" on the right.
func renderHeader(st Styles, info Info, width int) string {
	left := " WhaleMountain"
	if info.Server != "" {
		left += " · " + termsafe.Line(info.Server)
	}
	right := fmt.Sprintf("%s (%s) ", termsafe.Line(info.User), termsafe.Line(info.Role))
	gap := width - lipgloss.Width(left) - lipgloss.Width(right)
	if gap < 1 {
		return st.Header.Render(truncate(left+" "+right, width))
	}
	return st.Header.Render(left) + strings.Repeat(" ", gap) + st.HeaderDim.Render(right)
}

// renderTabs is the tab bar: ─[1 Containers]──[2 Images]─… with the active tab highlighted,
// padded with a rule to the full width.
func renderTabs(st Styles, titles []string, active, width int) string {
	var b strings.Builder
	used := 0
	b.WriteString(st.Rule.Render("─"))
	used++
	for i, t := range titles {
		label := "[" + strconv.Itoa(i+1) + " " + t + "]"
		if used+lipgloss.Width(label)+2 > width {
			break
		}
		if i == active {
			b.WriteString(st.TabActive.Render(label))
		} else {
			b.WriteString(st.Tab.Render(label))
		}
		b.WriteString(st.Rule.Render("──"))
		used += lipgloss.Width(label) + 2
	}
	if width > used {
		b.WriteString(st.Rule.Render(strings.Repeat("─", width-used)))
	}
	return b.String()
}

func (m *Model) renderStatus(width int) string {
	if m.status.Text == "" {
		return ""
	}
	line := truncate(" "+termsafe.Line(m.status.Text), width)
	if m.status.Err {
		return m.styles.StatusErr.Render(line)
	}
	return m.styles.Status.Render(line)
}

// renderFooter is the tab's keys and "? help" on the left, "q quit" on the right; while the
// tab takes the keys (typing, a question, logs) "ctrl+c quit" and no "? help". Keys that do
// not fit are left out from the end (the help overlay lists them); quit always shows.
func (m *Model) renderFooter(width int) string {
	tab := m.tabs[m.active]
	quit := m.keys.Quit
	binds := append([]key.Binding{}, tab.Keys()...)
	hasHelp := slices.ContainsFunc(binds, func(b key.Binding) bool { return b.Help().Key == m.keys.Help.Help().Key })
	switch {
	case tab.Capturing() && !m.help:
		quit.SetHelp("ctrl+c", "quit")
	case !hasHelp:
		binds = append(binds, m.keys.Help)
	}
	right := renderKeys(m.styles, []key.Binding{quit}) + " "
	room := width - lipgloss.Width(right) - 1
	left := renderKeys(m.styles, binds)
	for lipgloss.Width(left) > room && len(binds) > 0 {
		drop := len(binds) - 1
		if binds[drop].Help() == m.keys.Help.Help() && drop > 0 {
			drop-- // "? help" stays while anything else can go
		}
		binds = append(binds[:drop], binds[drop+1:]...)
		left = renderKeys(m.styles, binds)
	}
	gap := width - lipgloss.Width(left) - lipgloss.Width(right)
	if gap < 1 {
		return truncate(right, width)
	}
	return left + strings.Repeat(" ", gap) + right
}

func renderKeys(st Styles, binds []key.Binding) string {
	var parts []string
	for _, b := range binds {
		if !b.Enabled() || b.Help().Key == "" {
			continue
		}
		parts = append(parts, st.Key.Render(b.Help().Key)+" "+st.KeyDesc.Render(b.Help().Desc))
	}
	if len(parts) == 0 {
		return ""
	}
	return " " + strings.Join(parts, "  ")
}

// renderHelp is the help overlay: every key of the root and of the active tab, in a box in
// the middle of the body; sections go side by side, and a long one into more columns, when
// they do not fit one above the other.
func (m *Model) renderHelp(width, height int) string {
	section := func(title string, binds []key.Binding) []string {
		lines := []string{m.styles.HelpTitle.Render(title)}
		keyW := 0
		for _, b := range binds {
			keyW = max(keyW, ansi.StringWidth(b.Help().Key))
		}
		for _, b := range binds {
			if k := b.Help().Key; k != "" {
				lines = append(lines, "  "+k+strings.Repeat(" ", keyW-ansi.StringWidth(k)+2)+b.Help().Desc)
			}
		}
		return lines
	}
	tab := m.tabs[m.active]
	tabKeys := tab.Keys()
	if f, ok := tab.(FullHelper); ok {
		tabKeys = f.FullKeys()
	}
	sections := [][]string{section("Everywhere", []key.Binding{
		key.NewBinding(key.WithHelp("1-"+strconv.Itoa(len(m.tabs)), "go to tab")),
		m.keys.Next, m.keys.Prev, m.keys.Help, m.keys.Quit,
		key.NewBinding(key.WithHelp("ctrl+c", "quit, even while typing")),
	})}
	if len(tabKeys) > 0 {
		sections = append(sections, section(tab.Title(), tabKeys))
	}
	closing := m.styles.Dim.Render("any key closes this help")
	// The box's border takes two lines, the closing line and the blank above it two more.
	room := max(2, height-4)
	stacked := []string{}
	for i, sec := range sections {
		if i > 0 {
			stacked = append(stacked, "")
		}
		stacked = append(stacked, sec...)
	}
	var body string
	if len(stacked) <= room {
		body = strings.Join(stacked, "\n")
	} else {
		var cols []string
		var cur []string
		flush := func() {
			if len(cur) > 0 {
				cols = append(cols, strings.Join(cur, "\n"))
				cur = nil
			}
		}
		for _, sec := range sections {
			if len(cur)+len(sec) > room {
				flush()
			}
			for len(sec) > room { // a long section goes on in the next column
				cols = append(cols, strings.Join(sec[:room], "\n"))
				sec = append([]string{""}, sec[room:]...)
			}
			cur = append(cur, sec...)
		}
		flush()
		// Too wide for the window: the columns share its width, long lines cut.
		colW := max(8, (width-4-3*(len(cols)-1))/len(cols))
		widest := 0
		for _, c := range cols {
			widest += lipgloss.Width(c)
		}
		gapped := make([]string, 0, 2*len(cols))
		for i, c := range cols {
			if i > 0 {
				gapped = append(gapped, "   ")
			}
			if widest+3*(len(cols)-1)+4 > width {
				ls := strings.Split(c, "\n")
				for j := range ls {
					ls[j] = truncate(ls[j], colW)
				}
				c = strings.Join(ls, "\n")
			}
			gapped = append(gapped, c)
		}
		body = lipgloss.JoinHorizontal(lipgloss.Top, gapped...)
	}
	box := m.styles.HelpBox.Render(body + "\n\n" + closing)
	return lipgloss.Place(width, height, lipgloss.Center, lipgloss.Center, box)
}

// truncate cuts s (which may hold styling) to width cells.
func truncate(s string, width int) string {
	if width <= 0 {
		return ""
	}
	return ansi.Truncate(s, width, "…")
}

// fit makes s exactly height lines, each cut to width cells.
func fit(s string, width, height int) string {
	if height <= 0 {
		return ""
	}
	lines := strings.Split(s, "\n")
	if len(lines) > height {
		lines = lines[:height]
	}
	for i, l := range lines {
		lines[i] = truncate(l, width)
	}
	for len(lines) < height {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}
