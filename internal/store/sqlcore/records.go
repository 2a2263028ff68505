package sqlcore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/usage"
)

// The SQL shape of usage records. A record keeps its request id, numbers,
// currency and times as they are; the strings that repeat from record to
// record (key, tenant, endpoint, model, channel, upstream model, source,
// error class, price version) as ids of package names' dictionary (columns
// named *_ref); its upstream attempts and rated lines in compact text
// (formatAttempts, price.AppendLines). Records of earlier releases were
// converted to this shape by migration 0800, their attempts and lines kept
// as the JSON they were, which the readers of both forms read.

// RecordColumns lists the columns a record's insert fills, in order.
const RecordColumns = `request_id, key_ref, tenant_ref, endpoint_ref, model_ref, channel_ref, upstream_ref,
	stream, status, input_tokens, cached_input_tokens, cache_write_5m, cache_write_1h, output_tokens, reasoning_tokens,
	images, audio_seconds, characters, search_calls, source_ref, complete, class_ref, start_ns, ttft_ns, duration_ns,
	attempts, currency, cost_nanos, version_ref, lines, counted_input, settled_in`

// NumRecordColumns is the number of RecordColumns.
const NumRecordColumns = 32

// RecordCostArg is the index of the record's CostNanos in a record's
// insert arguments (Ledger.RecordArgs).
const RecordCostArg = 27

// recordSelect lists the columns scanRecord reads, in order.
const recordSelect = `seq, ` + RecordColumns

// InsertRecord stores one record, or nothing when its request id is stored.
var InsertRecord = insertRecords(1)

// insertRecords returns the statement that stores n records (those whose
// request id is not stored yet).
func insertRecords(n int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO usage_records (` + RecordColumns + `) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + Placeholders(i*NumRecordColumns+1, NumRecordColumns) + ")")
	}
	b.WriteString(` ON CONFLICT (request_id) DO NOTHING`)
	return b.String()
}

// returningIDs makes an insert of records return the request ids it stored.
const returningIDs = ` RETURNING request_id`

// recordChunks are the sizes of the multi-row inserts of a batch, largest
// first: a few statement texts, each prepared once.
var recordChunks = [...]int{64, 16, 4, 1}

var insertTexts = sync.OnceValue(func() map[int]string {
	m := map[int]string{}
	for _, n := range recordChunks {
		m[n] = insertRecords(n)
	}
	return m
})

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

// recordWriter writes usage records inside one transaction.
type recordWriter struct {
	q     Querier
	names *names
	added txNames
}

// RecordArgs returns r's column values in RecordColumns order, adding its
// new names to the dictionary.
func (w *recordWriter) RecordArgs(ctx context.Context, r *usage.Record) ([]any, error) {
	return w.appendArgs(ctx, nil, r)
}

func (w *recordWriter) appendArgs(ctx context.Context, dst []any, r *usage.Record) ([]any, error) {
	var refs [9]int64
	for i, s := range [9]string{r.KeyID, r.TenantID, r.Endpoint, r.Model, r.Channel, r.UpstreamModel,
		r.Usage.Source.String(), string(r.ErrorClass), r.PriceVersion} {
		var err error
		if refs[i], err = w.names.id(ctx, w.q, w.added, s); err != nil {
			return nil, fmt.Errorf("usage record %s: %w", r.RequestID, err)
		}
	}
	return appendRow(dst, r, &refs), nil
}

// RecordArgTypes returns a record's insert arguments for the zero record:
// their Go types, for callers that need them (PostgreSQL's arrays).
func RecordArgTypes() []any { return appendRow(nil, &usage.Record{}, &[9]int64{}) }

// appendRow appends r's column values, its names already ids.
func appendRow(dst []any, r *usage.Record, refs *[9]int64) []any {
	u := &r.Usage
	return append(dst, r.RequestID, refs[0], refs[1], refs[2], refs[3], refs[4], refs[5],
		r.Stream, r.Status, u.Input, u.CachedInput, u.CacheWrite5m, u.CacheWrite1h, u.Output, u.Reasoning,
		u.Images, u.AudioSeconds, u.Characters, u.SearchCalls, refs[6], r.Complete, refs[7],
		UnixNanos(r.Start), int64(r.TTFT), int64(r.Duration), formatAttempts(r), r.Currency, r.CostNanos, refs[8],
		string(r.Lines), r.CountedInput, r.SettledIn)
}

