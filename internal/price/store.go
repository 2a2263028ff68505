package price

import (
	"context"
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
