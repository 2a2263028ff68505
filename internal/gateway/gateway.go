// Package gateway is the request path: authenticate → admit → route →
// forward → meter → record. It forwards bodies and stream events byte for
// byte, patching only what it must (the model name, asking for usage), and
// writes one usage record for every request, complete or not.
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/billing"
	"baimo/internal/clock"
	"baimo/internal/config"
	"baimo/internal/jsonfield"
	"baimo/internal/keys"
	"baimo/internal/provider"
	"baimo/internal/provider/ir"
	"baimo/internal/ratelimit"
	"baimo/internal/route"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

// Endpoint is an OpenAI-compatible API the gateway serves.
type Endpoint struct {
	Name   string // recorded in usage records: "chat", "completions", "embeddings"
	Path   string // upstream path below the channel's base URL
	Stream bool   // whether the endpoint can stream
}

// The OpenAI-compatible endpoints.
var (
	Chat        = Endpoint{Name: "chat", Path: "/chat/completions", Stream: true}
	Completions = Endpoint{Name: "completions", Path: "/completions", Stream: true}
	Embeddings  = Endpoint{Name: "embeddings", Path: "/embeddings"}
)

// Channel is one upstream the gateway can send a model's requests to.
type Channel struct {
	Name     string
	Kind     string
	BaseURL  string
	Models   map[string]string // public name → upstream name
	Priority int
	Weight   int
	Limits   route.Limits
	header   http.Header // extra headers sent upstream
	auth     []string    // "Bearer <key>" for each upstream key; "" for none
}

// NewChannel builds a channel from its configuration.
func NewChannel(c config.Channel) *Channel {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	ch := &Channel{Name: c.Name, Kind: c.Kind, BaseURL: c.BaseURL, Models: c.Models, header: h,
		Priority: c.Priority, Weight: c.Weight, Limits: c.Limits}
	for _, k := range c.Keys() {
		if v := k.Value(); v != "" {
			ch.auth = append(ch.auth, "Bearer "+v)
		} else {
			ch.auth = append(ch.auth, "")
		}
	}
	if len(ch.auth) == 0 {
		ch.auth = []string{""}
	}
	return ch
}

// RouteConfig turns the routing configuration and the channels into the
// router's configuration. Upstream keys are named k0, k1, ... in the order
// configured; their secrets stay in the gateway.
func RouteConfig(rc config.Routing, chans []*Channel) route.Config {
	cfg := route.Config{Defaults: rc.Defaults, Models: rc.Models, ChannelBreaker: rc.ChannelBreaker,
		KeyBreaker: rc.KeyBreaker, ParkFor: rc.ParkFor.D(), MaxCooldown: rc.MaxCooldown.D()}
	for _, ch := range chans {
		rch := route.Channel{ID: ch.Name, Priority: ch.Priority, Weight: ch.Weight, Limits: ch.Limits, Data: ch}
		for pub := range ch.Models {
			rch.Models = append(rch.Models, pub)
		}
		sort.Strings(rch.Models)
		for i, a := range ch.auth {
			rch.Keys = append(rch.Keys, route.Key{ID: "k" + strconv.Itoa(i), Data: a})
		}
		cfg.Channels = append(cfg.Channels, rch)
	}
	return cfg
}

// TokenCounter counts tokens when the upstream did not report them.
type TokenCounter interface {
	// CountPrompt counts the prompt of a request body.
	CountPrompt(model string, body []byte) (int64, usage.Source)
	// CountText counts generated text.
	CountText(model string, text []byte) (int64, usage.Source)
}

// Options configures a Gateway.
type Options struct {
	Channels []*Channel
	Keys     keys.Store
	// Billing admits requests against their tenants' money and settles
	// them with their usage records (a *billing.Biller).
	Billing   Biller
	Clock     clock.Clock
	Log       *slog.Logger
	Limits    config.Limits
	Metrics   *Metrics
	Transport http.RoundTripper
	Counter   TokenCounter
	// Routing tunes channel selection; Router, if set, is used instead of
	// one built from Routing and Channels.
	Routing config.Routing
	Router  *route.Router
	// Limiter enforces RateLimits on API keys and tenants; nil with all
	// rates zero checks nothing.
	Limiter    ratelimit.Limiter
	RateLimits config.RateLimits
	// AuditEvery counts the prompt of one vendor-metered chat request in
	// this many with baimo's exact tokenizer, to audit vendors' bills;
	// 0 audits none.
	AuditEvery int
}

