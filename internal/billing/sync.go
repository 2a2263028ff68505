package billing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"baimo/internal/price"
)

// ReplayVersions adds to cat the price versions operators added through the
// admin API (kept in st), in the order they were added, and returns their
// ids. A version the shipped catalog already superseded is logged and
// skipped; one that cannot be read is an error.
func ReplayVersions(ctx context.Context, cat *price.Catalog, st price.Store, log *slog.Logger) (map[string]bool, error) {
	stored, err := st.ListPriceVersions(ctx)
	if err != nil {
		return nil, fmt.Errorf("stored price versions: %w", err)
	}
	seen := make(map[string]bool, len(stored))
	for _, sv := range stored {
		seen[sv.ID] = true
		b, err := price.DecodeStored(sv)
		if err != nil {
			return nil, err
		}
		if _, err := cat.AddVersions(b.Versions); err != nil {
			// A newer shipped catalog may already hold a later version.
			log.Warn("stored price version not applied", "id", sv.ID, "op", b.Op, "err", err)
		}
	}
	return seen, nil
}

// PriceSync applies, every Interval, the price versions and tenant price
// lists other nodes added through their admin API, so a price change takes
// effect on every node within about Interval.
type PriceSync struct {
	Store    price.Store
	Lists    price.ListStore // nil: no tenant price lists
	Rater    *Rater
	Interval time.Duration
	Log      *slog.Logger

	seen map[string]bool
}

// NewPriceSync returns a sync that treats the versions in seen (from
// ReplayVersions) as applied.
func NewPriceSync(st price.Store, lists price.ListStore, r *Rater, seen map[string]bool, interval time.Duration, log *slog.Logger) *PriceSync {
	if seen == nil {
		seen = map[string]bool{}
	}
	return &PriceSync{Store: st, Lists: lists, Rater: r, Interval: interval, Log: log, seen: seen}
}

// Once applies what other nodes added since the last call.
func (p *PriceSync) Once(ctx context.Context) {
	if p.Lists != nil {
		if err := p.Rater.LoadPriceLists(ctx, p.Lists); err != nil {
			p.Log.Warn("sync price lists", "err", err)
		}
	}
	list, err := p.Store.ListPriceVersions(ctx)
	if err != nil {
		p.Log.Warn("sync price versions", "err", err)
		return
	}
	for _, v := range list {
		if p.seen[v.ID] {
			continue
		}
		p.seen[v.ID] = true
		if err := p.Rater.Catalog.ApplyStored(v); err != nil && !errors.Is(err, price.ErrHistory) {
			p.Log.Warn("stored price version not applied", "id", v.ID, "err", err)
		}
	}
}
