package alert

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

func TestWebhookDeliversWithRetries(t *testing.T) {
	var mu sync.Mutex
	var got []Event
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			w.WriteHeader(503) // the first try fails; the sender retries
			return
		}
		var e Event
		if err := json.NewDecoder(r.Body).Decode(&e); err != nil || r.Header.Get("Content-Type") != "application/json" {
			t.Errorf("bad post: %v", err)
		}
		got = append(got, e)
	}))
	defer srv.Close()
	w := NewWebhook(srv.URL, slog.New(slog.NewTextHandler(io.Discard, nil)))
	w.Send(Event{Kind: "budget_threshold", Subject: "acme", Percent: 80, Spent: "8", Limit: "10"})
	w.Send(Event{Kind: "budget_threshold", Subject: "acme", Percent: 100, Spent: "10", Limit: "10"})
	w.Close()
	if len(got) != 2 || got[0].Percent != 80 || got[1].Percent != 100 || calls != 3 {
		t.Errorf("delivered %+v in %d calls", got, calls)
	}
}
