// Package provider translates requests, responses, streams and errors between
// the three wire formats baimo speaks: OpenAI chat completions, Anthropic
// Messages and Google Gemini generateContent.
//
// A Translator serves one request for one (client format, upstream format)
// pair; it is stateful and not safe for concurrent use. Same-format pairs are
// not translated (the gateway passes bytes through and patches the model
// field), so NewTranslator accepts only the six cross-format pairs.
//
// Each pair is built from a decoder of the upstream format and an encoder of
// the client format that meet in one internal representation. The
// representation is the union of what the three formats can say; an encoder
// that cannot express something it is handed refuses with an
// *UnsupportedError naming the feature, never dropping it silently. The few
// things deliberately dropped are listed below.
//
// # Usage
//
// Normalised usage (package usage): Input includes cache reads and writes,
// Output includes reasoning. Decoding:
//
//   - OpenAI: Input = prompt_tokens; CachedInput =
//     prompt_tokens_details.cached_tokens (DeepSeek prompt_cache_hit_tokens,
//     Kimi cached_tokens); Output = completion_tokens; Reasoning =
//     completion_tokens_details.reasoning_tokens.
//   - Anthropic: Input = input_tokens + cache_read_input_tokens +
//     cache_creation_input_tokens; CachedInput = cache_read_input_tokens;
//     CacheWrite5m/1h = cache_creation.ephemeral_5m/1h_input_tokens (all 5m
//     when the split is absent); Output = output_tokens; Reasoning = 0 (not
//     reported apart).
//   - Gemini: Input = promptTokenCount + toolUsePromptTokenCount; CachedInput
//     = cachedContentTokenCount; Output = candidatesTokenCount +
//     thoughtsTokenCount; Reasoning = thoughtsTokenCount.
//
// Encoding back into the client's format inverts these:
//
//   - OpenAI: prompt_tokens = Input; cached_tokens = CachedInput;
//     completion_tokens = Output; reasoning_tokens = Reasoning; total_tokens =
//     Input + Output. Cache writes stay inside prompt_tokens.
//   - Anthropic: input_tokens = Input − CachedInput − CacheWrite5m −
//     CacheWrite1h; cache_read_input_tokens = CachedInput;
//     cache_creation_input_tokens = CacheWrite5m + CacheWrite1h, split in
//     cache_creation; output_tokens = Output.
//   - Gemini: promptTokenCount = Input; cachedContentTokenCount = CachedInput;
//     candidatesTokenCount = Output − Reasoning; thoughtsTokenCount =
//     Reasoning; totalTokenCount = Input + Output.
//
// # Decisions
//
//   - Reasoning: OpenAI clients receive thinking as reasoning_content (the
//     field DeepSeek, Kimi and Qwen use). Thinking blocks from earlier turns
//     of a conversation are not sent to an upstream of another vendor: their
//     signatures are the other vendor's and cannot be verified there. Redacted thinking is dropped on the way to an
//     OpenAI or Gemini client (it is opaque data).
//   - reasoning_effort ↔ thinking budgets: minimal and low = 1024 tokens,
//     medium = 4096, high = 16384; a budget maps back to the smallest effort
//     whose budget covers it. An Anthropic budget is kept below max_tokens.
//   - Images by URL go to Anthropic as a url source and to Gemini as fileData
//     (Gemini may refuse URLs that are not Files API URIs; the upstream's
//     error is passed on). Non-image inline data or files are refused.
//   - Gemini function calls without an id get "call_<n>" ids; a Gemini
//     functionResponse is matched to its call by name, oldest first. Function
//     calls sent to Gemini from another format carry Google's documented
//     placeholder thought signature "skip_thought_signature_validator".
//   - Tool results go to Gemini as {"output": text} or {"error": text}; a
//     Gemini response object with a single string "output" or "error" comes
//     back as that text, any other object as its JSON.
//   - Tool results marked as errors go to OpenAI, which has no such flag, as
//     their text prefixed with "Error: ".
//   - Anthropic requires max_tokens: when an OpenAI or Gemini client sets no
//     limit, 4096 is sent (raised above the thinking budget when thinking is
//     on). OpenAI upstreams get max_tokens, which compatible vendors accept.
//   - OpenAI system and developer messages are accepted only before the
//     conversation starts (Anthropic and Gemini have one system prompt);
//     several system blocks become several OpenAI system messages.
//   - Gemini requests are read in the camelCase JSON the Gen AI SDKs send;
//     snake_case field names are refused as unknown parameters. A Gemini
//     responseSchema (OpenAPI subset) is passed on as a JSON schema.
//   - In a stream from an OpenAI upstream, usage arrives only at the end, so
//     an Anthropic client's message_start carries zero usage and the whole
//     usage comes in message_delta (whose counts are cumulative).
//   - Ignored, because the target has no equivalent and the answer does not
//     depend on them: Anthropic cache_control (OpenAI-style and Gemini
//     upstreams cache prompts on their own) and metadata (metadata.user_id is
//     carried as OpenAI user), OpenAI store, metadata and tool strict, OpenAI
//     user towards Gemini, Gemini safetySettings. Everything else that cannot
//     be carried is refused with an *UnsupportedError.
package provider