// insert stores recs, in multi-row statements, and reports which were
// stored (false: a record of that request id was stored already).
func (w *recordWriter) insert(ctx context.Context, recs []usage.Record) ([]bool, error) {
	stored := make([]bool, len(recs))
	if len(recs) == 1 {
		args, err := w.RecordArgs(ctx, &recs[0])
		if err != nil {
			return nil, err
		}
		n, err := w.q.Exec(ctx, InsertRecord, args...)
		if err != nil {
			return nil, fmt.Errorf("write usage record %s: %w", recs[0].RequestID, err)
		}
		stored[0] = n > 0
		return stored, nil
	}
	at := map[string]int{}
	args := make([]any, 0, recordChunks[0]*NumRecordColumns)
	for i := 0; i < len(recs); {
		n := recordChunks[len(recordChunks)-1]
		for _, c := range recordChunks {
			if c <= len(recs)-i {
				n = c
				break
			}
		}
		args = args[:0]
		clear(at)
		for j := i; j < i+n; j++ {
			var err error
			if args, err = w.appendArgs(ctx, args, &recs[j]); err != nil {
				return nil, err
			}
			if _, dup := at[recs[j].RequestID]; !dup {
				at[recs[j].RequestID] = j
			}
		}
		if err := w.insertChunk(ctx, insertTexts()[n], args, recs[i:i+n], at, stored); err != nil {
			return nil, fmt.Errorf("write %d usage records: %w", n, err)
		}
		i += n
	}
	return stored, nil
}

// insertChunk runs one multi-row insert of recs and marks in stored (by
// index in at) those it stored. Every record is new but for a retried
// settlement, so the insert runs as it is, under a savepoint: when it
// stored them all, that is all there is to know. Otherwise it is rolled
// back to the savepoint and run again returning the ids it stores, which a
// statement that returns rows makes dear (in SQLite a third of a record's
// write).
func (w *recordWriter) insertChunk(ctx context.Context, text string, args []any, recs []usage.Record, at map[string]int, stored []bool) error {
	if _, err := w.q.Exec(ctx, `SAVEPOINT records`); err != nil {
		return err
	}
	n, err := w.q.Exec(ctx, text, args...)
	if err != nil {
		return err
	}
	if n == int64(len(recs)) {
		for _, r := range recs {
			stored[at[r.RequestID]] = true
		}
		_, err := w.q.Exec(ctx, `RELEASE SAVEPOINT records`)
		return err
	}
	if _, err := w.q.Exec(ctx, `ROLLBACK TO SAVEPOINT records`); err != nil {
		return err
	}
	if _, err := w.q.Exec(ctx, `RELEASE SAVEPOINT records`); err != nil {
		return err
	}
	ids, err := queryAll(ctx, w.q, func(r Row) (string, error) {
		var id string
		return id, r.Scan(&id)
	}, text+returningIDs, args...)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if j, ok := at[id]; ok {
			stored[j] = true
		}
	}
	return nil
}

// formatAttempts returns r's attempts in compact text: one per ';', its
// channel ("" when it is the record's), status, error class, duration in
// nanoseconds and upstream key id separated by ','; "" when there are none.
// Records of earlier releases have no key field.
func formatAttempts(r *usage.Record) string {
	if len(r.Attempts) == 0 {
		return ""
	}
	var b []byte
	for i, a := range r.Attempts {
		if i > 0 {
			b = append(b, ';')
		}
		if a.Channel != r.Channel {
			b = append(b, attemptEscaper.Replace(a.Channel)...)
		}
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(a.Status), 10)
		b = append(b, ',')
		b = append(b, attemptEscaper.Replace(string(a.ErrorClass))...)
		b = append(b, ',')
		b = strconv.AppendInt(b, int64(a.Duration), 10)
		if a.Key != "" {
			b = append(b, ',')
			b = append(b, attemptEscaper.Replace(a.Key)...)
		}
	}
	return string(b)
}

