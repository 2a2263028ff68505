// Package prefill fills a baimo database (a SQLite file, or any store such
// as PostgreSQL) with a realistic history of usage records and their
// settlements, quickly, so that benchmarks and load runs can start where a
// gateway that has run for months is: a large database and prepaid tenants.
// Records go through the same path as the gateway's (the catalog's rating,
// holds in memory on SQLite or as rows in a store several nodes share,
// ledger.SettleBatch), so the books audit clean and the bytes stored are the
// bytes the gateway stores. Command mkdb runs it; Sizes and PostgresSizes
// measure a database.
package prefill

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	_ "modernc.org/sqlite" // the driver of Sizes

	"baimo/catalog"
	"baimo/internal/billing"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

// Limits on one fill.
const (
	MaxRecords = 50_000_000
	MaxTenants = 10_000
	MaxKeys    = 100_000
	MaxBatch   = 10_000
)

// Options says what to fill.
type Options struct {
	Path   string // the database file of Fill; created (it must not exist unless Append)
	Append bool   // add to an existing database
	// Shared says the store is shared by several gateway nodes (PostgreSQL):
	// holds are then placed as a node of such a deployment places them, as
	// rows in the store, group-committed, instead of in memory. FillStore
	// only; Fill's SQLite file has one writer.
	Shared   bool
	Records  int            // usage records to add
	Tenant   string         // the prepaid tenant a load run bills (its keys are the first); default "bench"
	Currency money.Currency // the gateway's billing currency; default CNY
	Tenants  int            // tenants in all, Tenant included; default 20
	Keys     int            // API keys in all; default 200
	Days     int            // the records' start times spread over the Days before now; default 90
	Batch    int            // records settled per transaction (the recorder's batch); default 256
	Seed     uint64         // of the random choices; default 1
	// Progress, if set, is called after each batch with the records added.
	Progress func(done int)
	// Stop, if set, ends the fill between two batches once it is closed,
	// without an error: every record added is settled (a cancelled context
	// instead may leave the holds of the batch it interrupts pending).
	Stop <-chan struct{}
}

func (o *Options) defaults() error {
	if o.Tenant == "" {
		o.Tenant = "bench"
	}
	if o.Currency == "" {
		o.Currency = money.CNY
	}
	if o.Tenants == 0 {
		o.Tenants = 20
	}
	if o.Keys == 0 {
		o.Keys = 200
	}
	if o.Days == 0 {
		o.Days = 90
	}
	if o.Batch == 0 {
		o.Batch = 256
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	switch {
	case o.Path == "":
		return errors.New("prefill: no database path")
	case o.Records < 0 || o.Records > MaxRecords:
		return fmt.Errorf("prefill: records %d outside 0..%d", o.Records, MaxRecords)
	case o.Tenants < 1 || o.Tenants > MaxTenants:
		return fmt.Errorf("prefill: tenants %d outside 1..%d", o.Tenants, MaxTenants)
	case o.Keys < o.Tenants || o.Keys > MaxKeys:
		return fmt.Errorf("prefill: keys %d outside %d..%d (one per tenant at least)", o.Keys, o.Tenants, MaxKeys)
	case o.Days < 1 || o.Days > 3650:
		return fmt.Errorf("prefill: days %d outside 1..3650", o.Days)
	case o.Batch < 1 || o.Batch > MaxBatch:
		return fmt.Errorf("prefill: batch %d outside 1..%d", o.Batch, MaxBatch)
	}
	return nil
}

// Result is what a fill did.
type Result struct {
	Records  int           // added
	Elapsed  time.Duration // of the whole fill
	Settle   time.Duration // of the settlements alone
	Hold     time.Duration // of placing the holds (rows in a shared store; in memory otherwise)
	Rejected int           // settlements the ledger refused (0 unless the data is wrong)
}

// models a fill spreads its records over, with the channel serving each;
// those the catalog cannot rate in the currency are left out.
var models = []struct{ model, channel string }{
	{"deepseek-chat", "deepseek"}, {"deepseek-reasoner", "deepseek"}, {"qwen-plus", "qwen"}, {"qwen-turbo", "qwen"},
	{"glm-4-plus", "zhipu"}, {"moonshot-v1-8k", "kimi"}, {"gpt-4o-mini", "openai"}, {"gpt-4o", "openai"},
	{"claude-3-5-haiku-20241022", "anthropic"}, {"gemini-2.0-flash", "gemini"},
}

// Generator makes realistic, rated usage records of the keys of a
// database: mostly served, some refused before any upstream (a rate
// limit), some failed upstream. Start times are given by the caller.
type Generator struct {
	rng      *rand.Rand
	rater    *billing.Rater
	models   []struct{ model, channel string }
	keyIDs   []string
	tenantOf []string
	busy     int // the first busy keys are the load run's tenant's, asked more often
}

// NewGenerator returns a generator of records of the keys in db, rated in
// currency at times within [from, to].
func NewGenerator(ctx context.Context, db keys.Store, currency money.Currency, seed uint64, from, to time.Time) (*Generator, error) {
	cat, err := catalog.Load()
	if err != nil {
		return nil, err
	}
	g := &Generator{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)),
		rater: &billing.Rater{Catalog: cat, Currency: currency}}
	for _, m := range models {
		if g.rater.Check(m.model, m.model, from) == nil && g.rater.Check(m.model, m.model, to) == nil {
			g.models = append(g.models, m)
		}
	}
	if len(g.models) == 0 {
		return nil, fmt.Errorf("prefill: the catalog prices none of the models in %s", currency)
	}
	ks, err := db.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	first := ""
	for _, k := range ks {
		if first == "" {
			first = k.TenantID
		}
		if k.TenantID == first && g.busy == len(g.keyIDs) {
			g.busy++
		}
		g.keyIDs = append(g.keyIDs, k.ID)
		g.tenantOf = append(g.tenantOf, k.TenantID)
	}
	if len(g.keyIDs) == 0 {
		return nil, errors.New("prefill: the database has no keys")
	}
	return g, nil
}

