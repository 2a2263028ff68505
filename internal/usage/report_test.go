package usage

import (
	"strings"
	"testing"
	"time"
)

func TestReportQueryCheck(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		q    ReportQuery
		want string // "" is valid
	}{
		{"a day", ReportQuery{From: from, To: from.Add(24 * time.Hour)}, ""},
		{"the longest span", ReportQuery{From: from, To: from.Add(MaxReportRange)}, ""},
		{"a nanosecond longer", ReportQuery{From: from, To: from.Add(MaxReportRange + time.Nanosecond)}, "at most 400 days"},
		{"a nanosecond", ReportQuery{From: from, To: from.Add(time.Nanosecond)}, ""},
		{"empty", ReportQuery{From: from, To: from}, "to must be after from"},
		{"backwards", ReportQuery{From: from, To: from.Add(-time.Hour)}, "to must be after from"},
		{"no from", ReportQuery{To: from}, "needs from and to"},
		{"no to", ReportQuery{From: from}, "needs from and to"},
		{"every dimension", ReportQuery{From: from, To: from.Add(time.Hour), GroupBy: DimKey, Bucket: BucketHour}, ""},
		{"by day", ReportQuery{From: from, To: from.Add(time.Hour), GroupBy: DimChannel, Bucket: BucketDay}, ""},
		{"unknown dimension", ReportQuery{From: from, To: from.Add(time.Hour), GroupBy: "vendor"}, `cannot group by "vendor"`},
		{"unknown bucket", ReportQuery{From: from, To: from.Add(time.Hour), Bucket: "week"}, `unknown bucket "week"`},
	}
	for _, tt := range tests {
		err := tt.q.Check()
		if (err == nil) != (tt.want == "") || (err != nil && !strings.Contains(err.Error(), tt.want)) {
			t.Errorf("%s: Check() = %v, want %q", tt.name, err, tt.want)
		}
	}
	for _, d := range []Dim{DimNone, DimModel, DimChannel, DimTenant, DimKey} {
		if !d.Valid() {
			t.Errorf("%q is not valid", d)
		}
	}
	if Dim("Model").Valid() {
		t.Error("dimensions are case-sensitive")
	}
}

// TestTTFTBucket: a time to first token falls in the first bucket whose upper
// bound is above it; at a bound it is in the next one.
func TestTTFTBucket(t *testing.T) {
	ms := time.Millisecond
	for _, tt := range []struct {
		d    time.Duration
		want int
	}{
		{0, 0}, {24 * ms, 0}, {25*ms - 1, 0}, {25 * ms, 1}, {49 * ms, 1}, {50 * ms, 2}, {999 * ms, 7}, {1000 * ms, 8},
		{59999 * ms, 15}, {60000 * ms, 16}, {time.Hour, 16},
	} {
		if got := TTFTBucket(tt.d); got != tt.want {
			t.Errorf("TTFTBucket(%v) = %d, want %d", tt.d, got, tt.want)
		}
	}
	if NumTTFTBuckets != len(TTFTBoundsMs)+1 {
		t.Errorf("NumTTFTBuckets = %d", NumTTFTBuckets)
	}
}

func TestSums(t *testing.T) {
	recs := []Record{
		{Status: 200, Usage: Usage{Input: 100, CachedInput: 40, CacheWrite5m: 10, CacheWrite1h: 5, Output: 20, Reasoning: 8},
			CostNanos: 1000, Duration: time.Second, TTFT: 30 * time.Millisecond},
		{Status: 399, Usage: Usage{Input: 1}, CostNanos: 1, Duration: time.Millisecond},
		{Status: 400, Duration: 2 * time.Millisecond, TTFT: 2 * time.Second},
		{Status: 201, TTFT: 0},
	}
	var s Sums
	for i := range recs {
		s.AddRecord(&recs[i])
	}
	want := Sums{Requests: 4, Errors: 1, Input: 101, CachedInput: 40, CacheWrite: 15, Output: 20, Reasoning: 8, CostNanos: 1001,
		DurationNs: int64(time.Second + 3*time.Millisecond), TTFTSumNanos: int64(2*time.Second + 30*time.Millisecond)}
	want.TTFT[1], want.TTFT[10] = 1, 1
	if s != want {
		t.Fatalf("sums = %+v\nwant %+v", s, want)
	}
	total := want
	total.Add(&want)
	double := Sums{Requests: 8, Errors: 2, Input: 202, CachedInput: 80, CacheWrite: 30, Output: 40, Reasoning: 16, CostNanos: 2002,
		DurationNs: 2 * want.DurationNs, TTFTSumNanos: 2 * want.TTFTSumNanos}
	double.TTFT[1], double.TTFT[10] = 2, 2
	if total != double {
		t.Errorf("Add = %+v\nwant %+v", total, double)
	}
}

// TestTTFTPercentile: the percentile is read as the upper bound of the bucket
// holding the ceil(n×p/100)-th fastest request.
func TestTTFTPercentile(t *testing.T) {
	ms := time.Millisecond
	var s Sums
	if _, ok := s.TTFTPercentile(50); ok {
		t.Error("a percentile of no requests")
	}
	// 10 requests: 4 under 25 ms, 5 in [100, 200) ms, 1 above a minute.
	s.TTFT[0], s.TTFT[3], s.TTFT[16] = 4, 5, 1
	for _, tt := range []struct {
		p    int
		want time.Duration
	}{
		{1, 25 * ms},     // rank 1
		{40, 25 * ms},    // rank 4: the last of the fastest bucket
		{41, 200 * ms},   // rank 5
		{90, 200 * ms},   // rank 9
		{91, 60000 * ms}, // rank 10: above the last bound reads as the last bound
		{99, 60000 * ms},
		{0, 25 * ms}, // rank 0 reads as the first
	} {
		if got, ok := s.TTFTPercentile(tt.p); !ok || got != tt.want {
			t.Errorf("p%d = %v, %v; want %v", tt.p, got, ok, tt.want)
		}
	}
	var one Sums
	one.TTFT[5] = 1
	if got, _ := one.TTFTPercentile(50); got != 500*ms {
		t.Errorf("one request in [300, 500) ms: p50 = %v", got)
	}
	if got, _ := one.TTFTPercentile(150); got != 60000*ms {
		t.Errorf("a percentile past 100 = %v, want the last bound", got)
	}
}
