package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

func init() {
	register(command{name: "tenants", summary: "tenants, balances, top-ups, adjustments, refunds, redemptions, statements (admin API)", run: runTenants})
}

const tenantsUsage = `usage:
  baimo tenants create --id ID --kind prepaid|postpaid|free [--currency CNY] [--credit-limit AMOUNT] [--name NAME] [--json]
  baimo tenants list [--json]
  baimo tenants balance TENANT [--json]
  baimo tenants topup TENANT AMOUNT [--note TEXT] [--idempotency-key KEY] [--json]
  baimo tenants adjust TENANT AMOUNT [--note TEXT] [--idempotency-key KEY] [--json]
  baimo tenants refund TENANT AMOUNT [--request REQUEST_ID] [--note TEXT] [--idempotency-key KEY] [--json]
  baimo tenants redeem TENANT CODE [--idempotency-key KEY] [--json]
  baimo tenants statement TENANT [--from TIME] [--to TIME] [--csv | --json]

Each talks to a running gateway's admin API: --url (or BAIMO_URL; default http://127.0.0.1:8080) and
--admin-key (or BAIMO_ADMIN_KEY). AMOUNT is an exact decimal in the tenant's currency (12.50, 0.0005; at most
9 decimal places); adjust takes a negative AMOUNT to take money off, which may not take a prepaid balance below
zero. TIME is RFC 3339 (2026-11-01T00:00:00+08:00) or a date (2026-11-01, 00:00 UTC).

Top-ups, adjustments, refunds and redemptions apply at most once per idempotency key. Without
--idempotency-key each invocation makes its own key, so its retries after a lost connection cannot apply it
twice, but running the command again applies it again. A script that may re-run a command passes its own
--idempotency-key (an order or invoice id): re-running it with the same key and arguments returns the first
result and moves no money; the same key with other arguments is refused.`

// mutationRetryDelays are the waits before each retry of a money mutation
// whose connection failed; every try carries the same Idempotency-Key, so a
// try that reached the gateway and a retry of it apply once.
var mutationRetryDelays = []time.Duration{250 * time.Millisecond, time.Second}

type balanceJSON struct {
	TenantID    string `json:"tenant_id"`
	Kind        string `json:"kind"`
	Currency    string `json:"currency"`
	CreditLimit string `json:"credit_limit"`
	Posted      string `json:"posted"`
	Pending     string `json:"pending"`
	Available   string `json:"available"`
	Debt        string `json:"debt"`
	Spendable   string `json:"spendable"`
	// AvailableNote says why available is below zero (null otherwise).
	AvailableNote *string `json:"available_note"`
}

type tenantJSON struct {
	ID          string    `json:"id"`
	Name        string    `json:"name"`
	Kind        string    `json:"kind"`
	Currency    string    `json:"currency"`
	CreditLimit string    `json:"credit_limit"`
	CreatedAt   time.Time `json:"created_at"`
}

type transferJSON struct {
	TransferID string      `json:"transfer_id"`
	TenantID   string      `json:"tenant_id"`
	Kind       string      `json:"kind"`
	Amount     string      `json:"amount"`
	Currency   string      `json:"currency"`
	RepaidDebt string      `json:"repaid_debt"`
	Balance    balanceJSON `json:"balance"`
}

// statementJSON is the part of a statement the table shows; nanos are read
// as int64, exactly.
type statementJSON struct {
	TenantID string    `json:"tenant_id"`
	Currency string    `json:"currency"`
	From     time.Time `json:"from"`
	To       time.Time `json:"to"`
	Lines    []struct {
		Model        string `json:"model"`
		Requests     int64  `json:"requests"`
		Refused      int64  `json:"refused"`
		Failed       int64  `json:"failed"`
		InputTokens  int64  `json:"input_tokens"`
		OutputTokens int64  `json:"output_tokens"`
		ExactNanos   int64  `json:"exact_nanos"`
		Amount       string `json:"amount"`
		Rates        []struct {
			From   string `json:"from"`
			Rate   string `json:"rate"`
			Source string `json:"source"`
		} `json:"exchange_rates"`
	} `json:"lines"`
	ExactNanos int64            `json:"exact_total_nanos"`
	Total      string           `json:"total"`
	Credits    map[string]int64 `json:"credits_nanos"`
}

