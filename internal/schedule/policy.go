// Package schedule places requests on a pool of self-hosted inference
// replicas (vLLM, SGLang, or baimo's simulated replica): the placement
// policies behind one interface, the gateway's approximate prefix index, the
// load each replica carries, and the gateway-side queue with traffic classes.
// The gateway and the discrete-event simulator (internal/simulate) run this
// same code; time always comes from the caller.
package schedule

import (
	"fmt"
	"time"
)

// Class is a request's traffic class.
type Class uint8

const (
	// Interactive requests are people waiting on a stream.
	Interactive Class = iota
	// Standard requests are programs that wait, but less urgently.
	Standard
	// Batch requests carry a deadline hours away and fill idle capacity.
	Batch
	numClasses
)

var classNames = [numClasses]string{"interactive", "standard", "batch"}

func (c Class) String() string {
	if c < numClasses {
		return classNames[c]
	}
	return fmt.Sprintf("class(%d)", uint8(c))
}

// ParseClass reads a class name.
func ParseClass(s string) (Class, error) {
	for i, n := range classNames {
		if s == n {
			return Class(i), nil
		}
	}
	return 0, fmt.Errorf("schedule: unknown traffic class %q (interactive, standard or batch)", s)
}

// Request is what placement needs to know about one request.
type Request struct {
	Model        string
	PromptTokens int
	// Blocks are the prompt's block hashes (AppendTokenBlocks, or
	// AppendTextBlocks); nil disables prefix affinity for the request.
	Blocks []uint64
	// BlockTokens is how many prompt tokens one of Blocks stands for:
	// BlockTokens (16) when 0, as for token blocks; text blocks set it from
	// the prompt's bytes per token.
	BlockTokens float64
	Class       Class
	Tenant      string
	// Free marks free-tier traffic, shed first when the pool is saturated.
	Free bool
	// Deadline bounds a batch request; zero means none.
	Deadline time.Time
}

// uncached is the request's prompt tokens not covered by its first matched
// blocks.
func (r *Request) uncached(matched int) int64 {
	per := r.BlockTokens
	if per <= 0 {
		per = BlockTokens
	}
	return max(int64(r.PromptTokens)-int64(float64(matched)*per), 0)
}

// Reason says why a replica was chosen.
type Reason uint8

const (
	ReasonBaseline Reason = iota // a baseline policy's rule
	ReasonSticky                 // it holds the prompt's prefix and has room
	ReasonScore                  // the lowest load score among replicas with room
	ReasonMiss                   // no replica holds the prefix: the least loaded
	ReasonFailOpen               // every replica is saturated: the least loaded
)

var reasonNames = [...]string{"baseline", "sticky", "score", "miss", "fail_open"}

func (r Reason) String() string { return reasonNames[r] }

// Decision is a policy's choice.
type Decision struct {
	Replica int
	// Matched is how many of the prompt's blocks the index expects the
	// replica to hold.
	Matched int
	// Saturated is set when every replica was saturated: Replica is then
	// the least loaded, where the request goes if it is not queued,
	// overflowed to a vendor or shed.
	Saturated bool
	Reason    Reason
}

// Policy chooses a replica. Implementations are safe for concurrent use and
// do not allocate.
type Policy interface {
	Name() string
	Pick(p *Pool, req *Request, now time.Time) Decision
}

// PolicyNames lists the policies NewPolicy knows.
var PolicyNames = []string{"round_robin", "random", "least_request", "power_of_two", "prefix", "score"}

// NewPolicy returns the named policy.
func NewPolicy(name string) (Policy, error) {
	switch name {
	case "round_robin":
		return RoundRobin{}, nil
	case "random":
		return Random{}, nil
	case "least_request":
		return LeastRequest{}, nil
	case "power_of_two":
		return PowerOfTwo{}, nil
	case "prefix":
		return Prefix{}, nil
	case "score":
		return Score{}, nil
	}
	return nil, fmt.Errorf("schedule: unknown policy %q (one of %v)", name, PolicyNames)
}

// allSaturated reports whether every replica is saturated.
func (p *Pool) allSaturated(now time.Time) bool {
	for i := range p.reps {
		if !p.Saturated(p.Load(i, now)) {
			return false
		}
	}
	return true
}

// RoundRobin sends requests to the replicas in turn, blind to load and
// cache: what a Kubernetes Service does.
type RoundRobin struct{}

func (RoundRobin) Name() string { return "round_robin" }

func (RoundRobin) Pick(p *Pool, _ *Request, now time.Time) Decision {
	i := int((p.rr.Add(1) - 1) % uint64(len(p.reps)))
	return Decision{Replica: i, Saturated: p.allSaturated(now)}
}

// Random picks a replica uniformly.
type Random struct{}

func (Random) Name() string { return "random" }

func (Random) Pick(p *Pool, _ *Request, now time.Time) Decision {
	return Decision{Replica: int(p.cfg.Rand() % uint64(len(p.reps))), Saturated: p.allSaturated(now)}
}

// LeastRequest picks the replica with the fewest requests in flight from
// this gateway; ties go round the pool rather than to the first replica.
type LeastRequest struct{}

