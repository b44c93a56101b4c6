// Package share lets a user show a running shell to TAs: the owner shares it (read-only, or
// read-write when they say so), a TA joins it and sees the same output, live, and types
// into it only while the owner allows. The owner drops any viewer or stops sharing at once;
// sharing ends with the shell. Everyone's terminal title is the status line (who is there,
// in which mode); every share, join, write grant and drop is audited, and joined shells are
// recorded (asciinema cast v2) for their owner.
//
// The hook into a shell is a decorator of its backend.Execution (Hub.Open): a tee of the
// output stream and a multiplexer of the input stream. A viewer that does not keep up is
// dropped; it never holds the owner's shell back.
//
// While a shell is shared a terminal emulator keeps its screen, off the owner's path (see
// mirror): a viewer who joins is first shown the screen as it is (cells, attributes, cursor,
// input modes), then the live output. A viewer whose terminal is larger than the owner's by a
// border sees the owner's screen framed, with whose it is and its size in the frame, redrawn
// from the emulator when it changes (at most 20 times a second); a smaller one gets the
// output as it comes, clipped by its terminal, with a note in its title.
package share

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"whalemountain/backend"
	"whalemountain/backend/recording"
	"whalemountain/tui/input"
)

// Recorder starts recordings (recording.Store).
type Recorder interface {
	Create(owner, what, title string, width, height int, term string) (*recording.Writer, recording.Info, error)
}

var _ Recorder = (*recording.Store)(nil)

// Auditor records what was done (audit.Log).
type Auditor interface {
	ActionNote(id backend.Identity, action, target, result, reason, note string) error
}

// Audit results, as audit.Log writes them.
const (
	resultOK      = "ok"
	resultRefused = "refused"
)

// Errors users see; each reads as one line.
var (
	ErrNoShell   = errors.New("no open shell")
	ErrNotShared = errors.New("no shared shell")
	ErrNotTA     = errors.New("join is for TAs: a shell is shared with TAs only")
	ErrNoWatcher = errors.New("not watching")
)

// Options configure a Hub.
type Options struct {
	Recorder  Recorder // nil: nothing is recorded
	RecordAll bool     // record every shell, not only joined ones
	Audit     Auditor  // nil: nothing is audited
	Logger    *slog.Logger
	// Backlog is how many output chunks a viewer may fall behind before it is dropped;
	// zero: 512.
	Backlog int
	// BacklogBytes is how many bytes of output a viewer may fall behind before it is
	// dropped; zero: 4 MiB.
	BacklogBytes int64
	// Replay is how much recent output draws the screen when sharing starts (and after the
	// emulator fell behind a flood of output); zero: 16 KiB.
	Replay int
	// ScreenQueue is how many bytes of output may wait for the emulator before it starts
	// again from the recent output; zero: 64 KiB.
	ScreenQueue int
}

// Hub is every open shell of the server, shared or not.
type Hub struct {
	opts   Options
	mu     sync.Mutex
	shells []*Shell               // in the order they were opened
	subs   map[chan struct{}]bool // told when a shell is shared or no longer
}

// New makes a hub.
func New(opts Options) *Hub {
	if opts.Backlog <= 0 {
		opts.Backlog = 512
	}
	if opts.BacklogBytes <= 0 {
		opts.BacklogBytes = 4 << 20
	}
	if opts.Replay <= 0 {
		opts.Replay = 16 << 10
	}
	if opts.ScreenQueue <= 0 {
		opts.ScreenQueue = 64 << 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &Hub{opts: opts}
}

// Sharing is who shares a shell with TAs now, for TA id (nobody for anyone else).
func (h *Hub) Sharing(id backend.Identity) map[string]bool {
	out := map[string]bool{}
	if !id.IsTA() {
		return out
	}
	h.mu.Lock()
	shells := slices.Clone(h.shells)
	h.mu.Unlock()
	for _, s := range shells {
		s.mu.Lock()
		if s.shared && !s.closed {
			out[s.owner.User] = true
		}
		s.mu.Unlock()
	}
	return out
}

// SubscribeShares returns a channel that receives when a shell is shared or no longer
// (changes coalesce: one wake-up may stand for several), and the func that lets go of it.
func (h *Hub) SubscribeShares() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	h.mu.Lock()
	if h.subs == nil {
		h.subs = map[chan struct{}]bool{}
	}
	h.subs[ch] = true
	h.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			h.mu.Lock()
			delete(h.subs, ch)
			h.mu.Unlock()
		})
	}
}