func runTenants(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	money := func(sub string) subcommand {
		return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return tenantsMoney(ctx, sub, args, stdout, stderr)
		}
	}
	return dispatch(ctx, "tenants", tenantsUsage, map[string]subcommand{
		"create": tenantsCreate, "list": tenantsList, "balance": tenantsBalance,
		"topup": money("topup"), "adjust": money("adjust"), "refund": money("refund"),
		"redeem": tenantsRedeem, "statement": tenantsStatement,
	}, args, stdout, stderr)
}

// subcommand runs one subcommand of a command group with its arguments.
type subcommand func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// dispatch runs the subcommand args[0] of group; help prints usage.
func dispatch(ctx context.Context, group, usage string, subs map[string]subcommand, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: %s needs a subcommand", errUsage, group)
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	run, ok := subs[args[0]]
	if !ok {
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("%w: unknown %s subcommand %q", errUsage, group, args[0])
	}
	return run(ctx, args[1:], stdout, stderr)
}

func tenantsCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const syn = "tenants create --id ID --kind prepaid|postpaid|free [--currency CNY] [--credit-limit AMOUNT] [--name NAME] [--json]"
	c, fs := adminSub("tenants create", syn, stderr)
	id := fs.String("id", "", "tenant id (required)")
	kind := fs.String("kind", "", "prepaid (a balance that may not go below zero), postpaid (a credit limit) or free (required)")
	currency := fs.String("currency", "CNY", "currency of the tenant's account")
	limit := fs.String("credit-limit", "", "postpaid only: how far below zero the account may go, an exact decimal (default 0)")
	name := fs.String("name", "", "display name")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	if _, err := parseArgs(fs, args, 0, syn); err != nil {
		return err
	}
	if *id == "" {
		return fmt.Errorf("%w: --id is required", errUsage)
	}
	switch ledger.Kind(*kind) {
	case ledger.Prepaid, ledger.Postpaid, ledger.Free:
	default:
		return fmt.Errorf("%w: --kind %q: want prepaid, postpaid or free", errUsage, *kind)
	}
	body := map[string]any{"id": *id, "name": *name, "kind": *kind, "currency": strings.ToUpper(*currency)}
	if *limit != "" {
		if ledger.Kind(*kind) != ledger.Postpaid {
			return fmt.Errorf("%w: --credit-limit applies only to postpaid tenants", errUsage)
		}
		n, err := parseAmountArg("--credit-limit", *limit)
		if err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("%w: --credit-limit %s: must not be negative", errUsage, *limit)
		}
		body["credit_limit"] = money.FormatNanos(n)
	}
	var raw []byte
	if err := c.do(ctx, http.MethodPost, "/admin/tenants", body, &raw); err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(stdout, raw)
	}
	var t tenantJSON
	if err := json.Unmarshal(raw, &t); err != nil {
		return fmt.Errorf("read tenant: %w", err)
	}
	fmt.Fprintf(stdout, "Created tenant %s: %s, %s", t.ID, t.Kind, t.Currency)
	if t.Kind == string(ledger.Postpaid) {
		fmt.Fprintf(stdout, ", credit limit %s", t.CreditLimit)
	}
	fmt.Fprintln(stdout, ".")
	return nil
}

func tenantsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const syn = "tenants list [--json]"
	c, fs := adminSub("tenants list", syn, stderr)
	asJSON := fs.Bool("json", false, "print the API's JSON (the list of tenants)")
	if _, err := parseArgs(fs, args, 0, syn); err != nil {
		return err
	}
	var raw []byte
	if err := c.do(ctx, http.MethodGet, "/admin/tenants", nil, &raw); err != nil {
		return err
	}
	var out struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return fmt.Errorf("read tenants: %w", err)
	}
	if *asJSON {
		return writeRaw(stdout, out.Data)
	}
	var ts []tenantJSON
	if err := json.Unmarshal(out.Data, &ts); err != nil {
		return fmt.Errorf("read tenants: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tKIND\tCURRENCY\tCREDIT LIMIT\tCREATED")
	for _, t := range ts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, dash(t.Name), t.Kind, t.Currency, t.CreditLimit, when(t.CreatedAt))
	}
	return tw.Flush()
}