// Gateway serves the OpenAI-compatible API.
type Gateway struct {
	opt      Options
	client   *http.Client
	byModel  map[string][]*Channel
	models   []string
	keyCache *keyCache
	inflight sync.WaitGroup
	closing  atomic.Bool
	bufs     sync.Pool
	readers  sync.Pool // *sse.Reader, with their 16 KiB buffers
	limited  bool      // some rate limit is configured
	audits   atomic.Uint64
}

// New returns a gateway.
func New(opt Options) (*Gateway, error) {
	if opt.Billing == nil {
		return nil, errors.New("gateway: Options.Billing is required (a *billing.Biller)")
	}
	if opt.Clock == nil {
		opt.Clock = clock.Real{}
	}
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	if opt.Counter == nil {
		opt.Counter = Estimator{}
	}
	if opt.Transport == nil {
		opt.Transport = NewTransport(opt.Limits.FirstByteTimeout.D())
	}
	g := &Gateway{opt: opt, client: &http.Client{Transport: opt.Transport}, byModel: map[string][]*Channel{},
		keyCache: newKeyCache(opt.Keys, opt.Clock, opt.Limits.StoreTimeout.D())}
	for _, ch := range opt.Channels {
		pubs := make([]string, 0, len(ch.Models))
		for pub := range ch.Models {
			pubs = append(pubs, pub)
		}
		sort.Strings(pubs)
		for _, pub := range pubs {
			if len(g.byModel[pub]) == 0 {
				g.models = append(g.models, pub)
			}
			g.byModel[pub] = append(g.byModel[pub], ch)
		}
	}
	g.bufs.New = func() any { return new(bytes.Buffer) }
	if g.opt.Router == nil {
		r, err := route.New(RouteConfig(opt.Routing, opt.Channels), route.Options{Clock: opt.Clock, Logger: opt.Log})
		if err != nil {
			return nil, fmt.Errorf("routing: %w", err)
		}
		g.opt.Router = r
	}
	rl := opt.RateLimits
	g.limited = !rl.Key.Zero() || !rl.Tenant.Zero() || !rl.Model.Zero() || len(rl.Keys) > 0
	if g.limited && g.opt.Limiter == nil {
		g.opt.Limiter = ratelimit.NewLocal(opt.Clock)
	}
	return g, nil
}

// sseReader returns a pooled stream reader over body; put it back with
// g.readers.Put when the stream is done.
func (g *Gateway) sseReader(body io.Reader) *sse.Reader {
	if rd, ok := g.readers.Get().(*sse.Reader); ok {
		rd.Reset(body)
		return rd
	}
	return sse.NewReader(body, sse.DefaultMaxLine)
}

// Router returns the router, for the admin API.
func (g *Gateway) Router() *route.Router { return g.opt.Router }

// NewTransport returns the HTTP transport used towards upstreams.
func NewTransport(firstByte time.Duration) *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4096,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: firstByte,
		DisableCompression:    true,
	}
}

// Models returns the public model names served, in configuration order.
func (g *Gateway) Models() []string { return g.models }

// InvalidateKeys drops cached keys, after a key was changed.
func (g *Gateway) InvalidateKeys() { g.keyCache.invalidate() }

