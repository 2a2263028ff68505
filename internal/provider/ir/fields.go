package ir

import (
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"baimo/internal/jsonfield"
)

// Limits on what a request body may say.
const (
	// MaxModelName bounds a model name: a longer one names no model.
	MaxModelName = 256
	// MaxCount bounds max_tokens, n and their kin before the catalog's
	// limits apply: larger integers are refused as they are.
	MaxCount = 1 << 40
)

// ModelField reads a required model name: a non-empty string of valid
// UTF-8, at most MaxModelName bytes.
func ModelField(v []byte, param string) (string, error) {
	if v == nil {
		return "", &FieldError{Param: param, Message: "You must provide a model parameter."}
	}
	m, ok := jsonfield.String(v)
	switch {
	case !ok || m == "":
		return "", &FieldError{Param: param, Message: "The model parameter must be a non-empty string."}
	case len(m) > MaxModelName || !utf8.ValidString(m):
		return "", &FieldError{Param: param, Message: "The model parameter is not a model name."}
	}
	return m, nil
}

// BoolField reads an optional boolean (absent or null is false).
func BoolField(v []byte, param string) (bool, error) {
	if v == nil || jsonfield.IsNull(v) {
		return false, nil
	}
	b, ok := jsonfield.Bool(v)
	if !ok {
		return false, &FieldError{Param: param, Message: "The " + param + " parameter must be a boolean."}
	}
	return b, nil
}

// CountField reads an optional positive integer, written as an integer
// (absent or null is 0). 0, negatives, fractions, exponents and integers
// above MaxCount are refused.
func CountField(v []byte, param string) (int64, error) {
	if v == nil || jsonfield.IsNull(v) {
		return 0, nil
	}
	n, ok := jsonfield.Int(v)
	if !ok || n < 1 || n > MaxCount {
		return 0, &FieldError{Param: param, Message: "The " + param + " parameter must be a positive integer."}
	}
	return n, nil
}

// Ambiguous is the client's error for a member spelled ambiguously (see
// jsonfield.Members), under parent ("" at the top level).
func Ambiguous(parent string, e *jsonfield.AmbiguousError) *FieldError {
	p := e.Name
	if parent != "" {
		p = parent + "." + e.Name
	}
	msg := "The key " + p + " appears more than once; send it once."
	switch e.Reason {
	case "escaped":
		msg = "The key " + p + " is written with escape sequences; write it plainly."
	case "case":
		msg = "A key spells " + p + " in another case; parsers disagree about such keys, so spell it exactly " + e.Name + "."
	}
	return &FieldError{Param: p, Message: msg}
}

// Members reads, for admission, the members of body named in names (see
// jsonfield.Members: each spelled plainly and once) and returns the value
// of the i-th name, nil when absent. A body that is not JSON is
// ErrInvalidJSON; an ambiguous spelling is the client's *FieldError.
func Members(body []byte, names []string) (func(i int) []byte, error) {
	if !json.Valid(body) {
		return nil, ErrInvalidJSON
	}
	sp := make([]jsonfield.Span, len(names))
	if err := jsonfield.Members(body, names, sp); err != nil {
		if ae, ok := err.(*jsonfield.AmbiguousError); ok {
			return nil, Ambiguous("", ae)
		}
		return nil, err
	}
	return func(i int) []byte {
		if sp[i].Start < 0 {
			return nil
		}
		return body[sp[i].Start:sp[i].End]
	}, nil
}

// SetModelAndLimit is the passthrough patch of formats that name the model
// in the body: the model when it differs from the one admitted, and, when
// limit > 0, the output limit in limitField. Every other byte is kept.
func SetModelAndLimit(body []byte, a *Admission, model, limitField string, limit int64) ([]byte, error) {
	out := body
	var err error
	if model != a.Model {
		if out, err = jsonfield.Set(out, "model", strconv.AppendQuote(nil, model)); err != nil {
			return nil, err
		}
	}
	if limit > 0 {
		if out, err = jsonfield.Set(out, limitField, strconv.AppendInt(nil, limit, 10)); err != nil {
			return nil, err
		}
	}
	return out, nil
}
