package tokenize

import (
	"fmt"
	"sync"
	"unicode/utf8"
	"unsafe"

	"golang.org/x/text/unicode/norm"
)

// Encoding is one exact tokenizer: a byte-level BPE vocabulary with its
// pre-tokenizer, normaliser and added tokens. Its vocabulary is parsed on
// first use. An Encoding is safe for concurrent use.
type Encoding struct {
	name   string
	file   string
	pre    pretokenizer
	nfc    bool // normalise text to NFC before splitting (Qwen)
	hasAdd bool // added tokens in text are matched as tokens (HF tokenizers)

	once sync.Once
	t    *table
	err  error
}

// The exact encodings.
var (
	// O200k is OpenAI's o200k_base (gpt-4o, gpt-4.1, gpt-5, o-series).
	O200k = &Encoding{name: "o200k_base", file: "o200k_base", pre: preO200k}
	// CL100k is OpenAI's cl100k_base (gpt-4, gpt-3.5-turbo, text-embedding-3).
	CL100k = &Encoding{name: "cl100k_base", file: "cl100k_base", pre: preCL100k}
	// Qwen2 is the tokenizer of Qwen2, Qwen2.5 and Qwen3 (NFC, 151,643 tokens
	// plus 26 added tokens).
	Qwen2 = &Encoding{name: "qwen2", file: "qwen2", pre: preQwen2, nfc: true, hasAdd: true}
	// DeepSeekV3 is the tokenizer of DeepSeek-V3, V3.1, V3.2 and R1 (128,000
	// tokens plus 818 added tokens).
	DeepSeekV3 = &Encoding{name: "deepseek_v3", file: "deepseek_v3", pre: preDeepSeekV3, hasAdd: true}
)

// Encodings lists the exact encodings by name.
var Encodings = map[string]*Encoding{
	O200k.name: O200k, CL100k.name: CL100k, Qwen2.name: Qwen2, DeepSeekV3.name: DeepSeekV3,
}

// Name returns the tokenizer's name, such as "o200k_base".
func (e *Encoding) Name() string { return e.name }

// Exact reports true: an Encoding reproduces its reference tokenizer. It is
// false only if the embedded vocabulary failed to load (see Load), in which
// case counts come from the estimator.
func (e *Encoding) Exact() bool { return e.Load() == nil }

// Load parses the embedded vocabulary if that has not happened yet. Other
// methods call it; it is exported so a server can pay the cost (30–200 ms
// of CPU and 8–16 MB of heap per vocabulary) at start-up and fail early.
func (e *Encoding) Load() error {
	e.once.Do(func() {
		e.t, e.err = loadTable(e.file)
	})
	return e.err
}

// Size returns the number of token ids, including added tokens.
func (e *Encoding) Size() int {
	if e.Load() != nil {
		return 0
	}
	return len(e.t.offs) - 1
}

// Count returns the number of tokens in text. Added tokens such as
// <|im_start|> are matched for Qwen and DeepSeek, as their tokenizers do by
// default; OpenAI's special tokens are ordinary text, as in the OpenAI API.
// Invalid UTF-8 bytes are encoded as raw bytes (JSON decoding upstream
// normally replaces them with U+FFFD first).
func (e *Encoding) Count(text string) int {
	if e.Load() != nil {
		return Estimate(text)
	}
	sc := getScratch()
	n := 0
	e.encode(sc, text, func(ids []uint32) { n += len(ids) })
	putScratch(sc)
	return n
}

// Encode appends the token ids of text to dst and returns the extended slice.
func (e *Encoding) Encode(dst []int, text string) []int {
	if e.Load() != nil {
		return dst
	}
	sc := getScratch()
	e.encode(sc, text, func(ids []uint32) {
		for _, id := range ids {
			dst = append(dst, int(id))
		}
	})
	putScratch(sc)
	return dst
}

// Decode returns the bytes of ids. An id outside the vocabulary is an error.
func (e *Encoding) Decode(ids []int) ([]byte, error) {
	return e.AppendDecode(nil, ids)
}

// AppendDecode appends the bytes of ids to dst.
func (e *Encoding) AppendDecode(dst []byte, ids []int) ([]byte, error) {
	if err := e.Load(); err != nil {
		return dst, err
	}
	last := len(e.t.offs) - 1
	for _, id := range ids {
		if id < 0 || id >= last {
			return dst, fmt.Errorf("decode %s: token id %d out of range [0, %d)", e.name, id, last)
		}
		dst = append(dst, e.t.blob[e.t.offs[id]:e.t.offs[id+1]]...)
	}
	return dst, nil
}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// maxPooled bounds the buffers kept after a long piece, maxPooledText the
// buffer of normalised text.
const (
	maxPooled     = 1 << 16
	maxPooledText = 1 << 18
)