// Drain marks the gateway as shutting down and waits for in-flight requests
// to finish and submit their records, or for ctx to end.
func (g *Gateway) Drain(ctx context.Context) error {
	g.closing.Store(true)
	done := make(chan struct{})
	go func() { g.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Authenticate finds the key a request presents (Authorization: Bearer or
// x-api-key).
func (g *Gateway) Authenticate(r *http.Request) (*keys.Key, *apierr.Error) {
	secret := ""
	if h := r.Header.Get("Authorization"); h != "" {
		if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
			secret = strings.TrimSpace(h[7:])
		}
	} else {
		secret = r.Header.Get("X-Api-Key")
	}
	return g.AuthenticateSecret(r.Context(), secret)
}

// AuthenticateSecret checks a presented secret.
func (g *Gateway) AuthenticateSecret(ctx context.Context, secret string) (*keys.Key, *apierr.Error) {
	if secret == "" {
		return nil, apierr.Unauthorized("You didn't provide an API key. Send it as 'Authorization: Bearer YOUR_KEY' or 'x-api-key'.")
	}
	if len(secret) > 256 {
		return nil, apierr.Unauthorized("Incorrect API key provided.")
	}
	k, err := g.keyCache.get(ctx, secret)
	if errors.Is(err, keys.ErrNotFound) {
		return nil, apierr.Unauthorized("Incorrect API key provided.")
	}
	if err != nil {
		g.opt.Log.Error("cannot check API keys", "err", err)
		return nil, apierr.Unavailable("The gateway cannot check API keys right now.", err)
	}
	if ok, why := k.Usable(g.opt.Clock.Now()); !ok {
		return nil, apierr.Unauthorized("This API key is " + why + ".")
	}
	return k, nil
}

// request is the state of one request through the gateway.
type request struct {
	id       string
	key      *keys.Key
	endpoint Endpoint
	model    string
	stream   bool
	// clientUsage is whether the client asked for the usage chunk itself.
	clientUsage bool
	channel     *Channel
	auth        string // the upstream key's Authorization value
	rec         usage.Record
	start       time.Time
	maxTokens   int64 // max_tokens or max_completion_tokens; 0 when not set
	choices     int64 // n (candidateCount); 0 when not set
	// maxTokensField and choicesField name the fields that set maxTokens
	// and choices, for errors about them.
	maxTokensField, choicesField string
	lease                        ratelimit.Lease
	leased                       bool
	// ticket is the request's claim on its tenant's money (billing.Admit).
	ticket *billing.Ticket
	// prompt is the prompt's token count, once promptCounted.
	prompt                     int64
	promptExact, promptCounted bool
	// format is the client's wire format; tr translates to the channel's
	// when it differs (nil when bytes pass through); path is the upstream
	// path below the channel's base URL; promptBody is the request as an
	// OpenAI body, for counting its prompt.
	format     ir.Format
	tr         provider.Translator
	path       string
	promptBody []byte
}

var validRequestID = func(s string) bool {
	if s == "" || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return false
		}
	}
	return true
}

// RequestID returns the id of a request: the client's X-Request-Id, when it
// is usable, followed by a random suffix, or a new id. The suffix matters for
// money: holds, settlements and usage records are keyed by this id, so a
// client that sent the same X-Request-Id twice must still get two requests,
// each billed, never one bill for both.
func RequestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); validRequestID(id) && len(id) <= 100 {
		var b [4]byte
		_, _ = rand.Read(b[:])
		return id + "." + hex.EncodeToString(b[:])
	}
	return keys.NewID("req_")
}

func (r *request) maxTokensParam() string {
	if r.maxTokensField == "" {
		return "max_tokens"
	}
	return r.maxTokensField
}

func (r *request) choicesParam() string {
	if r.choicesField == "" {
		return "n"
	}
	return r.choicesField
}

// ErrorWriter writes an error in the format of the API a request came in on.
type ErrorWriter func(w http.ResponseWriter, e *apierr.Error)

// ServeOpenAI handles one request to an OpenAI-compatible endpoint, writing
// the response (or the error, with writeErr) and submitting its usage record.
func (g *Gateway) ServeOpenAI(w http.ResponseWriter, r *http.Request, ep Endpoint, writeErr ErrorWriter) {
	g.Serve(w, r, Inbound{Format: ir.FormatOpenAI, Endpoint: ep}, writeErr)
}

