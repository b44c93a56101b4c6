package dashboard

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	"charm.land/bubbles/v2/key"
	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"
)

func plain(s string) string { return ansi.Strip(s) }

func TestRenderHeader(t *testing.T) {
	st := DefaultStyles()
	cases := []struct {
		name  string
		info  Info
		width int
		want  string
	}{
		{"fits", Info{Server: "gpu1", User: "alice", Role: "student"}, 40,
			" WhaleMountain · gpu1   alice (student) "},
		{"no server", Info{User: "bob", Role: "ta"}, 30,
			" WhaleMountain       bob (ta) "},
		{"narrow", Info{Server: "gpu1.ie.example", User: "alice", Role: "student"}, 20,
			" WhaleMountain · gp…"},
		{"escape in name", Info{Server: "x\x1b[2J", User: "a", Role: "ta"}, 30,
			` WhaleMountain · x\x1b[2J a (…`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := plain(renderHeader(st, c.info, c.width))
			if got != c.want {
				t.Errorf("got  %q\nwant %q", got, c.want)
			}
			if w := ansi.StringWidth(got); w > c.width {
				t.Errorf("width %d > %d", w, c.width)
			}
		})
	}
}

func TestRenderTabs(t *testing.T) {
	st := DefaultStyles()
	titles := []string{"Containers", "Images", "GPUs"}
	got := plain(renderTabs(st, titles, 1, 50))
	want := "─[1 Containers]──[2 Images]──[3 GPUs]──" + strings.Repeat("─", 50-39)
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// Too narrow: tabs that do not fit are left out, the line never overflows.
	got = plain(renderTabs(st, titles, 0, 20))
	if ansi.StringWidth(got) != 20 || !strings.Contains(got, "[1 Containers]") || strings.Contains(got, "Images") {
		t.Errorf("narrow: %q", got)
	}
}

func TestFit(t *testing.T) {
	got := fit("a\nbbbbbbbb\nc\nd", 4, 3)
	if want := "a\nbbb…\nc"; got != want {
		t.Errorf("fit = %q, want %q", got, want)
	}
	if got := fit("x", 3, 3); got != "x\n\n" {
		t.Errorf("fit pads: %q", got)
	}
}

func press(s string) tea.KeyPressMsg {
	switch s {
	case "tab":
		return tea.KeyPressMsg{Code: tea.KeyTab}
	case "shift+tab":
		return tea.KeyPressMsg{Code: tea.KeyTab, Mod: tea.ModShift}
	case "ctrl+c":
		return tea.KeyPressMsg{Code: 'c', Mod: tea.ModCtrl}
	}
	r := []rune(s)[0]
	return tea.KeyPressMsg{Code: r, Text: s}
}

func newTestModel() *Model {
	st := DefaultStyles()
	return New(Info{Server: "srv", User: "alice", Role: "student"}, st,
		Notice{Name: "Containers", Line: "no containers here", Styles: st},
		Notice{Name: "Images", Line: "no images here", Styles: st},
		Notice{Name: "GPUs", Line: "no GPUs here", Styles: st},
	)
}

func TestModelKeys(t *testing.T) {
	m := newTestModel()
	steps := []struct {
		key    string
		active int
		quit   bool
	}{
		{"tab", 1, false},
		{"tab", 2, false},
		{"tab", 0, false},
		{"shift+tab", 2, false},
		{"1", 0, false},
		{"3", 2, false},
		{"9", 2, false}, // no ninth tab: nothing happens
		{"q", 2, true},
	}
	for _, s := range steps {
		_, cmd := m.Update(press(s.key))
		if m.Active() != s.active {
			t.Fatalf("after %q: active %d, want %d", s.key, m.Active(), s.active)
		}
		quit := cmd != nil && isQuit(cmd())
		if quit != s.quit || m.Leaving() != s.quit {
			t.Fatalf("after %q: quit=%v leaving=%v, want %v", s.key, quit, m.Leaving(), s.quit)
		}
	}
}