// sharesChanged wakes every subscriber that is not already awake.
func (h *Hub) sharesChanged() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// Terminal is the owner's terminal at the start of a shell.
type Terminal struct {
	Term          string
	Width, Height int
}

// Info is one open shell as its owner or a TA lists it.
type Info struct {
	Owner    string    `json:"owner"`
	Name     string    `json:"name"` // the container
	Since    time.Time `json:"since"`
	Shared   bool      `json:"shared"`
	Write    bool      `json:"write"`
	Watchers []string  `json:"watchers"`
	Width    int       `json:"width"`
	Height   int       `json:"height"`
}

// Shell is one open shell: the owner's Execution, decorated.
type Shell struct {
	hub   *Hub
	owner backend.Identity
	name  string
	term  string
	since time.Time
	ex    backend.Execution

	pr *io.PipeReader // what the owner's bridge reads
	pw *io.PipeWriter

	inMu  sync.Mutex // one writer into the process's input at a time
	stdin io.WriteCloser
	keyMu sync.Mutex // guards keys
	keys  escapes    // the owner's keys, watched for the sharing escapes

	wmu sync.Mutex // held while writing to the owner: output and titles stay in order

	mu        sync.Mutex
	shared    bool
	write     bool
	watchers  []*Watcher
	width     int
	height    int
	scr       *mirror // the recent output; the screen while shared
	esc       escState
	dirty     bool // the status lines changed and are due
	titled    bool // the owner's title has been set at least once
	help      bool // the owner asked for the escapes (~H): the next title lists them
	rec       *recording.Writer
	closed    bool
	closeOnce sync.Once
}

var _ backend.Execution = (*Shell)(nil)

// target is how the shell is named in the audit log: "alice/box".
func (s *Shell) target() string { return s.owner.User + "/" + s.name }

// Open registers a shell of id in the container name and returns the Execution to bridge
// in place of ex. Closing it ends every view of the shell.
func (h *Hub) Open(id backend.Identity, name string, ex backend.Execution, t Terminal) backend.Execution {
	if v, ok := ex.(*viewExec); ok {
		return v // a view of someone's shared shell is not itself a shell to share
	}
	pr, pw := io.Pipe()
	s := &Shell{hub: h, owner: id, name: name, term: t.Term, since: time.Now(), ex: ex,
		pr: pr, pw: pw, stdin: ex.Stdin(), width: t.Width, height: t.Height,
		scr: newMirror(h.opts.Replay, h.opts.ScreenQueue, t.Width, t.Height)}
	if h.opts.RecordAll {
		s.mu.Lock()
		s.startRecordingLocked()
		s.mu.Unlock()
	}
	h.mu.Lock()
	h.shells = append(h.shells, s)
	h.mu.Unlock()
	go s.pump(ex.Stdout())
	return s
}

// pump copies the process's output to the owner, and to every viewer and the recording.
func (s *Shell) pump(src io.Reader) {
	if src == nil {
		_ = s.pw.Close()
		return
	}
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			s.wmu.Lock()
			title := s.fanOut(buf[:n])
			_, werr := s.pw.Write(buf[:n])
			if werr == nil && title != nil {
				_, werr = s.pw.Write(title)
			}
			s.wmu.Unlock()
			if werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			_ = s.pw.CloseWithError(err)
			return
		}
	}
}

// fanOut hands one chunk of output to the viewers and the recording, and returns the
// owner's status line when it is due after this chunk.
func (s *Shell) fanOut(p []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.scr.write(p)
	s.esc.feed(p)
	if len(s.watchers) > 0 {
		chunk := append([]byte(nil), p...)
		for _, w := range slices.Clone(s.watchers) {
			if !w.framed.Load() { // a framed view is drawn from the emulator
				s.sendLocked(w, chunk)
			}
		}
	}
	if s.rec != nil {
		if err := s.rec.Output(p); err != nil {
			s.stopRecordingLocked(err)
		}
	}
	return s.titlesLocked()
}

// sendLocked queues a chunk for w, or drops w when it is too far behind.
func (s *Shell) sendLocked(w *Watcher, chunk []byte) {
	if w.queued.Load()+int64(len(chunk)) > s.hub.opts.BacklogBytes {
		s.dropLocked(w, "your connection could not keep up with the shell's output")
		return
	}
	select {
	case w.out <- chunk:
		w.queued.Add(int64(len(chunk)))
	default:
		s.dropLocked(w, "your connection could not keep up with the shell's output")
	}
}

