package tokenize

import "math/bits"

// cjkSplit cuts pieces of three-byte UTF-8 characters (CJK ideographs, kana,
// Hangul, CJK punctuation) between two characters where no token of the
// vocabulary spans the cut. Merging never creates a part whose bytes are not
// a token, so no part ever crosses such a cut: the two sides merge
// independently, in the same order as within the whole piece, and byte-pair
// merging of the piece is the concatenation of merging each side. O200k,
// Qwen and DeepSeek make a whole run of Han characters one piece; cutting it
// into words of one or two characters, most of them one token, replaces a
// merge that is quadratic in the piece's length with a lookup per word.
//
// A token spans the cut between characters A = a0 a1 a2 and B = b0 b1 b2 if
// it starts inside A (at a1 or a2) and goes on into B, ends inside B (after
// b0 or b1) having started in A, or holds all of A followed by all of B. The
// first two are found from at most four bytes around the cut, the third from
// the set of character pairs that occur in tokens.
type cjkSplit struct {
	near   []uint64 // bitset by nearKey: a token starts inside A or ends inside B
	nearR  []uint64 // bitset by nearKeyR: the same, for tokens that end at b1 or go past b1 from a2
	first  []uint64 // bitset by rune: the rune is A of some pair in pairs
	second []uint64 // bitset by rune: the rune is B of some pair in pairs
	pairs  []uint32 // open-addressing set of A<<16 | B; 0 is empty
	zero   bool     // the pair 0<<16 | 0 (overlong U+0000 twice) is in the set
	shift  uint
}

// nearKey packs a1, a2 and b0 (16 bits).
func nearKey(a1, a2, b0 byte) uint32 {
	return uint32(a1&0x3f)<<10 | uint32(a2&0x3f)<<4 | uint32(b0&0x0f)
}

// nearKeyR packs a2, b0 and b1 (16 bits).
func nearKeyR(a2, b0, b1 byte) uint32 {
	return uint32(a2&0x3f)<<10 | uint32(b0&0x0f)<<6 | uint32(b1&0x3f)
}

func isLead3(b byte) bool { return b&0xf0 == 0xe0 }
func isCont(b byte) bool  { return b&0xc0 == 0x80 }

// is3 reports whether s[i:i+3] is a lead byte of a three-byte sequence and
// two continuation bytes. Overlong forms and surrogates count too: the
// argument above is about bytes, and rune3 is one-to-one on such triples.
func is3(s string, i int) bool { return isLead3(s[i]) && isCont(s[i+1]) && isCont(s[i+2]) }

// rune3 decodes the three-byte sequence at s[i] (16 bits).
func rune3(s string, i int) uint32 {
	return uint32(s[i]&0x0f)<<12 | uint32(s[i+1]&0x3f)<<6 | uint32(s[i+2]&0x3f)
}

func setBit(b []uint64, k uint32)      { b[k>>6] |= 1 << (k & 63) }
func hasBit(b []uint64, k uint32) bool { return b[k>>6]&(1<<(k&63)) != 0 }

// newCJKSplit indexes the tokens tok(id) for id in [0, n) with ok(id).
func newCJKSplit(n int, tok func(uint32) string, ok func(uint32) bool) cjkSplit {
	c := cjkSplit{
		near:   make([]uint64, 1<<16/64),
		nearR:  make([]uint64, 1<<16/64),
		first:  make([]uint64, 1<<16/64),
		second: make([]uint64, 1<<16/64),
	}
	var pairs []uint32
	for id := range n {
		if !ok(uint32(id)) {
			continue
		}
		s := tok(uint32(id))
		m := len(s)
		if m < 2 {
			continue
		}
		// Starts at a2 and goes into B.
		if isCont(s[0]) && isLead3(s[1]) {
			if m == 2 {
				for a1 := range 64 {
					setBit(c.near, nearKey(byte(a1), s[0], s[1]))
				}
			} else {
				setBit(c.nearR, nearKeyR(s[0], s[1], s[2]))
			}
		}
		// Starts at a1 and goes into B.
		if m >= 3 && isCont(s[0]) && isCont(s[1]) && isLead3(s[2]) {
			setBit(c.near, nearKey(s[0], s[1], s[2]))
		}
		// Ends at b0, having started in A.
		if isCont(s[m-2]) && isLead3(s[m-1]) {
			if m == 2 {
				for a1 := range 64 {
					setBit(c.near, nearKey(byte(a1), s[0], s[1]))
				}
			} else {
				setBit(c.near, nearKey(s[m-3], s[m-2], s[m-1]))
			}
		}
		// Ends at b1, having started in A.
		if m >= 3 && isCont(s[m-3]) && isLead3(s[m-2]) && isCont(s[m-1]) {
			setBit(c.nearR, nearKeyR(s[m-3], s[m-2], s[m-1]))
		}
		// Holds all of A and all of B.
		for i := 0; i+6 <= m; i++ {
			if is3(s, i) && is3(s, i+3) {
				a, b := rune3(s, i), rune3(s, i+3)
				setBit(c.first, a)
				setBit(c.second, b)
				pairs = append(pairs, a<<16|b)
			}
		}
	}
	size := 1 << bits.Len(uint(len(pairs)+len(pairs)/2+1))
	c.pairs = make([]uint32, size)
	c.shift = uint(32 - bits.Len(uint(size-1)))
	mask := uint32(size - 1)
	for _, k := range pairs {
		if k == 0 {
			c.zero = true
			continue
		}
		for i := c.slot(k); ; i = (i + 1) & mask {
			if c.pairs[i] == 0 || c.pairs[i] == k {
				c.pairs[i] = k
				break
			}
		}
	}
	return c
}

func (c *cjkSplit) slot(k uint32) uint32 { return (k * 0x9E3779B1) >> c.shift }

// canCut reports whether no token spans the cut between the three-byte
// characters at s[i] and s[i+3].
func (c *cjkSplit) canCut(s string, i int) bool {
	a1, a2, b0, b1 := s[i+1], s[i+2], s[i+3], s[i+4]
	if hasBit(c.near, nearKey(a1, a2, b0)) || hasBit(c.nearR, nearKeyR(a2, b0, b1)) {
		return false
	}
	a, b := rune3(s, i), rune3(s, i+3)
	if !hasBit(c.first, a) || !hasBit(c.second, b) {
		return true
	}
	k := a<<16 | b
	if k == 0 {
		return !c.zero
	}
	mask := uint32(len(c.pairs) - 1)
	for j := c.slot(k); ; j = (j + 1) & mask {
		switch c.pairs[j] {
		case k:
			return false
		case 0:
			return true
		}
	}
}
