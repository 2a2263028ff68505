package price

import (
	"context"
	"fmt"
	"time"
)

// StoredVersion is a price version added through the admin API, kept as the
// JSON of its VersionSpec and replayed over the shipped catalog at start.
type StoredVersion struct {
	ID      string
	Created time.Time
	Spec    []byte // JSON of a VersionSpec
}

// Store keeps the price versions added at run time, in the order added.
// Implementations live under internal/store.
type Store interface {
	AddPriceVersion(ctx context.Context, v StoredVersion) error
	DeletePriceVersion(ctx context.Context, id string) error
	ListPriceVersions(ctx context.Context) ([]StoredVersion, error)
}

// ListSpec is the data form of a tenant's price list: a markup in basis
// points on every catalog price (1500 = +15%) and negotiated per-model
// versions that replace the catalog's for that tenant.
type ListSpec struct {
	MarkupBP  int64         `json:"markup_bp"`
	Overrides []VersionSpec `json:"overrides,omitempty"`
}

// Build makes the List a spec describes.
func (s ListSpec) Build(name string) (*List, error) {
	pl, err := NewList(name, s.MarkupBP)
	if err != nil {
		return nil, err
	}
	for i, o := range s.Overrides {
		if err := pl.Override(o); err != nil {
			return nil, fmt.Errorf("overrides[%d]: %w", i, err)
		}
	}
	return pl, nil
}

// ListStore keeps tenants' price lists, as the JSON of a ListSpec.
type ListStore interface {
	SetPriceList(ctx context.Context, tenantID string, spec []byte) error
	PriceLists(ctx context.Context) (map[string][]byte, error)
}