// Record returns one rated record started at start.
func (g *Generator) Record(start time.Time) (usage.Record, error) {
	rng := g.rng
	k := rng.IntN(len(g.keyIDs))
	if rng.IntN(4) == 0 {
		k = rng.IntN(max(1, g.busy))
	}
	m := g.models[rng.IntN(len(g.models))]
	r := usage.Record{RequestID: keys.NewID("req_"), KeyID: g.keyIDs[k], TenantID: g.tenantOf[k], Endpoint: "chat",
		Model: m.model, Channel: m.channel, UpstreamModel: m.model, Stream: rng.IntN(2) == 0, Status: 200, Complete: true,
		Start: start}
	switch p := rng.IntN(100); {
	case p < 3:
		r.Channel, r.UpstreamModel, r.Status, r.Complete, r.ErrorClass = "", "", 429, false, usage.ErrRateLimited
		r.Duration = time.Duration(50+rng.IntN(200)) * time.Microsecond
	case p < 5:
		r.Status, r.Complete, r.ErrorClass = 502, false, usage.ErrUpstream
		r.Duration = time.Duration(20+rng.IntN(2000)) * time.Millisecond
		r.Attempts = []usage.Attempt{{Channel: m.channel, Status: 502, ErrorClass: usage.ErrUpstream, Duration: r.Duration}}
	default:
		in := int64(50 + rng.IntN(4000))
		r.Usage = usage.Usage{Input: in, Output: int64(10 + rng.IntN(1000)), Source: usage.SourceVendor}
		if rng.IntN(3) == 0 {
			r.Usage.CachedInput = in / 2
		}
		r.TTFT = time.Duration(100+rng.IntN(900)) * time.Millisecond
		r.Duration = r.TTFT + time.Duration(rng.IntN(20_000))*time.Millisecond
		r.Attempts = []usage.Attempt{{Channel: m.channel, Status: 200, Duration: r.Duration}}
	}
	if err := g.rater.RateRecord(&r); err != nil {
		return r, fmt.Errorf("prefill: rate: %w", err)
	}
	return r, nil
}

// HoldFor returns the hold the gateway would have placed for r: its cost
// and up to as much again (the worst case is above the actual cost); zero
// when it costs nothing.
func (g *Generator) HoldFor(r *usage.Record) int64 {
	if r.CostNanos <= 0 {
		return 0
	}
	return r.CostNanos + g.rng.Int64N(r.CostNanos+1)
}

