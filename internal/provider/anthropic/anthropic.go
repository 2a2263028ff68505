// Package anthropic holds the wire types of Anthropic's Messages API and the
// parsers that read its usage into the normalised usage.Usage.
//
// Anthropic reports input_tokens without the tokens read from or written to
// the prompt cache; normalised Input is input_tokens + cache_read_input_tokens
// + cache_creation_input_tokens. The split of cache writes by lifetime comes
// from usage.cache_creation.ephemeral_5m_input_tokens and
// ephemeral_1h_input_tokens; when that object is absent every cache write is
// counted as 5-minute (the default lifetime). Output is output_tokens, which
// already includes thinking; Anthropic does not report thinking tokens apart,
// so Reasoning stays 0.
//
// In a stream the usage is split: message_start carries the input side (and a
// provisional output count), message_delta carries cumulative counts. Fields
// present in a later event replace earlier ones (see StreamUsage).
package anthropic

import (
	"bytes"
	"encoding/json"
	"fmt"

	"baimo/internal/usage"
)

// Version is the anthropic-version header value this package speaks.
const Version = "2023-06-01"

// Request is a Messages API request body.
type Request struct {
	Model         string          `json:"model"`
	Messages      []Message       `json:"messages"`
	System        json.RawMessage `json:"system,omitempty"` // string or []ContentBlock
	MaxTokens     int64           `json:"max_tokens"`
	Metadata      *Metadata       `json:"metadata,omitempty"`
	StopSequences []string        `json:"stop_sequences,omitempty"`
	Stream        bool            `json:"stream,omitempty"`
	Temperature   *float64        `json:"temperature,omitempty"`
	TopP          *float64        `json:"top_p,omitempty"`
	TopK          *int64          `json:"top_k,omitempty"`
	Tools         []Tool          `json:"tools,omitempty"`
	ToolChoice    *ToolChoice     `json:"tool_choice,omitempty"`
	Thinking      *Thinking       `json:"thinking,omitempty"`
}

// Metadata is the request's metadata object.
type Metadata struct {
	UserID string `json:"user_id,omitempty"`
}

// Message is one turn; Content is a string or a []ContentBlock.
type Message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// ContentBlock is the union of the content block shapes this package reads.
// Writers use the specific block types below so that required empty fields
// (a text block's "text") are always present.
type ContentBlock struct {
	Type      string          `json:"type"`
	Text      string          `json:"text,omitempty"`
	Source    *ImageSource    `json:"source,omitempty"`
	ID        string          `json:"id,omitempty"`
	Name      string          `json:"name,omitempty"`
	Input     json.RawMessage `json:"input,omitempty"`
	ToolUseID string          `json:"tool_use_id,omitempty"`
	Content   json.RawMessage `json:"content,omitempty"` // tool_result: string or []ContentBlock
	IsError   bool            `json:"is_error,omitempty"`
	Thinking  string          `json:"thinking,omitempty"`
	Signature string          `json:"signature,omitempty"`
	Data      string          `json:"data,omitempty"` // redacted_thinking
	// CacheControl is read so that it is recognised; it has no equivalent in
	// other formats.
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
	Citations    json.RawMessage `json:"citations,omitempty"`
}

