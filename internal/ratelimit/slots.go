package ratelimit

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// slotsScript renews or frees concurrency slots. KEYS: concurrency sets.
// ARGV: "renew" or "free", the new expiry (ms), the sets' minimum life
// (ms), then per set the number of its members listed and the members.
// Renewing only touches members still there (ZADD XX): a slot released or
// expired meanwhile is never brought back.
var slotsScript = redis.NewScript(`
local renew = ARGV[1] == 'renew'
local life = tonumber(ARGV[3])
local a = 4
for i = 1, #KEYS do
  local n = tonumber(ARGV[a])
  a = a + 1
  for j = 1, n do
    if renew then
      redis.call('ZADD', KEYS[i], 'XX', ARGV[2], ARGV[a])
    else
      redis.call('ZREM', KEYS[i], ARGV[a])
    end
    a = a + 1
  end
  if renew and redis.call('PTTL', KEYS[i]) < life then redis.call('PEXPIRE', KEYS[i], life) end
end
return 0
`)

// Bounds on the slot keeper's work.
const (
	slotsPerCall = 1000    // members renewed or freed by one script call
	maxTracked   = 100_000 // leases kept live or unfreed; beyond, the TTL frees their slots
)

// slotKeeper tracks a Redis limiter's concurrency slots: those of requests
// in flight, renewed while they run, and those whose release failed, freed
// again until Redis answers. A goroutine runs while there is either.
type slotKeeper struct {
	mu      sync.Mutex
	live    map[string][]string // lease id → its concurrency sets
	unfreed map[string][]string // lease id → sets whose release failed
	running bool
	closed  bool
	stop    chan struct{}
	wg      sync.WaitGroup
}

func (k *slotKeeper) init() {
	k.live = map[string][]string{}
	k.unfreed = map[string][]string{}
	k.stop = make(chan struct{})
}

// concSets returns the Redis keys of the concurrency sets a lease holds a
// slot in; nil if none.
func (r *Redis) concSets(lease *Lease) []string {
	var out []string
	for i := range lease.n {
		if lease.conc[i] {
			out = append(out, r.opt.Prefix+lease.keys[i]+":c")
		}
	}
	return out
}

// track starts keeping a lease's slots: renewing them while its request
// runs, or, when its release failed, freeing them again at each renewal
// until Redis answers.
func (r *Redis) track(lease *Lease, releaseFailed bool) {
	sets := r.concSets(lease)
	if sets == nil {
		return
	}
	k := &r.slots
	k.mu.Lock()
	defer k.mu.Unlock()
	m := k.live
	if releaseFailed {
		m = k.unfreed
	}
	if k.closed || len(m) >= maxTracked {
		return // the slot lives LeaseTTL unrenewed
	}
	m[lease.id] = sets
	r.startLocked()
}

// drop stops renewing a lease's slots (it is being released).
func (r *Redis) drop(lease *Lease) {
	k := &r.slots
	k.mu.Lock()
	delete(k.live, lease.id)
	k.mu.Unlock()
}

// startLocked starts the renewal goroutine if it is not running. The
// caller holds k.mu.
func (r *Redis) startLocked() {
	k := &r.slots
	if k.running {
		return
	}
	k.running = true
	k.wg.Add(1)
	go r.keepSlots()
}

// keepSlots renews and frees slots every RenewEvery until there is nothing left
// to keep or Close.
func (r *Redis) keepSlots() {
	defer r.slots.wg.Done()
	t := r.opt.Clock.NewTicker(r.opt.RenewEvery)
	defer t.Stop()
	for {
		select {
		case <-r.slots.stop:
			return
		case <-t.C():
		}
		if !r.tick(context.Background()) {
			return
		}
	}
}

// tick renews the slots of requests in flight and frees those whose
// release failed, in a few round trips. It reports whether there is still
// something to keep; if not, the goroutine is marked stopped.
func (r *Redis) tick(ctx context.Context) bool {
	k := &r.slots
	k.mu.Lock()
	if len(k.live) == 0 && len(k.unfreed) == 0 {
		k.running = false
		k.mu.Unlock()
		return false
	}
	live := groupBySet(k.live)
	unfreed := make(map[string][]string, len(k.unfreed))
	for id, sets := range k.unfreed {
		unfreed[id] = sets
	}
	k.mu.Unlock()

	now := r.opt.Clock.Now().UnixMilli()
	exp := now + r.opt.LeaseTTL.Milliseconds()
	life := r.opt.LeaseTTL.Milliseconds() + unit
	if err := r.runSlots(ctx, "renew", exp, life, live); err != nil {
		r.logFailure("renew", err)
	}
	if len(unfreed) > 0 {
		if err := r.runSlots(ctx, "free", 0, 0, groupBySet(unfreed)); err != nil {
			r.logFailure("free", err)
		} else {
			k.mu.Lock()
			for id := range unfreed {
				delete(k.unfreed, id)
			}
			k.mu.Unlock()
		}
	}
	return true
}

// groupBySet turns lease id → sets into set → lease ids.
func groupBySet(byLease map[string][]string) map[string][]string {
	out := map[string][]string{}
	for id, sets := range byLease {
		for _, s := range sets {
			out[s] = append(out[s], id)
		}
	}
	return out
}

// runSlots runs slotsScript over members by set, at most slotsPerCall
// members a call.
func (r *Redis) runSlots(ctx context.Context, op string, exp, life int64, members map[string][]string) error {
	var keys []string
	var args []any
	count := 0
	flush := func() error {
		if len(keys) == 0 {
			return nil
		}
		cctx, cancel := r.ctx(ctx)
		defer cancel()
		err := slotsScript.Run(cctx, r.opt.Client, keys, append([]any{op, exp, life}, args...)...).Err()
		keys, args, count = keys[:0], args[:0], 0
		return err
	}
	for set, ids := range members {
		for len(ids) > 0 {
			n := min(len(ids), slotsPerCall-count)
			keys = append(keys, set)
			args = append(args, n)
			for _, id := range ids[:n] {
				args = append(args, id)
			}
			ids, count = ids[n:], count+n
			if count == slotsPerCall {
				if err := flush(); err != nil {
					return err
				}
			}
		}
	}
	return flush()
}

// Close stops renewing slots. The slots of requests still in flight then
// expire LeaseTTL after their last renewal. Close does not close the
// client.
func (r *Redis) Close() error {
	k := &r.slots
	k.mu.Lock()
	if !k.closed {
		k.closed = true
		close(k.stop)
	}
	k.mu.Unlock()
	k.wg.Wait()
	return nil
}
