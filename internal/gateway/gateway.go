// Package gateway is the request path: authenticate → admit → route →
// forward → meter → settle. It is blind to wire formats: the client's
// format reads the body once (ir.Client), a translator (package provider)
// turns the request and its answer between the client's format and the
// channel's (passing bytes through where they are the same), and one relay
// loop meters every stream. Every request, complete or not, ends in one
// usage record, and a response's final byte is written only after its
// record and settlement are committed.
package gateway

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/billing"
	"baimo/internal/clock"
	"baimo/internal/config"
	"baimo/internal/keys"
	"baimo/internal/provider"
	"baimo/internal/provider/ir"
	"baimo/internal/ratelimit"
	"baimo/internal/replica"
	"baimo/internal/route"
	"baimo/internal/sse"
	"baimo/internal/telemetry"
	"baimo/internal/usage"
)

// Endpoint is an API the gateway serves.
type Endpoint struct {
	Name   string // ir.EndpointChat, ...: recorded in usage records
	Stream bool   // whether the endpoint can stream
	// Conversation says the endpoint is a conversation with a model (chat,
	// messages, generateContent, responses): its requests may be
	// translated to a channel of another format, and are sampled for the
	// vendor audit.
	Conversation bool
	// NoOutput says the endpoint generates no tokens (embeddings, rerank).
	NoOutput bool
	// Upload says the endpoint takes file uploads: its bodies may reach
	// limits.max_upload_bytes rather than limits.max_body_bytes.
	Upload bool
	// Raw says the answer is relayed as raw bytes as they come (speech's
	// audio), metered by the units its request says.
	Raw bool
}

// The endpoints.
var (
	Chat            = Endpoint{Name: ir.EndpointChat, Stream: true, Conversation: true}
	Completions     = Endpoint{Name: ir.EndpointCompletions, Stream: true}
	Embeddings      = Endpoint{Name: ir.EndpointEmbeddings, NoOutput: true}
	Messages        = Endpoint{Name: ir.EndpointMessages, Stream: true, Conversation: true}
	GenerateContent = Endpoint{Name: ir.EndpointGenerate, Stream: true, Conversation: true}
	Responses       = Endpoint{Name: ir.EndpointResponses, Stream: true, Conversation: true}
	Rerank          = Endpoint{Name: ir.EndpointRerank, NoOutput: true}
	Images          = Endpoint{Name: ir.EndpointImages}
	ImageEdits      = Endpoint{Name: ir.EndpointImageEdits, Upload: true}
	Transcriptions  = Endpoint{Name: ir.EndpointTranscriptions, Upload: true}
	Translations    = Endpoint{Name: ir.EndpointTranslations, Upload: true}
	Speech          = Endpoint{Name: ir.EndpointSpeech, Raw: true}
)

// Inbound says which API a request came in on: its wire format and endpoint.
// For Gemini the model and whether to stream come from the URL
// (models/{model}:streamGenerateContent); for the other formats from the body.
type Inbound struct {
	Format   ir.Format
	Endpoint Endpoint
	Model    string // Gemini only
	Stream   bool   // Gemini only
	// Call, if set, is a request its caller built rather than read from the
	// client (the Responses API's store replays a conversation).
	Call *Call
}

// Call is a request built by the gateway's caller: the body to serve in
// place of the client's, the upstream account it must reach, and who is
// told of its progress.
type Call struct {
	// Body is served instead of the request's own body (which is not read).
	// The caller bounds it.
	Body []byte
	// Pin, if set, is the one channel and upstream key the request may
	// reach: a follow-up whose context lives with the account that served
	// its predecessor. If they cannot serve the model the request is
	// refused with a 400 naming PinParam.
	Pin      *route.Pin
	PinParam string
	// Observer, if set, is told of the request's progress.
	Observer Observer
}

