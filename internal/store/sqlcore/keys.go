package sqlcore

import (
	"context"
	"fmt"
	"strings"

	"baimo/internal/keys"
)

var _ keys.Store = (*Store)(nil)

const keyColumns = `id, name, prefix, hash, tenant_id, models, expires_at, disabled, created_at`

// CreateKey stores k.
func (s *Store) CreateKey(ctx context.Context, k keys.Key) error {
	_, err := s.write.Exec(ctx, `INSERT INTO api_keys (`+keyColumns+`) VALUES (`+Placeholders(1, 9)+`)`,
		k.ID, k.Name, k.Prefix, k.Hash, k.TenantID, strings.Join(k.Models, ","),
		UnixNanos(k.ExpiresAt), k.Disabled, UnixNanos(k.CreatedAt))
	if err != nil {
		return fmt.Errorf("create key %s: %w", k.ID, err)
	}
	return nil
}

func scanKey(row Row) (keys.Key, error) {
	var k keys.Key
	var models string
	var expires, created int64
	if err := row.Scan(&k.ID, &k.Name, &k.Prefix, &k.Hash, &k.TenantID, &models, &expires, &k.Disabled, &created); err != nil {
		return keys.Key{}, err
	}
	if models != "" {
		k.Models = strings.Split(models, ",")
	}
	k.ExpiresAt, k.CreatedAt = FromUnixNanos(expires), FromUnixNanos(created)
	return k, nil
}

// ListKeys returns every key, oldest first.
func (s *Store) ListKeys(ctx context.Context) ([]keys.Key, error) {
	out, err := queryAll(ctx, s.read, scanKey, `SELECT `+keyColumns+` FROM api_keys ORDER BY created_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	return out, nil
}

// KeyByHash returns the key with the given secret hash.
func (s *Store) KeyByHash(ctx context.Context, hash string) (keys.Key, error) {
	k, err := scanKey(s.read.QueryRow(ctx, `SELECT `+keyColumns+` FROM api_keys WHERE hash = $1`, hash))
	if noRows(err) {
		return keys.Key{}, keys.ErrNotFound
	}
	if err != nil {
		return keys.Key{}, fmt.Errorf("key by hash: %w", err)
	}
	return k, nil
}

// DeleteKey removes the key with id.
func (s *Store) DeleteKey(ctx context.Context, id string) error {
	n, err := s.write.Exec(ctx, `DELETE FROM api_keys WHERE id = $1`, id)
	return affectedOne(n, err, "delete key "+id)
}

// SetKeyDisabled sets the disabled flag of the key with id.
func (s *Store) SetKeyDisabled(ctx context.Context, id string, disabled bool) error {
	n, err := s.write.Exec(ctx, `UPDATE api_keys SET disabled = $1 WHERE id = $2`, disabled, id)
	return affectedOne(n, err, "disable key "+id)
}

func affectedOne(n int64, err error, what string) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if n == 0 {
		return fmt.Errorf("%s: %w", what, keys.ErrNotFound)
	}
	return nil
}
