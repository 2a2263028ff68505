package engine

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Coefficients give the time of one engine step (one forward pass of the
// batch) as
//
//	step = Base + Prefill·(prompt tokens computed) + Context·(Σ context of the
//	       decoding sequences) + Seq·(sequences in the batch)
//
// in nanoseconds. Fractional nanoseconds are kept: the per-context-token cost
// of a small model is tens of nanoseconds.
type Coefficients struct {
	BaseNs    float64 // a: fixed cost of a step (kernel launches, sampling, scheduler)
	PrefillNs float64 // b: per prompt token computed in the step (cached tokens cost nothing)
	ContextNs float64 // c: per token of KV cache read by each decoding sequence
	SeqNs     float64 // d: per sequence scheduled in the step
}

// StepTime is the duration of a step that computes prefill prompt tokens,
// reads context tokens of KV cache for its decoding sequences and holds seqs
// sequences.
func (c Coefficients) StepTime(prefill, context, seqs int) time.Duration {
	ns := c.BaseNs + c.PrefillNs*float64(prefill) + c.ContextNs*float64(context) + c.SeqNs*float64(seqs)
	return time.Duration(math.Round(ns))
}

// Config describes one replica: the engine's scheduler limits, its KV cache
// and the step time of its model on its GPU.
type Config struct {
	Name  string // a label, e.g. the preset name
	Coeff Coefficients
	// MaxNumSeqs bounds the sequences in one batch (vLLM --max-num-seqs).
	MaxNumSeqs int
	// MaxBatchedTokens is the token budget of one step (vLLM
	// --max-num-batched-tokens): prompts are prefilled in chunks that fit it,
	// beside the decoding sequences' one token each.
	MaxBatchedTokens int
	// BlockSize is the number of tokens of one KV-cache block (vLLM: 16).
	BlockSize int
	// NumBlocks is the KV cache capacity in blocks (vLLM num_gpu_blocks).
	NumBlocks int
	// PrefixCaching keeps the blocks of finished prompts, addressed by the
	// hash of their content and everything before it, and reuses them for
	// later prompts that share the prefix (vLLM --enable-prefix-caching).
	PrefixCaching bool
	// Priority orders waiting requests by Request.Priority (lower first),
	// then by arrival; preempts the lowest-priority running request when
	// blocks run out; and preempts running requests of lower priority than
	// a waiting one that lacks a batch slot or blocks, as vLLM's priority
	// policy does (--scheduling-policy priority; V0's
	// _schedule_priority_preemption). Off, all is first come, first served
	// and the newest running request is preempted.
	Priority bool
}

// Limits on a configuration, so a bad preset or flag cannot make the engine
// allocate without bound.
const (
	MaxNumSeqsLimit       = 1 << 14
	MaxBatchedTokensLimit = 1 << 20
	MaxNumBlocksLimit     = 1 << 24
	MaxBlockSize          = 1 << 10
)

// Validate reports the first thing wrong with c.
func (c Config) Validate() error {
	switch {
	case c.MaxNumSeqs < 1 || c.MaxNumSeqs > MaxNumSeqsLimit:
		return fmt.Errorf("engine %s: max_num_seqs %d out of [1, %d]", c.Name, c.MaxNumSeqs, MaxNumSeqsLimit)
	case c.MaxBatchedTokens < 1 || c.MaxBatchedTokens > MaxBatchedTokensLimit:
		return fmt.Errorf("engine %s: max_num_batched_tokens %d out of [1, %d]", c.Name, c.MaxBatchedTokens, MaxBatchedTokensLimit)
	case c.BlockSize < 1 || c.BlockSize > MaxBlockSize:
		return fmt.Errorf("engine %s: block size %d out of [1, %d]", c.Name, c.BlockSize, MaxBlockSize)
	case c.NumBlocks < 1 || c.NumBlocks > MaxNumBlocksLimit:
		return fmt.Errorf("engine %s: num_gpu_blocks %d out of [1, %d]", c.Name, c.NumBlocks, MaxNumBlocksLimit)
	case c.Coeff.BaseNs < 0 || c.Coeff.PrefillNs < 0 || c.Coeff.ContextNs < 0 || c.Coeff.SeqNs < 0:
		return fmt.Errorf("engine %s: negative step-time coefficient", c.Name)
	case c.Coeff.BaseNs+c.Coeff.SeqNs <= 0:
		return fmt.Errorf("engine %s: a step must take time (base or per-sequence cost > 0)", c.Name)
	}
	return nil
}

// ErrTooLong is returned by Add for a request whose prompt and output cannot
// fit the KV cache even alone.
var ErrTooLong = errors.New("engine: request longer than the KV cache")

// ErrBadRequest is returned by Add for a request without prompt or output
// tokens.
var ErrBadRequest = errors.New("engine: request needs at least one prompt and one output token")
