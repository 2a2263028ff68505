package tokenize

import (
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Character classes used by the pre-tokenizers. A rune can be in several.
const (
	cL         uint16 = 1 << iota // \p{L}
	cLu                           // \p{Lu}
	cLl                           // \p{Ll}
	cLt                           // \p{Lt}
	cLm                           // \p{Lm}
	cLo                           // \p{Lo}
	cM                            // \p{M}
	cN                            // \p{N}
	cP                            // \p{P}
	cS                            // \p{S}
	cWS                           // Unicode White_Space: \s in Rust regex (tiktoken)
	cWSJS                         // \s in JavaScript regex (@lenml/tokenizers, the Qwen and DeepSeek references)
	cCJK                          // DeepSeek-V3's [一-龥぀-ゟ゠-ヿ]
	cNFCStable                    // in NFC, and combines with nothing before it (see Encoding.normalize)
)

// Derived class sets.
const (
	o200kUpper = cLu | cLt | cLm | cLo | cM // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]
	o200kLower = cLl | cLm | cLo | cM       // [\p{Ll}\p{Lm}\p{Lo}\p{M}]
)

var (
	bmpOnce  sync.Once
	bmpClass []uint16 // classes of every rune in the Basic Multilingual Plane
)

// classOfRune computes the classes of r from the unicode tables.
func classOfRune(r rune) uint16 {
	var c uint16
	switch {
	case unicode.Is(unicode.Lu, r):
		c |= cL | cLu
	case unicode.Is(unicode.Ll, r):
		c |= cL | cLl
	case unicode.Is(unicode.Lt, r):
		c |= cL | cLt
	case unicode.Is(unicode.Lm, r):
		c |= cL | cLm
	case unicode.Is(unicode.Lo, r):
		c |= cL | cLo
	case unicode.Is(unicode.M, r):
		c |= cM
	case unicode.Is(unicode.N, r):
		c |= cN
	case unicode.Is(unicode.P, r):
		c |= cP
	case unicode.Is(unicode.S, r):
		c |= cS
	}
	if unicode.Is(unicode.White_Space, r) {
		c |= cWS
	}
	if isJSSpace(r) {
		c |= cWSJS
	}
	if (r >= 0x4E00 && r <= 0x9FA5) || (r >= 0x3040 && r <= 0x30FF) {
		c |= cCJK
	}
	return c
}

// isJSSpace reports whether r matches \s in an ECMAScript regular expression:
// WhiteSpace and LineTerminator, which differ from Unicode White_Space by
// including U+FEFF and excluding U+0085.
func isJSSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF:
		return true
	}
	return r >= 0x2000 && r <= 0x200A
}

func loadBMP() {
	t := make([]uint16, 0x10000)
	for r := range t {
		t[r] = classOfRune(rune(r)) | nfcStable(rune(r))
	}
	bmpClass = t
}

// nfcStable returns cNFCStable if r is unchanged by NFC and cannot combine
// with a rune before it. Runes outside the BMP are left to the normaliser.
func nfcStable(r rune) uint16 {
	if r >= 0x10000 || (r >= 0xD800 && r <= 0xDFFF) {
		return 0
	}
	s := string(r)
	if norm.NFC.PropertiesString(s).BoundaryBefore() && norm.NFC.IsNormalString(s) {
		return cNFCStable
	}
	return 0
}

// classAt returns the classes and the byte length of the rune at s[i]. An
// invalid UTF-8 byte is one rune of length 1 classed like U+FFFD (a symbol),
// so that every byte of any input lands in exactly one piece.
func classAt(s string, i int) (uint16, int) {
	if b := s[i]; b < utf8.RuneSelf {
		return asciiClass[b], 1
	}
	return classAtSlow(s, i)
}

// classAtSlow is classAt for a byte that is not ASCII.
func classAtSlow(s string, i int) (uint16, int) {
	if c, ok := class3At(s, i); ok {
		return c, 3
	}
	r, n := utf8.DecodeRuneInString(s[i:])
	return runeClass(r), n
}

