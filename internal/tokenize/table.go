package tokenize

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"math/bits"
	"sort"
	"sync/atomic"
	"unsafe"

	"baimo/internal/tokenize/vocab"
)

// noRank marks a pair that does not merge.
const noRank = math.MaxUint32

// table is one loaded vocabulary.
type table struct {
	blob   []byte   // token bytes, concatenated
	offs   []uint32 // token id i is blob[offs[i]:offs[i+1]]
	byteID [256]uint32
	pairs  pairMap
	long   longMap  // ordinary tokens of more than 7 bytes, by their bytes
	short  shortMap // ordinary tokens of up to 7 bytes, by their bytes
	char3  []uint32 // ordinary tokens of one three-byte character, by rune3; noRank if none
	// verified records whether byte-pair merging of a token's bytes gives
	// the token itself: 2 bits per id, 01 = it does, 10 = it does not, 00 =
	// not known yet (the first use runs the merge). For merge lists it is not
	// always so (a token may be unreachable by the merges). tiktoken looks a
	// whole piece up before merging (trustWhole), so the check is needed there
	// only for the parts that cjk cuts a piece into.
	verified   []atomic.Uint32
	trustWhole bool              // a piece that is a token is that token (tiktoken)
	cjk        cjkSplit          // where long pieces of CJK text can be cut
	maxLen     [256]int32        // longest ordinary token starting with each byte
	bytePair   []uint32          // merge of two single-byte tokens, by the two bytes
	special1   [256]bool         // first bytes of added tokens (merge-list vocabularies only)
	specLens   map[string][]int  // first two bytes → candidate lengths, longest first
	specIDs    map[string]uint32 // added tokens by content
}

// pairMap is an open-addressing hash table from a pair of token ids to the
// id of their merge. The merged id doubles as the merge's rank: for tiktoken
// vocabularies rank and id are the same, and the merge lists of Qwen and
// DeepSeek create ids in rank order (parseTable checks it). Ids fit in 18
// bits, so a slot packs left, right and merged id into one uint64 and a
// lookup touches one word.
type pairMap struct {
	slots []uint64 // left<<36 | right<<18 | merged; 0 is empty
	shift uint
}

const (
	idBits = 18
	idMask = 1<<idBits - 1
)

func newPairMap(n int) pairMap {
	size := 1 << bits.Len(uint(n+n/2))
	return pairMap{slots: make([]uint64, size), shift: uint(64 - bits.Len(uint(size-1)))}
}

func (m *pairMap) slot(k uint64) uint64 { return (k * 0x9E3779B97F4A7C15) >> m.shift }

func (m *pairMap) put(a, b, id uint32) {
	k := uint64(a)<<idBits | uint64(b)
	mask := uint64(len(m.slots) - 1)
	for i := m.slot(k); ; i = (i + 1) & mask {
		if s := m.slots[i]; s == 0 || s>>idBits == k {
			m.slots[i] = k<<idBits | uint64(id)
			return
		}
	}
}

// get returns the merged id of the pair (a, b), which is also its rank, or
// noRank if the pair does not merge.
func (m *pairMap) get(a, b uint32) uint32 {
	k := uint64(a)<<idBits | uint64(b)
	mask := uint64(len(m.slots) - 1)
	for i := m.slot(k); ; i = (i + 1) & mask {
		s := m.slots[i]
		if s>>idBits == k && s != 0 {
			return uint32(s & idMask)
		}
		if s == 0 {
			return noRank
		}
	}
}

// shortMap finds tokens of up to maxShort bytes with one probe of an integer
// key instead of hashing and comparing a string.
type shortMap struct {
	slots []shortSlot
	shift uint
}

type shortSlot struct {
	key uint64 // packShort of the token; 0 is empty
	id  uint32
}

const maxShort = 7

// packShort packs up to 7 bytes and their count into a key that is never 0
// for a non-empty s.
func packShort(s string) uint64 {
	k := uint64(len(s)) << 56
	for i := 0; i < len(s); i++ {
		k |= uint64(s[i]) << (8 * i)
	}
	return k
}

func newShortMap(n int) shortMap {
	size := 1 << bits.Len(uint(n+n/2))
	return shortMap{slots: make([]shortSlot, size), shift: uint(64 - bits.Len(uint(size-1)))}
}

