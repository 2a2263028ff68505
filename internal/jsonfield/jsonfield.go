// Package jsonfield finds and patches fields of a JSON object in place,
// without decoding the rest of it, so that request and response bodies that
// pass through the gateway keep every byte the gateway has no reason to touch.
//
// The functions expect valid JSON (check with json.Valid first); on invalid
// input they return ok=false or an error, never panic.
package jsonfield

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// ErrNotObject is returned when a body is not a JSON object.
var ErrNotObject = errors.New("not a JSON object")

// Span is the position of a value in a body: body[Start:End].
type Span struct{ Start, End int }

// Find returns the span of the value of the top-level key in obj, a JSON
// object. ok is false when the key is absent or obj is not an object. When a
// key repeats, the last one wins, as in encoding/json.
func Find(obj []byte, key string) (Span, bool) {
	var found Span
	ok := false
	err := Each(obj, func(k []byte, v Span) bool {
		if keyEquals(k, key) {
			found, ok = v, true
		}
		return true
	})
	if err != nil {
		return Span{}, false
	}
	return found, ok
}

// Path follows keys through nested objects and returns the span of the value
// at the end of the path.
func Path(obj []byte, keys ...string) (Span, bool) {
	base := 0
	for _, k := range keys {
		s, ok := Find(obj, k)
		if !ok {
			return Span{}, false
		}
		obj = obj[s.Start:s.End]
		base += s.Start
	}
	return Span{Start: base, End: base + len(obj)}, true
}

// Each calls fn for each top-level key of obj (the raw key bytes, without
// quotes and still escaped) and the span of its value, until fn returns false.
func Each(obj []byte, fn func(key []byte, value Span) bool) error {
	i := skipWS(obj, 0)
	if i >= len(obj) || obj[i] != '{' {
		return ErrNotObject
	}
	i = skipWS(obj, i+1)
	if i < len(obj) && obj[i] == '}' {
		return nil
	}
	for {
		if i >= len(obj) || obj[i] != '"' {
			return errSyntax(i)
		}
		kend, err := skipString(obj, i)
		if err != nil {
			return err
		}
		key := obj[i+1 : kend-1]
		i = skipWS(obj, kend)
		if i >= len(obj) || obj[i] != ':' {
			return errSyntax(i)
		}
		vstart := skipWS(obj, i+1)
		vend, err := skipValue(obj, vstart)
		if err != nil {
			return err
		}
		if !fn(key, Span{vstart, vend}) {
			return nil
		}
		i = skipWS(obj, vend)
		if i >= len(obj) {
			return errSyntax(i)
		}
		if obj[i] == '}' {
			return nil
		}
		if obj[i] != ',' {
			return errSyntax(i)
		}
		i = skipWS(obj, i+1)
	}
}

// EachElement calls fn with the span of each element of arr, a JSON array.
func EachElement(arr []byte, fn func(v Span) bool) error {
	i := skipWS(arr, 0)
	if i >= len(arr) || arr[i] != '[' {
		return errors.New("not a JSON array")
	}
	i = skipWS(arr, i+1)
	if i < len(arr) && arr[i] == ']' {
		return nil
	}
	for {
		end, err := skipValue(arr, i)
		if err != nil {
			return err
		}
		if !fn(Span{i, end}) {
			return nil
		}
		i = skipWS(arr, end)
		if i >= len(arr) {
			return errSyntax(i)
		}
		if arr[i] == ']' {
			return nil
		}
		if arr[i] != ',' {
			return errSyntax(i)
		}
		i = skipWS(arr, i+1)
	}
}

func keyEquals(raw []byte, key string) bool {
	if len(raw) == len(key) && string(raw) == key {
		return true
	}
	// An escaped key ("mod\u0065l") is rare; decode it only then.
	for _, c := range raw {
		if c == '\\' {
			s, err := strconv.Unquote(`"` + string(raw) + `"`)
			return err == nil && s == key
		}
	}
	return false
}

