package docker

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"whalemountain/backend"
)

// What the server did to a user's containers that the user should hear of, kept on disk
// under the data directory: one small JSON file per user (<dir>/<user>.json, 0600), written
// whole and renamed into place. It holds
//   - notices: someone else (a TA) stopped or removed one of the user's containers, and why;
//     a dashboard shows the ones the user has not seen, at once or at the next login;
//   - stops: the containers the server stopped on purpose, each with the start time of the
//     run it stopped. An exited container whose start time is still that one was stopped
//     on purpose ("stopped"); once it runs again the record no longer matches, and a later
//     crash keeps its exit code. Nothing about this is a label: labels cannot change after
//     create, and the engine's own state cannot tell a stop from a crash by signal.
//
// Without a directory (tests, SetNoticeDir never called) the same is kept in memory only.

// Notice is one thing done to a user's container by someone else, or a message a TA sent
// to everyone (Action "wall", Container empty, the text in Message).
type Notice struct {
	Seq       int64     `json:"seq"` // increasing per user
	At        time.Time `json:"at"`
	Container string    `json:"container,omitempty"` // the owner's name for it
	Action    string    `json:"action"`              // "stop", "rm" or "wall"
	By        string    `json:"by"`
	ByRole    string    `json:"by_role"`
	Reason    string    `json:"reason,omitempty"`
	Message   string    `json:"message,omitempty"` // of a wall
}

// Actions of notices beside "stop" and "rm".
const (
	NoticeWall       = "wall"        // a TA's message to everyone
	NoticeWaitStart  = "wait-start"  // a waiting request was created and started
	NoticeWaitFail   = "wait-fail"   // a waiting request could not be started (Reason says why) and was dropped
	NoticeWaitCancel = "wait-cancel" // a TA cancelled a waiting request
	NoticeIdleWarn   = "idle-warn"   // a container is idle and will be stopped (Reason says when)
	NoticeHoldWarn   = "hold-warn"   // a container held GPUs long while others wait and will be stopped
)

// StopInfo says that the server stopped a container on purpose: who, when and why.
type StopInfo struct {
	By     string    `json:"by"`
	ByRole string    `json:"by_role,omitempty"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason,omitempty"`
}

// stopRecord is a StopInfo for one run of one container.
type stopRecord struct {
	StopInfo
	StartedAt time.Time `json:"started_at"` // of the run that was stopped
}

// noticeFile is one user's file.
type noticeFile struct {
	Seen    int64                 `json:"seen"` // notices up to this Seq have been shown
	Last    int64                 `json:"last"` // the last Seq given
	Notices []Notice              `json:"notices,omitempty"`
	Stops   map[string]stopRecord `json:"stops,omitempty"` // by engine ID
}

// Bounds on one user's file.
const (
	maxNotices   = 20
	maxStops     = 100
	maxReasonLen = 200 // characters
)

// noticeStore keeps the users' files, cached in memory. It is safe for concurrent use.
type noticeStore struct {
	mu    sync.Mutex
	dir   string                 // "": memory only
	users map[string]*noticeFile // every user's file when dir is set (read at SetNoticeDir)
	now   func() time.Time
}

func newNoticeStore() *noticeStore {
	return &noticeStore{users: map[string]*noticeFile{}, now: time.Now}
}

// SetNoticeDir keeps notices and stop records in dir (created 0700 if missing), so they
// outlive the server process, and reads what is there: later reads cost no disk access
// (snapshots mark stopped containers while every dashboard waits). Call it before serving.
func (s *Service) SetNoticeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("notice directory %s: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("notice directory %s: %w", dir, err)
	}
	users := map[string]*noticeFile{}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".tmp") && e.Type().IsRegular() {
			// Half a save, from a server that was killed while writing it.
			_ = os.Remove(filepath.Join(dir, e.Name()))
			continue
		}
		user, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || !backend.ValidUser(user) {
			continue
		}
		f := &noticeFile{}
		if b, err := os.ReadFile(filepath.Join(dir, e.Name())); err == nil && json.Unmarshal(b, f) == nil {
			users[user] = f
		}
	}
	st := s.notices
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dir, st.users = dir, users
	return nil
}

