package responsesapi

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/conversation"
	"baimo/internal/sse"
)

// maxErrorBody bounds the error answer a relay keeps to store.
const maxErrorBody = 64 << 10

// relay sits between the gateway and the client of one response. It patches
// the response objects the answer carries (the id the store gave it, the
// echoes of what the gateway changed on the way upstream) and hands the
// final object to onFinal before the client gets it: a client that holds a
// complete answer can retrieve it, and continue it. A whole body is held
// until finish; a stream passes event by event.
//
// In tee mode (a background response) the client is optional: writes to
// it that fail detach it, and the answer goes on for the store alone.
type relay struct {
	mu       sync.Mutex
	client   http.ResponseWriter // nil when detached or absent
	header   http.Header         // the gateway's headers, copied to the client with the status
	tee      bool
	echo     *conversation.Echo
	onFinal  func(obj []byte)
	status   int
	mode     int // one of the modes below, set at WriteHeader
	body     []byte
	pending  []byte
	final    []byte
	errBody  []byte
	patchErr error
}

const (
	modeUnset = iota
	modeBody  // a 200 JSON answer, held until finish
	modeStream
	modePass // anything else (errors): passed on, its start kept
)

func newRelay(client http.ResponseWriter, tee bool, echo *conversation.Echo, onFinal func([]byte)) *relay {
	return &relay{client: client, tee: tee, echo: echo, onFinal: onFinal, header: http.Header{}}
}

// Header is the gateway's headers; the client gets them with the status.
func (r *relay) Header() http.Header { return r.header }

// sendHeader writes the headers and status to the client.
func (r *relay) sendHeader(w http.ResponseWriter, code int) {
	h := w.Header()
	for k, v := range r.header {
		h[k] = v
	}
	w.WriteHeader(code)
}

func (r *relay) WriteHeader(code int) {
	if r.mode != modeUnset {
		return
	}
	r.status = code
	ct := r.Header().Get("Content-Type")
	switch {
	case code == http.StatusOK && strings.HasPrefix(ct, "application/json"):
		r.mode = modeBody
		return
	case strings.HasPrefix(ct, "text/event-stream"):
		r.mode = modeStream
	default:
		r.mode = modePass
	}
	_ = r.toClient(func(w http.ResponseWriter) error { r.sendHeader(w, code); return nil })
}

func (r *relay) Write(b []byte) (int, error) {
	if r.mode == modeUnset {
		r.WriteHeader(http.StatusOK)
	}
	switch r.mode {
	case modeBody:
		r.body = append(r.body, b...)
		return len(b), nil
	case modePass:
		if n := min(len(b), maxErrorBody-len(r.errBody)); n > 0 {
			r.errBody = append(r.errBody, b[:n]...)
		}
		return len(b), r.write(b)
	}
	r.pending = append(r.pending, b...)
	for {
		end := eventEnd(r.pending)
		if end < 0 {
			return len(b), nil
		}
		if err := r.event(r.pending[:end]); err != nil {
			return 0, err
		}
		r.pending = r.pending[end:]
	}
}

// eventEnd is the length of the first whole event in b (with its blank
// line), or -1.
func eventEnd(b []byte) int {
	best := -1
	for _, sep := range [...]string{"\n\n", "\r\n\r\n", "\r\r"} {
		if i := bytes.Index(b, []byte(sep)); i >= 0 && (best < 0 || i+len(sep) < best) {
			best = i + len(sep)
		}
	}
	return best
}

// event patches and writes one whole event.
func (r *relay) event(raw []byte) error {
	if !bytes.Contains(raw, []byte(`"response"`)) {
		return r.write(raw)
	}
	ev, err := sse.NewReader(bytes.NewReader(raw), 0).Next()
	if err != nil {
		return r.write(raw)
	}
	data, obj, final, err := r.echo.PatchEvent(ev.Data)
	if err != nil {
		r.patchErr = err
		return r.write(raw)
	}
	if final {
		r.final = obj
		if r.onFinal != nil {
			r.onFinal(obj)
		}
	}
	return r.write(sse.AppendData(nil, string(ev.Name), data))
}

// write writes b to the client, if there is one.
func (r *relay) write(b []byte) error {
	return r.toClient(func(w http.ResponseWriter) error { _, err := w.Write(b); return err })
}

// toClient runs fn on the client under the lock. In tee mode an error
// detaches the client and is not reported: the answer goes on.
func (r *relay) toClient(fn func(http.ResponseWriter) error) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.client == nil {
		return nil
	}
	err := fn(r.client)
	if err != nil && r.tee {
		r.client = nil
		return nil
	}
	return err
}

// FlushError flushes the client (http.ResponseController calls it).
func (r *relay) FlushError() error {
	return r.toClient(func(w http.ResponseWriter) error { return http.NewResponseController(w).Flush() })
}

// SetWriteDeadline bounds the next write to the client.
func (r *relay) SetWriteDeadline(t time.Time) error {
	return r.toClient(func(w http.ResponseWriter) error {
		_ = http.NewResponseController(w).SetWriteDeadline(t)
		return nil
	})
}

// detach stops writing to the client (its handler is returning).
func (r *relay) detach() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.client = nil
}

// writeError writes e to the client when the gateway wrote nothing, with
// the gateway's headers (the request id).
func (r *relay) writeError(e *apierr.Error) {
	_ = r.toClient(func(w http.ResponseWriter) error {
		h := w.Header()
		for k, v := range r.header {
			h[k] = v
		}
		writeError(w, e)
		return nil
	})
}

// finish writes a held body, patched, after handing it to onFinal, and
// whatever is left of a stream.
func (r *relay) finish() {
	switch r.mode {
	case modeBody:
		obj, err := r.echo.Patch(r.body)
		if err != nil {
			r.patchErr, obj = err, r.body
		} else {
			r.final = obj
			if r.onFinal != nil {
				r.onFinal(obj)
			}
		}
		_ = r.toClient(func(w http.ResponseWriter) error {
			r.header.Set("Content-Length", strconv.Itoa(len(obj)))
			r.sendHeader(w, r.status)
			_, err := w.Write(obj)
			return err
		})
	case modeStream:
		if len(r.pending) > 0 {
			_ = r.write(r.pending)
			r.pending = nil
		}
	}
}
