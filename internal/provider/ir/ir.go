package ir

import (
	"encoding/json"
	"strings"

	"baimo/internal/usage"
)

// The internal representation every format decodes into and encodes from.

type Role uint8

const (
	RoleUser Role = iota
	RoleAssistant
)

type PartKind uint8

const (
	PartText PartKind = iota
	PartImage
	PartThinking
	PartRedactedThinking
	PartToolCall
	PartToolResult
)

// part is one piece of a message. Which fields are used depends on kind.
type Part struct {
	Kind PartKind
	Text string // text, thinking, redacted thinking data

	Mime, Data, Url string // image: base64 data with its MIME type, or a URL

	Signature string // thinking

	Id, Name string          // tool call; tool result (id, and name when known)
	Args     json.RawMessage // tool call arguments, a JSON object
	Result   []Part          // tool result content: text and image parts
	IsError  bool            // tool result
}

type Message struct {
	Role  Role
	Parts []Part
}

type Tool struct {
	Name, Description string
	Schema            json.RawMessage
}

type ToolMode uint8

const (
	ToolAuto ToolMode = iota
	ToolNone
	ToolAny  // must call some tool
	ToolName // must call the named tool
)

type ToolChoice struct {
	Mode ToolMode
	Name string
}

type Thinking struct {
	Disabled bool
	Budget   int64  // tokens; -1 means dynamic, 0 unspecified
	Effort   string // minimal, low, medium, high; "" unspecified
	Include  bool   // Gemini includeThoughts
}

type ResponseFormat struct {
	Kind   string // json_object, json_schema
	Name   string
	Schema json.RawMessage
	Strict *bool // OpenAI's strict schema adherence; nil when not said
}

// request is a chat request in the internal representation.
type Request struct {
	System        []string
	Messages      []Message
	MaxTokens     *int64
	Temperature   *float64
	TopP          *float64
	TopK          *int64
	Stop          []string
	Stream        bool
	IncludeUsage  bool
	Tools         []Tool
	ToolChoice    *ToolChoice
	ParallelTools *bool
	Thinking      *Thinking
	Format        *ResponseFormat
	Seed          *int64
	Presence      *float64
	Frequency     *float64
	User          string
}

type StopReason uint8

const (
	StopEnd StopReason = iota
	StopMaxTokens
	StopSequence
	StopToolUse
	StopContentFilter
	StopRefusal
	StopPause
	StopOther
)

// response is a non-streaming answer in the internal representation.
type Response struct {
	Id, Model string
	Parts     []Part // text, thinking, redacted thinking, tool calls
	Stop      StopReason
	StopSeq   string
	Usage     usage.Usage
	HasUsage  bool
}

// apiError is an error answer in the internal representation.
type APIError struct {
	Status  int
	Kind    ErrorKind
	Message string
	// Type, Code and Param are OpenAI's error fields, when the gateway
	// words the error itself (insufficient_quota, model_not_found); the
	// OpenAI encoder otherwise derives the type from Kind.
	Type, Code, Param string
}

// effortBudgets maps OpenAI reasoning efforts to thinking budgets.
var effortBudgets = []struct {
	effort string
	budget int64
}{{"minimal", 1024}, {"low", 1024}, {"medium", 4096}, {"high", 16384}}

func BudgetForEffort(effort string) (int64, bool) {
	for _, e := range effortBudgets {
		if e.effort == effort {
			return e.budget, true
		}
	}
	return 0, false
}

// effortForBudget returns the smallest effort whose budget covers b.
func EffortForBudget(b int64) string {
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
func ParseDataURL(u string) (mime, data string, ok bool) {
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

// ImagePart is the image part for an image URL: inline data for a data:
// URL, else the URL.
func ImagePart(u string) Part {
	if mime, data, ok := ParseDataURL(u); ok {
		return Part{Kind: PartImage, Mime: mime, Data: data}
	}
	return Part{Kind: PartImage, Url: u}
}

// mimeFromURL guesses an image's MIME type from its URL's extension.
func MIMEFromURL(u string) string {
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
func TextOf(ps []Part) string {
	var b strings.Builder
	for _, p := range ps {
		if p.Kind == PartText {
			b.WriteString(p.Text)
		}
	}
	return b.String()
}

// limits on what a translator accepts or holds.
const (
	MaxToolArgs  = 8 << 20 // bytes of one streamed tool call's arguments held for Gemini
	MaxToolCalls = 4096    // tool calls in one stream
	MaxErrorText = 2048    // bytes of an unparseable upstream error kept as its message
)