// ValidateReason checks a reason given for stopping or removing a container: one line of at
// most 200 characters, no control characters. Spaces around it are dropped.
func ValidateReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	if !utf8.ValidString(reason) || strings.ContainsFunc(reason, isControlRune) {
		return "", errorf(ErrInvalid, "the reason must be one line of plain text")
	}
	if n := utf8.RuneCountInString(reason); n > maxReasonLen {
		return "", errorf(ErrInvalid, "the reason is %d characters long; at most %d", n, maxReasonLen)
	}
	return reason, nil
}

func isControlRune(r rune) bool { return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 }

// Notices returns the identity's notices, oldest first, and the Seq up to which they have
// been shown (MarkNoticesSeen).
func (s *Service) Notices(id backend.Identity) ([]Notice, int64) {
	if checkIdentity(id) != nil {
		return nil, 0
	}
	st := s.notices
	st.mu.Lock()
	defer st.mu.Unlock()
	f := st.loadLocked(id.User)
	return slices.Clone(f.Notices), f.Seen
}

// MarkNoticesSeen records that the identity's notices up to seq have been shown.
func (s *Service) MarkNoticesSeen(id backend.Identity, seq int64) {
	if checkIdentity(id) != nil {
		return
	}
	st := s.notices
	st.mu.Lock()
	defer st.mu.Unlock()
	f := st.loadLocked(id.User)
	if seq <= f.Seen {
		return
	}
	f.Seen = min(seq, f.Last)
	st.saveLocked(id.User, f)
}

// loadLocked is user's file (empty when there is none yet; an unreadable one counts as
// empty and is replaced on the next write).
func (st *noticeStore) loadLocked(user string) *noticeFile {
	f, ok := st.users[user]
	if !ok {
		f = &noticeFile{}
		st.users[user] = f
	}
	if f.Stops == nil {
		f.Stops = map[string]stopRecord{}
	}
	return f
}

// saveLocked writes user's file whole, through a temporary file renamed into place.
func (st *noticeStore) saveLocked(user string, f *noticeFile) (err error) {
	if st.dir == "" {
		return nil
	}
	defer func() {
		if err != nil {
			// Loudly: a notice lost is something a user was not told.
			slog.Error("notice not saved", "user", user, "err", err)
		}
	}()
	b, err := json.Marshal(f)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(st.dir, "."+user+".*.tmp")
	if err != nil {
		return fmt.Errorf("write notices of %s: %w", user, err)
	}
	_, werr := tmp.Write(b)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write notices of %s: %w", user, err)
	}
	if err := os.Rename(tmp.Name(), filepath.Join(st.dir, user+".json")); err != nil {
		_ = os.Remove(tmp.Name())
		return fmt.Errorf("write notices of %s: %w", user, err)
	}
	return nil
}

// addNotice tells owner that by did action to their container name.
func (st *noticeStore) addNotice(owner string, n Notice) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	f := st.loadLocked(owner)
	f.Last++
	n.Seq = f.Last
	if n.At.IsZero() {
		n.At = st.now().UTC()
	}
	f.Notices = append(f.Notices, n)
	if len(f.Notices) > maxNotices {
		f.Notices = slices.Clone(f.Notices[len(f.Notices)-maxNotices:])
	}
	return st.saveLocked(owner, f)
}

// recordStop remembers that the run of container id (of owner) that started at startedAt
// was stopped on purpose.
func (st *noticeStore) recordStop(owner, id string, startedAt time.Time, info StopInfo) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	f := st.loadLocked(owner)
	if info.At.IsZero() {
		info.At = st.now().UTC()
	}
	f.Stops[id] = stopRecord{StopInfo: info, StartedAt: startedAt}
	for len(f.Stops) > maxStops { // the oldest go
		oldest := ""
		for k, r := range f.Stops {
			if oldest == "" || r.At.Before(f.Stops[oldest].At) {
				oldest = k
			}
		}
		delete(f.Stops, oldest)
	}
	return st.saveLocked(owner, f)
}

// forget drops the stop record of container id of owner (removed, or started again).
func (st *noticeStore) forget(owner, id string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	f := st.loadLocked(owner)
	if _, ok := f.Stops[id]; !ok {
		return nil
	}
	delete(f.Stops, id)
	return st.saveLocked(owner, f)
}

