package gateway

import (
	"context"
	"sync"
	"time"

	"baimo/internal/clock"
	"baimo/internal/keys"
)

// keyTTL is how long a key found in the store is trusted without asking
// again, so that a key disabled on another node stops working within it.
const keyTTL = time.Second

// maxKeyLookup bounds a store lookup when the gateway sets no store timeout:
// the lookup runs apart from the requests waiting for it.
const maxKeyLookup = 30 * time.Second

// maxCachedKeys bounds the cache; past it the cache starts over.
const maxCachedKeys = 100_000

type cachedKey struct {
	key     *keys.Key
	fetched time.Time
}

// keyCache keeps recently used keys in memory by secret hash, so that the
// request path hashes a secret and reads a map instead of querying the store.
// The requests that miss the same key at once share one lookup: when a busy
// key's entry expires, thousands of requests in flight would otherwise query
// the store together, and on a loaded core time out together (503s).
type keyCache struct {
	store   keys.Store
	clock   clock.Clock
	timeout time.Duration // bound on a store lookup; 0: ctx's
	mu      sync.RWMutex
	m       map[string]cachedKey
	fmu     sync.Mutex
	flights map[string]*keyFlight
}

// keyFlight is one store lookup that requests missing the same key wait for.
type keyFlight struct {
	done chan struct{}
	key  keys.Key
	err  error
}

func newKeyCache(s keys.Store, c clock.Clock, timeout time.Duration) *keyCache {
	return &keyCache{store: s, clock: c, timeout: timeout, m: map[string]cachedKey{}, flights: map[string]*keyFlight{}}
}

func (c *keyCache) get(ctx context.Context, secret string) (*keys.Key, error) {
	h := keys.Hash(secret)
	now := c.clock.Now()
	c.mu.RLock()
	ck, ok := c.m[h]
	c.mu.RUnlock()
	if ok && now.Sub(ck.fetched) < keyTTL {
		return ck.key, nil
	}
	c.fmu.Lock()
	f, waiting := c.flights[h]
	if !waiting {
		f = &keyFlight{done: make(chan struct{})}
		c.flights[h] = f
		// The lookup outlives a client that leaves: others may wait for it.
		go c.lookup(context.WithoutCancel(ctx), h, now, f)
	}
	c.fmu.Unlock()
	select {
	case <-f.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if f.err != nil {
		return nil, f.err
	}
	k := f.key
	return &k, nil
}

// lookup reads the key of hash h from the store for the flight f, caches
// it, and releases f's waiters.
func (c *keyCache) lookup(ctx context.Context, h string, now time.Time, f *keyFlight) {
	timeout := c.timeout
	if timeout <= 0 {
		timeout = maxKeyLookup
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	f.key, f.err = c.store.KeyByHash(ctx, h)
	if f.err == nil {
		k := f.key
		c.mu.Lock()
		if len(c.m) >= maxCachedKeys {
			c.m = map[string]cachedKey{}
		}
		c.m[h] = cachedKey{key: &k, fetched: now}
		c.mu.Unlock()
	}
	c.fmu.Lock()
	delete(c.flights, h)
	c.fmu.Unlock()
	close(f.done)
}

func (c *keyCache) invalidate() {
	c.mu.Lock()
	c.m = map[string]cachedKey{}
	c.mu.Unlock()
}
