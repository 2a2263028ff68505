// Package records is the SQL shape of usage records that the SQLite and
// PostgreSQL stores share: the column lists, the filter's WHERE clause, the
// insert arguments and the row scan. Each store supplies only what its
// dialect does differently (placeholders, booleans).
package records

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"baimo/internal/usage"
)

// InsertColumns lists the columns Args fills, in order.
const InsertColumns = `request_id, key_id, tenant_id, endpoint, model, channel, upstream_model,
	stream, status, input_tokens, cached_input_tokens, cache_write_5m, cache_write_1h, output_tokens, reasoning_tokens,
	images, audio_seconds, characters, search_calls, source, complete, error_class, start_ns, ttft_ns, duration_ns,
	attempts, currency, cost_nanos, price_version, lines, counted_input`

// NumInsertColumns is the number of InsertColumns.
const NumInsertColumns = 31

// SelectColumns lists the columns Scan reads, in order.
const SelectColumns = `seq, ` + InsertColumns

// Args returns r's column values in InsertColumns order; boolean turns a Go
// bool into the store's value for it.
func Args(r *usage.Record, boolean func(bool) any) []any {
	attempts := "[]"
	if len(r.Attempts) > 0 {
		b, _ := json.Marshal(r.Attempts) // plain structs: cannot fail
		attempts = string(b)
	}
	lines := "[]"
	if len(r.Lines) > 0 {
		lines = string(r.Lines)
	}
	u := &r.Usage
	return []any{r.RequestID, r.KeyID, r.TenantID, r.Endpoint, r.Model, r.Channel, r.UpstreamModel,
		boolean(r.Stream), r.Status, u.Input, u.CachedInput, u.CacheWrite5m, u.CacheWrite1h, u.Output, u.Reasoning,
		u.Images, u.AudioSeconds, u.Characters, u.SearchCalls, u.Source.String(), boolean(r.Complete), string(r.ErrorClass),
		unixNanos(r.Start), int64(r.TTFT), int64(r.Duration), attempts, r.Currency, r.CostNanos, r.PriceVersion, lines,
		r.CountedInput}
}

// Scan reads one row of SelectColumns with scan (a Rows.Scan).
func Scan(scan func(dest ...any) error) (usage.Record, error) {
	var r usage.Record
	var stream, complete bool
	var source, errClass, attempts, lines string
	var start, ttft, dur int64
	u := &r.Usage
	if err := scan(&r.Seq, &r.RequestID, &r.KeyID, &r.TenantID, &r.Endpoint, &r.Model, &r.Channel, &r.UpstreamModel,
		&stream, &r.Status, &u.Input, &u.CachedInput, &u.CacheWrite5m, &u.CacheWrite1h, &u.Output, &u.Reasoning,
		&u.Images, &u.AudioSeconds, &u.Characters, &u.SearchCalls, &source, &complete, &errClass, &start, &ttft, &dur,
		&attempts, &r.Currency, &r.CostNanos, &r.PriceVersion, &lines, &r.CountedInput); err != nil {
		return usage.Record{}, err
	}
	r.Stream, r.Complete = stream, complete
	u.Source = usage.ParseSource(source)
	r.ErrorClass = usage.ErrorClass(errClass)
	if start != 0 {
		r.Start = time.Unix(0, start).UTC()
	}
	r.TTFT, r.Duration = time.Duration(ttft), time.Duration(dur)
	if attempts != "[]" && attempts != "" {
		if err := json.Unmarshal([]byte(attempts), &r.Attempts); err != nil {
			return usage.Record{}, fmt.Errorf("usage record %s attempts: %w", r.RequestID, err)
		}
	}
	if lines != "[]" {
		r.Lines = []byte(lines)
	}
	return r, nil
}

// Where returns the WHERE clause (with a leading space, or "") and its
// arguments for f; placeholder(n) writes the n-th placeholder (1-based).
func Where(f usage.Filter, placeholder func(n int) string) (string, []any) {
	var conds []string
	var args []any
	add := func(col string, a any) {
		args = append(args, a)
		conds = append(conds, col+placeholder(len(args)))
	}
	if f.KeyID != "" {
		add("key_id = ", f.KeyID)
	}
	if f.TenantID != "" {
		add("tenant_id = ", f.TenantID)
	}
	if f.Model != "" {
		add("model = ", f.Model)
	}
	if !f.From.IsZero() {
		add("start_ns >= ", f.From.UnixNano())
	}
	if !f.To.IsZero() {
		add("start_ns < ", f.To.UnixNano())
	}
	if f.Status != 0 {
		add("status = ", f.Status)
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Limit bounds a filter's limit: 100 by default, at most 10,000.
func Limit(f usage.Filter) int {
	if f.Limit <= 0 || f.Limit > 10000 {
		return 100
	}
	return f.Limit
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}
