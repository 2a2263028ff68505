// Package openai speaks the OpenAI-compatible wire format that most vendors
// share (OpenAI, DeepSeek, Qwen compatible mode, Doubao, Hunyuan, Kimi, GLM,
// ERNIE v2, SiliconFlow, vLLM, SGLang, Ollama, llama.cpp): it reads their
// usage in every shape they report it, and prepares request bodies for them.
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

// ParseUsage decodes the value of a "usage" field. ok is false when v is null
// or holds no token counts.
func ParseUsage(v []byte) (usage.Usage, bool) {
	if jsonfield.IsNull(v) {
		return usage.Usage{}, false
	}
	var w wireUsage
	if err := json.Unmarshal(v, &w); err != nil {
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
	if w.CompletionTokensDetails != nil {
		u.Reasoning = w.CompletionTokensDetails.ReasoningTokens
	}
	if w.PromptTokens == nil && w.CompletionTokens == nil && w.TotalTokens == nil &&
		w.PromptCacheHitTokens == nil && w.InputTokens == nil {
		return usage.Usage{}, false
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

var usageKey = []byte(`"usage"`)

// ChunkInfo is what the gateway needs to know about one stream chunk.
type ChunkInfo struct {
	Usage     usage.Usage
	HasUsage  bool
	UsageOnly bool   // choices is empty: the extra chunk include_usage adds
	Content   []byte // delta content of the first choice, still JSON-escaped
}

// InspectChunk looks at the data of one stream event. It decodes nothing
// unless the chunk mentions usage, so the common chunk costs a scan.
func InspectChunk(data []byte) ChunkInfo {
	var c ChunkInfo
	if bytes.Contains(data, usageKey) {
		if s, ok := jsonfield.Find(data, "usage"); ok {
			c.Usage, c.HasUsage = ParseUsage(data[s.Start:s.End])
		}
		if c.HasUsage {
			if s, ok := jsonfield.Find(data, "choices"); ok {
				v := bytes.TrimSpace(data[s.Start:s.End])
				c.UsageOnly = len(v) >= 2 && v[0] == '[' && len(bytes.TrimSpace(v[1:len(v)-1])) == 0
			} else {
				c.UsageOnly = true
			}
		}
	}
	c.Content = deltaContent(data)
	return c
}

// deltaContent returns the first choice's delta.content (or text, for the
// completions API) as raw JSON string bytes without the quotes. It looks for
// the "delta" key directly rather than walking the whole chunk: streamed
// chunks carry one, and a quoted key cannot hide inside a string.
func deltaContent(data []byte) []byte {
	var raw []byte
	if d, ok := jsonfield.KeyValue(data, "delta"); ok {
		obj := data[d.Start:d.End]
		c, ok := jsonfield.Find(obj, "content")
		if !ok {
			return nil
		}
		raw = obj[c.Start:c.End]
	} else if c, ok := jsonfield.KeyValue(data, "text"); ok {
		raw = data[c.Start:c.End]
	} else {
		return nil
	}
	if len(raw) < 2 || raw[0] != '"' {
		return nil
	}
	return raw[1 : len(raw)-1]
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
