package httpapi

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/price"
	"baimo/internal/replica"
	"baimo/internal/route"
	"baimo/internal/usage"
)

// maxAdminBody bounds admin request bodies.
const maxAdminBody = 1 << 20

// inProcessAdmin marks a request that code of this process sends to the
// admin API on the admin's behalf (the web console, which checked the
// operator's session first). A request from the network cannot carry it.
type inProcessAdmin struct{}

// WithAdmin returns ctx marked so that the admin API accepts a request made
// with it without the admin key: for in-process callers that authenticated
// the operator themselves.
func WithAdmin(ctx context.Context) context.Context {
	return context.WithValue(ctx, inProcessAdmin{}, true)
}

func (s *Server) admin(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if ok, _ := r.Context().Value(inProcessAdmin{}).(bool); ok {
			h(w, r)
			return
		}
		secret := ""
		if a := r.Header.Get("Authorization"); len(a) > 7 && strings.EqualFold(a[:7], "bearer ") {
			secret = strings.TrimSpace(a[7:])
		}
		if s.AdminKeyHash == "" || subtle.ConstantTimeCompare([]byte(keys.Hash(secret)), []byte(s.AdminKeyHash)) != 1 {
			WriteOpenAIError(w, apierr.Unauthorized("The admin API needs the admin key as 'Authorization: Bearer ADMIN_KEY'."))
			return
		}
		h(w, r)
	}
}

func decodeAdmin(w http.ResponseWriter, r *http.Request, v any) *apierr.Error {
	body, e := readLimited(w, r, maxAdminBody)
	if e != nil {
		return e
	}
	return decodeStrict(body, v)
}

// keyView is a key as the admin API shows it: never its hash.
type keyView struct {
	ID        string     `json:"id"`
	Object    string     `json:"object"`
	Key       string     `json:"key,omitempty"` // the secret, only when created
	Prefix    string     `json:"prefix"`
	Name      string     `json:"name"`
	TenantID  string     `json:"tenant_id"`
	Models    []string   `json:"models"`
	ExpiresAt *time.Time `json:"expires_at"`
	Disabled  bool       `json:"disabled"`
	CreatedAt time.Time  `json:"created_at"`
}

func viewKey(k keys.Key) keyView {
	v := keyView{ID: k.ID, Object: "api_key", Prefix: k.Prefix, Name: k.Name, TenantID: k.TenantID, Models: k.Models,
		Disabled: k.Disabled, CreatedAt: k.CreatedAt}
	if v.Models == nil {
		v.Models = []string{}
	}
	if !k.ExpiresAt.IsZero() {
		t := k.ExpiresAt
		v.ExpiresAt = &t
	}
	return v
}

// CreateKeyRequest is the body of POST /admin/keys.
type CreateKeyRequest struct {
	Name      string     `json:"name"`
	Models    []string   `json:"models"`
	TenantID  string     `json:"tenant_id"`
	ExpiresAt *time.Time `json:"expires_at"`
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	var req CreateKeyRequest
	if e := decodeAdmin(w, r, &req); e != nil {
		WriteOpenAIError(w, e)
		return
	}
	if strings.TrimSpace(req.Name) == "" || len(req.Name) > 128 {
		WriteOpenAIError(w, apierr.BadRequest("name", "A key needs a name of 1 to 128 characters."))
		return
	}
	for _, m := range req.Models {
		if strings.TrimSpace(m) == "" || strings.Contains(m, ",") {
			WriteOpenAIError(w, apierr.BadRequest("models", "Model names must be non-empty and contain no comma."))
			return
		}
	}
	if e := s.checkTenant(r.Context(), req.TenantID); e != nil {
		WriteOpenAIError(w, e)
		return
	}
	now := s.Clock.Now().UTC()
	if req.ExpiresAt != nil && !req.ExpiresAt.After(now) {
		WriteOpenAIError(w, apierr.BadRequest("expires_at", "expires_at must be in the future."))
		return
	}
	secret, k, err := keys.Generate()
	if err != nil {
		WriteOpenAIError(w, apierr.Internal(err))
		return
	}
	k.ID, k.Name, k.Models, k.TenantID, k.CreatedAt = keys.NewID("key_"), req.Name, req.Models, req.TenantID, now
	if req.ExpiresAt != nil {
		k.ExpiresAt = req.ExpiresAt.UTC()
	}
	if err := s.Store.CreateKey(r.Context(), k); err != nil {
		s.Log.Error("create key", "err", err)
		WriteOpenAIError(w, apierr.Internal(err))
		return
	}
	v := viewKey(k)
	v.Key = secret
	writeJSON(w, http.StatusCreated, v)
}

