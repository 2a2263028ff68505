// Package usage describes what one request consumed, normalised across
// vendors: token kinds, other metered units, and where each count came from.
//
// Convention: Input counts every prompt token, including those read from a
// cache (CachedInput) and those written to one (CacheWrite5m, CacheWrite1h);
// Output counts every generated token, including Reasoning. Vendors that report
// these apart (Anthropic's input_tokens excludes cache reads and writes) are
// normalised on the way in.
package usage

import (
	"context"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"time"
)

// Source says where the counts of a Usage came from.
type Source uint8

// Sources, from most to least authoritative.
const (
	SourceNone      Source = iota // nothing known
	SourceVendor                  // reported by the upstream
	SourceCounted                 // counted by baimo with the model's exact tokenizer
	SourceEstimated               // estimated by baimo (tokenizer not public)
)

var sourceNames = [...]string{"none", "vendor", "counted", "estimated"}

// String returns the stable name stored and shown for s.
func (s Source) String() string {
	if int(s) < len(sourceNames) {
		return sourceNames[s]
	}
	return "unknown"
}

// ParseSource returns the Source named s, or SourceNone.
func ParseSource(s string) Source {
	for i, n := range sourceNames {
		if n == s {
			return Source(i)
		}
	}
	return SourceNone
}

// Usage is the normalised consumption of one request.
type Usage struct {
	Input        int64 // all prompt tokens, cached and cache-written included
	CachedInput  int64 // prompt tokens read from the vendor's cache
	CacheWrite5m int64 // prompt tokens written to a 5-minute cache (Anthropic)
	CacheWrite1h int64 // prompt tokens written to a 1-hour cache (Anthropic)
	Output       int64 // all generated tokens, reasoning included
	Reasoning    int64 // generated tokens spent on reasoning or thinking

	Images       int64 // images generated or billed per image
	AudioSeconds int64 // seconds of audio
	Characters   int64 // characters (per-character priced services)
	SearchCalls  int64 // web-search calls billed per call

	Source Source
}

// UncachedInput returns the prompt tokens neither read from nor written to a cache.
func (u Usage) UncachedInput() int64 {
	n := u.Input - u.CachedInput - u.CacheWrite5m - u.CacheWrite1h
	if n < 0 {
		return 0
	}
	return n
}

// Total returns prompt plus generated tokens.
func (u Usage) Total() int64 { return u.Input + u.Output }

// ErrorClass names why a request did not complete normally.
type ErrorClass string

// Error classes recorded with a request.
const (
	ErrNone             ErrorClass = ""
	ErrClient           ErrorClass = "client"            // bad request from the client
	ErrAuth             ErrorClass = "auth"              // missing, bad or forbidden key
	ErrUpstream         ErrorClass = "upstream"          // upstream answered with an error status
	ErrUpstreamTimeout  ErrorClass = "upstream_timeout"  // upstream did not answer in time
	ErrUpstreamConnect  ErrorClass = "upstream_connect"  // upstream could not be reached
	ErrStreamBroken     ErrorClass = "stream_broken"     // the upstream stream ended early
	ErrClientDisconnect ErrorClass = "client_disconnect" // the client went away mid-request
	ErrRateLimited      ErrorClass = "rate_limited"      // a limit refused the request
	ErrInsufficient     ErrorClass = "insufficient_quota"
	ErrOutputLimit      ErrorClass = "output_limit" // cut at the output its hold covers
	ErrInternal         ErrorClass = "internal"
	// ErrNodeLost: the gateway node serving the request died (or lost its
	// database) mid-way; the record is its last checkpoint, written by
	// another node.
	ErrNodeLost ErrorClass = "node_lost"
)

