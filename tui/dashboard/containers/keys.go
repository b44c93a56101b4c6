package containers

import (
	"charm.land/bubbles/v2/key"

	"whalemountain/tui/dashboard"
)

// keyMap holds the tab's key bindings, per page.
type keyMap struct {
	// table
	Up, Down, Top, Bottom, PageUp, PageDown key.Binding
	New, Shell, Logs, StartStop, Restart    key.Binding
	Delete, Filter, Details, Clear          key.Binding
	// confirmation, and the reason asked of a TA acting on someone else's container
	Yes, No, Give, Keep key.Binding
	// form and filter
	Submit, NextField, PrevField, Cancel key.Binding
}

func defaultKeyMap() keyMap {
	b := func(keys []string, help, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	nav, yn := dashboard.DefaultNavKeys(), dashboard.DefaultConfirmKeys()
	return keyMap{
		Up: nav.Up, Down: nav.Down, Top: nav.Top, Bottom: nav.Bottom, PageUp: nav.PageUp, PageDown: nav.PageDown,

		New:       b([]string{"n"}, "n", "new"),
		Shell:     b([]string{"s"}, "s", "shell"),
		Logs:      b([]string{"l"}, "l", "logs"),
		StartStop: b([]string{"S"}, "S", "start/stop"),
		Restart:   b([]string{"r"}, "r", "restart"),
		Delete:    b([]string{"d", "delete"}, "d", "delete"),
		Filter:    b([]string{"/"}, "/", "filter"),
		Details:   b([]string{"enter"}, "enter", "details"),
		Clear:     b([]string{"esc"}, "esc", "clear filter, close details"),

		Yes:  yn.Yes,
		No:   yn.No,
		Give: b([]string{"enter"}, "enter", "do it (the owner is told why)"),
		Keep: b([]string{"esc"}, "esc", "keep it"),

		Submit:    b([]string{"enter"}, "enter", "create"),
		NextField: b([]string{"tab", "down"}, "tab", "next field"),
		PrevField: b([]string{"shift+tab", "up"}, "shift+tab", "previous field"),
		Cancel:    b([]string{"esc"}, "esc", "cancel"),
	}
}

// keysFor is the key map with the actions svc does not have switched off: a disabled
// binding is neither matched nor shown.
func keysFor(svc Lister) keyMap {
	k := defaultKeyMap()
	_, create := svc.(Creator)
	_, start := svc.(Starter)
	_, stop := svc.(Stopper)
	_, restart := svc.(Restarter)
	_, remove := svc.(Remover)
	_, logs := svc.(LogReader)
	_, inspect := svc.(Inspector)
	k.New.SetEnabled(create)
	k.StartStop.SetEnabled(start || stop)
	k.Restart.SetEnabled(restart)
	k.Delete.SetEnabled(remove)
	k.Logs.SetEnabled(logs)
	k.Details.SetEnabled(inspect)
	return k
}