// titlesLocked queues the viewers' status lines and returns the owner's, when they are due
// and the stream is between characters.
func (s *Shell) titlesLocked() []byte {
	if !s.dirty || !s.esc.ground() {
		return nil
	}
	s.dirty = false
	who := s.watchingLocked()
	for _, w := range slices.Clone(s.watchers) {
		s.sendLocked(w, titleSeq(viewerTitle(s.owner.User, s.name, s.width, s.height, s.write, who, w.width, w.height)))
	}
	s.titled = true
	if s.help {
		s.help = false
		return titleSeq(s.name + " · " + escapeHelp)
	}
	return titleSeq(ownerTitle(s.name, s.shared, s.write, who))
}

// refresh sends the status lines now, when the stream allows; else after the output that
// ends the sequence under way.
func (s *Shell) refresh() {
	go func() {
		s.wmu.Lock()
		defer s.wmu.Unlock()
		s.mu.Lock()
		title := s.titlesLocked()
		s.mu.Unlock()
		if title != nil {
			_, _ = s.pw.Write(title)
		}
	}()
}

func (s *Shell) watchingLocked() []string {
	out := make([]string, 0, len(s.watchers))
	for _, w := range s.watchers {
		if !slices.Contains(out, w.id.User) {
			out = append(out, w.id.User)
		}
	}
	return out
}

// dropLocked removes w and ends its view with reason.
func (s *Shell) dropLocked(w *Watcher, reason string) {
	i := slices.Index(s.watchers, w)
	if i < 0 {
		return
	}
	s.watchers = slices.Delete(s.watchers, i, i+1)
	w.reason = reason
	close(w.done)
	s.dirty = true
	if s.rec != nil {
		_ = s.rec.Mark(w.id.User + " left")
	}
}

// startRecordingLocked starts recording the shell, unless it is already, and reports
// whether it started now.
func (s *Shell) startRecordingLocked() bool {
	r := s.hub.opts.Recorder
	if r == nil || s.rec != nil {
		return false
	}
	title := fmt.Sprintf("%s: shell in %s", s.owner.User, s.name)
	w, info, err := r.Create(s.owner.User, s.name, title, s.width, s.height, s.term)
	if err != nil {
		s.hub.opts.Logger.Warn("shell not recorded", "user", s.owner.User, "container", s.name, "err", err)
		return false
	}
	s.hub.opts.Logger.Info("recording a shell", "user", s.owner.User, "container", s.name, "file", info.Name)
	s.rec = w
	return true
}

func (s *Shell) stopRecordingLocked(err error) {
	if s.rec == nil {
		return
	}
	if cerr := s.rec.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		s.hub.opts.Logger.Warn("recording of a shell cut short", "user", s.owner.User, "container", s.name, "err", err)
	}
	s.rec = nil
}

// --- backend.Execution ---

// Stdin is the process's input, shared with viewers allowed to type.
func (s *Shell) Stdin() io.WriteCloser { return ownerInput{s} }

type ownerInput struct{ s *Shell }

