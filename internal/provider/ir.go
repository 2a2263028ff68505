package provider

import (
	"encoding/json"
	"strings"

	"baimo/internal/usage"
)

// The internal representation every format decodes into and encodes from.

type role uint8

const (
	roleUser role = iota
	roleAssistant
)

type partKind uint8

const (
	partText partKind = iota
	partImage
	partThinking
	partRedactedThinking
	partToolCall
	partToolResult
)

// part is one piece of a message. Which fields are used depends on kind.
type part struct {
	kind partKind
	text string // text, thinking, redacted thinking data

	mime, data, url string // image: base64 data with its MIME type, or a URL

	signature string // thinking

	id, name string          // tool call; tool result (id, and name when known)
	args     json.RawMessage // tool call arguments, a JSON object
	result   []part          // tool result content: text and image parts
	isError  bool            // tool result
}

type message struct {
	role  role
	parts []part
}

type toolDef struct {
	name, description string
	schema            json.RawMessage
}

type toolMode uint8

const (
	toolAuto toolMode = iota
	toolNone
	toolAny  // must call some tool
	toolName // must call the named tool
)

type toolChoice struct {
	mode toolMode
	name string
}

type thinking struct {
	disabled bool
	budget   int64  // tokens; -1 means dynamic, 0 unspecified
	effort   string // minimal, low, medium, high; "" unspecified
	include  bool   // Gemini includeThoughts
}

type responseFormat struct {
	kind   string // json_object, json_schema
	name   string
	schema json.RawMessage
}

// request is a chat request in the internal representation.
type request struct {
	system        []string
	messages      []message
	maxTokens     *int64
	temperature   *float64
	topP          *float64
	topK          *int64
	stop          []string
	stream        bool
	includeUsage  bool
	tools         []toolDef
	toolChoice    *toolChoice
	parallelTools *bool
	thinking      *thinking
	format        *responseFormat
	seed          *int64
	presence      *float64
	frequency     *float64
	user          string
}

type stopReason uint8

const (
	stopEnd stopReason = iota
	stopMaxTokens
	stopSequence
	stopToolUse
	stopContentFilter
	stopRefusal
	stopPause
	stopOther
)

// response is a non-streaming answer in the internal representation.
type response struct {
	id, model string
	parts     []part // text, thinking, redacted thinking, tool calls
	stop      stopReason
	stopSeq   string
	usage     usage.Usage
	hasUsage  bool
}

// apiError is an error answer in the internal representation.
type apiError struct {
	status  int
	kind    ErrorKind
	message string
}

// effortBudgets maps OpenAI reasoning efforts to thinking budgets.
var effortBudgets = []struct {
	effort string
	budget int64
}{{"minimal", 1024}, {"low", 1024}, {"medium", 4096}, {"high", 16384}}

func budgetForEffort(effort string) (int64, bool) {
	for _, e := range effortBudgets {
		if e.effort == effort {
			return e.budget, true
		}
	}
	return 0, false
}

// effortForBudget returns the smallest effort whose budget covers b.
func effortForBudget(b int64) string {
	if b < 0 {
		return "medium" // dynamic
	}
	for _, e := range effortBudgets[1:] {
		if b <= e.budget {
			return e.effort
		}
	}
	return "high"
}

// parseDataURL splits "data:<mime>;base64,<data>".
func parseDataURL(u string) (mime, data string, ok bool) {
	rest, found := strings.CutPrefix(u, "data:")
	if !found {
		return "", "", false
	}
	meta, data, found := strings.Cut(rest, ",")
	if !found {
		return "", "", false
	}
	mime, found = strings.CutSuffix(meta, ";base64")
	if !found || mime == "" {
		return "", "", false
	}
	return mime, data, true
}

// mimeFromURL guesses an image's MIME type from its URL's extension.
func mimeFromURL(u string) string {
	p := u
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		p = p[:i]
	}
	p = strings.ToLower(p)
	for ext, m := range map[string]string{".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".gif": "image/gif", ".webp": "image/webp"} {
		if strings.HasSuffix(p, ext) {
			return m
		}
	}
	return ""
}

// textOf joins the text parts of ps.
func textOf(ps []part) string {
	var b strings.Builder
	for _, p := range ps {
		if p.kind == partText {
			b.WriteString(p.text)
		}
	}
	return b.String()
}

// limits on what a translator accepts or holds.
const (
	maxToolArgs  = 8 << 20 // bytes of one streamed tool call's arguments held for Gemini
	maxToolCalls = 4096    // tool calls in one stream
	maxErrorText = 2048    // bytes of an unparseable upstream error kept as its message
)
