// Package telemetry exports each request as OpenTelemetry data over OTLP,
// the way the GenAI semantic conventions describe it: a server
// span per request with the gen_ai.* attributes and baimo's own (tenant,
// key, channel, exact cost, price version), a client span per upstream
// attempt whose W3C trace context goes upstream, and the conventions'
// histograms (token usage, operation duration, time to first chunk, the
// server's time to first token and time per output token). OTLP goes over
// HTTP (protobuf) or gRPC.
//
// It is off unless configured: New returns a nil *Telemetry, and every
// method of a nil *Telemetry, *Request or *Attempt does nothing, so the
// request path holds one pointer and pays nothing for it. Prompts and
// completions are exported only with capture_content.
package telemetry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetricgrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlpmetric/otlpmetrichttp"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/metric"
	"go.opentelemetry.io/otel/propagation"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"baimo/internal/config"
	"baimo/internal/money"
	"baimo/internal/provider/ir"
	"baimo/internal/usage"
)

// The attributes exported: the GenAI conventions' and baimo's own.
const (
	AttrOperation       = attribute.Key("gen_ai.operation.name")
	AttrProvider        = attribute.Key("gen_ai.provider.name")
	AttrRequestModel    = attribute.Key("gen_ai.request.model")
	AttrResponseModel   = attribute.Key("gen_ai.response.model")
	AttrInputTokens     = attribute.Key("gen_ai.usage.input_tokens")
	AttrOutputTokens    = attribute.Key("gen_ai.usage.output_tokens")
	AttrCacheRead       = attribute.Key("gen_ai.usage.cache_read.input_tokens")
	AttrCacheWrite      = attribute.Key("gen_ai.usage.cache_creation.input_tokens")
	AttrReasoning       = attribute.Key("gen_ai.usage.reasoning.output_tokens")
	AttrTokenType       = attribute.Key("gen_ai.token.type")
	AttrInputMessages   = attribute.Key("gen_ai.input.messages")
	AttrOutputMessages  = attribute.Key("gen_ai.output.messages")
	AttrErrorType       = attribute.Key("error.type")
	AttrStatusCode      = attribute.Key("http.response.status_code")
	AttrTenant          = attribute.Key("baimo.tenant.id")
	AttrKey             = attribute.Key("baimo.key.id")
	AttrChannel         = attribute.Key("baimo.channel")
	AttrRequestID       = attribute.Key("baimo.request.id")
	AttrStream          = attribute.Key("baimo.stream")
	AttrCost            = attribute.Key("baimo.cost")
	AttrCurrency        = attribute.Key("baimo.cost.currency")
	AttrPriceVersion    = attribute.Key("baimo.price.version")
	AttrAttempt         = attribute.Key("baimo.attempt")
	AttrEndpoint        = attribute.Key("baimo.endpoint")
	AttrTokenSource     = attribute.Key("baimo.usage.source")
	AttrIncomplete      = attribute.Key("baimo.incomplete")
	AttrAttemptsTotal   = attribute.Key("baimo.attempts")
	AttrUpstreamAddress = attribute.Key("server.address")
)

// The metrics exported.
const (
	MetricTokenUsage       = "gen_ai.client.token.usage"
	MetricDuration         = "gen_ai.client.operation.duration"
	MetricTimeToFirstChunk = "gen_ai.client.operation.time_to_first_chunk"
	MetricServerTTFT       = "gen_ai.server.time_to_first_token"
	MetricServerTPOT       = "gen_ai.server.time_per_output_token"
)

// maxContent bounds each captured prompt or completion attribute.
const maxContent = 64 << 10

// Options are what telemetry needs from the rest of baimo.
type Options struct {
	// Rate fills a finished request's cost and price version, as
	// settlement will (billing.Rater.RateRecord); nil leaves them out.
	// It is given a copy of the record.
	Rate func(*usage.Record) error
	Log  *slog.Logger
	// Version is baimo's, for the resource's service.version.
	Version string
}

