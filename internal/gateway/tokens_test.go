package gateway

import (
	"encoding/json"
	"math/rand/v2"
	"os"
	"strings"
	"testing"

	"baimo/internal/provider/ir"
	"baimo/internal/usage"
)

// TestTokenizerMatchesRecordedUsage builds OpenAI request bodies from recorded
// vendor usage and checks the gateway's prompt count against what the vendor
// billed, within each recording's documented tolerance.
func TestTokenizerMatchesRecordedUsage(t *testing.T) {
	b, err := os.ReadFile("../../testdata/tokenize/chat_usage.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Model    string
		Messages []struct{ Role, Content, Name string }
		Prompt   int64 `json:"prompt_tokens"`
		Tol      int64 `json:"tolerance"`
	}
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	checked := 0
	for _, c := range cases {
		type msg struct {
			Role    string `json:"role"`
			Content string `json:"content"`
			Name    string `json:"name,omitempty"`
		}
		var msgs []msg
		for _, m := range c.Messages {
			msgs = append(msgs, msg{m.Role, m.Content, m.Name})
		}
		body, _ := json.Marshal(map[string]any{"model": c.Model, "messages": msgs})
		n, src := Tokenizer{}.CountBody(ir.FormatOpenAI, c.Model, body)
		if src != usage.SourceCounted {
			continue
		}
		checked++
		if d := n - c.Prompt; d > c.Tol || -d > c.Tol {
			t.Errorf("%s: counted %d prompt tokens, vendor billed %d (tolerance %d)", c.Model, n, c.Prompt, c.Tol)
		}
	}
	if checked == 0 {
		t.Fatal("no recording was counted exactly")
	}
}

func TestTokenizerShapes(t *testing.T) {
	tests := []struct {
		name, model, body string
		want              int64
		src               usage.Source
	}{
		{"content parts", "gpt-4o", `{"messages":[{"role":"user","content":[{"type":"text","text":"Who won the World Cup in 2022?"}]}]}`, 17, usage.SourceCounted},
		{"embedding strings", "text-embedding-3-small", `{"input":["hello world","hello"]}`, 3, usage.SourceCounted},
		{"embedding token ids", "text-embedding-3-small", `{"input":[1,2,3,4]}`, 4, usage.SourceCounted},
		{"embedding batches of token ids", "text-embedding-3-small", `{"input":[[1,2,3],[4,5]]}`, 5, usage.SourceCounted},
		{"estimated model", "glm-4.5", `{"messages":[{"role":"user","content":"你好"}]}`, -1, usage.SourceEstimated},
	}
	for _, tt := range tests {
		n, src := Tokenizer{}.CountBody(ir.FormatOpenAI, tt.model, []byte(tt.body))
		if src != tt.src || (tt.want >= 0 && n != tt.want) || n <= 0 {
			t.Errorf("%s: %d %v, want %d %v", tt.name, n, src, tt.want, tt.src)
		}
	}
	if n, src := (Tokenizer{}).CountText("gpt-4o", []byte("Hello world")); n != 2 || src != usage.SourceCounted {
		t.Errorf("CountText = %d %v", n, src)
	}
}

// TestPromptBoundCoversCounts: the bound a prepaid hold may use instead of
// counting the prompt is never below the count of any tokenizer the
// gateway has, for any model family, with the margin billing adds to an
// estimate (n/4 + 16): so a hold at the bound is never below the hold at
// the count. Prompts are drawn from text that tokenizes worst per byte
// (lone punctuation, digits, invalid bytes, special-token look-alikes,
// many empty messages).
func TestPromptBoundCoversCounts(t *testing.T) {
	pieces := []string{"hello", " world", "7", "12345", "!", "?!", "\x00", "\xff", "\xe4\xb8", "中文", "😀", "→", "€",
		" ", "\n\n", "\t", "<|im_start|>", "<|im_end|>", "<|endoftext|>", "<｜User｜>", "<｜tool▁output▁begin｜>",
		"{\"a\":1}", "ß", "é", "ـ", "ก", "\u200b"}
	roles := []string{"user", "assistant", "system", "tool", "", "developer", "x"}
	models := []string{"gpt-4o", "gpt-4", "qwen-max", "deepseek-v3", "deepseek-chat", "claude-sonnet-4-5",
		"gemini-2.5-flash", "glm-4", "unknown-model"}
	rng := rand.New(rand.NewPCG(18, 2026))
	text := func(max int) string {
		var b strings.Builder
		for range rng.IntN(max + 1) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	prompts := []ir.Prompt{
		{},
		{Messages: make([]ir.PromptMessage, 200)}, // the template's overhead alone
		{Messages: []ir.PromptMessage{{Role: "user", Content: strings.Repeat("<|im_start|>", 500)}}},
		{Messages: []ir.PromptMessage{{Role: "tool", Content: strings.Repeat("!", 4000)}}},
		{Messages: []ir.PromptMessage{{Role: "user", Name: strings.Repeat("!", 3000)}}},
		{Texts: []string{"", "", strings.Repeat("\xff", 300)}, Tokens: 77},
	}
	for range 300 {
		var p ir.Prompt
		for range rng.IntN(8) {
			p.Messages = append(p.Messages, ir.PromptMessage{Role: roles[rng.IntN(len(roles))], Content: text(60), Name: text(2)})
		}
		for range rng.IntN(3) {
			p.Texts = append(p.Texts, text(40))
		}
		p.Tokens = int64(rng.IntN(3) * 10)
		prompts = append(prompts, p)
	}
	for _, m := range models {
		for _, c := range []TokenCounter{Tokenizer{}, Estimator{}} {
			for i, p := range prompts {
				n, _ := c.CountPrompt(m, p)
				if b := promptBound(p); b < n+n/4+16 {
					t.Fatalf("%s, %T, prompt %d: bound %d below the count %d with its margin (%+v)", m, c, i, b, n, p)
				}
			}
		}
	}
}
