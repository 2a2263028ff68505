package sqlcore

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/usage"
)

// Rollups are the hour and day sums of usage records (migration 0700) that
// reports read. They are written in the transaction that stores the records,
// from the records it actually inserted (a retried record adds nothing), by
// one upsert per table: a batch of records from a few keys is a few rows.
// Hours are UTC hours; days are the local days of every reporting zone
// registered in usage_rollup_zones (SetReportZone).

// rollupSums are the summed columns of both rollup tables, in
// usage.Sums order (scanRollup reads them so).
var rollupSums = func() []string {
	cols := []string{"requests", "errors", "input_tokens", "cached_tokens", "cache_write_tokens", "output_tokens",
		"reasoning_tokens", "cost_nanos", "duration_ns", "ttft_sum_ns"}
	for i := 0; i < usage.NumTTFTBuckets; i++ {
		cols = append(cols, fmt.Sprintf("ttft_h%02d", i))
	}
	return cols
}()

// rollupDims are the key columns both tables share after their time column.
var rollupDims = []string{"tenant_id", "key_id", "model", "channel", "currency"}

// zoneRefresh is how long a node trusts its list of registered zones: a
// zone another node registers is used for days from the local midnight at
// least a minute after its registration, long after every node has re-read
// the list.
const zoneRefresh = 10 * time.Second

// rollupZones caches the registered reporting zones.
type rollupZones struct {
	mu     sync.Mutex
	zones  []*time.Location
	loaded time.Time
}

// get returns the registered zones, re-read with q when the list is stale.
func (z *rollupZones) get(ctx context.Context, q Querier, now time.Time) ([]*time.Location, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	if !z.loaded.IsZero() && now.Sub(z.loaded) < zoneRefresh && now.After(z.loaded) {
		return z.zones, nil
	}
	names, err := queryAll(ctx, q, func(r Row) (string, error) {
		var s string
		return s, r.Scan(&s)
	}, `SELECT zone FROM usage_rollup_zones ORDER BY zone`)
	if err != nil {
		return nil, fmt.Errorf("reporting zones: %w", err)
	}
	zones := make([]*time.Location, 0, len(names))
	for _, n := range names {
		loc, err := time.LoadLocation(n)
		if err != nil {
			continue // a zone this build does not know: its days are not kept here
		}
		zones = append(zones, loc)
	}
	z.zones, z.loaded = zones, now
	return zones, nil
}

func (z *rollupZones) invalidate() {
	z.mu.Lock()
	z.loaded = time.Time{}
	z.mu.Unlock()
}

// SetReportZone registers zone as a reporting zone: from the first local
// midnight at least a minute from now, every record's day is kept in it and
// day reports in it read day sums. A zone registered before keeps its date.
func (s *Store) SetReportZone(ctx context.Context, zone *time.Location, now time.Time) error {
	t := now.Add(time.Minute).In(zone)
	since := time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, zone)
	if _, err := s.write.Exec(ctx, `INSERT INTO usage_rollup_zones (zone, since_ns) VALUES ($1, $2) ON CONFLICT (zone) DO NOTHING`,
		zone.String(), since.UnixNano()); err != nil {
		return fmt.Errorf("register reporting zone %s: %w", zone, err)
	}
	s.zones.invalidate()
	return nil
}

// dimShards is how many rows a day of one dimension's value is spread over.
const dimShards = 8

// shardOf returns a tenant's shard (FNV-1a of its id).
func shardOf(tenant string) int64 {
	h := uint32(2166136261)
	for i := 0; i < len(tenant); i++ {
		h = (h ^ uint32(tenant[i])) * 16777619
	}
	return int64(h % dimShards)
}

// dimKey is a row of usage_rollup_dim: zone "" is an hour's.
type dimKey struct {
	zone, dim string
	start     int64
	value     string
	shard     int64
	currency  string
}

type rollupKey struct {
	zone                                  string // "" for the hour table
	start                                 int64
	tenant, key, model, channel, currency string
}

