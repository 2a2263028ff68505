package billing

import (
	"context"
	"errors"
	"testing"

	"baimo/internal/clock"
	"baimo/internal/ledger"
	"baimo/internal/usage"
)

// boundedPrompt is a prompt of n tokens whose bound, known without
// counting, is bound; it counts how often it was counted.
type boundedPrompt struct {
	n, bound int64
	counted  bool // PromptBound reports false, as after a count
	counts   int
}

func (p *boundedPrompt) PromptTokens() (int64, bool) { p.counts++; return p.n, true }
func (p *boundedPrompt) PromptBound() (int64, bool)  { return p.bound, !p.counted }

// A prepaid hold is placed at the prompt's bound when the balance covers it
// (the prompt is not counted), and at the exact worst case, counted, when
// only that fits: never below the exact worst case, never refused when the
// exact one fits, and an output limit lowered only as far as the exact
// count needs.
func TestHoldAtPromptBound(t *testing.T) {
	r := testRater(t)
	const n, bound = 1000, 3000
	worst := func(prompt, out int64) int64 { return rate(t, r, "cheap", usage.Usage{Input: prompt, Output: out}) }
	for _, tt := range []struct {
		name      string
		available int64
		counted   bool
		maxOutput int64
		wantHeld  int64
		wantOut   int64
		counts    int
		refused   bool
	}{
		{"balance covers the bound: held at it, never counted", worst(bound, 100), false, 100, worst(bound, 100), 100, 0, false},
		{"only the exact worst case fits: counted and held at it", worst(bound, 100) - 1, false, 100, worst(n, 100), 100, 1, false},
		{"the exact worst case to the nano", worst(n, 100), false, 100, worst(n, 100), 100, 1, false},
		{"not even the exact worst case: refused", worst(n, 100) - 1, false, 100, 0, 0, 1, true},
		{"counted already: held at the count", 1 << 60, true, 100, worst(n, 100), 100, 1, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			books := &fakeBooks{available: tt.available, kind: ledger.Prepaid}
			b := New(Options{Rater: r, Books: books, Log: quiet()})
			defer b.Close(context.Background())
			p := &boundedPrompt{n: n, bound: bound, counted: tt.counted}
			req := Request{ID: "r", Model: "m", Upstreams: []string{"cheap"}, MaxOutput: tt.maxOutput, Start: t0, Prompt: p}
			tk, err := b.Admit(context.Background(), &req)
			if tt.refused {
				var ie *InsufficientError
				if !errors.As(err, &ie) || ie.Need != worst(n, 100) {
					t.Fatalf("err %v, want insufficient funds needing the exact worst case %d", err, worst(n, 100))
				}
			} else if err != nil {
				t.Fatal(err)
			} else if tk.Held != tt.wantHeld || tk.Output != tt.wantOut || len(books.holds) != 1 || books.holds[0].Amount.Nanos != tt.wantHeld {
				t.Fatalf("held %d output %d (holds %+v), want %d output %d", tk.Held, tk.Output, books.holds, tt.wantHeld, tt.wantOut)
			}
			if p.counts != tt.counts {
				t.Fatalf("prompt counted %d times, want %d", p.counts, tt.counts)
			}
		})
	}
}

// Without an output limit, a balance that covers neither the bound's nor
// the exact worst case lowers the output to what the exact count leaves,
// as for a prompt that has no bound.
func TestLoweredOutputUsesTheExactPrompt(t *testing.T) {
	r := testRater(t)
	admit := func(p PromptCounter, available int64) *Ticket {
		books := &fakeBooks{available: available, kind: ledger.Prepaid}
		b := New(Options{Rater: r, Books: books, Log: quiet()})
		defer b.Close(context.Background())
		req := Request{ID: "r", Model: "m", Upstreams: []string{"cheap"}, Start: t0, Prompt: p}
		tk, err := b.Admit(context.Background(), &req)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	available := rate(t, r, "cheap", usage.Usage{Input: 1000, Output: 777})
	want := admit(prompt(1000, true), available)
	got := admit(&boundedPrompt{n: 1000, bound: 50_000}, available)
	if !want.Lowered || got.Output != want.Output || got.Held != want.Held || got.Lowered != want.Lowered {
		t.Fatalf("bounded prompt: output %d held %d lowered %v; counted prompt: output %d held %d lowered %v",
			got.Output, got.Held, got.Lowered, want.Output, want.Held, want.Lowered)
	}
}

// A free-tier account reserves the prompt against token quotas, which need
// the count: its prompt is counted and reserved exactly. Other tenants of a
// gateway with a free tier are not counted.
func TestFreeTierCountsThePrompt(t *testing.T) {
	for _, tt := range []struct {
		tenant  string
		counts  int
		reserve int64 // tokens reserved against the free tier's quota
	}{{"c1", 1, 1000 + 100}, {"biz", 0, 0}} {
		t.Run(tt.tenant, func(t *testing.T) {
			r := testRater(t)
			r.Free = map[string]bool{"m": true}
			ft := newFreeTier(1<<40, 1<<20, &fakeTotals{}, clock.NewFake(t0))
			b := New(Options{Rater: r, Books: &fakeBooks{available: 1 << 60, kind: ledger.Prepaid}, Log: quiet(), FreeTier: ft})
			defer b.Close(context.Background())
			p := &boundedPrompt{n: 1000, bound: 3000}
			req := Request{ID: "r", TenantID: tt.tenant, Model: "m", Upstreams: []string{"cheap"}, MaxOutput: 100, Start: t0, Prompt: p}
			if _, err := b.Admit(context.Background(), &req); err != nil {
				t.Fatal(err)
			}
			var reserved int64
			if c := ft.counts[tt.tenant]; c != nil {
				reserved = c.inflightTokens
			}
			if p.counts != tt.counts || reserved != tt.reserve {
				t.Fatalf("prompt counted %d times, %d tokens reserved; want %d, %d", p.counts, reserved, tt.counts, tt.reserve)
			}
		})
	}
}
