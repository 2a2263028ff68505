package gateway

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/billing"
	"baimo/internal/keys"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// Biller is the money side of the request path (*billing.Biller): it admits
// a request against its tenant's money before the upstream call, checks and
// costs channels while routing, and settles the request with its record.
type Biller interface {
	Admit(ctx context.Context, r *billing.Request) (*billing.Ticket, error)
	Quote(r *billing.Request) (billing.Quote, error)
	Check(model, upstream string, at time.Time) error
	Cost(tenantID, model, upstream string, prompt, out int64, at time.Time) (int64, bool)
	Finish(t *billing.Ticket, rec usage.Record) (<-chan struct{}, error)
	Checkpoint(t *billing.Ticket, rec usage.Record)
}

var _ Biller = (*billing.Biller)(nil)

// promptTokens counts the request's prompt once (the hold, the rate limits,
// the cost policy and a record without the vendor's usage all need it) and
// says whether the count is exact.
func (g *Gateway) promptTokens(req *request) (int64, bool) {
	if !req.prompt.counted {
		n, src := g.opt.Counter.CountPrompt(req.model, g.promptText(req))
		req.prompt.tokens, req.prompt.exact, req.prompt.counted = n, src != usage.SourceEstimated, true
	}
	return req.prompt.tokens, req.prompt.exact
}

// PromptTokens counts the request's prompt for billing (billing.PromptCounter).
func (r *request) PromptTokens() (int64, bool) { return r.gw.promptTokens(r) }

// PromptBound is a bound of the request's prompt tokens that needs no
// tokenizing (billing.PromptBounder); false once the prompt is counted.
func (r *request) PromptBound() (int64, bool) {
	if r.prompt.counted {
		return 0, false
	}
	return promptBound(r.gw.promptText(r)), true
}

// promptTokensSource is promptTokens with the source of the count.
func (g *Gateway) promptTokensSource(req *request) (int64, usage.Source) {
	n, exact := g.promptTokens(req)
	return n, source(exact)
}

// admitBilling admits the request against its tenant's money.
func (g *Gateway) admitBilling(ctx context.Context, req *request) *apierr.Error {
	req.bill = g.billRequest(req)
	t, err := g.opt.Billing.Admit(ctx, &req.bill)
	if err != nil {
		aerr := billingError(err, req)
		if aerr.Status == http.StatusTooManyRequests {
			req.rec.ErrorClass = usage.ErrInsufficient
		}
		return aerr
	}
	req.ticket = t
	return nil
}

// billRequest is what billing needs to know of the request.
func (g *Gateway) billRequest(req *request) billing.Request {
	b := billing.Request{ID: req.id, TenantID: req.key.TenantID, KeyID: req.key.ID, Model: req.model,
		Upstreams: req.tab.upstreams[req.model], NoOutput: req.endpoint.NoOutput, MaxOutput: req.adm.MaxOutput,
		Choices: req.adm.Choices, Start: req.start, Prompt: req, Units: req.adm.Units, Variant: req.adm.Variant}
	if req.line != nil {
		b.Batch, b.HeldAhead = true, req.line.HeldAhead
	}
	return b
}

// QuoteHold is the hold a request by key for model would take at at, by
// billing's one hold rule (Biller.Quote), holding nothing: its prompt
// tokens (exact says whether they were counted exactly; an estimate is held
// with a margin), the output limit per choice it sets (0: none) and its
// choices, at the dearest channel that serves the model. served is false
// when no channel serves the model or the key may not use it: no such
// request would be admitted, so there is no hold to show. The error is the
// one the request would get (an output limit beyond the model's, too many
// choices, no price).
func (g *Gateway) QuoteHold(key *keys.Key, model string, prompt int64, exact bool, maxOutput, choices int64, batch bool,
	at time.Time) (q billing.Quote, served bool, aerr *apierr.Error) {
	ups := g.chans.Load().upstreams[model]
	if len(ups) == 0 || !key.Allows(model) {
		return billing.Quote{}, false, nil
	}
	br := billing.Request{TenantID: key.TenantID, KeyID: key.ID, Model: model, Upstreams: ups, MaxOutput: maxOutput,
		Choices: choices, Start: at, Batch: batch, Prompt: countedPrompt{prompt, exact}}
	q, err := g.opt.Billing.Quote(&br)
	if err != nil {
		return q, true, billingError(err, &request{key: key, model: model})
	}
	return q, true, nil
}

