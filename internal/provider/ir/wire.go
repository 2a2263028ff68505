package ir

import (
	"errors"
	"net/http"
	"strings"

	"baimo/internal/sse"
	"baimo/internal/usage"
)

// The endpoints a client calls, by the name recorded in usage records.
const (
	EndpointChat        = "chat"             // OpenAI chat completions
	EndpointCompletions = "completions"      // OpenAI (legacy) completions
	EndpointEmbeddings  = "embeddings"       // OpenAI embeddings
	EndpointMessages    = "messages"         // Anthropic Messages
	EndpointGenerate    = "generate_content" // Gemini generateContent
	EndpointResponses   = "responses"        // OpenAI Responses
	// The endpoints that are not conversations, in the OpenAI-compatible
	// API: their answers are passed through, metered in their own units.
	EndpointRerank         = "rerank"         // Cohere/Jina rerank
	EndpointImages         = "images"         // image generations
	EndpointImageEdits     = "image_edits"    // image edits (multipart)
	EndpointTranscriptions = "transcriptions" // speech to text (multipart)
	EndpointTranslations   = "translations"   // speech to English text (multipart)
	EndpointSpeech         = "speech"         // text to speech
)

// Admission is what the gateway acts on in a client's request, read once,
// the way the vendor will read it.
type Admission struct {
	Model  string
	Stream bool
	// ClientUsage says the client asked for the usage in its stream itself
	// (OpenAI stream_options.include_usage).
	ClientUsage bool
	// MaxOutput is the output limit per choice the client set, 0 when unset;
	// MaxOutputField names the field that set it, for errors.
	MaxOutput      int64
	MaxOutputField string
	// Choices is how many answers the client asked for (n, best_of,
	// candidateCount), 0 when unset; ChoicesField names the field.
	Choices      int64
	ChoicesField string
	// Units are what the request uses that its body says, for endpoints
	// metered in other units than tokens: images asked for, seconds of
	// audio sent (read from the file), characters to speak.
	Units usage.Usage
	// Variant is what a model may price apart ("size/quality" of an
	// image); "" for none.
	Variant string
	// ContentType is the body's content type when the upstream must get
	// it as it came (a multipart upload, with its boundary); "" for JSON.
	ContentType string
}

// Target says what a client called, beyond its body: the endpoint, and for
// Gemini the model and whether to stream, which come from the URL.
type Target struct {
	Endpoint string
	Model    string // Gemini: from models/{model}:method
	Stream   bool   // Gemini: streamGenerateContent
	// ContentType is the request's Content-Type header, for the endpoints
	// that take multipart uploads.
	ContentType string
}

// FieldError says a client's request body is refused because of a field:
// Param names it (dotted for nested fields), Message says why, for the
// client. It is a 400.
type FieldError struct {
	Param   string
	Message string
}

func (e *FieldError) Error() string { return e.Param + ": " + e.Message }

// PromptMessage is one message of a prompt as a tokenizer frames it.
type PromptMessage struct {
	Role, Content, Name string
}

// Prompt is the text of a request's prompt for counting its tokens: chat
// messages (the tools' definitions as a system message), or plain texts
// (completions, embeddings), plus token ids sent as ids.
type Prompt struct {
	Messages []PromptMessage
	Texts    []string
	Tokens   int64
}

// Client is a wire format as clients call the gateway in it.
type Client interface {
	// Secret returns the API key the request presents, where this format's
	// clients put it.
	Secret(r *http.Request) string
	// Admit reads what the gateway acts on from a request body, or refuses
	// the body with a *FieldError (or an error from package jsonfield for a
	// body that is not a JSON object).
	Admit(t Target, body []byte) (Admission, error)
	// Prompt returns the text of the request's prompt. It is lenient: what
	// it cannot read it leaves out.
	Prompt(t Target, body []byte) Prompt
}

