package gateway

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/keys"
)

// slowKeys is a key store whose lookups wait for release and are counted.
type slowKeys struct {
	keys.Store
	key     keys.Key
	lookups atomic.Int32
	release chan struct{}
}

func (s *slowKeys) KeyByHash(ctx context.Context, hash string) (keys.Key, error) {
	s.lookups.Add(1)
	select {
	case <-s.release:
	case <-ctx.Done():
		return keys.Key{}, ctx.Err()
	}
	if hash != s.key.Hash {
		return keys.Key{}, keys.ErrNotFound
	}
	return s.key, nil
}

// TestKeyCacheSharesALookup: requests that miss the same key at once (its
// entry expired under load) share one store lookup, a request whose client
// leaves stops waiting without failing the others, and the next expiry
// looks the key up once more.
func TestKeyCacheSharesALookup(t *testing.T) {
	secret, k, err := keys.Generate()
	if err != nil {
		t.Fatal(err)
	}
	k.ID = "key_1"
	store := &slowKeys{key: k, release: make(chan struct{})}
	clk := clock.NewFake(time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC))
	c := newKeyCache(store, clk, time.Minute)

	// The first of the requests leaves before the lookup ends.
	gone, leave := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() { _, err := c.get(gone, secret); first <- err }()
	for store.lookups.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	const n = 50
	var wg sync.WaitGroup
	got := make([]*keys.Key, n)
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() { defer wg.Done(); got[i], errs[i] = c.get(context.Background(), secret) }()
	}
	leave()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("a request whose client left: %v, want context.Canceled", err)
	}
	time.Sleep(20 * time.Millisecond) // the others are waiting on the flight
	close(store.release)
	wg.Wait()
	for i := range n {
		if errs[i] != nil || got[i] == nil || got[i].ID != "key_1" {
			t.Fatalf("request %d: %+v, %v", i, got[i], errs[i])
		}
	}
	if l := store.lookups.Load(); l != 1 {
		t.Fatalf("%d store lookups for %d requests missing one key at once, want 1", l, n+1)
	}
	// Cached: no lookup; expired: one more.
	if _, err := c.get(context.Background(), secret); err != nil || store.lookups.Load() != 1 {
		t.Fatalf("cached key: %v, %d lookups", err, store.lookups.Load())
	}
	clk.Advance(keyTTL)
	if _, err := c.get(context.Background(), secret); err != nil || store.lookups.Load() != 2 {
		t.Fatalf("expired key: %v, %d lookups, want 2", err, store.lookups.Load())
	}
	// An unknown secret is not found, and not cached.
	if _, err := c.get(context.Background(), "sk-nope"); !errors.Is(err, keys.ErrNotFound) {
		t.Fatalf("unknown secret: %v", err)
	}
}
