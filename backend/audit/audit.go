// Package audit appends one JSON line per security-relevant action (logins, every mutating
// operation) to an append-only file, so an administrator can answer "who did what, when".
package audit

import (
	"encoding/json"
	"fmt"
	"os"
	"sync"
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
	mu   sync.Mutex
	f    *os.File
	path string
	now  func() time.Time

	followers followers
}

// Open opens (creating if needed, mode 0600) the audit log at path for appending.
func Open(path string) (*Log, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open audit log %s: %w", path, err)
	}
	return &Log{f: f, path: path, now: time.Now}, nil
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
	if _, err := l.f.Write(b); err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
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
