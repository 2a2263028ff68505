package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/billing"
	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/provider/ir"
)

// Prices is what the price routes need.
type Prices struct {
	Catalog *price.Catalog
	Store   price.Store
	// Currency is the currency quotes are given in.
	Currency money.Currency
	// Rates converts a price's currency into Currency.
	Rates *price.ExchangeRates
	// Lists keeps tenants' price lists; Rater applies them. Both nil leave the
	// price list routes out.
	Lists price.ListStore
	Rater *billing.Rater
	// CountPrompt counts the prompt tokens of a chat request body and says
	// whether the count is exact.
	CountPrompt func(model string, body []byte) (tokens int64, exact bool)
	// Lead is how far ahead a new version must start so that every node
	// has it first: price.PropagationBound when several nodes share the
	// database, 0 for a single node. "now" means now plus Lead.
	Lead time.Duration

	// mu serialises this node's price mutations: two calls that check the
	// catalog, then store and apply, must not interleave (the second would
	// find the first's version and refuse, or both would pass the check).
	mu sync.Mutex
}

func (s *Server) pricesRoutes(mux *http.ServeMux) {
	if s.Prices == nil {
		return
	}
	mux.HandleFunc("GET /v1/prices", s.listPrices)
	mux.HandleFunc("POST /v1/quote", s.quote)
	mux.HandleFunc("POST /admin/prices", s.admin(s.setPrice))
	mux.HandleFunc("POST /admin/prices/import", s.admin(s.importPrices))
	mux.HandleFunc("POST /admin/prices/retire", s.admin(s.retirePrice))
	mux.HandleFunc("GET /admin/prices", s.admin(s.listPriceVersions))
	if s.Prices.Lists != nil && s.Prices.Rater != nil {
		mux.HandleFunc("PUT /admin/tenants/{id}/price_list", s.admin(s.setPriceList))
		mux.HandleFunc("GET /admin/tenants/{id}/price_list", s.admin(s.getPriceList))
	}
}

func (s *Server) listPrices(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	o := price.ViewOptions{At: s.Clock.Now(), Vendor: q.Get("vendor"), Currency: money.Currency(strings.ToUpper(q.Get("currency"))),
		History: q.Get("history") == "1" || q.Get("history") == "true"}
	if at := q.Get("at"); at != "" {
		t, err := time.Parse(time.RFC3339, at)
		if err != nil {
			WriteOpenAIError(w, apierr.BadRequest("at", "at must be an RFC 3339 time such as 2026-11-28T09:00:00+08:00."))
			return
		}
		o.At = t
	}
	writeJSON(w, http.StatusOK, s.Prices.Catalog.View(o))
}

// QuoteRequest is the body of POST /v1/quote: a chat request (its messages
// are counted) or explicit token counts.
type QuoteRequest struct {
	Model               string          `json:"model"`
	Messages            json.RawMessage `json:"messages"`
	InputTokens         *int64          `json:"input_tokens"`
	MaxTokens           *int64          `json:"max_tokens"`
	MaxCompletionTokens *int64          `json:"max_completion_tokens"`
	N                   *int64          `json:"n"`
	At                  *time.Time      `json:"at"`
	Batch               bool            `json:"batch"`
}

