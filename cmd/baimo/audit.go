package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/store/postgres"
	"baimo/internal/store/sqlite"
)

func init() {
	register(command{name: "audit", summary: "check the ledger's books (exit status 1 when a check fails)", run: runAudit})
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
	grace := fs.Duration("grace", time.Minute, "how long past its expiry a hold may stay open (the sweep interval)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, fs.Args())
	}
	var store ledger.Store
	switch {
	case *dsn != "":
		db, err := postgres.Open(ctx, *dsn)
		if err != nil {
			return err
		}
		defer db.Close()
		store = db
	default:
		path := filepath.Join(*dataDir, "baimo.db")
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("no database at %s: %w", path, err)
		}
		db, err := sqlite.Open(ctx, path)
		if err != nil {
			return err
		}
		defer db.Close()
		store = db
	}
	rep, err := ledger.Audit(ctx, store, time.Now(), *grace)
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
