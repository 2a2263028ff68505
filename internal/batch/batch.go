// Package batch runs batch work: OpenAI's Files and Batches APIs and
// Anthropic's Message Batches, billed once per line at the batch price.
//
// A batch is created from an input file of JSON lines. Creating it reads
// every line the way the request path will (gateway.CheckLine: the body by
// its format, the model served and allowed, its worst case at the batch
// price) and reserves the sum of those worst cases on the tenant's account
// (billing.Exchange); a file with bad lines makes a failed batch that names
// each line and field, and a tenant that cannot cover the batch is refused
// before anything is kept. The lines are then rows in the store, and a
// Runner on some node runs them: each through the request path itself
// (gateway.ServeLine), its request id made of the batch's id and the line's
// custom_id, its hold exchanged out of the batch's reservation as it starts.
//
// Durability is the store's. A runner holds a batch by a lease; each claim
// raises the batch's epoch, and a runner writes a line's result only while
// the line is running under its epoch, so two runners never both keep a
// result. A line's result is kept before it is settled, and a kept result
// is settled (again, by request id: at most once in the ledger) by whoever
// runs the batch next, so a gateway killed at any point resumes, here or
// on another node, without running a finished line again or charging any
// line twice. Lines that fail, expire or are cancelled cost nothing; what
// is left of the reservation is released when the batch ends.
package batch

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"time"

	"baimo/internal/keys"
)

// Status is a batch's state, as OpenAI names them.
type Status string

// Batch statuses.
const (
	Validating Status = "validating"
	Failed     Status = "failed"
	InProgress Status = "in_progress"
	Finalizing Status = "finalizing"
	Completed  Status = "completed"
	Expired    Status = "expired"
	Cancelling Status = "cancelling"
	Cancelled  Status = "cancelled"
)

// Active reports whether a runner still has work on a batch in status s.
func (s Status) Active() bool {
	return s == InProgress || s == Finalizing || s == Cancelling
}

// Ended reports whether a batch in status s is over.
func (s Status) Ended() bool {
	return s == Failed || s == Completed || s == Expired || s == Cancelled
}

// API is the API a batch was created through, which decides the shapes of
// its objects and results.
type API string

// The batch APIs.
const (
	OpenAI    API = "openai"    // /v1/batches
	Anthropic API = "anthropic" // /v1/messages/batches
)

// Mode is where a batch's lines run.
type Mode string

// Modes. The operator chooses per model (config batches.models) or per
// batch (metadata "baimo_mode"); Auto runs on whatever the model's channels
// allow.
const (
	// Auto: a vendor's batch API when a channel of the model has one,
	// else real time, in the cheapest window of the model's price schedule
	// that the batch's deadline allows.
	Auto Mode = "auto"
	// Realtime: through the request path now, yielding to online traffic
	// (a replica pool's batch class; a share of a vendor's limits).
	Realtime Mode = "realtime"
	// OffPeak: through the request path, in the cheapest window of the
	// model's price schedule (DeepSeek's night) that ends before the
	// batch's deadline.
	OffPeak Mode = "offpeak"
	// Vendor: passed to the vendor's own batch API.
	Vendor Mode = "vendor"
)

// ParseMode reads a mode name ("" is Auto).
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case "":
		return Auto, nil
	case Auto, Realtime, OffPeak, Vendor:
		return m, nil
	}
	return "", errors.New("unknown batch mode " + s + " (auto, realtime, offpeak or vendor)")
}

// Limits bound what one batch or file may hold.
type Limits struct {
	MaxFileBytes int64 // an input file; default 200 MB
	MaxLines     int   // lines of an input file; default 50,000
	MaxLineBytes int   // one line; default 10 MiB
	MaxErrors    int   // validation errors listed; default 1,000
	// Window is the only completion window accepted; default 24h.
	Window time.Duration
}

func (l *Limits) defaults() {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = 200 << 20
	}
	if l.MaxLines <= 0 {
		l.MaxLines = 50_000
	}
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = 10 << 20
	}
	if l.MaxErrors <= 0 {
		l.MaxErrors = 1000
	}
	if l.Window <= 0 {
		l.Window = 24 * time.Hour
	}
}

// Batch is one batch as stored. What only its runner changes lives in Doc.
type Batch struct {
	ID          string
	API         API
	TenantID    string
	KeyID       string
	Endpoint    string // "/v1/chat/completions", "/v1/embeddings", "/v1/messages"
	InputFileID string
	Status      Status
	CreatedAt   time.Time
	ExpiresAt   time.Time
	// CancelledAt is when a cancel was asked (zero: never).
	CancelledAt time.Time
	// Owner, LeaseUntil and Epoch are the runner that holds the batch:
	// each claim raises Epoch, and every write of a runner names its epoch.
	Owner      string
	LeaseUntil time.Time
	Epoch      int64
	Doc        Doc
}