// Serve handles one request that came in on the API in, writing the response
// in that API's format (errors with writeErr) and submitting its usage
// record. The channel's kind decides whether the body passes through or is
// translated.
func (g *Gateway) Serve(w http.ResponseWriter, r *http.Request, in Inbound, writeErr ErrorWriter) {
	g.inflight.Add(1)
	defer g.inflight.Done()
	ep := in.Endpoint
	req := &request{endpoint: ep, start: g.opt.Clock.Now(), id: RequestID(r), format: in.Format}
	w.Header().Set("X-Request-Id", req.id)
	req.rec = usage.Record{RequestID: req.id, Endpoint: ep.Name, Start: req.start}
	log := requestLog{g.opt.Log, req.id}

	if g.closing.Load() {
		writeErr(w, apierr.Unavailable("The gateway is shutting down; retry on another node.", nil))
		return
	}
	k, aerr := g.AuthenticateFormat(r, in.Format)
	if aerr != nil {
		writeErr(w, aerr)
		return // no key, no record: unauthenticated traffic is only counted in metrics
	}
	req.key = k
	req.rec.KeyID, req.rec.TenantID = k.ID, k.TenantID

	buf := g.bufs.Get().(*bytes.Buffer)
	buf.Reset()
	defer g.putBuf(buf)
	body, aerr := g.readBody(w, r, buf)
	if aerr == nil {
		aerr = g.admitFormat(req, body, in)
	}
	if aerr != nil {
		g.fail(w, req, aerr, writeErr, log)
		return
	}
	if g.limited {
		if aerr := g.acquire(w, r, req); aerr != nil {
			req.rec.ErrorClass = usage.ErrRateLimited
			g.fail(w, req, aerr, writeErr, log)
			return
		}
	}
	// The store's answers before the upstream call (the free tier's
	// totals, the hold) are waited for at most limits.store_timeout: a
	// database that is away is a quick 503.
	sctx, cancel := g.storeContext(r.Context())
	defer cancel()
	if aerr := g.admitBilling(sctx, req); aerr != nil {
		g.fail(w, req, aerr, writeErr, log)
		return
	}
	g.forward(w, r, req, body, writeErr, log)
}

// storeContext bounds ctx by limits.store_timeout, if set.
func (g *Gateway) storeContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if d := g.opt.Limits.StoreTimeout.D(); d > 0 {
		return context.WithTimeout(ctx, d)
	}
	return ctx, func() {}
}

// tpmOutputEstimate is the output reserved against a TPM limit for a request
// that sets no output limit (or a larger one); the reservation is trued up
// with what the request used when it ends.
const tpmOutputEstimate = 4096

// reservation is the token estimate reserved against TPM limits: the prompt
// plus the output the request may produce (its limit, at most
// tpmOutputEstimate, times its choices).
func (g *Gateway) reservation(req *request) int64 {
	prompt, _ := g.promptTokens(req)
	out := req.maxTokens
	if out <= 0 || out > tpmOutputEstimate {
		out = tpmOutputEstimate
	}
	if req.endpoint.Name == Embeddings.Name {
		out = 0
	}
	return prompt + out*max(req.choices, 1)
}

// acquire checks the rate limits of the key, its tenant and the key's use of
// the model, reserving the token estimate; finish releases it.
func (g *Gateway) acquire(w http.ResponseWriter, r *http.Request, req *request) *apierr.Error {
	rl := &g.opt.RateLimits
	kr := rl.Key
	if o, ok := rl.Keys[req.key.ID]; ok {
		kr = o
	}
	var buf [3]ratelimit.Limit
	limits := buf[:0]
	if !kr.Zero() {
		limits = append(limits, kr.For("k:"+req.key.ID))
	}
	if !rl.Tenant.Zero() {
		tenant := req.key.TenantID
		if tenant == "" {
			tenant = "default"
		}
		limits = append(limits, rl.Tenant.For("t:"+tenant))
	}
	if !rl.Model.Zero() {
		limits = append(limits, rl.Model.For("k:"+req.key.ID+"|m:"+req.model))
	}
	if len(limits) == 0 {
		return nil
	}
	res, err := g.opt.Limiter.Acquire(r.Context(), ratelimit.Request{Limits: limits, Tokens: g.reservation(req), Now: req.start})
	if err != nil {
		return apierr.Unavailable("The gateway cannot check rate limits right now.", err)
	}
	ratelimit.SetHeaders(w.Header(), res)
	if !res.Allowed {
		msg := "Rate limit reached for " + res.Refused.String() + " (" + res.RefusedKey + "). Retry after the time in the retry-after header."
		if res.TooLarge {
			msg = "This request's token estimate is larger than the tokens-per-minute limit; lower max_tokens."
		}
		return apierr.RateLimited(msg, res.RetryAfter)
	}
	req.lease, req.leased = res.Lease, true
	return nil
}

