package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/gateway"
	"baimo/internal/jsonfield"
	"baimo/internal/keys"
	"baimo/internal/provider/ir"
)

// Target is what a batch's lines call: a wire format and an endpoint.
type Target struct {
	Format   ir.Format
	Endpoint gateway.Endpoint
}

// Targets are the endpoints a batch may name, by the URL its lines name.
var Targets = map[string]Target{
	"/v1/chat/completions": {ir.FormatOpenAI, gateway.Chat},
	"/v1/completions":      {ir.FormatOpenAI, gateway.Completions},
	"/v1/embeddings":       {ir.FormatOpenAI, gateway.Embeddings},
	"/v1/responses":        {ir.FormatResponses, gateway.Responses},
	"/v1/messages":         {ir.FormatAnthropic, gateway.Messages},
}

// maxCustomID bounds a line's custom_id.
const maxCustomID = 512

// envelope is one input line: its custom_id and where its request body is.
type envelope struct {
	customID string
	body     jsonfield.Span
}

// bodyKey is the member of an input line that holds the request: OpenAI's
// "body", Anthropic's "params".
func bodyKey(api API) string {
	if api == Anthropic {
		return "params"
	}
	return "body"
}

// readEnvelope reads one input line of api's shape. Its members must be
// spelled plainly and once (a parser that reads "custom_id" twice, or a
// "Custom_Id", might read another line than baimo did); OpenAI's method
// must be POST and its url the batch's endpoint.
func readEnvelope(api API, endpoint string, line []byte) (envelope, *LineError) {
	var e envelope
	if !json.Valid(line) {
		return e, &LineError{Code: "invalid_json", Message: "This line is not valid JSON."}
	}
	seen := map[string]bool{}
	var bad *LineError
	var method, url string
	err := jsonfield.Each(line, func(key []byte, v jsonfield.Span) bool {
		k := string(key)
		if bytes.IndexByte(key, '\\') >= 0 {
			bad = &LineError{Code: "invalid_request", Message: fmt.Sprintf("The member %q must be written without escapes.", k)}
			return false
		}
		if seen[k] {
			bad = &LineError{Code: "invalid_request", Param: k, Message: fmt.Sprintf("The member %s appears twice.", k)}
			return false
		}
		seen[k] = true
		val := line[v.Start:v.End]
		switch {
		case k == "custom_id":
			s, ok := jsonfield.String(val)
			if !ok || s == "" || len(s) > maxCustomID {
				bad = &LineError{Code: "invalid_request", Param: "custom_id",
					Message: fmt.Sprintf("custom_id must be a string of 1 to %d bytes.", maxCustomID)}
				return false
			}
			e.customID = s
		case k == bodyKey(api):
			if len(val) == 0 || val[0] != '{' {
				bad = &LineError{Code: "invalid_request", Param: k, Message: k + " must be a JSON object."}
				return false
			}
			e.body = v
		case api == OpenAI && k == "method":
			method, _ = jsonfield.String(val)
		case api == OpenAI && k == "url":
			url, _ = jsonfield.String(val)
		default:
			bad = &LineError{Code: "invalid_request", Param: k, Message: fmt.Sprintf("Unknown member %q in a batch line.", k)}
			return false
		}
		return true
	})
	switch {
	case errors.Is(err, jsonfield.ErrNotObject):
		return e, &LineError{Code: "invalid_request", Message: "A batch line must be a JSON object."}
	case err != nil:
		return e, &LineError{Code: "invalid_json", Message: "This line is not valid JSON."}
	case bad != nil:
		return e, bad
	case e.customID == "":
		return e, &LineError{Code: "missing_required_parameter", Param: "custom_id", Message: "Missing custom_id."}
	case e.body.End == 0:
		return e, &LineError{Code: "missing_required_parameter", Param: bodyKey(api), Message: "Missing " + bodyKey(api) + "."}
	}
	if api == OpenAI {
		if method != "POST" {
			return e, &LineError{Code: "invalid_request", Param: "method", Message: "method must be POST."}
		}
		if url != endpoint {
			return e, &LineError{Code: "mismatched_endpoint", Param: "url",
				Message: fmt.Sprintf("The url %q of this line is not the batch's endpoint %s.", url, endpoint)}
		}
	}
	return e, nil
}

// Checker admits a line as the request path will (*gateway.Gateway).
type Checker interface {
	CheckLine(key *keys.Key, f ir.Format, ep gateway.Endpoint, body []byte, at time.Time) (gateway.LineCheck, *apierr.Error)
}

