// The wire types of OpenAI's chat completions API that format translation
// needs, and the normalisation of its usage object across the
// OpenAI-compatible vendors that extend it (see Usage.Normalise).

package openai

import (
	"encoding/json"

	"baimo/internal/usage"
)

// Request is a chat completions request body.
type Request struct {
	Model               string          `json:"model"`
	Messages            []Message       `json:"messages"`
	MaxTokens           *int64          `json:"max_tokens,omitempty"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens,omitempty"`
	Temperature         *float64        `json:"temperature,omitempty"`
	TopP                *float64        `json:"top_p,omitempty"`
	N                   *int64          `json:"n,omitempty"`
	Stop                json.RawMessage `json:"stop,omitempty"` // string or []string
	Stream              bool            `json:"stream,omitempty"`
	StreamOptions       *StreamOptions  `json:"stream_options,omitempty"`
	Tools               []Tool          `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"` // string or object
	ParallelToolCalls   *bool           `json:"parallel_tool_calls,omitempty"`
	ReasoningEffort     string          `json:"reasoning_effort,omitempty"`
	ResponseFormat      *ResponseFormat `json:"response_format,omitempty"`
	Seed                *int64          `json:"seed,omitempty"`
	PresencePenalty     *float64        `json:"presence_penalty,omitempty"`
	FrequencyPenalty    *float64        `json:"frequency_penalty,omitempty"`
	User                string          `json:"user,omitempty"`
}

// StreamOptions asks for a final usage chunk.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// Message is one chat message. Content is a string, an array of parts, or
// null (an assistant message with only tool calls).
type Message struct {
	Role             string          `json:"role"`
	Content          json.RawMessage `json:"content,omitempty"`
	Name             string          `json:"name,omitempty"`
	ToolCalls        []ToolCall      `json:"tool_calls,omitempty"`
	ToolCallID       string          `json:"tool_call_id,omitempty"`
	ReasoningContent string          `json:"reasoning_content,omitempty"`
	Refusal          *string         `json:"refusal,omitempty"`
}

