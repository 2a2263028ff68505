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

// maxCachedKeys bounds the cache; past it the cache starts over.
const maxCachedKeys = 100_000

type cachedKey struct {
	key     *keys.Key
	fetched time.Time
}

// keyCache keeps recently used keys in memory by secret hash, so that the
// request path hashes a secret and reads a map instead of querying the store.
type keyCache struct {
	store   keys.Store
	clock   clock.Clock
	timeout time.Duration // bound on a store lookup; 0: ctx's
	mu      sync.RWMutex
	m       map[string]cachedKey
}

func newKeyCache(s keys.Store, c clock.Clock, timeout time.Duration) *keyCache {
	return &keyCache{store: s, clock: c, timeout: timeout, m: map[string]cachedKey{}}
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
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	k, err := c.store.KeyByHash(ctx, h)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	if len(c.m) >= maxCachedKeys {
		c.m = map[string]cachedKey{}
	}
	c.m[h] = cachedKey{key: &k, fetched: now}
	c.mu.Unlock()
	return &k, nil
}

func (c *keyCache) invalidate() {
	c.mu.Lock()
	c.m = map[string]cachedKey{}
	c.mu.Unlock()
}
