// Command mkdb builds a baimo SQLite database, or fills a PostgreSQL one,
// prefilled with usage records and their settlements (package prefill), for
// benchmarks and load runs that must start from a database a gateway has used
// for months, and prints what it holds per table and index and per record.
//
//	go run ./bench/prefill/mkdb -db /tmp/baimo-5m.db -records 5000000
//
// bench/load/run.sh starts baimo on a copy of it with PREFILL=/tmp/baimo-5m.db.
//
// With -postgres, the records go into an existing PostgreSQL database (its
// baimo schema created by the store's migrations; it must hold no keys yet
// unless -append), written as a node of a multi-node deployment writes them
// (holds are rows in the database):
//
//	psql -h 127.0.0.1 -U postgres -c 'CREATE DATABASE baimo_bench'
//	go run ./bench/prefill/mkdb -postgres 'postgres://postgres@127.0.0.1:5432/baimo_bench?sslmode=disable' \
//		-records 5000000 -currency USD
//
// bench/load/run.sh starts baimo with --postgres on it with POSTGRES=DSN (the
// run adds to that database; it is not copied).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"baimo/bench/prefill"
	"baimo/internal/money"
	"baimo/internal/store/postgres"
)

func main() {
	// The first interrupt ends the fill after the batch under way (its
	// records settled) and prints what the database holds; a second one
	// exits at once.
	sig, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig.Done()
		stop() // the next signal has its default effect
		fmt.Fprintln(os.Stderr, "mkdb: interrupted: stopping after this batch")
	}()
	err := run(context.Background(), sig.Done(), os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, interrupt <-chan struct{}, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkdb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o prefill.Options
	var cur string
	var dsn string
	fs.StringVar(&o.Path, "db", "", "SQLite database file to create (this or -postgres)")
	fs.StringVar(&dsn, "postgres", "", "PostgreSQL DSN of an existing database to fill instead of a SQLite file")
	fs.BoolVar(&o.Append, "append", false, "add to an existing database")
	fs.IntVar(&o.Records, "records", 5_000_000, "usage records to add")
	fs.StringVar(&o.Tenant, "tenant", "bench", "the prepaid tenant a load run bills")
	fs.StringVar(&cur, "currency", "CNY", "the gateway's billing currency")
	fs.IntVar(&o.Tenants, "tenants", 20, "tenants in all")
	fs.IntVar(&o.Keys, "keys", 200, "API keys in all")
	fs.IntVar(&o.Days, "days", 90, "days the records' start times spread over")
	fs.IntVar(&o.Batch, "batch", 256, "records settled per transaction")
	fs.Uint64Var(&o.Seed, "seed", 1, "seed of the random choices")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o.Currency = money.Currency(cur)
	o.Stop = interrupt
	last := time.Now()
	o.Progress = func(done int) {
		if time.Since(last) >= 5*time.Second || done == o.Records {
			last = time.Now()
			fmt.Fprintf(stderr, "mkdb: %d of %d records\n", done, o.Records)
		}
	}
	var (
		res    prefill.Result
		sizes  map[string]int64
		total  int64
		before int64
		err    error
		where  = o.Path
		what   = "total (file, WAL checkpointed)"
	)
	switch {
	case dsn != "" && o.Path != "":
		return errors.New("-db and -postgres: pass one")
	case dsn != "":
		where, what = "postgres "+redact(dsn), "total (tables and indexes)"
		db, err := postgres.Open(ctx, patient(dsn))
		if err != nil {
			return err
		}
		defer db.Close()
		if _, before, err = prefill.PostgresSizes(ctx, db.Pool()); err != nil {
			return err
		}
		o.Shared = true
		if res, err = prefill.FillStore(ctx, db, o); err != nil {
			return err
		}
		if sizes, total, err = prefill.PostgresSizes(ctx, db.Pool()); err != nil {
			return err
		}
	case o.Path != "":
		if o.Append {
			if _, before, err = prefill.Sizes(ctx, o.Path); err != nil {
				return err
			}
		}
		if res, err = prefill.Fill(ctx, o); err != nil {
			return err
		}
		if sizes, total, err = prefill.Sizes(ctx, o.Path); err != nil {
			return err
		}
	default:
		return errors.New("no database: pass -db FILE or -postgres DSN")
	}
	fmt.Fprintf(stdout, "%s: %d records added in %s (settlements %s: %.0f records/s; holds %s), %d refused\n",
		where, res.Records, res.Elapsed.Round(time.Millisecond), res.Settle.Round(time.Millisecond),
		float64(res.Records)/res.Settle.Seconds(), res.Hold.Round(time.Millisecond), res.Rejected)
	names := make([]string, 0, len(sizes))
	for n := range sizes {
		names = append(names, n)
	}
	sort.Slice(names, func(a, b int) bool { return sizes[names[a]] > sizes[names[b]] })
	fmt.Fprintf(stdout, "%-40s %14s %10s\n", "table or index", "bytes", "per record")
	for _, n := range names {
		if sizes[n] < 64<<10 {
			continue
		}
		fmt.Fprintf(stdout, "%-40s %14d %10.1f\n", n, sizes[n], float64(sizes[n])/float64(max(res.Records, 1)))
	}
	fmt.Fprintf(stdout, "%-40s %14d %10.1f\n", what, total, float64(total-before)/float64(max(res.Records, 1)))
	return nil
}

// patient returns a URL dsn with a server timeout of a transaction idle
// between statements of a minute, unless it sets one: the store's default
// (a second, so that a node cut off does not hold its locks) ends a fill
// on a machine busy enough to pause it for longer, and nothing else writes
// meanwhile.
func patient(dsn string) string {
	const param = "idle_in_transaction_session_timeout"
	u, err := url.Parse(dsn)
	if err != nil || !strings.HasPrefix(u.Scheme, "postgres") || u.Query().Has(param) {
		return dsn
	}
	q := u.Query()
	q.Set(param, "60000")
	u.RawQuery = q.Encode()
	return u.String()
}

// redact returns dsn without its password.
func redact(dsn string) string {
	if u, err := url.Parse(dsn); err == nil && u.Scheme != "" {
		return u.Redacted()
	}
	return "(dsn)"
}
