package gateway_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/money"
	"baimo/internal/provider/ir"
	"baimo/internal/usage"
)

// fakeBiller is a gateway.Biller whose answers its function fields give;
// it keeps the records it is handed.
type fakeBiller struct {
	admit func(r *billing.Request) (*billing.Ticket, error)
	quote func(r *billing.Request) (billing.Quote, error)
	check func(model, upstream string) error

	mu   sync.Mutex
	reqs []billing.Request
	recs []usage.Record
}

func (f *fakeBiller) Admit(_ context.Context, r *billing.Request) (*billing.Ticket, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, *r)
	f.mu.Unlock()
	if f.admit == nil {
		return &billing.Ticket{}, nil
	}
	return f.admit(r)
}

func (f *fakeBiller) Quote(r *billing.Request) (billing.Quote, error) {
	f.mu.Lock()
	f.reqs = append(f.reqs, *r)
	f.mu.Unlock()
	return f.quote(r)
}

func (f *fakeBiller) Check(model, upstream string, _ time.Time) error {
	if f.check == nil {
		return nil
	}
	return f.check(model, upstream)
}

func (f *fakeBiller) Cost(string, string, string, int64, int64, time.Time) (int64, bool) {
	return 0, false
}

func (f *fakeBiller) Finish(_ *billing.Ticket, rec usage.Record) (<-chan struct{}, error) {
	f.mu.Lock()
	f.recs = append(f.recs, rec)
	f.mu.Unlock()
	done := make(chan struct{})
	close(done)
	return done, nil
}

func (f *fakeBiller) Checkpoint(*billing.Ticket, usage.Record) {}

// billed is a gateway in front of one upstream, billing with a fakeBiller.
type billed struct {
	url, secret string
	gw          *gateway.Gateway
	key         keys.Key
	calls       *int
}

func newBilled(t *testing.T, b *fakeBiller, mutate ...func(*gateway.Options)) *billed {
	t.Helper()
	calls := 0
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls++
		status(200, `{"id":"x","choices":[{"message":{"content":"ok"}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}`)(w, r)
	}))
	t.Cleanup(up.Close)
	ch := gateway.NewChannel(config.Channel{Name: "up", Kind: "openai", BaseURL: up.URL + "/v1",
		Models: config.ModelMap{"gpt-test": "upstream-model", "barred": "barred"}})
	ks := &fakeKeys{m: map[string]keys.Key{}}
	secret, k, _ := keys.Generate()
	k.ID, k.TenantID, k.Models = "key_t", "acme", []string{"gpt-test", "other"}
	_ = ks.CreateKey(context.Background(), k)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	opt := gateway.Options{Channels: []*gateway.Channel{ch}, Keys: ks, Log: log, Limits: config.Default().Limits, Billing: b}
	for _, m := range mutate {
		m(&opt)
	}
	gw, err := gateway.New(opt)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&httpapi.Server{GW: gw, Log: log}).Handler())
	t.Cleanup(srv.Close)
	return &billed{url: srv.URL, secret: secret, gw: gw, key: k, calls: &calls}
}

func (b *billed) post(t *testing.T, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", b.url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+b.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, string(out)
}