func isQuit(msg tea.Msg) bool { _, ok := msg.(tea.QuitMsg); return ok }

func TestModelHelpAndView(t *testing.T) {
	m := newTestModel()
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	screen := plain(m.View().Content)
	lines := strings.Split(screen, "\n")
	if len(lines) != 24 {
		t.Fatalf("screen has %d lines, want 24", len(lines))
	}
	for i, l := range lines {
		if w := ansi.StringWidth(l); w > 80 {
			t.Fatalf("line %d is %d wide: %q", i, w, l)
		}
	}
	for _, want := range []string{"WhaleMountain · srv", "alice (student)", "[1 Containers]", "[3 GPUs]", "no containers here", "? help", "q quit"} {
		if !strings.Contains(screen, want) {
			t.Errorf("screen lacks %q:\n%s", want, screen)
		}
	}
	m.Update(press("?"))
	screen = plain(m.View().Content)
	for _, want := range []string{"Everywhere", "go to tab", "next tab", "quit", "any key closes this help"} {
		if !strings.Contains(screen, want) {
			t.Errorf("help lacks %q:\n%s", want, screen)
		}
	}
	m.Update(press("x")) // any key closes help
	if strings.Contains(plain(m.View().Content), "Everywhere") {
		t.Error("help still open after a key")
	}
	m.Update(StatusMsg{Text: "hello\x1b[2J", Err: true})
	if !strings.Contains(plain(m.View().Content), `hello\x1b[2J`) {
		t.Error("status line not shown or not neutralised")
	}
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	if n := len(strings.Split(plain(m.View().Content), "\n")); n != 40 {
		t.Errorf("after resize %d lines, want 40", n)
	}
}

func TestCtrlCQuitsEvenFromHelp(t *testing.T) {
	m := newTestModel()
	m.Update(press("?"))
	_, cmd := m.Update(press("ctrl+c"))
	if cmd == nil || !isQuit(cmd()) {
		t.Fatal("ctrl+c did not quit")
	}
}

// keysTab is a tab with as many keys as a test wants, optionally taking the keys.
type keysTab struct {
	Notice
	keys, full []key.Binding
	capturing  bool
}

func (k keysTab) Keys() []key.Binding           { return k.keys }
func (k keysTab) FullKeys() []key.Binding       { return k.full }
func (k keysTab) Capturing() bool               { return k.capturing }
func (k keysTab) Update(tea.Msg) (Tab, tea.Cmd) { return k, nil }
func (k keysTab) View(width, height int) string { return "" }
func bind(k, desc string) key.Binding           { return key.NewBinding(key.WithKeys(k), key.WithHelp(k, desc)) }
func manyKeys(n int, prefix string) (out []key.Binding) {
	for i := range n {
		out = append(out, bind(fmt.Sprintf("%s%d", prefix, i), "does "+strconv.Itoa(i)))
	}
	return out
}

func lastLine(s string) string {
	ls := strings.Split(plain(s), "\n")
	return ls[len(ls)-1]
}

func TestFooterKeepsQuit(t *testing.T) {
	st := DefaultStyles()
	tab := keysTab{Notice: Notice{Name: "Many", Styles: st}, keys: manyKeys(12, "k")}
	m := New(Info{User: "alice", Role: "student"}, st, tab)
	for _, w := range []int{80, 120, 30} {
		m.Update(tea.WindowSizeMsg{Width: w, Height: 24})
		foot := lastLine(m.View().Content)
		if ansi.StringWidth(foot) > w || !strings.HasSuffix(foot, "q quit ") {
			t.Errorf("at %d columns the footer is %q", w, foot)
		}
		if w >= 40 && !strings.Contains(foot, "? help") {
			t.Errorf("at %d columns the footer lost ? help: %q", w, foot)
		}
		if !strings.Contains(foot, "k0 does") {
			t.Errorf("at %d columns the first key is gone: %q", w, foot)
		}
	}
	// While the tab takes the keys, q types a letter: ctrl+c is what quits, and ? is no help.
	m.tabs[0] = keysTab{Notice: Notice{Name: "Typing", Styles: st}, keys: []key.Binding{bind("enter", "create")}, capturing: true}
	m.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	foot := lastLine(m.View().Content)
	if !strings.HasSuffix(foot, "ctrl+c quit ") || strings.Contains(foot, "? help") || !strings.Contains(foot, "enter create") {
		t.Errorf("capturing footer %q", foot)
	}
}