// rollupRecords adds recs to the rollups with q, inside the caller's
// transaction. Rows are written in key order, so that two transactions
// never wait for each other's rows in a cycle; callers write rollups last
// in their transaction.
func (s *Store) rollupRecords(ctx context.Context, q Querier, recs []usage.Record) error {
	if len(recs) == 0 {
		return nil
	}
	zones, err := s.zones.get(ctx, q, time.Now())
	if err != nil {
		return err
	}
	sums := map[rollupKey]*usage.Sums{}
	add := func(k rollupKey, r *usage.Record) {
		if sums[k] == nil {
			sums[k] = &usage.Sums{}
		}
		sums[k].AddRecord(r)
	}
	dims := map[dimKey]*usage.Sums{}
	addDim := func(k dimKey, r *usage.Record) {
		if dims[k] == nil {
			dims[k] = &usage.Sums{}
		}
		dims[k].AddRecord(r)
	}
	for i := range recs {
		r := &recs[i]
		ns := r.Start.UnixNano()
		k := rollupKey{start: ns - ns%int64(time.Hour), tenant: r.TenantID, key: r.KeyID, model: r.Model, channel: r.Channel,
			currency: r.Currency}
		if ns < 0 {
			k.start = 0
		}
		add(k, r)
		tenant := ledger.TenantFor(r.TenantID)
		shard := shardOf(tenant)
		addDims := func(zone string, start int64) {
			for _, d := range [...]struct{ dim, value string }{{dimTotal, ""}, {"model", r.Model}, {"channel", r.Channel},
				{"tenant", tenant}} {
				addDim(dimKey{zone: zone, dim: d.dim, start: start, value: d.value, shard: shard, currency: r.Currency}, r)
			}
		}
		addDims("", k.start)
		for _, z := range zones {
			t := r.Start.In(z)
			k.zone, k.start = z.String(), time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, z).UnixNano()
			add(k, r)
			addDims(k.zone, k.start)
		}
	}
	keys := make([]rollupKey, 0, len(sums))
	for k := range sums {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b rollupKey) int {
		return cmp.Or(strings.Compare(a.zone, b.zone), cmp.Compare(a.start, b.start), strings.Compare(a.tenant, b.tenant),
			strings.Compare(a.key, b.key), strings.Compare(a.model, b.model), strings.Compare(a.channel, b.channel),
			strings.Compare(a.currency, b.currency))
	})
	split := slices.IndexFunc(keys, func(k rollupKey) bool { return k.zone != "" })
	if split < 0 {
		split = len(keys)
	}
	if err := upsertRollups(ctx, q, false, keys[:split], sums); err != nil {
		return err
	}
	if err := upsertRollups(ctx, q, true, keys[split:], sums); err != nil {
		return err
	}
	return upsertDims(ctx, q, dims)
}

// dimTotal is the dimension of a day's totals.
const dimTotal = "total"

func upsertDims(ctx context.Context, q Querier, dims map[dimKey]*usage.Sums) error {
	keys := make([]dimKey, 0, len(dims))
	for k := range dims {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b dimKey) int {
		return cmp.Or(strings.Compare(a.zone, b.zone), strings.Compare(a.dim, b.dim), cmp.Compare(a.start, b.start),
			strings.Compare(a.value, b.value), cmp.Compare(a.shard, b.shard), strings.Compare(a.currency, b.currency))
	})
	lead := []string{"zone", "dim", "start_ns", "value", "shard", "currency"}
	return upsertChunks(ctx, q, "usage_rollup_dim", lead, len(keys), func(i int) ([]any, *usage.Sums) {
		k := keys[i]
		return []any{k.zone, k.dim, k.start, k.value, k.shard, k.currency}, dims[k]
	})
}

// rollupChunk bounds the rows of one upsert. The SQLite driver finds each
// $N parameter by name, in time linear in the statement's parameters, so a
// statement of n rows costs n² to bind: 8 rows (264 parameters) keep that
// small while PostgreSQL still gets several rows per round trip.
const rollupChunk = 8

func upsertRollups(ctx context.Context, q Querier, day bool, keys []rollupKey, sums map[rollupKey]*usage.Sums) error {
	table, lead := "usage_rollup_hour", []string{"bucket_ns"}
	if day {
		table, lead = "usage_rollup_day", []string{"zone", "day_ns"}
	}
	lead = append(lead, rollupDims...)
	return upsertChunks(ctx, q, table, lead, len(keys), func(i int) ([]any, *usage.Sums) {
		k := keys[i]
		var args []any
		if day {
			args = append(args, k.zone)
		}
		return append(args, k.start, k.tenant, k.key, k.model, k.channel, k.currency), sums[k]
	})
}

// upsertChunks adds n rows to a rollup table: row(i) gives the i-th row's
// key columns (lead, in order) and its sums.
func upsertChunks(ctx context.Context, q Querier, table string, lead []string, n int, row func(i int) ([]any, *usage.Sums)) error {
	cols := append(slices.Clone(lead), rollupSums...)
	var set []string
	for _, c := range rollupSums {
		set = append(set, c+" = "+table+"."+c+" + excluded."+c)
	}
	conflict := " ON CONFLICT (" + strings.Join(lead, ", ") + ") DO UPDATE SET " + strings.Join(set, ", ")
	for done := 0; done < n; {
		m := min(n-done, rollupChunk)
		var b strings.Builder
		b.WriteString("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES ")
		args := make([]any, 0, m*len(cols))
		for i := done; i < done+m; i++ {
			if i > done {
				b.WriteString(", ")
			}
			b.WriteString("(")
			for j := range cols {
				if j > 0 {
					b.WriteString(", ")
				}
				b.WriteString("$" + strconv.Itoa(len(args)+j+1))
			}
			b.WriteString(")")
			key, s := row(i)
			args = append(append(args, key...), s.Requests, s.Errors, s.Input, s.CachedInput, s.CacheWrite, s.Output,
				s.Reasoning, s.CostNanos, s.DurationNs, s.TTFTSumNanos)
			for _, h := range s.TTFT {
				args = append(args, h)
			}
		}
		b.WriteString(conflict)
		if _, err := q.Exec(ctx, b.String(), args...); err != nil {
			return fmt.Errorf("usage rollups: %w", err)
		}
		done += m
	}
	return nil
}
