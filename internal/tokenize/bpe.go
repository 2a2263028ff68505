package tokenize

import "sync"

// part is one symbol of a piece during merging, with the merge it would make
// with the symbol after it.
type part struct {
	id   uint32
	rank uint32 // rank (= merged id) of merging with the next part, noRank if none
}

// scratch holds the buffers of one encode call; pooled so that counting does
// not allocate per token or per call.
type scratch struct {
	parts []part
	ids   []uint32
	// for long pieces
	prev, next []int32
	heap       []uint64
	norm       []byte // the NFC form of the text (Qwen), when it is not NFC already
}

var scratchPool = sync.Pool{New: func() any {
	return &scratch{parts: make([]part, 0, 256), ids: make([]uint32, 0, 256)}
}}

// longPiece is the length from which merging uses a heap instead of a scan;
// a linear scan is faster for the short pieces of ordinary text, and the heap
// bounds the work on adversarial input (a megabyte of one character class).
const longPiece = 256

// bpe appends the token ids of piece to dst.
func (t *table) bpe(sc *scratch, dst []uint32, piece string) []uint32 {
	if len(piece) == 1 {
		return append(dst, t.byteID[piece[0]])
	}
	id, ok := t.lookup(piece)
	if !ok {
		return t.mergeCut(sc, dst, piece)
	}
	if t.trustWhole {
		return append(dst, id)
	}
	return t.verifiedToken(sc, dst, piece, id)
}

// verifiedToken appends the ids that merging gives for piece, whose bytes
// are the token id: id itself unless the merges cannot reach it.
func (t *table) verifiedToken(sc *scratch, dst []uint32, piece string, id uint32) []uint32 {
	w, shift := &t.verified[id/16], (id%16)*2
	switch (w.Load() >> shift) & 3 {
	case 1:
		return append(dst, id)
	case 0:
		n := len(dst)
		dst = t.merge(sc, dst, piece)
		mark := uint32(2)
		if len(dst) == n+1 && dst[n] == id {
			mark = 1
		}
		w.Or(mark << shift)
		return dst
	}
	return t.merge(sc, dst, piece)
}

// mergeCut appends the ids that byte-pair merging gives for piece, cutting
// it first between three-byte characters where no token can span the cut
// (see cjkSplit); each part is then a token or merged on its own.
func (t *table) mergeCut(sc *scratch, dst []uint32, piece string) []uint32 {
	start := 0
	for i := 0; i+6 <= len(piece); {
		if !is3(piece, i) {
			i++
			continue
		}
		j := i + 3
		if !is3(piece, j) {
			i = j + 1
			continue
		}
		if t.cjk.canCut(piece, i) {
			dst = t.mergePart(sc, dst, piece[start:j])
			start = j
		}
		i = j
	}
	if start == 0 {
		return t.merge(sc, dst, piece)
	}
	return t.mergePart(sc, dst, piece[start:])
}

// mergePart appends the ids that merging gives for part of a piece. Unlike
// a whole piece, a part that is a token is looked up only through verified:
// tiktoken's shortcut applies to whole pieces.
func (t *table) mergePart(sc *scratch, dst []uint32, part string) []uint32 {
	if len(part) == 1 {
		return append(dst, t.byteID[part[0]])
	}
	if id, ok := t.lookup(part); ok {
		return t.verifiedToken(sc, dst, part, id)
	}
	return t.merge(sc, dst, part)
}

// merge appends the ids that byte-pair merging gives for piece.
func (t *table) merge(sc *scratch, dst []uint32, piece string) []uint32 {
	if len(piece) >= longPiece {
		return t.bpeLong(sc, dst, piece)
	}
	parts := sc.parts[:0]
	for i := 0; i < len(piece)-1; i++ {
		parts = append(parts, part{id: t.byteID[piece[i]], rank: t.bytePair[uint16(piece[i])<<8|uint16(piece[i+1])]})
	}
	parts = append(parts, part{id: t.byteID[piece[len(piece)-1]], rank: noRank})
	n := len(parts)
	for n > 1 {
		best, at := uint32(noRank), -1
		for i := 0; i < n-1; i++ {
			if parts[i].rank < best {
				best, at = parts[i].rank, i
			}
		}
		if at < 0 {
			break
		}
		parts[at].id = best
		copy(parts[at+1:n-1], parts[at+2:n])
		n--
		if at+1 < n {
			parts[at].rank = t.pairs.get(parts[at].id, parts[at+1].id)
		} else {
			parts[at].rank = noRank
		}
		if at > 0 {
			parts[at-1].rank = t.pairs.get(parts[at-1].id, parts[at].id)
		}
	}
	for i := 0; i < n; i++ {
		dst = append(dst, parts[i].id)
	}
	sc.parts = parts
	return dst
}

// bpeLong merges a long piece with a min-heap keyed by (rank, position), the
// same order as the scan: lowest rank first, leftmost among equals.
func (t *table) bpeLong(sc *scratch, dst []uint32, piece string) []uint32 {
	n := len(piece)
	parts := sc.parts[:0]
	for i := 0; i < n; i++ {
		parts = append(parts, part{id: t.byteID[piece[i]]})
	}
	prev, next := sc.prev[:0], sc.next[:0]
	for i := 0; i < n; i++ {
		prev = append(prev, int32(i-1))
		next = append(next, int32(i+1))
	}
	next[n-1] = -1
	h := sc.heap[:0]
	for i := 0; i < n-1; i++ {
		if r := t.pairs.get(parts[i].id, parts[i+1].id); r != noRank {
			h = heapPush(h, uint64(r)<<32|uint64(i))
		}
	}
	for len(h) > 0 {
		var top uint64
		top, h = heapPop(h)
		rank, i := uint32(top>>32), int32(uint32(top))
		j := next[i]
		if parts[i].id == noRank || j < 0 {
			continue // merged away, or no right neighbour any more
		}
		res := t.pairs.get(parts[i].id, parts[j].id)
		if res != rank {
			continue // stale entry
		}
		parts[i].id = res
		parts[j].id = noRank
		k := next[j]
		next[i] = k
		if k >= 0 {
			prev[k] = i
			if r := t.pairs.get(res, parts[k].id); r != noRank {
				h = heapPush(h, uint64(r)<<32|uint64(i))
			}
		}
		if p := prev[i]; p >= 0 {
			if r := t.pairs.get(parts[p].id, res); r != noRank {
				h = heapPush(h, uint64(r)<<32|uint64(p))
			}
		}
	}
	for i := int32(0); i >= 0; i = next[i] {
		dst = append(dst, parts[i].id)
	}
	sc.parts, sc.prev, sc.next, sc.heap = parts, prev, next, h
	return dst
}

func heapPush(h []uint64, v uint64) []uint64 {
	h = append(h, v)
	i := len(h) - 1
	for i > 0 {
		p := (i - 1) / 2
		if h[p] <= h[i] {
			break
		}
		h[p], h[i] = h[i], h[p]
		i = p
	}
	return h
}

func heapPop(h []uint64) (uint64, []uint64) {
	top := h[0]
	last := len(h) - 1
	h[0] = h[last]
	h = h[:last]
	i := 0
	for {
		l := 2*i + 1
		if l >= len(h) {
			break
		}
		m := l
		if r := l + 1; r < len(h) && h[r] < h[l] {
			m = r
		}
		if h[i] <= h[m] {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return top, h
}