func (m *shortMap) put(k uint64, id uint32) {
	mask := uint64(len(m.slots) - 1)
	for i := (k * 0x9E3779B97F4A7C15) >> m.shift; ; i = (i + 1) & mask {
		if s := &m.slots[i]; s.key == 0 || s.key == k {
			s.key, s.id = k, id
			return
		}
	}
}

func (m *shortMap) get(k uint64) (uint32, bool) {
	mask := uint64(len(m.slots) - 1)
	for i := (k * 0x9E3779B97F4A7C15) >> m.shift; ; i = (i + 1) & mask {
		s := &m.slots[i]
		if s.key == k {
			return s.id, true
		}
		if s.key == 0 {
			return 0, false
		}
	}
}

// lookup returns the ordinary token whose bytes are piece.
func (t *table) lookup(piece string) (uint32, bool) {
	if len(piece) <= maxShort {
		if len(piece) == 3 && is3(piece, 0) {
			id := t.char3[rune3(piece, 0)]
			return id, id != noRank
		}
		return t.short.get(packShort(piece))
	}
	if len(piece) > int(t.maxLen[piece[0]]) {
		return 0, false
	}
	return t.long.get(t, piece)
}

// longMap is an open-addressing hash table of the tokens of more than
// maxShort bytes. A slot holds 45 bits of the hash besides the id, so that a
// lookup that misses, as most lookups of whole pieces of CJK text do, almost
// never reads the token's bytes.
type longMap struct {
	slots []uint64 // 1<<63 | tag<<idBits | id; 0 is empty
	shift uint
}

const tagBits = 63 - idBits

func newLongMap(n int) longMap {
	size := 1 << bits.Len(uint(n+n/2))
	return longMap{slots: make([]uint64, size), shift: uint(64 - bits.Len(uint(size-1)))}
}

// hashLong hashes s, which has at least 8 bytes.
func hashLong(s string) uint64 {
	const k = 0x9E3779B97F4A7C15
	h := uint64(len(s)) * k
	tail := load64(s[len(s)-8:])
	for len(s) > 8 {
		h = bits.RotateLeft64((h^load64(s))*k, 29)
		s = s[8:]
	}
	h = (h ^ tail) * k
	return h ^ h>>32
}

// load64 reads the first 8 bytes of s, little-endian (one load on amd64
// and arm64).
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

func (m *longMap) put(t *table, s string, id uint32) {
	h := hashLong(s)
	v := 1<<63 | (h&(1<<tagBits-1))<<idBits | uint64(id)
	mask := uint64(len(m.slots) - 1)
	for i := h >> m.shift; ; i = (i + 1) & mask {
		old := m.slots[i]
		if old == 0 || (old^v)&^idMask == 0 && t.tokenString(uint32(old&idMask)) == s {
			m.slots[i] = v // a later id with the same bytes wins, as in a map
			return
		}
	}
}

func (m *longMap) get(t *table, s string) (uint32, bool) {
	h := hashLong(s)
	tag := (h & (1<<tagBits - 1)) << idBits
	mask := uint64(len(m.slots) - 1)
	for i := h >> m.shift; ; i = (i + 1) & mask {
		v := m.slots[i]
		if v == 0 {
			return 0, false
		}
		if v&^(1<<63|idMask) == tag {
			if id := uint32(v & idMask); t.tokenString(id) == s {
				return id, true
			}
		}
	}
}

// maxIDs bounds the vocabulary size a data file may declare.
const maxIDs = 1 << idBits

