package gateway_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"baimo/catalog"
	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/keys"
	"baimo/internal/ledger"
)

// stalledKeys is a keys.Store whose lookups wait for their context while
// stalled is set, as over a partitioned database.
type stalledKeys struct {
	keys.Store
	stalled atomic.Bool
}

func (s *stalledKeys) KeyByHash(ctx context.Context, h string) (keys.Key, error) {
	if s.stalled.Load() {
		<-ctx.Done()
		return keys.Key{}, ctx.Err()
	}
	return s.Store.KeyByHash(ctx, h)
}

// stalledBooks are books whose holds wait for their context.
type stalledBooks struct{ *fakeBooks }

func (stalledBooks) Hold(ctx context.Context, _ ledger.HoldRequest) (ledger.Hold, error) {
	<-ctx.Done()
	return ledger.Hold{}, ctx.Err()
}

type lockedBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestStoreAwayIsQuick503: with a database that does not answer, a request
// gets a 503 in its API's format within limits.store_timeout (whether the
// key lookup or the hold waits), never reaches the upstream, and the
// failure is logged.
func TestStoreAwayIsQuick503(t *testing.T) {
	cat, err := catalog.Load()
	if err != nil {
		t.Fatal(err)
	}
	const storeTimeout = 100 * time.Millisecond
	const bound = 20 * storeTimeout // only a wait that ignores the timeout fails
	for _, tt := range []struct {
		name, msg, logged string
		keysAway          bool
	}{
		{"key lookup", "cannot check API keys", `msg="cannot check API keys"`, true},
		{"hold", "cannot reserve the request's cost", `msg="request failed" request_id=`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var logs lockedBuf
			calls := atomic.Int64{}
			var sk *stalledKeys
			h := newMulti(t, []http.Handler{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls.Add(1)
				w.WriteHeader(200)
			})}, func(o *gateway.Options, b *billing.Options) {
				o.Limits.StoreTimeout = config.Duration(storeTimeout)
				b.StoreTimeout = storeTimeout
				o.Log = slog.New(slog.NewTextHandler(&logs, nil))
				sk = &stalledKeys{Store: o.Keys}
				o.Keys = sk
				o.Channels[0].Models["other"] = "deepseek-chat"
				b.Rater = &billing.Rater{Catalog: cat, Currency: "CNY"}
				b.Books = stalledBooks{&fakeBooks{recs: b.Records.(*records)}}
			})
			sk.stalled.Store(tt.keysAway)
			start := time.Now()
			resp, body := h.post(t, "/v1/chat/completions", `{"model":"other","max_tokens":50,"messages":[{"role":"user","content":"hello"}]}`)
			took := time.Since(start)
			if resp.StatusCode != 503 || !strings.Contains(body, `"error"`) || !strings.Contains(body, tt.msg) {
				t.Fatalf("got %d %s, want a 503 saying %q", resp.StatusCode, body, tt.msg)
			}
			if took > bound {
				t.Errorf("the 503 came after %s; store_timeout is %s", took, storeTimeout)
			}
			if calls.Load() != 0 {
				t.Errorf("the upstream was called %d times", calls.Load())
			}
			if !strings.Contains(logs.String(), tt.logged) {
				t.Errorf("the 503 was not logged (%s): %q", tt.logged, logs.String())
			}
		})
	}
}
