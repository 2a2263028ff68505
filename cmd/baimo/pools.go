package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/redis/go-redis/v9"

	"baimo/internal/clock"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/ledger"
	"baimo/internal/replica"
	"baimo/internal/schedule"
)

// startPools starts the configured replica pools (their scrapes, queues and
// shared prefix indexes) and returns their channels and their metrics.
func startPools(ctx context.Context, cfg *config.Config, log *slog.Logger) ([]*gateway.Channel, *replica.Collector, error) {
	var channels []*gateway.Channel
	var pools []*replica.Pool
	for _, c := range cfg.Pools {
		if c.Disabled {
			log.Info("replica pool disabled", "pool", c.Name)
			continue
		}
		engine, err := replica.ParseEngine(c.Engine)
		if err != nil {
			return nil, nil, fmt.Errorf("pools: %s: %w", c.Name, err)
		}
		q := c.Queue
		p, err := replica.New(replica.Options{Name: c.Name, Engine: engine, URLs: c.Replicas, Secret: c.APIKey.Value(),
			Policy: c.Policy, ScrapeInterval: c.ScrapeInterval.D(), Clock: clock.Real{}, Log: log,
			Pool: schedule.PoolConfig{StaleAfter: c.StaleAfter.D()},
			Queue: schedule.QueueConfig{MaxQueued: q.MaxQueued, MaxPerTenant: q.MaxPerTenant,
				MaxWait:     [2]time.Duration{q.MaxWaitInteractive.D(), q.MaxWaitStandard.D()},
				BatchMargin: q.BatchMargin.D(), BatchMaxInFlight: q.BatchMaxInFlight, BatchMaxTPOT: q.BatchMaxTPOT.D(),
				Overflow: c.Overflow, RetryAfter: q.RetryAfter.D()}})
		if err != nil {
			return nil, nil, fmt.Errorf("pools: %w", err)
		}
		go p.Run(ctx)
		if s := c.ShareIndex; s != nil {
			rdb := redis.NewClient(&redis.Options{Addr: s.Redis})
			go func() { <-ctx.Done(); _ = rdb.Close() }()
			if _, err := p.Share(ctx, rdb, s.Prefix); err != nil {
				return nil, nil, fmt.Errorf("pools: %s: share_index: %w", c.Name, err)
			}
			log.Info("replica pool shares its prefix index through Redis", "pool", c.Name, "redis", s.Redis)
		}
		log.Info("replica pool started", "pool", c.Name, "engine", engine, "replicas", len(c.Replicas), "policy", c.Policy)
		pools = append(pools, p)
		channels = append(channels, gateway.NewPoolChannel(c, p))
	}
	return channels, replica.NewCollector(pools), nil
}

// freeTier tells the replica pools whether a tenant is on the free tier
// (they shed its requests first): a free account in the ledger, whose
// tenants it caches after the first read.
func freeTier(books *ledger.Ledger) func(string) bool {
	return func(tenant string) bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		t, err := books.Tenant(ctx, tenant)
		return err == nil && t.Kind == ledger.Free
	}
}
