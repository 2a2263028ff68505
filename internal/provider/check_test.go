package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"testing"

	"baimo/internal/provider/anthropic"
	"baimo/internal/provider/gemini"
	"baimo/internal/provider/ir"
	"baimo/internal/provider/openai"
	"baimo/internal/provider/responses"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// The checks below hold a client stream to the event grammar its official SDK
// expects. They are used by the golden tests and the fuzz targets.

type event struct {
	name string
	data []byte
}

func readEvents(out []byte) ([]event, error) {
	var evs []event
	rd := sse.NewReader(bytes.NewReader(out), 0)
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return evs, nil
		}
		if err != nil {
			return nil, err
		}
		evs = append(evs, event{string(ev.Name), bytes.Clone(ev.Data)})
	}
}

func checkClientStream(c ir.Format, out []byte, complete bool) error {
	evs, err := readEvents(out)
	if err != nil {
		return err
	}
	switch c {
	case ir.FormatOpenAI:
		return checkOpenAIStream(evs, complete)
	case ir.FormatAnthropic:
		return checkAnthropicStream(evs, complete)
	case ir.FormatResponses:
		return checkResponsesStream(evs, complete)
	}
	return checkGeminiStream(evs, complete)
}

// checkResponsesStream holds a Responses stream to the grammar the openai
// SDK's stream helper relies on: sequence numbers from 0 without gaps,
// response.created first, each output item added before its deltas and done
// after them with the same index, function call arguments that make JSON,
// and a complete stream ending with response.completed (or incomplete)
// whose output repeats the items done.
func checkResponsesStream(evs []event, complete bool) error {
	type item struct {
		id   string
		done bool
		args bytes.Buffer
	}
	items := map[int]*item{}
	var doneItems []json.RawMessage
	for i, ev := range evs {
		var e struct {
			Type        string          `json:"type"`
			Seq         *int            `json:"sequence_number"`
			OutputIndex int             `json:"output_index"`
			ItemID      string          `json:"item_id"`
			Item        json.RawMessage `json:"item"`
			Delta       string          `json:"delta"`
			Response    *struct {
				Status string            `json:"status"`
				Output []json.RawMessage `json:"output"`
				Usage  json.RawMessage   `json:"usage"`
			} `json:"response"`
		}
		if err := json.Unmarshal(ev.data, &e); err != nil {
			return fmt.Errorf("event %d: %v", i, err)
		}
		if e.Type != ev.name {
			return fmt.Errorf("event %d: name %q but type %q", i, ev.name, e.Type)
		}
		if e.Seq == nil || *e.Seq != i {
			return fmt.Errorf("event %d (%s): sequence_number %v", i, e.Type, e.Seq)
		}
		if i == 0 && e.Type != "response.created" && e.Type != "error" {
			return fmt.Errorf("first event is %s", e.Type)
		}
		last := i == len(evs)-1
		switch e.Type {
		case "response.output_item.added":
			var it struct{ ID string }
			_ = json.Unmarshal(e.Item, &it)
			if items[e.OutputIndex] != nil || it.ID == "" {
				return fmt.Errorf("event %d: item %d added twice or without an id", i, e.OutputIndex)
			}
			items[e.OutputIndex] = &item{id: it.ID}
		case "response.output_text.delta", "response.reasoning_text.delta", "response.function_call_arguments.delta",
			"response.content_part.added", "response.content_part.done", "response.output_text.done",
			"response.reasoning_text.done", "response.function_call_arguments.done":
			it := items[e.OutputIndex]
			if it == nil || it.done || it.id != e.ItemID {
				return fmt.Errorf("event %d: %s for item %d (%s) not open", i, e.Type, e.OutputIndex, e.ItemID)
			}
			if e.Type == "response.function_call_arguments.delta" {
				it.args.WriteString(e.Delta)
			}
		case "response.output_item.done":
			it := items[e.OutputIndex]
			if it == nil || it.done {
				return fmt.Errorf("event %d: item %d done but not open", i, e.OutputIndex)
			}
			if it.args.Len() > 0 && !json.Valid(it.args.Bytes()) {
				return fmt.Errorf("item %d: arguments are not JSON: %s", e.OutputIndex, it.args.Bytes())
			}
			it.done = true
			doneItems = append(doneItems, e.Item)
		case "response.completed", "response.incomplete":
			if !last {
				return fmt.Errorf("event %d: %s is not last", i, e.Type)
			}
			if e.Response == nil || len(e.Response.Output) != len(doneItems) || len(e.Response.Usage) == 0 || string(e.Response.Usage) == "null" {
				return fmt.Errorf("%s: output or usage does not match the items done", e.Type)
			}
			for k := range doneItems {
				if !bytes.Equal(e.Response.Output[k], doneItems[k]) {
					return fmt.Errorf("%s: output %d differs from its done item", e.Type, k)
				}
			}
		case "response.failed", "error":
			if !last || complete {
				return fmt.Errorf("event %d: %s not last, or in a complete stream", i, e.Type)
			}
			return nil
		}
	}
	if complete {
		if len(evs) == 0 {
			return errors.New("no events")
		}
		if n := evs[len(evs)-1].name; n != "response.completed" && n != "response.incomplete" {
			return fmt.Errorf("complete stream ends with %s", n)
		}
	}
	return nil
}