// ImageSource is an image block's source: base64 data or a URL.
type ImageSource struct {
	Type      string `json:"type"` // "base64" or "url"
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

// TextBlock is a text content block as written.
type TextBlock struct {
	Type string `json:"type"` // "text"
	Text string `json:"text"`
}

// ImageBlock is an image content block as written.
type ImageBlock struct {
	Type   string      `json:"type"` // "image"
	Source ImageSource `json:"source"`
}

// ThinkingBlock is a thinking content block as written.
type ThinkingBlock struct {
	Type      string `json:"type"` // "thinking"
	Thinking  string `json:"thinking"`
	Signature string `json:"signature"`
}

// RedactedThinkingBlock is a redacted_thinking content block.
type RedactedThinkingBlock struct {
	Type string `json:"type"` // "redacted_thinking"
	Data string `json:"data"`
}

// ToolUseBlock is a tool_use content block as written.
type ToolUseBlock struct {
	Type  string          `json:"type"` // "tool_use"
	ID    string          `json:"id"`
	Name  string          `json:"name"`
	Input json.RawMessage `json:"input"`
}

// ToolResultBlock is a tool_result content block as written.
type ToolResultBlock struct {
	Type      string `json:"type"` // "tool_result"
	ToolUseID string `json:"tool_use_id"`
	Content   any    `json:"content,omitempty"` // string or []any of blocks
	IsError   bool   `json:"is_error,omitempty"`
}

// Tool is a client tool definition. Server tools carry a Type.
type Tool struct {
	Type         string          `json:"type,omitempty"`
	Name         string          `json:"name"`
	Description  string          `json:"description,omitempty"`
	InputSchema  json.RawMessage `json:"input_schema,omitempty"`
	CacheControl json.RawMessage `json:"cache_control,omitempty"`
}

// ToolChoice says whether and which tool the model must use.
type ToolChoice struct {
	Type                   string `json:"type"` // auto, any, tool, none
	Name                   string `json:"name,omitempty"`
	DisableParallelToolUse bool   `json:"disable_parallel_tool_use,omitempty"`
}

// Thinking configures extended thinking.
type Thinking struct {
	Type         string `json:"type"` // enabled, disabled
	BudgetTokens int64  `json:"budget_tokens,omitempty"`
}

// Response is a non-streaming Messages API response, and the message object
// of a message_start event.
type Response struct {
	ID           string            `json:"id"`
	Type         string            `json:"type"` // "message"
	Role         string            `json:"role"`
	Model        string            `json:"model"`
	Content      []json.RawMessage `json:"content"`
	StopReason   *string           `json:"stop_reason"`
	StopSequence *string           `json:"stop_sequence"`
	Usage        Usage             `json:"usage"`
}

// Usage is Anthropic's usage object. Pointers distinguish absent from zero,
// which matters when merging message_delta into message_start.
type Usage struct {
	InputTokens              *int64         `json:"input_tokens,omitempty"`
	CacheCreationInputTokens *int64         `json:"cache_creation_input_tokens,omitempty"`
	CacheReadInputTokens     *int64         `json:"cache_read_input_tokens,omitempty"`
	CacheCreation            *CacheCreation `json:"cache_creation,omitempty"`
	OutputTokens             *int64         `json:"output_tokens,omitempty"`
	ServerToolUse            *ServerToolUse `json:"server_tool_use,omitempty"`
}

// CacheCreation splits cache writes by lifetime.
type CacheCreation struct {
	Ephemeral5mInputTokens int64 `json:"ephemeral_5m_input_tokens"`
	Ephemeral1hInputTokens int64 `json:"ephemeral_1h_input_tokens"`
}

// ServerToolUse counts server-side tool calls.
type ServerToolUse struct {
	WebSearchRequests int64 `json:"web_search_requests"`
}

// Merge overlays the fields present in later onto u.
func (u *Usage) Merge(later Usage) {
	if later.InputTokens != nil {
		u.InputTokens = later.InputTokens
	}
	if later.CacheCreationInputTokens != nil {
		u.CacheCreationInputTokens = later.CacheCreationInputTokens
	}
	if later.CacheReadInputTokens != nil {
		u.CacheReadInputTokens = later.CacheReadInputTokens
	}
	if later.CacheCreation != nil {
		u.CacheCreation = later.CacheCreation
	}
	if later.OutputTokens != nil {
		u.OutputTokens = later.OutputTokens
	}
	if later.ServerToolUse != nil {
		u.ServerToolUse = later.ServerToolUse
	}
}

func val(p *int64) int64 {
	if p == nil || *p < 0 {
		return 0
	}
	return *p
}

// Normalise returns u as a usage.Usage (see the package doc).
func (u Usage) Normalise() usage.Usage {
	in, read, write := val(u.InputTokens), val(u.CacheReadInputTokens), val(u.CacheCreationInputTokens)
	var w5, w1 int64
	if cc := u.CacheCreation; cc != nil {
		w5, w1 = max(cc.Ephemeral5mInputTokens, 0), max(cc.Ephemeral1hInputTokens, 0)
	}
	if write > w5+w1 {
		w5 += write - (w5 + w1) // an unsplit remainder has the default lifetime
	}
	write = w5 + w1
	n := usage.Usage{
		Input:        in + read + write,
		CachedInput:  read,
		CacheWrite5m: w5,
		CacheWrite1h: w1,
		Output:       val(u.OutputTokens),
		Source:       usage.SourceVendor,
	}
	if u.ServerToolUse != nil {
		n.SearchCalls = max(u.ServerToolUse.WebSearchRequests, 0)
	}
	return n
}

// FromNormalised returns the Anthropic usage object for n: input_tokens is
// n.Input minus cache reads and writes.
func FromNormalised(n usage.Usage) Usage {
	p := func(v int64) *int64 { return &v }
	u := Usage{
		InputTokens:              p(n.UncachedInput()),
		CacheCreationInputTokens: p(n.CacheWrite5m + n.CacheWrite1h),
		CacheReadInputTokens:     p(n.CachedInput),
		CacheCreation:            &CacheCreation{Ephemeral5mInputTokens: n.CacheWrite5m, Ephemeral1hInputTokens: n.CacheWrite1h},
		OutputTokens:             p(n.Output),
	}
	if n.SearchCalls > 0 {
		u.ServerToolUse = &ServerToolUse{WebSearchRequests: n.SearchCalls}
	}
	return u
}

// ResponseUsage returns the normalised usage of a non-streaming response body.
func ResponseUsage(body []byte) (usage.Usage, error) {
	var r struct {
		Usage *Usage `json:"usage"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return usage.Usage{}, fmt.Errorf("anthropic response usage: %w", err)
	}
	if r.Usage == nil {
		return usage.Usage{}, nil
	}
	return r.Usage.Normalise(), nil
}

// StreamUsage accumulates the usage of a Messages stream, event by event. Its
// zero value is ready to use.
type StreamUsage struct {
	u    Usage
	seen bool
}

// Event reads the usage of one stream event, given its event name and data.
// Only message_start and message_delta are decoded; every other event costs a
// comparison of its name (or, when the name is absent, a prefix search of its
// data).
func (s *StreamUsage) Event(name, data []byte) error {
	typ := string(name)
	if typ == "" {
		typ = peekType(data)
	}
	switch typ {
	case "message_start":
		var ev struct {
			Message struct {
				Usage Usage `json:"usage"`
			} `json:"message"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("anthropic message_start: %w", err)
		}
		s.u.Merge(ev.Message.Usage)
		s.seen = true
	case "message_delta":
		var ev struct {
			Usage Usage `json:"usage"`
		}
		if err := json.Unmarshal(data, &ev); err != nil {
			return fmt.Errorf("anthropic message_delta: %w", err)
		}
		s.u.Merge(ev.Usage)
		s.seen = true
	}
	return nil
}

// Usage returns the usage seen so far, and whether any was seen.
func (s *StreamUsage) Usage() (usage.Usage, bool) {
	if !s.seen {
		return usage.Usage{}, false
	}
	return s.u.Normalise(), true
}

// peekType finds the "type" of an event whose name was not sent. Only data
// that mentions "usage" is decoded.
func peekType(data []byte) string {
	if !bytes.Contains(data, []byte(`"usage"`)) {
		return ""
	}
	var t struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(data, &t) != nil {
		return ""
	}
	return t.Type
}

// Error is Anthropic's error body.
type Error struct {
	Type  string      `json:"type"` // "error"
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner error object.
type ErrorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}
