package sqlcore

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is what the schema spells differently in each database. Queries
// need none of it (see the package doc).
type Dialect struct {
	// Name is "sqlite" or "postgres".
	Name string
	// types renders a migration's type tokens: {{int}} a 64-bit integer, {{blob}} bytes,
	// {{bool}} a boolean and {{false}} its false, {{serial}} an increasing
	// integer primary key, {{strict}} SQLite's STRICT table option.
	types *strings.Replacer
	// migrationsTable creates the table of applied migrations if needed;
	// markApplied records one ($1 is its name, $2 the time in Unix
	// nanoseconds).
	migrationsTable, markApplied string
	// after holds, by migration name, what the dialect must run after it
	// in the same transaction.
	after map[string]string
}

// The two dialects.
var (
	SQLite = Dialect{Name: "sqlite",
		types: strings.NewReplacer("{{int}}", "INTEGER", "{{bool}}", "INTEGER", "{{false}}", "0", "{{blob}}", "BLOB",
			"{{serial}}", "INTEGER PRIMARY KEY AUTOINCREMENT", "{{strict}}", " STRICT"),
		migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)`,
		markApplied:     `INSERT INTO schema_migrations (name, applied_at) VALUES ($1, $2)`}
	Postgres = Dialect{Name: "postgres",
		types: strings.NewReplacer("{{int}}", "BIGINT", "{{bool}}", "BOOLEAN", "{{false}}", "false", "{{blob}}", "BYTEA",
			"{{serial}}", "BIGSERIAL PRIMARY KEY", "{{strict}}", ""),
		migrationsTable: `CREATE TABLE IF NOT EXISTS schema_migrations (name TEXT PRIMARY KEY, applied_at TIMESTAMPTZ NOT NULL DEFAULT now())`,
		markApplied:     `INSERT INTO schema_migrations (name, applied_at) VALUES ($1, to_timestamp(CAST($2 AS BIGINT) / 1e9))`,
		after: map[string]string{
			// The records were copied with their seqs: the sequence goes on
			// after the last (SQLite's AUTOINCREMENT keeps count itself).
			"0800_records.sql": `SELECT setval(pg_get_serial_sequence('usage_records', 'seq'),
				(SELECT coalesce(max(seq), 0) + 1 FROM usage_records), false)`,
		}}
)

// Migration is one schema change, in a dialect's spelling.
type Migration struct {
	Name string // file name, recorded once applied
	SQL  string
}

// Migrations returns the schema changes in the order they apply. They are
// numbered by area (0001 spine, 0100 ledger, 0200 prices, ...) so that areas
// add theirs independently; an applied one is never edited, only followed.
func (d Dialect) Migrations() ([]Migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]Migration, 0, len(names))
	for _, name := range names {
		body, err := migrations.ReadFile(name)
		if err != nil {
			return nil, err
		}
		base := strings.TrimPrefix(name, "migrations/")
		sql := d.types.Replace(string(body))
		if a := d.after[base]; a != "" {
			sql += ";\n" + a + ";\n"
		}
		out = append(out, Migration{Name: base, SQL: sql})
	}
	return out, nil
}

// Migrate applies, in order, each migration the database has not recorded,
// each in its own transaction run by inTx (which may first take a lock that
// keeps two processes from migrating at once). now is the time recorded,
// in Unix nanoseconds.
func Migrate(ctx context.Context, d Dialect, now int64, inTx func(ctx context.Context, fn func(Querier) error) error) error {
	return MigrateTo(ctx, d, now, inTx, "")
}

// MigrateTo is Migrate up to the migration named last, included ("": all),
// to build a database as an earlier release left it (tests of upgrades).
func MigrateTo(ctx context.Context, d Dialect, now int64, inTx func(ctx context.Context, fn func(Querier) error) error, last string) error {
	ms, err := d.Migrations()
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if last != "" {
		i := slices.IndexFunc(ms, func(m Migration) bool { return m.Name == last })
		if i < 0 {
			return fmt.Errorf("migrate: no migration %s", last)
		}
		ms = ms[:i+1]
	}
	for _, m := range ms {
		err := inTx(ctx, func(q Querier) error {
			if _, err := q.Exec(ctx, d.migrationsTable); err != nil {
				return err
			}
			var n int
			if err := q.QueryRow(ctx, `SELECT count(*) FROM schema_migrations WHERE name = $1`, m.Name).Scan(&n); err != nil {
				return err
			}
			if n > 0 {
				return nil
			}
			if _, err := q.Exec(ctx, m.SQL); err != nil {
				return err
			}
			_, err := q.Exec(ctx, d.markApplied, m.Name, now)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate %s: %w", m.Name, err)
		}
	}
	return nil
}