var (
	attemptEscaper   = strings.NewReplacer("%", "%25", ",", "%2C", ";", "%3B")
	attemptUnescaper = strings.NewReplacer("%25", "%", "%2C", ",", "%3B", ";")
)

// maxAttempts bounds the attempts parseAttempts reads from one record.
const maxAttempts = 64

var errAttempts = errors.New("unreadable attempts")

// parseAttempts reads attempts as a record stores them: formatAttempts'
// text, or the JSON of earlier releases.
func parseAttempts(s, channel string) ([]usage.Attempt, error) {
	switch {
	case s == "" || s == "[]":
		return nil, nil
	case s[0] == '[':
		var out []usage.Attempt
		if err := json.Unmarshal([]byte(s), &out); err != nil {
			return nil, fmt.Errorf("%w: %v", errAttempts, err)
		}
		return out, nil
	}
	parts := strings.Split(s, ";")
	if len(parts) > maxAttempts {
		return nil, fmt.Errorf("%w: %d attempts", errAttempts, len(parts))
	}
	out := make([]usage.Attempt, 0, len(parts))
	for _, p := range parts {
		f := strings.Split(p, ",")
		if len(f) != 4 && len(f) != 5 {
			return nil, fmt.Errorf("%w: %q", errAttempts, p)
		}
		st, err1 := strconv.Atoi(f[1])
		d, err2 := strconv.ParseInt(f[3], 10, 64)
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%w: %q", errAttempts, p)
		}
		a := usage.Attempt{Channel: channel, Status: st, ErrorClass: usage.ErrorClass(attemptUnescaper.Replace(f[2])),
			Duration: time.Duration(d)}
		if f[0] != "" {
			a.Channel = attemptUnescaper.Replace(f[0])
		}
		if len(f) == 5 {
			a.Key = attemptUnescaper.Replace(f[4])
		}
		out = append(out, a)
	}
	return out, nil
}

// storedRecord is a row of recordSelect, its names still ids.
type storedRecord struct {
	r    usage.Record
	refs [9]int64 // key, tenant, endpoint, model, channel, upstream, source, class, version
	atts string
}

// scanRecord reads one row of recordSelect; finish it with a resolver.
func scanRecord(row Row) (storedRecord, error) {
	var s storedRecord
	r := &s.r
	var lines string
	var start, ttft, dur int64
	u := &r.Usage
	if err := row.Scan(&r.Seq, &r.RequestID, &s.refs[0], &s.refs[1], &s.refs[2], &s.refs[3], &s.refs[4], &s.refs[5],
		&r.Stream, &r.Status, &u.Input, &u.CachedInput, &u.CacheWrite5m, &u.CacheWrite1h, &u.Output, &u.Reasoning,
		&u.Images, &u.AudioSeconds, &u.Characters, &u.SearchCalls, &s.refs[6], &r.Complete, &s.refs[7], &start, &ttft, &dur,
		&s.atts, &r.Currency, &r.CostNanos, &s.refs[8], &lines, &r.CountedInput, &r.SettledIn); err != nil {
		return storedRecord{}, err
	}
	r.Start = FromUnixNanos(start)
	r.TTFT, r.Duration = time.Duration(ttft), time.Duration(dur)
	if lines != "" && lines != "[]" {
		r.Lines = []byte(lines)
	}
	return s, nil
}

// finish fills in the record's names (res has fetched its refs).
func (s *storedRecord) finish(res *resolver) (usage.Record, error) {
	r := s.r
	r.KeyID, r.TenantID, r.Endpoint = res.name(s.refs[0]), res.name(s.refs[1]), res.name(s.refs[2])
	r.Model, r.Channel, r.UpstreamModel = res.name(s.refs[3]), res.name(s.refs[4]), res.name(s.refs[5])
	r.Usage.Source = usage.ParseSource(res.name(s.refs[6]))
	r.ErrorClass = usage.ErrorClass(res.name(s.refs[7]))
	r.PriceVersion = res.name(s.refs[8])
	var err error
	if r.Attempts, err = parseAttempts(s.atts, r.Channel); err != nil {
		return usage.Record{}, fmt.Errorf("usage record %s: %w", r.RequestID, err)
	}
	return r, nil
}