// checkTenant refuses a key for a tenant that does not exist: its requests
// would all be refused (no account), and a tenant created later under that
// id would inherit a key nobody meant it to have. "" is the default tenant.
func (s *Server) checkTenant(ctx context.Context, id string) *apierr.Error {
	if id == "" {
		return nil
	}
	if len(id) > ledger.MaxIDLen {
		return apierr.BadRequest("tenant_id", "tenant_id must be at most %d bytes.", ledger.MaxIDLen)
	}
	if s.Billing == nil {
		return nil // no ledger: tenants only group keys
	}
	if _, err := s.Billing.Ledger.Tenant(ctx, id); err != nil {
		if errors.Is(err, ledger.ErrNotFound) {
			return apierr.BadRequest("tenant_id", "No tenant with id %q: create it first (POST /admin/tenants, baimo tenants create).", id)
		}
		return ledgerError(err)
	}
	return nil
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	list, err := s.Store.ListKeys(r.Context())
	if err != nil {
		WriteOpenAIError(w, apierr.Internal(err))
		return
	}
	data := make([]keyView, 0, len(list))
	for _, k := range list {
		data = append(data, viewKey(k))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}

func (s *Server) deleteKey(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.Store.DeleteKey(r.Context(), id); err != nil {
		if errors.Is(err, keys.ErrNotFound) {
			WriteOpenAIError(w, apierr.NotFound("No key with id "+id+"."))
			return
		}
		WriteOpenAIError(w, apierr.Internal(err))
		return
	}
	s.GW.InvalidateKeys()
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "api_key", "deleted": true})
}

func (s *Server) setDisabled(disabled bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		id := r.PathValue("id")
		if err := s.Store.SetKeyDisabled(r.Context(), id, disabled); err != nil {
			if errors.Is(err, keys.ErrNotFound) {
				WriteOpenAIError(w, apierr.NotFound("No key with id "+id+"."))
				return
			}
			WriteOpenAIError(w, apierr.Internal(err))
			return
		}
		s.GW.InvalidateKeys()
		writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "api_key", "disabled": disabled})
	}
}

// recordView is a usage record as the admin API shows it.
type recordView struct {
	RequestID     string `json:"request_id"`
	KeyID         string `json:"key_id"`
	TenantID      string `json:"tenant_id"`
	Endpoint      string `json:"endpoint"`
	Model         string `json:"model"`
	Channel       string `json:"channel"`
	UpstreamModel string `json:"upstream_model"`
	Stream        bool   `json:"stream"`
	Status        int    `json:"status"`
	Outcome       string `json:"outcome"`
	Input         int64  `json:"input_tokens"`
	CachedInput   int64  `json:"cached_input_tokens"`
	CacheWrite5m  int64  `json:"cache_write_5m_tokens"`
	CacheWrite1h  int64  `json:"cache_write_1h_tokens"`
	Output        int64  `json:"output_tokens"`
	Reasoning     int64  `json:"reasoning_tokens"`
	// The units of media requests: images, seconds of audio, characters
	// spoken, search units (rerank) or calls.
	Images       int64           `json:"images"`
	AudioSeconds int64           `json:"audio_seconds"`
	Characters   int64           `json:"characters"`
	SearchCalls  int64           `json:"search_calls"`
	Source       string          `json:"source"`
	Complete     bool            `json:"complete"`
	ErrorClass   string          `json:"error_class"`
	Start        time.Time       `json:"start"`
	TTFTms       float64         `json:"ttft_ms"`
	DurationMs   float64         `json:"duration_ms"`
	Attempts     []usage.Attempt `json:"attempts"`
	Cost         string          `json:"cost"`
	Currency     string          `json:"currency"`
	PriceVersion string          `json:"price_version"`
	Lines        json.RawMessage `json:"lines,omitempty"`
	// SettledIn is the ledger transfer (its seq) that posted the cost with
	// the other settlements of its batch; 0 when the request's own
	// transfers did (or it cost nothing).
	SettledIn int64 `json:"settled_in"`
}

