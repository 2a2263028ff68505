package main

import (
	"context"
	"log/slog"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"baimo/internal/batch"
	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/gateway"
)

// startBatches builds the batch service and starts its runner: files under
// the data directory on a single node, in the database when nodes share it.
// stop lets the lines in flight end (until ctx ends) and stops the runner.
func startBatches(cfg *config.Config, db store, gw *gateway.Gateway, biller *billing.Biller, exclusive bool, dataDir, node string,
	log *slog.Logger, reg prometheus.Registerer) (svc *batch.Service, stop func(context.Context), err error) {
	if cfg.Batches.Disabled {
		return nil, func(context.Context) {}, nil
	}
	var blobs batch.Blobs = batch.DiskBlobs{Dir: filepath.Join(dataDir, "files")}
	if !exclusive {
		blobs = db.BatchBlobs()
	}
	modes := map[string]batch.Mode{}
	for m, mode := range cfg.Batches.Models {
		modes[m] = batch.Mode(mode) // checked by config
	}
	bc := cfg.Batches
	svc = batch.New(batch.Options{Store: db.BatchStore(), Blobs: blobs, Gateway: gw, Money: biller, Keys: db, Log: log, Node: node,
		Limits: batch.Limits{MaxFileBytes: bc.MaxFileBytes, MaxLines: bc.MaxLines, MaxLineBytes: int(cfg.Limits.MaxBodyBytes)},
		Lease:  bc.Lease.D(), Poll: bc.Poll.D(), Concurrency: bc.Concurrency, Share: bc.Share, Modes: modes})
	reg.MustRegister(batch.NewCollector(svc))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); svc.Run(ctx) }()
	return svc, func(dctx context.Context) {
		if err := svc.Drain(dctx); err != nil {
			log.Warn("batch lines cut at shutdown; another run settles or runs them again", "err", err)
		}
		cancel()
		<-done
	}, nil
}
