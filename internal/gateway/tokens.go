package gateway

import (
	"encoding/json"
	"strings"

	"baimo/internal/jsonfield"
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

// wireMessage is the part of an OpenAI chat message that a chat template
// frames.
type wireMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	Name       string          `json:"name"`
	ToolCalls  json.RawMessage `json:"tool_calls"`
	ToolCallID string          `json:"tool_call_id"`
}

// text returns the text of a content value: a string, or the text parts of
// an array of parts.
func text(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] == 'n' {
		return ""
	}
	if raw[0] == '"' {
		s, _ := jsonfield.String(raw)
		return s
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) != nil {
		return string(raw)
	}
	var b strings.Builder
	for _, p := range parts {
		b.WriteString(p.Text)
	}
	return b.String()
}

// CountPrompt counts the prompt of an OpenAI-style request body: chat
// messages with the vendor's framing, a completions prompt, or embedding
// input. Tool definitions and tool calls are counted as their JSON text
// (an approximation: vendors render them into their own templates).
func (Tokenizer) CountPrompt(model string, body []byte) (int64, usage.Source) {
	if s, ok := jsonfield.Find(body, "messages"); ok {
		var wm []wireMessage
		if err := json.Unmarshal(body[s.Start:s.End], &wm); err == nil {
			msgs := make([]tokenize.Message, 0, len(wm)+1)
			for _, m := range wm {
				c := text(m.Content)
				if len(m.ToolCalls) > 0 && string(m.ToolCalls) != "null" {
					c += string(m.ToolCalls)
				}
				msgs = append(msgs, tokenize.Message{Role: m.Role, Content: c, Name: m.Name})
			}
			if t, ok := jsonfield.Find(body, "tools"); ok && !jsonfield.IsNull(body[t.Start:t.End]) {
				msgs = append(msgs, tokenize.Message{Role: "system", Content: string(body[t.Start:t.End])})
			}
			n, exact := tokenize.CountMessages(model, msgs)
			return int64(n), source(exact)
		}
	}
	c, exact := tokenize.ForModel(model)
	var total int64
	for _, field := range []string{"prompt", "input"} {
		s, ok := jsonfield.Find(body, field)
		if !ok {
			continue
		}
		v := body[s.Start:s.End]
		if v[0] == '"' {
			str, _ := jsonfield.String(v)
			total += int64(c.Count(str))
			continue
		}
		var list []string
		if json.Unmarshal(v, &list) == nil {
			for _, str := range list {
				total += int64(c.Count(str))
			}
			continue
		}
		// Token id arrays are already tokens.
		var ids []json.RawMessage
		if json.Unmarshal(v, &ids) == nil {
			total += int64(len(ids))
		}
	}
	return total, source(exact)
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