// Store is what a fill writes to: the ledger's store and the keys'.
type Store interface {
	ledger.Store
	keys.Store
}

// Fill adds o.Records usage records, settled, to the SQLite database at
// o.Path.
func Fill(ctx context.Context, o Options) (Result, error) {
	t0 := time.Now()
	if err := o.defaults(); err != nil {
		return Result{}, err
	}
	if _, err := os.Stat(o.Path); err == nil && !o.Append {
		return Result{}, fmt.Errorf("prefill: %s exists (pass Append to add to it)", o.Path)
	}
	db, err := sqlite.Open(ctx, o.Path)
	if err != nil {
		return Result{}, err
	}
	defer db.Close()
	o.Shared = false // one writer: holds in memory, as a lone `baimo serve` keeps them
	res, err := fill(ctx, db, o)
	res.Elapsed = time.Since(t0)
	return res, err
}

// FillStore adds o.Records usage records, settled, to db (o.Path is not
// used). Unless o.Append, db must hold no keys yet.
func FillStore(ctx context.Context, db Store, o Options) (Result, error) {
	t0 := time.Now()
	if o.Path == "" {
		o.Path = "-"
	}
	if err := o.defaults(); err != nil {
		return Result{}, err
	}
	if !o.Append {
		ks, err := db.ListKeys(ctx)
		if err != nil {
			return Result{}, err
		}
		if len(ks) > 0 {
			return Result{}, fmt.Errorf("prefill: the store already holds %d keys (pass Append to add to it)", len(ks))
		}
	}
	res, err := fill(ctx, db, o)
	res.Elapsed = time.Since(t0)
	return res, err
}

