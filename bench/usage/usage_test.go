// Package usage_test benchmarks writing usage records: the group commit the
// gateway's recorder does, by batch size.
package usage_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

func BenchmarkWriteRecordsSQLite(b *testing.B) {
	for _, batch := range []int{1, 25, 100, 256} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			db, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "u.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			recs := make([]usage.Record, batch)
			start := time.Now()
			n := 0
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				for j := range recs {
					n++
					recs[j] = usage.Record{RequestID: fmt.Sprintf("req_%012d", n), KeyID: "key_1", TenantID: "default",
						Endpoint: "chat", Model: "sim-chat", Channel: "local", UpstreamModel: "sim-chat", Status: 200,
						Usage: usage.Usage{Input: 12, Output: 16, Source: usage.SourceVendor}, Complete: true,
						Start: start.Add(time.Duration(n) * time.Microsecond), Duration: time.Millisecond,
						Attempts: []usage.Attempt{{Channel: "local", Status: 200}}, Currency: "CNY", CostNanos: 152, PriceVersion: "v"}
				}
				if err := db.WriteRecords(context.Background(), recs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "records/s")
		})
	}
}
