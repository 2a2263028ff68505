package sqlcore

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"baimo/internal/usage"
)

// The SQL shape of usage records: the column lists, the filter's WHERE
// clause, the insert arguments and the row scan.

// RecordColumns lists the columns RecordArgs fills, in order.
const RecordColumns = `request_id, key_id, tenant_id, endpoint, model, channel, upstream_model,
	stream, status, input_tokens, cached_input_tokens, cache_write_5m, cache_write_1h, output_tokens, reasoning_tokens,
	images, audio_seconds, characters, search_calls, source, complete, error_class, start_ns, ttft_ns, duration_ns,
	attempts, currency, cost_nanos, price_version, lines, counted_input`

// numRecordColumns is the number of RecordColumns.
const numRecordColumns = 31

// recordSelect lists the columns scanRecord reads, in order.
const recordSelect = `seq, ` + RecordColumns

// InsertRecord stores one record, or nothing when its request id is stored.
var InsertRecord = `INSERT INTO usage_records (` + RecordColumns + `) VALUES (` + Placeholders(1, numRecordColumns) + `)
	ON CONFLICT (request_id) DO NOTHING`

// Placeholders returns "$from, ..., $(from+n-1)".
func Placeholders(from, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("$" + strconv.Itoa(from+i))
	}
	return b.String()
}

// RecordArgs returns r's column values in RecordColumns order.
func RecordArgs(r *usage.Record) []any {
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
		r.Stream, r.Status, u.Input, u.CachedInput, u.CacheWrite5m, u.CacheWrite1h, u.Output, u.Reasoning,
		u.Images, u.AudioSeconds, u.Characters, u.SearchCalls, u.Source.String(), r.Complete, string(r.ErrorClass),
		UnixNanos(r.Start), int64(r.TTFT), int64(r.Duration), attempts, r.Currency, r.CostNanos, r.PriceVersion, lines,
		r.CountedInput}
}

// RecordCostArg is the index of the record's CostNanos in RecordArgs.
const RecordCostArg = 27

// scanRecord reads one row of recordSelect.
func scanRecord(row Row) (usage.Record, error) {
	var r usage.Record
	var source, errClass, attempts, lines string
	var start, ttft, dur int64
	u := &r.Usage
	if err := row.Scan(&r.Seq, &r.RequestID, &r.KeyID, &r.TenantID, &r.Endpoint, &r.Model, &r.Channel, &r.UpstreamModel,
		&r.Stream, &r.Status, &u.Input, &u.CachedInput, &u.CacheWrite5m, &u.CacheWrite1h, &u.Output, &u.Reasoning,
		&u.Images, &u.AudioSeconds, &u.Characters, &u.SearchCalls, &source, &r.Complete, &errClass, &start, &ttft, &dur,
		&attempts, &r.Currency, &r.CostNanos, &r.PriceVersion, &lines, &r.CountedInput); err != nil {
		return usage.Record{}, err
	}
	u.Source = usage.ParseSource(source)
	r.ErrorClass = usage.ErrorClass(errClass)
	r.Start = FromUnixNanos(start)
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

// where returns the WHERE clause (with a leading space, or "") and its
// arguments for f.
func where(f usage.Filter) (string, []any) {
	var conds []string
	var args []any
	add := func(col string, a any) {
		args = append(args, a)
		conds = append(conds, col+"$"+strconv.Itoa(len(args)))
	}
	if f.RequestID != "" {
		add("request_id = ", f.RequestID)
	}
	if f.KeyID != "" {
		add("key_id = ", f.KeyID)
	}
	if f.TenantID != "" {
		// The default tenant's records include those of keys made without one.
		id, alt := tenantIDs(f.TenantID)
		args = append(args, id, alt)
		conds = append(conds, "tenant_id IN ($"+strconv.Itoa(len(args)-1)+", $"+strconv.Itoa(len(args))+")")
	}
	if f.Model != "" {
		add("model = ", f.Model)
	}
	if f.Channel != "" {
		add("channel = ", f.Channel)
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

// listLimit bounds a filter's limit: 100 by default, at most 10,000.
func listLimit(f usage.Filter) int {
	if f.Limit <= 0 || f.Limit > 10000 {
		return 100
	}
	return f.Limit
}