func TestHelpFitsWithManyKeys(t *testing.T) {
	st := DefaultStyles()
	tab := keysTab{Notice: Notice{Name: "Many", Styles: st}, keys: manyKeys(3, "k"), full: manyKeys(30, "f")}
	m := New(Info{User: "alice", Role: "student"}, st, tab)
	for _, size := range [][2]int{{80, 24}, {120, 40}} {
		m.Update(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		m.Update(press("?"))
		screen := plain(m.View().Content)
		m.Update(press("x"))
		lines := strings.Split(screen, "\n")
		if len(lines) != size[1] {
			t.Fatalf("%dx%d: %d lines", size[0], size[1], len(lines))
		}
		for i, l := range lines {
			if ansi.StringWidth(l) > size[0] {
				t.Errorf("%dx%d: line %d is %d wide", size[0], size[1], i, ansi.StringWidth(l))
			}
		}
		// Every key of the full list, the root's keys, the box's closing line and bottom border.
		for _, want := range []string{"f0 ", "f29 ", "go to tab", "ctrl+c", "any key closes this help", "╮", "╯"} {
			if !strings.Contains(screen, want) {
				t.Errorf("%dx%d: help lacks %q:\n%s", size[0], size[1], want, screen)
			}
		}
		if strings.Contains(screen, "k0 does") && !strings.Contains(screen, "f0 ") {
			t.Error("help shows the footer's keys instead of the full list")
		}
	}
}

func TestStatusGoesWithNextKeyAndErrorsExpire(t *testing.T) {
	m := newTestModel()
	status := func() string { return strings.Split(plain(m.View().Content), "\n")[22] }
	if _, cmd := m.Update(StatusMsg{Text: "box: stopped"}); cmd != nil {
		t.Error("an info line schedules an expiry")
	}
	if !strings.Contains(status(), "box: stopped") {
		t.Fatalf("status not shown: %q", status())
	}
	m.Update(press("2"))
	if status() != "" {
		t.Errorf("status still shown after a key: %q", status())
	}

	_, cmd := m.Update(StatusMsg{Text: "stop box: engine said no", Err: true})
	if cmd == nil {
		t.Fatal("an error line schedules no expiry")
	}
	expire := statusExpiredMsg{seq: m.statusN}
	// A newer line is not taken away by the older one's expiry.
	m.Update(StatusMsg{Text: "second error", Err: true})
	m.Update(expire)
	if !strings.Contains(status(), "second error") {
		t.Errorf("the first line's expiry took the second: %q", status())
	}
	m.Update(statusExpiredMsg{seq: m.statusN})
	if status() != "" {
		t.Errorf("error line still shown after it expired: %q", status())
	}
}

func TestOpenHelpFromATabThatTakesTheKeys(t *testing.T) {
	st := DefaultStyles()
	m := New(Info{User: "alice", Role: "student"}, st, keysTab{Notice: Notice{Name: "Logs", Styles: st},
		keys: []key.Binding{bind("esc", "back")}, full: manyKeys(3, "f"), capturing: true})
	m.Update(press("?")) // the tab takes it
	if strings.Contains(plain(m.View().Content), "Everywhere") {
		t.Fatal("? opened the help although the tab takes the keys")
	}
	m.Update(OpenHelp())
	if !strings.Contains(plain(m.View().Content), "f2 ") {
		t.Errorf("OpenHelp did not open the help with the tab's keys:\n%s", plain(m.View().Content))
	}
}
