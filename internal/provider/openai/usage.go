package openai

import (
	"bytes"
	"encoding/json"

	"baimo/internal/jsonfield"
	"baimo/internal/usage"
)

// wireUsage is the union of the usage fields OpenAI-compatible vendors send.
type wireUsage struct {
	PromptTokens        *int64 `json:"prompt_tokens"`
	CompletionTokens    *int64 `json:"completion_tokens"`
	TotalTokens         *int64 `json:"total_tokens"`
	PromptTokensDetails *struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
	// DeepSeek reports its disk cache apart.
	PromptCacheHitTokens  *int64 `json:"prompt_cache_hit_tokens"`
	PromptCacheMissTokens *int64 `json:"prompt_cache_miss_tokens"`
	// Some vendors (Kimi) put cached tokens at the top level.
	CachedTokens *int64 `json:"cached_tokens"`
	// Embeddings and older APIs may only send input_tokens.
	InputTokens *int64 `json:"input_tokens"`
}

// ParseUsage decodes the value of a "usage" field: the one reading of
// OpenAI-shaped usage, for answers passed through and translated alike.
// ok is false when v is null, holds no token counts, or holds a negative
// count (a malformed report: the gateway then counts the tokens itself).
//
// Input is prompt_tokens; without it, DeepSeek's prompt_cache_hit_tokens +
// prompt_cache_miss_tokens, or input_tokens (embeddings, older APIs).
// CachedInput is prompt_tokens_details.cached_tokens when positive, else
// DeepSeek's prompt_cache_hit_tokens, else Kimi's top-level cached_tokens,
// at most Input. Output is completion_tokens, or total_tokens − Input when
// only the total is given. Reasoning is
// completion_tokens_details.reasoning_tokens, at most Output.
func ParseUsage(v []byte) (usage.Usage, bool) {
	if jsonfield.IsNull(v) {
		return usage.Usage{}, false
	}
	var w wireUsage
	if err := json.Unmarshal(v, &w); err != nil {
		return usage.Usage{}, false
	}
	if w.PromptTokens == nil && w.CompletionTokens == nil && w.TotalTokens == nil &&
		(w.PromptCacheHitTokens == nil || w.PromptCacheMissTokens == nil) && w.InputTokens == nil {
		return usage.Usage{}, false
	}
	for _, p := range [...]*int64{w.PromptTokens, w.CompletionTokens, w.TotalTokens, w.PromptCacheHitTokens,
		w.PromptCacheMissTokens, w.CachedTokens, w.InputTokens} {
		if p != nil && *p < 0 {
			return usage.Usage{}, false
		}
	}
	if (w.PromptTokensDetails != nil && w.PromptTokensDetails.CachedTokens < 0) ||
		(w.CompletionTokensDetails != nil && w.CompletionTokensDetails.ReasoningTokens < 0) {
		return usage.Usage{}, false
	}
	var u usage.Usage
	switch {
	case w.PromptTokens != nil:
		u.Input = *w.PromptTokens
	case w.PromptCacheHitTokens != nil && w.PromptCacheMissTokens != nil:
		u.Input = *w.PromptCacheHitTokens + *w.PromptCacheMissTokens
	case w.InputTokens != nil:
		u.Input = *w.InputTokens
	}
	if w.CompletionTokens != nil {
		u.Output = *w.CompletionTokens
	} else if w.TotalTokens != nil && *w.TotalTokens >= u.Input {
		u.Output = *w.TotalTokens - u.Input
	}
	switch {
	case w.PromptTokensDetails != nil && w.PromptTokensDetails.CachedTokens > 0:
		u.CachedInput = w.PromptTokensDetails.CachedTokens
	case w.PromptCacheHitTokens != nil:
		u.CachedInput = *w.PromptCacheHitTokens
	case w.CachedTokens != nil:
		u.CachedInput = *w.CachedTokens
	}
	u.CachedInput = min(u.CachedInput, u.Input)
	if w.CompletionTokensDetails != nil {
		u.Reasoning = min(w.CompletionTokensDetails.ReasoningTokens, u.Output)
	}
	u.Source = usage.SourceVendor
	return u, true
}