func checkAnthropicStream(evs []event, complete bool) error {
	if len(evs) == 0 {
		return errors.New("no events")
	}
	open, next := -1, 0
	openType := ""
	var args bytes.Buffer
	started, deltaSeen := false, false
	for i, ev := range evs {
		var e struct {
			Type         string          `json:"type"`
			Index        int             `json:"index"`
			ContentBlock json.RawMessage `json:"content_block"`
			Delta        struct {
				Type        string `json:"type"`
				PartialJSON string `json:"partial_json"`
				StopReason  string `json:"stop_reason"`
			} `json:"delta"`
			Usage *anthropic.Usage `json:"usage"`
		}
		if err := json.Unmarshal(ev.data, &e); err != nil {
			return fmt.Errorf("event %d: %v", i, err)
		}
		if e.Type != ev.name {
			return fmt.Errorf("event %d: name %q but type %q", i, ev.name, e.Type)
		}
		if i > 0 && evs[i-1].name == "message_stop" {
			return fmt.Errorf("event %d after message_stop", i)
		}
		if e.Type == "error" {
			if i != len(evs)-1 {
				return errors.New("events after an error")
			}
			if complete {
				return errors.New("error event in a complete stream")
			}
			return nil
		}
		if !started && e.Type != "message_start" {
			return fmt.Errorf("event %d: %s before message_start", i, e.Type)
		}
		if deltaSeen && e.Type != "message_stop" {
			return fmt.Errorf("event %d: %s after message_delta", i, e.Type)
		}
		switch e.Type {
		case "message_start":
			if started {
				return errors.New("two message_start events")
			}
			started = true
		case "content_block_start":
			var b struct {
				Type string `json:"type"`
			}
			_ = json.Unmarshal(e.ContentBlock, &b)
			if open >= 0 || e.Index != next {
				return fmt.Errorf("event %d: block %d starts while %d is open (next %d)", i, e.Index, open, next)
			}
			open, openType = e.Index, b.Type
			args.Reset()
		case "content_block_delta":
			if e.Index != open {
				return fmt.Errorf("event %d: delta for block %d, open is %d", i, e.Index, open)
			}
			want := map[string][]string{"text": {"text_delta"}, "thinking": {"thinking_delta", "signature_delta"}, "tool_use": {"input_json_delta"}}[openType]
			ok := false
			for _, w := range want {
				ok = ok || w == e.Delta.Type
			}
			if !ok {
				return fmt.Errorf("event %d: %s in a %s block", i, e.Delta.Type, openType)
			}
			args.WriteString(e.Delta.PartialJSON)
		case "content_block_stop":
			if e.Index != open {
				return fmt.Errorf("event %d: stop for block %d, open is %d", i, e.Index, open)
			}
			if openType == "tool_use" && args.Len() > 0 && !json.Valid(args.Bytes()) {
				return fmt.Errorf("tool_use block %d: input is not JSON: %s", open, args.Bytes())
			}
			open, next = -1, next+1
		case "message_delta":
			if open >= 0 || e.Delta.StopReason == "" || e.Usage == nil || e.Usage.OutputTokens == nil {
				return fmt.Errorf("event %d: message_delta with a block open, or without stop_reason and usage", i)
			}
			deltaSeen = true
		case "message_stop":
			if !deltaSeen {
				return errors.New("message_stop without message_delta")
			}
		case "ping":
		default:
			return fmt.Errorf("event %d: unknown type %q", i, e.Type)
		}
	}
	if complete && evs[len(evs)-1].name != "message_stop" {
		return errors.New("complete stream does not end with message_stop")
	}
	return nil
}

