package console

import (
	"testing"
	"time"

	"baimo/internal/batch"
	"baimo/internal/replica"
	"baimo/internal/schedule"
)

func TestPoolFigures(t *testing.T) {
	rep := func(matched, prompt int64, m *schedule.Metrics, kv float64) replicaRow {
		var r replica.ReplicaStats
		r.Matched, r.Prompt, r.Metrics, r.Load.KVUsage = matched, prompt, m, kv
		return replicaRow{r}
	}
	tests := []struct {
		name                 string
		row                  replicaRow
		index, engine, kvUse string
	}{
		{"no traffic, no scrape", rep(0, 0, nil, 0), "", "", ""},
		{"a third matched", rep(1, 3, &schedule.Metrics{Healthy: true, Hits: 750, Queries: 1000}, 0.424), "33.3%", "75.0%", "42%"},
		{"failed scrape", rep(5, 5, &schedule.Metrics{Err: "refused"}, 0.9), "100.0%", "", ""},
	}
	for _, tt := range tests {
		if got := tt.row.IndexHit(); got != tt.index {
			t.Errorf("%s: IndexHit = %q, want %q", tt.name, got, tt.index)
		}
		if got := tt.row.EngineHit(); got != tt.engine {
			t.Errorf("%s: EngineHit = %q, want %q", tt.name, got, tt.engine)
		}
		if got := tt.row.KV(); got != tt.kvUse {
			t.Errorf("%s: KV = %q, want %q", tt.name, got, tt.kvUse)
		}
	}
	p := poolView{replica.Stats{Classes: [3]schedule.ClassStats{{Waiting: 2, WaitCount: 4, WaitSum: 2 * time.Second}, {}, {Waiting: 5}}}}
	rows := p.ClassRows()
	if p.Waiting() != 7 || rows[0].Name != "interactive" || rows[2].Name != "batch" || rows[0].AvgWait() != 500*time.Millisecond || rows[1].AvgWait() != 0 {
		t.Errorf("classes: waiting %d, rows %+v", p.Waiting(), rows)
	}
	var b batchJSON
	b.Baimo.Lines = batch.Counts{Total: 8, Pending: 2, Succeeded: 4, Errored: 1, Expired: 1}
	if b.Done() != 6 || b.Progress() != "75%" || b.Failed() != 2 || b.Succeeded() != 4 {
		t.Errorf("batch: done %d, progress %s, failed %d", b.Done(), b.Progress(), b.Failed())
	}
	if (batchJSON{}).Progress() != "" {
		t.Errorf("an empty batch shows progress")
	}
}
