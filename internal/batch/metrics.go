package batch

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports a node's batch counters and the progress of the
// batches it runs to Prometheus.
type Collector struct {
	s                              *Service
	running, inflight, lines, cost *prometheus.Desc
	created, progress, total       *prometheus.Desc
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns the collector of s's metrics.
func NewCollector(s *Service) *Collector {
	return &Collector{s: s,
		created:  prometheus.NewDesc("baimo_batches_created_total", "Batches created on this node.", nil, nil),
		running:  prometheus.NewDesc("baimo_batches_running", "Batches this node runs now.", nil, nil),
		inflight: prometheus.NewDesc("baimo_batch_lines_in_flight", "Batch lines in flight on this node.", nil, nil),
		lines: prometheus.NewDesc("baimo_batch_lines_total",
			"Batch line runs on this node by outcome: succeeded and errored lines are kept and billed; retried runs run again.",
			[]string{"outcome"}, nil),
		cost:     prometheus.NewDesc("baimo_batch_cost_nanos_total", "What the batch lines this node kept cost, in nanos of the billing currency.", nil, nil),
		progress: prometheus.NewDesc("baimo_batch_lines_done", "Lines this node ended, per batch it runs.", []string{"batch"}, nil),
		total:    prometheus.NewDesc("baimo_batch_lines", "Lines of each batch this node runs.", []string{"batch"}, nil),
	}
}

// Describe sends the descriptors.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.created, c.running, c.inflight, c.lines, c.cost, c.progress, c.total} {
		ch <- d
	}
}

// Collect sends the current values.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	ch <- prometheus.MustNewConstMetric(c.created, prometheus.CounterValue, float64(st.Created))
	ch <- prometheus.MustNewConstMetric(c.running, prometheus.GaugeValue, float64(st.Running))
	ch <- prometheus.MustNewConstMetric(c.inflight, prometheus.GaugeValue, float64(st.InFlight))
	ch <- prometheus.MustNewConstMetric(c.lines, prometheus.CounterValue, float64(st.Succeeded), "succeeded")
	ch <- prometheus.MustNewConstMetric(c.lines, prometheus.CounterValue, float64(st.Errored), "errored")
	ch <- prometheus.MustNewConstMetric(c.lines, prometheus.CounterValue, float64(st.Retried), "retried")
	ch <- prometheus.MustNewConstMetric(c.cost, prometheus.CounterValue, float64(st.CostNanos))
	for id, p := range st.Progress {
		ch <- prometheus.MustNewConstMetric(c.progress, prometheus.GaugeValue, float64(p[0]), id)
		ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(p[1]), id)
	}
}
