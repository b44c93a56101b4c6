package dashboard

import (
	"context"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"

	"whalemountain/backend"
)

// Tab is one page of the dashboard. The root model owns switching, the header, the footer and
// the help overlay; a tab renders its own body into the space it is given.
type Tab interface {
	// Title is the tab's name in the tab bar.
	Title() string
	// Init starts the tab's background work (subscriptions, first load).
	Init() tea.Cmd
	// Update handles a message. Key presses reach only the active tab; other messages reach
	// every tab.
	Update(msg tea.Msg) (Tab, tea.Cmd)
	// View renders the body in exactly width x height cells at most.
	View(width, height int) string
	// Keys lists the bindings the footer shows for what is on screen: the few that matter
	// most, the same at every width; beside "? help" and "q quit" they fit 80 columns.
	// The help overlay lists them too, after FullKeys when the tab has more.
	Keys() []key.Binding
	// Capturing reports whether the tab is taking text input, so that the root leaves keys
	// such as q, ?, tab and digits to it.
	Capturing() bool
}

// Closer is a tab that holds something (subscriptions, streams, calls in flight) until it is
// closed. The Model owns its tabs: Model.Close closes every Closer, once the program ended.
type Closer interface {
	Close()
}

// Shell is a terminal a tab asks for. The session leaves the dashboard for it and then comes
// back to the tab that asked, on the row Back names: the session never looks inside either.
type Shell struct {
	// Name is what status lines call it: "box", "alice/box", "pod lab".
	Name string
	// Back is the tab's own reference of the row to come back to (Selecter.Select).
	Back string
	// Open starts the process the terminal shows.
	Open func(ctx context.Context, spec backend.ExecSpec) (backend.Execution, error)
}

// ShellFunc asks for a shell; the tab returns its command from Update.
type ShellFunc func(Shell) tea.Cmd

// ShellOpener is a tab that offers shells in what it lists. The session gives it the way
// to ask for one; without SetShell the tab says shells are not available.
type ShellOpener interface {
	SetShell(ShellFunc)
}

// Selecter is a tab that can put its selection on a row again, by the reference it gave
// as Shell.Back.
type Selecter interface {
	Select(ref string)
}

// Shower is a tab that wants to know whether it is on screen, so that it ticks, samples or
// follows readings only while someone can see them. The root calls Show(true) when the tab
// becomes the active one (at Init for the first) and Show(false) when another takes its place.
type Shower interface {
	Show(on bool) tea.Cmd
}

// Filterer is a tab whose list can be filtered from outside (OpenMsg).
type Filterer interface {
	SetFilter(filter string) tea.Cmd
}

// OpenMsg asks the root to make the tab titled Tab the active one and, when it is a
// Filterer, to set its filter first: the Class tab's enter opens a user's containers. The
// tabs titled in Also that are Filterers get the same filter without being opened (that
// user's pods, one key away).
type OpenMsg struct {
	Tab, Filter string
	Also        []string
}

// Open is a command that sends OpenMsg.
func Open(tab, filter string, also ...string) tea.Cmd {
	return func() tea.Msg { return OpenMsg{Tab: tab, Filter: filter, Also: also} }
}

// FullHelper is a tab whose help overlay lists more keys than its footer: moving (j/k),
// paging, closing. FullKeys replaces Keys in the help overlay.
type FullHelper interface {
	FullKeys() []key.Binding
}

// Notice is a tab that only shows one honest line, for features this server does not offer.
type Notice struct {
	Name, Line string
	Styles     Styles
}

func (n Notice) Title() string                 { return n.Name }
func (n Notice) Init() tea.Cmd                 { return nil }
func (n Notice) Update(tea.Msg) (Tab, tea.Cmd) { return n, nil }
func (n Notice) Keys() []key.Binding           { return nil }
func (n Notice) Capturing() bool               { return false }
func (n Notice) View(width, height int) string {
	return n.Styles.Notice.Render(truncate(" "+n.Line, width))
}