// BodyUsage reads the usage of a whole (non-stream) response body.
func BodyUsage(body []byte) (usage.Usage, bool) {
	s, ok := jsonfield.Find(body, "usage")
	if !ok {
		return usage.Usage{}, false
	}
	return ParseUsage(body[s.Start:s.End])
}

// ChunkUsage reads the usage a stream chunk carries: at its top level, or
// inside a choice (Kimi puts the usage of a stream in its last choice).
// only says the chunk has no choices: it is the extra chunk that
// stream_options.include_usage adds. It decodes nothing unless the chunk
// mentions usage.
func ChunkUsage(data []byte) (u usage.Usage, ok, only bool) {
	if !bytes.Contains(data, usageKey) {
		return usage.Usage{}, false, false
	}
	if s, found := jsonfield.Find(data, "usage"); found {
		u, ok = ParseUsage(data[s.Start:s.End])
	}
	c, hasChoices := jsonfield.Find(data, "choices")
	if !ok && hasChoices {
		_ = jsonfield.EachElement(data[c.Start:c.End], func(v jsonfield.Span) bool {
			choice := data[c.Start+v.Start : c.Start+v.End]
			if s, found := jsonfield.Find(choice, "usage"); found {
				u, ok = ParseUsage(choice[s.Start:s.End])
			}
			return !ok
		})
		return u, ok, false
	}
	if ok {
		v := bytes.TrimSpace(data[c.Start:c.End])
		only = !hasChoices || (len(v) >= 2 && v[0] == '[' && len(bytes.TrimSpace(v[1:len(v)-1])) == 0)
	}
	return u, ok, only
}

var usageKey = []byte(`"usage"`)

// AppendDeltaText appends the text a stream chunk carries, decoded: its
// first choice's delta content, reasoning content and tool call argument
// fragments, or text (the completions API). It looks for the "delta" key
// directly rather than walking the whole chunk: streamed chunks carry one,
// and a quoted key cannot hide inside a string.
func AppendDeltaText(dst, data []byte) []byte {
	d, ok := jsonfield.KeyValue(data, "delta")
	if !ok {
		if c, ok := jsonfield.KeyValue(data, "text"); ok {
			dst = appendString(dst, data[c.Start:c.End])
		}
		return dst
	}
	obj := data[d.Start:d.End]
	if len(obj) == 0 || obj[0] != '{' {
		return dst
	}
	_ = jsonfield.Each(obj, func(k []byte, v jsonfield.Span) bool {
		switch string(k) {
		case "content", "reasoning_content":
			dst = appendString(dst, obj[v.Start:v.End])
		case "tool_calls":
			tc := obj[v.Start:v.End]
			_ = jsonfield.EachElement(tc, func(e jsonfield.Span) bool {
				if a, ok := jsonfield.Path(tc[e.Start:e.End], "function", "arguments"); ok {
					dst = appendString(dst, tc[e.Start+a.Start:e.Start+a.End])
				}
				return true
			})
		}
		return true
	})
	return dst
}

// appendString appends the decoded JSON string raw (with its quotes); it
// appends nothing for another value.
func appendString(dst, raw []byte) []byte {
	if len(raw) < 2 || raw[0] != '"' {
		return dst
	}
	return AppendUnescaped(dst, raw[1:len(raw)-1])
}

// AppendUnescaped appends the decoded form of raw JSON string content (without
// quotes) to dst.
func AppendUnescaped(dst, raw []byte) []byte {
	if bytes.IndexByte(raw, '\\') < 0 {
		return append(dst, raw...)
	}
	var s string
	q := make([]byte, 0, len(raw)+2)
	q = append(append(append(q, '"'), raw...), '"')
	if err := json.Unmarshal(q, &s); err != nil {
		return dst
	}
	return append(dst, s...)
}