// The outcome of a record (usage.Record.Outcome) in SQL.
const (
	servedSQL  = `status BETWEEN 200 AND 399`
	refusedSQL = `(status NOT BETWEEN 200 AND 399 AND channel_ref = 0)`
	failedSQL  = `(status NOT BETWEEN 200 AND 399 AND channel_ref <> 0)`
)

// filter is a usage.Filter in SQL.
type filter struct {
	conds []string
	args  []any
	none  bool // a name the filter asks for is in no record
}

func (f *filter) arg(a any) string {
	f.args = append(f.args, a)
	return "$" + strconv.Itoa(len(f.args))
}

// ref adds col = the id of s; an unknown name matches nothing.
func (f *filter) ref(ctx context.Context, q Querier, n *names, col, s string) error {
	id, ok, err := n.lookup(ctx, q, s)
	if err != nil {
		return err
	}
	if !ok {
		f.none = true
		return nil
	}
	f.conds = append(f.conds, col+" = "+f.arg(id))
	return nil
}

// tenant adds the records of a tenant: the default tenant's include those
// of keys made without one.
func (f *filter) tenant(ctx context.Context, q Querier, n *names, tenantID string) error {
	a, b := tenantIDs(tenantID)
	ids := make([]string, 0, 2)
	for _, s := range []string{a, b} {
		id, ok, err := n.lookup(ctx, q, s)
		if err != nil {
			return err
		}
		if ok {
			ids = append(ids, f.arg(id))
		}
	}
	if len(ids) == 0 {
		f.none = true
		return nil
	}
	f.conds = append(f.conds, "tenant_ref IN ("+strings.Join(ids, ", ")+")")
	return nil
}

// where returns the SQL of f: its WHERE clause (with a leading space, or
// "") and arguments; none is true when no record can match.
func (s *Store) where(ctx context.Context, f usage.Filter) (filter, string, error) {
	var w filter
	q := s.read
	if f.RequestID != "" {
		w.conds = append(w.conds, "request_id = "+w.arg(f.RequestID))
	}
	for _, c := range []struct{ col, name string }{{"key_ref", f.KeyID}, {"channel_ref", f.Channel}} {
		if c.name != "" {
			if err := w.ref(ctx, q, s.names, c.col, c.name); err != nil {
				return w, "", err
			}
		}
	}
	if f.TenantID != "" {
		if err := w.tenant(ctx, q, s.names, f.TenantID); err != nil {
			return w, "", err
		}
	}
	if f.Model == usage.UnknownModel {
		w.conds = append(w.conds, "model_ref = 0")
	} else if f.Model != "" {
		if err := w.ref(ctx, q, s.names, "model_ref", f.Model); err != nil {
			return w, "", err
		}
	}
	if !f.From.IsZero() {
		w.conds = append(w.conds, "start_ns >= "+w.arg(f.From.UnixNano()))
	}
	if !f.To.IsZero() {
		w.conds = append(w.conds, "start_ns < "+w.arg(f.To.UnixNano()))
	}
	if f.Status != 0 {
		w.conds = append(w.conds, "status = "+w.arg(f.Status))
	}
	switch f.Outcome {
	case usage.Served:
		w.conds = append(w.conds, servedSQL)
	case usage.Refused:
		w.conds = append(w.conds, refusedSQL)
	case usage.Failed:
		w.conds = append(w.conds, failedSQL)
	}
	if !f.After.IsZero() {
		start := w.arg(f.After.Start)
		w.conds = append(w.conds, "(start_ns < "+start+" OR (start_ns = "+start+" AND seq < "+w.arg(f.After.Seq)+"))")
	}
	if len(w.conds) == 0 {
		return w, "", nil
	}
	return w, " WHERE " + strings.Join(w.conds, " AND "), nil
}

// listLimit bounds a filter's limit: 100 by default, at most
// usage.MaxListLimit.
func listLimit(f usage.Filter) int {
	if f.Limit <= 0 {
		return 100
	}
	return min(f.Limit, usage.MaxListLimit)
}

// tenantIDs are the tenant ids a tenant's records carry: its own, and ""
// for the default tenant (records of keys without a tenant).
func tenantIDs(tenantID string) (string, string) {
	if tenantID == ledger.DefaultTenantID {
		return tenantID, ""
	}
	return tenantID, tenantID
}