// class3At returns the classes of a valid three-byte rune (CJK, kana,
// Hangul) at s[i], decoded inline; ok is false for anything else.
func class3At(s string, i int) (c uint16, ok bool) {
	if i+2 >= len(s) {
		return 0, false
	}
	b0, b1, b2 := s[i], s[i+1], s[i+2]
	if b0&0xf0 != 0xe0 || b1&0xc0 != 0x80 || b2&0xc0 != 0x80 {
		return 0, false
	}
	r := rune(b0&0x0f)<<12 | rune(b1&0x3f)<<6 | rune(b2&0x3f)
	if r < 0x800 || (r >= 0xd800 && r <= 0xdfff) {
		return 0, false
	}
	return bmpClass[r], true
}

func runeClass(r rune) uint16 {
	if r < 0x10000 {
		return bmpClass[r]
	}
	return classOfRune(r)
}

var asciiClass = func() [128]uint16 {
	var t [128]uint16
	for r := range t {
		t[r] = classOfRune(rune(r)) | nfcStable(rune(r))
	}
	return t
}()

// runOf returns the end of the run of runes in class set c starting at i.
func runOf(s string, i int, c uint16) int {
	for i < len(s) {
		if b := s[i]; b < utf8.RuneSelf {
			if asciiClass[b]&c == 0 {
				break
			}
			i++
			continue
		}
		if k, ok := class3At(s, i); ok {
			if k&c == 0 {
				break
			}
			i += 3
			continue
		}
		k, n := classAtSlow(s, i)
		if k&c == 0 {
			break
		}
		i += n
	}
	return i
}

// crlfRun returns the end of a run of '\r' and '\n' (and '/' if slash) at i.
func crlfRun(s string, i int, slash bool) int {
	for i < len(s) && (s[i] == '\r' || s[i] == '\n' || (slash && s[i] == '/')) {
		i++
	}
	return i
}

// contraction matches (?i:'s|'t|'re|'ve|'m|'ll|'d) at i and returns its end,
// or -1. fold adds Unicode simple case folding (ſ for s), as in Rust's regex
// crate; JavaScript's rewrite of the pattern in @lenml/tokenizers is ASCII only.
func contraction(s string, i int, fold bool) int {
	if i+1 >= len(s) || s[i] != '\'' {
		return -1
	}
	if c := s[i+1]; isASCIILetter(c) {
		switch c | 0x20 {
		case 's', 't', 'm', 'd':
			return i + 2
		case 'r', 'v':
			if i+2 < len(s) && s[i+2]|0x20 == 'e' {
				return i + 3
			}
		case 'l':
			if i+2 < len(s) && s[i+2]|0x20 == 'l' {
				return i + 3
			}
		}
	}
	if fold && i+3 <= len(s) && s[i+1:i+3] == "\u017f" {
		return i + 3
	}
	return -1
}

func isASCIILetter(b byte) bool { return (b|0x20) >= 'a' && (b|0x20) <= 'z' }

// wsMatch matches \s*[\r\n]+ | \s+(?!\S) | \s+ at i, where s[i] is
// whitespace in class ws.
func wsMatch(s string, i int, ws uint16) int {
	j, last, lastNL := i, i, -1
	for j < len(s) {
		k, n := classAt(s, j)
		if k&ws == 0 {
			break
		}
		if s[j] == '\r' || s[j] == '\n' {
			lastNL = j
		}
		last = j
		j += n
	}
	switch {
	case lastNL >= 0: // \s*[\r\n]+ backs off to the last line break
		return lastNL + 1
	case j == len(s) || last == i: // \s+(?!\S) at the end, or a single \s
		return j
	default: // \s+(?!\S) leaves the last space for the next word
		return last
	}
}

