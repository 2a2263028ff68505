package gateway

import (
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"baimo/internal/usage"
)

// Metrics are the gateway's Prometheus metrics.
type Metrics struct {
	requests *prometheus.CounterVec
	tokens   *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	ttft     *prometheus.HistogramVec
	bound    sync.Map // [2]string{model, channel} → *boundMetrics
}

type boundMetrics struct {
	input, cached, output, reasoning prometheus.Counter
	latency, ttft                    prometheus.Observer
}

// NewMetrics creates the metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	buckets := []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baimo_requests_total",
			Help: "Requests by model, channel and status."}, []string{"model", "channel", "status"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "baimo_tokens_total",
			Help: "Tokens by model, channel and kind (input, cached_input, output, reasoning)."}, []string{"model", "channel", "kind"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baimo_request_duration_seconds",
			Help: "Request duration by model and channel.", Buckets: buckets}, []string{"model", "channel"}),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "baimo_time_to_first_token_seconds",
			Help: "Time to first token (or first byte) by model and channel.", Buckets: buckets}, []string{"model", "channel"}),
	}
	reg.MustRegister(m.requests, m.tokens, m.latency, m.ttft)
	return m
}

func (m *Metrics) bind(model, channel string) *boundMetrics {
	k := [2]string{model, channel}
	if b, ok := m.bound.Load(k); ok {
		return b.(*boundMetrics)
	}
	b := &boundMetrics{
		input:     m.tokens.WithLabelValues(model, channel, "input"),
		cached:    m.tokens.WithLabelValues(model, channel, "cached_input"),
		output:    m.tokens.WithLabelValues(model, channel, "output"),
		reasoning: m.tokens.WithLabelValues(model, channel, "reasoning"),
		latency:   m.latency.WithLabelValues(model, channel),
		ttft:      m.ttft.WithLabelValues(model, channel),
	}
	v, _ := m.bound.LoadOrStore(k, b)
	return v.(*boundMetrics)
}

var statusLabels sync.Map

func statusLabel(code int) string {
	if v, ok := statusLabels.Load(code); ok {
		return v.(string)
	}
	s := strconv.Itoa(code)
	statusLabels.Store(code, s)
	return s
}

func (m *Metrics) observe(r *usage.Record) {
	// Only models and channels the gateway serves become labels, so a client
	// cannot grow the label set with made-up model names.
	model, channel := r.Model, r.Channel
	if channel == "" {
		model, channel = "", ""
	}
	m.requests.WithLabelValues(model, channel, statusLabel(r.Status)).Inc()
	if channel == "" {
		return
	}
	b := m.bind(model, channel)
	u := r.Usage
	b.input.Add(float64(u.Input))
	b.cached.Add(float64(u.CachedInput))
	b.output.Add(float64(u.Output))
	b.reasoning.Add(float64(u.Reasoning))
	b.latency.Observe(r.Duration.Seconds())
	if r.TTFT > 0 {
		b.ttft.Observe(r.TTFT.Seconds())
	}
}
