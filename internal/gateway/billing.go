package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/ledger"
	"baimo/internal/money"
)

// Holder reserves a request's worst-case cost before the upstream call
// (ledger.Ledger). Settlement happens with the usage record, in the
// recorder's batch.
type Holder interface {
	Hold(ctx context.Context, r ledger.HoldRequest) (ledger.Hold, error)
}

// promptTokens counts the request's prompt once (the hold, the rate limits
// and the cost policy all need it).
func (g *Gateway) promptTokens(req *request, body []byte) int64 {
	if !req.promptCounted {
		req.prompt, _ = g.opt.Counter.CountPrompt(req.model, body)
		req.promptCounted = true
	}
	return req.prompt
}

// worstCase is the most a request can cost: its prompt plus the output it may
// produce (max_tokens, capped), at the dearest channel that serves the model,
// since failover may end there.
func (g *Gateway) worstCase(req *request, body []byte) (int64, bool) {
	prompt := g.promptTokens(req, body)
	out := req.maxTokens
	if out <= 0 || out > g.opt.MaxTokensCap {
		out = g.opt.MaxTokensCap
	}
	if req.endpoint.Name == Embeddings.Name {
		out = 0
	}
	var worst int64
	priced := false
	for _, ch := range g.byModel[req.model] {
		if c, ok := g.opt.Rater.Cost(req.key.TenantID, req.model, ch.Models[req.model], prompt, out, req.start); ok {
			priced = true
			worst = max(worst, c)
		}
	}
	return worst, priced
}

// hold reserves the worst-case cost of the request on its tenant's account.
// Not enough balance or credit is a 429 insufficient_quota, before any
// upstream call.
func (g *Gateway) hold(ctx context.Context, req *request, body []byte) *apierr.Error {
	if g.opt.Ledger == nil || g.opt.Rater == nil || g.opt.Rater.Free[req.model] {
		return nil
	}
	amount, ok := g.worstCase(req, body)
	if !ok {
		return nil // unpriced: refused by the rater before the upstream call
	}
	h, err := g.opt.Ledger.Hold(ctx, ledger.HoldRequest{RequestID: req.id, TenantID: req.key.TenantID, KeyID: req.key.ID,
		Amount: money.Amount{Nanos: amount, Currency: g.opt.Rater.Currency}, TTL: g.opt.Limits.RequestTimeout.D() + 5*time.Minute})
	switch {
	case err == nil && h.State != ledger.HoldPending:
		// Request ids are unique (see RequestID), so an existing hold in
		// another state means something is badly wrong: do not serve unpaid.
		return apierr.Internal(fmt.Errorf("hold %s exists in state %s", req.id, h.State))
	case err == nil:
		return nil
	case errors.Is(err, ledger.ErrBudgetExceeded):
		return &apierr.Error{Status: 429, Type: "insufficient_quota", Code: "budget_exceeded",
			Message: "This API key or tenant has reached its spending budget for the period.", Cause: err}
	case errors.Is(err, ledger.ErrInsufficientFunds):
		return &apierr.Error{Status: 429, Type: "insufficient_quota", Code: "insufficient_quota",
			Message: fmt.Sprintf("You exceeded your current quota: the account cannot cover this request's worst-case cost of %s %s (its prompt plus max_tokens). Top up, or lower max_tokens.",
				money.FormatNanos(amount), g.opt.Rater.Currency), Cause: err}
	case errors.Is(err, ledger.ErrNotFound):
		return &apierr.Error{Status: 403, Type: "permission_error", Code: "no_account",
			Message: "This API key's tenant has no billing account.", Cause: err}
	default:
		return apierr.Unavailable("The gateway cannot reserve the request's cost right now; retry.", err)
	}
}