// Write passes the owner's keys on, less the sharing escapes typed at the start of a line
// (escapes.scan), which it carries out.
func (o ownerInput) Write(p []byte) (int, error) {
	s := o.s
	s.keyMu.Lock()
	out, cmds := s.keys.scan(p)
	s.keyMu.Unlock()
	for _, c := range cmds {
		s.escape(c)
	}
	if len(out) == 0 {
		return len(p), nil
	}
	s.inMu.Lock()
	defer s.inMu.Unlock()
	if _, err := s.stdin.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// escape carries out one sharing escape of the owner's.
func (s *Shell) escape(c byte) {
	switch c {
	case 'S':
		_, _ = s.share(false)
	case 'W':
		_, _ = s.share(true)
	case 'X':
		_, _ = s.stop()
	case 'H':
		s.mu.Lock()
		s.help = true
		s.dirty = true
		s.mu.Unlock()
		s.refresh()
	}
}

func (o ownerInput) Close() error { return o.s.stdin.Close() }

// Stdout is the process's output as the owner sees it, with the status line.
func (s *Shell) Stdout() io.Reader { return s.pr }

// Stderr is the process's error output (none with a terminal).
func (s *Shell) Stderr() io.Reader { return s.ex.Stderr() }

// Resize passes the owner's new size on and tells viewers and the recording.
func (s *Shell) Resize(width, height int) error {
	s.mu.Lock()
	if width != s.width || height != s.height {
		s.width, s.height = width, height
		s.scr.resize(width, height)
		if s.rec != nil {
			_ = s.rec.Resize(width, height)
		}
		for _, w := range slices.Clone(s.watchers) {
			s.reframeLocked(w)
		}
		if len(s.watchers) > 0 || s.titled {
			s.dirty = true
			defer s.refresh()
		}
	}
	s.mu.Unlock()
	return s.ex.Resize(width, height)
}

// Wait waits for the process.
func (s *Shell) Wait(ctx context.Context) (int, error) { return s.ex.Wait(ctx) }

// Close ends the process and every view of it.
func (s *Shell) Close() error {
	s.closeOnce.Do(func() {
		h := s.hub
		h.mu.Lock()
		if i := slices.Index(h.shells, s); i >= 0 {
			h.shells = slices.Delete(h.shells, i, i+1)
		}
		h.mu.Unlock()
		s.mu.Lock()
		s.closed = true
		wasShared := s.shared
		for _, w := range slices.Clone(s.watchers) {
			s.dropLocked(w, fmt.Sprintf("the shell of %s in %s ended", s.owner.User, s.name))
		}
		s.stopRecordingLocked(nil)
		s.mu.Unlock()
		s.scr.stop()
		if wasShared {
			h.sharesChanged()
		}
	})
	err := s.ex.Close()
	_ = s.pr.Close()
	return err
}

// --- the owner's controls ---

// find is id's newest open shell in name.
func (h *Hub) find(id backend.Identity, name string) *Shell {
	h.mu.Lock()
	defer h.mu.Unlock()
	name = strings.TrimPrefix(name, id.User+"/")
	for i := len(h.shells) - 1; i >= 0; i-- {
		s := h.shells[i]
		if s.owner.User == id.User && strings.TrimPrefix(s.name, id.User+"/") == name {
			return s
		}
	}
	return nil
}

func (s *Shell) infoLocked() Info {
	return Info{Owner: s.owner.User, Name: s.name, Since: s.since, Shared: s.shared, Write: s.write,
		Watchers: s.watchingLocked(), Width: s.width, Height: s.height}
}

func (h *Hub) audit(id backend.Identity, action, target, result, reason, note string) {
	if h.opts.Audit != nil {
		_ = h.opts.Audit.ActionNote(id, action, target, result, reason, note)
	}
}

// Share shares id's newest open shell in name with TAs, read-only or read-write: on a shell
// already shared it sets the mode (write granted or taken back at once).
func (h *Hub) Share(id backend.Identity, name string, write bool) (Info, error) {
	s := h.find(id, name)
	if s == nil {
		return Info{}, ErrNoShell
	}
	return s.share(write)
}

// share shares s with TAs in the mode write says.
func (s *Shell) share(write bool) (Info, error) {
	h := s.hub
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return Info{}, ErrNoShell
	}
	changed, started := !s.shared || s.write != write, !s.shared
	if started {
		s.scr.start()
	}
	s.shared, s.write = true, write
	if changed {
		s.dirty = true
		if s.rec != nil {
			_ = s.rec.Mark("shared " + mode(write))
		}
	}
	info := s.infoLocked()
	s.mu.Unlock()
	if changed {
		h.audit(s.owner, "share", s.target(), resultOK, "", mode(write))
		s.refresh()
	}
	if started {
		h.sharesChanged()
	}
	return info, nil
}

// Stop ends the sharing of id's shell in name: every viewer is dropped at once.
func (h *Hub) Stop(id backend.Identity, name string) (Info, error) {
	s := h.find(id, name)
	if s == nil {
		return Info{}, ErrNoShell
	}
	return s.stop()
}

// stop ends the sharing of s.
func (s *Shell) stop() (Info, error) {
	h := s.hub
	s.mu.Lock()
	if !s.shared {
		s.mu.Unlock()
		return Info{}, ErrNotShared
	}
	s.shared, s.write = false, false
	for _, w := range slices.Clone(s.watchers) {
		s.dropLocked(w, fmt.Sprintf("%s stopped sharing the shell in %s", s.owner.User, s.name))
	}
	if !h.opts.RecordAll {
		s.stopRecordingLocked(nil)
	}
	s.scr.stop()
	s.dirty = true
	info := s.infoLocked()
	s.mu.Unlock()
	h.audit(s.owner, "unshare", s.target(), resultOK, "", "")
	s.refresh()
	h.sharesChanged()
	return info, nil
}