// TokenCountAnswerer is a Client whose API has a token-counting endpoint
// (Anthropic's count_tokens, Gemini's countTokens): it writes the answer.
type TokenCountAnswerer interface {
	TokenCountAnswer(tokens int64) []byte
}

// Vendor is a wire format as the gateway calls an upstream in it.
type Vendor interface {
	// BaseURL returns a channel's configured base URL as the paths expect
	// it (Anthropic's with /v1, Gemini's with /v1beta), whether or not the
	// operator wrote that part.
	BaseURL(configured string) string
	// Path is the path below a channel's base URL for an endpoint, model
	// and stream.
	Path(endpoint, model string, stream bool) string
	// SetAuth sets the headers that authenticate with the upstream key
	// secret ("" for none).
	SetAuth(h http.Header, secret string)
	// Prepare patches a request body of this format for the upstream, as a
	// passthrough: the model name, a request for usage in streams, and an
	// output limit (when limit > 0). Every other byte is kept.
	Prepare(body []byte, a *Admission, endpoint, model string, limit int64) ([]byte, error)
	// BodyUsage reads the usage of a whole answer; ok is false when it
	// carries none.
	BodyUsage(body []byte) (u usage.Usage, ok bool)
	// BodyText appends the generated text of a whole answer to dst, for
	// counting when the upstream reported no usage.
	BodyText(dst, body []byte) []byte
	// NewMeter returns the meter of one upstream stream of this format.
	// clientUsage is Admission.ClientUsage of a same-format client.
	NewMeter(clientUsage bool) Meter
}

// UnitMeter is a Vendor whose endpoints that are not conversations
// (rerank, images, audio) answer in shapes of their own: it reads their
// usage, with the units the request itself says (Admission.Units) where
// the answer says none.
type UnitMeter interface {
	// EndpointUsage reads the usage of a whole answer of endpoint (nil
	// for an answer relayed as raw bytes, such as speech); handled is
	// false for the endpoints whose answers BodyUsage reads. A usage with
	// SourceNone asks the gateway to count it.
	EndpointUsage(endpoint string, a *Admission, body []byte) (u usage.Usage, handled bool)
}

// HeaderPasser is a Vendor that passes some of a same-format client's
// request headers on to the upstream (Anthropic's anthropic-beta).
type HeaderPasser interface {
	PassHeaders(dst, client http.Header)
}

// Meter reads one upstream stream: its usage, its generated text, and where
// it ends.
type Meter interface {
	// Event reads one event. forward says whether a client of the same
	// format should get it (false for what the gateway added itself, such
	// as a usage chunk the client did not ask for).
	Event(ev sse.Event) (forward bool)
	// Usage returns the usage reported so far.
	Usage() (usage.Usage, bool)
	// Text returns the generated text so far (bounded).
	Text() []byte
	// Done says the upstream has finished its answer: the last event read
	// ends it, and what a client is sent from then on is its closing part.
	Done() bool
	// Failed says the upstream sent an error event.
	Failed() bool
	// End is called when the stream is over. complete says the upstream
	// finished its answer as its format says it must; out is dst with what
	// a same-format client still needs to close the stream (OpenAI's [DONE]
	// when the upstream sent its usage and closed without it).
	End(dst []byte) (out []byte, complete bool)
}

// ErrInvalidJSON says a client's body is not valid JSON (a 400).
var ErrInvalidJSON = errors.New("the request body is not valid JSON")

// MaxText bounds the generated text a meter keeps, for counting.
const MaxText = 1 << 20

// BearerOrAPIKey returns the key of an Authorization: Bearer header, or,
// when there is no Authorization header, of x-api-key: where OpenAI and
// Anthropic clients put it. Another Authorization scheme presents no key.
func BearerOrAPIKey(h http.Header) string {
	a := h.Get("Authorization")
	if a == "" {
		return h.Get("X-Api-Key")
	}
	if len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
		return strings.TrimSpace(a[7:])
	}
	return ""
}