// loadTable reads and indexes the embedded vocabulary file name.
func loadTable(name string) (*table, error) {
	f, err := vocab.Files.Open(name + ".btk.gz")
	if err != nil {
		return nil, fmt.Errorf("vocabulary %s: %w", name, err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return nil, fmt.Errorf("vocabulary %s: %w", name, err)
	}
	raw, err := readAllSized(zr, gzipSize(f))
	if err != nil {
		return nil, fmt.Errorf("vocabulary %s: %w", name, err)
	}
	t, err := parseTable(raw)
	if err != nil {
		return nil, fmt.Errorf("vocabulary %s: %w", name, err)
	}
	return t, nil
}

var errCorrupt = errors.New("corrupt vocabulary data")

// maxRaw bounds the uncompressed size of a vocabulary file.
const maxRaw = 64 << 20

// gzipSize returns the uncompressed size a gzip file's trailer declares
// (ISIZE, the size modulo 2^32), or 0 when f cannot say.
func gzipSize(f fs.File) int {
	ra, ok := f.(io.ReaderAt)
	st, err := f.Stat()
	if !ok || err != nil || st.Size() < 18 {
		return 0
	}
	var b [4]byte
	if _, err := ra.ReadAt(b[:], st.Size()-4); err != nil {
		return 0
	}
	return int(binary.LittleEndian.Uint32(b[:]))
}

// readAllSized reads r to its end into a buffer of size bytes, growing it
// only if r is longer, so a vocabulary of several megabytes is not copied
// through the doublings of io.ReadAll (garbage the heap keeps as resident
// memory long after the load).
func readAllSized(r io.Reader, size int) ([]byte, error) {
	if size <= 0 || size > maxRaw {
		return io.ReadAll(io.LimitReader(r, maxRaw))
	}
	buf := make([]byte, size)
	n, err := io.ReadFull(r, buf)
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return buf[:n], nil
	case err != nil:
		return nil, err
	}
	rest, err := io.ReadAll(io.LimitReader(r, maxRaw-int64(size)))
	if err != nil {
		return nil, err
	}
	return append(buf, rest...), nil
}

