package ir

import (
	"bytes"
	"encoding/json"
	"fmt"
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