// quote answers POST /v1/quote: what a request costs at the catalog's
// prices (max_cost, its prompt and its whole output limit), and the hold
// the gateway would take for it from the key's tenant before calling the
// upstream (hold: billing's one rule, through the gateway). It needs an API
// key, as /v1/tokenize does: counting a prompt of megabytes is work an
// anonymous client must not be able to ask for without limit, and the hold
// depends on the key's tenant (its price list) and on the models it may
// use.
func (s *Server) quote(w http.ResponseWriter, r *http.Request) {
	key, aerr := s.GW.Authenticate(r, ir.FormatOpenAI)
	if aerr != nil {
		WriteOpenAIError(w, aerr)
		return
	}
	body, aerr := readLimited(w, r, 4<<20)
	if aerr != nil {
		WriteOpenAIError(w, aerr)
		return
	}
	var q QuoteRequest
	if e := decodeJSON(body, &q, false); e != nil {
		WriteOpenAIError(w, e)
		return
	}
	if q.Model == "" {
		WriteOpenAIError(w, apierr.BadRequest("model", "You must provide a model parameter."))
		return
	}
	var prompt int64
	exact := true
	switch {
	case q.InputTokens != nil:
		prompt = *q.InputTokens
	case len(q.Messages) > 0:
		prompt, exact = s.Prices.CountPrompt(q.Model, body)
	default:
		WriteOpenAIError(w, apierr.BadRequest("messages", "Give messages (counted by the gateway) or input_tokens."))
		return
	}
	var out int64
	if q.MaxTokens != nil {
		out = *q.MaxTokens
	} else if q.MaxCompletionTokens != nil {
		out = *q.MaxCompletionTokens
	}
	if prompt < 0 || out < 0 {
		WriteOpenAIError(w, apierr.BadRequest("input_tokens", "Token counts must not be negative."))
		return
	}
	var choices int64
	if q.N != nil {
		if choices = *q.N; choices < 1 {
			WriteOpenAIError(w, apierr.BadRequest("n", "n must be a positive integer."))
			return
		}
	}
	at := s.Clock.Now()
	if q.At != nil {
		at = *q.At
	}
	rated, err := s.Prices.Catalog.Quote(prompt, out, price.RateContext{Model: q.Model, At: at, Batch: q.Batch,
		Currency: s.Prices.Currency, Rates: s.Prices.Rates})
	if err != nil {
		var np *price.NoPriceError
		if errors.As(err, &np) || errors.Is(err, price.ErrNoRate) {
			WriteOpenAIError(w, &apierr.Error{Status: 404, Type: "invalid_request_error", Code: "model_not_priced", Param: "model", Message: err.Error()})
			return
		}
		WriteOpenAIError(w, apierr.BadRequest("", "%v", err))
		return
	}
	res := map[string]any{"object": "quote", "model": q.Model, "at": at, "input_tokens": prompt,
		"max_output_tokens": out, "currency": rated.Currency, "max_cost": money.FormatNanos(rated.Total.Nanos),
		"price_version": rated.Version, "price_origin": rated.Origin, "lines": rated.Lines}
	if rated.Model != q.Model {
		res["priced_as"] = rated.Model // an alias, resolved at the quote's time
	}
	if !rated.ExchangeRate.IsOne() {
		res["price_currency"], res["exchange_rate"], res["rate_source"] = rated.PriceCurrency, rated.ExchangeRate.String(), rated.RateSource
	}
	hold, served, aerr := s.GW.QuoteHold(key, q.Model, prompt, exact, out, choices, q.Batch, at)
	switch {
	case aerr != nil:
		WriteOpenAIError(w, aerr) // the request itself would be refused so
		return
	case !served:
		res["hold"], res["hold_note"] = nil, "No request for this model would be admitted: no channel serves it, or this key may not use it."
	case !hold.Held:
		res["hold"], res["hold_note"] = nil, "Nothing is held: the model is free, or the gateway meters without charging."
	default:
		res["hold"], res["hold_output_tokens"] = money.FormatNanos(hold.Amount), hold.Output
		res["hold_note"] = "Held from the tenant's balance before the upstream call: the prompt priced at the dearest way the vendor may bill it plus the output this request may produce (its limit, or the model's maximum), times n, at the dearest channel; released down to the rated cost when the request ends."
	}
	writeJSON(w, http.StatusOK, res)
}

func readLimited(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *apierr.Error) {
	var buf bytes.Buffer
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, apierr.TooLarge(limit)
	}
	if err != nil {
		return nil, apierr.BadRequest("", "The request body could not be read.")
	}
	return buf.Bytes(), nil
}

func (s *Server) listPriceVersions(w http.ResponseWriter, r *http.Request) {
	list, err := s.Prices.Store.ListPriceVersions(r.Context())
	if err != nil {
		WriteOpenAIError(w, apierr.Internal(err))
		return
	}
	data := make([]map[string]any, 0, len(list))
	for _, v := range list {
		data = append(data, map[string]any{"id": v.ID, "created": v.Created, "spec": json.RawMessage(v.Spec)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *Server) setPriceList(w http.ResponseWriter, r *http.Request) {
	var spec price.ListSpec
	if e := decodeAdmin(w, r, &spec); e != nil {
		WriteOpenAIError(w, e)
		return
	}
	tenant := r.PathValue("id")
	if _, err := spec.Build(tenant); err != nil {
		WriteOpenAIError(w, apierr.BadRequest("", "%v", err))
		return
	}
	b, _ := json.Marshal(spec)
	if err := s.Prices.Lists.SetPriceList(r.Context(), tenant, b); err != nil {
		WriteOpenAIError(w, apierr.Internal(err))
		return
	}
	if err := s.Prices.Rater.LoadPriceLists(r.Context(), s.Prices.Lists); err != nil {
		s.Log.Warn("price lists", "err", err)
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "price_list", "tenant_id": tenant, "markup_bp": spec.MarkupBP,
		"overrides": len(spec.Overrides)})
}

func (s *Server) getPriceList(w http.ResponseWriter, r *http.Request) {
	all, err := s.Prices.Lists.PriceLists(r.Context())
	if err != nil {
		WriteOpenAIError(w, apierr.Internal(err))
		return
	}
	b, ok := all[r.PathValue("id")]
	if !ok {
		WriteOpenAIError(w, apierr.NotFound("This tenant has no price list: it pays catalog prices."))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}
