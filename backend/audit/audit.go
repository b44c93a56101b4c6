// Package audit appends one JSON line per security-relevant action (logins, every mutating
// operation) to an append-only file, so an administrator can answer "who did what, when".
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"whalemountain/backend"
)

// Result values.
const (
	Accepted = "accepted"
	Refused  = "refused"
	OK       = "ok"
	Failed   = "failed"
)

// Entry is one line of the audit log.
type Entry struct {
	Time   time.Time `json:"time"`
	User   string    `json:"user"`
	Role   string    `json:"role,omitempty"`
	Source string    `json:"source,omitempty"`
	Key    string    `json:"key,omitempty"`
	Action string    `json:"action"`
	Target string    `json:"target,omitempty"`
	Result string    `json:"result"`
	Reason string    `json:"reason,omitempty"` // why it was refused or failed
	// Note is what the user gave as the reason for the action, such as why a TA stopped a
	// student's container.
	Note string `json:"note,omitempty"`
}

// Log is an append-only JSON-lines file. It is safe for concurrent use.
type Log struct {
	mu     sync.Mutex
	f      *os.File
	w      io.Writer // where entries are appended: f, unless Options said otherwise
	free   func() (uint64, error)
	broken error // the last append failed with it; cleared by one that succeeds
	path   string
	now    func() time.Time

	followers followers
}

// Reserve is how much room the file system holding the log must have left for Ready to
// let an action go ahead: enough for the audit lines of the actions already under way.
const Reserve = 1 << 20

// ErrCannotRecord is why an action is refused while the log cannot be appended to.
var ErrCannotRecord = errors.New("the audit log cannot be written")

// Options change where a Log appends and how it reads the room left: tests use them to make
// the disk full. The zero value appends to the file and asks the file system (statfs).
type Options struct {
	Writer io.Writer              // nil: the file
	Free   func() (uint64, error) // bytes free where the log is; nil: statfs of its directory
}

// Open opens (creating if needed, mode 0600) the audit log at path for appending.
func Open(path string) (*Log, error) { return OpenWith(path, Options{}) }

// OpenWith is Open with opts.
func OpenWith(path string, opts Options) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	l := &Log{f: f, w: opts.Writer, free: opts.Free, path: path, now: time.Now}
	if l.w == nil {
		l.w = f
	}
	if l.free == nil {
		dir := filepath.Dir(path)
		l.free = func() (uint64, error) {
			var st syscall.Statfs_t
			if err := syscall.Statfs(dir, &st); err != nil {
				return 0, err
			}
			return st.Bavail * uint64(st.Bsize), nil
		}
	}
	return l, nil
}

// Ready says whether an action may go ahead: nil when its audit line can be appended. It
// is ErrCannotRecord, with why, when the file system holding the log has less than Reserve
// left or the last append failed. A nil Log is always ready.
func (l *Log) Ready() error {
	if l == nil {
		return nil
	}
	n, err := l.free()
	room := err == nil && n >= Reserve
	if err == nil && !room {
		return fmt.Errorf("%w: the disk holding it is full", ErrCannotRecord)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	full := errors.Is(l.broken, syscall.ENOSPC) || errors.Is(l.broken, syscall.EDQUOT)
	switch {
	case l.broken == nil:
		return nil
	case full && room:
		return nil // room again: the next append will tell
	case full:
		return fmt.Errorf("%w: the disk holding it is full", ErrCannotRecord)
	default:
		return fmt.Errorf("%w: appending to it failed", ErrCannotRecord)
	}
}

// Record appends e, filling Time when it is zero.
func (l *Log) Record(e Entry) error {
	if l == nil {
		return nil
	}
	if e.Time.IsZero() {
		e.Time = l.now().UTC()
	}
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode audit entry: %w", err)
	}
	b = append(b, '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, err := l.w.Write(b); err != nil {
		// Loudly: the entry goes to the server log, and Ready refuses actions until an
		// append succeeds again.
		l.broken = err
		slog.Error("audit log append failed; actions are refused until it can be written", "path", l.path, "err", err, "entry", string(b[:len(b)-1]))
		return fmt.Errorf("append audit entry: %w", err)
	}
	l.broken = nil
	l.wakeFollowers()
	return nil
}

// Action records an action taken by id on target with the given result.
func (l *Log) Action(id backend.Identity, action, target, result, reason string) error {
	return l.Record(Entry{User: id.User, Role: string(id.Role), Source: id.RemoteAddr,
		Key: id.KeyFingerprint, Action: action, Target: target, Result: result, Reason: reason})
}

// ActionNote is Action with the reason the user gave for it.
func (l *Log) ActionNote(id backend.Identity, action, target, result, reason, note string) error {
	return l.Record(Entry{User: id.User, Role: string(id.Role), Source: id.RemoteAddr,
		Key: id.KeyFingerprint, Action: action, Target: target, Result: result, Reason: reason, Note: note})
}

// Close closes the file.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.f.Close()
}
