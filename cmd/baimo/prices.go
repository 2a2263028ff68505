package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"baimo/catalog"
	"baimo/internal/clock"
	"baimo/internal/money"
	"baimo/internal/price"
)

func init() {
	register(command{name: "prices", summary: "show, compare, explain and manage model prices (list|history|compare|buys|set|import|retire)", run: runPrices})
}

// pricesClock is where the prices subcommands read "now"; tests replace it.
var pricesClock clock.Clock = clock.Real{}

const pricesUsage = `usage:
  baimo prices list [--vendor V] [--at TIME] [--currency C] [--json]
  baimo prices history MODEL [--json]
  baimo prices compare --input 1M --output 200K [--cached 30%] [--at TIME] [--currency C] [--vendor V] [--batch] [--paid] [--top N] [--rate USD:CNY=7.1] [--json]
  baimo prices buys 1CNY --model M [--at TIME] [--rate USD:CNY=7.1] [--json]
  baimo prices set MODEL --input P --output P --currency CNY|USD [--per 1m|1k] [--from now|TIME] [--cached-input P] [--vendor V] [--source TEXT]
  baimo prices import FILE.yaml [--from now|TIME]
  baimo prices retire MODEL [--from now|TIME]

TIME is RFC 3339 with a zone (2026-12-01T09:00:00+08:00) or a date (2026-12-01, 00:00 UTC); the default is now.
Counts take K and M suffixes (200K, 1.5M). --rate gives an exchange rate (units of the second currency per unit
of the first) used when a model has no price list in the wanted currency; repeat it for more pairs. Without
--rate, the catalog's reference rates (catalog/exchange_rates.yaml) apply.

list, history, compare and buys read the shipped catalog plus, when an admin key is set (BAIMO_ADMIN_KEY or
--admin-key), the operator's versions from the gateway at --url (BAIMO_URL, default http://127.0.0.1:8080),
marked "operator"; --offline leaves them out. set, import and retire add operator versions through the
admin API with an Idempotency-Key: a version starts "now" (the gateway's clock) or later, never in the past,
so no request already rated changes. import reads a file in the catalog's format (catalog/README.md).`

// pricesHTTPTimeout bounds the read of the gateway's operator prices.
const pricesHTTPTimeout = 10 * time.Second

func runPrices(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, pricesUsage)
		return fmt.Errorf("%w: prices needs a subcommand", errUsage)
	}
	sub, rest := args[0], args[1:]
	switch sub {
	case "set":
		return pricesSet(ctx, rest, stdout, stderr)
	case "import":
		return pricesImport(ctx, rest, stdout, stderr)
	case "retire":
		return pricesRetire(ctx, rest, stdout, stderr)
	}
	c, err := catalog.Load()
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		return pricesList(ctx, c, rest, stdout, stderr)
	case "history":
		return pricesHistory(ctx, c, rest, stdout, stderr)
	case "compare":
		return pricesCompare(ctx, c, rest, stdout, stderr)
	case "buys":
		return pricesBuys(ctx, c, rest, stdout, stderr)
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, pricesUsage)
		return nil
	default:
		fmt.Fprintln(stderr, pricesUsage)
		return fmt.Errorf("%w: unknown prices subcommand %q", errUsage, sub)
	}
}

