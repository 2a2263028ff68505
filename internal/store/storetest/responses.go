package storetest

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"baimo/internal/conversation"
)

// testResponses: stored responses round-trip, are replaced by id (keeping
// a cancel request), deleted by id and by age, and unknown ids are
// conversation.ErrNotFound.
func testResponses(t *testing.T, s Store) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	r := conversation.Response{ID: "resp_1", TenantID: "acme", KeyID: "key_1", Model: "m", PreviousID: "",
		Status: conversation.Queued, Background: true, Input: []byte(`[{"role":"user","content":"hi ✓"}]`),
		Object: []byte(`{"id":"resp_1","status":"queued","output":[]}`), CreatedAt: t0, UpdatedAt: t0}
	if err := s.PutResponse(ctx, &r); err != nil {
		t.Fatalf("PutResponse: %v", err)
	}
	got, err := s.Response(ctx, "resp_1")
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != r.ID || got.TenantID != "acme" || got.KeyID != "key_1" || got.Model != "m" || got.Status != conversation.Queued ||
		!got.Background || !bytes.Equal(got.Input, r.Input) || !bytes.Equal(got.Object, r.Object) ||
		!got.CreatedAt.Equal(t0) || !got.UpdatedAt.Equal(t0) || got.CancelRequested {
		t.Errorf("Response = %+v, want %+v", got, r)
	}
	if err := s.RequestCancel(ctx, "resp_1"); err != nil {
		t.Fatalf("RequestCancel: %v", err)
	}
	done := r
	done.Status, done.Channel, done.UpstreamKey, done.RequestID = conversation.Completed, "up", "k1", "req_9"
	done.Object, done.UpdatedAt = []byte(`{"id":"resp_1","status":"completed","output":[{"type":"message"}]}`), t0.Add(time.Minute)
	if err := s.PutResponse(ctx, &done); err != nil {
		t.Fatalf("PutResponse (update): %v", err)
	}
	got, _ = s.Response(ctx, "resp_1")
	if got.Status != conversation.Completed || got.Channel != "up" || got.UpstreamKey != "k1" || got.RequestID != "req_9" ||
		!bytes.Equal(got.Object, done.Object) || !got.UpdatedAt.Equal(done.UpdatedAt) || !got.CreatedAt.Equal(t0) || !got.CancelRequested {
		t.Errorf("after update = %+v (a cancel request must survive an update)", got)
	}
	next := conversation.Response{ID: "resp_2", TenantID: "acme", KeyID: "key_1", Model: "m", PreviousID: "resp_1",
		Status: conversation.Completed, Input: []byte(`[]`), Object: []byte(`{}`), CreatedAt: t0.Add(time.Hour), UpdatedAt: t0.Add(time.Hour)}
	if err := s.PutResponse(ctx, &next); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Response(ctx, "resp_2"); got.PreviousID != "resp_1" {
		t.Errorf("previous id = %q", got.PreviousID)
	}
	for _, err := range []error{
		func() error { _, err := s.Response(ctx, "resp_none"); return err }(),
		s.DeleteResponse(ctx, "resp_none"),
		s.RequestCancel(ctx, "resp_none"),
	} {
		if !errors.Is(err, conversation.ErrNotFound) {
			t.Errorf("unknown id: %v, want ErrNotFound", err)
		}
	}
	n, err := s.DeleteResponsesBefore(ctx, t0.Add(30*time.Minute), 10)
	if err != nil || n != 1 {
		t.Fatalf("DeleteResponsesBefore = %d, %v; want 1", n, err)
	}
	if _, err := s.Response(ctx, "resp_1"); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("resp_1 survived its retention: %v", err)
	}
	if err := s.DeleteResponse(ctx, "resp_2"); err != nil {
		t.Fatalf("DeleteResponse: %v", err)
	}
	if _, err := s.Response(ctx, "resp_2"); !errors.Is(err, conversation.ErrNotFound) {
		t.Errorf("resp_2 survived its deletion: %v", err)
	}
}
