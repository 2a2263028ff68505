package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
)

func init() {
	register(command{name: "codes", summary: "create one-time redemption codes (admin API)", run: runCodes})
	register(command{name: "budgets", summary: "set and show spending budgets of keys and tenants (admin API)", run: runBudgets})
}

const codesUsage = `usage:
  baimo codes create AMOUNT [--currency CNY] [--expires TIME] [--json]

Creates a one-time code worth AMOUNT (an exact decimal such as 50 or 12.50) and prints it once; only its hash is
kept. A tenant of the same currency redeems it with baimo tenants redeem TENANT CODE. TIME is RFC 3339 or a date
(00:00 UTC); the default is never. Talks to a running gateway: --url (or BAIMO_URL), --admin-key (or BAIMO_ADMIN_KEY).`

const budgetsUsage = `usage:
  baimo budgets set key|tenant SUBJECT --period day|month|total --limit AMOUNT [--alerts 50,80,100] [--json]
  baimo budgets get key|tenant SUBJECT [--json]

A budget caps what one API key (SUBJECT is its id) or one tenant may spend per day or month (UTC) or in total:
a request whose worst case would exceed it is refused. --alerts are percents of the limit reported once per
period. set replaces the budget: thresholds not given are dropped. Talks to a running gateway: --url (or
BAIMO_URL), --admin-key (or BAIMO_ADMIN_KEY).`

type budgetJSON struct {
	Scope   string `json:"scope"`
	Subject string `json:"subject"`
	Period  string `json:"period"`
	Limit   string `json:"limit"`
	Alerts  []int  `json:"alerts"`
	Spent   string `json:"spent"`
	Pending string `json:"pending"`
}

func runCodes(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return dispatch(ctx, "codes", codesUsage, map[string]subcommand{"create": codesCreate}, args, stdout, stderr)
}

func codesCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	const syn = "codes create AMOUNT [--currency CNY] [--expires TIME] [--json]"
	c, fs := adminSub("codes create", syn, stderr)
	currency := fs.String("currency", "CNY", "currency of the code; only tenants of this currency can redeem it")
	expires := fs.String("expires", "", "when the code stops being redeemable, RFC 3339 or a date at 00:00 UTC (default: never)")
	asJSON := fs.Bool("json", false, "print the API's JSON (it holds the code)")
	pos, err := parseArgs(fs, args, 1, syn)
	if err != nil {
		return err
	}
	n, err := parseAmountArg("AMOUNT", pos[0])
	if err != nil {
		return err
	}
	if n <= 0 {
		return fmt.Errorf("%w: AMOUNT %s: a code must be worth more than zero", errUsage, pos[0])
	}
	body := map[string]any{"amount": money.FormatNanos(n), "currency": strings.ToUpper(*currency)}
	if *expires != "" {
		t, err := parseTimeArg("--expires", *expires)
		if err != nil {
			return err
		}
		body["expires_at"] = t
	}
	// Not retried: creating a code has no idempotency key, and a retry of a
	// try whose answer was lost would make a second code.
	var raw []byte
	if err := c.do(ctx, http.MethodPost, "/admin/codes", body, &raw); err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(stdout, raw)
	}
	var code struct {
		Code      string     `json:"code"`
		Amount    string     `json:"amount"`
		Currency  string     `json:"currency"`
		ExpiresAt *time.Time `json:"expires_at"`
	}
	if err := json.Unmarshal(raw, &code); err != nil {
		return fmt.Errorf("read code: %w", err)
	}
	exp := "never expires"
	if code.ExpiresAt != nil {
		exp = "expires " + code.ExpiresAt.Format(time.RFC3339)
	}
	fmt.Fprintf(stdout, "Created a one-time code worth %s %s (%s). The code, shown once:\n\n  %s\n\n", code.Amount, code.Currency, exp, code.Code)
	return nil
}

func runBudgets(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	setGet := func(sub string) subcommand {
		return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
			return budgetsSetGet(ctx, sub, args, stdout, stderr)
		}
	}
	return dispatch(ctx, "budgets", budgetsUsage, map[string]subcommand{"set": setGet("set"), "get": setGet("get")},
		args, stdout, stderr)
}

func budgetsSetGet(ctx context.Context, sub string, args []string, stdout, stderr io.Writer) error {
	syn := "budgets get key|tenant SUBJECT [--json]"
	if sub == "set" {
		syn = "budgets set key|tenant SUBJECT --period day|month|total --limit AMOUNT [--alerts 50,80,100] [--json]"
	}
	c, fs := adminSub("budgets "+sub, syn, stderr)
	var period, limit, alerts *string
	if sub == "set" {
		period = fs.String("period", "", "day or month (they start at 00:00 UTC), or total (never resets) (required)")
		limit = fs.String("limit", "", "the most that may be spent in a period, an exact decimal (required)")
		alerts = fs.String("alerts", "", "comma-separated percents of the limit to report when crossed, such as 50,80,100 (default: none)")
	}
	asJSON := fs.Bool("json", false, "print the API's JSON")
	pos, err := parseArgs(fs, args, 2, syn)
	if err != nil {
		return err
	}
	scope := ledger.Scope(pos[0])
	if scope != ledger.ScopeKey && scope != ledger.ScopeTenant {
		return fmt.Errorf("%w: %q: want key or tenant", errUsage, pos[0])
	}
	path := "/admin/budgets/" + url.PathEscape(pos[0]) + "/" + url.PathEscape(pos[1])
	var raw []byte
	if sub == "get" {
		err = c.do(ctx, http.MethodGet, path, nil, &raw)
	} else {
		var body map[string]any
		if body, err = budgetBody(*period, *limit, *alerts); err != nil {
			return err
		}
		err = c.do(ctx, http.MethodPut, path, body, &raw)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		return writeRaw(stdout, raw)
	}
	var b budgetJSON
	if err := json.Unmarshal(raw, &b); err != nil {
		return fmt.Errorf("read budget: %w", err)
	}
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SCOPE\tSUBJECT\tPERIOD\tLIMIT\tSPENT\tPENDING\tALERTS")
	as := make([]string, len(b.Alerts))
	for i, a := range b.Alerts {
		as[i] = strconv.Itoa(a) + "%"
	}
	fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Scope, b.Subject, b.Period, b.Limit, b.Spent, b.Pending, dash(strings.Join(as, ",")))
	return tw.Flush()
}

// budgetBody checks budgets set's flags and returns the request body.
func budgetBody(period, limit, alerts string) (map[string]any, error) {
	switch ledger.Period(period) {
	case ledger.PeriodDay, ledger.PeriodMonth, ledger.PeriodTotal:
	default:
		return nil, fmt.Errorf("%w: --period %q: want day, month or total", errUsage, period)
	}
	if limit == "" {
		return nil, fmt.Errorf("%w: --limit is required", errUsage)
	}
	n, err := parseAmountArg("--limit", limit)
	if err != nil {
		return nil, err
	}
	if n < 0 {
		return nil, fmt.Errorf("%w: --limit %s: must not be negative", errUsage, limit)
	}
	var as []int
	if alerts != "" {
		for _, f := range strings.Split(alerts, ",") {
			p, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(f), "%"))
			if err != nil || p <= 0 || p > 1000 {
				return nil, fmt.Errorf("%w: --alerts %q: want percents between 1 and 1000, such as 50,80,100", errUsage, alerts)
			}
			as = append(as, p)
		}
	}
	body := map[string]any{"period": period, "limit": money.FormatNanos(n)}
	if as != nil {
		body["alerts"] = as
	}
	return body, nil
}
