package usage

import (
	"context"
	"fmt"
	"time"
)

// Dim is a dimension usage reports group by.
type Dim string

// Dimensions a store groups by. A model's vendor is not stored: callers fold
// DimModel into vendors with the price catalog.
const (
	DimNone    Dim = ""
	DimModel   Dim = "model"
	DimChannel Dim = "channel"
	DimTenant  Dim = "tenant"
	DimKey     Dim = "key"
)

// Valid reports whether d is a dimension a store groups by.
func (d Dim) Valid() bool {
	switch d {
	case DimNone, DimModel, DimChannel, DimTenant, DimKey:
		return true
	}
	return false
}

// Bucket is the time resolution of a report.
type Bucket string

// Buckets. Days start at midnight in the report's zone.
const (
	BucketNone Bucket = ""
	BucketHour Bucket = "hour"
	BucketDay  Bucket = "day"
)

// MaxReportRange bounds how far apart a report's From and To may be.
const MaxReportRange = 400 * 24 * time.Hour

// ReportQuery selects and groups usage for a report.
type ReportQuery struct {
	From, To time.Time // half-open [From, To); both required
	Bucket   Bucket
	// Zone is the reporting time zone: days start at its midnight. Nil is UTC.
	Zone    *time.Location
	GroupBy Dim
	// Filters; "" means any.
	TenantID, KeyID, Model, Channel string
}

// Check says what is wrong with q, if anything.
func (q ReportQuery) Check() error {
	switch {
	case q.From.IsZero() || q.To.IsZero():
		return fmt.Errorf("a report needs from and to")
	case !q.To.After(q.From):
		return fmt.Errorf("to must be after from")
	case q.To.Sub(q.From) > MaxReportRange:
		return fmt.Errorf("a report spans at most %d days", int(MaxReportRange/(24*time.Hour)))
	case !q.GroupBy.Valid():
		return fmt.Errorf("cannot group by %q", q.GroupBy)
	case q.Bucket != BucketNone && q.Bucket != BucketHour && q.Bucket != BucketDay:
		return fmt.Errorf("unknown bucket %q", q.Bucket)
	}
	return nil
}

// TTFTBoundsMs are the upper bounds, in milliseconds, of the time-to-first-
// token histogram that reports carry; the last bucket is everything above the
// last bound. Percentiles read from it are exact to a bucket.
var TTFTBoundsMs = [...]int64{25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 5000, 7500, 10000, 20000, 60000}

// NumTTFTBuckets is the length of a Sums' TTFT histogram.
const NumTTFTBuckets = len(TTFTBoundsMs) + 1

// TTFTBucket returns the histogram bucket of a time to first token.
func TTFTBucket(d time.Duration) int {
	ms := d.Milliseconds()
	for i, b := range TTFTBoundsMs {
		if ms < b {
			return i
		}
	}
	return len(TTFTBoundsMs)
}

// Sums are the additive figures of a set of records.
type Sums struct {
	Requests     int64
	Errors       int64 // HTTP status 400 or above
	Input        int64
	CachedInput  int64
	CacheWrite   int64 // 5-minute and 1-hour cache writes
	Output       int64
	Reasoning    int64
	CostNanos    int64
	DurationNs   int64                 // summed request durations
	TTFT         [NumTTFTBuckets]int64 // requests with a first token, by TTFTBucket
	TTFTSumNanos int64
}

// Add adds o to s.
func (s *Sums) Add(o *Sums) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.Input += o.Input
	s.CachedInput += o.CachedInput
	s.CacheWrite += o.CacheWrite
	s.Output += o.Output
	s.Reasoning += o.Reasoning
	s.CostNanos += o.CostNanos
	s.DurationNs += o.DurationNs
	s.TTFTSumNanos += o.TTFTSumNanos
	for i := range s.TTFT {
		s.TTFT[i] += o.TTFT[i]
	}
}

// AddRecord adds one record to s.
func (s *Sums) AddRecord(r *Record) {
	s.Requests++
	if r.Status >= 400 {
		s.Errors++
	}
	s.Input += r.Usage.Input
	s.CachedInput += r.Usage.CachedInput
	s.CacheWrite += r.Usage.CacheWrite5m + r.Usage.CacheWrite1h
	s.Output += r.Usage.Output
	s.Reasoning += r.Usage.Reasoning
	s.CostNanos += r.CostNanos
	s.DurationNs += int64(r.Duration)
	if r.TTFT > 0 {
		s.TTFT[TTFTBucket(r.TTFT)]++
		s.TTFTSumNanos += int64(r.TTFT)
	}
}

// TTFTPercentile returns the upper bound of the histogram bucket holding the
// p-th percentile (0 < p < 100) of the time to first token, and false when no
// request had a first token. Above the last bound it returns the last bound.
func (s *Sums) TTFTPercentile(p int) (time.Duration, bool) {
	var n int64
	for _, c := range s.TTFT {
		n += c
	}
	if n == 0 {
		return 0, false
	}
	rank := (n*int64(p) + 99) / 100 // the ceil(n*p/100)-th smallest
	if rank < 1 {
		rank = 1
	}
	var seen int64
	for i, c := range s.TTFT {
		seen += c
		if seen >= rank {
			if i >= len(TTFTBoundsMs) {
				i = len(TTFTBoundsMs) - 1
			}
			return time.Duration(TTFTBoundsMs[i]) * time.Millisecond, true
		}
	}
	return time.Duration(TTFTBoundsMs[len(TTFTBoundsMs)-1]) * time.Millisecond, true
}

// ReportRow is one group of one bucket in one currency.
type ReportRow struct {
	Start    time.Time // the bucket's start; zero without buckets
	Group    string    // the GroupBy value; "" without grouping
	Currency string    // "" for records that were not rated
	Sums
}

// Reporter is implemented by stores that answer usage reports. Rows come in
// bucket order, then group, then currency.
type Reporter interface {
	Report(ctx context.Context, q ReportQuery) ([]ReportRow, error)
}
