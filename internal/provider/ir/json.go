package ir

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// checkFields refuses top-level fields outside known, naming the first in
// sorted order so the error is stable.
func CheckFields(body []byte, known map[string]bool, vendor string) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return BadRequest(err, "request body is not a JSON object")
	}
	var bad []string
	for k := range fields {
		if !known[k] {
			bad = append(bad, k)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	first := bad[0]
	for _, k := range bad[1:] {
		first = min(first, k)
	}
	return &UnsupportedError{Feature: fmt.Sprintf("%s parameter %q", vendor, first)}
}

// compactJSON returns raw without insignificant space.
func CompactJSON(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

func JSONString(s string) json.RawMessage {
	b, _ := json.Marshal(s)
	return b
}

// ArgsObject reads a tool call's arguments, a string of JSON, as a JSON
// object: blank or null arguments are {}; anything else that is not an
// object is an error.
func ArgsObject(s string) (json.RawMessage, error) {
	if strings.TrimSpace(s) == "" {
		return json.RawMessage(`{}`), nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal([]byte(s), &obj); err != nil {
		return nil, err
	}
	if obj == nil {
		return json.RawMessage(`{}`), nil
	}
	return json.RawMessage(s), nil
}

// DecodeToolChoice reads OpenAI's tool_choice (chat completions and Responses
// alike): "auto", "none", "required", or an object of type function whose
// name named reads (chat completions nest it under "function", Responses
// does not). Another value is an *UnsupportedError.
func DecodeToolChoice(raw json.RawMessage, named func(obj json.RawMessage) (typ, name string, err error)) (*ToolChoice, error) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		switch s {
		case "auto":
			return &ToolChoice{Mode: ToolAuto}, nil
		case "none":
			return &ToolChoice{Mode: ToolNone}, nil
		case "required":
			return &ToolChoice{Mode: ToolAny}, nil
		}
		return nil, &UnsupportedError{Feature: fmt.Sprintf("tool_choice %q", s)}
	}
	typ, name, err := named(raw)
	if err != nil {
		return nil, BadRequest(err, "invalid tool_choice")
	}
	if typ != "function" || name == "" {
		return nil, &UnsupportedError{Feature: fmt.Sprintf("tool_choice type %q", typ)}
	}
	return &ToolChoice{Mode: ToolName, Name: name}, nil
}
