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
	recs := make([]usage.Record, len(batch))
	for i := range batch {
		recs[i] = batch[i].rec
		if err := s.rater.RateRecord(&recs[i]); err != nil {
			s.log.Error("usage record not rated: charged its hold", "request_id", recs[i].RequestID,
				"hold", money.FormatNanos(batch[i].held), "err", err)
			recs[i].CostNanos, recs[i].PriceVersion, recs[i].Lines = batch[i].held, Unrated, nil
			recs[i].Currency = string(s.rater.Currency)
		}
	}
	if s.books == nil {
		return s.records.WriteRecords(ctx, recs)
	}
	ss := make([]ledger.Settlement, len(recs))
	for i := range recs {
		ss[i] = ledger.Settlement{Record: recs[i]}
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