// fill adds o's records to db, its options checked.
func fill(ctx context.Context, db Store, o Options) (Result, error) {
	now := time.Now().UTC()
	from := now.Add(-time.Duration(o.Days) * 24 * time.Hour)
	l := ledger.New(db, ledger.Options{Node: "prefill", Exclusive: !o.Shared, HoldTTL: time.Hour, MaxBatch: max(o.Batch, 256)})
	defer l.Close()
	if err := SetUp(ctx, db, l, o); err != nil {
		return Result{}, err
	}
	g, err := NewGenerator(ctx, db, o.Currency, o.Seed, from, now)
	if err != nil {
		return Result{}, err
	}
	res := Result{}
	step := time.Duration(int64(now.Sub(from)) / int64(max(o.Records, 1)))
	ss := make([]ledger.Settlement, 0, o.Batch)
	holds := make([]ledger.HoldRequest, 0, o.Batch)
	for done := 0; done < o.Records; {
		n := min(o.Batch, o.Records-done)
		ss, holds = ss[:0], holds[:0]
		for i := range n {
			rec, err := g.Record(from.Add(time.Duration(done+i) * step))
			if err != nil {
				return res, err
			}
			if h := g.HoldFor(&rec); h > 0 {
				holds = append(holds, ledger.HoldRequest{RequestID: rec.RequestID, TenantID: rec.TenantID, KeyID: rec.KeyID,
					Amount: money.New(h, o.Currency)})
			}
			ss = append(ss, ledger.Settlement{Record: rec})
		}
		ht := time.Now()
		if err := placeHolds(ctx, l, holds, o.Shared); err != nil {
			return res, err
		}
		res.Hold += time.Since(ht)
		st := time.Now()
		out, err := l.SettleBatch(ctx, ss)
		res.Settle += time.Since(st)
		if err != nil {
			return res, fmt.Errorf("prefill: settle: %w", err)
		}
		for _, r := range out {
			if r.Err != nil {
				res.Rejected++
			}
		}
		done += n
		res.Records = done
		if o.Progress != nil {
			o.Progress(done)
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		select {
		case <-o.Stop:
			return res, nil
		default:
		}
	}
	return res, nil
}

// placeHolds places hs with l: one by one when they are kept in memory; at
// once when they are rows in a shared store, so that the ledger's committer
// places them in one transaction, as it does a busy node's.
func placeHolds(ctx context.Context, l *ledger.Ledger, hs []ledger.HoldRequest, shared bool) error {
	if !shared {
		for _, h := range hs {
			if _, err := l.Hold(ctx, h); err != nil {
				return fmt.Errorf("prefill: hold: %w", err)
			}
		}
		return nil
	}
	errs := make([]error, len(hs))
	var wg sync.WaitGroup
	for i := range hs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := l.Hold(ctx, hs[i]); err != nil {
				errs[i] = fmt.Errorf("prefill: hold: %w", err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// SetUp creates, with l and in db, the tenants of o (the first is o.Tenant,
// prepaid; then a mix of prepaid and postpaid) with money enough for every
// record, and the keys, the first ones o.Tenant's. Fill calls it; a
// benchmark on another store may too (o.Path is not used).
func SetUp(ctx context.Context, db keys.Store, l *ledger.Ledger, o Options) error {
	if o.Path == "" {
		o.Path = "-"
	}
	if err := o.defaults(); err != nil {
		return err
	}
	now := time.Now().UTC()
	ids := make([]string, o.Tenants)
	for i := range ids {
		ids[i] = fmt.Sprintf("t%04d", i)
		kind := ledger.Prepaid
		if i%3 == 2 {
			kind = ledger.Postpaid
		}
		if i == 0 {
			ids[i] = o.Tenant
		}
		if o.Append {
			if _, err := l.Tenant(ctx, ids[i]); err == nil {
				continue
			}
		}
		t := ledger.Tenant{ID: ids[i], Name: "prefill " + ids[i], Kind: kind, Currency: o.Currency}
		if kind == ledger.Postpaid {
			t.CreditLimit = ledger.MaxAmount
		}
		if _, err := l.CreateTenant(ctx, t); err != nil {
			return fmt.Errorf("prefill: tenant %s: %w", t.ID, err)
		}
		if kind == ledger.Prepaid { // 1e8 main units: more than any fill spends
			if _, err := l.TopUp(ctx, ledger.MoneyRequest{TenantID: t.ID, Amount: ledger.MaxAmount, Note: "prefill"}); err != nil {
				return fmt.Errorf("prefill: top up %s: %w", t.ID, err)
			}
		}
	}
	if o.Append {
		return nil // keys exist
	}
	for i := range o.Keys {
		_, k, err := keys.Generate()
		if err != nil {
			return err
		}
		k.ID, k.Name, k.CreatedAt = keys.NewID("key_"), fmt.Sprintf("prefill %d", i), now.Add(time.Duration(i)*time.Millisecond)
		k.TenantID = ids[i*o.Tenants/o.Keys]
		if err := db.CreateKey(ctx, k); err != nil {
			return fmt.Errorf("prefill: key: %w", err)
		}
	}
	return nil
}

// Sizes returns the bytes each table and index of the SQLite database at
// path takes (SQLite's dbstat), and their total, after checkpointing its
// write-ahead log.
func Sizes(ctx context.Context, path string) (map[string]int64, int64, error) {
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		return nil, 0, err
	}
	defer db.Close()
	if _, err := db.ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
		return nil, 0, fmt.Errorf("checkpoint %s: %w", path, err)
	}
	rows, err := db.QueryContext(ctx, `SELECT name, sum(pgsize) FROM dbstat GROUP BY name`)
	if err != nil {
		return nil, 0, fmt.Errorf("sizes of %s: %w", path, err)
	}
	defer rows.Close()
	out := map[string]int64{}
	var total int64
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, 0, err
		}
		out[name] = n
		total += n
	}
	return out, total, rows.Err()
}

// PostgresSizes returns the bytes each table (with its TOAST data and maps)
// and each index of the current schema of the PostgreSQL database of pool
// takes, and their total.
func PostgresSizes(ctx context.Context, pool *pgxpool.Pool) (map[string]int64, int64, error) {
	rows, err := pool.Query(ctx, `SELECT c.relname,
		CASE c.relkind WHEN 'i' THEN pg_total_relation_size(c.oid) ELSE pg_table_size(c.oid) END
		FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'i', 'm')`)
	if err != nil {
		return nil, 0, fmt.Errorf("sizes: %w", err)
	}
	defer rows.Close()
	out := map[string]int64{}
	var total int64
	for rows.Next() {
		var name string
		var n int64
		if err := rows.Scan(&name, &n); err != nil {
			return nil, 0, fmt.Errorf("sizes: %w", err)
		}
		out[name] = n
		total += n
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("sizes: %w", err)
	}
	return out, total, nil
}