// Doc is the part of a batch only its runner (or its creation) writes.
type Doc struct {
	Mode     Mode              `json:"mode"`
	Window   string            `json:"completion_window"`
	Metadata map[string]string `json:"metadata,omitempty"`
	Errors   []LineError       `json:"errors,omitempty"`
	// ErrorCount is how many lines were bad (Errors lists the first ones).
	ErrorCount int `json:"error_count,omitempty"`
	Total      int `json:"total"`
	// Reserved is what the batch reserved when it was created; Reservation
	// the id of its reservation now and Remaining what it holds.
	Reserved    int64  `json:"reserved_nanos,omitempty"`
	Reservation string `json:"reservation,omitempty"`
	Remaining   int64  `json:"remaining_nanos,omitempty"`
	Currency    string `json:"currency,omitempty"`
	// Times of the status changes (zero: not yet).
	InProgressAt time.Time `json:"in_progress_at,omitzero"`
	FinalizingAt time.Time `json:"finalizing_at,omitzero"`
	// Ending is the status a finalizing batch ends in.
	Ending  Status    `json:"ending,omitempty"`
	EndedAt time.Time `json:"ended_at,omitzero"`
	// Final counts, kept when the batch ends (live ones come from its lines).
	Final        *Counts `json:"final,omitempty"`
	OutputFileID string  `json:"output_file_id,omitempty"`
	ErrorFileID  string  `json:"error_file_id,omitempty"`
	// Vendor is the state of a batch passed to a vendor's batch API.
	Vendor *VendorState `json:"vendor,omitempty"`
}

// LineError names a bad line of an input file.
type LineError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Param   string `json:"param,omitempty"`
	Line    int    `json:"line,omitempty"` // 1-based
}

// LineState is where a line is in its life.
type LineState string

// Line states. A line runs (pending → running), ends with a result kept
// (done) and then settled; or never runs (cancelled, expired).
const (
	LinePending   LineState = "pending"
	LineRunning   LineState = "running"
	LineDone      LineState = "done"
	LineSettled   LineState = "settled"
	LineCancelled LineState = "cancelled"
	LineExpired   LineState = "expired"
)

// Line is one request of a batch as stored.
type Line struct {
	BatchID  string
	Index    int // 0-based, in the input file's order
	CustomID string
	Model    string
	State    LineState
	Epoch    int64
	// Offset and Length are the line's request body in the input file.
	Offset, Length int64
	// Hold is the line's worst case at the batch price, when it was checked;
	// Tokens its prompt plus the output its hold covers (for pacing).
	Hold, Tokens int64
	// The result, once done: the answer's status and body, the usage
	// record (JSON) and its cost.
	Status        int
	Body          []byte
	Record        []byte
	Cost          int64
	Input, Output int64 // tokens
}

// Counts are a batch's lines by outcome.
type Counts struct {
	Total     int   `json:"total"`
	Pending   int   `json:"pending"`   // not started, or running
	Succeeded int   `json:"succeeded"` // a 2xx answer
	Errored   int   `json:"errored"`   // an error answer
	Cancelled int   `json:"cancelled"`
	Expired   int   `json:"expired"`
	Unsettled int   `json:"unsettled"` // of Succeeded and Errored: kept, settlement not yet confirmed
	CostNanos int64 `json:"cost_nanos"`
	Input     int64 `json:"input_tokens"`
	Output    int64 `json:"output_tokens"`
}

// Done is how many lines ended.
func (c Counts) Done() int { return c.Succeeded + c.Errored + c.Cancelled + c.Expired }

// File is an uploaded or produced file.
type File struct {
	ID        string
	TenantID  string
	KeyID     string
	Purpose   string // "batch", "batch_output", "batch_error"
	Filename  string
	Bytes     int64
	Lines     int
	CreatedAt time.Time
}

// File purposes.
const (
	PurposeBatch  = "batch"
	PurposeOutput = "batch_output"
	PurposeError  = "batch_error"
)

// VendorState is a batch passed to a vendor's batch API.
type VendorState struct {
	Channel string `json:"channel"`
	Format  string `json:"format"` // openai or anthropic
	FileID  string `json:"file_id,omitempty"`
	// Endpoint is the vendor's endpoint the lines call.
	Endpoint string    `json:"endpoint,omitempty"`
	BatchID  string    `json:"batch_id,omitempty"`
	Status   string    `json:"status,omitempty"`
	PolledAt time.Time `json:"polled_at,omitzero"`
	// Submitted is when the vendor took the batch: its lines are rated at
	// the price in force then.
	Submitted time.Time `json:"submitted,omitzero"`
	Cancelled bool      `json:"cancelled,omitempty"`
}

// Errors callers decide on.
var (
	ErrNotFound = errors.New("batch: not found")
	// ErrFenced says another runner took the batch: this one must stop.
	ErrFenced = errors.New("batch: the batch was taken by another runner")
	// ErrEnded says the batch is over (it cannot be cancelled).
	ErrEnded = errors.New("batch: the batch has ended")
)

// NewBatchID returns a new batch id in the API's spelling.
func NewBatchID(api API) string {
	if api == Anthropic {
		return keys.NewID("msgbatch_")
	}
	return keys.NewID("batch_")
}

// NewFileID returns a new file id.
func NewFileID() string { return keys.NewID("file-") }

// maxPlainCustomID is the longest custom_id used as it is in a request id.
const maxPlainCustomID = 64

// RequestID is the request id of a batch's line: the batch's id and the
// line's custom_id (a hash of it when it is long or not plain), so that a
// line is held, recorded and settled under one id whatever runs it, and at
// most once.
func RequestID(batchID, customID string) string {
	if len(customID) <= maxPlainCustomID && plain(customID) {
		return batchID + ":" + customID
	}
	sum := sha256.Sum256([]byte(customID))
	return batchID + ":=" + hex.EncodeToString(sum[:16])
}

func plain(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}
