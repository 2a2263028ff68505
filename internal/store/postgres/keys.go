package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"baimo/internal/keys"
)

var _ keys.Store = (*DB)(nil)

// CreateKey stores k.
func (db *DB) CreateKey(ctx context.Context, k keys.Key) error {
	_, err := db.pool.Exec(ctx,
		`INSERT INTO api_keys (id, name, prefix, hash, tenant_id, models, expires_at, disabled, created_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
		k.ID, k.Name, k.Prefix, k.Hash, k.TenantID, strings.Join(k.Models, ","),
		unixNanos(k.ExpiresAt), k.Disabled, unixNanos(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	return nil
}

const keyColumns = `id, name, prefix, hash, tenant_id, models, expires_at, disabled, created_at`

func scanKey(row pgx.Row) (keys.Key, error) {
	var k keys.Key
	var models string
	var expires, created int64
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.Hash, &k.TenantID, &models, &expires, &k.Disabled, &created); err != nil {
		return keys.Key{}, err
	}
	if models != "" {
		k.Models = strings.Split(models, ",")
	}
	k.ExpiresAt = fromUnixNanos(expires)
	k.CreatedAt = fromUnixNanos(created)
	return k, nil
}

// ListKeys returns every key, oldest first.
func (db *DB) ListKeys(ctx context.Context) ([]keys.Key, error) {
	rows, err := db.pool.Query(ctx, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	defer rows.Close()
	var out []keys.Key
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list keys: %w", err)
		}
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

// KeyByHash returns the key with the given secret hash.
func (db *DB) KeyByHash(ctx context.Context, hash string) (keys.Key, error) {
	k, err := scanKey(db.pool.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1`, hash))
	if errors.Is(err, pgx.ErrNoRows) {
		return keys.Key{}, keys.ErrNotFound
	}
	if err != nil {
		return keys.Key{}, fmt.Errorf("key by hash: %w", err)
	}
	return k, nil
}

// DeleteKey removes the key with id.
func (db *DB) DeleteKey(ctx context.Context, id string) error {
	tag, err := db.pool.Exec(ctx, `DELETE FROM api_keys WHERE id = $1`, id)
	return affectedOne(tag, err, "delete key "+id)
}

// SetKeyDisabled sets the disabled flag of the key with id.
func (db *DB) SetKeyDisabled(ctx context.Context, id string, disabled bool) error {
	tag, err := db.pool.Exec(ctx, `UPDATE api_keys SET disabled = $1 WHERE id = $2`, disabled, id)
	return affectedOne(tag, err, "disable key "+id)
}

func affectedOne(tag pgconn.CommandTag, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("%s: %w", what, keys.ErrNotFound)
	}
	return nil
}
