package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"baimo/internal/batch"
)

// testBatchBlobs checks files' content kept in the database: chunks, reads
// across them, deletion.
func testBatchBlobs(t *testing.T, s Store) {
	ctx := context.Background()
	b := s.BatchBlobs()
	content := make([]byte, 5<<19+123) // two and a half chunks of 1 MiB, and some
	for i := range content {
		content[i] = byte('a' + i%26)
	}
	n, err := b.Put(ctx, "file-1", bytes.NewReader(content))
	if err != nil || n != int64(len(content)) {
		t.Fatalf("Put = %d, %v", n, err)
	}
	rc, err := b.Open(ctx, "file-1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, content) {
		t.Fatalf("read back %d bytes (%v), want the %d put", len(got), err, len(content))
	}
	for _, r := range [][2]int64{{0, 10}, {1<<20 - 5, 10}, {1<<20 - 5, 1<<20 + 10}, {int64(len(content)) - 7, 7}} {
		part, err := b.ReadAt(ctx, "file-1", r[0], r[1])
		if err != nil || !bytes.Equal(part, content[r[0]:r[0]+r[1]]) {
			t.Errorf("ReadAt(%d, %d) = %d bytes, %v", r[0], r[1], len(part), err)
		}
	}
	if _, err := b.ReadAt(ctx, "file-1", int64(len(content))-3, 7); err == nil {
		t.Error("ReadAt past the end read")
	}
	if err := b.Delete(ctx, "file-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Open(ctx, "file-1"); !errors.Is(err, batch.ErrNotFound) {
		t.Fatalf("Open after Delete err = %v, want ErrNotFound", err)
	}
}

