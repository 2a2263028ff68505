package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"baimo/internal/billing"
	"baimo/internal/config"
)

func init() {
	register(command{name: "audit", summary: "check the ledger's books and re-rate the last day's usage records (exit status 1 when a check fails)", run: runAudit})
}

// errAuditFailed is returned when the audit ran and found a problem.
var errAuditFailed = errors.New("audit failed")

func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "vendors" {
		return runAuditVendors(ctx, args[1:], stdout, stderr)
	}
	fs := newFlags("audit", stderr)
	asJSON := fs.Bool("json", false, "print the report as JSON")
	dataDir := fs.String("data", "./data", "directory of the SQLite database (baimo.db)")
	dsn := fs.String("postgres", "", "PostgreSQL DSN (instead of --data)")
	cfgPath := fs.String("config", "", "YAML configuration of the gateway (its currency, free models and exchange rates, to re-rate the records)")
	grace := fs.Duration("grace", time.Minute, "how long past its expiry a hold may stay open (the sweep interval)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	cfg := config.Default()
	if *cfgPath != "" {
		var err error
		if cfg, err = config.Load(*cfgPath); err != nil {
			return err
		}
	}
	if *dsn == "" {
		if _, err := os.Stat(filepath.Join(*dataDir, "baimo.db")); err != nil {
			return fmt.Errorf("no database at %s: %w", filepath.Join(*dataDir, "baimo.db"), err)
		}
	}
	st, err := openStore(ctx, *dsn, *dataDir)
	if err != nil {
		return err
	}
	defer st.Close()
	// The records are re-rated with the prices the gateway rates with: the
	// catalog, the versions added through the admin API, the tenants' price
	// lists, and the configured currency, free models and exchange rates.
	rater, _, err := newRater(ctx, cfg, *cfgPath, st, slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		return err
	}
	rep, err := billing.Audit(ctx, st, st, rater, time.Now(), *grace)
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(stdout, "audit of %d accounts at %s\n", rep.Accounts, rep.At.UTC().Format(time.RFC3339))
		for _, c := range rep.Checks {
			status := "ok  "
			if !c.OK {
				status = "FAIL"
			}
			fmt.Fprintf(stdout, "%s %s\n", status, c.Name)
			for _, p := range c.Problems {
				fmt.Fprintf(stdout, "     %s\n", p)
			}
		}
		if len(rep.Unbilled) > 0 {
			fmt.Fprintf(stdout, "note %d requests of lost nodes were never charged (nothing known of what they delivered; the vendor may have billed them):\n", len(rep.Unbilled))
			for _, id := range rep.Unbilled {
				fmt.Fprintf(stdout, "     %s\n", id)
			}
		}
	}
	if !rep.OK {
		var names []string
		for _, c := range rep.Failed() {
			names = append(names, c.Name)
		}
		return fmt.Errorf("%w: %s", errAuditFailed, strings.Join(names, ", "))
	}
	return nil
}