import (
	"encoding/json"
	"fmt"

	"baimo/internal/clock"
	"baimo/internal/provider/ir"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// Request is a client request to translate.
type Request struct {
	Body []byte // the client's request body
	// Model is the model name to send upstream.
	Model string
	// ClientModel, if set, is the model name written into responses for the
	// client; otherwise the upstream's is used.
	ClientModel string
	// Stream says whether the client asked for a stream: the body's "stream"
	// field for OpenAI and Anthropic, the method (streamGenerateContent) for
	// Gemini. It is authoritative; the body's field is not consulted.
	Stream bool
}

// Translator translates one request and its answer between a client format
// and an upstream format. Call Request first; then either Response (not
// streaming) or Stream for every upstream event followed by StreamEnd; Error
// for an upstream error answer.
type Translator interface {
	// Request translates the client's request body. A feature the upstream
	// format lacks yields an *UnsupportedError, a malformed body a
	// *BadRequestError; both are the client's fault (HTTP 400).
	Request(r Request) (ir.Upstream, error)
	// Response translates a non-streaming upstream response body into the
	// client's format and returns the upstream's usage (Source is
	// usage.SourceNone when the upstream reported none). An error wraps
	// ErrUpstream.
	Response(body []byte) ([]byte, usage.Usage, error)
	// Stream translates one upstream event, appending zero or more client
	// events (in wire form) to dst. On error dst may still hold bytes to
	// write: an error event in the client's format; the stream is then over.
	Stream(dst []byte, ev sse.Event) ([]byte, error)
	// StreamEnd is called when the upstream stream ends. It appends the
	// client's closing events. If the upstream ended before finishing, it
	// appends an error event and returns ErrStreamIncomplete; if the upstream
	// sent an error event, it returns ErrStreamFailed.
	StreamEnd(dst []byte) ([]byte, error)
	// StreamUsage returns the usage reported so far in the stream, and
	// whether any was.
	StreamUsage() (usage.Usage, bool)
	// Error translates an upstream error answer into the client's error body
	// and the status to return.
	Error(status int, body []byte) (int, []byte)
}

// NewTranslator returns a Translator from client to upstream. Same-format
// pairs are refused: they pass through untranslated. clk stamps OpenAI's
// "created" field (nil means the wall clock).
func NewTranslator(client, upstream ir.Format, clk clock.Clock) (Translator, error) {
	if clk == nil {
		clk = clock.Real{}
	}
	if client == upstream {
		return nil, fmt.Errorf("provider: %s to %s needs no translation", client, upstream)
	}
	t := &translator{client: client, upstream: upstream, clock: clk}
	switch client {
	case ir.FormatOpenAI, ir.FormatAnthropic, ir.FormatGemini:
	default:
		return nil, fmt.Errorf("provider: unknown client format %d", client)
	}
	switch upstream {
	case ir.FormatOpenAI, ir.FormatAnthropic, ir.FormatGemini:
	default:
		return nil, fmt.Errorf("provider: unknown upstream format %d", upstream)
	}
	return t, nil
}

// ErrorBody renders an error in format f: the body to send with status. The
// HTTP layer uses it for errors of its own (auth, limits, an
// *UnsupportedError) so every API answers in its own error shape.
func ErrorBody(f ir.Format, status int, kind ir.ErrorKind, message string) []byte {
	_, b := CodecOf(f).EncodeError(ir.APIError{Status: status, Kind: kind, Message: message})
	return b
}

// StreamRequested reports whether an OpenAI or Anthropic request body asks
// for a stream (its "stream" field). Gemini says so in the method name
// (streamGenerateContent), so for Gemini it returns false.
func StreamRequested(f ir.Format, body []byte) bool {
	if f == ir.FormatGemini {
		return false
	}
	var s struct {
		Stream bool `json:"stream"`
	}
	return json.Unmarshal(body, &s) == nil && s.Stream
}
