package sqlcore

import (
	"context"
	"fmt"
	"strconv"

	"baimo/internal/channels"
)

var _ channels.Store = (*Store)(nil)

// Channels implements channels.Store.
func (s *Store) Channels(ctx context.Context) ([]channels.Stored, error) {
	out, err := queryAll(ctx, s.read, func(r Row) (channels.Stored, error) {
		var c channels.Stored
		var spec string
		err := r.Scan(&c.Name, &spec, &c.UpdatedNs)
		c.Spec = []byte(spec)
		return c, err
	}, `SELECT name, spec, updated_ns FROM channels ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("channels: %w", err)
	}
	return out, nil
}

// PutChannel implements channels.Store.
func (s *Store) PutChannel(ctx context.Context, c channels.Stored) error {
	_, err := s.write.Exec(ctx, `INSERT INTO channels (name, spec, updated_ns) VALUES ($1, $2, $3)
		ON CONFLICT (name) DO UPDATE SET spec = excluded.spec, updated_ns = excluded.updated_ns`, c.Name, string(c.Spec), c.UpdatedNs)
	if err != nil {
		return fmt.Errorf("store channel %s: %w", c.Name, err)
	}
	return nil
}

// DeleteChannel implements channels.Store.
func (s *Store) DeleteChannel(ctx context.Context, name string) error {
	n, err := s.write.Exec(ctx, `DELETE FROM channels WHERE name = $1`, name)
	if err != nil {
		return fmt.Errorf("delete channel %s: %w", name, err)
	}
	if n == 0 {
		return channels.ErrNotFound
	}
	return nil
}

// ChannelsVersion implements channels.Store: the count and the newest
// change, which any insert, update or delete moves.
func (s *Store) ChannelsVersion(ctx context.Context) (string, error) {
	var n, last int64
	if err := s.read.QueryRow(ctx, `SELECT count(*), CAST(coalesce(max(updated_ns), 0) AS BIGINT) FROM channels`).Scan(&n, &last); err != nil {
		return "", fmt.Errorf("channels version: %w", err)
	}
	return strconv.FormatInt(n, 10) + "/" + strconv.FormatInt(last, 10), nil
}