// TestBillingRefusalsAnswered: each refusal of billing is the client's error
// the one mapping words (status, code, the parameter to change), before any
// upstream call; the refusals for want of money (429) are recorded as such.
func TestBillingRefusalsAnswered(t *testing.T) {
	reset := time.Now().Add(time.Hour).Truncate(time.Second)
	for _, tt := range []struct {
		name         string
		err          error
		status       int
		code, param  string
		text         string
		insufficient bool
	}{
		{"not enough money", &billing.InsufficientError{Need: 1_500_000_000, Currency: money.CNY}, 429, "insufficient_quota", "", "1.5 CNY", true},
		{"a budget used up", fmt.Errorf("%w: x", billing.ErrBudgetExceeded), 429, "budget_exceeded", "", "spending budget", true},
		{"the free tier's quota", &billing.QuotaError{What: "tokens", Limit: 1000, Reset: reset}, 429, "free_quota_exceeded", "",
			"daily quota of 1000 tokens", true},
		{"another currency", &billing.CurrencyError{TenantID: "acme", Tenant: money.USD, Billing: money.CNY}, 403, "billing_currency_mismatch", "",
			"billed in USD, but the gateway bills in CNY", false},
		{"no account", billing.ErrNoAccount, 403, "no_account", "", "no billing account", false},
		{"a priced model on the free tier", billing.ErrNotFree, 403, "model_not_free", "model", "gpt-test is not free", false},
		{"too many choices", &billing.LimitError{What: "choices", Value: 9, Max: 8, Model: "gpt-test"}, 400, "", "n",
			"At most 8 choices", false},
		{"too much output", &billing.LimitError{What: "output", Value: 9000, Max: 8000, Model: "gpt-test"}, 400, "", "max_tokens",
			"max_tokens is too large: 9000", false},
		{"no price", &billing.NotPricedError{Model: "gpt-test", Currency: money.CNY}, 400, "model_not_priced", "model",
			"No price for model gpt-test in CNY", false},
		{"the store away", &billing.UnavailableError{What: "reserve the request's cost", Err: errors.New("down")}, 503, "", "",
			"cannot reserve the request's cost", false},
		{"anything else", errors.New("boom"), 500, "", "", "", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fb := &fakeBiller{admit: func(*billing.Request) (*billing.Ticket, error) { return nil, tt.err }}
			b := newBilled(t, fb)
			resp, body := b.post(t, chatReq)
			if resp.StatusCode != tt.status || *b.calls != 0 {
				t.Fatalf("got %d %s after %d upstream calls, want %d before any", resp.StatusCode, body, *b.calls, tt.status)
			}
			if (tt.code != "" && !strings.Contains(body, `"code":"`+tt.code+`"`)) ||
				(tt.param != "" && !strings.Contains(body, `"param":"`+tt.param+`"`)) || !strings.Contains(body, tt.text) {
				t.Errorf("body %s, want code %q, param %q, text %q", body, tt.code, tt.param, tt.text)
			}
			if err := b.gw.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			fb.mu.Lock()
			defer fb.mu.Unlock()
			if len(fb.recs) != 1 || fb.recs[0].Status != tt.status || (fb.recs[0].ErrorClass == usage.ErrInsufficient) != tt.insufficient {
				t.Errorf("records %+v, want one of status %d, insufficient %v", fb.recs, tt.status, tt.insufficient)
			}
		})
	}
}

// TestAdmissionAsksBillingAboutTheRequest: billing is asked about the
// request as the client sent it (its tenant, key, model, the channels'
// models, its output limit and choices, a prompt counted once), and the
// chosen channel's model is checked for a price before the upstream call.
func TestAdmissionAsksBillingAboutTheRequest(t *testing.T) {
	for _, tt := range []struct {
		name   string
		check  error
		status int
	}{
		{"priced", nil, 200},
		{"no price at the channel's model", &billing.NotPricedError{Model: "gpt-test", Currency: money.CNY}, 400},
		{"a catalog fault", errors.New("catalog broken"), 500},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var checked []string
			fb := &fakeBiller{check: func(model, upstream string) error {
				checked = append(checked, model+" as "+upstream)
				return tt.check
			}}
			b := newBilled(t, fb)
			resp, body := b.post(t, `{"model":"gpt-test","max_tokens":77,"n":2,"messages":[{"role":"user","content":"hello there"}]}`)
			if resp.StatusCode != tt.status || (tt.status != 200) != (*b.calls == 0) {
				t.Fatalf("got %d %s after %d upstream calls", resp.StatusCode, body, *b.calls)
			}
			if tt.status == 400 && !strings.Contains(body, `"code":"model_not_priced"`) {
				t.Errorf("body %s, want model_not_priced", body)
			}
			if len(checked) != 1 || checked[0] != "gpt-test as upstream-model" {
				t.Errorf("checked %q", checked)
			}
			fb.mu.Lock()
			defer fb.mu.Unlock()
			if len(fb.reqs) != 1 {
				t.Fatalf("billing asked %d times", len(fb.reqs))
			}
			r := fb.reqs[0]
			if r.ID == "" || r.ID != resp.Header.Get("X-Request-Id") || r.TenantID != "acme" || r.KeyID != "key_t" || r.Model != "gpt-test" ||
				len(r.Upstreams) != 1 || r.Upstreams[0] != "upstream-model" || r.MaxOutput != 77 || r.Choices != 2 || r.Batch || r.HeldAhead != 0 {
				t.Errorf("billing asked about %+v", r)
			}
			n1, exact1 := r.Prompt.PromptTokens()
			n2, exact2 := r.Prompt.PromptTokens()
			if n1 <= 0 || n1 != n2 || exact1 != exact2 {
				t.Errorf("prompt counted %d (%v) then %d (%v)", n1, exact1, n2, exact2)
			}
		})
	}
}

