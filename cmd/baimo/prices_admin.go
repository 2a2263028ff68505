package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"

	"baimo/internal/money"
	"baimo/internal/price"
)

// maxImportFile bounds the file `baimo prices import` reads.
const maxImportFile = 1 << 20

func priceKeyFlag(fs *flag.FlagSet) *string {
	return fs.String("idempotency-key", "", "apply this at most once per KEY: re-running the command with the same KEY and "+
		"arguments returns the first result and adds nothing (default: a new key per invocation, which guards only "+
		"against this invocation's own retries)")
}

// pricesSet adds a version of one model's price through the admin API.
func pricesSet(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const syn = "prices set MODEL --input P --output P --currency CNY|USD [--per 1m|1k] [--from now|TIME] [--cached-input P] " +
		"[--reasoning P] [--vendor V] [--kind chat|embedding|...] [--context-window N] [--max-output N] [--source TEXT] [--idempotency-key KEY] [--json]"
	c, fs := adminSub("prices set", syn, stderr)
	in := fs.String("input", "", "price of uncached prompt tokens per --per tokens")
	out := fs.String("output", "", "price of output tokens per --per tokens")
	cached := fs.String("cached-input", "", "price of prompt tokens read from the vendor's cache (default: billed as input)")
	reasoning := fs.String("reasoning", "", "price of reasoning tokens when the model prices them apart (default: billed as output)")
	cur := fs.String("currency", "", "currency of the prices: CNY or USD (required)")
	per := fs.String("per", "1m", "the prices are per 1m (million) or 1k (thousand) tokens")
	from := fs.String("from", "now", `when the price takes effect: "now" or an RFC 3339 time (never the past)`)
	vendor := fs.String("vendor", "", "vendor of a model the catalog does not know (required for a new model)")
	kind := fs.String("kind", "", "kind of a new model: chat (default), embedding, rerank, image, audio, speech")
	window := fs.Int64("context-window", 0, "the model's context window in tokens (for the request hold)")
	maxOut := fs.Int64("max-output", 0, "the most output tokens one request may produce")
	source := fs.String("source", "set by the operator", "where the price comes from")
	key := priceKeyFlag(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(fs, args, 1, syn)
	if err != nil {
		return err
	}
	unit, ok := map[string]string{"1m": "per_1m", "1k": "per_1k", "1M": "per_1m", "1K": "per_1k"}[*per]
	if !ok {
		return fmt.Errorf("%w: --per %q: want 1m or 1k", errUsage, *per)
	}
	if *cur == "" {
		return fmt.Errorf("%w: --currency is required (CNY or USD)", errUsage)
	}
	prices := map[string]price.PriceSpec{}
	for _, p := range []struct{ kind, flag, v string }{{"input", "--input", *in}, {"output", "--output", *out},
		{"cached_input", "--cached-input", *cached}, {"reasoning", "--reasoning", *reasoning}} {
		if p.v == "" {
			continue
		}
		if n, err := money.ParseNanos(p.v); err != nil || n < 0 {
			return fmt.Errorf("%w: %s %q: want a decimal price such as 0.15", errUsage, p.flag, p.v)
		}
		prices[p.kind] = price.PriceSpec{Price: p.v}
	}
	if len(prices) == 0 {
		return fmt.Errorf("%w: give at least --input (and --output for a chat model)", errUsage)
	}
	spec := price.VersionSpec{Model: pos[0], Vendor: *vendor, EffectiveFrom: *from, Currency: strings.ToUpper(*cur), Unit: unit,
		Source: *source, Checked: pricesClock.Now().UTC().Format("2006-01-02"), Prices: prices, Kind: *kind,
		ContextWindow: *window, MaxOutput: *maxOut}
	var raw []byte
	if err := c.mutate(ctx, "/admin/prices", *key, spec, &raw); err != nil {
		return err
	}
	return printPriceCall(stdout, raw, *asJSON)
}

// pricesImport adds the versions of a file in the catalog's format.
func pricesImport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const syn = "prices import FILE.yaml [--from now|TIME] [--idempotency-key KEY] [--json]"
	c, fs := adminSub("prices import", syn, stderr)
	from := fs.String("from", "now", `start of the versions that give no effective_from: "now" or an RFC 3339 time`)
	key := priceKeyFlag(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(fs, args, 1, syn)
	if err != nil {
		return err
	}
	f, err := os.Open(pos[0])
	if err != nil {
		return err
	}
	b, err := io.ReadAll(io.LimitReader(f, maxImportFile+1))
	f.Close()
	if err != nil {
		return err
	}
	if len(b) > maxImportFile {
		return fmt.Errorf("%s: larger than %d bytes", pos[0], maxImportFile)
	}
	specs, err := price.ParseImport(b, *from)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	var raw []byte
	if err := c.mutate(ctx, "/admin/prices/import", *key, map[string]any{"versions": specs}, &raw); err != nil {
		return err
	}
	return printPriceCall(stdout, raw, *asJSON)
}

// pricesRetire retires a model: requests for it are refused from then on.
func pricesRetire(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const syn = "prices retire MODEL [--from now|TIME] [--source TEXT] [--idempotency-key KEY] [--json]"
	c, fs := adminSub("prices retire", syn, stderr)
	from := fs.String("from", "now", `when the model is retired: "now" or an RFC 3339 time`)
	source := fs.String("source", "retired by the operator", "why, or where the retirement was announced")
	key := priceKeyFlag(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(fs, args, 1, syn)
	if err != nil {
		return err
	}
	var raw []byte
	body := map[string]string{"model": pos[0], "effective_from": *from, "source": *source}
	if err := c.mutate(ctx, "/admin/prices/retire", *key, body, &raw); err != nil {
		return err
	}
	return printPriceCall(stdout, raw, *asJSON)
}

func printPriceCall(w io.Writer, raw []byte, asJSON bool) error {
	if asJSON {
		return writeRaw(w, raw)
	}
	var res struct {
		ID       string `json:"id"`
		Replayed bool   `json:"replayed"`
		Versions []struct {
			Version       string `json:"version"`
			Model         string `json:"model"`
			Currency      string `json:"currency"`
			EffectiveFrom string `json:"effective_from"`
			Retired       bool   `json:"retired"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("read result: %w", err)
	}
	if res.Replayed {
		fmt.Fprintf(w, "Already applied (%s): nothing added again.\n", res.ID)
	} else {
		fmt.Fprintf(w, "Added %d operator price versions (%s):\n", len(res.Versions), res.ID)
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	for _, v := range res.Versions {
		what := "price"
		if v.Retired {
			what = "retired"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\tfrom %s\n", v.Model, v.Currency, what, v.EffectiveFrom)
	}
	return tw.Flush()
}

// operatorPrices lays the gateway's operator versions (GET /admin/prices)
// over the shipped catalog c, so that list, history, compare and buys show
// what the gateway rates with. Without an admin key, or with --offline, c
// stays the shipped catalog; a gateway that cannot be read is reported on
// stderr and the shipped catalog used. It returns how many stored calls
// were applied.
func operatorPrices(ctx context.Context, c *price.Catalog, client *adminClient, offline bool, stderr io.Writer) int {
	if offline {
		return 0
	}
	if client.key == "" {
		client.key = os.Getenv("BAIMO_ADMIN_KEY")
	}
	if client.key == "" {
		return 0
	}
	var list struct {
		Data []struct {
			ID   string          `json:"id"`
			Spec json.RawMessage `json:"spec"`
		} `json:"data"`
	}
	var raw []byte
	if err := client.do(ctx, http.MethodGet, "/admin/prices", nil, &raw); err != nil {
		fmt.Fprintf(stderr, "note: operator prices not read from %s (%v): showing the shipped catalog only\n", client.url, err)
		return 0
	}
	if err := json.Unmarshal(raw, &list); err != nil {
		fmt.Fprintf(stderr, "note: operator prices from %s unreadable (%v): showing the shipped catalog only\n", client.url, err)
		return 0
	}
	n := 0
	for _, d := range list.Data {
		if err := c.ApplyStored(price.StoredVersion{ID: d.ID, Spec: d.Spec}); err != nil {
			if !errors.Is(err, price.ErrHistory) {
				fmt.Fprintf(stderr, "note: operator price %s not shown: %v\n", d.ID, err)
			}
			continue
		}
		n++
	}
	return n
}

// catalogFlags adds the flags that say where operator versions come from.
func catalogFlags(fs *flag.FlagSet) (client *adminClient, offline *bool) {
	client = &adminClient{http: &http.Client{Timeout: pricesHTTPTimeout}}
	fs.StringVar(&client.url, "url", envOr("BAIMO_URL", "http://127.0.0.1:8080"), "gateway whose operator prices to include (or BAIMO_URL)")
	fs.StringVar(&client.key, "admin-key", "", "admin key (default: BAIMO_ADMIN_KEY); without one only the shipped catalog is shown")
	offline = fs.Bool("offline", false, "show the shipped catalog only, without the gateway's operator prices")
	return client, offline
}
