package containers

import "charm.land/bubbles/v2/key"

// keyMap holds the tab's key bindings, per page.
type keyMap struct {
	// table
	Up, Down, Top, Bottom, PageUp, PageDown key.Binding
	New, Shell, Logs, StartStop, Restart    key.Binding
	Delete, Filter, Details, Clear          key.Binding
	// confirmation
	Yes, No key.Binding
	// form and filter
	Submit, NextField, PrevField, Cancel key.Binding
	// log viewer
	Back, Search, NextMatch, PrevMatch, Wrap, Timestamps, End, Home key.Binding
}

func defaultKeyMap() keyMap {
	b := func(keys []string, help, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	return keyMap{
		Up:       b([]string{"k", "up"}, "k/↑", "up"),
		Down:     b([]string{"j", "down"}, "j/↓", "down"),
		Top:      b([]string{"g", "home"}, "g", "first"),
		Bottom:   b([]string{"G", "end"}, "G", "last"),
		PageUp:   b([]string{"pgup", "ctrl+u"}, "pgup", "page up"),
		PageDown: b([]string{"pgdown", "ctrl+d"}, "pgdn", "page down"),

		New:       b([]string{"n"}, "n", "new"),
		Shell:     b([]string{"s"}, "s", "shell"),
		Logs:      b([]string{"l"}, "l", "logs"),
		StartStop: b([]string{"S"}, "S", "start/stop"),
		Restart:   b([]string{"r"}, "r", "restart"),
		Delete:    b([]string{"d", "delete"}, "d", "delete"),
		Filter:    b([]string{"/"}, "/", "filter"),
		Details:   b([]string{"enter"}, "enter", "details"),
		Clear:     b([]string{"esc"}, "esc", "clear filter"),

		Yes: b([]string{"y", "Y"}, "y", "yes"),
		No:  b([]string{"n", "N", "esc"}, "N", "no"),

		Submit:    b([]string{"enter"}, "enter", "create"),
		NextField: b([]string{"tab", "down"}, "tab", "next field"),
		PrevField: b([]string{"shift+tab", "up"}, "shift+tab", "previous field"),
		Cancel:    b([]string{"esc"}, "esc", "cancel"),

		Back:       b([]string{"esc", "q"}, "esc", "back"),
		Search:     b([]string{"/"}, "/", "search"),
		NextMatch:  b([]string{"n"}, "n/N", "next/previous match"),
		PrevMatch:  b([]string{"N"}, "N", "previous match"),
		Wrap:       b([]string{"w"}, "w", "wrap"),
		Timestamps: b([]string{"t"}, "t", "timestamps"),
		End:        b([]string{"G", "end"}, "G", "end (follow)"),
		Home:       b([]string{"g", "home"}, "g", "start"),
	}
}
