package gateway

import (
	"unicode/utf8"

	"baimo/internal/provider/ir"
	"baimo/internal/usage"
)

// Estimator counts tokens roughly, for models without an exact tokenizer: about
// four bytes of ASCII text per token and one token per other character (CJK
// text runs close to one token per character or below).
type Estimator struct{}

// CountPrompt estimates the tokens of a prompt's text.
func (Estimator) CountPrompt(_ string, p ir.Prompt) (int64, usage.Source) {
	var n int64
	for _, m := range p.Messages {
		n += estimate([]byte(m.Content)) + 4
	}
	for _, t := range p.Texts {
		n += estimate([]byte(t))
	}
	return n + p.Tokens, usage.SourceEstimated
}

// CountText estimates the tokens of generated text.
func (Estimator) CountText(_ string, text []byte) (int64, usage.Source) {
	return estimate(text), usage.SourceEstimated
}

func estimate(b []byte) int64 {
	var ascii, other int64
	for i := 0; i < len(b); {
		if b[i] < utf8.RuneSelf {
			ascii++
			i++
			continue
		}
		_, n := utf8.DecodeRune(b[i:])
		other++
		i += n
	}
	return (ascii+3)/4 + other
}