// Telemetry exports requests; a nil *Telemetry is off.
type Telemetry struct {
	tp      *sdktrace.TracerProvider
	mp      *sdkmetric.MeterProvider
	tracer  trace.Tracer
	prop    propagation.TraceContext
	capture bool
	rate    func(*usage.Record) error
	log     *slog.Logger

	tokens, duration, ttfc, ttft, tpot metric.Float64Histogram
	sets                               sync.Map // measureKey → *measure
}

// New starts the exporters cfg describes, or returns nil when telemetry is
// off. Stop it with Shutdown.
func New(cfg config.Telemetry, opt Options) (*Telemetry, error) {
	if !cfg.Enabled {
		return nil, nil
	}
	te, me, err := exporters(cfg)
	if err != nil {
		return nil, err
	}
	res := resource.NewWithAttributes("", attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", opt.Version))
	if opt.Log == nil {
		opt.Log = slog.Default()
	}
	// The SDK reports failed exports here (the collector away): a warning
	// per failed batch, never a request's error.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { opt.Log.Warn("telemetry export", "err", err) }))
	t := &Telemetry{capture: cfg.CaptureContent, rate: opt.Rate, log: opt.Log}
	t.tp = sdktrace.NewTracerProvider(sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.Ratio()))),
		// A client's model name is an attribute: bound every value.
		sdktrace.WithSpanLimits(spanLimits()),
		// The batcher's queue is bounded (2,048 spans): a collector that is
		// away costs dropped spans, never memory or request latency.
		sdktrace.WithBatcher(te))
	t.mp = sdkmetric.NewMeterProvider(sdkmetric.WithResource(res),
		sdkmetric.WithReader(sdkmetric.NewPeriodicReader(me, sdkmetric.WithInterval(cfg.ExportInterval.D()))))
	t.tracer = t.tp.Tracer("baimo/internal/telemetry")
	if err := t.instruments(t.mp.Meter("baimo/internal/telemetry")); err != nil {
		_ = t.Shutdown(context.Background())
		return nil, err
	}
	return t, nil
}

func spanLimits() sdktrace.SpanLimits {
	l := sdktrace.NewSpanLimits()
	l.AttributeValueLengthLimit = maxContent
	return l
}

// exporters returns the trace and metric exporters of cfg's protocol.
func exporters(cfg config.Telemetry) (sdktrace.SpanExporter, sdkmetric.Exporter, error) {
	headers := make(map[string]string, len(cfg.Headers))
	for k, v := range cfg.Headers {
		headers[k] = v.Value()
	}
	ctx := context.Background()
	var (
		te         sdktrace.SpanExporter
		me         sdkmetric.Exporter
		terr, merr error
	)
	switch cfg.Protocol {
	case config.ProtocolHTTP:
		te, terr = otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(cfg.Endpoint+"/v1/traces"), otlptracehttp.WithHeaders(headers))
		me, merr = otlpmetrichttp.New(ctx, otlpmetrichttp.WithEndpointURL(cfg.Endpoint+"/v1/metrics"), otlpmetrichttp.WithHeaders(headers))
	case config.ProtocolGRPC:
		te, terr = otlptracegrpc.New(ctx, otlptracegrpc.WithEndpointURL(cfg.Endpoint), otlptracegrpc.WithHeaders(headers))
		me, merr = otlpmetricgrpc.New(ctx, otlpmetricgrpc.WithEndpointURL(cfg.Endpoint), otlpmetricgrpc.WithHeaders(headers))
	default:
		return nil, nil, fmt.Errorf("telemetry: protocol %q is not supported", cfg.Protocol)
	}
	if err := errors.Join(terr, merr); err != nil {
		return nil, nil, fmt.Errorf("telemetry: exporter: %w", err)
	}
	return te, me, nil
}

// The conventions' advised bucket boundaries.
var (
	tokenBuckets    = []float64{1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864}
	durationBuckets = []float64{0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92}
	ttftBuckets     = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0}
	tpotBuckets     = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5}
)

