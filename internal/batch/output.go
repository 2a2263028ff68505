package batch

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
)

// Results are written in the batch API's own line format: OpenAI's output
// file (2xx answers) and error file (error answers, and lines that never
// ran); Anthropic's one results file, every line with its result type.

// outcome sorts a line's result.
func outcome(l *Line) string {
	switch {
	case l.State == LineCancelled:
		return "canceled"
	case l.State == LineExpired:
		return "expired"
	case l.Status >= 200 && l.Status < 300:
		return "succeeded"
	case l.State == LineDone || l.State == LineSettled:
		return "errored"
	}
	return ""
}

// lineID is OpenAI's id of a line's result: batch_req_ and a hash of the
// line's request id, stable across runs.
func lineID(batchID, customID string) string {
	sum := sha256.Sum256([]byte(RequestID(batchID, customID)))
	return "batch_req_" + hex.EncodeToString(sum[:12])
}

// raw returns b as a JSON value: itself when it is one, else a string.
func raw(b []byte) json.RawMessage {
	if len(b) > 0 && json.Valid(b) {
		return b
	}
	s, _ := json.Marshal(string(b))
	return s
}

type openAIResponse struct {
	StatusCode int             `json:"status_code"`
	RequestID  string          `json:"request_id"`
	Body       json.RawMessage `json:"body"`
}

type openAIError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

type openAILine struct {
	ID       string          `json:"id"`
	CustomID string          `json:"custom_id"`
	Response *openAIResponse `json:"response"`
	Error    *openAIError    `json:"error"`
}

type anthropicResult struct {
	Type    string          `json:"type"`
	Message json.RawMessage `json:"message,omitempty"`
	Error   json.RawMessage `json:"error,omitempty"`
}

type anthropicLine struct {
	CustomID string          `json:"custom_id"`
	Result   anthropicResult `json:"result"`
}

// resultLine is a line's result in api's format, or nil when it has none
// (it has not ended). errorFile says, for OpenAI, which file it goes to.
func resultLine(api API, l *Line) (b []byte, errorFile bool, err error) {
	o := outcome(l)
	if o == "" {
		return nil, false, nil
	}
	if api == Anthropic {
		r := anthropicLine{CustomID: l.CustomID, Result: anthropicResult{Type: o}}
		switch o {
		case "succeeded":
			r.Result.Message = raw(l.Body)
		case "errored":
			r.Result.Error = raw(l.Body)
		}
		b, err := json.Marshal(r)
		return b, false, err
	}
	r := openAILine{ID: lineID(l.BatchID, l.CustomID), CustomID: l.CustomID}
	switch o {
	case "succeeded", "errored":
		r.Response = &openAIResponse{StatusCode: l.Status, RequestID: RequestID(l.BatchID, l.CustomID), Body: raw(l.Body)}
	case "canceled":
		r.Error = &openAIError{Code: "batch_cancelled", Message: "This request was not run: the batch was cancelled."}
	case "expired":
		r.Error = &openAIError{Code: "batch_expired", Message: "This request could not be executed before the completion window expired."}
	}
	b, err = json.Marshal(r)
	return b, o != "succeeded", err
}

// linePage is how many lines are read at once to write results.
const linePage = 512

// writeResults writes the results of a batch's ended lines to w, in order:
// those of the error file (errors true) or the others.
func writeResults(ctx context.Context, st Store, b *Batch, errors bool, w io.Writer) (n int, err error) {
	bw := bufio.NewWriterSize(w, 64<<10)
	for after := -1; ; {
		lines, err := st.Lines(ctx, b.ID, after, linePage)
		if err != nil {
			return n, err
		}
		for i := range lines {
			line, toErrors, err := resultLine(b.API, &lines[i])
			if err != nil {
				return n, fmt.Errorf("result of line %d: %w", lines[i].Index, err)
			}
			if line == nil || (b.API == OpenAI && toErrors != errors) {
				continue
			}
			if _, err := bw.Write(append(line, '\n')); err != nil {
				return n, err
			}
			n++
		}
		if len(lines) < linePage {
			break
		}
		after = lines[len(lines)-1].Index
	}
	return n, bw.Flush()
}