func putScratch(sc *scratch) {
	if cap(sc.parts) > maxPooled || cap(sc.heap) > maxPooled || cap(sc.ids) > maxPooled || cap(sc.norm) > maxPooledText {
		return
	}
	scratchPool.Put(sc)
}

// encode passes the ids of text to emit in batches; ids is reused.
func (e *Encoding) encode(sc *scratch, text string, emit func(ids []uint32)) {
	t := e.t
	if !e.hasAdd {
		e.encodeOrdinary(sc, text, emit)
		return
	}
	start := 0
	for i := 0; i < len(text); i++ {
		if !t.special1[text[i]] {
			continue
		}
		id, n, ok := t.matchSpecial(text, i)
		if !ok {
			continue
		}
		if start < i {
			e.encodeOrdinary(sc, text[start:i], emit)
		}
		sc.ids = append(sc.ids[:0], id)
		emit(sc.ids)
		i += n - 1
		start = i + 1
	}
	if start < len(text) {
		e.encodeOrdinary(sc, text[start:], emit)
	}
}

// emitBatch is how many ids encodeOrdinary gathers before calling emit.
const emitBatch = 256

// normalize returns text as the tokenizer's normaliser leaves it: NFC for
// Qwen, unchanged otherwise. Decoding returns the normalised text.
func (e *Encoding) normalize(text string) string {
	if !e.nfc || isNFC(text) {
		return text
	}
	return norm.NFC.String(text)
}

// normalizeScratch is normalize writing into sc's buffer, so that counting
// text that is not in NFC does not allocate. The result is valid until the
// next call with sc.
func (e *Encoding) normalizeScratch(sc *scratch, text string) string {
	if !e.nfc || isNFC(text) {
		return text
	}
	if cap(sc.norm) < len(text) {
		sc.norm = make([]byte, 0, len(text)+len(text)/8)
	}
	sc.norm = norm.NFC.AppendString(sc.norm[:0], text)
	if len(sc.norm) == 0 {
		return ""
	}
	return unsafe.String(&sc.norm[0], len(sc.norm))
}

// isNFC reports whether text is in NFC, or false when in doubt. Runes that
// are in NFC and combine with nothing before them (ASCII, Han, kana, Hangul
// syllables, most punctuation) take one table lookup each. Before each of
// them no composition or reordering reaches back, so the text between two
// of them is checked on its own, from the last such rune before other runes
// to the next such rune after them, with the normaliser's quick check.
func isNFC(text string) bool {
	bmpOnce.Do(loadBMP)
	last := 0
	for i := 0; i < len(text); {
		if n, ok := nfcStableAt(text, i); ok {
			last = i
			i += n
			continue
		}
		j := i
		for j < len(text) {
			n, ok := nfcStableAt(text, j)
			if ok {
				break
			}
			j += n
		}
		if norm.NFC.QuickSpanString(text[last:j]) != j-last {
			return false
		}
		last, i = j, j
	}
	return true
}

// nfcStableAt returns the length of the rune at text[i] and whether it is
// marked cNFCStable; an invalid byte is not.
func nfcStableAt(text string, i int) (int, bool) {
	if b := text[i]; b < utf8.RuneSelf {
		return 1, asciiClass[b]&cNFCStable != 0
	}
	if c, ok := class3At(text, i); ok {
		return 3, c&cNFCStable != 0
	}
	c, n := classAtSlow(text, i)
	return n, c&cNFCStable != 0 && n > 1
}

func (e *Encoding) encodeOrdinary(sc *scratch, text string, emit func(ids []uint32)) {
	text = e.normalizeScratch(sc, text)
	t := e.t
	ids := sc.ids[:0]
	e.pre.pieces(text, func(piece string) {
		ids = t.bpe(sc, ids, piece)
		if len(ids) >= emitBatch {
			emit(ids)
			ids = ids[:0]
		}
	})
	if len(ids) > 0 {
		emit(ids)
	}
	sc.ids = ids[:0]
}

// NewEncoding returns a new, not yet loaded copy of the named encoding, with
// its own vocabulary once loaded. Most callers use the package-level
// encodings, which share one; this is for measuring load time and memory.
func NewEncoding(name string) (*Encoding, bool) {
	e, ok := Encodings[name]
	if !ok {
		return nil, false
	}
	return &Encoding{name: e.name, file: e.file, pre: e.pre, nfc: e.nfc, hasAdd: e.hasAdd}, true
}
