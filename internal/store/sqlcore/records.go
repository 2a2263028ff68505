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

// The outcome of a record (usage.Record.Outcome) in SQL.
const (
	servedSQL  = `status BETWEEN 200 AND 399`
	refusedSQL = `(status NOT BETWEEN 200 AND 399 AND channel = '')`
	failedSQL  = `(status NOT BETWEEN 200 AND 399 AND channel <> '')`
)

// where returns the WHERE clause (with a leading space, or "") and its
// arguments for f.
func where(f usage.Filter) (string, []any) {
	var conds []string
	var args []any
	arg := func(a any) string {
		args = append(args, a)
		return "$" + strconv.Itoa(len(args))
	}
	if f.RequestID != "" {
		conds = append(conds, "request_id = "+arg(f.RequestID))
	}
	if f.KeyID != "" {
		conds = append(conds, "key_id = "+arg(f.KeyID))
	}
	if f.TenantID != "" {
		// The default tenant's records include those of keys made without one.
		id, alt := tenantIDs(f.TenantID)
		conds = append(conds, "tenant_id IN ("+arg(id)+", "+arg(alt)+")")
	}
	if f.Model == usage.UnknownModel {
		conds = append(conds, "model = ''")
	} else if f.Model != "" {
		conds = append(conds, "model = "+arg(f.Model))
	}
	if f.Channel != "" {
		conds = append(conds, "channel = "+arg(f.Channel))
	}
	if !f.From.IsZero() {
		conds = append(conds, "start_ns >= "+arg(f.From.UnixNano()))
	}
	if !f.To.IsZero() {
		conds = append(conds, "start_ns < "+arg(f.To.UnixNano()))
	}
	if f.Status != 0 {
		conds = append(conds, "status = "+arg(f.Status))
	}
	switch f.Outcome {
	case usage.Served:
		conds = append(conds, servedSQL)
	case usage.Refused:
		conds = append(conds, refusedSQL)
	case usage.Failed:
		conds = append(conds, failedSQL)
	}
	if !f.After.IsZero() {
		start := arg(f.After.Start)
		conds = append(conds, "(start_ns < "+start+" OR (start_ns = "+start+" AND seq < "+arg(f.After.Seq)+"))")
	}
	if len(conds) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// listLimit bounds a filter's limit: 100 by default, at most
// usage.MaxListLimit.
func listLimit(f usage.Filter) int {
	if f.Limit <= 0 {
		return 100
	}
	return min(f.Limit, usage.MaxListLimit)
}
