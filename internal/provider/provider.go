// Package provider translates requests, responses, streams and errors between
// the wire formats baimo speaks: OpenAI chat completions, Anthropic
// Messages, Google Gemini generateContent and OpenAI Responses.
//
// A Translator serves one request for one (client format, upstream format)
// pair; it is stateful and not safe for concurrent use. Same-format pairs are
// not translated: their translator passes bytes through, patching the model
// field and what else the upstream's Vendor.Prepare says.
//
// Each pair is built from a decoder of the upstream format and an encoder of
// the client format that meet in one internal representation. The
// representation is the union of what the formats can say; an encoder
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
//   - Responses: Input = input_tokens; CachedInput =
//     input_tokens_details.cached_tokens; Output = output_tokens; Reasoning =
//     output_tokens_details.reasoning_tokens (responses.ParseUsage).
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
//   - Responses: input_tokens = Input; cached_tokens = CachedInput;
//     output_tokens = Output; reasoning_tokens = Reasoning; total_tokens =
//     Input + Output.
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
	"baimo/internal/provider/ir"
	"baimo/internal/sse"
	"baimo/internal/usage"
	"net/http"
)

// Request is a client request to translate.
type Request struct {
	Body []byte // the client's request body
	// Admission is what the gateway read from Body (the model, stream,
	// whether the client asked for usage); nil for a bare translation.
	Admission *ir.Admission
	// Endpoint is the endpoint the client called (ir.EndpointChat, ...).
	Endpoint string
	// Model is the model name to send upstream.
	Model string
	// ClientModel, if set, is the model name written into responses for the
	// client; otherwise the upstream's is used.
	ClientModel string
	// Stream says whether the client asked for a stream: the body's "stream"
	// field for OpenAI and Anthropic, the method (streamGenerateContent) for
	// Gemini. It is authoritative; the body's field is not consulted.
	Stream bool
	// Limit, when positive, is the output limit per answer to send
	// upstream: one the client did not set (the gateway lowered it to what
	// the tenant's balance pays for).
	Limit int64
}

// Translator serves one request for a pair of formats (the same or not).
// Call Request first; then either Response (not streaming) or Stream for
// every upstream event followed by StreamEnd. Usage comes from the
// upstream's meter, read with the one parser of its format.
type Translator interface {
	// Request makes the upstream request. A feature the upstream format
	// lacks yields an *ir.UnsupportedError, a malformed body an
	// *ir.BadRequestError; both are the client's fault (HTTP 400).
	Request(r Request) (ir.Upstream, error)
	// Response turns a whole upstream answer into the client's and returns
	// the upstream's usage (Source usage.SourceNone when it reported none).
	// An error wraps ir.ErrUpstream.
	Response(body []byte) ([]byte, usage.Usage, error)
	// Stream turns one upstream event into zero or more client events,
	// appended to dst. On error
	// the bytes returned may still hold an error event in the client's
	// format; the stream is then over.
	Stream(dst []byte, ev sse.Event) ([]byte, error)
	// StreamEnd is called when the upstream stream ends. It appends the
	// client's closing events. If the upstream ended before finishing, it
	// appends an error event and returns ir.ErrStreamIncomplete; if the
	// upstream sent an error event, it returns ir.ErrStreamFailed.
	StreamEnd(dst []byte) ([]byte, error)
	// StreamUsage returns the usage the upstream reported so far in the
	// stream, and whether it reported any.
	StreamUsage() (usage.Usage, bool)
	// Meter is the upstream stream's meter: its text and where it ends.
	Meter() ir.Meter
	// BodyText appends the generated text of a whole upstream answer.
	BodyText(dst, body []byte) []byte
	// SetHeaders sets the upstream request's authentication with the key
	// secret, and the client's headers the upstream's format passes on to a
	// same-format upstream.
	SetHeaders(dst, client http.Header, secret string)
}
