package engine

import "baimo/internal/blockmap"

// blockPool is the paged KV cache: NumBlocks blocks with reference counts, a
// free list kept in least-recently-freed order, and (with prefix caching) a
// table from content hash to the block that holds it. A freed block keeps its
// hash until it is reused, so a later prompt with the same prefix can take it
// back; reuse takes the least recently freed block first (LRU eviction).
type blockPool struct {
	ref    []int32
	hash   []uint64
	hashed []bool
	prev   []int32 // free list links; -1 ends
	next   []int32
	head   int32 // next block to hand out (least recently freed)
	tail   int32
	free   int           // blocks with ref == 0, cached or not
	cache  *blockmap.Map // content hash -> block; nil without prefix caching
}

func newBlockPool(n int, caching bool) *blockPool {
	p := &blockPool{
		ref: make([]int32, n), hash: make([]uint64, n), hashed: make([]bool, n),
		prev: make([]int32, n), next: make([]int32, n), head: -1, tail: -1,
	}
	if caching {
		p.cache = blockmap.New(n)
	}
	for i := range n {
		p.pushTail(int32(i))
	}
	return p
}

func (p *blockPool) pushTail(b int32) {
	p.prev[b], p.next[b] = p.tail, -1
	if p.tail >= 0 {
		p.next[p.tail] = b
	} else {
		p.head = b
	}
	p.tail = b
	p.free++
}

func (p *blockPool) unlink(b int32) {
	if p.prev[b] >= 0 {
		p.next[p.prev[b]] = p.next[b]
	} else {
		p.head = p.next[b]
	}
	if p.next[b] >= 0 {
		p.prev[p.next[b]] = p.prev[b]
	} else {
		p.tail = p.prev[b]
	}
	p.prev[b], p.next[b] = -1, -1
	p.free--
}

// alloc takes the least recently freed block, evicting its cached content.
// The caller has checked that a block is free.
func (p *blockPool) alloc() int32 {
	b := p.head
	p.unlink(b)
	if p.hashed[b] {
		p.cache.Delete(p.hash[b])
		p.hashed[b] = false
	}
	p.ref[b] = 1
	return b
}

// take adds a reference to a cached block found by lookup.
func (p *blockPool) take(b int32) {
	if p.ref[b] == 0 {
		p.unlink(b)
	}
	p.ref[b]++
}

// release drops a reference; at zero the block joins the free list's tail
// (it stays findable by hash until reused).
func (p *blockPool) release(b int32) {
	p.ref[b]--
	if p.ref[b] == 0 {
		p.pushTail(b)
	}
}

// register records that block b holds the content named h, unless another
// block already does (then b stays anonymous and is evicted first).
func (p *blockPool) register(b int32, h uint64) {
	if p.cache == nil || p.hashed[b] {
		return
	}
	if _, dup := p.cache.Get(h); dup {
		return
	}
	p.cache.Put(h, b)
	p.hash[b], p.hashed[b] = h, true
}

func (p *blockPool) lookup(h uint64) (int32, bool) { return p.cache.Get(h) }