func (t *Telemetry) instruments(m metric.Meter) error {
	var errs [5]error
	t.tokens, errs[0] = m.Float64Histogram(MetricTokenUsage, metric.WithUnit("{token}"),
		metric.WithDescription("Number of input and output tokens used."), metric.WithExplicitBucketBoundaries(tokenBuckets...))
	t.duration, errs[1] = m.Float64Histogram(MetricDuration, metric.WithUnit("s"),
		metric.WithDescription("GenAI operation duration."), metric.WithExplicitBucketBoundaries(durationBuckets...))
	t.ttfc, errs[2] = m.Float64Histogram(MetricTimeToFirstChunk, metric.WithUnit("s"),
		metric.WithDescription("Time from the upstream request to its first chunk."), metric.WithExplicitBucketBoundaries(ttftBuckets...))
	t.ttft, errs[3] = m.Float64Histogram(MetricServerTTFT, metric.WithUnit("s"),
		metric.WithDescription("Time to generate the first token, as the gateway's clients see it."), metric.WithExplicitBucketBoundaries(ttftBuckets...))
	t.tpot, errs[4] = m.Float64Histogram(MetricServerTPOT, metric.WithUnit("s"),
		metric.WithDescription("Time per output token after the first."), metric.WithExplicitBucketBoundaries(tpotBuckets...))
	if err := errors.Join(errs[:]...); err != nil {
		return fmt.Errorf("telemetry: instruments: %w", err)
	}
	return nil
}

// Shutdown exports what is pending and stops the exporters.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return errors.Join(t.tp.Shutdown(ctx), t.mp.Shutdown(ctx))
}

// Close exports what is pending, waiting at most 5 seconds for the
// collector, and logs what it could not send.
func (t *Telemetry) Close() {
	if t == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := t.Shutdown(ctx); err != nil {
		t.log.Warn("telemetry not all exported at shutdown", "err", err)
	}
}

// Flush exports the spans ended and the metrics recorded so far.
func (t *Telemetry) Flush(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return errors.Join(t.tp.ForceFlush(ctx), t.mp.ForceFlush(ctx))
}

// CapturesContent reports whether prompts and completions are exported.
func (t *Telemetry) CapturesContent() bool { return t != nil && t.capture }

// Request is one request's telemetry: its span and what its metrics need.
type Request struct {
	t        *Telemetry
	ctx      context.Context // carries the request's span
	span     trace.Span
	endpoint string
	provider string // of the channel last tried
	// attemptStart is when the last attempt began, for the time to first
	// chunk as the gateway, a client of the upstream, sees it.
	attemptStart time.Time
	input        []byte // captured prompt (JSON), when capturing
	output       string // captured completion, when capturing
}

// Start begins a request's span at start, continuing the client's trace
// when its header carries a W3C traceparent. endpoint is the API called
// (ir.Endpoint*).
func (t *Telemetry) Start(ctx context.Context, h http.Header, endpoint string, start time.Time) *Request {
	if t == nil {
		return nil
	}
	if h != nil {
		ctx = t.prop.Extract(ctx, propagation.HeaderCarrier(h))
	}
	op := Operation(endpoint)
	ctx, span := t.tracer.Start(ctx, op, trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(AttrOperation.String(op), AttrEndpoint.String(endpoint)))
	return &Request{t: t, ctx: ctx, span: span, endpoint: endpoint}
}

// Operation is the GenAI operation name of an endpoint.
func Operation(endpoint string) string {
	switch endpoint {
	case ir.EndpointChat, ir.EndpointMessages, ir.EndpointResponses:
		return "chat"
	case ir.EndpointCompletions:
		return "text_completion"
	case ir.EndpointEmbeddings:
		return "embeddings"
	case ir.EndpointGenerate:
		return "generate_content"
	}
	return endpoint
}

// Provider is the GenAI provider name of a channel kind.
func Provider(kind string) string {
	switch kind {
	case "openai", "responses", "":
		return "openai"
	case "gemini":
		return "gcp.gemini"
	}
	return kind
}

// Attempt is one upstream attempt's span.
type Attempt struct {
	span trace.Span
}