func viewRecord(r usage.Record) recordView {
	v := recordView{RequestID: r.RequestID, KeyID: r.KeyID, TenantID: r.TenantID, Endpoint: r.Endpoint,
		Model: usage.ShownModel(r.Model), Channel: r.Channel, UpstreamModel: r.UpstreamModel, Stream: r.Stream,
		Status: r.Status, Outcome: r.Outcome().String(), Input: r.Usage.Input,
		CachedInput: r.Usage.CachedInput, CacheWrite5m: r.Usage.CacheWrite5m, CacheWrite1h: r.Usage.CacheWrite1h,
		Output: r.Usage.Output, Reasoning: r.Usage.Reasoning, Images: r.Usage.Images, AudioSeconds: r.Usage.AudioSeconds,
		Characters: r.Usage.Characters, SearchCalls: r.Usage.SearchCalls, Source: r.Usage.Source.String(), Complete: r.Complete,
		ErrorClass: string(r.ErrorClass), Start: r.Start, Attempts: r.Attempts,
		TTFTms: float64(r.TTFT.Microseconds()) / 1000, DurationMs: float64(r.Duration.Microseconds()) / 1000,
		Cost: money.FormatNanos(r.CostNanos), Currency: r.Currency, PriceVersion: r.PriceVersion, SettledIn: r.SettledIn}
	if v.Attempts == nil {
		v.Attempts = []usage.Attempt{}
	}
	if lines, err := price.ParseLines(r.Lines, money.Currency(r.Currency), r.PriceVersion); err == nil && len(lines) > 0 {
		v.Lines, _ = json.Marshal(lines) // Line's MarshalJSON: cannot fail
	}
	return v
}

func parseTime(q, name string) (time.Time, *apierr.Error) {
	if q == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339, q)
	if err != nil {
		return time.Time{}, apierr.BadRequest(name, "%s must be an RFC 3339 time such as 2026-11-28T00:00:00Z.", name)
	}
	return t, nil
}

// usageFilter reads GET /admin/usage's query (see the README's admin API).
func usageFilter(q url.Values) (usage.Filter, *apierr.Error) {
	var f usage.Filter
	for _, p := range []struct {
		name string
		dst  *string
	}{{"request_id", &f.RequestID}, {"tenant_id", &f.TenantID}, {"key_id", &f.KeyID}, {"model", &f.Model}, {"channel", &f.Channel}} {
		v := q.Get(p.name)
		if len(v) > usage.MaxFilterLen {
			return f, apierr.BadRequest(p.name, "%s must be at most %d bytes.", p.name, usage.MaxFilterLen)
		}
		*p.dst = v
	}
	var e *apierr.Error
	if f.From, e = parseTime(q.Get("from"), "from"); e != nil {
		return f, e
	}
	if f.To, e = parseTime(q.Get("to"), "to"); e != nil {
		return f, e
	}
	if v := q.Get("status"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 100 || n > 599 {
			return f, apierr.BadRequest("status", "status must be an HTTP status from 100 to 599.")
		}
		f.Status = n
	}
	if v := q.Get("outcome"); v != "" {
		o, ok := usage.ParseOutcome(v)
		if !ok {
			return f, apierr.BadRequest("outcome", "outcome must be served, refused or failed.")
		}
		f.Outcome = o
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > usage.MaxListLimit {
			return f, apierr.BadRequest("limit", "limit must be a whole number from 1 to %d.", usage.MaxListLimit)
		}
		f.Limit = n
	}
	c, err := usage.ParseCursor(q.Get("cursor"))
	if err != nil {
		return f, apierr.BadRequest("cursor", "cursor must be a next_cursor from a previous page.")
	}
	f.After = c
	return f, nil
}