// TestQuoteHold: the hold a request would take is billing's quote for the
// channels that serve the model, with the prompt as counted; no quote for a
// model no channel serves or the key may not use; billing's refusal is the
// client's error the request would get.
func TestQuoteHold(t *testing.T) {
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	want := billing.Quote{Amount: 12345, Output: 77, Held: true}
	var quoteErr error
	fb := &fakeBiller{quote: func(r *billing.Request) (billing.Quote, error) { return want, quoteErr }}
	b := newBilled(t, fb)
	q, served, aerr := b.gw.QuoteHold(&b.key, "gpt-test", 500, false, 77, 3, true, at)
	if q != want || !served || aerr != nil {
		t.Fatalf("QuoteHold = %+v, %v, %v", q, served, aerr)
	}
	r := fb.reqs[0]
	n, exact := r.Prompt.PromptTokens()
	if r.TenantID != "acme" || r.KeyID != "key_t" || r.Model != "gpt-test" || len(r.Upstreams) != 1 || r.Upstreams[0] != "upstream-model" ||
		r.MaxOutput != 77 || r.Choices != 3 || !r.Batch || !r.Start.Equal(at) || n != 500 || exact {
		t.Errorf("quoted %+v (prompt %d, exact %v)", r, n, exact)
	}
	for _, model := range []string{"nope", "barred"} { // no channel; a channel, but not for this key
		if q, served, aerr := b.gw.QuoteHold(&b.key, model, 500, true, 0, 1, false, at); served || aerr != nil || q != (billing.Quote{}) {
			t.Errorf("QuoteHold(%s) = %+v, %v, %v; want not served", model, q, served, aerr)
		}
	}
	if len(fb.reqs) != 1 {
		t.Errorf("billing quoted %d times, want only the served model", len(fb.reqs))
	}
	quoteErr = &billing.LimitError{What: "choices", Value: 3, Max: 2, Model: "gpt-test"}
	if _, served, aerr := b.gw.QuoteHold(&b.key, "gpt-test", 500, true, 0, 3, false, at); !served || aerr == nil || aerr.Status != 400 ||
		!strings.Contains(aerr.Message, "At most 2 choices") {
		t.Errorf("QuoteHold past the choices = served %v, %+v", served, aerr)
	}
}

// fakeCounter counts every prompt as 42 tokens and every text as 7, from
// src, and counts the prompts it counted.
type fakeCounter struct {
	src     usage.Source
	prompts atomic.Int32
}

func (c *fakeCounter) CountPrompt(string, ir.Prompt) (int64, usage.Source) {
	c.prompts.Add(1)
	return 42, c.src
}

func (c *fakeCounter) CountText(string, []byte) (int64, usage.Source) { return 7, c.src }

// TestPromptCountForBilling: billing gets the prompt's count and whether it
// is exact (an estimate is held with a margin), counted once however often
// it is asked.
func TestPromptCountForBilling(t *testing.T) {
	for _, tt := range []struct {
		src   usage.Source
		exact bool
	}{
		{usage.SourceCounted, true},
		{usage.SourceEstimated, false},
	} {
		fb := &fakeBiller{}
		counter := &fakeCounter{src: tt.src}
		b := newBilled(t, fb, func(o *gateway.Options) { o.Counter = counter })
		if resp, body := b.post(t, chatReq); resp.StatusCode != 200 {
			t.Fatalf("got %d %s", resp.StatusCode, body)
		}
		fb.mu.Lock()
		r := fb.reqs[0]
		fb.mu.Unlock()
		for range 2 {
			if n, exact := r.Prompt.PromptTokens(); n != 42 || exact != tt.exact {
				t.Errorf("%s count: billing got %d, exact %v; want 42, exact %v", tt.src, n, exact, tt.exact)
			}
		}
		if got := counter.prompts.Load(); got != 1 {
			t.Errorf("%s count: the prompt was counted %d times, want once", tt.src, got)
		}
	}
}
