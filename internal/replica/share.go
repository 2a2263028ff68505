package replica

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// Sharer publishes a pool's prefix records to the other gateway nodes
// through Redis pub/sub and applies theirs to the local index, so a
// conversation's next turn finds its replica whichever node it reaches.
// Publishing never blocks a request: records queue (boundedly) for one
// goroutine that sends them in batches; a record that finds the queue full
// is dropped and counted. Replicas are named by URL, so nodes whose
// configurations list them in different orders still agree.
type Sharer struct {
	p       *Pool
	rdb     redis.UniversalClient
	channel string
	node    [8]byte
	out     chan record
	sent    atomic.Int64
	dropped atomic.Int64
	applied atomic.Int64
}

type record struct {
	replica int
	at      int64
	blocks  []uint64
}

// Limits on shared records: a message carries at most maxBatch records and
// a record at most maxSharedBlocks blocks (32 KiB of prompt text beyond that
// is not shared); a message that breaks them is ignored.
const (
	maxBatch        = 64
	maxSharedBlocks = 512
	queueLen        = 4096
)

// Share starts sharing p's index through rdb on the channel named by prefix
// and the pool; it runs until ctx ends.
func (p *Pool) Share(ctx context.Context, rdb redis.UniversalClient, prefix string) (*Sharer, error) {
	s := &Sharer{p: p, rdb: rdb, channel: prefix + "prefix-index:" + p.name, out: make(chan record, queueLen)}
	if _, err := rand.Read(s.node[:]); err != nil {
		return nil, err
	}
	sub := rdb.Subscribe(ctx, s.channel)
	if _, err := sub.Receive(ctx); err != nil {
		_ = sub.Close()
		return nil, err
	}
	p.sp.OnRecord(func(blocks []uint64, replica int, now time.Time) {
		if len(blocks) > maxSharedBlocks {
			blocks = blocks[:maxSharedBlocks]
		}
		select {
		case s.out <- record{replica: replica, at: now.UnixNano(), blocks: append([]uint64(nil), blocks...)}:
		default:
			s.dropped.Add(1)
		}
	})
	p.shared.Store(s)
	go s.publish(ctx)
	go s.receive(ctx, sub)
	return s, nil
}

// Counts returns records sent, dropped (queue full) and applied from
// other nodes.
func (s *Sharer) Counts() (sent, dropped, applied int64) {
	return s.sent.Load(), s.dropped.Load(), s.applied.Load()
}

func (s *Sharer) publish(ctx context.Context) {
	var batch []record
	for {
		select {
		case <-ctx.Done():
			return
		case r := <-s.out:
			batch = append(batch[:0], r)
		}
	drain:
		for len(batch) < maxBatch {
			select {
			case r := <-s.out:
				batch = append(batch, r)
			default:
				break drain
			}
		}
		msg := s.encode(batch)
		pctx, cancel := context.WithTimeout(ctx, time.Second)
		err := s.rdb.Publish(pctx, s.channel, msg).Err()
		cancel()
		if err != nil {
			s.dropped.Add(int64(len(batch)))
			if ctx.Err() == nil {
				s.p.log.Warn("prefix index: publish failed", "pool", s.p.name, "err", err)
			}
			continue
		}
		s.sent.Add(int64(len(batch)))
	}
}

// encode writes: "BPX1", node id, record count, then per record the
// replica's URL, the time and the blocks.
func (s *Sharer) encode(batch []record) []byte {
	b := append([]byte("BPX1"), s.node[:]...)
	b = binary.AppendUvarint(b, uint64(len(batch)))
	for _, r := range batch {
		url := s.p.reps[r.replica].base
		b = binary.AppendUvarint(b, uint64(len(url)))
		b = append(b, url...)
		b = binary.AppendVarint(b, r.at)
		b = binary.AppendUvarint(b, uint64(len(r.blocks)))
		for _, h := range r.blocks {
			b = binary.LittleEndian.AppendUint64(b, h)
		}
	}
	return b
}

var errBadMessage = errors.New("malformed prefix-index message")

// decode reads a message from another node; it refuses one from this node.
func (s *Sharer) decode(b []byte, apply func(record)) error {
	if len(b) < 12 || string(b[:4]) != "BPX1" {
		return errBadMessage
	}
	if [8]byte(b[4:12]) == s.node {
		return nil
	}
	b = b[12:]
	n, k := binary.Uvarint(b)
	if k <= 0 || n > maxBatch {
		return errBadMessage
	}
	b = b[k:]
	for range n {
		l, k := binary.Uvarint(b)
		if k <= 0 || l > 2048 || uint64(len(b)-k) < l {
			return errBadMessage
		}
		url := string(b[k : k+int(l)])
		b = b[k+int(l):]
		at, k := binary.Varint(b)
		if k <= 0 {
			return errBadMessage
		}
		b = b[k:]
		nb, k := binary.Uvarint(b)
		if k <= 0 || nb > maxSharedBlocks || uint64(len(b)-k) < 8*nb {
			return errBadMessage
		}
		b = b[k:]
		blocks := make([]uint64, nb)
		for i := range blocks {
			blocks[i] = binary.LittleEndian.Uint64(b[8*i:])
		}
		b = b[8*nb:]
		for i, rs := range s.p.reps {
			if rs.base == url {
				apply(record{replica: i, at: at, blocks: blocks})
				break
			}
		}
	}
	return nil
}

func (s *Sharer) receive(ctx context.Context, sub *redis.PubSub) {
	defer sub.Close()
	ch := sub.Channel()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			err := s.decode([]byte(m.Payload), func(r record) {
				s.p.sp.Index().Record(r.blocks, r.replica, time.Unix(0, r.at))
				s.applied.Add(1)
			})
			if err != nil {
				s.p.log.Warn("prefix index: ignored a message", "pool", s.p.name, "err", err, "bytes", len(m.Payload))
			}
		}
	}
}