// Observer is told of a Call's progress.
type Observer interface {
	// Admitted says the request passed admission (its hold is placed): an
	// upstream will be tried. requestID names its usage record.
	Admitted(requestID string)
	// Serving says the answer of channel, with upstream key (route.Key.ID),
	// goes to the client from now on.
	Serving(channel, key string)
}

func (in Inbound) target(contentType string) ir.Target {
	return ir.Target{Endpoint: in.Endpoint.Name, Model: in.Model, Stream: in.Stream, ContentType: contentType}
}

// Channel is one upstream the gateway can send a model's requests to.
type Channel struct {
	Name     string
	Kind     string
	BaseURL  string
	Models   map[string]string // public name → upstream name
	Priority int
	Weight   int
	Limits   route.Limits
	// BatchAPI says the vendor takes batches on its own batch API (config
	// batch_api).
	BatchAPI bool
	format   ir.Format
	header   http.Header // extra headers sent upstream
	secrets  []string    // each upstream key; "" for none
	pool     *poolRoute  // a replica pool's, or nil for a vendor channel (pool.go)
}

// NewChannel builds a channel from its configuration. An Anthropic base URL
// works with or without its /v1, a Gemini one with or without /v1beta.
func NewChannel(c config.Channel) *Channel {
	h := http.Header{}
	h.Set("Content-Type", "application/json")
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	f, err := ir.ParseFormat(c.Kind)
	if err != nil {
		f = ir.FormatOpenAI // config checks kinds; an empty one is OpenAI-compatible
	}
	ch := &Channel{Name: c.Name, Kind: c.Kind, BaseURL: provider.VendorOf(f).BaseURL(c.BaseURL), Models: c.Models,
		header: h, Priority: c.Priority, Weight: c.Weight, Limits: c.Limits, format: f, BatchAPI: c.BatchAPI && f == ir.FormatOpenAI}
	for _, k := range c.Keys() {
		ch.secrets = append(ch.secrets, k.Value())
	}
	if len(ch.secrets) == 0 {
		ch.secrets = []string{""}
	}
	return ch
}

// ProbeTarget is the request an active health probe sends for one of the
// channel's keys (secret, as route.Key.Data holds it): a GET of the vendor's
// model list, which costs no tokens, with the channel's headers and the key's
// authentication as a real request would carry them.
func (c *Channel) ProbeTarget(secret string) route.ProbeTarget {
	h := c.header.Clone()
	h.Del("Content-Type")
	provider.VendorOf(c.format).SetAuth(h, secret)
	return route.ProbeTarget{URL: c.BaseURL + "/models", Header: h}
}

// Probe returns the probe of active health checks and of operators'
// checks: a GET of the channel's model list (ProbeTarget) through rt, with
// the key's secret as the route.Key's Data holds it.
func Probe(rt http.RoundTripper) route.ProbeFunc {
	return route.HTTPProbe(rt, func(ch *route.Channel, key *route.Key) (route.ProbeTarget, error) {
		up, ok := ch.Data.(*Channel)
		if !ok {
			return route.ProbeTarget{}, fmt.Errorf("channel %s has no upstream", ch.ID)
		}
		auth, _ := key.Data.(string)
		return up.ProbeTarget(auth), nil
	})
}

// checkTimeout bounds an operator's check of a channel.
const checkTimeout = 10 * time.Second

// Check probes one channel now with one of its keys ("" for the first not
// parked) through the gateway's transport, and reports the answer's status
// and latency; it changes no routing state (route.Router.Check).
func (g *Gateway) Check(ctx context.Context, channel, key string) (route.Check, error) {
	return g.Router().Check(ctx, Probe(g.client.Transport), channel, key, checkTimeout)
}

