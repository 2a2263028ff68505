package postgres

import (
	"context"
	"fmt"
	"time"

	"baimo/internal/price"
)

var _ price.Store = (*DB)(nil)

// AddPriceVersion stores a price version added at run time.
func (db *DB) AddPriceVersion(ctx context.Context, v price.StoredVersion) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO price_versions (id, created_ns, spec) VALUES ($1, $2, $3)`,
		v.ID, v.Created.UnixNano(), string(v.Spec))
	if err != nil {
		return fmt.Errorf("add price version %s: %w", v.ID, err)
	}
	return nil
}

// DeletePriceVersion removes a stored price version.
func (db *DB) DeletePriceVersion(ctx context.Context, id string) error {
	if _, err := db.pool.Exec(ctx, `DELETE FROM price_versions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete price version %s: %w", id, err)
	}
	return nil
}

// ListPriceVersions returns the stored versions in the order added.
func (db *DB) ListPriceVersions(ctx context.Context) ([]price.StoredVersion, error) {
	rows, err := db.pool.Query(ctx, `SELECT id, created_ns, spec FROM price_versions ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("list price versions: %w", err)
	}
	defer rows.Close()
	var out []price.StoredVersion
	for rows.Next() {
		var v price.StoredVersion
		var created int64
		var spec string
		if err := rows.Scan(&v.ID, &created, &spec); err != nil {
			return nil, fmt.Errorf("list price versions: %w", err)
		}
		v.Created, v.Spec = time.Unix(0, created).UTC(), []byte(spec)
		out = append(out, v)
	}
	return out, rows.Err()
}

var _ price.ListStore = (*DB)(nil)

// SetPriceList stores (or replaces) a tenant's price list.
func (db *DB) SetPriceList(ctx context.Context, tenantID string, spec []byte) error {
	_, err := db.pool.Exec(ctx, `INSERT INTO tenant_price_lists (tenant_id, spec, updated_ns) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id) DO UPDATE SET spec = excluded.spec, updated_ns = excluded.updated_ns`,
		tenantID, string(spec), time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("set price list %s: %w", tenantID, err)
	}
	return nil
}

// PriceLists returns every tenant's price list.
func (db *DB) PriceLists(ctx context.Context) (map[string][]byte, error) {
	rows, err := db.pool.Query(ctx, `SELECT tenant_id, spec FROM tenant_price_lists`)
	if err != nil {
		return nil, fmt.Errorf("price lists: %w", err)
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id, spec string
		if err := rows.Scan(&id, &spec); err != nil {
			return nil, fmt.Errorf("price lists: %w", err)
		}
		out[id] = []byte(spec)
	}
	return out, rows.Err()
}