// parsePricesFlags parses flags that may come before or after positional
// arguments, and returns the positional ones.
func parsePricesFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if err == flag.ErrHelp {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// pricesTime reads --at: RFC 3339 with zone, or a date at 00:00 UTC; "" is now.
func pricesTime(s string) (time.Time, error) {
	if s == "" {
		return pricesClock.Now(), nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: --at %q: want RFC 3339 with a zone or a date 2006-01-02", errUsage, s)
}

// pricesCount reads 1000, 200K, 1.5M (K = 1,000; M = 1,000,000) exactly.
func pricesCount(s string) (int64, error) {
	mul := int64(1)
	t := strings.TrimSpace(s)
	switch {
	case strings.HasSuffix(t, "K") || strings.HasSuffix(t, "k"):
		mul, t = 1000, t[:len(t)-1]
	case strings.HasSuffix(t, "M") || strings.HasSuffix(t, "m"):
		mul, t = 1_000_000, t[:len(t)-1]
	}
	n, err := money.ParseNanos(t) // exact decimal, 9 places
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%w: count %q: want a number such as 1000, 200K or 1.5M", errUsage, s)
	}
	v, err := money.MulDivFloor(n, mul, money.Scale)
	if err != nil {
		return 0, fmt.Errorf("%w: count %q too large", errUsage, s)
	}
	return v, nil
}

// rateFlags collects repeated --rate FROM:TO=RATE flags.
type rateFlags []string

func (r *rateFlags) String() string     { return strings.Join(*r, ",") }
func (r *rateFlags) Set(s string) error { *r = append(*r, s); return nil }

func (r rateFlags) table() (*price.ExchangeRates, error) {
	if len(r) == 0 {
		return nil, nil
	}
	var rates []price.ExchangeRate
	for _, s := range r {
		pair, val, ok := strings.Cut(s, "=")
		from, to, ok2 := strings.Cut(pair, ":")
		if !ok || !ok2 {
			return nil, fmt.Errorf("%w: --rate %q: want FROM:TO=RATE such as USD:CNY=7.1", errUsage, s)
		}
		ratio, err := money.ParseRatio(val)
		if err != nil || ratio.Num <= 0 {
			return nil, fmt.Errorf("%w: --rate %q: bad rate", errUsage, s)
		}
		rates = append(rates, price.ExchangeRate{From: money.Currency(strings.ToUpper(from)), To: money.Currency(strings.ToUpper(to)),
			EffectiveFrom: time.Unix(0, 0), Rate: ratio, Source: "--rate"})
	}
	x, err := price.NewExchangeRates(rates)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	return x, nil
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func pricesList(ctx context.Context, c *price.Catalog, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("prices list", stderr)
	client, offline := catalogFlags(fs)
	vendor := fs.String("vendor", "", "only this vendor")
	at := fs.String("at", "", "prices in force at this time (default now)")
	cur := fs.String("currency", "", "only this currency (CNY, USD)")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parsePricesFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: prices list takes no arguments, got %q", errUsage, pos)
	}
	operatorPrices(ctx, c, client, *offline, stderr)
	t, err := pricesTime(*at)
	if err != nil {
		return err
	}
	v := c.View(price.ViewOptions{At: t, Vendor: *vendor, Currency: money.Currency(strings.ToUpper(*cur))})
	if *asJSON {
		return writeJSON(stdout, v)
	}
	if len(v.Models) == 0 {
		return fmt.Errorf("no prices in force at %s for vendor %q currency %q", t.Format(time.RFC3339), *vendor, *cur)
	}
	fmt.Fprintf(stdout, "Prices in force at %s\n\n", t.Format(time.RFC3339))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VENDOR\tMODEL\tCUR\tUNIT\tINPUT\tCACHED\tOUTPUT\tOTHER\tSINCE\tNOTES")
	for _, m := range v.Models {
		for _, ver := range m.Versions {
			p := ver.Prices
			get := func(k string) string {
				if ver.Free {
					return "free"
				}
				if s, ok := p[k]; ok {
					return s.Price
				}
				return "-"
			}
			var other, notes []string
			for _, k := range []string{"reasoning", "cache_write_5m", "cache_write_1h", "image", "audio_second", "character", "search_call"} {
				if s, ok := p[k]; ok {
					other = append(other, fmt.Sprintf("%s %s/%s", k, s.Price, perText(s.Per, k)))
				}
			}
			for _, tr := range ver.Tiers {
				notes = append(notes, fmt.Sprintf("tier >%s", countText(tr.Above)))
			}
			if s := ver.Schedule; s != nil {
				for _, w := range s.Windows {
					notes = append(notes, fmt.Sprintf("%s x%s %s-%s", w.Name, w.Multiplier, w.From, w.To))
				}
			}
			if ver.Batch != "" {
				notes = append(notes, "batch x"+ver.Batch)
			}
			for _, name := range sortedKeys(ver.ServiceTiers) {
				notes = append(notes, name+" x"+ver.ServiceTiers[name])
			}
			if ver.Unverified {
				notes = append(notes, "[unverified]")
			}
			if ver.Origin == price.OriginOperator {
				notes = append(notes, "[operator]")
			}
			if ver.Retired {
				notes = append(notes, "retired")
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Vendor, m.Name, ver.Currency, ver.Unit,
				get("input"), get("cached_input"), get("output"), dash(strings.Join(other, "; ")),
				ver.EffectiveFrom.Format("2006-01-02"), strings.Join(notes, "; "))
		}
	}
	return tw.Flush()
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// when prints a time as RFC 3339, or "-" for none (a zero time, which
// would print as 0001-01-01).
func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func perText(per int64, kind string) string {
	unit := "token"
	switch kind {
	case "image":
		unit = "image"
	case "audio_second":
		unit = "s"
	case "character":
		unit = "char"
	case "search_call":
		unit = "call"
	}
	if per == 1 {
		return unit
	}
	return countText(per) + " " + unit + "s"
}

// countText writes 1000 as 1K and 1000000 as 1M when exact.
func countText(n int64) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.FormatInt(n/1_000_000, 10) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.FormatInt(n/1000, 10) + "K"
	}
	return strconv.FormatInt(n, 10)
}

