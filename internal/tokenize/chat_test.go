package tokenize

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
)

// chatUsage is one recorded vendor response: the messages sent and the
// prompt_tokens the vendor reported.
type chatUsage struct {
	Source       string    `json:"source"`
	Model        string    `json:"model"`
	Messages     []Message `json:"messages"`
	PromptTokens int       `json:"prompt_tokens"`
	// Completion is the delivered text and CompletionTokens the vendor's
	// count of it, when recorded.
	Completion       string `json:"completion"`
	CompletionTokens int    `json:"completion_tokens"`
	// Tolerance is the documented allowed difference (0 = exact).
	Tolerance int `json:"tolerance"`
}

func TestCountMessagesRecordedUsage(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "tokenize", "chat_usage.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []chatUsage
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.Model+"/"+c.Source, func(t *testing.T) {
			n, _ := CountMessages(c.Model, c.Messages)
			if d := n - c.PromptTokens; d < -c.Tolerance || d > c.Tolerance {
				t.Errorf("prompt tokens = %d, vendor reported %d (tolerance %d)", n, c.PromptTokens, c.Tolerance)
			}
			if c.Completion != "" {
				if got, _ := CountCompletion(c.Model, c.Completion, true); got != c.CompletionTokens {
					t.Errorf("completion tokens = %d, vendor reported %d", got, c.CompletionTokens)
				}
			}
		})
	}
}
