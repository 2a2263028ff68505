package replica

import (
	"github.com/prometheus/client_golang/prometheus"

	"baimo/internal/schedule"
)

// Collector exports every pool's figures to Prometheus, read when scraped.
type Collector struct {
	pools []*Pool
}

// NewCollector returns a collector of pools.
func NewCollector(pools []*Pool) *Collector { return &Collector{pools: pools} }

var (
	rl = []string{"pool", "replica"}
	cl = []string{"pool", "class"}

	descInFlight  = prometheus.NewDesc("baimo_replica_in_flight", "Requests the gateway sent to the replica and has not seen end.", rl, nil)
	descPrefill   = prometheus.NewDesc("baimo_replica_prefill_tokens", "Uncached prompt tokens in flight to the replica before their first token.", rl, nil)
	descDecoding  = prometheus.NewDesc("baimo_replica_decoding", "Requests generating on the replica (the larger of the gateway's count and the replica's running).", rl, nil)
	descWaiting   = prometheus.NewDesc("baimo_replica_engine_waiting", "Requests queued in the replica's engine, as last scraped.", rl, nil)
	descKV        = prometheus.NewDesc("baimo_replica_kv_usage", "Fraction of the replica's KV cache in use, as last scraped.", rl, nil)
	descStale     = prometheus.NewDesc("baimo_replica_metrics_stale", "1 if the replica's metrics are missing, failing or older than stale_after (it then counts as saturated).", rl, nil)
	descHit       = prometheus.NewDesc("baimo_replica_prefix_cache_hit_ratio", "Prompt tokens the replica's prefix cache supplied over those looked up (its own counters).", rl, nil)
	descIndexHit  = prometheus.NewDesc("baimo_replica_index_hit_ratio", "Prompt tokens the gateway's prefix index expected cached on the replica over those sent.", rl, nil)
	descRouted    = prometheus.NewDesc("baimo_replica_requests_total", "Requests placed on the replica.", rl, nil)
	descFailOpen  = prometheus.NewDesc("baimo_replica_fail_open_total", "Requests placed on the replica while every replica was saturated.", rl, nil)
	descScrapeErr = prometheus.NewDesc("baimo_replica_scrape_errors_total", "Failed metrics scrapes of the replica.", rl, nil)
	descTTFT      = prometheus.NewDesc("baimo_replica_online_ttft_seconds", "Recent average time to first token of online requests on the replica.", rl, nil)
	descQueued    = prometheus.NewDesc("baimo_pool_queue_waiting", "Requests waiting in the pool's gateway-side queue.", cl, nil)
	descOutcomes  = prometheus.NewDesc("baimo_pool_requests_total", "Requests by what the pool did with them: dispatched, queued, overflow (to vendors), shed (429), fail_open.", append(cl, "outcome"), nil)
	descWaitSum   = prometheus.NewDesc("baimo_pool_queue_wait_seconds_total", "Time queued requests waited, summed.", cl, nil)
	descWaitCount = prometheus.NewDesc("baimo_pool_queue_waits_total", "Queued requests that left the queue for a replica.", cl, nil)
	descWaitMax   = prometheus.NewDesc("baimo_pool_queue_wait_max_seconds", "Longest wait of a queued request since start.", cl, nil)
	descShared    = prometheus.NewDesc("baimo_pool_prefix_records_total", "Prefix-index records shared with other gateway nodes: sent, dropped, applied.", []string{"pool", "what"}, nil)
)

// Describe sends the descriptors.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descInFlight, descPrefill, descDecoding, descWaiting, descKV, descStale, descHit, descIndexHit,
		descRouted, descFailOpen, descScrapeErr, descTTFT, descQueued, descOutcomes, descWaitSum, descWaitCount, descWaitMax, descShared} {
		ch <- d
	}
}

// Collect sends the current figures.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge, counter := prometheus.GaugeValue, prometheus.CounterValue
	for _, p := range c.pools {
		st := p.Stats()
		for _, r := range st.Replicas {
			l := []string{st.Name, r.Name}
			ch <- prometheus.MustNewConstMetric(descInFlight, gauge, float64(r.Load.InFlight), l...)
			ch <- prometheus.MustNewConstMetric(descPrefill, gauge, float64(r.Load.Prefill), l...)
			ch <- prometheus.MustNewConstMetric(descDecoding, gauge, float64(r.Load.Decoding), l...)
			ch <- prometheus.MustNewConstMetric(descWaiting, gauge, float64(r.Load.Waiting), l...)
			ch <- prometheus.MustNewConstMetric(descKV, gauge, r.Load.KVUsage, l...)
			stale := 0.0
			if r.Load.Stale {
				stale = 1
			}
			ch <- prometheus.MustNewConstMetric(descStale, gauge, stale, l...)
			if m := r.Metrics; m != nil && m.Queries > 0 {
				ch <- prometheus.MustNewConstMetric(descHit, gauge, m.Hits/m.Queries, l...)
			}
			if r.Prompt > 0 {
				ch <- prometheus.MustNewConstMetric(descIndexHit, gauge, float64(r.Matched)/float64(r.Prompt), l...)
			}
			ch <- prometheus.MustNewConstMetric(descRouted, counter, float64(r.Routed), l...)
			ch <- prometheus.MustNewConstMetric(descFailOpen, counter, float64(r.FailOpen), l...)
			ch <- prometheus.MustNewConstMetric(descScrapeErr, counter, float64(r.ScrapeErrors), l...)
			ch <- prometheus.MustNewConstMetric(descTTFT, gauge, r.Load.OnlineTTFT.Seconds(), l...)
		}
		for c := schedule.Interactive; c <= schedule.Batch; c++ {
			cs := st.Classes[c]
			l := []string{st.Name, c.String()}
			ch <- prometheus.MustNewConstMetric(descQueued, gauge, float64(cs.Waiting), l...)
			for _, o := range []struct {
				name string
				n    int64
			}{{"dispatched", cs.Dispatched}, {"queued", cs.Queued}, {"overflow", cs.Overflow}, {"shed", cs.Shed}, {"fail_open", cs.FailOpen}} {
				ch <- prometheus.MustNewConstMetric(descOutcomes, counter, float64(o.n), append(l, o.name)...)
			}
			ch <- prometheus.MustNewConstMetric(descWaitSum, counter, cs.WaitSum.Seconds(), l...)
			ch <- prometheus.MustNewConstMetric(descWaitCount, counter, float64(cs.WaitCount), l...)
			ch <- prometheus.MustNewConstMetric(descWaitMax, gauge, cs.WaitMax.Seconds(), l...)
		}
		if s := p.shared.Load(); s != nil {
			sent, dropped, applied := s.Counts()
			ch <- prometheus.MustNewConstMetric(descShared, counter, float64(sent), st.Name, "sent")
			ch <- prometheus.MustNewConstMetric(descShared, counter, float64(dropped), st.Name, "dropped")
			ch <- prometheus.MustNewConstMetric(descShared, counter, float64(applied), st.Name, "applied")
		}
	}
}