func checkOpenAIStream(evs []event, complete bool) error {
	finishes, sawUsage := 0, false
	args := map[int]*bytes.Buffer{}
	for i, ev := range evs {
		if ev.name != "" {
			return fmt.Errorf("event %d has a name", i)
		}
		if sse.IsDone(ev.data) {
			if i != len(evs)-1 {
				return errors.New("events after [DONE]")
			}
			if finishes != 1 {
				return fmt.Errorf("%d finish_reasons before [DONE]", finishes)
			}
			continue
		}
		var c struct {
			openai.Chunk
			Error *openai.ErrorDetail `json:"error"`
		}
		if err := json.Unmarshal(ev.data, &c); err != nil {
			return fmt.Errorf("event %d: %v", i, err)
		}
		if c.Error != nil {
			if i != len(evs)-1 || complete {
				return errors.New("error chunk not last, or in a complete stream")
			}
			return nil
		}
		if c.Object != "chat.completion.chunk" {
			return fmt.Errorf("event %d: object %q", i, c.Object)
		}
		if i == 0 && (len(c.Choices) != 1 || c.Choices[0].Delta.Role != "assistant") {
			return errors.New("first chunk does not carry the assistant role")
		}
		if sawUsage {
			return errors.New("chunk after the usage chunk")
		}
		if c.Usage != nil {
			if len(c.Choices) != 0 || finishes != 1 {
				return errors.New("usage chunk with choices or before finish_reason")
			}
			sawUsage = true
		}
		for _, ch := range c.Choices {
			if finishes > 0 {
				return errors.New("choice chunk after finish_reason")
			}
			if ch.FinishReason != nil {
				finishes++
			}
			for _, tc := range ch.Delta.ToolCalls {
				if tc.Index == nil {
					return errors.New("tool call delta without index")
				}
				b := args[*tc.Index]
				if b == nil {
					if tc.ID == "" || tc.Function.Name == "" {
						return errors.New("first delta of a tool call lacks id or name")
					}
					b = &bytes.Buffer{}
					args[*tc.Index] = b
				}
				b.WriteString(tc.Function.Arguments)
			}
		}
	}
	for i, b := range args {
		if !json.Valid(b.Bytes()) && complete {
			return fmt.Errorf("tool call %d arguments are not JSON: %s", i, b.Bytes())
		}
	}
	if complete && (len(evs) == 0 || !sse.IsDone(evs[len(evs)-1].data)) {
		return errors.New("complete stream does not end with [DONE]")
	}
	return nil
}

func checkGeminiStream(evs []event, complete bool) error {
	for i, ev := range evs {
		var r struct {
			gemini.Response
			Error *gemini.ErrorDetail `json:"error"`
		}
		if err := json.Unmarshal(ev.data, &r); err != nil {
			return fmt.Errorf("event %d: %v", i, err)
		}
		if r.Error != nil {
			if i != len(evs)-1 || complete {
				return errors.New("error chunk not last, or in a complete stream")
			}
			return nil
		}
		if len(r.Candidates) != 1 {
			return fmt.Errorf("event %d: %d candidates", i, len(r.Candidates))
		}
		last := i == len(evs)-1
		if (r.Candidates[0].FinishReason != "") != last && complete {
			return fmt.Errorf("event %d: finishReason %q (last %v)", i, r.Candidates[0].FinishReason, last)
		}
		if last && complete && r.UsageMetadata == nil {
			return errors.New("last chunk without usageMetadata")
		}
		if ct := r.Candidates[0].Content; ct != nil {
			for _, p := range ct.Parts {
				if p.FunctionCall != nil {
					var obj map[string]any
					if err := json.Unmarshal(p.FunctionCall.Args, &obj); err != nil {
						return fmt.Errorf("event %d: functionCall args: %v", i, err)
					}
				}
			}
		}
	}
	if complete && len(evs) == 0 {
		return errors.New("no chunks")
	}
	return nil
}

// clientStreamUsage reads the usage a client sees in a translated stream.
func clientStreamUsage(t *testing.T, c ir.Format, out []byte) (usage.Usage, bool) {
	t.Helper()
	evs, err := readEvents(out)
	if err != nil {
		t.Fatal(err)
	}
	switch c {
	case ir.FormatAnthropic:
		var s anthropic.StreamUsage
		for _, ev := range evs {
			if err := s.Event([]byte(ev.name), ev.data); err != nil {
				t.Fatal(err)
			}
		}
		return s.Usage()
	case ir.FormatGemini:
		var s gemini.StreamUsage
		for _, ev := range evs {
			if err := s.Chunk(ev.data); err != nil {
				t.Fatal(err)
			}
		}
		return s.Usage()
	case ir.FormatResponses:
		m := responses.Vendor.NewMeter(false)
		for _, ev := range evs {
			m.Event(sse.Event{Name: []byte(ev.name), Data: ev.data})
		}
		return m.Usage()
	}
	var u usage.Usage
	seen := false
	for _, ev := range evs {
		var ch openai.Chunk
		if json.Unmarshal(ev.data, &ch) == nil {
			if cu, ok := ch.Usage.Normalised(); ok {
				u, seen = cu, true
			}
		}
	}
	return u, seen
}

// clientResponseUsage reads the usage a client sees in a translated response.
func clientResponseUsage(c ir.Format, body []byte) (usage.Usage, bool) {
	switch c {
	case ir.FormatAnthropic:
		u, err := anthropic.ResponseUsage(body)
		return u, err == nil
	case ir.FormatGemini:
		u, ok, err := gemini.ChunkUsage(body)
		return u, ok && err == nil
	case ir.FormatResponses:
		return responses.Vendor.BodyUsage(body)
	}
	var r openai.Response
	if json.Unmarshal(body, &r) != nil {
		return usage.Usage{}, false
	}
	return r.Usage.Normalised()
}