// countedPrompt is a prompt counted already.
type countedPrompt struct {
	n     int64
	exact bool
}

func (c countedPrompt) PromptTokens() (int64, bool) { return c.n, c.exact }

// billingError maps a billing error to the client's error: the one place
// that words them.
func billingError(err error, req *request) *apierr.Error {
	var (
		ie *billing.InsufficientError
		qe *billing.QuotaError
		le *billing.LimitError
		np *billing.NotPricedError
		ue *billing.UnavailableError
		ce *billing.CurrencyError
	)
	switch {
	case errors.As(err, &ie):
		return &apierr.Error{Status: 429, Type: "insufficient_quota", Code: "insufficient_quota",
			Message: fmt.Sprintf("You exceeded your current quota: the account cannot cover this request's worst-case cost of %s %s (its prompt plus the output it may produce). Top up, or lower max_tokens.",
				money.FormatNanos(ie.Need), ie.Currency), Cause: err}
	case errors.Is(err, billing.ErrBudgetExceeded):
		return &apierr.Error{Status: 429, Type: "insufficient_quota", Code: "budget_exceeded",
			Message: "This API key or tenant has reached its spending budget for the period.", Cause: err}
	case errors.As(err, &ce):
		// The operator's configuration, not the client, must change: a
		// status clients do not retry.
		return &apierr.Error{Status: 403, Type: "permission_error", Code: "billing_currency_mismatch",
			Message: fmt.Sprintf("This API key's tenant is billed in %s, but the gateway bills in %s: the operator must fix the configuration (billing.currency) or the tenant. Retrying will not help.",
				ce.Tenant, ce.Billing), Cause: err}
	case errors.Is(err, billing.ErrNoAccount):
		return &apierr.Error{Status: 403, Type: "permission_error", Code: "no_account",
			Message: "This API key's tenant has no billing account.", Cause: err}
	case errors.Is(err, billing.ErrNotFree):
		return &apierr.Error{Status: 403, Type: "permission_error", Code: "model_not_free", Param: "model",
			Message: fmt.Sprintf("The free tier can use only free models; %s is not free.", req.model), Cause: err}
	case errors.As(err, &qe):
		return &apierr.Error{Status: 429, Type: "insufficient_quota", Code: "free_quota_exceeded",
			Message:    fmt.Sprintf("The free tier's daily quota of %d %s is used up; it resets at %s.", qe.Limit, qe.What, qe.Reset.Format(time.RFC3339)),
			RetryAfter: time.Until(qe.Reset), Cause: err}
	case errors.As(err, &le):
		if le.What == "choices" {
			return apierr.BadRequest(req.choicesParam(), "At most %d choices may be asked for in one request; %s asks for %d.", le.Max, req.choicesParam(), le.Value)
		}
		return apierr.BadRequest(req.maxTokensParam(), "%s is too large: %d. The model %s produces at most %d output tokens.",
			req.maxTokensParam(), le.Value, req.model, le.Max)
	case errors.As(err, &np):
		return notPriced(np)
	case errors.As(err, &ue):
		return apierr.Unavailable("The gateway cannot "+ue.What+" right now; retry.", err)
	}
	return apierr.Internal(err)
}

// notPriced is the error for a model that cannot be rated.
func notPriced(np *billing.NotPricedError) *apierr.Error {
	return &apierr.Error{Status: 400, Type: "invalid_request_error", Code: "model_not_priced", Param: "model",
		Message: fmt.Sprintf("No price for model %s in %s: the gateway refuses to serve it unpriced. An operator can add a price or mark it free.", np.Model, np.Currency),
		Cause:   np}
}

// checkPrice refuses, before the upstream call, a model the chosen channel
// serves without a price.
func (g *Gateway) checkPrice(req *request) *apierr.Error {
	err := g.opt.Billing.Check(req.model, req.rec.UpstreamModel, req.start)
	if err == nil {
		return nil
	}
	var np *billing.NotPricedError
	if errors.As(err, &np) {
		return notPriced(np)
	}
	return apierr.Internal(err)
}
