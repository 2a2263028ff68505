package httpapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"baimo/internal/billing"
	"baimo/internal/clock"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/route"
	"baimo/internal/store/sqlite"
)

// routingRecorder is a fake httpapi.RoutingRecorder.
type routingRecorder struct {
	record func(ctx context.Context, e route.Event) error
}

func (f *routingRecorder) Record(ctx context.Context, e route.Event) error { return f.record(ctx, e) }

// The admin API's unpark and reset are applied on this node and then passed
// to Server.RoutingEvents for the other nodes; a failure to record them is
// reported in the answer, not as an error (the change was applied). Unknown
// channels are neither applied nor recorded.
func TestAdminRoutingRecorded(t *testing.T) {
	db, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	clk := clock.NewFake(time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC))
	bill := billing.New(billing.Options{Records: db, Log: log})
	t.Cleanup(func() { _ = bill.Close(context.Background()) })
	gw, err := gateway.New(gateway.Options{Keys: db, Billing: bill, Log: log, Limits: config.Default().Limits, Clock: clk,
		Channels: []*gateway.Channel{gateway.NewChannel(config.Channel{Name: "x", Kind: "openai", BaseURL: "http://127.0.0.1:1",
			Models: config.ModelMap{"sim-chat": "sim-chat"}})}})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex // the handler runs on the server's goroutine
	var got []route.Event
	var fail error
	rec := &routingRecorder{record: func(_ context.Context, e route.Event) error {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, e)
		return fail
	}}
	api := &httpapi.Server{GW: gw, Store: db, AdminKeyHash: keys.Hash("adm"), Clock: clk, Log: log, RoutingEvents: rec}
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	e := &env{url: srv.URL, clock: clk}

	if err := gw.Router().Park("x", "k0", "key:http_401"); err != nil {
		t.Fatal(err)
	}
	if st, m := e.do(t, "POST", "/admin/routing/channels/x/keys/k0/unpark", "adm", ""); st != 200 || m["replicated"] != true {
		t.Errorf("unpark = %d %v, want 200 and replicated", st, m)
	}
	if n := len(gw.Router().Parked()); n != 0 {
		t.Errorf("%d keys still parked after unpark", n)
	}
	mu.Lock()
	fail = errors.New("database down")
	mu.Unlock()
	if st, m := e.do(t, "POST", "/admin/routing/channels/x/reset", "adm", ""); st != 200 || m["replicated"] != false {
		t.Errorf("reset with the recorder failing = %d %v, want 200 and replicated false", st, m)
	}
	if st, _ := e.do(t, "POST", "/admin/routing/channels/nope/reset", "adm", ""); st != 404 {
		t.Errorf("reset of an unknown channel = %d, want 404", st)
	}
	if st, _ := e.do(t, "POST", "/admin/routing/channels/x/keys/nope/unpark", "adm", ""); st != 404 {
		t.Errorf("unpark of an unknown key = %d, want 404", st)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 2 || got[0].Kind != route.EventUnpark || got[0].Channel != "x" || got[0].Key != "k0" ||
		got[1].Kind != route.EventReset || got[1].Channel != "x" || got[1].Key != "" {
		t.Errorf("recorded %+v, want the unpark of x/k0 and the reset of x", got)
	}
}
