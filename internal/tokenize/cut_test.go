package tokenize

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The reference pipeline below is the encoder as it was before pieces of
// three-byte characters were cut (cjkSplit), DeepSeek's splits were fused
// (splitDeepSeek) and NFC got its fast path (isNFC): every piece that is not
// a whole tiktoken token is merged whole by merge, the same loop as before.

// matchDigits3 matches \p{N}{1,3} at i, or returns -1.
func matchDigits3(s string, i int) int {
	j := i
	for d := 0; d < 3 && j < len(s); d++ {
		c, n := classAt(s, j)
		if c&cN == 0 {
			break
		}
		j += n
	}
	if j == i {
		return -1
	}
	return j
}

// matchCJK matches [一-龥぀-ゟ゠-ヿ]+ at i, or returns -1.
func matchCJK(s string, i int) int {
	j := runOf(s, i, cCJK)
	if j == i {
		return -1
	}
	return j
}

func refPieces(p pretokenizer, s string, fn func(string)) {
	if p != preDeepSeekV3 {
		p.pieces(s, fn)
		return
	}
	bmpOnce.Do(loadBMP)
	splitIsolated(s, matchDigits3, func(a string) {
		splitIsolated(a, matchCJK, func(b string) {
			splitIsolated(b, matchDeepSeek, fn)
		})
	})
}

func refBPE(t *table, sc *scratch, dst []uint32, piece string) []uint32 {
	if len(piece) == 1 {
		return append(dst, t.byteID[piece[0]])
	}
	if id, ok := t.lookup(piece); ok && t.trustWhole {
		return append(dst, id)
	}
	return t.merge(sc, dst, piece)
}

// refEncode is Encode by the reference pipeline.
func refEncode(e *Encoding, text string) []int {
	if err := e.Load(); err != nil {
		panic(err)
	}
	t := e.t
	sc := &scratch{}
	var out []int
	ordinary := func(s string) {
		if e.nfc && norm.NFC.QuickSpanString(s) != len(s) {
			s = norm.NFC.String(s)
		}
		refPieces(e.pre, s, func(piece string) {
			for _, id := range refBPE(t, sc, nil, piece) {
				out = append(out, int(id))
			}
		})
	}
	start := 0
	for i := 0; e.hasAdd && i < len(text); i++ {
		id, n, ok := t.matchSpecial(text, i)
		if !ok {
			continue
		}
		if start < i {
			ordinary(text[start:i])
		}
		out = append(out, int(id))
		i += n - 1
		start = i + 1
	}
	if start < len(text) {
		ordinary(text[start:])
	}
	return out
}

// cjkAtoms are the building blocks of cjkTexts: common and rare Han, kana
// with and without voicing marks, Hangul syllables and jamo, CJK and
// full-width punctuation, and the other classes around them.
var cjkAtoms = []string{
	"的", "是", "不", "了", "人", "在", "有", "我", "他", "这", "中", "大", "来", "上", "国", "个", "到", "说", "们", "为",
	"鉴定", "令牌", "服务", "无法", "用户", "信息", "失败", "中华人民共和国", "计算机", "时间", "耗尽", "龘", "靐", "鱻", "丄", "亍", "龥",
	"の", "は", "を", "に", "が", "で", "す", "ま", "し", "た", "カ", "ガ", "ー", "・", "゛", "か\u3099", "ヴ", "ゟ", "゠",
	"한", "국", "어", "입", "니", "다", "습", "는", "에", "서", "ᄀ", "ᅡ", "ᆨ", "가\u11a8",
	"。", "，", "、", "！", "？", "：", "；", "「", "」", "（", "）", "《", "》", "…", "—", "“", "”", "〇", "〆", "\u3000",
	"０", "１２３", "ＡＢ", "ｱ", "\ufeff", "\u302a",
	" ", "\n", "a", "Z", "the", "123", "7", "'s", ".", "<|im_start|>", "<｜User｜>", "😀", "é", "e\u0301", "\xe4\xb8", "\xff", "\xe0\x80\x80",
}

// cjkTexts returns n texts of mostly CJK atoms, long runs included.
func cjkTexts(seed uint64, n int) []string {
	r := rand.New(rand.NewPCG(seed, 0xc7c))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for k := r.IntN(60) + 1; k > 0; k-- {
			b.WriteString(cjkAtoms[r.IntN(len(cjkAtoms))])
		}
		out[i] = b.String()
	}
	return out
}

// TestEncodeMatchesReference compares Encode and Count with the reference
// pipeline on CJK and mixed texts, for every encoding.
func TestEncodeMatchesReference(t *testing.T) {
	texts := append(cjkTexts(1, 3000), randomTexts(2, 1000)...)
	for _, c := range readCorpus(t) {
		texts = append(texts, c.Text)
	}
	// A long run with no cut point a tokenizer would see as one piece.
	texts = append(texts, strings.Repeat("的是", 400), strings.Repeat("한국어", 300))
	for _, e := range []*Encoding{O200k, CL100k, Qwen2, DeepSeekV3} {
		fails := 0
		for _, s := range texts {
			want := refEncode(e, s)
			got := e.Encode(nil, s)
			if !slices.Equal(got, want) {
				if fails++; fails <= 3 {
					t.Errorf("%s %q:\n got %v\nwant %v", e.Name(), s, got, want)
				}
			}
			if n := e.Count(s); n != len(want) {
				t.Errorf("%s %q: Count = %d, want %d", e.Name(), s, n, len(want))
			}
		}
		if fails > 0 {
			t.Errorf("%s: %d of %d texts differ from the reference", e.Name(), fails, len(texts))
		}
	}
}

