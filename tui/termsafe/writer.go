package termsafe

import (
	"bytes"
	"io"
)

// Writer neutralises a stream (logs) line by line with Text before passing it on. A line is
// passed on when its newline arrives, or in pieces once it grows past 4 KiB; Flush passes on
// what is held.
type Writer struct {
	w   io.Writer
	buf []byte
}

// NewWriter returns a Writer that writes neutralised text to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

const maxHeld = 4096

// Write takes p and writes every complete line in it.
func (t *Writer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	for {
		i := bytes.IndexByte(t.buf, '\n')
		if i < 0 {
			break
		}
		if err := t.emit(t.buf[:i+1]); err != nil {
			return len(p), err
		}
		t.buf = t.buf[i+1:]
	}
	if len(t.buf) > maxHeld {
		if err := t.Flush(); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// Flush writes what is held, even without a newline.
func (t *Writer) Flush() error {
	if len(t.buf) == 0 {
		return nil
	}
	err := t.emit(t.buf)
	t.buf = t.buf[:0]
	return err
}

func (t *Writer) emit(b []byte) error {
	_, err := io.WriteString(t.w, Text(string(b)))
	return err
}