func (g *Gateway) putBuf(b *bytes.Buffer) {
	if b.Cap() <= 1<<20 {
		g.bufs.Put(b)
	}
}

func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer) ([]byte, *apierr.Error) {
	limit := g.opt.Limits.MaxBodyBytes
	if r.ContentLength > limit {
		return nil, apierr.TooLarge(limit)
	}
	if r.ContentLength > 0 {
		buf.Grow(int(r.ContentLength))
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return nil, apierr.TooLarge(limit)
	}
	if err != nil {
		return nil, &apierr.Error{Status: http.StatusBadRequest, Type: "invalid_request_error", Code: "body_read_failed",
			Message: "The request body could not be read.", Cause: err}
	}
	return buf.Bytes(), nil
}

// admit checks the request's fields and the key's right to the model.
func (g *Gateway) admit(req *request, body []byte) *apierr.Error {
	if !json.Valid(body) {
		return apierr.InvalidJSON(nil)
	}
	var model, stream, messages, prompt, input jsonfield.Span
	var hasModel, hasStream, hasMessages, hasPrompt, hasInput bool
	var streamOpts jsonfield.Span
	var hasStreamOpts bool
	err := jsonfield.Each(body, func(k []byte, v jsonfield.Span) bool {
		switch string(k) {
		case "model":
			model, hasModel = v, true
		case "stream":
			stream, hasStream = v, true
		case "stream_options":
			streamOpts, hasStreamOpts = v, true
		case "messages":
			messages, hasMessages = v, true
		case "prompt":
			prompt, hasPrompt = v, true
		case "input":
			input, hasInput = v, true
		case "max_tokens", "max_completion_tokens", "max_output_tokens":
			if n, ok := jsonfield.Int(body[v.Start:v.End]); ok && n > req.maxTokens {
				req.maxTokens, req.maxTokensField = n, string(k)
			}
		case "n", "best_of": // best_of answers are generated (and billed) server-side
			if n, ok := jsonfield.Int(body[v.Start:v.End]); ok && n > req.choices {
				req.choices, req.choicesField = n, string(k)
			}
		}
		return true
	})
	if err != nil {
		return apierr.BadRequest("", "The request body must be a JSON object.")
	}
	if !hasModel {
		return apierr.BadRequest("model", "You must provide a model parameter.")
	}
	m, ok := jsonfield.String(body[model.Start:model.End])
	if !ok || m == "" {
		return apierr.BadRequest("model", "The model parameter must be a non-empty string.")
	}
	req.model, req.rec.Model = m, m // recorded even if a later check refuses the request
	if hasStream {
		v := body[stream.Start:stream.End]
		s, ok := jsonfield.Bool(v)
		if !ok && !jsonfield.IsNull(v) {
			return apierr.BadRequest("stream", "The stream parameter must be a boolean.")
		}
		if s && !req.endpoint.Stream {
			return apierr.BadRequest("stream", "This endpoint does not stream.")
		}
		req.stream = s
	}
	req.rec.Stream = req.stream
	if hasStreamOpts && req.stream {
		if s, ok := jsonfield.Path(body[streamOpts.Start:streamOpts.End], "include_usage"); ok {
			req.clientUsage, _ = jsonfield.Bool(body[streamOpts.Start+s.Start : streamOpts.Start+s.End])
		}
	}
	switch req.endpoint.Name {
	case Chat.Name:
		if !hasMessages || len(body) == 0 || body[messages.Start] != '[' {
			return apierr.BadRequest("messages", "The messages parameter must be an array of messages.")
		}
		n := 0
		_ = jsonfield.EachElement(body[messages.Start:messages.End], func(jsonfield.Span) bool { n++; return true })
		if n == 0 {
			return apierr.BadRequest("messages", "The messages array must not be empty.")
		}
	case Completions.Name:
		if !hasPrompt {
			return apierr.BadRequest("prompt", "You must provide a prompt parameter.")
		}
		_ = prompt
	case Embeddings.Name:
		if !hasInput || jsonfield.IsNull(body[input.Start:input.End]) {
			return apierr.BadRequest("input", "You must provide an input parameter.")
		}
	}
	return g.admitModel(req, m)
}

