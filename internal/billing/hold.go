package billing

import (
	"fmt"
	"sync"
	"time"

	"baimo/internal/price"
	"baimo/internal/usage"
)

// HoldRules size the worst case a request may cost.
//
// The hold is the request's true worst case: its prompt (counted with the
// model's tokenizer; an estimated count is held with a margin) priced at the
// dearest way the vendor could bill it (cache writes, reasoning priced
// apart), plus the output the request may really produce: the client's
// limit, up to the model's maximum from the catalog, times the number of
// choices, at the dearest channel that may serve it, since failover may end
// there.
type HoldRules struct {
	// DefaultOutput is the output per choice held when neither the client
	// nor the catalog gives a limit; default 4096.
	DefaultOutput int64
	// MaxChoices bounds n (candidateCount); more is refused. Default 16.
	MaxChoices int64
	// MaxOutput bounds a client's output limit when the catalog knows no
	// maximum for the model; default 1,000,000.
	MaxOutput int64
	// MinOutput is the least output a lowered limit may leave: a prepaid
	// balance that cannot pay for this many tokens is refused. Default 64.
	MinOutput int64
}

func (h *HoldRules) defaults() {
	if h.DefaultOutput <= 0 {
		h.DefaultOutput = 4096
	}
	if h.MaxChoices <= 0 {
		h.MaxChoices = 16
	}
	if h.MaxOutput <= 0 {
		h.MaxOutput = 1_000_000
	}
	if h.MinOutput <= 0 {
		h.MinOutput = 64
	}
}

// LimitError says a request asks for more than a model or the gateway
// allows: an output limit above the model's maximum, or too many choices.
type LimitError struct {
	What  string // "output" (max_tokens and its kin) or "choices" (n)
	Value int64
	Max   int64
	Model string
}

func (e *LimitError) Error() string {
	if e.What == "choices" {
		return fmt.Sprintf("billing: %d choices asked, at most %d are served", e.Value, e.Max)
	}
	return fmt.Sprintf("billing: %d output tokens asked, %s produces at most %d", e.Value, e.Model, e.Max)
}

// worstCase is what admission decided a request may cost.
type worstCase struct {
	prompt  int64 // prompt tokens held (with the margin of an estimate)
	output  int64 // output per choice the hold covers; 0 when no output
	choices int64
	amount  int64 // nanos, at the dearest candidate
	priced  bool  // some candidate has a price
	free    bool  // the model costs nothing (marked free, or priced at 0)
	bounded bool  // prompt is the request's PromptBound, not its count
}

// tokens is the token total reserved against quotas.
func (w *worstCase) tokens() int64 { return w.prompt + w.output*w.choices }

// estimateMargin is added to an estimated prompt count: the estimator is
// calibrated to within a few percent on ordinary text; the margin covers the
// rest so that a hostile prompt cannot cost much more than its hold.
func estimateMargin(n int64) int64 { return n/4 + 16 }

// worst computes the worst case of r with its prompt counted.
func (b *Biller) worst(r *Request) (worstCase, error) { return b.worstOf(r, false) }

// worstOf computes the worst case of r; with bounded, the prompt is held at
// its PromptBound when r.Prompt gives one (uncounted).
func (b *Biller) worstOf(r *Request, bounded bool) (worstCase, error) {
	rules := b.opt.Holds
	w := worstCase{choices: max(r.Choices, 1)}
	if w.choices > rules.MaxChoices {
		return w, &LimitError{What: "choices", Value: w.choices, Max: rules.MaxChoices, Model: r.Model}
	}
	rater := b.opt.Rater
	if r.NoOutput {
		w.choices = 1
	} else {
		// The limit must be one some candidate can serve; the hold covers,
		// per candidate, the client's limit or that model's maximum.
		var most int64
		known := false
		for _, up := range r.Upstreams {
			if m, ok := rater.maxOutput(r.Model, up, r.Start); ok {
				most, known = max(most, m), true
			}
		}
		if !known {
			most = rules.MaxOutput
		}
		if r.MaxOutput > most {
			return w, &LimitError{What: "output", Value: r.MaxOutput, Max: most, Model: r.Model}
		}
	}
	if b.needsPrompt() {
		var bound int64
		if pb, ok := r.Prompt.(PromptBounder); ok && bounded {
			bound, w.bounded = pb.PromptBound()
		}
		switch {
		case w.bounded:
			w.prompt = bound
		case r.Prompt != nil:
			n, exact := r.Prompt.PromptTokens()
			if !exact {
				n += estimateMargin(n)
			}
			w.prompt = n
		}
	}
	if rater == nil || rater.Free[r.Model] {
		w.free, w.output = true, b.outputFor(r, "")
		return w, nil
	}
	for _, up := range r.Upstreams {
		out := b.outputFor(r, up)
		c, ok := rater.worstCost(r, up, w.prompt, out*w.choices)
		if !ok {
			continue
		}
		if !w.priced || c > w.amount {
			w.amount = c
		}
		w.priced = true
		w.output = max(w.output, out)
	}
	w.free = w.priced && w.amount == 0
	if !w.priced {
		w.output = b.outputFor(r, "")
	}
	return w, nil
}

