package tokenize

import (
	"unicode/utf8"
)

// Estimator coefficients: expected tokens per character of each kind, in
// 1/1000 token, fitted by TestCalibrateEstimator (go test
// ./internal/tokenize -run Calibrate -calibrate=$PWD/bench/out/tokenize-corpus.txt,
// which also uses the natural entries of testdata/tokenize/corpus.json) to
// the mean of the Qwen2 and DeepSeek-V3 counts. Chinese vendors' private
// tokenizers (Doubao, GLM, Kimi, Hunyuan, ERNIE) are of the same
// 130k–160k-vocabulary family.
var estMilli = [numKinds]int{
	kindCJK:        643,
	kindASCIIWord:  178,
	kindDigit:      804,
	kindLetter:     615,
	kindASCIIPunct: 803,
	kindSymbol:     1105,
	kindSpace:      273,
	// The fit gives about 5000 from a handful of samples; a control
	// character or an invalid byte is one byte token, so one token.
	kindOther: 1000,
}

// Character kinds the estimator weighs.
const (
	kindCJK        = iota // Han, kana, hangul
	kindASCIIWord         // ASCII letters
	kindDigit             // digits
	kindLetter            // other letters, marks and digits
	kindASCIIPunct        // ASCII punctuation and symbols
	kindSymbol            // other punctuation and symbols, emoji
	kindSpace             // whitespace
	kindOther             // controls, invalid bytes, the rest
	numKinds
)

// charKinds counts the characters of text by kind.
func charKinds(text string) [numKinds]int {
	bmpOnce.Do(loadBMP)
	var k [numKinds]int
	for i := 0; i < len(text); {
		b := text[i]
		if b < utf8.RuneSelf {
			i++
			c := asciiClass[b]
			switch {
			case c&cN != 0:
				k[kindDigit]++
			case c&cL != 0:
				k[kindASCIIWord]++
			case c&(cP|cS) != 0:
				k[kindASCIIPunct]++
			case c&cWS != 0:
				k[kindSpace]++
			default:
				k[kindOther]++
			}
			continue
		}
		r, n := utf8.DecodeRuneInString(text[i:])
		i += n
		if n == 1 {
			k[kindOther]++
			continue
		}
		if isCJKRune(r) {
			k[kindCJK]++
			continue
		}
		c := runeClass(r)
		switch {
		case c&cN != 0:
			k[kindDigit]++
		case c&(cL|cM) != 0:
			k[kindLetter]++
		case c&(cP|cS) != 0:
			k[kindSymbol]++
		case c&cWS != 0:
			k[kindSpace]++
		default:
			k[kindOther]++
		}
	}
	return k
}

// Estimate returns an estimate of the number of tokens in text for a
// tokenizer that is not public: a weighted count of its characters by kind.
// On the natural entries of the test corpus it is within 15% of the Qwen
// and DeepSeek tokenizers in total (TestEstimatorError); single short texts
// can be off by half.
func Estimate(text string) int {
	k := charKinds(text)
	milli := 0
	for i, n := range k {
		milli += n * estMilli[i]
	}
	n := (milli + 999) / 1000
	if n == 0 && len(text) > 0 {
		n = 1
	}
	return n
}

// isCJKRune reports Han ideographs, kana and hangul syllables.
func isCJKRune(r rune) bool {
	switch {
	case r >= 0x3040 && r <= 0x30FF, // kana
		r >= 0x3400 && r <= 0x4DBF,   // Han extension A
		r >= 0x4E00 && r <= 0x9FFF,   // Han
		r >= 0xAC00 && r <= 0xD7AF,   // hangul
		r >= 0xF900 && r <= 0xFAFF,   // compatibility ideographs
		r >= 0x20000 && r <= 0x3134F: // Han extensions B–G
		return true
	}
	return false
}