func tenantsBalance(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const syn = "tenants balance TENANT [--json]"
	c, fs := adminSub("tenants balance", syn, stderr)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(fs, args, 1, syn)
	if err != nil {
		return err
	}
	var raw []byte
	if err := c.do(ctx, http.MethodGet, tenantPath(pos[0], "balance"), nil, &raw); err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(stdout, raw)
	}
	var b balanceJSON
	if err := json.Unmarshal(raw, &b); err != nil {
		return fmt.Errorf("read balance: %w", err)
	}
	return printBalance(stdout, b)
}

// tenantsMoney runs topup, adjust and refund: one POST each, with an
// Idempotency-Key.
func tenantsMoney(ctx context.Context, op string, args []string, stdout, stderr io.Writer) error {
	syn := "tenants " + op + " TENANT AMOUNT [--note TEXT] [--idempotency-key KEY] [--json]"
	if op == "refund" {
		syn = "tenants refund TENANT AMOUNT [--request REQUEST_ID] [--note TEXT] [--idempotency-key KEY] [--json]"
	}
	c, fs := adminSub("tenants "+op, syn, stderr)
	note := fs.String("note", "", "a note kept with the transfer")
	var request *string
	if op == "refund" {
		request = fs.String("request", "", "the request refunded: refunds of it may not exceed what it was charged")
	}
	key := idempotencyFlag(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(fs, args, 2, syn)
	if err != nil {
		return err
	}
	n, err := parseAmountArg("AMOUNT", pos[1])
	if err != nil {
		return err
	}
	switch {
	case op == "adjust" && n == 0:
		return fmt.Errorf("%w: AMOUNT: an adjustment of zero moves nothing", errUsage)
	case op != "adjust" && n <= 0:
		return fmt.Errorf("%w: AMOUNT %s: a %s must be positive", errUsage, pos[1], op)
	}
	body := map[string]any{"amount": money.FormatNanos(n)}
	if *note != "" {
		body["note"] = *note
	}
	if request != nil && *request != "" {
		body["request_id"] = *request
	}
	var raw []byte
	if err := c.mutate(ctx, tenantPath(pos[0], op), *key, body, &raw); err != nil {
		return err
	}
	return printTransfer(stdout, raw, *asJSON)
}

func tenantsRedeem(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const syn = "tenants redeem TENANT CODE [--idempotency-key KEY] [--json]"
	c, fs := adminSub("tenants redeem", syn, stderr)
	key := idempotencyFlag(fs)
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(fs, args, 2, syn)
	if err != nil {
		return err
	}
	code := strings.TrimSpace(pos[1])
	if code == "" {
		return fmt.Errorf("%w: CODE is empty", errUsage)
	}
	var raw []byte
	if err := c.mutate(ctx, tenantPath(pos[0], "redeem"), *key, map[string]any{"code": code}, &raw); err != nil {
		return err
	}
	return printTransfer(stdout, raw, *asJSON)
}

func tenantsStatement(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const syn = "tenants statement TENANT [--from TIME] [--to TIME] [--csv | --json]"
	c, fs := adminSub("tenants statement", syn, stderr)
	from := fs.String("from", "", "start of the period (inclusive), RFC 3339 or a date at 00:00 UTC (default: the beginning)")
	to := fs.String("to", "", "end of the period (exclusive), RFC 3339 or a date at 00:00 UTC (default: now)")
	asCSV := fs.Bool("csv", false, "print the statement as CSV: a header line, lines by model and rule kind, then the total")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(fs, args, 1, syn)
	if err != nil {
		return err
	}
	if *asCSV && *asJSON {
		return fmt.Errorf("%w: --csv and --json exclude each other", errUsage)
	}
	q := url.Values{}
	var fromT, toT time.Time
	if *from != "" {
		if fromT, err = parseTimeArg("--from", *from); err != nil {
			return err
		}
		q.Set("from", fromT.Format(time.RFC3339Nano))
	}
	if *to != "" {
		if toT, err = parseTimeArg("--to", *to); err != nil {
			return err
		}
		q.Set("to", toT.Format(time.RFC3339Nano))
	}
	if !fromT.IsZero() && !toT.IsZero() && !fromT.Before(toT) {
		return fmt.Errorf("%w: --from %s is not before --to %s", errUsage, *from, *to)
	}
	if *asCSV {
		q.Set("format", "csv")
	}
	path := tenantPath(pos[0], "statement")
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var raw []byte
	if err := c.do(ctx, http.MethodGet, path, nil, &raw); err != nil {
		return err
	}
	if *asCSV || *asJSON {
		return writeRaw(stdout, raw)
	}
	var st statementJSON
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("read statement: %w", err)
	}
	return printStatement(stdout, st)
}

