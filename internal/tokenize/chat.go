package tokenize

import (
	"strings"
	"sync"
)

// Message is one chat message as a chat template sees it. Callers extract
// the text of an OpenAI-style request: Content is the message's text (text
// parts joined); tool calls may be passed as their JSON in Content with role
// "assistant", tool results with role "tool". Images and audio are not
// counted here.
type Message struct {
	Role    string
	Content string
	Name    string // optional participant name (OpenAI)
}

// CountMessages returns the prompt tokens of msgs for model as the vendor's
// chat template frames them, and whether the count is exact.
//
// Framing per tokenizer:
//   - OpenAI (o200k_base, cl100k_base): 3 tokens per message, 1 per name, 3
//     to prime the reply (OpenAI's published rule; matches recorded usage in
//     testdata/tokenize/chat_usage.json).
//   - Qwen: the ChatML template "<|im_start|>role\ncontent<|im_end|>\n" and
//     "<|im_start|>assistant\n" to prompt the reply, as in Qwen3's published
//     template. Not checked against DashScope usage here; a vendor that adds
//     a default system prompt or a thinking switch ("<think>\n\n</think>\n\n",
//     4 tokens) differs by that much.
//   - DeepSeek: "<｜begin▁of▁sentence｜>" + system prompts joined by "\n\n",
//     "<｜User｜>content", "<｜Assistant｜>content<｜end▁of▁sentence｜>", tool
//     outputs, and "<｜Assistant｜>" to prompt the reply (DeepSeek-V3's
//     published template). V3.1 and later add "</think>" or "<think>" after
//     the prompt (1 token) which is not counted.
//   - Estimated models: the content estimate plus 4 tokens per message and 3
//     for the reply.
func CountMessages(model string, msgs []Message) (n int, exact bool) {
	c, exact := ForModel(model)
	return countMessages(c, msgs), exact && c.Exact()
}

// CountMessages is the package-level CountMessages using the registry's
// model mapping.
func (r *Registry) CountMessages(model string, msgs []Message) (n int, exact bool) {
	c, exact := r.ForModel(model)
	return countMessages(c, msgs), exact && c.Exact()
}

// CountMessagesWith counts msgs with counter c's framing.
func CountMessagesWith(c Counter, msgs []Message) int { return countMessages(c, msgs) }

func countMessages(c Counter, msgs []Message) int {
	e, ok := c.(*Encoding)
	if !ok || e.Load() != nil {
		n := 3
		for _, m := range msgs {
			n += 4 + Estimate(m.Content) + Estimate(m.Name)
		}
		return n
	}
	switch e {
	case O200k, CL100k:
		n := 3
		for _, m := range msgs {
			n += 3 + e.Count(m.Role) + e.Count(m.Content)
			if m.Name != "" {
				n += 1 + e.Count(m.Name)
			}
		}
		return n
	case Qwen2:
		return renderCount(e, msgs, renderQwen)
	case DeepSeekV3:
		return renderCount(e, msgs, renderDeepSeek)
	}
	n := 3
	for _, m := range msgs {
		n += 4 + e.Count(m.Content)
	}
	return n
}

var builderPool = sync.Pool{New: func() any { return new(strings.Builder) }}

// renderCount renders msgs with render and counts the result; added tokens
// in the rendered text are matched as the vendor's tokenizer matches them.
// The rendered copy is as large as the request, which the caller bounds.
func renderCount(e *Encoding, msgs []Message, render func(*strings.Builder, []Message)) int {
	size := 64
	for _, m := range msgs {
		size += len(m.Role) + len(m.Content) + 32
	}
	b := builderPool.Get().(*strings.Builder)
	b.Reset()
	b.Grow(size)
	render(b, msgs)
	n := e.Count(b.String())
	if b.Cap() <= 1<<20 {
		builderPool.Put(b)
	}
	return n
}

func renderQwen(b *strings.Builder, msgs []Message) {
	for _, m := range msgs {
		b.WriteString("<|im_start|>")
		b.WriteString(m.Role)
		b.WriteByte('\n')
		if m.Role == "tool" {
			// Qwen3 wraps tool results in a user turn.
			b.WriteString("<tool_response>\n")
			b.WriteString(m.Content)
			b.WriteString("\n</tool_response>")
		} else {
			b.WriteString(m.Content)
		}
		b.WriteString("<|im_end|>\n")
	}
	b.WriteString("<|im_start|>assistant\n")
}

func renderDeepSeek(b *strings.Builder, msgs []Message) {
	b.WriteString("<｜begin▁of▁sentence｜>")
	first := true
	for _, m := range msgs {
		if m.Role != "system" {
			continue
		}
		if !first {
			b.WriteString("\n\n")
		}
		b.WriteString(m.Content)
		first = false
	}
	inTool, firstOutput := false, true
	for _, m := range msgs {
		switch m.Role {
		case "user":
			inTool = false
			b.WriteString("<｜User｜>")
			b.WriteString(m.Content)
		case "assistant":
			if inTool {
				b.WriteString("<｜tool▁outputs▁end｜>")
				inTool = false
			} else {
				b.WriteString("<｜Assistant｜>")
			}
			b.WriteString(m.Content)
			b.WriteString("<｜end▁of▁sentence｜>")
		case "tool":
			if firstOutput {
				b.WriteString("<｜tool▁outputs▁begin｜>")
				firstOutput = false
			} else {
				b.WriteByte('\n')
			}
			b.WriteString("<｜tool▁output▁begin｜>")
			b.WriteString(m.Content)
			b.WriteString("<｜tool▁output▁end｜>")
			inTool = true
		}
	}
	if inTool {
		b.WriteString("<｜tool▁outputs▁end｜>")
		return
	}
	b.WriteString("<｜Assistant｜>")
}

// CountCompletion returns the output tokens of text generated by model and
// whether the count is exact. stopped says the model ended the message
// itself (finish_reason "stop"): vendors then bill the end-of-message token
// too, one more token (checked against OpenAI's usage; assumed for the
// others, whose servers count the generated EOS token). For a stream that
// broke, pass the concatenated delivered text and stopped=false.
func CountCompletion(model, text string, stopped bool) (n int, exact bool) {
	c, exact := ForModel(model)
	n = c.Count(text)
	if stopped {
		n++
	}
	return n, exact && c.Exact()
}
