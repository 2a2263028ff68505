package tokenize

import "testing"

func TestForModel(t *testing.T) {
	tests := []struct {
		model string
		want  string
		exact bool
	}{
		{"gpt-4o", "o200k_base", true},
		{"gpt-4o-mini-2024-07-18", "o200k_base", true},
		{"openai/gpt-4.1", "o200k_base", true},
		{"gpt-5-mini", "o200k_base", true},
		{"o3-mini", "o200k_base", true},
		{"o1", "o200k_base", true},
		{"gpt-4-turbo", "cl100k_base", true},
		{"gpt-3.5-turbo", "cl100k_base", true},
		{"text-embedding-3-small", "cl100k_base", true},
		{"qwen-plus", "qwen2", true},
		{"Qwen/Qwen2.5-72B-Instruct", "qwen2", true},
		{"qwen3-235b-a22b", "qwen2", true},
		{"qwq-32b", "qwen2", true},
		{"deepseek-v3", "deepseek_v3", true},
		{"deepseek-ai/DeepSeek-R1", "deepseek_v3", true},
		{"deepseek-chat", "deepseek_v3", false},
		{"deepseek-ai/DeepSeek-R1-Distill-Qwen-32B", "qwen2", false},
		{"deepseek-r1-distill-llama-70b", "estimate", false},
		{"deepseek-v4-pro", "deepseek_v3", false},
		{"doubao-seed-1.6", "estimate", false},
		{"hunyuan-turbo", "estimate", false},
		{"ernie-4.5", "estimate", false},
		{"kimi-k2", "estimate", false},
		{"moonshot-v1-8k", "estimate", false},
		{"glm-4.5", "estimate", false},
		{"claude-sonnet-4", "estimate", false},
		{"", "estimate", false},
	}
	for _, tt := range tests {
		c, exact := ForModel(tt.model)
		if c.Name() != tt.want || exact != tt.exact {
			t.Errorf("ForModel(%q) = %s, %v; want %s, %v", tt.model, c.Name(), exact, tt.want, tt.exact)
		}
	}
}

func TestRegistryOverride(t *testing.T) {
	r := NewRegistry()
	if err := r.Set("my-reseller-qwen*", "qwen2", true); err != nil {
		t.Fatal(err)
	}
	if err := r.Set("glm-4.5", "estimate", true); err != nil {
		t.Fatal(err)
	}
	if err := r.Set("x", "nope", true); err == nil {
		t.Error("Set with an unknown tokenizer: no error")
	}
	tests := []struct {
		model string
		want  string
		exact bool
	}{
		{"my-reseller-qwen-max", "qwen2", true},
		{"glm-4.5", "estimate", false},
		{"gpt-4o", "o200k_base", true},
	}
	for _, tt := range tests {
		c, exact := r.ForModel(tt.model)
		if c.Name() != tt.want || exact != tt.exact {
			t.Errorf("ForModel(%q) = %s, %v; want %s, %v", tt.model, c.Name(), exact, tt.want, tt.exact)
		}
	}
}

func TestCountKnownStrings(t *testing.T) {
	tests := []struct {
		enc  *Encoding
		text string
		want int
	}{
		// Qwen's metering documentation: this sentence is 8 tokens.
		{Qwen2, "通义千问具有强大的能力。", 8},
		{O200k, "", 0},
		{O200k, "hello world", 2},
		{CL100k, "hello world", 2},
		{Qwen2, "<|im_start|>", 1},
		{DeepSeekV3, "<｜User｜>", 1},
		{O200k, "<|endoftext|>", 7}, // special tokens are text for OpenAI
	}
	for _, tt := range tests {
		if got := tt.enc.Count(tt.text); got != tt.want {
			t.Errorf("%s.Count(%q) = %d, want %d", tt.enc.Name(), tt.text, got, tt.want)
		}
	}
}

func TestDecodeRejectsBadIDs(t *testing.T) {
	for _, ids := range [][]int{{-1}, {1 << 30}, {O200k.Size()}} {
		if _, err := O200k.Decode(ids); err == nil {
			t.Errorf("Decode(%v): no error", ids)
		}
	}
}

func TestCountMessagesFraming(t *testing.T) {
	msgs := []Message{{Role: "system", Content: "You are helpful."}, {Role: "user", Content: "你好"}}
	tests := []struct {
		model string
		want  int
	}{
		// <|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n
		{"qwen-plus", 1 + Qwen2.Count("system\nYou are helpful.") + 1 + Qwen2.Count("\n") + 1 + Qwen2.Count("user\n你好") + 1 + Qwen2.Count("\n") + 1 + Qwen2.Count("assistant\n")},
		// <｜begin▁of▁sentence｜>You are helpful.<｜User｜>你好<｜Assistant｜>
		{"deepseek-v3", 1 + DeepSeekV3.Count("You are helpful.") + 1 + DeepSeekV3.Count("你好") + 1},
		{"gpt-4o", 3 + 3 + O200k.Count("system") + O200k.Count("You are helpful.") + 3 + O200k.Count("user") + O200k.Count("你好")},
	}
	for _, tt := range tests {
		if got, _ := CountMessages(tt.model, msgs); got != tt.want {
			t.Errorf("CountMessages(%s) = %d, want %d", tt.model, got, tt.want)
		}
	}
	if _, exact := CountMessages("glm-4.5", msgs); exact {
		t.Error("GLM count claims to be exact")
	}
}