// Attempt begins the span of attempt number n to channel (of kind, with
// model its upstream name) at start, and puts its trace context in h, the
// upstream request's header.
func (q *Request) Attempt(h http.Header, channel, kind, model string, n int, start time.Time) *Attempt {
	if q == nil {
		return nil
	}
	q.provider, q.attemptStart = Provider(kind), start
	op := Operation(q.endpoint)
	ctx, span := q.t.tracer.Start(q.ctx, op+" "+model, trace.WithSpanKind(trace.SpanKindClient), trace.WithTimestamp(start),
		trace.WithAttributes(AttrOperation.String(op), AttrProvider.String(q.provider), AttrRequestModel.String(model),
			AttrChannel.String(channel), AttrAttempt.Int(n)))
	q.t.prop.Inject(ctx, propagation.HeaderCarrier(h))
	return &Attempt{span: span}
}

// End ends the attempt's span with what the usage record says of it.
func (a *Attempt) End(at usage.Attempt, end time.Time) {
	if a == nil {
		return
	}
	if at.Status != 0 {
		a.span.SetAttributes(AttrStatusCode.Int(at.Status))
	}
	if at.ErrorClass != usage.ErrNone {
		a.span.SetAttributes(AttrErrorType.String(string(at.ErrorClass)))
		a.span.SetStatus(codes.Error, string(at.ErrorClass))
	}
	a.span.End(trace.WithTimestamp(end))
}

// CapturesContent reports whether the request's prompt and completion are
// wanted (SetContent).
func (q *Request) CapturesContent() bool { return q != nil && q.t.capture }

// SetPrompt gives the request's prompt, exported (at most 64 KiB of it)
// when capturing.
func (q *Request) SetPrompt(prompt ir.Prompt) {
	if !q.CapturesContent() {
		return
	}
	msgs := make([]message, 0, len(prompt.Messages)+len(prompt.Texts))
	for _, m := range prompt.Messages {
		msgs = append(msgs, message{Role: m.Role, Parts: []textPart{{Type: "text", Content: m.Content}}})
	}
	for _, s := range prompt.Texts {
		msgs = append(msgs, message{Role: "user", Parts: []textPart{{Type: "text", Content: s}}})
	}
	if len(msgs) > 0 {
		if b, err := json.Marshal(msgs); err == nil {
			q.input = b
		}
	}
}

// SetCompletion gives the text the request generated, exported (at most
// 64 KiB of it) when capturing.
func (q *Request) SetCompletion(text []byte) {
	if !q.CapturesContent() || len(text) == 0 {
		return
	}
	q.output = string(text[:min(len(text), maxContent)])
}

