package sqlcore

import (
	"context"
	"fmt"

	"baimo/internal/keys"
)

var _ keys.LoginStore = (*Store)(nil)

// CreateLogin implements keys.LoginStore.
func (s *Store) CreateLogin(ctx context.Context, l keys.Login) error {
	n, err := s.write.Exec(ctx, `INSERT INTO console_logins (name, tenant_id, hash, created_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO NOTHING`, l.Name, l.TenantID, l.Hash, UnixNanos(l.CreatedAt))
	if err != nil {
		return fmt.Errorf("create login %s: %w", l.Name, err)
	}
	if n == 0 {
		return keys.ErrLoginExists
	}
	return nil
}

func scanLogin(r Row) (keys.Login, error) {
	var l keys.Login
	var created int64
	err := r.Scan(&l.Name, &l.TenantID, &l.Hash, &created)
	l.CreatedAt = FromUnixNanos(created)
	return l, err
}

// LoginByName implements keys.LoginStore.
func (s *Store) LoginByName(ctx context.Context, name string) (keys.Login, error) {
	l, err := scanLogin(s.read.QueryRow(ctx, `SELECT name, tenant_id, hash, created_at FROM console_logins WHERE name = $1`, name))
	if noRows(err) {
		return keys.Login{}, keys.ErrNotFound
	}
	if err != nil {
		return keys.Login{}, fmt.Errorf("login %s: %w", name, err)
	}
	return l, nil
}

// Logins implements keys.LoginStore.
func (s *Store) Logins(ctx context.Context, tenantID string) ([]keys.Login, error) {
	out, err := queryAll(ctx, s.read, scanLogin, `SELECT name, tenant_id, hash, created_at FROM console_logins
		WHERE tenant_id = $1 ORDER BY name`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("logins of %s: %w", tenantID, err)
	}
	return out, nil
}

// DeleteLogin implements keys.LoginStore.
func (s *Store) DeleteLogin(ctx context.Context, name string) error {
	n, err := s.write.Exec(ctx, `DELETE FROM console_logins WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete login %s: %w", name, err)
	}
	if n == 0 {
		return keys.ErrNotFound
	}
	return nil
}
