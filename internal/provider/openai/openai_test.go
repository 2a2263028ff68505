package openai

import (
	"testing"

	"baimo/internal/usage"
)

func TestParseUsage(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want usage.Usage
		ok   bool
	}{
		{"openai with details", `{"prompt_tokens":1200,"completion_tokens":300,"total_tokens":1500,
			"prompt_tokens_details":{"cached_tokens":1024,"audio_tokens":0},
			"completion_tokens_details":{"reasoning_tokens":128}}`,
			usage.Usage{Input: 1200, CachedInput: 1024, Output: 300, Reasoning: 128, Source: usage.SourceVendor}, true},
		{"deepseek cache hit/miss", `{"prompt_tokens":60,"completion_tokens":11,"total_tokens":71,
			"prompt_cache_hit_tokens":50,"prompt_cache_miss_tokens":10}`,
			usage.Usage{Input: 60, CachedInput: 50, Output: 11, Source: usage.SourceVendor}, true},
		{"kimi top-level cached", `{"prompt_tokens":20,"completion_tokens":5,"total_tokens":25,"cached_tokens":16}`,
			usage.Usage{Input: 20, CachedInput: 16, Output: 5, Source: usage.SourceVendor}, true},
		{"embeddings", `{"prompt_tokens":8,"total_tokens":8}`,
			usage.Usage{Input: 8, Source: usage.SourceVendor}, true},
		{"null", `null`, usage.Usage{}, false},
		{"empty object", `{}`, usage.Usage{}, false},
		{"garbage", `{"prompt_tokens":"x"}`, usage.Usage{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseUsage([]byte(tt.in))
			if ok != tt.ok || got != tt.want {
				t.Errorf("ParseUsage = %+v, %v; want %+v, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestChunkUsageAndText(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		hasUsage  bool
		usageOnly bool
		text      string
	}{
		{"content", `{"id":"c","choices":[{"index":0,"delta":{"content":"Hel\"lo"}}]}`, false, false, `Hel"lo`},
		{"usage only", `{"id":"c","choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}`, true, true, ""},
		{"usage with choices (qwen last chunk)", `{"choices":[{"delta":{"content":""},"finish_reason":"stop"}],"usage":{"prompt_tokens":5,"completion_tokens":2}}`, true, false, ""},
		{"usage in the last choice (kimi)", `{"choices":[{"index":0,"delta":{},"finish_reason":"stop","usage":{"prompt_tokens":5,"completion_tokens":2}}]}`, true, false, ""},
		{"null usage", `{"choices":[{"delta":{"content":"x"}}],"usage":null}`, false, false, "x"},
		{"reasoning and tool arguments", `{"choices":[{"delta":{"reasoning_content":"think ","tool_calls":[{"index":0,"function":{"arguments":"{\"a\":"}}]}}]}`, false, false, `think {"a":`},
		{"completions text", `{"choices":[{"text":"abc","index":0}]}`, false, false, "abc"},
		{"unicode escape", `{"choices":[{"delta":{"content":"\u4f60"}}]}`, false, false, "你"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, ok, only := ChunkUsage([]byte(tt.in))
			text := AppendDeltaText(nil, []byte(tt.in))
			if ok != tt.hasUsage || only != tt.usageOnly || string(text) != tt.text {
				t.Errorf("usage %v only %v text %q", ok, only, text)
			}
		})
	}
}

func FuzzChunk(f *testing.F) {
	f.Add([]byte(`{"id":"c","choices":[{"index":0,"delta":{"content":"Hel\"lo"}}]}`))
	f.Add([]byte(`{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2}}`))
	f.Add([]byte(`{"choices":[{"text":"abc"}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, ok, only := ChunkUsage(b)
		_ = AppendDeltaText(nil, b)
		if only && !ok {
			t.Fatal("usage-only chunk without usage")
		}
	})
}