func parseTable(raw []byte) (*table, error) {
	if !bytes.HasPrefix(raw, []byte("BTK1")) || len(raw) < 5 {
		return nil, errCorrupt
	}
	kind := raw[4]
	p := raw[5:]
	next := func() (int, error) {
		v, n := binary.Uvarint(p)
		if n <= 0 || v > math.MaxInt32 {
			return 0, errCorrupt
		}
		p = p[n:]
		return int(v), nil
	}
	nIDs, err := next()
	if err != nil {
		return nil, err
	}
	nMerges, err := next()
	if err != nil {
		return nil, err
	}
	nSpecial, err := next()
	if err != nil {
		return nil, err
	}
	if nIDs <= 256 || nIDs > maxIDs || nMerges > nIDs || nSpecial > nIDs {
		return nil, errCorrupt
	}
	lens := make([]uint32, nIDs)
	total := 0
	for i := range lens {
		n, err := next()
		if err != nil {
			return nil, err
		}
		lens[i] = uint32(n)
		total += n
	}
	if total > len(p) {
		return nil, errCorrupt
	}
	t := &table{offs: make([]uint32, nIDs+1)}
	blob := p[:total]
	p = p[total:]
	merges := make([][2]uint32, 0, nMerges)
	for range nMerges {
		a, err := next()
		if err != nil {
			return nil, err
		}
		b, err := next()
		if err != nil {
			return nil, err
		}
		if a >= nIDs || b >= nIDs {
			return nil, errCorrupt
		}
		merges = append(merges, [2]uint32{uint32(a), uint32(b)})
	}
	specText := map[int]string{}
	for range nSpecial {
		id, err := next()
		if err != nil {
			return nil, err
		}
		n, err := next()
		if err != nil {
			return nil, err
		}
		if id >= nIDs || n == 0 || n > len(p) {
			return nil, errCorrupt
		}
		specText[id] = string(p[:n])
		p = p[n:]
	}
	// Lay out token bytes by id, special contents where an id has no
	// ordinary token, so that decoding is one slice per id.
	out := make([]byte, 0, total+len(specText)*16)
	off := 0
	for id := range nIDs {
		t.offs[id] = uint32(len(out))
		if s, ok := specText[id]; ok && lens[id] == 0 {
			out = append(out, s...)
		}
		out = append(out, blob[off:off+int(lens[id])]...)
		off += int(lens[id])
	}
	t.offs[nIDs] = uint32(len(out))
	t.blob = out

	// Index ordinary tokens by their bytes: short ones in an integer-keyed
	// table, all in a map.
	nShort := 0
	for _, n := range lens {
		if n > 0 && n <= maxShort {
			nShort++
		}
	}
	t.short = newShortMap(nShort)
	t.long = newLongMap(nIDs - nShort)
	t.char3 = make([]uint32, 1<<16)
	for i := range t.char3 {
		t.char3[i] = noRank
	}
	for id := range nIDs {
		if lens[id] == 0 {
			continue
		}
		tok := t.tokenString(uint32(id))
		t.maxLen[tok[0]] = max(t.maxLen[tok[0]], int32(len(tok)))
		if len(tok) <= maxShort {
			t.short.put(packShort(tok), uint32(id))
			if len(tok) == 3 && is3(tok, 0) {
				t.char3[rune3(tok, 0)] = uint32(id)
			}
		} else {
			t.long.put(t, tok, uint32(id))
		}
	}
	for b := range 256 {
		id, ok := t.lookup(string([]byte{byte(b)}))
		if !ok {
			return nil, fmt.Errorf("%w: no token for byte %#x", errCorrupt, b)
		}
		t.byteID[b] = id
	}

	switch kind {
	case 0: // tiktoken: any split of a token into two tokens merges to it, ranked by its id
		t.trustWhole = true
		// Two passes, one to size the map and one to fill it, rather than
		// a list of the pairs: the list was several times the map in
		// garbage, which stayed resident after the load.
		splits := func(put func(a, b, id uint32)) {
			for id := range nIDs {
				if lens[id] < 2 {
					continue
				}
				s := t.tokenString(uint32(id))
				for k := 1; k < len(s); k++ {
					a, ok := t.lookup(s[:k])
					if !ok {
						continue
					}
					b, ok := t.lookup(s[k:])
					if !ok {
						continue
					}
					put(a, b, uint32(id))
				}
			}
		}
		npairs := 0
		splits(func(_, _, _ uint32) { npairs++ })
		t.pairs = newPairMap(npairs)
		splits(t.pairs.put)
	case 1: // merge list: rank is the position in the list
		t.pairs = newPairMap(len(merges))
		last := uint32(0)
		for r, m := range merges {
			id, ok := t.lookup(t.tokenString(m[0]) + t.tokenString(m[1]))
			if !ok {
				return nil, fmt.Errorf("%w: merge %d has no result token", errCorrupt, r)
			}
			if id <= last {
				return nil, fmt.Errorf("%w: merge %d creates id %d out of rank order", errCorrupt, r, id)
			}
			last = id
			t.pairs.put(m[0], m[1], id)
		}
		t.specIDs = map[string]uint32{}
		t.specLens = map[string][]int{}
		// Added tokens are matched in text, longest first.
		for id, s := range specText {
			t.specIDs[s] = uint32(id)
			t.special1[s[0]] = true
			k := s[:min(2, len(s))]
			if ls := t.specLens[k]; !containsInt(ls, len(s)) {
				ls = append(ls, len(s))
				sort.Sort(sort.Reverse(sort.IntSlice(ls)))
				t.specLens[k] = ls
			}
		}
	default:
		return nil, fmt.Errorf("%w: unknown kind %d", errCorrupt, kind)
	}
	t.verified = make([]atomic.Uint32, (nIDs+15)/16)
	t.cjk = newCJKSplit(nIDs, t.tokenString, func(id uint32) bool { return lens[id] > 0 })
	// bytePair answers the first round of lookups of every piece.
	t.bytePair = make([]uint32, 1<<16)
	for i := range t.bytePair {
		t.bytePair[i] = t.pairs.get(t.byteID[i>>8], t.byteID[i&0xff])
	}
	return t, nil
}

func containsInt(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// tokenString returns the bytes of id as a string sharing the table's memory.
func (t *table) tokenString(id uint32) string {
	b := t.blob[t.offs[id]:t.offs[id+1]]
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// matchSpecial returns the id and length of the longest added token at s[i:].
func (t *table) matchSpecial(s string, i int) (uint32, int, bool) {
	if !t.special1[s[i]] {
		return 0, 0, false
	}
	if i+1 < len(s) {
		for _, n := range t.specLens[s[i:i+2]] {
			if i+n <= len(s) {
				if id, ok := t.specIDs[s[i:i+n]]; ok {
					return id, n, true
				}
			}
		}
	}
	if id, ok := t.specIDs[s[i:i+1]]; ok {
		return id, 1, true
	}
	return 0, 0, false
}
