package jsonfield

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// AmbiguousError says an object spells a member the caller acts on in a way
// that parsers disagree about: with escapes ("mod\u0065l"), in another case
// ("Model", which Go's encoding/json matches to a field named model and
// exact-match parsers do not), or more than once (the first wins in some
// parsers, the last in others).
type AmbiguousError struct {
	Name   string // the member, as the caller named it
	Reason string // "escaped", "case", "duplicate"
}

func (e *AmbiguousError) Error() string {
	switch e.Reason {
	case "escaped":
		return "the key " + e.Name + " is written with escape sequences"
	case "case":
		return "a key spells " + e.Name + " in another case"
	}
	return "the key " + e.Name + " appears more than once"
}

// Members reads the members of obj, a JSON object, that the caller acts on,
// the way every mainstream JSON parser reads them or not at all: spans[i] is
// the value of names[i] (Start -1 when absent). A key that decodes to one of
// names but is written with escapes, a key that matches one of names
// case-insensitively (as encoding/json matches struct fields) but is spelled
// otherwise, and a name that appears more than once are refused with an
// *AmbiguousError; every other key is skipped. len(spans) must be
// len(names). obj must be valid JSON (json.Valid).
func Members(obj []byte, names []string, spans []Span) error {
	for i := range spans {
		spans[i] = Span{Start: -1, End: -1}
	}
	var amb *AmbiguousError
	err := Each(obj, func(k []byte, v Span) bool {
		for i, n := range names {
			if string(k) == n { // the common case: an exact, plain spelling
				if spans[i].Start >= 0 {
					amb = &AmbiguousError{Name: n, Reason: "duplicate"}
					return false
				}
				spans[i] = v
				return true
			}
		}
		if plainASCII(k) { // folds only to names of its own length
			for _, n := range names {
				if len(n) == len(k) && bytes.EqualFold(k, []byte(n)) {
					amb = &AmbiguousError{Name: n, Reason: "case"}
					return false
				}
			}
			return true
		}
		key, escaped := k, false
		if bytes.IndexByte(k, '\\') >= 0 {
			var s string
			q := make([]byte, 0, len(k)+2)
			q = append(append(append(q, '"'), k...), '"')
			if json.Unmarshal(q, &s) != nil {
				return true
			}
			key, escaped = []byte(s), true
		}
		for _, n := range names {
			switch {
			case escaped && string(key) == n:
				amb = &AmbiguousError{Name: n, Reason: "escaped"}
				return false
			case bytes.EqualFold(key, []byte(n)):
				amb = &AmbiguousError{Name: n, Reason: "case"}
				return false
			}
		}
		return true
	})
	if err != nil {
		return err
	}
	if amb != nil {
		return amb
	}
	return nil
}

// plainASCII reports whether k is ASCII without escapes.
func plainASCII(k []byte) bool {
	for _, c := range k {
		if c >= utf8.RuneSelf || c == '\\' {
			return false
		}
	}
	return true
}