// markStopped sets c.Stopped when the server stopped c's last run on purpose.
func (st *noticeStore) markStopped(c *Container) {
	c.Stopped = nil
	if c.State != "exited" || c.StartedAt.IsZero() || c.ID == "" || c.Owner == "" {
		return
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	f := st.loadLocked(c.Owner)
	if r, ok := f.Stops[c.ID]; ok && r.StartedAt.Equal(c.StartedAt) {
		info := r.StopInfo
		c.Stopped = &info
	}
}

// pokeOwner wakes the dashboards that show owner's containers, so that they read again
// what changed beside the engine's state (a notice, a stop record).
func (s *Service) pokeOwner(owner string) {
	s.live.mu.Lock()
	defer s.live.mu.Unlock()
	s.live.notifyLocked(map[string]bool{owner: true})
}

// Wall keeps message as a notice from the TA id for every user the server knows of (those
// with containers, those with a notice file) and for the users in also (those connected
// now), and wakes their dashboards, which show it until dismissed. It is audited.
func (s *Service) Wall(id backend.Identity, message string, also []string) (users int, err error) {
	defer func() { s.recordNote(id, NoticeWall, "everyone", err, message) }()
	if err := checkIdentity(id); err != nil {
		return 0, err
	}
	if err := s.admit(); err != nil {
		return 0, err
	}
	if !id.IsTA() {
		return 0, errorf(ErrPermission, "wall is for TAs")
	}
	message = strings.TrimSpace(message)
	if message == "" {
		return 0, errorf(ErrInvalid, "the message is empty")
	}
	if !utf8.ValidString(message) || strings.ContainsFunc(message, isControlRune) {
		return 0, errorf(ErrInvalid, "the message must be one line of plain text")
	}
	if n := utf8.RuneCountInString(message); n > maxReasonLen {
		return 0, errorf(ErrInvalid, "the message is %d characters long; at most %d", n, maxReasonLen)
	}
	to := map[string]bool{}
	for _, u := range also {
		if backend.ValidUser(u) {
			to[u] = true
		}
	}
	s.live.mu.Lock()
	for _, c := range s.live.items {
		if c.Owner != "" {
			to[c.Owner] = true
		}
	}
	s.live.mu.Unlock()
	s.notices.mu.Lock()
	for u := range s.notices.users {
		to[u] = true
	}
	s.notices.mu.Unlock()
	at := s.notices.now().UTC()
	var errs []error
	for u := range to {
		if err := s.notices.addNotice(u, Notice{At: at, Action: NoticeWall, By: id.User, ByRole: string(id.Role), Message: message}); err != nil {
			errs = append(errs, err)
		}
	}
	s.live.mu.Lock()
	s.live.notifyLocked(to)
	s.live.mu.Unlock()
	if len(errs) > 0 {
		// The detail (paths, the system's error) is in the server log.
		return len(to) - len(errs), &wrapped{kind: ErrUnavailable, err: errors.Join(errs...),
			msg: fmt.Sprintf("the message could not be kept for %d of %d users (the server log says why)", len(errs), len(to))}
	}
	return len(to), nil
}

// ServerText words a notice of the waiting list or the idle culler in one line ("train:
// created and started from the waiting list"); ok is false for the other actions, which
// each door words itself (who stopped what, and why). Container names and reasons are the
// server's own, checked when made.
func (n Notice) ServerText() (text string, ok bool) {
	switch n.Action {
	case NoticeWaitStart:
		return n.Container + ": created and started from the waiting list (its GPUs are free)", true
	case NoticeWaitFail:
		return n.Container + ": could not be started from the waiting list and left it: " + n.Reason, true
	case NoticeWaitCancel:
		by := n.By
		if n.ByRole == string(backend.RoleTA) {
			by += " (TA)"
		}
		text = by + " took " + n.Container + " off the waiting list"
		if n.Reason != "" {
			text += ": " + n.Reason
		}
		return text, true
	case NoticeIdleWarn:
		return n.Container + ": " + n.Reason, true
	case NoticeHoldWarn:
		return n.Container + " has held its GPUs long: " + n.Reason, true
	}
	return "", false
}
