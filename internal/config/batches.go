package config

import (
	"fmt"
	"time"
)

// Batches configures batch work (the Files, Batches and Message Batches
// APIs); every field has a default.
type Batches struct {
	// Disabled leaves the batch APIs out.
	Disabled bool `yaml:"disabled"`
	// MaxFileBytes and MaxLines bound an input file (default 200 MiB and
	// 50,000 lines).
	MaxFileBytes int64 `yaml:"max_file_bytes"`
	MaxLines     int   `yaml:"max_lines"`
	// Concurrency bounds one node's batch lines in flight (default 64).
	Concurrency int `yaml:"concurrency"`
	// Share is the percent of a vendor channel's rpm and tpm that batch
	// lines may use (default 50); online traffic keeps the rest.
	Share int `yaml:"share"`
	// Lease is how long a node holds a batch without renewing it (default
	// 30s): another node resumes the batch of a node dead this long.
	Lease Duration `yaml:"lease"`
	// Poll is how often a node looks for batches to run (default 1s).
	Poll Duration `yaml:"poll"`
	// Models chooses where each model's lines run: auto (the default),
	// realtime, offpeak or vendor.
	Models map[string]string `yaml:"models"`
}

// batchModes are the modes a model's lines may run in.
var batchModes = map[string]bool{"auto": true, "realtime": true, "offpeak": true, "vendor": true}

func (b *Batches) applyDefaults() {
	if b.MaxFileBytes == 0 {
		b.MaxFileBytes = 200 << 20
	}
	if b.MaxLines == 0 {
		b.MaxLines = 50_000
	}
	if b.Concurrency == 0 {
		b.Concurrency = 64
	}
	if b.Share == 0 {
		b.Share = 50
	}
	if b.Lease == 0 {
		b.Lease = Duration(30 * time.Second)
	}
	if b.Poll == 0 {
		b.Poll = Duration(time.Second)
	}
}

func (b *Batches) check() error {
	switch {
	case b.MaxFileBytes < 1 || b.MaxFileBytes > 1<<30:
		return fmt.Errorf("batches.max_file_bytes: %d is outside 1..1073741824", b.MaxFileBytes)
	case b.MaxLines < 1 || b.MaxLines > 100_000:
		return fmt.Errorf("batches.max_lines: %d is outside 1..100000", b.MaxLines)
	case b.Concurrency < 1 || b.Concurrency > 10_000:
		return fmt.Errorf("batches.concurrency: %d is outside 1..10000", b.Concurrency)
	case b.Share < 1 || b.Share > 100:
		return fmt.Errorf("batches.share: %d is outside 1..100 (percent)", b.Share)
	case b.Lease.D() < time.Second || b.Lease.D() > time.Hour:
		return fmt.Errorf("batches.lease: %s is outside 1s..1h", b.Lease.D())
	case b.Poll.D() < 10*time.Millisecond || b.Poll.D() > b.Lease.D()/2:
		return fmt.Errorf("batches.poll: %s is outside 10ms..half the lease", b.Poll.D())
	}
	for m, mode := range b.Models {
		if !batchModes[mode] {
			return fmt.Errorf("batches.models.%s: %q is not auto, realtime, offpeak or vendor", m, mode)
		}
	}
	return nil
}
