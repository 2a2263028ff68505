package sqlcore

import (
	"context"
	"fmt"
	"time"

	"baimo/internal/conversation"
)

var _ conversation.Store = (*Store)(nil)

// PutResponse stores r, replacing the response with the same id.
func (s *Store) PutResponse(ctx context.Context, r *conversation.Response) error {
	_, err := s.write.Exec(ctx, `INSERT INTO responses (id, tenant_id, key_id, model, channel, upstream_key, previous_id, status,
			background, request_id, input, object, created_ns, updated_ns, cancel_requested)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
		ON CONFLICT (id) DO UPDATE SET channel = excluded.channel, upstream_key = excluded.upstream_key,
			status = excluded.status, request_id = excluded.request_id, object = excluded.object,
			updated_ns = excluded.updated_ns, cancel_requested = responses.cancel_requested OR excluded.cancel_requested`,
		r.ID, r.TenantID, r.KeyID, r.Model, r.Channel, r.UpstreamKey, r.PreviousID, r.Status, r.Background, r.RequestID,
		string(r.Input), string(r.Object), r.CreatedAt.UnixNano(), r.UpdatedAt.UnixNano(), r.CancelRequested)
	if err != nil {
		return fmt.Errorf("put response %s: %w", r.ID, err)
	}
	return nil
}

// Response returns the response with the id, or conversation.ErrNotFound.
func (s *Store) Response(ctx context.Context, id string) (conversation.Response, error) {
	var r conversation.Response
	var input, object string
	var created, updated int64
	err := s.read.QueryRow(ctx, `SELECT id, tenant_id, key_id, model, channel, upstream_key, previous_id, status, background,
			request_id, input, object, created_ns, updated_ns, cancel_requested FROM responses WHERE id = $1`, id).
		Scan(&r.ID, &r.TenantID, &r.KeyID, &r.Model, &r.Channel, &r.UpstreamKey, &r.PreviousID, &r.Status, &r.Background,
			&r.RequestID, &input, &object, &created, &updated, &r.CancelRequested)
	if noRows(err) {
		return r, conversation.ErrNotFound
	}
	if err != nil {
		return r, fmt.Errorf("response %s: %w", id, err)
	}
	r.Input, r.Object = []byte(input), []byte(object)
	r.CreatedAt, r.UpdatedAt = time.Unix(0, created).UTC(), time.Unix(0, updated).UTC()
	return r, nil
}

// DeleteResponse deletes the response with the id.
func (s *Store) DeleteResponse(ctx context.Context, id string) error {
	n, err := s.write.Exec(ctx, `DELETE FROM responses WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("delete response %s: %w", id, err)
	}
	if n == 0 {
		return conversation.ErrNotFound
	}
	return nil
}

// RequestCancel marks the response for cancelling.
func (s *Store) RequestCancel(ctx context.Context, id string) error {
	n, err := s.write.Exec(ctx, `UPDATE responses SET cancel_requested = $2 WHERE id = $1`, id, true)
	if err != nil {
		return fmt.Errorf("cancel response %s: %w", id, err)
	}
	if n == 0 {
		return conversation.ErrNotFound
	}
	return nil
}

// DeleteResponsesBefore deletes at most limit responses created before t.
func (s *Store) DeleteResponsesBefore(ctx context.Context, t time.Time, limit int) (int, error) {
	n, err := s.write.Exec(ctx, `DELETE FROM responses WHERE id IN
		(SELECT id FROM responses WHERE created_ns < $1 ORDER BY created_ns LIMIT $2)`, t.UnixNano(), max(limit, 1))
	if err != nil {
		return 0, fmt.Errorf("delete responses before %s: %w", t.Format(time.RFC3339), err)
	}
	return int(n), nil
}