func printStatement(w io.Writer, st statementJSON) error {
	from := "the beginning"
	if !st.From.IsZero() {
		from = st.From.Format(time.RFC3339)
	}
	fmt.Fprintf(w, "Statement of %s in %s, %s to %s\n\n", st.TenantID, st.Currency, from, st.To.Format(time.RFC3339))
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tREQUESTS\tREFUSED\tFAILED\tINPUT TOKENS\tOUTPUT TOKENS\tEXACT\tAMOUNT")
	for _, l := range st.Lines {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%d\t%s\t%s\n", l.Model, l.Requests, l.Refused, l.Failed, l.InputTokens,
			l.OutputTokens, money.FormatNanos(l.ExactNanos), l.Amount)
	}
	fmt.Fprintf(tw, "total\t\t\t\t\t\t%s\t%s\n", money.FormatNanos(st.ExactNanos), st.Total)
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, l := range st.Lines {
		for _, r := range l.Rates {
			fmt.Fprintf(w, "%s: priced in %s, converted at %s %s per %s (%s)\n", l.Model, r.From, r.Rate, st.Currency, r.From, dash(r.Source))
		}
	}
	if len(st.Credits) > 0 {
		kinds := make([]string, 0, len(st.Credits))
		for k := range st.Credits {
			kinds = append(kinds, k)
		}
		sort.Strings(kinds)
		parts := make([]string, len(kinds))
		for i, k := range kinds {
			parts[i] = k + " " + money.FormatNanos(st.Credits[k])
		}
		fmt.Fprintf(w, "\nOther money movements (exact): %s\n", strings.Join(parts, ", "))
	}
	return nil
}

func printTransfer(w io.Writer, raw []byte, asJSON bool) error {
	if asJSON {
		return writeRaw(w, raw)
	}
	var t transferJSON
	if err := json.Unmarshal(raw, &t); err != nil {
		return fmt.Errorf("read transfer: %w", err)
	}
	fmt.Fprintf(w, "%s of %s %s on %s (transfer %s)", t.Kind, t.Amount, t.Currency, t.TenantID, t.TransferID)
	if t.RepaidDebt != "" && t.RepaidDebt != "0" {
		fmt.Fprintf(w, "; %s of it repaid debt", t.RepaidDebt)
	}
	fmt.Fprintln(w)
	return printBalance(w, t.Balance)
}

func printBalance(w io.Writer, b balanceJSON) error {
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "tenant\t%s (%s, %s)\n", b.TenantID, b.Kind, b.Currency)
	fmt.Fprintf(tw, "available\t%s\n", b.Available)
	if b.AvailableNote != nil {
		fmt.Fprintf(tw, "\t(%s)\n", *b.AvailableNote)
	}
	fmt.Fprintf(tw, "posted\t%s\n", b.Posted)
	fmt.Fprintf(tw, "pending\t%s\n", b.Pending)
	fmt.Fprintf(tw, "debt\t%s\n", b.Debt)
	if b.Kind == string(ledger.Postpaid) {
		fmt.Fprintf(tw, "credit limit\t%s\n", b.CreditLimit)
		fmt.Fprintf(tw, "spendable\t%s\n", b.Spendable)
	}
	return tw.Flush()
}

// tenantPath is the admin path of one of a tenant's resources.
func tenantPath(id, what string) string {
	return "/admin/tenants/" + url.PathEscape(id) + "/" + what
}

// writeRaw writes a response body, ending it with a newline.
func writeRaw(w io.Writer, b []byte) error {
	if _, err := w.Write(b); err != nil {
		return err
	}
	if len(b) > 0 && b[len(b)-1] != '\n' {
		_, err := io.WriteString(w, "\n")
		return err
	}
	return nil
}

// adminSub returns the admin client and the flags of one subcommand, whose
// -h shows synopsis.
func adminSub(name, synopsis string, stderr io.Writer) (*adminClient, *flag.FlagSet) {
	c, fs := adminFlags(name, stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: baimo %s\n\nflags:\n", synopsis)
		fs.PrintDefaults()
	}
	return c, fs
}

