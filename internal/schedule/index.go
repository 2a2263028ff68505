package schedule

import (
	"math/bits"
	"sync"
	"time"

	"baimo/internal/blockmap"
)

// MaxReplicas bounds the replicas of one pool (the index keeps a 64-bit set
// of replicas per block).
const MaxReplicas = 64

// DefaultIndexBlocks is the per-replica capacity of the index when the
// replica's own KV size is unknown (the Gateway API inference extension's
// default: 31,250 blocks).
const DefaultIndexBlocks = 31_250

// DefaultIndexTTL is how long an entry counts without being recorded again.
const DefaultIndexTTL = 10 * time.Minute

// Index is the gateway's approximate prefix index: which replicas were sent
// which prompt blocks recently. It is built from the gateway's own routing
// decisions, not from the replicas, so it only approximates their caches:
// each replica's view is capped at the replica's KV size in blocks and
// evicts the least recently recorded block first (second-chance: a block
// recorded again since it was inserted goes round once more), and entries
// expire after a TTL. It is safe for concurrent use.
type Index struct {
	mu   sync.RWMutex
	ttl  int64
	ids  *blockmap.Map // block hash -> slot in sets
	sets []blockSet
	free []int32
	reps []replicaRing
}

// blockSet is one block: the replicas holding it and its last record.
type blockSet struct {
	hash uint64
	mask uint64
	last int64 // newest record of the block by any replica, Unix ns
}

// replicaRing is one replica's blocks in insertion order: a ring of slots,
// the oldest at head.
type replicaRing struct {
	cap  int
	slot []int32
	at   []int64
	head int
	n    int
}

// push appends a slot; the ring grows (by doubling, up to cap) as it fills.
func (r *replicaRing) push(slot int32, t int64) {
	if r.n == len(r.slot) {
		size := min(max(2*len(r.slot), 256), r.cap)
		ns, na := make([]int32, size), make([]int64, size)
		for k := range r.n {
			j := (r.head + k) % len(r.slot)
			ns[k], na[k] = r.slot[j], r.at[j]
		}
		r.slot, r.at, r.head = ns, na, 0
	}
	i := (r.head + r.n) % len(r.slot)
	r.slot[i], r.at[i] = slot, t
	r.n++
}

func (r *replicaRing) pop() (int32, int64) {
	s, t := r.slot[r.head], r.at[r.head]
	r.head = (r.head + 1) % len(r.slot)
	r.n--
	return s, t
}

// NewIndex returns an index for n replicas, each holding at most capacity[i]
// blocks (DefaultIndexBlocks where 0), whose entries expire after ttl
// (DefaultIndexTTL if 0).
func NewIndex(n int, capacity []int, ttl time.Duration) *Index {
	if ttl <= 0 {
		ttl = DefaultIndexTTL
	}
	x := &Index{ttl: int64(ttl), ids: blockmap.New(1024), reps: make([]replicaRing, n)}
	for i := range x.reps {
		c := DefaultIndexBlocks
		if i < len(capacity) && capacity[i] > 0 {
			c = capacity[i]
		}
		x.reps[i].cap = c
	}
	return x
}

// Replicas is the number of replicas the index tracks.
func (x *Index) Replicas() int { return len(x.reps) }

func (x *Index) mask(h uint64, now int64) uint64 {
	i, ok := x.ids.Get(h)
	if !ok {
		return 0
	}
	s := &x.sets[i]
	if now-s.last > x.ttl {
		return 0
	}
	return s.mask
}

// Match sets out[r] to the number of leading blocks of blocks that replica r
// holds, for every replica, and returns the largest. It probes the index by
// bisection, relying on prefixes being recorded whole (a replica holding
// block i holds the blocks before it), so a prompt costs a few lookups per
// distinct match length, not one per block. out must have Replicas()
// elements.
func (x *Index) Match(blocks []uint64, now time.Time, out []int) int {
	clear(out)
	if len(blocks) == 0 {
		return 0
	}
	t := now.UnixNano()
	x.mu.RLock()
	defer x.mu.RUnlock()
	m0 := x.mask(blocks[0], t)
	if m0 == 0 {
		return 0
	}
	best := 0
	x.bisect(blocks, t, 1, len(blocks), m0, out, &best)
	return best
}

// bisect resolves the match length of the replicas in cand, all of which
// hold block lo-1 and none of which is known to hold block hi.
func (x *Index) bisect(blocks []uint64, t int64, lo, hi int, cand uint64, out []int, best *int) {
	for cand != 0 {
		if lo == hi {
			for c := cand; c != 0; c &= c - 1 {
				out[bits.TrailingZeros64(c)] = lo
			}
			*best = max(*best, lo)
			return
		}
		mid := lo + (hi-lo)/2
		in := x.mask(blocks[mid], t) & cand
		if in != 0 {
			x.bisect(blocks, t, mid+1, hi, in, out, best)
		}
		cand &^= in
		hi = mid
	}
}

// Record notes that replica r was sent a prompt with these blocks. A block
// the replica already holds costs one lookup; a new one joins the replica's
// ring, evicting its oldest beyond capacity or TTL.
func (x *Index) Record(blocks []uint64, r int, now time.Time) {
	if r < 0 || r >= len(x.reps) || len(blocks) == 0 {
		return
	}
	t := now.UnixNano()
	bit := uint64(1) << r
	ring := &x.reps[r]
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, h := range blocks {
		i, ok := x.ids.Get(h)
		if !ok {
			i = x.alloc(h)
		}
		s := &x.sets[i]
		s.last = max(s.last, t)
		if s.mask&bit != 0 {
			continue
		}
		s.mask |= bit
		if ring.n >= ring.cap {
			x.evict(r, t, true)
		}
		ring.push(i, t)
	}
	x.evict(r, t, false)
}

func (x *Index) alloc(h uint64) int32 {
	var i int32
	if n := len(x.free); n > 0 {
		i = x.free[n-1]
		x.free = x.free[:n-1]
	} else {
		i = int32(len(x.sets))
		x.sets = append(x.sets, blockSet{})
	}
	x.sets[i] = blockSet{hash: h}
	x.ids.Put(h, i)
	return i
}

// evict drops replica r's oldest blocks: one (at least) if full is set,
// and every one past the TTL. A block recorded again since it entered the
// ring, and still within the TTL, is given a second round instead.
func (x *Index) evict(r int, t int64, full bool) {
	ring := &x.reps[r]
	bit := uint64(1) << r
	for ring.n > 0 {
		i, at := ring.slot[ring.head], ring.at[ring.head]
		s := &x.sets[i]
		fresh := t-s.last <= x.ttl
		if !full && t-at <= x.ttl {
			return
		}
		ring.pop()
		if fresh && s.last > at && s.mask&bit != 0 {
			ring.push(i, s.last) // second chance
			continue
		}
		s.mask &^= bit
		if s.mask == 0 {
			x.ids.Delete(s.hash)
			x.free = append(x.free, i)
		}
		if full {
			return
		}
	}
}

// Expire drops every replica's entries older than the TTL. Record does this
// for the replica it records; a gateway calls Expire now and then so that
// replicas that receive nothing also age.
func (x *Index) Expire(now time.Time) {
	t := now.UnixNano()
	x.mu.Lock()
	defer x.mu.Unlock()
	for r := range x.reps {
		x.evict(r, t, false)
	}
}

// Blocks is the number of blocks the index holds for replica r.
func (x *Index) Blocks(r int) int {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.reps[r].n
}