// matchCL100k matches cl100k_base's pattern at i (maxDigits 3, Unicode
// whitespace and case folding) or Qwen2's (maxDigits 1, JavaScript \s):
//
//	(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func matchCL100k(s string, i int, maxDigits int, ws uint16, fold bool) int {
	if s[i] == '\'' {
		if e := contraction(s, i, fold); e > 0 {
			return e
		}
	}
	c0, n0 := classAt(s, i)
	if c0&cL != 0 {
		return runOf(s, i+n0, cL)
	}
	if c0&cN == 0 && s[i] != '\r' && s[i] != '\n' && i+n0 < len(s) {
		if c1, n1 := classAt(s, i+n0); c1&cL != 0 {
			return runOf(s, i+n0+n1, cL)
		}
	}
	if c0&cN != 0 {
		j := i + n0
		for d := 1; d < maxDigits && j < len(s); d++ {
			c, n := classAt(s, j)
			if c&cN == 0 {
				break
			}
			j += n
		}
		return j
	}
	punct := ws | cL | cN
	if s[i] == ' ' && i+1 < len(s) {
		if c1, n1 := classAt(s, i+1); c1&punct == 0 {
			return crlfRun(s, runOfNot(s, i+1+n1, punct), false)
		}
	}
	if c0&punct == 0 {
		return crlfRun(s, runOfNot(s, i+n0, punct), false)
	}
	return wsMatch(s, i, ws)
}

// runOfNot returns the end of the run of runes in none of the classes c.
func runOfNot(s string, i int, c uint16) int {
	for i < len(s) {
		k, n := classAt(s, i)
		if k&c != 0 {
			break
		}
		i += n
	}
	return i
}

// matchO200k matches o200k_base's pattern at i:
//
//	[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?
//	|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
func matchO200k(s string, i int) int {
	c0, n0 := classAt(s, i)
	prefix := c0&(cL|cN) == 0 && s[i] != '\r' && s[i] != '\n'
	if prefix {
		if e := o200kWord1(s, i+n0); e >= 0 {
			return e
		}
	}
	if e := o200kWord1(s, i); e >= 0 {
		return e
	}
	if prefix {
		if e := o200kWord2(s, i+n0); e >= 0 {
			return e
		}
	}
	if e := o200kWord2(s, i); e >= 0 {
		return e
	}
	if c0&cN != 0 {
		j := i + n0
		for d := 1; d < 3 && j < len(s); d++ {
			c, n := classAt(s, j)
			if c&cN == 0 {
				break
			}
			j += n
		}
		return j
	}
	punct := cWS | cL | cN
	if s[i] == ' ' && i+1 < len(s) {
		if c1, n1 := classAt(s, i+1); c1&punct == 0 {
			return crlfRun(s, runOfNot(s, i+1+n1, punct), true)
		}
	}
	if c0&punct == 0 {
		return crlfRun(s, runOfNot(s, i+n0, punct), true)
	}
	return wsMatch(s, i, cWS)
}

// o200kWord1 matches [Upper]*[Lower]+ contraction? at p, backtracking the
// greedy first run as a regex engine would; -1 if it cannot match.
func o200kWord1(s string, p int) int {
	q := runOf(s, p, o200kUpper)
	if q < len(s) {
		if c, n := classAt(s, q); c&o200kLower != 0 {
			return optContraction(s, runOf(s, q+n, o200kLower))
		}
	}
	for q > p {
		r, n := utf8.DecodeLastRuneInString(s[p:q])
		q -= n
		if n == 1 && r == utf8.RuneError {
			continue // an invalid byte is never a letter
		}
		if runeClass(r)&o200kLower != 0 {
			return optContraction(s, q+n)
		}
	}
	return -1
}

// o200kWord2 matches [Upper]+[Lower]* contraction? at p, or returns -1.
func o200kWord2(s string, p int) int {
	q := runOf(s, p, o200kUpper)
	if q == p {
		return -1
	}
	return optContraction(s, runOf(s, q, o200kLower))
}

func optContraction(s string, i int) int {
	if e := contraction(s, i, true); e > 0 {
		return e
	}
	return i
}

// DeepSeek-V3's third split pattern's leading ASCII punctuation class.
var dsASCIIPunct = func() (t [128]bool) {
	for _, c := range "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~" {
		t[c] = true
	}
	return t
}()