// Drop ends user's view of id's shell in name at once.
func (h *Hub) Drop(id backend.Identity, name, user string) (Info, error) {
	s := h.find(id, name)
	if s == nil {
		return Info{}, ErrNoShell
	}
	s.mu.Lock()
	n := 0
	for _, w := range slices.Clone(s.watchers) {
		if w.id.User == user {
			s.dropLocked(w, fmt.Sprintf("%s dropped you from the shell in %s", s.owner.User, s.name))
			n++
		}
	}
	info := s.infoLocked()
	s.mu.Unlock()
	if n == 0 {
		return info, ErrNoWatcher
	}
	h.audit(id, "drop", s.target(), resultOK, "", user)
	s.refresh()
	return info, nil
}

// List is id's open shells; for a TA with all, every shared shell as well.
func (h *Hub) List(id backend.Identity, all bool) []Info {
	h.mu.Lock()
	shells := slices.Clone(h.shells)
	h.mu.Unlock()
	var out []Info
	for _, s := range shells {
		s.mu.Lock()
		if s.owner.User == id.User || all && id.IsTA() && s.shared {
			out = append(out, s.infoLocked())
		}
		s.mu.Unlock()
	}
	return out
}

// --- viewers ---

// Watcher is one TA's view of a shared shell.
type Watcher struct {
	id     backend.Identity
	shell  *Shell
	out    chan []byte
	done   chan struct{}
	reason string       // why it ended; set before done is closed
	queued atomic.Int64 // bytes in out
	framed atomic.Bool  // drawn framed from the emulator; set with Shell.mu held
	width  int
	height int
}

// Join attaches TA id to the shared shell named by target, "USER" or "USER/NAME". Students
// are refused, and so is every shell that is not shared; a name that is nobody's reads the
// same as one that shares nothing.
func (h *Hub) Join(id backend.Identity, target string, size input.Size) (*Watcher, error) {
	user, name, _ := strings.Cut(target, "/")
	if !id.IsTA() {
		h.audit(id, "join", target, resultRefused, ErrNotTA.Error(), "")
		return nil, ErrNotTA
	}
	h.mu.Lock()
	var found []*Shell
	for _, s := range h.shells {
		if s.owner.User != user || name != "" && s.name != name && s.name != user+"/"+name {
			continue
		}
		s.mu.Lock()
		if s.shared && !s.closed {
			found = append(found, s)
		}
		s.mu.Unlock()
	}
	h.mu.Unlock()
	switch {
	case len(found) == 0:
		h.audit(id, "join", target, resultRefused, "not shared", "")
		return nil, ErrNotShared
	case len(found) > 1:
		var ns []string
		for _, s := range found {
			ns = append(ns, user+"/"+s.name)
		}
		return nil, fmt.Errorf("%s shares %d shells; join one of %s", user, len(found), strings.Join(ns, ", "))
	case user == id.User:
		return nil, errors.New("that is your own shell")
	}
	s := found[0]
	w := &Watcher{id: id, shell: s, out: make(chan []byte, h.opts.Backlog), done: make(chan struct{}),
		width: size.Width, height: size.Height}
	s.mu.Lock()
	if !s.shared || s.closed {
		s.mu.Unlock()
		h.audit(id, "join", target, resultRefused, "not shared", "")
		return nil, ErrNotShared
	}
	started := s.startRecordingLocked()
	if s.rec != nil {
		if started {
			_ = s.rec.Output(s.screenLocked(0, 0)) // the screen as it was when the recording began
		}
		_ = s.rec.Mark(fmt.Sprintf("%s joined (%s)", id.User, mode(s.write)))
	}
	if framedFor(s.width, s.height, w.width, w.height) {
		w.framed.Store(true)
		w.out <- []byte{} // draw the frame
	} else {
		intro := fmt.Sprintf("\r\n[watching %s's shell in %s, %dx%d, %s; ctrl-p ctrl-q leaves]\r\n",
			s.owner.User, s.name, s.width, s.height, mode(s.write))
		w.out <- append([]byte(intro), s.screenLocked(w.width, w.height)...)
	}
	s.watchers = append(s.watchers, w)
	s.dirty = true
	m := mode(s.write)
	s.mu.Unlock()
	h.audit(id, "join", s.target(), resultOK, "", m)
	s.refresh()
	return w, nil
}