// ContentPart is one part of a message's content array.
type ContentPart struct {
	Type     string    `json:"type"` // text, image_url
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is an image by URL or data: URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// ToolCall is one function call made by the assistant.
type ToolCall struct {
	Index    *int         `json:"index,omitempty"` // streaming only
	ID       string       `json:"id,omitempty"`
	Type     string       `json:"type,omitempty"` // "function"
	Function FunctionCall `json:"function"`
}

// FunctionCall names a function and carries its arguments as a JSON string.
type FunctionCall struct {
	Name      string `json:"name,omitempty"`
	Arguments string `json:"arguments"`
}

// Tool is a function tool definition.
type Tool struct {
	Type     string   `json:"type"` // "function"
	Function Function `json:"function"`
}

// Function declares a function.
type Function struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// ResponseFormat asks for JSON output.
type ResponseFormat struct {
	Type       string      `json:"type"` // text, json_object, json_schema
	JSONSchema *JSONSchema `json:"json_schema,omitempty"`
}

// JSONSchema is the json_schema response format's schema.
type JSONSchema struct {
	Name   string          `json:"name"`
	Schema json.RawMessage `json:"schema,omitempty"`
	Strict *bool           `json:"strict,omitempty"`
}

// Response is a non-streaming chat completion.
type Response struct {
	ID      string   `json:"id"`
	Object  string   `json:"object"` // "chat.completion"
	Created int64    `json:"created"`
	Model   string   `json:"model"`
	Choices []Choice `json:"choices"`
	Usage   *Usage   `json:"usage,omitempty"`
}

// Choice is one answer of a non-streaming completion.
type Choice struct {
	Index        int             `json:"index"`
	Message      ResponseMessage `json:"message"`
	FinishReason *string         `json:"finish_reason"`
	// Logprobs is always written, null, as OpenAI's schema requires: an
	// answer baimo writes itself has no log probabilities.
	Logprobs noLogprobs `json:"logprobs"`
}

// noLogprobs is written as null and skips what it reads.
type noLogprobs struct{}

// MarshalJSON writes null.
func (noLogprobs) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// UnmarshalJSON ignores an upstream's log probabilities.
func (*noLogprobs) UnmarshalJSON([]byte) error { return nil }

// ResponseMessage is the assistant message of a completion. Content is always
// written, null when there is none, as OpenAI does.
type ResponseMessage struct {
	Role             string     `json:"role"`
	Content          *string    `json:"content"`
	ReasoningContent string     `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	Refusal          *string    `json:"refusal"`
}

// Chunk is one chat.completion.chunk of a stream.
type Chunk struct {
	ID      string        `json:"id"`
	Object  string        `json:"object"` // "chat.completion.chunk"
	Created int64         `json:"created"`
	Model   string        `json:"model"`
	Choices []ChunkChoice `json:"choices"`
	Usage   *Usage        `json:"usage,omitempty"`
}

// ChunkChoice is one choice's delta.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
	// Usage is where Kimi puts a stream's usage (inside the last choice).
	Usage *Usage `json:"usage,omitempty"`
}

// Delta is the change a chunk carries.
type Delta struct {
	Role             string     `json:"role,omitempty"`
	Content          *string    `json:"content,omitempty"`
	ReasoningContent *string    `json:"reasoning_content,omitempty"`
	ToolCalls        []ToolCall `json:"tool_calls,omitempty"`
	Refusal          *string    `json:"refusal,omitempty"`
}

// Usage is the usage object, with the extensions of compatible vendors.
type Usage struct {
	PromptTokens            int64                    `json:"prompt_tokens"`
	CompletionTokens        int64                    `json:"completion_tokens"`
	TotalTokens             int64                    `json:"total_tokens"`
	PromptTokensDetails     *PromptTokensDetails     `json:"prompt_tokens_details,omitempty"`
	CompletionTokensDetails *CompletionTokensDetails `json:"completion_tokens_details,omitempty"`
	// DeepSeek.
	PromptCacheHitTokens  *int64 `json:"prompt_cache_hit_tokens,omitempty"`
	PromptCacheMissTokens *int64 `json:"prompt_cache_miss_tokens,omitempty"`
	// Kimi (Moonshot).
	CachedTokens *int64 `json:"cached_tokens,omitempty"`

	// normalised and ok are what ParseUsage read, when decoded.
	normalised usage.Usage
	ok         bool
}

// PromptTokensDetails breaks down prompt tokens.
type PromptTokensDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

// CompletionTokensDetails breaks down completion tokens.
type CompletionTokensDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

// UnmarshalJSON reads a usage object with ParseUsage, the one reading of
// OpenAI-shaped usage; Normalised returns the result.
func (u *Usage) UnmarshalJSON(b []byte) error {
	u.normalised, u.ok = ParseUsage(b)
	return nil
}

// Normalised returns the usage as read by ParseUsage; ok is false when the
// object held no usable counts (see ParseUsage).
func (u *Usage) Normalised() (usage.Usage, bool) {
	if u == nil {
		return usage.Usage{}, false
	}
	return u.normalised, u.ok
}

// FromNormalised returns the OpenAI usage object for n. Cache writes, which
// OpenAI does not report, stay inside prompt_tokens.
func FromNormalised(n usage.Usage) Usage {
	return Usage{
		PromptTokens:            n.Input,
		CompletionTokens:        n.Output,
		TotalTokens:             n.Input + n.Output,
		PromptTokensDetails:     &PromptTokensDetails{CachedTokens: n.CachedInput},
		CompletionTokensDetails: &CompletionTokensDetails{ReasoningTokens: n.Reasoning},
	}
}

// Error is OpenAI's error body.
type Error struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inner error object.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    any     `json:"code"`
}
