// Package responses is OpenAI's Responses API as a wire format: its request,
// response and stream event types, what the gateway reads of a client's
// request (Client), how the gateway calls an upstream that serves the API
// natively (Vendor, whose usage parser is the one reading of a Responses
// answer's usage), and its codec to and from the internal representation
// (Codec), so that a Responses client reaches chat, Anthropic and Gemini
// upstreams through the same translators as every other format.
//
// The API's state (previous_response_id, store, background, the GET,
// DELETE, cancel and input_items routes) is kept by the gateway, not here:
// see package conversation. A request reaching this package's codec carries
// its whole conversation in input.
package responses

import (
	"encoding/json"

	"baimo/internal/usage"
)

// Request is a Responses API request body, as far as translation reads it.
type Request struct {
	Model              string          `json:"model"`
	Input              json.RawMessage `json:"input,omitempty"` // a string or an array of items
	Instructions       *string         `json:"instructions,omitempty"`
	PreviousResponseID *string         `json:"previous_response_id,omitempty"`
	Store              *bool           `json:"store,omitempty"`
	Background         *bool           `json:"background,omitempty"`
	Stream             bool            `json:"stream,omitempty"`
	MaxOutputTokens    *int64          `json:"max_output_tokens,omitempty"`
	Temperature        *float64        `json:"temperature,omitempty"`
	TopP               *float64        `json:"top_p,omitempty"`
	Tools              []Tool          `json:"tools,omitempty"`
	ToolChoice         json.RawMessage `json:"tool_choice,omitempty"` // a string or an object
	ParallelToolCalls  *bool           `json:"parallel_tool_calls,omitempty"`
	Text               *TextConfig     `json:"text,omitempty"`
	Reasoning          *Reasoning      `json:"reasoning,omitempty"`
	Metadata           json.RawMessage `json:"metadata,omitempty"`
	User               string          `json:"user,omitempty"`
	Truncation         string          `json:"truncation,omitempty"`
	Include            []string        `json:"include,omitempty"`
	ServiceTier        string          `json:"service_tier,omitempty"`
}

// Item is one item of a conversation: an input item of a request or an
// output item of a response. Which fields are used depends on Type:
// message (Role, Content), function_call (CallID, Name, Arguments),
// function_call_output (CallID, Output), reasoning (Summary, Content,
// EncryptedContent). A message given without a type has Type "".
type Item struct {
	Type             string          `json:"type,omitempty"`
	ID               string          `json:"id,omitempty"`
	Status           string          `json:"status,omitempty"`
	Role             string          `json:"role,omitempty"`
	Content          json.RawMessage `json:"content,omitempty"` // message: a string or parts; reasoning: parts
	CallID           string          `json:"call_id,omitempty"`
	Name             string          `json:"name,omitempty"`
	Arguments        *string         `json:"arguments,omitempty"`
	Output           json.RawMessage `json:"output,omitempty"`  // function_call_output: a string or parts
	Summary          *[]Part         `json:"summary,omitempty"` // reasoning: always present, maybe empty
	EncryptedContent string          `json:"encrypted_content,omitempty"`
}

// summary returns a reasoning item's summary parts.
func (it *Item) summary() []Part {
	if it.Summary == nil {
		return nil
	}
	return *it.Summary
}

// Part is one part of a message's (or a reasoning item's) content. It is
// written with the members of its type only (MarshalJSON).
type Part struct {
	Type        string           `json:"type"` // input_text, input_image, input_file, output_text, refusal, summary_text, reasoning_text
	Text        string           `json:"text"`
	Refusal     string           `json:"refusal,omitempty"`
	ImageURL    string           `json:"image_url,omitempty"`
	FileID      string           `json:"file_id,omitempty"`
	Detail      string           `json:"detail,omitempty"`
	Annotations *json.RawMessage `json:"annotations,omitempty"`
}

// MarshalJSON writes the members of p's type: text parts their text (and
// output_text its annotations), a refusal its refusal, an image its URL or
// file and detail.
func (p Part) MarshalJSON() ([]byte, error) {
	type text struct {
		Type        string           `json:"type"`
		Text        string           `json:"text"`
		Annotations *json.RawMessage `json:"annotations,omitempty"`
	}
	switch p.Type {
	case "refusal":
		return json.Marshal(struct {
			Type    string `json:"type"`
			Refusal string `json:"refusal"`
		}{p.Type, p.Refusal})
	case "input_image", "input_file":
		return json.Marshal(struct {
			Type     string `json:"type"`
			ImageURL string `json:"image_url,omitempty"`
			FileID   string `json:"file_id,omitempty"`
			Detail   string `json:"detail,omitempty"`
		}{p.Type, p.ImageURL, p.FileID, p.Detail})
	}
	return json.Marshal(text{p.Type, p.Text, p.Annotations})
}