// listUsage answers GET /admin/usage: a page of usage records, newest
// first, with the cursor of the next page, and on the first page the totals
// of every record the filters select (unless totals=false: they scan every
// such record; GET /admin/reports/usage sums from rollups).
func (s *Server) listUsage(w http.ResponseWriter, r *http.Request) {
	f, e := usageFilter(r.URL.Query())
	if e != nil {
		WriteOpenAIError(w, e)
		return
	}
	page, err := s.Store.ListRecords(r.Context(), f)
	if err != nil {
		WriteOpenAIError(w, apierr.Internal(err))
		return
	}
	data := make([]recordView, 0, len(page.Records))
	for _, rec := range page.Records {
		data = append(data, viewRecord(rec))
	}
	answer := map[string]any{"object": "list", "data": data, "has_more": !page.Next.IsZero(), "next_cursor": nil}
	if !page.Next.IsZero() {
		answer["next_cursor"] = page.Next.String()
	}
	if f.After.IsZero() && r.URL.Query().Get("totals") != "false" {
		tot, err := s.Store.TotalRecords(r.Context(), f)
		if err != nil {
			WriteOpenAIError(w, apierr.Internal(err))
			return
		}
		cost := map[string]string{}
		for c, n := range tot.CostNanos {
			cost[c] = money.FormatNanos(n)
		}
		answer["totals"] = map[string]any{"requests": tot.Requests, "served": tot.Served, "refused": tot.Refused,
			"failed": tot.Failed, "input_tokens": tot.Input, "cached_input_tokens": tot.CachedInput,
			"output_tokens": tot.Output, "reasoning_tokens": tot.Reasoning, "cost": cost}
	}
	writeJSON(w, http.StatusOK, answer)
}

// routingView is the routing state with the last active probe of each
// channel and key (empty when probes are off).
type routingView struct {
	route.Snapshot
	Probes []route.ProbeStatus
	// Pools are the replica pools: each replica's load, scraped metrics and
	// prefix hit rates, and the queue's counters per traffic class.
	Pools []replica.Stats `json:",omitempty"`
}

func (s *Server) routingState(w http.ResponseWriter, r *http.Request) {
	rt := s.GW.Router()
	writeJSON(w, http.StatusOK, routingView{Snapshot: rt.Snapshot(), Probes: rt.Probes(), Pools: s.GW.PoolStats()})
}

// RoutingRecorder is told of each routing change an operator makes through
// the admin API, after it is applied on this node, so that the other gateway
// nodes sharing the store apply it too; route.Replicator is one.
type RoutingRecorder interface {
	Record(ctx context.Context, e route.Event) error
}

// recordRouting passes e to s.RoutingEvents, if set, and adds to the answer
// whether the other nodes will see it. The change is already applied here,
// so a failure to record it does not fail the request.
func (s *Server) recordRouting(r *http.Request, e route.Event, answer map[string]any) {
	if s.RoutingEvents == nil {
		return
	}
	err := s.RoutingEvents.Record(r.Context(), e)
	if err != nil {
		s.Log.Error("routing change applied on this node only", "kind", e.Kind, "channel", e.Channel, "key", e.Key, "err", err)
	}
	answer["replicated"] = err == nil
}

func (s *Server) unpark(w http.ResponseWriter, r *http.Request) {
	ch, key := r.PathValue("channel"), r.PathValue("key")
	if err := s.GW.Router().Unpark(ch, key); err != nil {
		WriteOpenAIError(w, apierr.NotFound(err.Error()))
		return
	}
	answer := map[string]any{"channel": ch, "key": key, "parked": false}
	s.recordRouting(r, route.Event{Kind: route.EventUnpark, Channel: ch, Key: key, Reason: "admin API"}, answer)
	writeJSON(w, http.StatusOK, answer)
}

