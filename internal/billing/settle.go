package billing

import (
	"context"
	"log/slog"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// Unrated is the price version of a record that could not be rated at
// settlement (see settler.write).
const Unrated = "unrated"

// settler rates each batch of finished requests and settles it with its
// records in one transaction: no record without its settlement, and none the
// other way. It is the one settler: `baimo serve` and the tests build it
// through New.
type settler struct {
	rater   *Rater
	books   Books
	records RecordWriter
	log     *slog.Logger
}

// write rates and stores one batch.
//
// A record that cannot be rated (its price or exchange rate vanished between
// admission, which checked it, and settlement) is never settled at 0 and
// never dropped: it is charged the hold its request placed, the worst case
// the tenant's balance already covered, marked with price version Unrated
// and logged, so the audit reports it and an operator can refund the
// difference. Without a hold (metering only) it is recorded at 0, marked the
// same way.
func (s *settler) write(ctx context.Context, batch []finished) error {
	// The records are rated in place in what is written: a record is a few
	// hundred bytes, and a copy of each per step showed in the allocations.
	ss := make([]ledger.Settlement, len(batch))
	for i := range batch {
		rec := &ss[i].Record
		*rec = batch[i].rec
		if err := s.rater.RateRecord(rec); err != nil {
			s.log.Error("usage record not rated: charged its hold", "request_id", rec.RequestID,
				"hold", money.FormatNanos(batch[i].held), "err", err)
			rec.CostNanos, rec.PriceVersion, rec.Lines = batch[i].held, Unrated, nil
			rec.Currency = string(s.rater.Currency)
		}
	}
	if s.books == nil {
		recs := make([]usage.Record, len(ss))
		for i := range ss {
			recs[i] = ss[i].Record
		}
		return s.records.WriteRecords(ctx, recs)
	}
	res, err := s.books.SettleBatch(ctx, ss)
	if err != nil {
		return err
	}
	for _, r := range res {
		if r.Err != nil {
			s.log.Error("settlement refused", "request_id", r.RequestID, "err", r.Err)
		} else if r.Debt > 0 {
			s.log.Warn("cost above the balance recorded as debt", "request_id", r.RequestID, "debt", money.FormatNanos(r.Debt))
		}
	}
	return nil
}