// needsPrompt says whether admission needs the prompt's token count.
func (b *Biller) needsPrompt() bool {
	return b.opt.FreeTier != nil || (b.opt.Books != nil && b.opt.Rater != nil)
}

// outputFor is the output per choice a request may produce at upstream:
// the client's limit, else the model's maximum, else the default.
func (b *Biller) outputFor(r *Request, upstream string) int64 {
	if r.NoOutput {
		return 0
	}
	if r.MaxOutput > 0 {
		return r.MaxOutput
	}
	if upstream != "" {
		if m, ok := b.opt.Rater.maxOutput(r.Model, upstream, r.Start); ok {
			return m
		}
	}
	return b.opt.Holds.DefaultOutput
}

// affordable finds the largest output per choice, at least MinOutput, whose
// worst case fits in available, and that worst case.
func (b *Biller) affordable(r *Request, w *worstCase, available int64) (out, amount int64, ok bool) {
	cost := func(o int64) (int64, bool) {
		var worst int64
		priced := false
		for _, up := range r.Upstreams {
			if c, ok := b.opt.Rater.worstCost(r, up, w.prompt, o*w.choices); ok {
				worst, priced = max(worst, c), true
			}
		}
		return worst, priced
	}
	lo, hi := b.opt.Holds.MinOutput, w.output
	c, priced := cost(lo)
	if !priced || c > available {
		return 0, 0, false
	}
	amount = c
	for lo < hi { // the largest o in [lo, hi] with cost(o) <= available
		mid := lo + (hi-lo+1)/2
		if c, _ := cost(mid); c <= available {
			lo, amount = mid, c
		} else {
			hi = mid - 1
		}
	}
	return lo, amount, true
}

// worstCost is the most prompt and out tokens can cost at a channel's model:
// the dearest of the ways the vendor may bill them (the prompt written to a
// 5-minute or 1-hour cache, the output spent on reasoning priced apart).
func (r *Rater) worstCost(req *Request, upstream string, prompt, out int64) (int64, bool) {
	if r.Free[req.Model] {
		return 0, true
	}
	rc := price.RateContext{Model: r.ratingModel(req.Model, upstream), At: req.Start, Batch: req.Batch, Currency: r.Currency,
		Rates: r.Rates, PriceList: r.PriceList(req.TenantID), Variant: req.Variant}
	lines := linePool.Get().(*[16]price.Line)
	defer linePool.Put(lines)
	u := req.Units // images, seconds of audio, characters: known from the request
	shapes := [...]usage.Usage{
		{Input: prompt, Output: out},
		{Input: prompt, Output: out, Reasoning: out},
		{Input: prompt, CacheWrite5m: prompt, Output: out, Reasoning: out},
		{Input: prompt, CacheWrite1h: prompt, Output: out, Reasoning: out},
	}
	var worst int64
	for i, s := range shapes {
		s.Images, s.AudioSeconds, s.Characters, s.SearchCalls = u.Images, u.AudioSeconds, u.Characters, u.SearchCalls
		rated, err := r.Catalog.Rate(s, rc, lines[:0])
		if err != nil {
			if i == 0 {
				return 0, false
			}
			continue
		}
		worst = max(worst, rated.Total.Nanos)
	}
	return worst, true
}

// linePool holds the scratch lines worstCost rates into (only the totals
// are kept; a fresh array per call was a tenth of a request's allocations).
var linePool = sync.Pool{New: func() any { return new([16]price.Line) }}

// maxOutput is the most a model served as upstream produces per answer,
// from the catalog; ok is false when the catalog does not say.
func (r *Rater) maxOutput(public, upstream string, at time.Time) (int64, bool) {
	if r == nil {
		return 0, false
	}
	info, ok := r.Catalog.Info(r.ratingModel(public, upstream), at)
	if !ok || info.MaxOutput <= 0 {
		return 0, false
	}
	return info.MaxOutput, true
}