// matchDeepSeek matches DeepSeek-V3's third split pattern at i, or returns -1:
//
//	[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
func matchDeepSeek(s string, i int) int {
	if b := s[i]; b < utf8.RuneSelf && dsASCIIPunct[b] && i+1 < len(s) && isASCIILetter(s[i+1]) {
		j := i + 2
		for j < len(s) && isASCIILetter(s[j]) {
			j++
		}
		return j
	}
	c0, n0 := classAt(s, i)
	if c0&(cL|cP|cS) == 0 && s[i] != '\r' && s[i] != '\n' && i+n0 < len(s) {
		if c1, n1 := classAt(s, i+n0); c1&(cL|cM) != 0 {
			return runOf(s, i+n0+n1, cL|cM)
		}
	}
	if c0&(cL|cM) != 0 {
		return runOf(s, i+n0, cL|cM)
	}
	if s[i] == ' ' && i+1 < len(s) {
		if c1, n1 := classAt(s, i+1); c1&(cP|cS) != 0 {
			return crlfRun(s, runOf(s, i+1+n1, cP|cS), false)
		}
	}
	if c0&(cP|cS) != 0 {
		return crlfRun(s, runOf(s, i+n0, cP|cS), false)
	}
	if c0&cWSJS != 0 {
		return wsMatch(s, i, cWSJS)
	}
	return -1
}

// pretokenizer names the splitting rule of an encoding.
type pretokenizer uint8

const (
	preCL100k pretokenizer = iota
	preO200k
	preQwen2
	preDeepSeekV3
)

// splitIsolated calls fn with every match of m in s and every gap between
// matches, in order (the "Isolated" split behaviour of HF tokenizers).
func splitIsolated(s string, m func(string, int) int, fn func(string)) {
	gap, i := 0, 0
	for i < len(s) {
		if e := m(s, i); e > i {
			if gap < i {
				fn(s[gap:i])
			}
			fn(s[i:e])
			i, gap = e, e
			continue
		}
		_, n := classAt(s, i)
		i += n
	}
	if gap < len(s) {
		fn(s[gap:])
	}
}

// pieces splits s into the pieces that BPE encodes separately.
func (p pretokenizer) pieces(s string, fn func(string)) {
	bmpOnce.Do(loadBMP)
	switch p {
	case preO200k:
		for i := 0; i < len(s); {
			e := matchO200k(s, i)
			fn(s[i:e])
			i = e
		}
	case preCL100k:
		for i := 0; i < len(s); {
			e := matchCL100k(s, i, 3, cWS, true)
			fn(s[i:e])
			i = e
		}
	case preQwen2:
		for i := 0; i < len(s); {
			e := matchCL100k(s, i, 1, cWSJS, false)
			fn(s[i:e])
			i = e
		}
	case preDeepSeekV3:
		splitDeepSeek(s, fn)
	}
}

// splitDeepSeek applies DeepSeek-V3's three isolated splits in sequence:
// \p{N}{1,3}, then [一-龥぀-ゟ゠-ヿ]+, then matchDeepSeek's pattern, every
// piece of one split going through the next. No rune is both a digit and in
// the CJK class (TestDeepSeekClassesDisjoint), so the first two splits are
// one pass that finds digit groups and CJK runs; that is
// splitIsolated(s, matchDigits3, splitIsolated(·, matchCJK, ·)) with one
// class lookup per rune instead of three.
func splitDeepSeek(s string, fn func(string)) {
	gap := 0
	for i := 0; i < len(s); {
		c, n := classAt(s, i)
		if c&(cN|cCJK) == 0 {
			i += n
			continue
		}
		if gap < i {
			splitIsolated(s[gap:i], matchDeepSeek, fn)
		}
		j := i + n
		if c&cN != 0 {
			for d := 1; d < 3 && j < len(s); d++ {
				c, n := classAt(s, j)
				if c&cN == 0 {
					break
				}
				j += n
			}
		} else {
			j = runOf(s, j, cCJK)
		}
		splitIsolated(s[i:j], matchDeepSeek, fn)
		i, gap = j, j
	}
	if gap < len(s) {
		splitIsolated(s[gap:], matchDeepSeek, fn)
	}
}