// Tool is a tool definition. Only function tools translate; the built-in
// tools (web_search, file_search, ...) pass through to native upstreams.
type Tool struct {
	Type        string          `json:"type"`
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// TextConfig is the text output's configuration: its format.
type TextConfig struct {
	Format    *TextFormat `json:"format,omitempty"`
	Verbosity string      `json:"verbosity,omitempty"`
}

// TextFormat is text, json_object or json_schema.
type TextFormat struct {
	Type        string          `json:"type"`
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Schema      json.RawMessage `json:"schema,omitempty"`
	Strict      *bool           `json:"strict,omitempty"`
}

// Reasoning configures reasoning models.
type Reasoning struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary,omitempty"`
}

// Response is the response object (as answered, retrieved and streamed).
type Response struct {
	ID                 string             `json:"id"`
	Object             string             `json:"object"` // "response"
	CreatedAt          int64              `json:"created_at"`
	Status             string             `json:"status"` // completed, failed, in_progress, cancelled, queued, incomplete
	Background         bool               `json:"background"`
	Error              *ResponseError     `json:"error"`
	IncompleteDetails  *IncompleteDetails `json:"incomplete_details"`
	Instructions       *string            `json:"instructions"`
	MaxOutputTokens    *int64             `json:"max_output_tokens"`
	Model              string             `json:"model"`
	Output             []Item             `json:"output"`
	ParallelToolCalls  bool               `json:"parallel_tool_calls"`
	PreviousResponseID *string            `json:"previous_response_id"`
	Reasoning          Reasoning          `json:"reasoning"`
	Store              bool               `json:"store"`
	Temperature        *float64           `json:"temperature"`
	Text               TextConfig         `json:"text"`
	ToolChoice         json.RawMessage    `json:"tool_choice"`
	Tools              []Tool             `json:"tools"`
	TopP               *float64           `json:"top_p"`
	Truncation         string             `json:"truncation"`
	Usage              *Usage             `json:"usage"`
	User               *string            `json:"user"`
	Metadata           json.RawMessage    `json:"metadata"`
}

// ResponseError is why a response failed.
type ResponseError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// IncompleteDetails says why a response is incomplete: max_output_tokens
// or content_filter.
type IncompleteDetails struct {
	Reason string `json:"reason"`
}

// Usage is a response's usage. Its input_tokens include cached tokens and
// its output_tokens reasoning tokens, as usage.Usage counts them.
type Usage struct {
	InputTokens         int64         `json:"input_tokens"`
	InputTokensDetails  InputDetails  `json:"input_tokens_details"`
	OutputTokens        int64         `json:"output_tokens"`
	OutputTokensDetails OutputDetails `json:"output_tokens_details"`
	TotalTokens         int64         `json:"total_tokens"`
}

// InputDetails are the cached part of the input.
type InputDetails struct {
	CachedTokens int64 `json:"cached_tokens"`
}

// OutputDetails are the reasoning part of the output.
type OutputDetails struct {
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

// FromNormalised is the wire usage of u.
func FromNormalised(u usage.Usage) *Usage {
	return &Usage{InputTokens: u.Input, InputTokensDetails: InputDetails{CachedTokens: u.CachedInput},
		OutputTokens: u.Output, OutputTokensDetails: OutputDetails{ReasoningTokens: u.Reasoning},
		TotalTokens: u.Input + u.Output}
}

// Event is one stream event, as far as the decoder reads it; the encoder
// writes its events as maps in the order the API documents.
type Event struct {
	Type         string          `json:"type"`
	Response     json.RawMessage `json:"response,omitempty"`
	OutputIndex  int             `json:"output_index"`
	ItemID       string          `json:"item_id,omitempty"`
	Item         *Item           `json:"item,omitempty"`
	Delta        string          `json:"delta,omitempty"`
	Arguments    string          `json:"arguments,omitempty"`
	Code         *string         `json:"code,omitempty"`
	Message      string          `json:"message,omitempty"`
	SequenceNum  int64           `json:"sequence_number"`
	ContentIndex int             `json:"content_index"`
}