// String decodes a JSON string value; ok is false when v is not a string.
func String(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	plain := true
	for _, c := range inner {
		if c == '\\' || c < 0x20 {
			plain = false
			break
		}
	}
	if plain {
		return string(inner), true
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// Bool decodes a JSON boolean; ok is false when v is not one.
func Bool(v []byte) (val, ok bool) {
	switch string(v) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

// Int decodes a JSON integer; ok is false when v is not an integer that fits
// in an int64.
func Int(v []byte) (int64, bool) {
	n, err := strconv.ParseInt(string(v), 10, 64)
	return n, err == nil
}

// IsNull reports whether v is the JSON null (or empty).
func IsNull(v []byte) bool { return len(v) == 0 || string(v) == "null" }

// Replace returns body with body[s.Start:s.End] replaced by value, in a new
// slice.
func Replace(body []byte, s Span, value []byte) []byte {
	out := make([]byte, 0, len(body)-(s.End-s.Start)+len(value))
	out = append(out, body[:s.Start]...)
	out = append(out, value...)
	return append(out, body[s.End:]...)
}

// Set returns obj with the top-level key set to value (raw JSON): replaced
// where the key exists, appended otherwise.
func Set(obj []byte, key string, value []byte) ([]byte, error) {
	if s, ok := Find(obj, key); ok {
		return Replace(obj, s, value), nil
	}
	end := len(obj) - 1
	for end >= 0 && isWS(obj[end]) {
		end--
	}
	if end < 0 || obj[end] != '}' {
		return nil, ErrNotObject
	}
	empty := true
	if err := Each(obj, func([]byte, Span) bool { empty = false; return false }); err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(obj)+len(key)+len(value)+4)
	out = append(out, obj[:end]...)
	if !empty {
		out = append(out, ',')
	}
	out = strconv.AppendQuote(out, key)
	out = append(out, ':')
	out = append(out, value...)
	return append(out, obj[end:]...), nil
}

// Delete returns obj without the top-level key (unchanged when absent).
func Delete(obj []byte, key string) []byte {
	var spans []Span // key start .. value end, with the comma that joins it
	prevEnd := -1
	_ = Each(obj, func(k []byte, v Span) bool {
		if keyEquals(k, key) {
			// The key's opening quote is the last '"' before the ':' before v.
			ks := keyStart(obj, v.Start)
			if prevEnd >= 0 {
				spans = append(spans, Span{prevEnd, v.End})
			} else {
				// First member: remove up to and including the next comma.
				end := skipWS(obj, v.End)
				if end < len(obj) && obj[end] == ',' {
					end = skipWS(obj, end+1)
				}
				spans = append(spans, Span{ks, end})
			}
		}
		prevEnd = v.End
		return true
	})
	for i := len(spans) - 1; i >= 0; i-- {
		obj = Replace(obj, spans[i], nil)
	}
	return obj
}

func keyStart(obj []byte, valueStart int) int {
	i := valueStart - 1
	for i >= 0 && obj[i] != ':' {
		i--
	}
	i--
	for i >= 0 && isWS(obj[i]) {
		i--
	}
	// obj[i] is the closing quote of the key; walk back to its opening quote.
	i--
	for i >= 0 {
		if obj[i] == '"' {
			bs := 0
			for j := i - 1; j >= 0 && obj[j] == '\\'; j-- {
				bs++
			}
			if bs%2 == 0 {
				return i
			}
		}
		i--
	}
	return 0
}

type syntaxError int

func (e syntaxError) Error() string { return "invalid JSON at offset " + strconv.Itoa(int(e)) }

func errSyntax(i int) error { return syntaxError(i) }

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

func skipWS(b []byte, i int) int {
	for i < len(b) && isWS(b[i]) {
		i++
	}
	return i
}

// skipString returns the index just past the string starting at b[i] == '"'.
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return j + 1, nil
		}
	}
	return 0, errSyntax(i)
}

// skipValue returns the index just past the value starting at b[i].
func skipValue(b []byte, i int) (int, error) {
	if i >= len(b) {
		return 0, errSyntax(i)
	}
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				end, err := skipString(b, j)
				if err != nil {
					return 0, err
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, nil
				}
			}
		}
		return 0, errSyntax(i)
	default:
		j := i
		for j < len(b) && !isWS(b[j]) && b[j] != ',' && b[j] != '}' && b[j] != ']' {
			j++
		}
		if j == i {
			return 0, errSyntax(i)
		}
		return j, nil
	}
}

// ValueEnd returns the index just past the JSON value that starts at b[i].
func ValueEnd(b []byte, i int) (int, error) { return skipValue(b, i) }

// KeyValue finds the first occurrence of the object key "key" (with its
// quotes) anywhere in b and returns the span of its value. A quoted key
// cannot occur unescaped inside a JSON string, so on valid JSON the match is a
// real key, though possibly of a nested object: callers use it where the key
// is unique enough (the "delta" of a stream chunk).
func KeyValue(b []byte, key string) (Span, bool) {
	var q [64]byte
	if len(key)+2 > len(q) {
		return Span{}, false
	}
	n := copy(q[1:], key)
	q[0], q[n+1] = '"', '"'
	i := bytes.Index(b, q[:n+2])
	if i < 0 {
		return Span{}, false
	}
	j := skipWS(b, i+n+2)
	if j >= len(b) || b[j] != ':' {
		return Span{}, false
	}
	j = skipWS(b, j+1)
	end, err := skipValue(b, j)
	if err != nil {
		return Span{}, false
	}
	return Span{j, end}, true
}