// checked is what validation found in an input file.
type checked struct {
	lines  []Line
	errs   []LineError
	nerr   int
	hold   int64 // the lines' worst cases, summed
	models map[string]int
}

// errTooManyLines stops validation of a file past Limits.MaxLines.
var errTooManyLines = errors.New("batch: too many lines")

// check reads an input file line by line (never all of it at once) and
// admits each line, at at, for the batch id. Blank lines are skipped.
func check(ctx context.Context, r io.Reader, api API, endpoint string, t Target, key *keys.Key, c Checker, lim Limits,
	batchID string, at time.Time) (checked, error) {
	out := checked{models: map[string]int{}}
	ids := map[string]bool{}
	fail := func(e LineError) {
		out.nerr++
		if len(out.errs) < lim.MaxErrors {
			out.errs = append(out.errs, e)
		}
	}
	lr := newLineReader(r, lim.MaxLineBytes)
	for n := 1; ; n++ {
		if n%256 == 0 && ctx.Err() != nil {
			return out, ctx.Err()
		}
		line, off, err := lr.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if errors.Is(err, errLineTooLong) {
			fail(LineError{Code: "line_too_long", Line: n, Message: fmt.Sprintf("This line is longer than %d bytes.", lim.MaxLineBytes)})
			continue
		}
		if err != nil {
			return out, err
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if len(out.lines)+out.nerr >= lim.MaxLines {
			return out, errTooManyLines
		}
		e, le := readEnvelope(api, endpoint, line)
		if le != nil {
			le.Line = n
			fail(*le)
			continue
		}
		if ids[e.customID] {
			fail(LineError{Code: "duplicate_custom_id", Param: "custom_id", Line: n,
				Message: fmt.Sprintf("The custom_id %q is used by another line; each must be unique.", e.customID)})
			continue
		}
		ids[e.customID] = true
		body := line[e.body.Start:e.body.End]
		lc, aerr := c.CheckLine(key, t.Format, t.Endpoint, body, at)
		if aerr != nil {
			param := bodyKey(api)
			if aerr.Param != "" {
				param += "." + aerr.Param
			}
			fail(LineError{Code: aerr.Code, Param: param, Line: n, Message: aerr.Message})
			continue
		}
		out.models[lc.Model]++
		if out.hold, err = addNanos(out.hold, lc.Hold); err != nil {
			return out, err
		}
		out.lines = append(out.lines, Line{BatchID: batchID, Index: len(out.lines), CustomID: e.customID, Model: lc.Model,
			State: LinePending, Offset: off + int64(e.body.Start), Length: int64(e.body.End - e.body.Start), Hold: lc.Hold,
			Tokens: lc.Prompt + lc.Output})
	}
	if len(out.lines) == 0 && out.nerr == 0 {
		fail(LineError{Code: "empty_file", Message: "The input file has no lines."})
	}
	return out, nil
}

// addNanos adds two amounts, refusing an overflow.
func addNanos(a, b int64) (int64, error) {
	if b > 0 && a > (1<<63-1)-b {
		return 0, errors.New("batch: the lines' holds overflow")
	}
	return a + b, nil
}

// errLineTooLong is a line past the limit; the reader skips to the next.
var errLineTooLong = errors.New("batch: line too long")

// lineReader reads the lines of a file and where each starts, holding at
// most one line of up to max bytes.
type lineReader struct {
	br  *bufio.Reader
	max int
	off int64
	buf []byte
}

func newLineReader(r io.Reader, max int) *lineReader {
	return &lineReader{br: bufio.NewReaderSize(r, 64<<10), max: max}
}

// next returns the next line without its newline, and its offset.
func (l *lineReader) next() ([]byte, int64, error) {
	start := l.off
	l.buf = l.buf[:0]
	long := false
	for {
		chunk, err := l.br.ReadSlice('\n')
		l.off += int64(len(chunk))
		if !long {
			if len(l.buf)+len(chunk) > l.max+1 {
				long, l.buf = true, l.buf[:0]
			} else {
				l.buf = append(l.buf, chunk...)
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if l.off == start {
				return nil, start, io.EOF
			}
		case err != nil:
			return nil, start, err
		}
		if long {
			return nil, start, errLineTooLong
		}
		return bytes.TrimSuffix(bytes.TrimSuffix(l.buf, []byte{'\n'}), []byte{'\r'}), start, nil
	}
}