// FuzzEncodeMatchesReference is TestEncodeMatchesReference on any bytes.
func FuzzEncodeMatchesReference(f *testing.F) {
	for _, s := range cjkTexts(3, 20) {
		f.Add(s)
	}
	f.Add("中华人民共和国的计算机鉴定令牌服务")
	f.Add("ア・イ゛か\u3099123４５６")
	encs := []*Encoding{O200k, CL100k, Qwen2, DeepSeekV3}
	f.Fuzz(func(t *testing.T, s string) {
		for _, e := range encs {
			if got, want := e.Encode(nil, s), refEncode(e, s); !slices.Equal(got, want) {
				t.Fatalf("%s %q:\n got %v\nwant %v", e.Name(), s, got, want)
			}
		}
	})
}

// TestCutsAreSound checks the premise of cjkSplit directly: wherever
// mergeCut cuts a piece, no substring of the piece that spans the cut is a
// token, so no merge can cross it.
func TestCutsAreSound(t *testing.T) {
	texts := cjkTexts(4, 2000)
	for _, e := range []*Encoding{O200k, CL100k, Qwen2, DeepSeekV3} {
		if err := e.Load(); err != nil {
			t.Fatal(err)
		}
		tb := e.t
		maxLen := 0
		for _, n := range tb.maxLen {
			maxLen = max(maxLen, int(n))
		}
		cuts, checked := 0, 0
		for _, s := range texts {
			for i := 0; i+6 <= len(s); i++ {
				if !is3(s, i) || !is3(s, i+3) {
					continue
				}
				checked++
				if !tb.cjk.canCut(s, i) {
					continue
				}
				cuts++
				p := i + 3
				for a := max(0, p-maxLen+1); a < p; a++ {
					for b := p + 1; b <= min(len(s), a+maxLen); b++ {
						if _, ok := tb.lookup(s[a:b]); ok {
							t.Fatalf("%s: cut at %d of %q, but token %q spans it", e.Name(), p, s, s[a:b])
						}
					}
				}
			}
		}
		t.Logf("%s: %d of %d boundaries between three-byte characters cut", e.Name(), cuts, checked)
		if cuts == 0 {
			t.Errorf("%s: no cuts: the test checks nothing", e.Name())
		}
	}
}

// TestDeepSeekClassesDisjoint checks what splitDeepSeek relies on.
func TestDeepSeekClassesDisjoint(t *testing.T) {
	bmpOnce.Do(loadBMP)
	for r := rune(0); r <= utf8.MaxRune; r++ {
		if c := runeClass(r); c&cN != 0 && c&cCJK != 0 {
			t.Fatalf("%U is both a number and in DeepSeek's CJK class", r)
		}
	}
}

// TestNFCStable checks the runes isNFC skips and compares isNFC with the
// normaliser.
func TestNFCStable(t *testing.T) {
	bmpOnce.Do(loadBMP)
	for r := rune(0); r < 0x10000; r++ {
		if runeClass(r)&cNFCStable == 0 {
			continue
		}
		if r < utf8.RuneSelf && asciiClass[r]&cNFCStable == 0 {
			t.Errorf("%U: stable in the BMP table, not in the ASCII table", r)
		}
		s := string(r)
		if !norm.NFC.IsNormalString(s) || !norm.NFC.PropertiesString(s).BoundaryBefore() {
			t.Errorf("%U marked NFC-stable", r)
		}
	}
	for _, r := range "a中のア한。，" {
		if runeClass(r)&cNFCStable == 0 {
			t.Errorf("%U not marked NFC-stable: the fast path does nothing for it", r)
		}
	}
	texts := append(cjkTexts(5, 2000), randomTexts(6, 1000)...)
	texts = append(texts, "e\u0301", "\u1100\u1161", "가\u11a8", "か\u3099", "\xe4\xb8\u0301", "a\xff\u0301", "\u0301")
	for _, s := range texts {
		// isNFC may say no to text in NFC (then it is normalised for
		// nothing, as the normaliser's quick check also does), never yes to
		// text that is not.
		if isNFC(s) && !norm.NFC.IsNormalString(s) {
			t.Errorf("isNFC(%q) = true, but it is not in NFC", s)
		}
		if norm.NFC.QuickSpanString(s) == len(s) && !isNFC(s) {
			t.Errorf("isNFC(%q) = false, but the quick check passes", s)
		}
	}
	if s := "中文の한국어。，ＡＢ the"; !isNFC(s) {
		t.Errorf("isNFC(%q) = false", s)
	}
}