// parseArgs parses flags before, between and after the positional arguments
// and returns the positional ones, which must number n. An argument such as
// -5 or -0.5 is a (negative) amount, not a flag; "--" ends the flags.
func parseArgs(fs *flag.FlagSet, args []string, n int, synopsis string) ([]string, error) {
	var pos []string
	for len(args) > 0 {
		a := args[0]
		if a == "--" {
			pos = append(pos, args[1:]...)
			break
		}
		if len(a) < 2 || a[0] != '-' || isNegativeNumber(a) {
			pos = append(pos, a)
			args = args[1:]
			continue
		}
		// One flag at a time, with its value when it takes one, so that
		// parsing resumes after it.
		take := 1
		name, _, inline := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if f := fs.Lookup(name); f != nil && !inline && !isBoolFlag(f) {
			take = min(2, len(args))
		}
		if err := fs.Parse(args[:take]); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = args[take:]
	}
	if len(pos) != n {
		return nil, fmt.Errorf("%w: want baimo %s", errUsage, synopsis)
	}
	return pos, nil
}

func isNegativeNumber(a string) bool {
	return len(a) > 1 && a[0] == '-' && (a[1] == '.' || a[1] >= '0' && a[1] <= '9')
}

func isBoolFlag(f *flag.Flag) bool {
	b, ok := f.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

// parseAmountArg reads an exact decimal amount of money (never through a
// float); anything else is a usage error.
func parseAmountArg(what, s string) (int64, error) {
	n, err := money.ParseNanos(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not an exact decimal such as 12.50 with at most %d decimal places (%v)",
			errUsage, what, s, money.ScaleDigits, err)
	}
	return n, nil
}

// parseTimeArg reads RFC 3339, or a date at 00:00 UTC.
func parseTimeArg(what, s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: %s %q: want RFC 3339 (2026-11-01T00:00:00+08:00) or a date (2026-11-01)", errUsage, what, s)
}

// idempotencyFlag adds --idempotency-key to a money mutation's flags.
func idempotencyFlag(fs *flag.FlagSet) *string {
	return fs.String("idempotency-key", "", "apply this at most once per KEY: re-running the command with the same KEY and "+
		"arguments returns the first result and moves no money again; use it in scripts that may re-run "+
		"(default: a new key per invocation, which guards only against this invocation's own retries)")
}

// mutate POSTs a money mutation with an Idempotency-Key (key, or one made for
// this invocation) and retries it, with the same key, when the connection
// fails: the gateway applies a key once, so a try that was applied but whose
// answer was lost is answered by the retry with the first result.
func (c *adminClient) mutate(ctx context.Context, path, key string, body any, raw *[]byte) error {
	generated := key == ""
	if generated {
		var b [16]byte
		if _, err := rand.Read(b[:]); err != nil {
			return fmt.Errorf("idempotency key: %w", err)
		}
		key = "cli-" + hex.EncodeToString(b[:])
	} else if len(key) > ledger.MaxIDLen {
		return fmt.Errorf("%w: --idempotency-key longer than %d bytes", errUsage, ledger.MaxIDLen)
	}
	hdr := http.Header{"Idempotency-Key": {key}}
	var err error
	for try := 0; ; try++ {
		err = c.doHeader(ctx, http.MethodPost, path, hdr, body, raw)
		if err == nil || !isConnError(err) || try == len(mutationRetryDelays) {
			break
		}
		t := time.NewTimer(mutationRetryDelays[try])
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (outcome unknown; idempotency key %s)", err, key)
		case <-t.C:
		}
	}
	if err != nil && isConnError(err) {
		if generated {
			return fmt.Errorf("%w\nthe outcome is unknown: run the same command with --idempotency-key %s to apply it at most once", err, key)
		}
		return fmt.Errorf("%w\nthe outcome is unknown: run the same command again, with the same --idempotency-key, to apply it at most once", err)
	}
	return err
}

// isConnError reports whether err is a failure to get an answer (refused,
// reset, timed out) rather than an answer or a malformed URL.
func isConnError(err error) bool {
	var ue *url.Error
	return errors.As(err, &ue) && ue.Op != "parse"
}
