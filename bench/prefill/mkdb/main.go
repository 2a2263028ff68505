// Command mkdb builds a baimo SQLite database prefilled with usage records
// and their settlements (package prefill), for benchmarks and load runs that
// must start from a database a gateway has used for months, and prints what
// it holds per table and index and per record.
//
//	go run ./bench/prefill/mkdb -db /tmp/baimo-5m.db -records 5000000
//
// bench/load/run.sh starts baimo on a copy of it with PREFILL=/tmp/baimo-5m.db.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
	"time"

	"baimo/bench/prefill"
	"baimo/internal/money"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "mkdb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkdb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o prefill.Options
	var cur string
	fs.StringVar(&o.Path, "db", "", "database file to create (required)")
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
	last := time.Now()
	o.Progress = func(done int) {
		if time.Since(last) >= 5*time.Second || done == o.Records {
			last = time.Now()
			fmt.Fprintf(stderr, "mkdb: %d of %d records\n", done, o.Records)
		}
	}
	before := int64(0)
	if o.Append {
		var err error
		if _, before, err = prefill.Sizes(ctx, o.Path); err != nil {
			return err
		}
	}
	res, err := prefill.Fill(ctx, o)
	if err != nil {
		return err
	}
	sizes, total, err := prefill.Sizes(ctx, o.Path)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: %d records added in %s (settlements %s: %.0f records/s), %d refused\n",
		o.Path, res.Records, res.Elapsed.Round(time.Millisecond), res.Settle.Round(time.Millisecond),
		float64(res.Records)/res.Settle.Seconds(), res.Rejected)
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
	fmt.Fprintf(stdout, "%-40s %14d %10.1f\n", "total (file, WAL checkpointed)", total, float64(total-before)/float64(max(res.Records, 1)))
	return nil
}