// ViewTerminal is the viewer's side.
type ViewTerminal struct {
	In    io.Reader
	Out   io.Writer
	Sizes <-chan input.Size // nil: the size never changes
}

// detachKeys leave a view: ctrl-p ctrl-q, as docker attach.
var detachKeys = []byte{0x10, 0x11}

// Run shows the shell on t until the viewer leaves (ctrl-p ctrl-q), is dropped, the sharing
// or the shell ends, or ctx ends, and returns why it ended in one line. Keys reach the
// shell only while the owner allows writing.
func (w *Watcher) Run(ctx context.Context, t ViewTerminal) string {
	s := w.shell
	left := make(chan struct{})
	go w.readInput(t.In, left)
	var sizes <-chan input.Size = t.Sizes
	defer func() {
		s.mu.Lock()
		if slices.Contains(s.watchers, w) {
			s.dropLocked(w, "you left")
		}
		s.mu.Unlock()
		s.refresh()
		_, _ = io.WriteString(t.Out, leaveSeq)
	}()
	// A framed view is drawn when the emulator changes, at most once per frameInterval.
	p := &painter{out: t.Out}
	var (
		changes <-chan struct{} // closed at the emulator's next change
		tick    <-chan time.Time
		last    time.Time
	)
	due := func() {
		if tick == nil {
			tick = time.After(max(0, time.Until(last.Add(frameInterval))))
		}
	}
	for {
		var changed <-chan struct{}
		if w.framed.Load() {
			if changes == nil {
				changes = s.scr.changes()
			}
			changed = changes
		}
		select {
		case <-w.done:
			return w.reason
		case <-ctx.Done():
			return "the connection ended"
		case <-left:
			return fmt.Sprintf("you left the shell of %s in %s", s.owner.User, s.name)
		case sz, ok := <-sizes:
			if !ok {
				sizes = nil
				continue
			}
			s.mu.Lock()
			w.width, w.height = sz.Width, sz.Height
			s.reframeLocked(w)
			s.dirty = true
			s.mu.Unlock()
			s.refresh()
			p.reset() // the viewer's terminal redraws its own way
			due()
		case <-changed:
			changes = nil
			due()
		case <-tick:
			tick, last = nil, time.Now()
			if w.framed.Load() {
				if err := w.paint(p); err != nil {
					return "the connection ended"
				}
			}
		case chunk := <-w.out:
			select {
			case <-w.done: // dropped meanwhile: nothing more is shown
				return w.reason
			default:
			}
			if len(chunk) == 0 { // the view turned framed: draw it all
				p.reset()
				due()
				continue
			}
			w.queued.Add(-int64(len(chunk)))
			if _, err := t.Out.Write(chunk); err != nil {
				return "the connection ended"
			}
			if w.framed.Load() {
				due() // a new status line: the frame says the same
			}
		}
	}
}

// frameInterval is the least time between two draws of a framed view.
const frameInterval = 50 * time.Millisecond

// framedFor reports whether a viewer's terminal of vw x vh shows a shell of width x height
// framed: when the frame fits around it.
func framedFor(width, height, vw, vh int) bool {
	return width > 0 && height > 0 && vw >= width+2 && vh >= height+2
}

// reframeLocked frames w's view or stops framing it, as the sizes now say; s.mu is held.
// A view that stops being framed is sent the screen, from where the output goes on.
func (s *Shell) reframeLocked(w *Watcher) {
	f := framedFor(s.width, s.height, w.width, w.height)
	if f == w.framed.Load() {
		return
	}
	w.framed.Store(f)
	if f {
		s.sendLocked(w, []byte{})
		return
	}
	s.sendLocked(w, s.screenLocked(w.width, w.height))
}

// screenLocked is the screen as bytes that draw it on a terminal of vw x vh (0: the
// shell's size); s.mu is held.
func (s *Shell) screenLocked(vw, vh int) []byte {
	return s.scr.snapshot(vw, vh) // nil only when not shared: no viewer then
}

