package openai

import "testing"

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

// TestAppendUnescaped: the text of a stream's content deltas (baimo counts it
// when the vendor reports no usage) is the decoded JSON string, wherever an
// escape sits; an invalid escape adds nothing rather than garbage.
func TestAppendUnescaped(t *testing.T) {
	for _, tt := range []struct{ raw, want string }{
		{`plain`, "plain"},
		{`a\"b\u4f60`, `a"b你`},
		{`\nfirst`, "\nfirst"},
		{`last\t`, "last\t"},
		{`\`, ""},
		{`bad\x`, ""},
		{``, ""},
	} {
		if got := string(AppendUnescaped([]byte(">"), []byte(tt.raw))); got != ">"+tt.want {
			t.Errorf("AppendUnescaped(%q) = %q, want %q", tt.raw, got, ">"+tt.want)
		}
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