// testBatches checks files, batches, leases and epochs, and the life of
// lines: started, kept only at their runner's epoch, requeued, settled,
// ended, counted.
func testBatches(t *testing.T, s Store) {
	ctx := context.Background()
	st := s.BatchStore()
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

	// Files.
	for i, p := range []string{batch.PurposeBatch, batch.PurposeOutput, batch.PurposeBatch} {
		f := batch.File{ID: fmt.Sprintf("file-%d", i), TenantID: "acme", KeyID: "k1", Purpose: p, Filename: "in.jsonl",
			Bytes: 100, Lines: 2, CreatedAt: t0.Add(time.Duration(i) * time.Second)}
		if err := st.CreateFile(ctx, f); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.CreateFile(ctx, batch.File{ID: "file-9", TenantID: "other", Purpose: batch.PurposeBatch, CreatedAt: t0}); err != nil {
		t.Fatal(err)
	}
	f, err := st.File(ctx, "file-1")
	if err != nil || f.Purpose != batch.PurposeOutput || f.Bytes != 100 || f.Lines != 2 || !f.CreatedAt.Equal(t0.Add(time.Second)) {
		t.Fatalf("File = %+v, %v", f, err)
	}
	fileIDs := func(purpose, after string, limit int) string {
		fs, err := st.Files(ctx, "acme", purpose, after, limit)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, f := range fs {
			ids = append(ids, f.ID)
		}
		return fmt.Sprint(ids)
	}
	for _, tt := range []struct {
		purpose, after string
		limit          int
		want           string
	}{
		{"", "", 10, "[file-2 file-1 file-0]"},
		{batch.PurposeBatch, "", 10, "[file-2 file-0]"},
		{"", "file-2", 1, "[file-1]"},
	} {
		if got := fileIDs(tt.purpose, tt.after, tt.limit); got != tt.want {
			t.Errorf("Files(%q, %q, %d) = %s, want %s", tt.purpose, tt.after, tt.limit, got, tt.want)
		}
	}
	if err := st.DeleteFile(ctx, "file-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.File(ctx, "file-0"); !errors.Is(err, batch.ErrNotFound) {
		t.Errorf("deleted file err = %v", err)
	}
	if err := st.DeleteFile(ctx, "file-0"); !errors.Is(err, batch.ErrNotFound) {
		t.Errorf("second delete err = %v", err)
	}

	// A batch and its lines.
	const total = 600
	lines := make([]batch.Line, total)
	for i := range lines {
		lines[i] = batch.Line{Index: i, CustomID: fmt.Sprintf("c%d", i), Model: "m", Offset: int64(i * 10), Length: 9,
			Hold: int64(i), Tokens: 5}
	}
	b := batch.Batch{ID: "batch_1", API: batch.OpenAI, TenantID: "acme", KeyID: "k1", Endpoint: "/v1/chat/completions",
		InputFileID: "file-2", Status: batch.InProgress, CreatedAt: t0, ExpiresAt: t0.Add(24 * time.Hour),
		Doc: batch.Doc{Mode: batch.Realtime, Total: total, Metadata: map[string]string{"a": "b"}, Reservation: "r1"}}
	if err := st.CreateBatch(ctx, b, lines); err != nil {
		t.Fatal(err)
	}
	if err := st.CreateBatch(ctx, batch.Batch{ID: "batch_0", API: batch.Anthropic, TenantID: "other", Status: batch.Failed,
		CreatedAt: t0}, nil); err != nil {
		t.Fatal(err)
	}
	got, err := st.Batch(ctx, "batch_1")
	if err != nil || got.Status != batch.InProgress || got.Doc.Metadata["a"] != "b" || got.Doc.Total != total ||
		!got.ExpiresAt.Equal(b.ExpiresAt) || got.Epoch != 0 {
		t.Fatalf("Batch = %+v, %v", got, err)
	}
	if _, err := st.Batch(ctx, "nope"); !errors.Is(err, batch.ErrNotFound) {
		t.Errorf("unknown batch err = %v", err)
	}
	if bs, err := st.Batches(ctx, "acme", "", 10); err != nil || len(bs) != 1 || bs[0].ID != "batch_1" {
		t.Errorf("Batches(acme) = %d, %v", len(bs), err)
	}
	if bs, err := st.Batches(ctx, "", "batch_1", 10); err != nil || len(bs) != 1 || bs[0].ID != "batch_0" {
		t.Errorf("Batches after batch_1 = %v, %v", bs, err)
	}
	if sum, err := st.PendingHold(ctx, "batch_1"); err != nil || sum != total*(total-1)/2 {
		t.Errorf("PendingHold = %d, %v", sum, err)
	}

	// Leases and epochs.
	now := t0.Add(time.Minute)
	cl, err := st.Claimable(ctx, "n1", now, 10)
	if err != nil || len(cl) != 1 || cl[0].ID != "batch_1" {
		t.Fatalf("Claimable = %v, %v", cl, err)
	}
	c1, ok, err := st.Claim(ctx, "batch_1", "n1", now, now.Add(30*time.Second))
	if err != nil || !ok || c1.Epoch != 1 || c1.Owner != "n1" {
		t.Fatalf("Claim = %+v, %v, %v", c1, ok, err)
	}
	if _, ok, _ := st.Claim(ctx, "batch_1", "n2", now.Add(time.Second), now.Add(time.Minute)); ok {
		t.Fatal("a second runner claimed a held batch")
	}
	if cl, _ := st.Claimable(ctx, "n2", now.Add(time.Second), 10); len(cl) != 0 {
		t.Errorf("a held batch is claimable by another: %v", cl)
	}
	if cl, _ := st.Claimable(ctx, "n1", now.Add(time.Second), 10); len(cl) != 1 {
		t.Errorf("the holder's own batch is not claimable after its restart")
	}
	if ok, err := st.Renew(ctx, "batch_1", 1, now.Add(45*time.Second)); err != nil || !ok {
		t.Fatalf("Renew = %v, %v", ok, err)
	}
	started, err := st.StartLines(ctx, "batch_1", 1, 100)
	if err != nil || len(started) != 100 || started[0].Index != 0 || started[99].Index != 99 || started[5].State != batch.LineRunning ||
		started[5].Offset != 50 || started[5].CustomID != "c5" {
		t.Fatalf("StartLines = %d lines, %v", len(started), err)
	}
	// Another runner takes the batch once the lease has passed.
	later := now.Add(46 * time.Second)
	c2, ok, err := st.Claim(ctx, "batch_1", "n2", later, later.Add(30*time.Second))
	if err != nil || !ok || c2.Epoch != 2 {
		t.Fatalf("Claim after the lease = %+v, %v, %v", c2, ok, err)
	}
	if ok, _ := st.Renew(ctx, "batch_1", 1, later.Add(time.Hour)); ok {
		t.Error("the fenced runner renewed")
	}
	if _, err := st.StartLines(ctx, "batch_1", 1, 10); !errors.Is(err, batch.ErrFenced) {
		t.Errorf("StartLines at an old epoch err = %v, want ErrFenced", err)
	}
	// The old runner's results are not kept; the new one requeues its lines.
	res := func(i int) batch.Line {
		return batch.Line{Index: i, Status: 200, Body: []byte(`{"ok":true}`), Record: []byte(`{"RequestID":"x"}`), Cost: 7, Input: 3, Output: 2}
	}
	if kept, err := st.KeepResults(ctx, "batch_1", 1, []batch.Line{res(0), res(1)}); err != nil || kept[0] || kept[1] {
		t.Fatalf("KeepResults at an old epoch = %v, %v", kept, err)
	}
	if n, err := st.Requeue(ctx, "batch_1", 2); err != nil || n != 100 {
		t.Fatalf("Requeue = %d, %v", n, err)
	}
	started, err = st.StartLines(ctx, "batch_1", 2, 3)
	if err != nil || len(started) != 3 || started[0].Index != 0 || started[0].Epoch != 2 {
		t.Fatalf("StartLines after requeue = %+v, %v", started, err)
	}
	bad := res(2)
	bad.Status, bad.Cost = 400, 0
	kept, err := st.KeepResults(ctx, "batch_1", 2, []batch.Line{res(0), res(1), bad, res(3)})
	if err != nil || !kept[0] || !kept[1] || !kept[2] || kept[3] {
		t.Fatalf("KeepResults = %v, %v; want lines 0-2 kept, 3 (not running) not", kept, err)
	}
	if kept, _ := st.KeepResults(ctx, "batch_1", 2, []batch.Line{res(0)}); kept[0] {
		t.Error("a kept line was kept twice")
	}
	un, err := st.Unsettled(ctx, "batch_1", -1, 10)
	if err != nil || len(un) != 3 || string(un[0].Body) != `{"ok":true}` || string(un[0].Record) != `{"RequestID":"x"}` || un[2].Status != 400 {
		t.Fatalf("Unsettled = %+v, %v", un, err)
	}
	if err := st.MarkSettled(ctx, "batch_1", []int{0, 2}); err != nil {
		t.Fatal(err)
	}
	if un, _ := st.Unsettled(ctx, "batch_1", -1, 10); len(un) != 1 || un[0].Index != 1 {
		t.Errorf("Unsettled after MarkSettled = %+v", un)
	}
	// Retry puts running lines back; the next start takes them first.
	if _, err := st.StartLines(ctx, "batch_1", 2, 2); err != nil {
		t.Fatal(err)
	}
	if err := st.Retry(ctx, "batch_1", 2, []int{3}); err != nil {
		t.Fatal(err)
	}
	c, err := st.Count(ctx, "batch_1")
	if err != nil || c.Total != total || c.Succeeded != 2 || c.Errored != 1 || c.Unsettled != 1 || c.Pending != total-3 ||
		c.CostNanos != 14 || c.Input != 9 || c.Output != 6 {
		t.Fatalf("Count = %+v, %v", c, err)
	}
	// Status changes name the epoch and the status they leave.
	d := c2.Doc
	d.Reservation = "r2"
	if ok, err := st.SetBatch(ctx, "batch_1", 1, batch.InProgress, batch.InProgress, d); err != nil || ok {
		t.Fatalf("SetBatch at an old epoch = %v, %v", ok, err)
	}
	if ok, err := st.SetBatch(ctx, "batch_1", 2, batch.InProgress, batch.InProgress, d); err != nil || !ok {
		t.Fatalf("SetBatch = %v, %v", ok, err)
	}
	cb, err := st.Cancel(ctx, "batch_1", []batch.Status{batch.InProgress}, later)
	if err != nil || cb.Status != batch.Cancelling || !cb.CancelledAt.Equal(later) || cb.Doc.Reservation != "r2" {
		t.Fatalf("Cancel = %+v, %v", cb, err)
	}
	if _, err := st.Cancel(ctx, "batch_1", []batch.Status{batch.InProgress}, later); !errors.Is(err, batch.ErrEnded) {
		t.Errorf("second Cancel err = %v, want ErrEnded", err)
	}
	if ok, _ := st.SetBatch(ctx, "batch_1", 2, batch.InProgress, batch.Finalizing, d); ok {
		t.Error("a runner's status change overwrote a cancel")
	}
	if _, err := st.EndPending(ctx, "batch_1", 1, batch.LineCancelled); !errors.Is(err, batch.ErrFenced) {
		t.Errorf("EndPending at an old epoch err = %v", err)
	}
	n, err := st.EndPending(ctx, "batch_1", 2, batch.LineCancelled)
	if err != nil || n != total-4 {
		t.Fatalf("EndPending = %d, %v; want %d (one line still running)", n, err, total-4)
	}
	c, _ = st.Count(ctx, "batch_1")
	if c.Cancelled != total-4 || c.Pending != 1 {
		t.Errorf("Count after EndPending = %+v", c)
	}
	all, err := st.Lines(ctx, "batch_1", 1, 2)
	if err != nil || len(all) != 2 || all[0].Index != 2 || all[0].Status != 400 || all[1].State != batch.LineCancelled {
		t.Errorf("Lines = %+v, %v", all, err)
	}
	if ok, err := st.SetBatch(ctx, "batch_1", 2, batch.Cancelling, batch.Cancelled, d); err != nil || !ok {
		t.Fatalf("SetBatch to cancelled = %v, %v", ok, err)
	}
	if cl, _ := st.Claimable(ctx, "n3", later.Add(time.Hour), 10); len(cl) != 0 {
		t.Errorf("an ended batch is claimable: %v", cl)
	}
}