// paint draws w's framed view with p.
func (w *Watcher) paint(p *painter) error {
	s := w.shell
	v, ok := s.scr.view()
	if !ok {
		return nil
	}
	s.mu.Lock()
	label := viewerTitle(s.owner.User, s.name, v.width, v.height, s.write, s.watchingLocked(), 0, 0)
	vw, vh := w.width, w.height
	s.mu.Unlock()
	if !framedFor(v.width, v.height, vw, vh) {
		return nil // the emulator has not taken the owner's new size yet: its change comes
	}
	return p.paint(frame(v, label, vh), vw, v)
}

// readInput passes the viewer's keys to the shell while writing is allowed, and closes left
// on the detach keys.
func (w *Watcher) readInput(in io.Reader, left chan struct{}) {
	if in == nil {
		return
	}
	s := w.shell
	buf := make([]byte, 4096)
	var held []byte
	for {
		n, err := in.Read(buf)
		if n > 0 {
			data := append(held, buf[:n]...)
			held = nil
			i := indexDetach(data)
			out := data
			if i >= 0 {
				out = data[:i]
			} else if len(data) > 0 && data[len(data)-1] == detachKeys[0] {
				out, held = data[:len(data)-1], []byte{detachKeys[0]}
			}
			if out = viewerKeys(out); len(out) > 0 {
				s.viewerInput(w, out)
			}
			if i >= 0 {
				close(left)
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func indexDetach(p []byte) int {
	for i := 0; i+1 < len(p); i++ {
		if p[i] == detachKeys[0] && p[i+1] == detachKeys[1] {
			return i
		}
	}
	return -1
}

// viewerInput writes p to the shell if w is still there and may write.
func (s *Shell) viewerInput(w *Watcher, p []byte) {
	s.inMu.Lock()
	defer s.inMu.Unlock()
	s.mu.Lock()
	ok := s.write && s.shared && slices.Contains(s.watchers, w)
	s.mu.Unlock()
	if ok {
		_, _ = s.stdin.Write(p)
	}
}

// --- a view as an Execution, for the dashboard's terminal ---

// viewExec is a viewer's view of a shared shell in the shape of a process: its output is
// the shell's, its input the viewer's keys, its size the viewer's; it ends when the view does.
type viewExec struct {
	inR    *io.PipeReader
	inW    *io.PipeWriter
	outR   *io.PipeReader
	sizes  chan input.Size
	cancel context.CancelFunc
	done   chan struct{}
}

// JoinView is Join for the dashboard: the view as a backend.Execution that the session's
// terminal bridge runs like a shell (ctrl-p ctrl-q leaves; Wait returns when the view ends).
func (h *Hub) JoinView(id backend.Identity, target string, width, height int) (backend.Execution, error) {
	w, err := h.Join(id, target, input.Size{Width: width, Height: height})
	if errors.Is(err, ErrNotShared) {
		user, _, _ := strings.Cut(target, "/")
		return nil, notShared{user}
	}
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	v := &viewExec{inR: inR, inW: inW, outR: outR, sizes: make(chan input.Size, 1), cancel: cancel, done: make(chan struct{})}
	go func() {
		why := w.Run(ctx, ViewTerminal{In: inR, Out: outW, Sizes: v.sizes})
		_ = inR.CloseWithError(errors.New("the view ended")) // keys typed from now on go back to the dashboard
		_, _ = io.WriteString(outW, "\r\n"+why+"\r\n")
		_ = outW.Close()
		close(v.done)
	}()
	return v, nil
}

// notShared is ErrNotShared in one line that names the user.
type notShared struct{ user string }

func (e notShared) Error() string        { return e.user + " shares no shell" }
func (e notShared) Is(target error) bool { return target == ErrNotShared }

func (v *viewExec) Stdin() io.WriteCloser { return v.inW }
func (v *viewExec) Stdout() io.Reader     { return v.outR }
func (v *viewExec) Stderr() io.Reader     { return nil }

func (v *viewExec) Resize(width, height int) error {
	s := input.Size{Width: width, Height: height}
	select {
	case v.sizes <- s:
	default:
		select {
		case <-v.sizes:
		default:
		}
		select {
		case v.sizes <- s:
		default:
		}
	}
	return nil
}

func (v *viewExec) Wait(ctx context.Context) (int, error) {
	select {
	case <-v.done:
		return 0, nil
	case <-ctx.Done():
		return -1, ctx.Err()
	}
}

func (v *viewExec) Close() error {
	v.cancel()
	_ = v.inR.CloseWithError(errors.New("the view ended"))
	_ = v.outR.Close()
	return nil
}