var includeUsage = []byte(`{"include_usage":true}`)

// prepare patches the body for the upstream: its model name, and a request
// for usage in streams.
func (g *Gateway) prepare(req *request, body []byte) ([]byte, *apierr.Error) {
	ch := req.channel
	up := ch.Models[req.model]
	req.rec.Channel, req.rec.UpstreamModel = ch.Name, up
	out := body
	var err error
	if up != req.model {
		out, err = jsonfield.Set(out, "model", strconv.AppendQuote(nil, up))
		if err != nil {
			return nil, apierr.Internal(err)
		}
	}
	if req.stream && !req.clientUsage {
		if s, ok := jsonfield.Find(out, "stream_options"); ok && out[s.Start] == '{' {
			inner, err := jsonfield.Set(out[s.Start:s.End], "include_usage", []byte("true"))
			if err != nil {
				return nil, apierr.BadRequest("stream_options", "stream_options must be an object.")
			}
			out = jsonfield.Replace(out, s, inner)
		} else {
			out, err = jsonfield.Set(out, "stream_options", includeUsage)
			if err != nil {
				return nil, apierr.Internal(err)
			}
		}
	}
	return out, nil
}

// fail writes an error before anything was sent upstream and records it.
func (g *Gateway) fail(w http.ResponseWriter, req *request, e *apierr.Error, writeErr ErrorWriter, log requestLog) {
	writeErr(w, e)
	req.rec.Status = e.Status
	req.rec.Complete = false
	switch {
	case req.rec.ErrorClass != usage.ErrNone:
		// The caller named the class (rate limited, insufficient quota).
	case e.Status == http.StatusForbidden:
		req.rec.ErrorClass = usage.ErrAuth
	case e.Status < 500:
		req.rec.ErrorClass = usage.ErrClient
	default:
		req.rec.ErrorClass = usage.ErrInternal
	}
	if e.Status >= 500 {
		log.Error("request failed", "status", e.Status, "err", e)
	}
	g.finish(req, log)
}

func (g *Gateway) finish(req *request, log requestLog) {
	req.rec.Duration = g.opt.Clock.Now().Sub(req.start)
	if req.leased {
		// Settle the token reservation with what was used. A background
		// context: the client may be gone, the limiter's books must not be.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := g.opt.Limiter.Release(ctx, &req.lease, req.rec.Usage.Total()); err != nil {
			log.Warn("rate limit release", "err", err)
		}
		cancel()
		req.leased = false
	}
	if g.opt.Metrics != nil {
		g.opt.Metrics.observe(&req.rec)
	}
	if _, err := g.opt.Billing.Finish(req.ticket, req.rec); err != nil {
		log.Error("usage record not submitted", "err", err)
	}
}

// requestLog logs with the request id, building the attribute only when a
// line is written (most requests write none).
type requestLog struct {
	l  *slog.Logger
	id string
}

func (r requestLog) Warn(msg string, args ...any) {
	r.l.Warn(msg, append([]any{"request_id", r.id}, args...)...)
}

func (r requestLog) Error(msg string, args ...any) {
	r.l.Error(msg, append([]any{"request_id", r.id}, args...)...)
}

// classify turns an error from the upstream round trip into a client error.
func classify(r *http.Request, err error) (*apierr.Error, usage.ErrorClass) {
	if r.Context().Err() != nil {
		return nil, usage.ErrClientDisconnect
	}
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return apierr.UpstreamTimeout(err), usage.ErrUpstreamTimeout
	}
	return apierr.UpstreamFailed("The upstream model server could not be reached.", err), usage.ErrUpstreamConnect
}
