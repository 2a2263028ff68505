package sqlcore

import (
	"context"
	"fmt"
	"time"

	"baimo/internal/price"
)

var (
	_ price.Store     = (*Store)(nil)
	_ price.ListStore = (*Store)(nil)
)

// AddPriceVersion stores a price version added at run time.
func (s *Store) AddPriceVersion(ctx context.Context, v price.StoredVersion) error {
	_, err := s.write.Exec(ctx, `INSERT INTO price_versions (id, created_ns, spec) VALUES ($1, $2, $3)`,
		v.ID, UnixNanos(v.Created), string(v.Spec))
	if err != nil {
		return fmt.Errorf("add price version %s: %w", v.ID, err)
	}
	return nil
}

// DeletePriceVersion removes a stored price version (used to undo an add
// that the catalog then refused).
func (s *Store) DeletePriceVersion(ctx context.Context, id string) error {
	if _, err := s.write.Exec(ctx, `DELETE FROM price_versions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete price version %s: %w", id, err)
	}
	return nil
}

// ListPriceVersions returns the stored versions in the order added.
func (s *Store) ListPriceVersions(ctx context.Context) ([]price.StoredVersion, error) {
	out, err := queryAll(ctx, s.read, func(r Row) (price.StoredVersion, error) {
		var v price.StoredVersion
		var created int64
		var spec string
		err := r.Scan(&v.ID, &created, &spec)
		v.Created, v.Spec = FromUnixNanos(created), []byte(spec)
		return v, err
	}, `SELECT id, created_ns, spec FROM price_versions ORDER BY seq`)
	if err != nil {
		return nil, fmt.Errorf("list price versions: %w", err)
	}
	return out, nil
}

// SetPriceList stores (or replaces) a tenant's price list.
func (s *Store) SetPriceList(ctx context.Context, tenantID string, spec []byte) error {
	_, err := s.write.Exec(ctx, `INSERT INTO tenant_price_lists (tenant_id, spec, updated_ns) VALUES ($1, $2, $3)
		ON CONFLICT (tenant_id) DO UPDATE SET spec = excluded.spec, updated_ns = excluded.updated_ns`,
		tenantID, string(spec), time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("set price list %s: %w", tenantID, err)
	}
	return nil
}

// PriceLists returns every tenant's price list.
func (s *Store) PriceLists(ctx context.Context) (map[string][]byte, error) {
	type list struct{ id, spec string }
	rows, err := queryAll(ctx, s.read, func(r Row) (list, error) {
		var l list
		return l, r.Scan(&l.id, &l.spec)
	}, `SELECT tenant_id, spec FROM tenant_price_lists`)
	if err != nil {
		return nil, fmt.Errorf("price lists: %w", err)
	}
	out := make(map[string][]byte, len(rows))
	for _, l := range rows {
		out[l.id] = []byte(l.spec)
	}
	return out, nil
}
