package responses

import (
	"encoding/json"
	"net/http"

	"baimo/internal/jsonfield"
	"baimo/internal/provider/ir"
)

// Client is the Responses API as clients call the gateway in it.
var Client ir.Client = client{}

type client struct{}

// Secret returns the key of Authorization: Bearer, or of x-api-key.
func (client) Secret(r *http.Request) string { return ir.BearerOrAPIKey(r.Header) }

// The request members the gateway acts on, in the order of the f constants.
var admitNames = []string{"model", "stream", "input", "max_output_tokens", "background", "store",
	"previous_response_id", "service_tier", "instructions"}

const (
	fModel = iota
	fStream
	fInput
	fMaxOutput
	fBackground
	fStore
	fPrevious
	fServiceTier
	fInstructions
)

// Admit reads a Responses request: the model, stream, the output limit
// (max_output_tokens, a positive integer), and checks that input is a
// string or an array, that background and store are booleans,
// previous_response_id and instructions strings, and that service_tier, if
// set, is auto or default. The members it acts on must be spelled plainly
// and once (see jsonfield.Members).
func (client) Admit(_ ir.Target, body []byte) (ir.Admission, error) {
	var a ir.Admission
	val, err := ir.Members(body, admitNames)
	if err != nil {
		return a, err
	}
	m, err := ir.ModelField(val(fModel), "model")
	if err != nil {
		return a, err
	}
	a.Model = m
	if a.Stream, err = ir.BoolField(val(fStream), "stream"); err != nil {
		return a, err
	}
	if a.MaxOutput, err = ir.CountField(val(fMaxOutput), "max_output_tokens"); err != nil {
		return a, err
	}
	if a.MaxOutput > 0 {
		a.MaxOutputField = "max_output_tokens"
	}
	for _, f := range [...]int{fBackground, fStore} {
		if _, err := ir.BoolField(val(f), admitNames[f]); err != nil {
			return a, err
		}
	}
	for _, f := range [...]int{fPrevious, fInstructions} {
		if v := val(f); v != nil && !jsonfield.IsNull(v) && v[0] != '"' {
			return a, &ir.FieldError{Param: admitNames[f], Message: "The " + admitNames[f] + " parameter must be a string."}
		}
	}
	if v := val(fInput); v == nil || jsonfield.IsNull(v) {
		if val(fPrevious) == nil {
			return a, &ir.FieldError{Param: "input", Message: "You must provide an input parameter."}
		}
	} else if v[0] != '"' && v[0] != '[' {
		return a, &ir.FieldError{Param: "input", Message: "The input parameter must be a string or an array of input items."}
	}
	if v := val(fServiceTier); v != nil && !jsonfield.IsNull(v) {
		s, ok := jsonfield.String(v)
		if !ok || (s != "auto" && s != "default") {
			return a, &ir.FieldError{Param: "service_tier",
				Message: "Only the default service tier is offered through this gateway (service_tier auto or default)."}
		}
	}
	return a, nil
}

// Prompt returns the prompt of a Responses request: the instructions as a
// system message, each input item framed by its role (function calls and
// their outputs as the assistant's and a tool's), and the tools'
// definitions as a system message.
func (client) Prompt(_ ir.Target, body []byte) ir.Prompt {
	var p ir.Prompt
	var r struct {
		Instructions *string         `json:"instructions"`
		Input        json.RawMessage `json:"input"`
		Tools        json.RawMessage `json:"tools"`
	}
	if json.Unmarshal(body, &r) != nil {
		return p
	}
	if r.Instructions != nil && *r.Instructions != "" {
		p.Messages = append(p.Messages, ir.PromptMessage{Role: "system", Content: *r.Instructions})
	}
	if len(r.Input) > 0 && r.Input[0] == '"' {
		s, _ := jsonfield.String(r.Input)
		p.Messages = append(p.Messages, ir.PromptMessage{Role: "user", Content: s})
	} else {
		var items []Item
		_ = json.Unmarshal(r.Input, &items)
		for _, it := range items {
			switch it.Type {
			case "", "message":
				p.Messages = append(p.Messages, ir.PromptMessage{Role: it.Role, Content: contentText(it.Content)})
			case "function_call":
				args := ""
				if it.Arguments != nil {
					args = *it.Arguments
				}
				p.Messages = append(p.Messages, ir.PromptMessage{Role: "assistant", Content: it.Name + args})
			case "function_call_output":
				p.Messages = append(p.Messages, ir.PromptMessage{Role: "tool", Content: contentText(it.Output)})
			case "reasoning":
				var text string
				for _, s := range it.summary() {
					text += s.Text
				}
				p.Messages = append(p.Messages, ir.PromptMessage{Role: "assistant", Content: text + contentText(it.Content)})
			}
		}
	}
	if len(r.Tools) > 0 && !jsonfield.IsNull(r.Tools) {
		p.Messages = append(p.Messages, ir.PromptMessage{Role: "system", Content: string(r.Tools)})
	}
	return p
}

// contentText is the text of a content value: a string, or the text of
// its parts.
func contentText(raw json.RawMessage) string {
	if len(raw) == 0 || raw[0] == 'n' {
		return ""
	}
	if raw[0] == '"' {
		s, _ := jsonfield.String(raw)
		return s
	}
	var parts []Part
	if json.Unmarshal(raw, &parts) != nil {
		return string(raw)
	}
	var b []byte
	for _, p := range parts {
		b = append(append(b, p.Text...), p.Refusal...)
	}
	return string(b)
}