func (s *Server) resetChannel(w http.ResponseWriter, r *http.Request) {
	ch := r.PathValue("channel")
	if err := s.GW.Router().ResetChannel(ch); err != nil {
		WriteOpenAIError(w, apierr.NotFound(err.Error()))
		return
	}
	answer := map[string]any{"channel": ch, "reset": true}
	s.recordRouting(r, route.Event{Kind: route.EventReset, Channel: ch, Reason: "admin API"}, answer)
	writeJSON(w, http.StatusOK, answer)
}

// probeChannel checks a channel now with one of its keys (?key=k1; by
// default the first not parked): a GET of the vendor's model list, which
// costs no tokens. It answers what came back and how long it took, and
// changes no routing state.
func (s *Server) probeChannel(w http.ResponseWriter, r *http.Request) {
	c, err := s.GW.Check(r.Context(), r.PathValue("channel"), r.URL.Query().Get("key"))
	switch {
	case errors.Is(err, route.ErrUnknownKey):
		WriteOpenAIError(w, apierr.NotFound(err.Error()))
		return
	case err != nil:
		WriteOpenAIError(w, apierr.Unavailable("The probe did not finish; retry.", err))
		return
	}
	var status any
	if c.Status != 0 {
		status = c.Status
	}
	writeJSON(w, http.StatusOK, map[string]any{"channel": c.Channel, "key": c.Key, "ok": c.OK, "status": status,
		"result": c.Result, "latency_ms": c.Latency.Milliseconds(), "at": c.At, "key_parked": c.Parked})
}

// driftView is one line of the vendor audit.
type driftView struct {
	Channel       string `json:"channel"`
	UpstreamModel string `json:"upstream_model"`
	Requests      int64  `json:"requests"`
	VendorInput   int64  `json:"vendor_input_tokens"`
	CountedInput  int64  `json:"counted_input_tokens"`
	// DriftPercent is (vendor - counted) / counted, to two decimals: positive
	// when the vendor bills more prompt tokens than baimo counts.
	DriftPercent string `json:"drift_percent"`
}

// DriftPercent formats 100 × (vendor − counted) / counted with two decimals,
// in integers, rounding half away from zero.
func DriftPercent(vendor, counted int64) string {
	if counted == 0 {
		return "n/a"
	}
	num := (vendor - counted) * 10000
	q := num / counted
	if r := num % counted; 2*abs64(r) >= counted {
		if num < 0 {
			q--
		} else {
			q++
		}
	}
	sign := ""
	if q < 0 {
		sign, q = "-", -q
	}
	return fmt.Sprintf("%s%d.%02d", sign, q/100, q%100)
}

func abs64(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

func (s *Server) vendorAudit(w http.ResponseWriter, r *http.Request) {
	a, ok := s.Store.(usage.Auditor)
	if !ok {
		WriteOpenAIError(w, apierr.NotFound("This store does not keep audit counts."))
		return
	}
	q := r.URL.Query()
	from, e := parseTime(q.Get("from"), "from")
	if e != nil {
		WriteOpenAIError(w, e)
		return
	}
	to, e := parseTime(q.Get("to"), "to")
	if e != nil {
		WriteOpenAIError(w, e)
		return
	}
	ds, err := a.VendorDrift(r.Context(), from, to)
	if err != nil {
		WriteOpenAIError(w, apierr.Internal(err))
		return
	}
	data := make([]driftView, 0, len(ds))
	for _, d := range ds {
		data = append(data, driftView{Channel: d.Channel, UpstreamModel: d.UpstreamModel, Requests: d.Requests,
			VendorInput: d.VendorInput, CountedInput: d.CountedInput, DriftPercent: DriftPercent(d.VendorInput, d.CountedInput)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
}