// Record is the durable account of one request through the gateway.
type Record struct {
	Seq           int64 // store-assigned sequence, 0 before it is stored
	RequestID     string
	KeyID         string
	TenantID      string
	Endpoint      string // "chat", "completions", "embeddings", "messages", ...; "batch:chat" for a batch's line (BatchEndpoint)
	Model         string // public model name asked for
	Channel       string // channel that served it
	UpstreamModel string // model name sent upstream
	Stream        bool
	Status        int // HTTP status returned to the client
	Usage         Usage
	Complete      bool // false when a stream broke or the client left early
	ErrorClass    ErrorClass
	Start         time.Time
	TTFT          time.Duration // time to first token (or first byte), 0 if none
	Duration      time.Duration
	Attempts      []Attempt // every upstream attempt, in order
	// CountedInput is baimo's own exact count of the prompt, kept for a
	// sample of requests to audit what vendors bill; 0 when not counted.
	CountedInput int64

	// Rating, filled when the request was rated (see package price).
	Currency     string
	CostNanos    int64
	PriceVersion string
	// Lines are the rated lines in package price's stored form
	// (price.AppendLines; records of earlier releases hold JSON), opaque to
	// this package: price.ParseLines reads both.
	Lines []byte

	// SettledIn, set by the ledger, is the sequence number of the ledger
	// transfer that posted this request's cost together with the others of
	// its tenant in one group commit; 0 when the request's cost was posted
	// by transfers of its own (named by its request id), or not at all.
	SettledIn int64
}

// batchPrefix starts the endpoint of a request that is a line of a batch.
const batchPrefix = "batch:"

// BatchEndpoint is the recorded endpoint of a batch's line sent to
// endpoint ("batch:chat"): the record says the request came through a
// batch, which rates it at the batch price.
func BatchEndpoint(endpoint string) string { return batchPrefix + endpoint }

// IsBatch reports whether the record is of a batch's line.
func (r *Record) IsBatch() bool { return strings.HasPrefix(r.Endpoint, batchPrefix) }

// variantSep ends an endpoint's name before the variant of its request.
const variantSep = "@"

// VariantEndpoint is the recorded endpoint of a request whose variant its
// model may price apart ("images@1024x1792/hd": an image's size and
// quality): the record keeps what rates it.
func VariantEndpoint(endpoint, variant string) string {
	if variant == "" {
		return endpoint
	}
	return endpoint + variantSep + variant
}

// Variant returns the variant the record's endpoint names, "" for none.
func (r *Record) Variant() string {
	_, v, _ := strings.Cut(r.Endpoint, variantSep)
	return v
}

// Attempt is one try at an upstream for a request.
type Attempt struct {
	Channel string `json:"channel"`
	// Key names the channel's upstream key the attempt used by its id in
	// the channel (k0, k1, ... in the order configured), never its secret;
	// "" in records of earlier releases.
	Key        string        `json:"key,omitempty"`
	Status     int           `json:"status"`
	ErrorClass ErrorClass    `json:"error_class,omitempty"`
	Duration   time.Duration `json:"duration_ns"`
}

// Outcome is how a request ended for its client.
type Outcome uint8

// Outcomes. A request is served when its client got a 2xx or 3xx answer
// (even one cut short: it is billed for what was delivered); otherwise it
// was refused when the gateway turned it away before trying any upstream
// (a bad request or key, a rate limit, a budget or balance, no price: its
// Channel is ""), and failed when an upstream was tried.
const (
	OutcomeAny Outcome = iota // in a Filter: every outcome
	Served
	Refused
	Failed
)

var outcomeNames = [...]string{"", "served", "refused", "failed"}

// String returns the stable name shown and accepted for o ("" for OutcomeAny).
func (o Outcome) String() string {
	if int(o) < len(outcomeNames) {
		return outcomeNames[o]
	}
	return "unknown"
}

// ParseOutcome returns the Outcome named s; false when s names none.
func ParseOutcome(s string) (Outcome, bool) {
	for i, n := range outcomeNames {
		if i > 0 && n == s {
			return Outcome(i), true
		}
	}
	return OutcomeAny, false
}

// Outcome returns how r ended for its client.
func (r *Record) Outcome() Outcome {
	switch {
	case r.Status >= 200 && r.Status < 400:
		return Served
	case r.Channel == "":
		return Refused
	}
	return Failed
}

// UnknownModel is the model shown, and summed under, for a request refused
// before its model was read (its Model is ""); a Filter's Model may name it.
const UnknownModel = "(unknown)"

// ShownModel returns model as shown: UnknownModel for "".
func ShownModel(model string) string {
	if model == "" {
		return UnknownModel
	}
	return model
}

