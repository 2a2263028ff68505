// Package sse reads and writes server-sent events incrementally, with a bound
// on every line, so a stream is never buffered whole.
//
// The Reader hands out each event's raw bytes as well as its parsed fields, so
// a proxy can forward an event byte for byte without re-encoding it.
package sse

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine is the longest line a Reader accepts unless told otherwise.
const DefaultMaxLine = 4 << 20

// ErrLineTooLong is returned when a line exceeds the Reader's limit.
var ErrLineTooLong = errors.New("sse: line too long")

// Event is one server-sent event. Its slices are valid until the next call to
// Next.
type Event struct {
	Name []byte // the "event:" field; empty for the default "message"
	Data []byte // the "data:" lines joined by "\n"
	ID   []byte // the "id:" field
	// Raw is the event exactly as received, including its terminating blank
	// line (absent when the stream ended without one).
	Raw []byte
}

// Reader reads events from a stream.
type Reader struct {
	br      *bufio.Reader
	maxLine int
	raw     []byte
	data    []byte
	name    []byte
	id      []byte
	line    []byte
}

// NewReader returns a Reader over r that refuses lines longer than maxLine
// bytes (DefaultMaxLine if maxLine <= 0).
func NewReader(r io.Reader, maxLine int) *Reader {
	if maxLine <= 0 {
		maxLine = DefaultMaxLine
	}
	return &Reader{br: bufio.NewReaderSize(r, bufSize), maxLine: maxLine}
}

// bufSize is the Reader's buffer. A stream holds it for its whole life, so
// it is what one burst of events needs (a chat chunk is 100-400 bytes, and
// the HTTP client below buffers as much again), not what the longest line
// needs: a longer line is put together in the Reader's line buffer. It was
// 16 KiB, a quarter of a held stream's memory.
const bufSize = 4 << 10

// Next returns the next event that has at least one field. At the end of the
// stream it returns io.EOF, after returning a last event that was not closed by
// a blank line, if any. Comment lines (":...") are kept in Raw only.
func (r *Reader) Next() (Event, error) {
	r.raw, r.data, r.name, r.id = r.raw[:0], r.data[:0], r.name[:0], r.id[:0]
	hasData, hasField := false, false
	for {
		line, err := r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && hasField {
				return r.event(), nil
			}
			return Event{}, err
		}
		r.raw = append(r.raw, line...)
		content := trimEOL(line)
		if len(content) == 0 {
			if hasField {
				return r.event(), nil
			}
			r.raw = r.raw[:0]
			continue
		}
		if content[0] == ':' {
			continue
		}
		field, value := content, []byte(nil)
		if i := bytes.IndexByte(content, ':'); i >= 0 {
			field, value = content[:i], content[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			if hasData {
				r.data = append(r.data, '\n')
			}
			r.data = append(r.data, value...)
			hasData, hasField = true, true
		case "event":
			r.name = append(r.name[:0], value...)
			hasField = true
		case "id":
			r.id = append(r.id[:0], value...)
			hasField = true
		case "retry":
			hasField = true
		}
	}
}

func (r *Reader) event() Event {
	return Event{Name: r.name, Data: r.data, ID: r.id, Raw: r.raw}
}

// readLine returns one line including its terminator ("\n", "\r\n" or a lone
// "\r" is treated as part of the content and trimmed later). The returned
// slice is valid until the next call.
func (r *Reader) readLine() ([]byte, error) {
	r.line = r.line[:0]
	for {
		frag, err := r.br.ReadSlice('\n')
		if len(r.line)+len(frag) > r.maxLine {
			return nil, fmt.Errorf("%w (over %d bytes)", ErrLineTooLong, r.maxLine)
		}
		if err == nil {
			if len(r.line) == 0 {
				return frag, nil
			}
			r.line = append(r.line, frag...)
			return r.line, nil
		}
		r.line = append(r.line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) && len(r.line) > 0 {
			return r.line, nil
		}
		return nil, err
	}
}

func trimEOL(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
	}
	if n := len(b); n > 0 && b[n-1] == '\r' {
		b = b[:n-1]
	}
	return b
}

// IsDone reports whether data is OpenAI's end-of-stream marker "[DONE]".
func IsDone(data []byte) bool { return string(data) == "[DONE]" }

// AppendData appends an event with the given name (none if empty) and data to
// dst in wire form, one "data:" line per line of data, ending with a blank line.
func AppendData(dst []byte, name string, data []byte) []byte {
	if name != "" {
		dst = append(dst, "event: "...)
		dst = append(dst, name...)
		dst = append(dst, '\n')
	}
	for {
		i := bytes.IndexByte(data, '\n')
		dst = append(dst, "data: "...)
		if i < 0 {
			dst = append(dst, data...)
			break
		}
		dst = append(dst, data[:i]...)
		dst = append(dst, '\n')
		data = data[i+1:]
	}
	return append(dst, '\n', '\n')
}

// Buffered reports how many bytes have been read from the stream but not yet
// returned as events; a proxy can hold a flush while more is already here.
func (r *Reader) Buffered() int { return r.br.Buffered() }

// Reset makes r read a new stream from src, keeping its buffers, so readers
// can be pooled.
func (r *Reader) Reset(src io.Reader) {
	r.br.Reset(src)
	r.raw, r.data, r.name, r.id, r.line = r.raw[:0], r.data[:0], r.name[:0], r.id[:0], r.line[:0]
}
