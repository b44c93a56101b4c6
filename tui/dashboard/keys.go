package dashboard

import "charm.land/bubbles/v2/key"

// Keys every tab words the same way: moving through a list and answering a question.

// NavKeys move through a list or a page; every tab's help lists them.
type NavKeys struct {
	Up, Down, Top, Bottom, PageUp, PageDown key.Binding
}

// DefaultNavKeys are j/k and the arrows, g/G, page up and down.
func DefaultNavKeys() NavKeys {
	b := func(keys []string, help, desc string) key.Binding {
		return key.NewBinding(key.WithKeys(keys...), key.WithHelp(help, desc))
	}
	return NavKeys{
		Up:       b([]string{"k", "up"}, "k/↑", "up"),
		Down:     b([]string{"j", "down"}, "j/↓", "down"),
		Top:      b([]string{"g", "home"}, "g", "first"),
		Bottom:   b([]string{"G", "end"}, "G", "last"),
		PageUp:   b([]string{"pgup", "ctrl+u"}, "pgup", "page up"),
		PageDown: b([]string{"pgdown", "ctrl+d"}, "pgdn", "page down"),
	}
}

// All is every binding, for the help overlay.
func (n NavKeys) All() []key.Binding {
	return []key.Binding{n.Up, n.Down, n.Top, n.Bottom, n.PageUp, n.PageDown}
}

// ConfirmKeys answer a yes/no question: y says yes; n, N, esc (and any other key) say no.
type ConfirmKeys struct {
	Yes, No key.Binding
}

// DefaultConfirmKeys are "y yes" and "n no".
func DefaultConfirmKeys() ConfirmKeys {
	return ConfirmKeys{
		Yes: key.NewBinding(key.WithKeys("y", "Y"), key.WithHelp("y", "yes")),
		No:  key.NewBinding(key.WithKeys("n", "N", "esc"), key.WithHelp("n", "no")),
	}
}

// All is the two bindings, for the footer.
func (c ConfirmKeys) All() []key.Binding { return []key.Binding{c.Yes, c.No} }
