package gateway

import (
	"baimo/internal/provider"
	"baimo/internal/provider/ir"
	"baimo/internal/tokenize"
	"baimo/internal/usage"
)

// Tokenizer counts tokens with baimo's own tokenizers: exactly for models
// whose tokenizer is public (OpenAI, Qwen, DeepSeek), with the calibrated
// estimator otherwise. Counts say which (usage.SourceCounted or
// SourceEstimated).
type Tokenizer struct{}

var _ TokenCounter = Tokenizer{}

func source(exact bool) usage.Source {
	if exact {
		return usage.SourceCounted
	}
	return usage.SourceEstimated
}

// CountPrompt counts a prompt: chat messages with the vendor's framing (tool
// definitions and tool calls are counted as their JSON text, an
// approximation: vendors render them into their own templates), and plain
// texts with the model's tokenizer; token ids are counted as they are.
func (Tokenizer) CountPrompt(model string, p ir.Prompt) (int64, usage.Source) {
	var total int64
	exact := true
	if len(p.Messages) > 0 {
		msgs := make([]tokenize.Message, len(p.Messages))
		for i, m := range p.Messages {
			msgs[i] = tokenize.Message{Role: m.Role, Content: m.Content, Name: m.Name}
		}
		n, ok := tokenize.CountMessages(model, msgs)
		total, exact = int64(n), ok
	}
	if len(p.Texts) > 0 {
		c, ok := tokenize.ForModel(model)
		exact = exact && ok
		for _, t := range p.Texts {
			total += int64(c.Count(t))
		}
	}
	return total + p.Tokens, source(exact)
}

// templateBytes bounds the bytes a chat template adds to a prompt's text,
// per message (role markers, separators, a tool result's wrapper: DeepSeek's
// longest, a tool output, adds under 90) and once per prompt (the opening
// and the assistant's turn).
const templateBytes = 128

// promptBound is a number of tokens that neither CountPrompt (by either
// counter, an estimate with the margin billing adds to it) nor a vendor's
// byte-level tokenizer can exceed for p, computed without tokenizing: every
// token of a byte-level BPE (OpenAI's, Qwen's, DeepSeek's; SentencePiece
// with byte fallback) covers at least one byte of the rendered text, the
// estimator gives at most one token per byte plus one per text, and the
// rendered text is the prompt's strings plus templateBytes per message and
// once. The margin is billing's estimateMargin, so that the bound covers an
// estimated count's hold as well (TestPromptBoundCoversCounts).
func promptBound(p ir.Prompt) int64 {
	n := templateBytes + p.Tokens
	for _, m := range p.Messages {
		n += int64(len(m.Role)+len(m.Content)+len(m.Name)) + templateBytes
	}
	for _, t := range p.Texts {
		n += int64(len(t)) + 1
	}
	return n + n/4 + 16
}

// CountText counts generated text that the upstream did not report (a stream
// that broke, a body without usage).
func (Tokenizer) CountText(model string, text []byte) (int64, usage.Source) {
	n, exact := tokenize.CountCompletion(model, string(text), false)
	return int64(n), source(exact)
}

// Preload parses, in the background, the vocabularies the given models use,
// so the first request that needs one does not wait for it; vocabularies no
// served model uses are never loaded (each costs 10-21 MB).
func Preload(models []string) {
	go func() {
		for _, m := range models {
			if c, exact := tokenize.ForModel(m); exact {
				if e, ok := c.(*tokenize.Encoding); ok {
					_ = e.Load()
				}
			}
		}
	}()
}

// CountBody counts the prompt of a request body of format f (for token
// counting and price quotes outside the request path).
func (t Tokenizer) CountBody(f ir.Format, model string, body []byte) (int64, usage.Source) {
	return t.CountPrompt(model, provider.ClientOf(f).Prompt(ir.Target{Endpoint: ir.EndpointChat}, body))
}