// MaxFilterLen bounds each string of a Filter.
const MaxFilterLen = 200

// Filter selects records.
type Filter struct {
	RequestID string
	KeyID     string
	TenantID  string // the default tenant's records include those of keys made without one
	Model     string // UnknownModel selects records with no model
	Channel   string
	From, To  time.Time // half-open [From, To) on Start; zero means unbounded
	Status    int       // only records with this HTTP status; 0 means any
	Outcome   Outcome   // only records with this outcome; OutcomeAny means any
	// After continues a listing: only records after this place in its
	// newest-first order. Zero starts at the newest.
	After Cursor
	Limit int // at most this many records; 0 means a default
}

// Cursor is a place in the newest-first order of records (Start, then Seq,
// both descending): the records after it are those started earlier, or at
// the same time and stored before. A listing paged with cursors neither
// repeats nor skips a record stored before its first page, however many are
// stored meanwhile (those, newer than the first page, are not listed).
type Cursor struct {
	Start int64 // Unix nanoseconds
	Seq   int64
}

// IsZero reports whether c is the start of a listing.
func (c Cursor) IsZero() bool { return c == Cursor{} }

// CursorAfter returns the cursor just after r.
func CursorAfter(r *Record) Cursor {
	var start int64
	if !r.Start.IsZero() {
		start = r.Start.UnixNano()
	}
	return Cursor{Start: start, Seq: r.Seq}
}

// String returns c as an opaque token (URL-safe).
func (c Cursor) String() string {
	if c.IsZero() {
		return ""
	}
	return base64.RawURLEncoding.EncodeToString([]byte("r1." + strconv.FormatInt(c.Start, 10) + "." + strconv.FormatInt(c.Seq, 10)))
}

// ErrBadCursor means a cursor token was not one String wrote.
var ErrBadCursor = errors.New("usage: not a cursor from a previous page")

// ParseCursor reads a token written by Cursor.String ("" is the zero Cursor).
func ParseCursor(s string) (Cursor, error) {
	if s == "" {
		return Cursor{}, nil
	}
	if len(s) > 64 {
		return Cursor{}, ErrBadCursor
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Cursor{}, ErrBadCursor
	}
	parts := strings.Split(string(b), ".")
	if len(parts) != 3 || parts[0] != "r1" {
		return Cursor{}, ErrBadCursor
	}
	start, err1 := strconv.ParseInt(parts[1], 10, 64)
	seq, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || seq <= 0 {
		return Cursor{}, ErrBadCursor
	}
	return Cursor{Start: start, Seq: seq}, nil
}

// Page is one page of a listing, newest first, and where the next one
// starts (zero when this is the last).
type Page struct {
	Records []Record
	Next    Cursor
}

// Totals sums the records a Filter selects.
type Totals struct {
	Requests                int64 // Served + Refused + Failed
	Served, Refused, Failed int64 // by Outcome
	Input                   int64
	CachedInput             int64
	Output                  int64
	Reasoning               int64
	CostNanos               map[string]int64 // by currency
}

// MaxListLimit is the most records one page may hold.
const MaxListLimit = 10000

// Store keeps usage records. Implementations live under internal/store.
type Store interface {
	// WriteRecords stores records in one transaction; a record whose
	// RequestID is already stored is left as it was (retries are no-ops).
	WriteRecords(ctx context.Context, recs []Record) error
	// ListRecords returns a page of the records f selects, newest first:
	// at most f.Limit (100 when 0, at most MaxListLimit), after f.After.
	ListRecords(ctx context.Context, f Filter) (Page, error)
	// TotalRecords sums the records f selects (ignoring After and Limit).
	TotalRecords(ctx context.Context, f Filter) (Totals, error)
}

// Drift compares, for one channel and upstream model, the prompt tokens a
// vendor billed with baimo's own exact count of the same requests.
type Drift struct {
	Channel       string
	UpstreamModel string
	Requests      int64 // audited requests
	VendorInput   int64 // prompt tokens the vendor reported for them
	CountedInput  int64 // prompt tokens baimo counted for them
}

// Auditor is implemented by stores that can sum the audited requests.
type Auditor interface {
	VendorDrift(ctx context.Context, from, to time.Time) ([]Drift, error)
}