// End ends the request's span and records its metrics from its usage
// record.
func (q *Request) End(rec *usage.Record) {
	if q == nil {
		return
	}
	t := q.t
	op := Operation(q.endpoint)
	provider := q.provider
	if provider == "" {
		provider = "baimo" // refused before any upstream was tried
	}
	u := rec.Usage
	span := q.span
	if span.IsRecording() {
		span.SetName(op + " " + rec.Model)
		attrs := []attribute.KeyValue{
			AttrProvider.String(provider), AttrRequestModel.String(rec.Model), AttrRequestID.String(rec.RequestID),
			AttrTenant.String(rec.TenantID), AttrKey.String(rec.KeyID), AttrStream.Bool(rec.Stream),
			AttrStatusCode.Int(rec.Status), AttrAttemptsTotal.Int(len(rec.Attempts)),
		}
		if rec.Channel != "" {
			attrs = append(attrs, AttrChannel.String(rec.Channel), AttrResponseModel.String(rec.UpstreamModel),
				AttrInputTokens.Int64(u.Input), AttrOutputTokens.Int64(u.Output),
				AttrCacheRead.Int64(u.CachedInput), AttrCacheWrite.Int64(u.CacheWrite5m+u.CacheWrite1h),
				AttrReasoning.Int64(u.Reasoning), AttrTokenSource.String(u.Source.String()))
		}
		if !rec.Complete {
			attrs = append(attrs, AttrIncomplete.Bool(true))
		}
		if t.rate != nil && rec.Channel != "" {
			rated := *rec
			if err := t.rate(&rated); err == nil && rated.PriceVersion != "" {
				attrs = append(attrs, AttrCost.String(money.FormatNanos(rated.CostNanos)), AttrCurrency.String(rated.Currency),
					AttrPriceVersion.String(rated.PriceVersion))
			}
		}
		if t.capture {
			if len(q.input) > 0 {
				attrs = append(attrs, AttrInputMessages.String(string(q.input[:min(len(q.input), maxContent)])))
			}
			if q.output != "" {
				out, _ := json.Marshal([]message{{Role: "assistant", Parts: []textPart{{Type: "text", Content: q.output}}}})
				attrs = append(attrs, AttrOutputMessages.String(string(out)))
			}
		}
		if rec.ErrorClass != usage.ErrNone {
			attrs = append(attrs, AttrErrorType.String(string(rec.ErrorClass)))
		}
		span.SetAttributes(attrs...)
		if rec.Status >= 500 || (rec.ErrorClass != usage.ErrNone && rec.Status >= 400) {
			span.SetStatus(codes.Error, strconv.Itoa(rec.Status)+" "+string(rec.ErrorClass))
		}
	}
	span.End(trace.WithTimestamp(rec.Start.Add(rec.Duration)))

	m := t.measures(op, provider, rec)
	ctx := q.ctx
	t.duration.Record(ctx, rec.Duration.Seconds(), m.attrs)
	if rec.Channel == "" {
		return
	}
	if u.Input > 0 || u.Output > 0 {
		t.tokens.Record(ctx, float64(u.Input), m.input)
		t.tokens.Record(ctx, float64(u.Output), m.output)
	}
	if rec.TTFT > 0 {
		t.ttft.Record(ctx, rec.TTFT.Seconds(), m.attrs)
		if !q.attemptStart.IsZero() {
			if d := rec.TTFT - q.attemptStart.Sub(rec.Start); d > 0 {
				t.ttfc.Record(ctx, d.Seconds(), m.attrs)
			}
		}
		if u.Output > 1 && rec.Duration > rec.TTFT {
			t.tpot.Record(ctx, (rec.Duration-rec.TTFT).Seconds()/float64(u.Output-1), m.attrs)
		}
	}
}

// measureKey names one set of metric attributes.
type measureKey struct {
	op, provider, model, upstream string
	errType                       usage.ErrorClass
}

// measure is one set of metric attributes, built once: a request's, and
// with the token type added.
type measure struct {
	attrs, input, output metric.MeasurementOption
}

// measures returns the metric attributes of a request. Only a model a
// channel served is an attribute (a refused request's model is ""), so a
// client cannot grow the sets with made-up model names; error types are
// the usage package's few classes.
func (t *Telemetry) measures(op, provider string, rec *usage.Record) *measure {
	k := measureKey{op: op, provider: provider, errType: rec.ErrorClass}
	if rec.Channel != "" {
		k.model, k.upstream = rec.Model, rec.UpstreamModel
	}
	if m, ok := t.sets.Load(k); ok {
		return m.(*measure)
	}
	set := []attribute.KeyValue{AttrOperation.String(op), AttrProvider.String(provider), AttrRequestModel.String(k.model)}
	if rec.Channel != "" {
		set = append(set, AttrResponseModel.String(k.upstream))
	}
	if k.errType != usage.ErrNone {
		set = append(set, AttrErrorType.String(string(k.errType)))
	}
	m := &measure{attrs: metric.WithAttributeSet(attribute.NewSet(set...)),
		input:  metric.WithAttributeSet(attribute.NewSet(append(set[:len(set):len(set)], AttrTokenType.String("input"))...)),
		output: metric.WithAttributeSet(attribute.NewSet(append(set[:len(set):len(set)], AttrTokenType.String("output"))...))}
	v, _ := t.sets.LoadOrStore(k, m)
	return v.(*measure)
}

// message and textPart are the conventions' shape of a prompt's or a
// completion's messages (gen_ai.input.messages, gen_ai.output.messages).
type message struct {
	Role  string     `json:"role"`
	Parts []textPart `json:"parts"`
}

type textPart struct {
	Type    string `json:"type"`
	Content string `json:"content"`
}