// VendorRequest is a request to the channel's vendor at path under its
// base URL ("/batches"), with the channel's headers and the authentication
// of its first key: for the vendor's batch API, whose batches live under
// the account of the key that created them.
func (c *Channel) VendorRequest(ctx context.Context, method, path string, body io.Reader) (*http.Request, error) {
	r, err := http.NewRequestWithContext(ctx, method, c.BaseURL+path, body)
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", c.Name, err)
	}
	r.Header = c.header.Clone()
	provider.VendorOf(c.format).SetAuth(r.Header, c.secrets[0])
	return r, nil
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
		for i, s := range ch.secrets {
			rch.Keys = append(rch.Keys, route.Key{ID: "k" + strconv.Itoa(i), Data: s})
		}
		cfg.Channels = append(cfg.Channels, rch)
	}
	return cfg
}

// TokenCounter counts tokens when the upstream did not report them.
type TokenCounter interface {
	// CountPrompt counts a request's prompt.
	CountPrompt(model string, p ir.Prompt) (int64, usage.Source)
	// CountText counts generated text.
	CountText(model string, text []byte) (int64, usage.Source)
}

// Options configures a Gateway.
type Options struct {
	Channels []*Channel
	Keys     keys.Store
	// Billing admits requests against their tenants' money and settles
	// them with their usage records (a *billing.Biller).
	Billing Biller
	Clock   clock.Clock
	Log     *slog.Logger
	Limits  config.Limits
	Metrics *Metrics
	// Telemetry, if set, exports each request as OpenTelemetry spans and
	// metrics; nil (telemetry off) costs the request path nothing.
	Telemetry *telemetry.Telemetry
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
	// FreeTier, if set, tells whether a tenant is on the free tier: replica
	// pools shed its requests first when saturated.
	FreeTier func(tenantID string) bool
}

// Gateway serves the client APIs.
type Gateway struct {
	opt      Options
	client   *http.Client
	chans    atomic.Pointer[channelTable]
	keyCache *keyCache
	inflight sync.WaitGroup
	closing  atomic.Bool
	bufs     sync.Pool
	readers  sync.Pool // *sse.Reader, with their 16 KiB buffers
	limited  bool      // some rate limit is configured
	audits   atomic.Uint64
	pools    []*Channel // replica pools' channels, kept through ApplyChannels
}

// channelTable is one set of channels, resolved for the request path. It is
// never changed: SetChannels swaps in a new one.
type channelTable struct {
	channels []*Channel
	byModel  map[string][]*Channel
	// upstreams are, per model, the upstream names of its channels; and
	// tpm says whether one of them has a vendor TPM limit (only then does
	// routing need the request's token estimate).
	upstreams map[string][]string
	tpm       map[string]bool
	models    []string // public names, in configuration order
}

