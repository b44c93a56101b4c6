// Package recording keeps terminal sessions as asciinema cast files (format version 2) under
// the data directory, one directory per user: <dir>/<user>/<time>-<name>.cast, 0600. Who
// owns a recording is where it lies; its owner and TAs may list and read it, nobody else,
// and files older than the retention are removed.
package recording

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
	"unicode/utf8"
)

// Header is the first line of a cast v2 file.
type Header struct {
	Version   int               `json:"version"`
	Width     int               `json:"width"`
	Height    int               `json:"height"`
	Timestamp int64             `json:"timestamp,omitempty"`
	Title     string            `json:"title,omitempty"`
	Env       map[string]string `json:"env,omitempty"`
}

// Event kinds of cast v2: output, resize ("WxH") and marker.
const (
	Output = "o"
	Resize = "r"
	Marker = "m"
)

// Writer appends events to one cast file. It is safe for concurrent use; writes are
// buffered and reach the file at Flush and Close.
type Writer struct {
	mu      sync.Mutex
	f       *os.File
	bw      *bufio.Writer
	start   time.Time
	now     func() time.Time
	partial []byte // the start of a UTF-8 sequence the next output completes
	err     error  // the first write error or ErrFull; later events are dropped
	max     int64  // bytes of events at most; 0: no limit
	written int64
}

// ErrFull is the error of every event once a recording has reached its size limit.
var ErrFull = errors.New("the recording reached its size limit")

// newWriter writes h to f and returns a writer of events after it.
func newWriter(f *os.File, h Header, now func() time.Time) (*Writer, error) {
	w := &Writer{f: f, bw: bufio.NewWriterSize(f, 32<<10), now: now}
	w.start = now()
	h.Version = 2
	h.Timestamp = w.start.Unix()
	b, err := json.Marshal(h)
	if err != nil {
		return nil, fmt.Errorf("encode cast header: %w", err)
	}
	b = append(b, '\n')
	if _, err := w.bw.Write(b); err != nil {
		return nil, fmt.Errorf("write cast header: %w", err)
	}
	return w, nil
}

// Output records what the terminal was sent. A UTF-8 sequence split between two calls is
// kept whole (cast data is JSON text).
func (w *Writer) Output(p []byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	data := append(w.partial, p...)
	cut := completeUTF8(data)
	w.partial = append([]byte(nil), data[cut:]...)
	if cut == 0 {
		return w.err
	}
	return w.event(Output, string(data[:cut]))
}

// Resize records a new terminal size.
func (w *Writer) Resize(width, height int) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.event(Resize, fmt.Sprintf("%dx%d", width, height))
}

// Mark records a marker with a label ("bob joined").
func (w *Writer) Mark(label string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.event(Marker, label)
}

func (w *Writer) event(kind, data string) error {
	if w.err != nil {
		return w.err
	}
	t := w.now().Sub(w.start).Seconds()
	b, err := json.Marshal([]any{json.Number(fmt.Sprintf("%.6f", t)), kind, data})
	if err != nil {
		w.err = fmt.Errorf("encode cast event: %w", err)
		return w.err
	}
	b = append(b, '\n')
	if w.max > 0 && w.written+int64(len(b)) > w.max {
		// One last marker says where and why the recording stops.
		end, _ := json.Marshal([]any{json.Number(fmt.Sprintf("%.6f", t)), Marker, "recording stopped: size limit reached"})
		_, _ = w.bw.Write(append(end, '\n'))
		w.err = ErrFull
		return w.err
	}
	w.written += int64(len(b))
	if _, err := w.bw.Write(b); err != nil {
		w.err = fmt.Errorf("write cast event: %w", err)
	}
	return w.err
}

// Flush writes what is buffered to the file.
func (w *Writer) Flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.err == nil || errors.Is(w.err, ErrFull) {
		if err := w.bw.Flush(); err != nil {
			w.err = fmt.Errorf("write cast file: %w", err)
		}
	}
	return w.err
}

// Close writes what is left (a dangling partial UTF-8 sequence as it is) and closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	if len(w.partial) > 0 {
		_ = w.event(Output, string(w.partial))
		w.partial = nil
	}
	w.mu.Unlock()
	err := w.Flush()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return err
	}
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("close cast file: %w", cerr)
	}
	w.f = nil
	return err
}

// completeUTF8 is the length of the longest prefix of p that does not end inside a UTF-8
// sequence that more bytes could complete. Invalid bytes count as complete.
func completeUTF8(p []byte) int {
	for back := 1; back <= utf8.UTFMax-1 && back <= len(p); back++ {
		b := p[len(p)-back]
		if b < 0x80 {
			return len(p) // ASCII: nothing pending
		}
		if utf8.RuneStart(b) {
			if !utf8.FullRune(p[len(p)-back:]) {
				return len(p) - back
			}
			return len(p)
		}
	}
	return len(p)
}