func (LeastRequest) Name() string { return "least_request" }

func (LeastRequest) Pick(p *Pool, _ *Request, now time.Time) Decision {
	n := len(p.reps)
	start := int(p.rr.Add(1) % uint64(n))
	best, bestN := -1, int64(0)
	for k := range n {
		i := (start + k) % n
		if f := p.reps[i].inflight.Load(); best < 0 || f < bestN {
			best, bestN = i, f
		}
	}
	return Decision{Replica: best, Saturated: p.allSaturated(now)}
}

// PowerOfTwo samples two distinct replicas and takes the one with fewer
// requests in flight.
type PowerOfTwo struct{}

func (PowerOfTwo) Name() string { return "power_of_two" }

func (PowerOfTwo) Pick(p *Pool, _ *Request, now time.Time) Decision {
	n := uint64(len(p.reps))
	x := p.cfg.Rand()
	a := int(x % n)
	if n == 1 {
		return Decision{Replica: a, Saturated: p.allSaturated(now)}
	}
	b := int((uint64(a) + 1 + (x>>32)%(n-1)) % n)
	if p.reps[b].inflight.Load() < p.reps[a].inflight.Load() {
		a = b
	}
	return Decision{Replica: a, Saturated: p.allSaturated(now)}
}

// score is a replica's load as the prefix-aware policies weigh it: the
// prompt tokens it must prefill before this request's first token (its
// uncached backlog plus this prompt's uncached part) and its generating
// requests at DecodeWeight tokens each.
func (p *Pool) score(l *Load, uncached int64) int64 {
	return l.Prefill + uncached + p.cfg.DecodeWeight*l.Decoding
}

// Prefix is prefix affinity, sticky until saturated: among replicas with
// room, those holding most of the prompt (AffinityFraction of its blocks)
// are preferred, the least loaded of them, as long as that replica's
// prefill backlog stays under StickyPrefill; otherwise, and on a cache
// miss, the lowest load score wins. When every replica is saturated it fails open to
// the lowest score and says so.
type Prefix struct{}

func (Prefix) Name() string { return "prefix" }

func (Prefix) Pick(p *Pool, req *Request, now time.Time) Decision {
	return p.pickScored(req, now, true)
}

// Score places every request on the replica with the lowest load score,
// counting only the uncached part of its prompt: prefix-aware, never sticky.
type Score struct{}

func (Score) Name() string { return "score" }

func (Score) Pick(p *Pool, req *Request, now time.Time) Decision {
	return p.pickScored(req, now, false)
}

func (p *Pool) pickScored(req *Request, now time.Time, sticky bool) Decision {
	n := len(p.reps)
	var matchBuf [MaxReplicas]int
	var scoreBuf, prefillBuf [MaxReplicas]int64
	match, scores := matchBuf[:n], scoreBuf[:n]
	best := 0
	if len(req.Blocks) > 0 {
		best = p.index.Match(req.Blocks, now, match)
	}
	t := now.UnixNano()
	var open uint64 // replicas with room
	var l Load
	for i := range n {
		p.load(i, t, &l)
		prefillBuf[i] = l.Prefill
		scores[i] = p.score(&l, req.uncached(match[i]))
		if !p.saturated(&l) {
			open |= 1 << i
		}
	}
	// Scans start at a rotating offset so that ties spread over the pool
	// instead of landing on replica 0.
	start := int(p.rr.Add(1) % uint64(n))
	if open == 0 {
		i := lowest(scores, start, ^uint64(0))
		return Decision{Replica: i, Matched: match[i], Saturated: true, Reason: ReasonFailOpen}
	}
	if sticky && best >= p.cfg.MinAffinityBlocks && float64(best) >= p.cfg.AffinityFraction*float64(len(req.Blocks)) {
		// The affinity set: replicas with room holding most of the prompt.
		floor := max(int(p.cfg.AffinityFraction*float64(len(req.Blocks))+0.5), p.cfg.MinAffinityBlocks)
		var affine uint64
		for i := range n {
			if match[i] >= floor {
				affine |= 1 << i
			}
		}
		if i := lowest(scores, start, open&affine); i >= 0 {
			if prefillBuf[i]+req.uncached(match[i]) <= p.cfg.StickyPrefill {
				return Decision{Replica: i, Matched: match[i], Reason: ReasonSticky}
			}
		}
	}
	i := lowest(scores, start, open)
	reason := ReasonScore
	if best == 0 {
		reason = ReasonMiss
	}
	return Decision{Replica: i, Matched: match[i], Reason: reason}
}

// lowest returns the replica in set with the lowest score, scanning from
// start; -1 if set is empty.
func lowest(scores []int64, start int, set uint64) int {
	n := len(scores)
	bi, bs := -1, int64(0)
	for k := range n {
		i := start + k
		if i >= n {
			i -= n
		}
		if set&(1<<i) == 0 {
			continue
		}
		if s := scores[i]; bi < 0 || s < bs {
			bi, bs = i, s
		}
	}
	return bi
}