func newChannelTable(chans []*Channel) *channelTable {
	t := &channelTable{channels: chans, byModel: map[string][]*Channel{}, upstreams: map[string][]string{}, tpm: map[string]bool{}}
	for _, ch := range chans {
		pubs := make([]string, 0, len(ch.Models))
		for pub := range ch.Models {
			pubs = append(pubs, pub)
		}
		sort.Strings(pubs)
		for _, pub := range pubs {
			if len(t.byModel[pub]) == 0 {
				t.models = append(t.models, pub)
			}
			t.byModel[pub] = append(t.byModel[pub], ch)
			t.upstreams[pub] = append(t.upstreams[pub], ch.Models[pub])
			t.tpm[pub] = t.tpm[pub] || ch.Limits.TPM > 0
		}
	}
	return t
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
	if opt.Limits.MaxUploadBytes <= 0 {
		opt.Limits.MaxUploadBytes = max(opt.Limits.MaxBodyBytes, 25<<20)
	}
	if opt.Counter == nil {
		opt.Counter = Estimator{}
	}
	if opt.Transport == nil {
		opt.Transport = NewTransport(opt.Limits.FirstByteTimeout.D())
	}
	g := &Gateway{opt: opt, client: &http.Client{Transport: opt.Transport},
		keyCache: newKeyCache(opt.Keys, opt.Clock, opt.Limits.StoreTimeout.D())}
	g.chans.Store(newChannelTable(opt.Channels))
	for _, ch := range opt.Channels {
		if ch.pool != nil {
			g.pools = append(g.pools, ch)
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

// SetChannels makes chans the channels the gateway serves, at run time
// (channels added, edited or removed by an operator, on this node or
// another): the router takes them first, keeping the health state of the
// channels that remain, then the request path. Requests in flight finish on
// the channels they were routed to.
func (g *Gateway) SetChannels(chans []*Channel) error {
	if err := g.opt.Router.Update(RouteConfig(g.opt.Routing, chans)); err != nil {
		return fmt.Errorf("channels: %w", err)
	}
	g.chans.Store(newChannelTable(chans))
	return nil
}

// ApplyChannels serves the active ones of chans (channels.Target): the
// configuration file's and those added at run time.
func (g *Gateway) ApplyChannels(chans []config.Channel) error {
	var out []*Channel
	for _, c := range chans {
		if c.Active {
			out = append(out, NewChannel(c))
		}
	}
	// Replica pools come from the configuration file and stay.
	return g.SetChannels(append(out, g.pools...))
}

// Channels returns the channels served now.
func (g *Gateway) Channels() []*Channel { return g.chans.Load().channels }

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
		// A connection keeps its write buffer for life but uses it once per
		// request, for the headers and the start of the body (the rest of a
		// longer body is copied to the socket directly); 2 KiB holds a
		// request's headers, and saves 2 KiB per held stream and idle
		// connection over the default 4 KiB.
		WriteBufferSize: 2 << 10,
	}
}

// Models returns the public model names served, in configuration order.
func (g *Gateway) Models() []string { return g.chans.Load().models }

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

// Authenticate finds the key a client of format f presents, where its API
// puts it.
func (g *Gateway) Authenticate(r *http.Request, f ir.Format) (*keys.Key, *apierr.Error) {
	return g.AuthenticateSecret(r.Context(), provider.ClientOf(f).Secret(r))
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
	gw       *Gateway
	tab      *channelTable // the channels as the request found them, read once
	id       string
	key      *keys.Key
	in       Inbound
	endpoint Endpoint
	adm      ir.Admission // what the gateway read from the body
	model    string
	stream   bool
	prompt   struct {
		text           ir.Prompt
		read           bool
		tokens         int64
		exact, counted bool
	}
	body        []byte
	contentType string // the client's Content-Type (multipart uploads)
	rec         usage.Record
	start       time.Time
	lease       ratelimit.Lease
	leased      bool
	bill        billing.Request // what billing admitted
	ticket      *billing.Ticket // the request's claim on its tenant's money
	replica     *replica.Lease  // the replica's load, when the channel is a pool
	channel     *Channel
	secret      string // the upstream key's secret
	tr          provider.Translator
	line        *LineRequest       // a batch's line (line.go), nil for a client's request
	tel         *telemetry.Request // nil with telemetry off

	// servedSince is when the attempt that serves the client was sent
	// (zero before one does).
	servedSince time.Time
}

// maxTokensParam and choicesParam name the fields that set the output limit
// and the number of choices, for errors about them.
func (r *request) maxTokensParam() string {
	if r.adm.MaxOutputField == "" {
		return "max_tokens"
	}
	return r.adm.MaxOutputField
}

func (r *request) choicesParam() string {
	if r.adm.ChoicesField == "" {
		return "n"
	}
	return r.adm.ChoicesField
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
// is usable, followed by 96 random bits, or a new id. The suffix matters for
// money: holds, settlements and usage records are keyed by this id, so a
// client that sent the same X-Request-Id twice must still get two requests,
// each billed, never one bill for both.
func RequestID(r *http.Request) string {
	if id := r.Header.Get("X-Request-Id"); validRequestID(id) && len(id) <= 100 {
		var b [12]byte
		_, _ = rand.Read(b[:])
		return id + "." + hex.EncodeToString(b[:])
	}
	return keys.NewID("req_")
}

// Serve handles one request that came in on the API in, writing the answer
// in that API's format and submitting its usage record. When nothing was
// written it returns the error for the caller to write in the inbound
// format (provider.ErrorBody). The channel's kind decides whether the body
// passes through or is translated.
func (g *Gateway) Serve(w http.ResponseWriter, r *http.Request, in Inbound) *apierr.Error {
	g.inflight.Add(1)
	defer g.inflight.Done()
	_, aerr := g.serve(w, r, in, nil)
	return aerr
}

// serve is Serve, or, with line set, the serving of a batch's line
// (ServeLine): its key and body given, no rate limits of the key's own, and
// its record handed back unsettled. It returns the request (nil when it was
// refused before its key was known).
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, in Inbound, line *LineRequest) (*request, *apierr.Error) {
	req := &request{gw: g, tab: g.chans.Load(), in: in, endpoint: in.Endpoint, start: g.opt.Clock.Now(), line: line}
	req.rec = usage.Record{Endpoint: in.Endpoint.Name, Start: req.start}
	if line == nil {
		req.id = RequestID(r)
		w.Header().Set("X-Request-Id", req.id)
	} else {
		req.id, req.rec.Endpoint = line.ID, usage.BatchEndpoint(in.Endpoint.Name)
	}
	req.rec.RequestID = req.id
	log := requestLog{g.opt.Log, req.id}

	if g.closing.Load() {
		return nil, apierr.Unavailable("The gateway is shutting down; retry on another node.", nil)
	}
	var aerr *apierr.Error
	if line == nil {
		k, aerr := g.Authenticate(r, in.Format)
		if aerr != nil {
			return nil, aerr // no key, no record: unauthenticated traffic is only counted in metrics
		}
		req.key = k
	} else {
		req.key = line.Key
	}
	req.rec.KeyID, req.rec.TenantID = req.key.ID, req.key.TenantID
	if g.opt.Telemetry != nil {
		// From here every request ends in finish, which ends its span.
		req.tel = g.opt.Telemetry.Start(r.Context(), r.Header, in.Endpoint.Name, req.start)
	}

	switch {
	case line != nil:
		req.body = line.Body
	case in.Call != nil && in.Call.Body != nil:
		req.body = in.Call.Body
	default:
		buf := g.bufs.Get().(*bytes.Buffer)
		buf.Reset()
		defer g.putBuf(buf)
		req.body, aerr = g.readBody(w, r, buf, in.Endpoint)
		req.contentType = r.Header.Get("Content-Type")
	}
	if aerr == nil {
		aerr = g.admit(req)
	}
	if aerr == nil && g.limited && line == nil {
		if aerr = g.acquire(w, r, req); aerr != nil {
			req.rec.ErrorClass = usage.ErrRateLimited
		}
	}
	if aerr == nil {
		// Billing waits for the store (the free tier's totals, a hold) at
		// most billing.Options.StoreTimeout (limits.store_timeout): a
		// database that is away is a quick 503.
		aerr = g.admitBilling(r.Context(), req)
	}
	if aerr != nil {
		g.refuse(req, aerr, log)
		return req, aerr
	}
	if in.Call != nil && in.Call.Observer != nil {
		in.Call.Observer.Admitted(req.id)
	}
	return req, g.forward(w, r, req, log)
}

// admit reads the body the way the client's format says (the one reading of
// it) and checks the key's right to the model.
func (g *Gateway) admit(req *request) *apierr.Error {
	a, err := provider.ClientOf(req.in.Format).Admit(req.in.target(req.contentType), req.body)
	if err != nil {
		return admitError(err)
	}
	req.adm, req.model, req.stream = a, a.Model, a.Stream
	req.rec.Model, req.rec.Stream = a.Model, a.Stream
	req.rec.Endpoint = usage.VariantEndpoint(req.rec.Endpoint, a.Variant)
	if req.stream && !req.endpoint.Stream {
		return apierr.BadRequest("stream", "This endpoint does not stream.")
	}
	if req.stream && req.line != nil {
		return apierr.BadRequest("stream", "A batch's requests do not stream.")
	}
	return g.admitModel(req, a.Model)
}

// admitError is the client's error for a body its format refused.
func admitError(err error) *apierr.Error {
	var fe *ir.FieldError
	if errors.As(err, &fe) {
		return apierr.BadRequest(fe.Param, "%s", fe.Message)
	}
	if errors.Is(err, ir.ErrInvalidJSON) {
		return apierr.InvalidJSON(err)
	}
	return apierr.BadRequest("", "The request body must be a JSON object.")
}

// admitModel checks that the model is served and the key may use it.
func (g *Gateway) admitModel(req *request, m string) *apierr.Error {
	req.model, req.rec.Model = m, m
	if len(req.tab.byModel[m]) == 0 {
		return apierr.ModelNotFound(m)
	}
	if !req.key.Allows(m) {
		return apierr.ModelNotAllowed(m)
	}
	return nil
}

// promptText is the request's prompt, read from its body once.
func (g *Gateway) promptText(req *request) ir.Prompt {
	if !req.prompt.read {
		req.prompt.text, req.prompt.read = provider.ClientOf(req.in.Format).Prompt(req.in.target(req.contentType), req.body), true
	}
	return req.prompt.text
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
	out := req.adm.MaxOutput
	if out <= 0 || out > tpmOutputEstimate {
		out = tpmOutputEstimate
	}
	if req.endpoint.NoOutput {
		out = 0
	}
	return prompt + out*max(req.adm.Choices, 1)
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

func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request, buf *bytes.Buffer, e Endpoint) ([]byte, *apierr.Error) {
	limit := g.opt.Limits.MaxBodyBytes
	if e.Upload {
		limit = g.opt.Limits.MaxUploadBytes
	}
	return ReadBody(w, r, limit, buf)
}

// ReadBody reads a request body of at most limit bytes into buf: a larger
// one is a 413, one that cannot be read a 400.
func ReadBody(w http.ResponseWriter, r *http.Request, limit int64, buf *bytes.Buffer) ([]byte, *apierr.Error) {
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

// refuse records a request refused before any upstream was called (or by
// all of them) with the error the client gets.
func (g *Gateway) refuse(req *request, e *apierr.Error, log requestLog) {
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

// finish ends a request: it releases what admission reserved and submits the
// usage record, returning a channel closed once the record and its
// settlement are committed (nil if it could not be submitted).
func (g *Gateway) finish(req *request, log requestLog) <-chan struct{} {
	now := g.opt.Clock.Now()
	req.rec.Duration = now.Sub(req.start)
	// The attempt that served ends with the request: the record is handed
	// over below, so its duration and, when the answer ended in an error (a
	// broken stream, a client gone, an upstream gone quiet), its error class
	// are set here, not after the relay.
	if n := len(req.rec.Attempts); n > 0 && !req.servedSince.IsZero() {
		at := &req.rec.Attempts[n-1]
		at.Duration = now.Sub(req.servedSince)
		at.ErrorClass = req.rec.ErrorClass
	}
	if req.leased {
		// Settle the token reservation with what was used. A background
		// context: the client may be gone, the limiter's books must not be.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		// A failed release is the limiter's to log (at most once a second
		// during an outage) and to make good when its store is back.
		_ = g.opt.Limiter.Release(ctx, &req.lease, req.rec.Usage.Total())
		cancel()
		req.leased = false
	}
	if g.opt.Metrics != nil {
		g.opt.Metrics.observe(&req.rec)
	}
	if req.tel != nil {
		if req.tel.CapturesContent() {
			req.tel.SetPrompt(g.promptText(req))
			if req.stream && req.tr != nil {
				req.tel.SetCompletion(req.tr.Meter().Text())
			}
		}
		req.tel.End(&req.rec)
	}
	if req.line != nil {
		return lineDeferred // ServeLine keeps the result, then settles it
	}
	done, err := g.opt.Billing.Finish(req.ticket, req.rec)
	if err != nil {
		log.Error("usage record not submitted", "err", err)
		return nil
	}
	return done
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