// groupDigits writes 1234567 as 1,234,567.
func groupDigits(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func pricesHistory(ctx context.Context, c *price.Catalog, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("prices history", stderr)
	client, offline := catalogFlags(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parsePricesFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: prices history takes one MODEL", errUsage)
	}
	operatorPrices(ctx, c, client, *offline, stderr)
	h, err := c.History(pos[0])
	if err != nil {
		if client.key == "" && !*offline {
			return fmt.Errorf("%w (the shipped catalog only: set BAIMO_ADMIN_KEY to include the gateway's operator prices)", err)
		}
		return err
	}
	m, _ := c.Model(pos[0])
	if *asJSON {
		return writeJSON(stdout, struct {
			Model    string               `json:"model"`
			Vendor   string               `json:"vendor"`
			Versions []price.HistoryEntry `json:"versions"`
		}{m.Name, m.Vendor, h})
	}
	fmt.Fprintf(stdout, "%s (%s): %d versions\n", m.Name, m.Vendor, len(h))
	var cur money.Currency
	for _, e := range h {
		v := e.Version
		if v.Currency != cur {
			cur = v.Currency
			fmt.Fprintf(stdout, "\n%s list\n", cur)
		}
		fmt.Fprintf(stdout, "  %s", v.EffectiveFrom.Format(time.RFC3339))
		if v.EffectiveTo != nil {
			fmt.Fprintf(stdout, " to %s", v.EffectiveTo.Format(time.RFC3339))
		}
		if v.Unverified {
			fmt.Fprint(stdout, "  [unverified]")
		}
		if v.Origin == price.OriginOperator {
			fmt.Fprint(stdout, "  [operator]")
		}
		fmt.Fprintln(stdout)
		if v.Free {
			fmt.Fprintln(stdout, "    free")
		}
		if v.Retired {
			fmt.Fprintln(stdout, "    retired: requests are refused from here on")
		}
		changed := map[string]price.Change{}
		for _, ch := range e.Changes {
			changed[ch.Kind.String()] = ch
		}
		for _, k := range price.Kinds() {
			p, ok := v.Prices[k.String()]
			ch, wasChanged := changed[k.String()]
			if !ok && !wasChanged {
				continue
			}
			line := fmt.Sprintf("    %-15s", k)
			if ok {
				line += fmt.Sprintf(" %s %s per %s", p.Price, v.Currency, countText(p.Per))
			} else {
				line += " -"
			}
			if wasChanged {
				switch {
				case ch.Percent != "":
					line += fmt.Sprintf("  (%s, was %s)", ch.Percent, dash(ch.Old))
				default:
					line += fmt.Sprintf("  (was %s)", dash(ch.Old))
				}
			}
			fmt.Fprintln(stdout, line)
		}
		for _, tr := range v.Tiers {
			fmt.Fprintf(stdout, "    prompts above %s tokens:", countText(tr.Above))
			for _, k := range sortedPriceKinds(tr.Prices) {
				fmt.Fprintf(stdout, " %s %s", k, tr.Prices[k].Price)
			}
			fmt.Fprintln(stdout)
		}
		if e.TiersChange {
			fmt.Fprintln(stdout, "    tiers changed")
		}
		if s := v.Schedule; s != nil {
			for _, w := range s.Windows {
				fmt.Fprintf(stdout, "    %s x%s %s %s-%s %s", w.Name, w.Multiplier, strings.Join(w.Days, ","), w.From, w.To, s.Zone)
				if w.SkipHolidays {
					fmt.Fprintf(stdout, " except %s holidays", s.Calendar)
				}
				fmt.Fprintln(stdout)
			}
		}
		if v.Batch != "" {
			fmt.Fprintf(stdout, "    batch x%s\n", v.Batch)
		}
		if v.Note != "" {
			fmt.Fprintf(stdout, "    note: %s\n", v.Note)
		}
		fmt.Fprintf(stdout, "    source: %s\n", v.Source)
	}
	return nil
}

func sortedPriceKinds(m map[string]price.PriceSpec) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func pricesCompare(ctx context.Context, c *price.Catalog, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("prices compare", stderr)
	client, offline := catalogFlags(fs)
	input := fs.String("input", "1M", "prompt tokens (cached included)")
	output := fs.String("output", "200K", "output tokens")
	cached := fs.String("cached", "0", "prompt tokens read from cache: a count or a percentage of input (30%)")
	at := fs.String("at", "", "time (default now)")
	cur := fs.String("currency", "CNY", "currency to compare in")
	vendor := fs.String("vendor", "", "only this vendor")
	batch := fs.Bool("batch", false, "price as batch requests")
	top := fs.Int("top", 0, "show only the N cheapest (0: all)")
	paid := fs.Bool("paid", false, "leave out free models")
	asJSON := fs.Bool("json", false, "print JSON")
	var rates rateFlags
	fs.Var(&rates, "rate", "exchange rate FROM:TO=RATE, repeatable")
	pos, err := parsePricesFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: prices compare takes no arguments, got %q", errUsage, pos)
	}
	var w price.Workload
	if w.Input, err = pricesCount(*input); err != nil {
		return err
	}
	if w.Output, err = pricesCount(*output); err != nil {
		return err
	}
	if pct, ok := strings.CutSuffix(*cached, "%"); ok {
		p, err := money.ParseNanos(pct)
		if err != nil || p < 0 || p > 100*money.Scale {
			return fmt.Errorf("%w: --cached %q: want 0%% to 100%%", errUsage, *cached)
		}
		if w.Cached, err = money.MulDivFloor(w.Input, p, 100*money.Scale); err != nil {
			return fmt.Errorf("%w: --cached: %v", errUsage, err)
		}
	} else if w.Cached, err = pricesCount(*cached); err != nil {
		return err
	}
	if w.Cached > w.Input {
		return fmt.Errorf("%w: --cached is more than --input", errUsage)
	}
	if w.Input+w.Output == 0 {
		return fmt.Errorf("%w: the workload has no tokens", errUsage)
	}
	t, err := pricesTime(*at)
	if err != nil {
		return err
	}
	x, err := rates.table()
	if err != nil {
		return err
	}
	operatorPrices(ctx, c, client, *offline, stderr)
	x = x.Over(c.ReferenceRates())
	ranked, skipped, err := c.Compare(price.CompareOptions{Workload: w, At: t, Currency: money.Currency(strings.ToUpper(*cur)),
		Rates: x, Vendor: *vendor, Batch: *batch})
	if err != nil {
		return err
	}
	if *paid {
		kept := ranked[:0]
		for _, r := range ranked {
			if !r.Rated.Free {
				kept = append(kept, r)
			}
		}
		ranked = kept
	}
	if *top > 0 && len(ranked) > *top {
		ranked = ranked[:*top]
	}
	if *asJSON {
		type row struct {
			Rank       int          `json:"rank"`
			Model      string       `json:"model"`
			Vendor     string       `json:"vendor"`
			Cost       string       `json:"cost"`
			PerMillion string       `json:"cost_per_million_tokens"`
			Currency   string       `json:"currency"`
			Version    string       `json:"version"`
			Period     string       `json:"period,omitempty"`
			Tier       int          `json:"tier"`
			Converted  string       `json:"exchange_rate,omitempty"`
			RateSource string       `json:"rate_source,omitempty"`
			Origin     string       `json:"origin"`
			Lines      []price.Line `json:"lines"`
		}
		type skip struct {
			Model  string `json:"model"`
			Reason string `json:"reason"`
		}
		out := struct {
			At       time.Time      `json:"at"`
			Workload price.Workload `json:"workload"`
			Ranked   []row          `json:"ranked"`
			Skipped  []skip         `json:"skipped"`
		}{At: t, Workload: w, Ranked: []row{}, Skipped: []skip{}}
		for i, r := range ranked {
			rw := row{Rank: i + 1, Model: r.Model.Name, Vendor: r.Model.Vendor, Cost: money.FormatNanos(r.Rated.Total.Nanos),
				PerMillion: money.FormatNanos(r.PerMillion.Nanos), Currency: string(r.Rated.Currency), Version: r.Rated.Version,
				Period: r.Rated.Period, Tier: r.Rated.Tier, Lines: r.Rated.Lines, Origin: r.Rated.Origin}
			if !r.Rated.ExchangeRate.IsOne() {
				rw.Converted, rw.RateSource = r.Rated.ExchangeRate.String(), r.Rated.RateSource
			}
			out.Ranked = append(out.Ranked, rw)
		}
		for _, s := range skipped {
			out.Skipped = append(out.Skipped, skip{s.Model, s.Err.Error()})
		}
		return writeJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "Workload: %s input tokens (%s cached), %s output tokens, at %s, in %s\n\n",
		groupDigits(w.Input), groupDigits(w.Cached), groupDigits(w.Output), t.Format(time.RFC3339), strings.ToUpper(*cur))
	tw := tabwriter.NewWriter(stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RANK\tMODEL\tVENDOR\tCOST\tPER 1M TOKENS\tNOTES")
	for i, r := range ranked {
		var notes []string
		if r.Rated.Free {
			notes = append(notes, "free")
		}
		if r.Rated.Period != "" {
			notes = append(notes, r.Rated.Period)
		}
		if r.Rated.Tier > 0 {
			notes = append(notes, fmt.Sprintf("tier %d", r.Rated.Tier))
		}
		if !r.Rated.ExchangeRate.IsOne() {
			notes = append(notes, fmt.Sprintf("from %s at %s", r.Rated.PriceCurrency, r.Rated.ExchangeRate))
		}
		if r.Rated.Origin == price.OriginOperator {
			notes = append(notes, "operator price")
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", i+1, r.Model.Name, r.Model.Vendor, money.FormatNanos(r.Rated.Total.Nanos),
			money.FormatNanos(r.PerMillion.Nanos), strings.Join(notes, ", "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(skipped) > 0 {
		names := make([]string, len(skipped))
		for i, s := range skipped {
			names[i] = s.Model
		}
		fmt.Fprintf(stdout, "\nNot ranked (no price in %s at that time; give --rate to convert): %s\n", strings.ToUpper(*cur), strings.Join(names, ", "))
	}
	return nil
}

// pricesAmount reads "1CNY", "0.5 USD" or "1" (CNY).
func pricesAmount(s string) (money.Amount, error) {
	t := strings.TrimSpace(s)
	cur := money.CNY
	if len(t) > 3 {
		suf := strings.ToUpper(t[len(t)-3:])
		if suf[0] >= 'A' && suf[0] <= 'Z' && suf[1] >= 'A' && suf[1] <= 'Z' && suf[2] >= 'A' && suf[2] <= 'Z' {
			cur, t = money.Currency(suf), strings.TrimSpace(t[:len(t)-3])
		}
	}
	t = strings.TrimPrefix(strings.TrimPrefix(t, "¥"), "$")
	a, err := money.Parse(t, cur)
	if err != nil || a.Nanos <= 0 {
		return money.Amount{}, fmt.Errorf("%w: amount %q: want a positive amount such as 1CNY or 0.5USD", errUsage, s)
	}
	return a, nil
}

func pricesBuys(ctx context.Context, c *price.Catalog, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("prices buys", stderr)
	client, offline := catalogFlags(fs)
	model := fs.String("model", "", "model")
	at := fs.String("at", "", "time (default now)")
	asJSON := fs.Bool("json", false, "print JSON")
	var rates rateFlags
	fs.Var(&rates, "rate", "exchange rate FROM:TO=RATE, repeatable")
	pos, err := parsePricesFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return fmt.Errorf("%w: prices buys takes one AMOUNT such as 1CNY", errUsage)
	}
	amountText := "1CNY"
	if len(pos) == 1 {
		amountText = pos[0]
	}
	if *model == "" {
		return fmt.Errorf("%w: prices buys needs --model", errUsage)
	}
	amt, err := pricesAmount(amountText)
	if err != nil {
		return err
	}
	t, err := pricesTime(*at)
	if err != nil {
		return err
	}
	x, err := rates.table()
	if err != nil {
		return err
	}
	operatorPrices(ctx, c, client, *offline, stderr)
	b, err := c.Buys(*model, amt, t, x.Over(c.ReferenceRates()))
	if err != nil {
		return err
	}
	if *asJSON {
		out := struct {
			Model         string `json:"model"`
			Amount        string `json:"amount"`
			Currency      string `json:"currency"`
			At            string `json:"at"`
			Version       string `json:"version"`
			Period        string `json:"period,omitempty"`
			InputTokens   int64  `json:"input_tokens"`
			OutputTokens  int64  `json:"output_tokens"`
			Tokenizer     string `json:"tokenizer,omitempty"`
			InputZhChars  int64  `json:"input_chinese_characters,omitempty"`
			InputEnWords  int64  `json:"input_english_words,omitempty"`
			OutputZhChars int64  `json:"output_chinese_characters,omitempty"`
			OutputEnWords int64  `json:"output_english_words,omitempty"`
		}{Model: b.Model, Amount: money.FormatNanos(amt.Nanos), Currency: string(amt.Currency), At: t.Format(time.RFC3339),
			Version: b.Version, Period: b.Period, InputTokens: b.InputTokens, OutputTokens: b.OutputTokens,
			InputZhChars: b.InputZhChars, InputEnWords: b.InputEnWords, OutputZhChars: b.OutputZhChars, OutputEnWords: b.OutputEnWords}
		if b.Tokenizer != nil {
			out.Tokenizer = b.Tokenizer.Name
		}
		return writeJSON(stdout, out)
	}
	fmt.Fprintf(stdout, "%s %s on %s at %s", money.FormatNanos(amt.Nanos), amt.Currency, b.Model, t.Format(time.RFC3339))
	if b.Period != "" {
		fmt.Fprintf(stdout, " (%s)", b.Period)
	}
	fmt.Fprintf(stdout, " buys, at the lowest tier:\n")
	line := func(what string, tokens, zh, en int64) {
		fmt.Fprintf(stdout, "  %-7s %s tokens", what+":", groupDigits(tokens))
		if b.Tokenizer != nil && tokens > 0 {
			fmt.Fprintf(stdout, ", about %s Chinese characters or %s English words", groupDigits(zh), groupDigits(en))
		}
		fmt.Fprintln(stdout)
	}
	line("input", b.InputTokens, b.InputZhChars, b.InputEnWords)
	line("output", b.OutputTokens, b.OutputZhChars, b.OutputEnWords)
	if tk := b.Tokenizer; tk != nil {
		u := ""
		if tk.Unverified {
			u = ", unverified"
		}
		fmt.Fprintf(stdout, "Text estimate from %s: %s tokens per Chinese character, %s per English word (%s%s).\n",
			tk.Name, tk.ZhTokensPerChar, tk.EnTokensPerWord, tk.Source, u)
	} else {
		fmt.Fprintln(stdout, "No measured token density for this model, so no text estimate.")
	}
	fmt.Fprintf(stdout, "Price version: %s\n", b.Version)
	return nil
}
