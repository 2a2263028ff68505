package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/billing"
	"baimo/internal/clock"
	"baimo/internal/gateway"
	"baimo/internal/keys"
	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// Lines serves and checks batches' lines (*gateway.Gateway).
type Lines interface {
	Checker
	ServeLine(ctx context.Context, l gateway.LineRequest) gateway.LineResult
	// Channels are the channels served now (for pacing and vendor batch
	// APIs).
	Channels() []*gateway.Channel
}

// Money moves batches' money (*billing.Biller).
type Money interface {
	Exchange(ctx context.Context, x billing.Exchange) error
	// Finish settles a record; with a nil ticket it settles a kept line
	// again (by request id: at most once).
	Finish(t *billing.Ticket, rec usage.Record) (<-chan struct{}, error)
	Currency() money.Currency
	// Rater rates records (nil: not rated).
	Rater() *billing.Rater
}

var (
	_ Lines = (*gateway.Gateway)(nil)
	_ Money = (*billing.Biller)(nil)
)

// KeyLister finds batches' keys (keys.Store).
type KeyLister interface {
	ListKeys(ctx context.Context) ([]keys.Key, error)
}

// Options configures a Service.
type Options struct {
	Store   Store
	Blobs   Blobs
	Gateway Lines
	Money   Money
	Keys    KeyLister
	Clock   clock.Clock
	Log     *slog.Logger
	// Node names this gateway process in leases (host/addr).
	Node   string
	Limits Limits
	// Lease is how long a runner holds a batch without renewing (default
	// 30s): a node that dies leaves its batches to another within it.
	Lease time.Duration
	// Poll is how often a runner looks for batches to run (default 1s).
	Poll time.Duration
	// Concurrency bounds the lines in flight on this node (default 64).
	Concurrency int
	// Share is the percent of a vendor channel's RPM and TPM limits that
	// batch lines may use (default 50): online traffic keeps the rest.
	Share int
	// Modes are the operators' modes per model (config batches.models).
	Modes map[string]Mode
	// HTTP calls vendors' batch APIs (nil: http.DefaultClient; each call
	// is bounded by its own timeout).
	HTTP *http.Client
	// Grace is how long past its window a batch's reservation lives
	// (default 1h): the sweeper releases what a lost batch left.
	Grace time.Duration
}

// Service is the batch APIs' logic and the runner of batches.
type Service struct {
	opt  Options
	kick chan struct{}

	mu   sync.Mutex
	jobs map[string]*job
	keys keyCache

	slots    chan struct{}
	stats    stats
	stopping atomic.Bool
}

// New returns a Service; run its runner with Run.
func New(o Options) *Service {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.Lease <= 0 {
		o.Lease = 30 * time.Second
	}
	if o.Poll <= 0 {
		o.Poll = time.Second
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Share <= 0 || o.Share > 100 {
		o.Share = 50
	}
	if o.Grace <= 0 {
		o.Grace = time.Hour
	}
	o.Limits.defaults()
	return &Service{opt: o, kick: make(chan struct{}, 1), jobs: map[string]*job{}, slots: make(chan struct{}, o.Concurrency)}
}

// Limits returns the limits in force.
func (s *Service) Limits() Limits { return s.opt.Limits }

// tenant is the tenant a key acts for.
func tenant(k *keys.Key) string { return ledger.TenantFor(k.TenantID) }

// UploadFile stores a file a key uploads: at most Limits.MaxFileBytes and
// Limits.MaxLines lines, for purpose batch.
func (s *Service) UploadFile(ctx context.Context, k *keys.Key, purpose, filename string, r io.Reader) (File, *apierr.Error) {
	if purpose != PurposeBatch {
		return File{}, badPurpose()
	}
	f, aerr := s.PutFile(ctx, k, filename, r)
	if aerr != nil {
		return File{}, aerr
	}
	return s.AddFile(ctx, f, purpose)
}

func badPurpose() *apierr.Error {
	return apierr.BadRequest("purpose", "purpose must be %q: this gateway keeps files for batches only.", PurposeBatch)
}

// PutFile stores the content of a file a key uploads, before its purpose
// is known (a multipart form may send it after the file): AddFile records
// it, DiscardFile drops it.
func (s *Service) PutFile(ctx context.Context, k *keys.Key, filename string, r io.Reader) (File, *apierr.Error) {
	if len(filename) > 255 {
		filename = filename[:255]
	}
	f := File{ID: NewFileID(), TenantID: tenant(k), KeyID: k.ID, Filename: filename, CreatedAt: s.opt.Clock.Now()}
	cr := &countingReader{r: r, limit: s.opt.Limits.MaxFileBytes, maxLines: s.opt.Limits.MaxLines}
	n, err := s.opt.Blobs.Put(ctx, f.ID, cr)
	if err == nil && cr.lines == 0 {
		err = errEmpty
	}
	if err != nil {
		s.DiscardFile(ctx, f)
		switch {
		case errors.Is(err, errTooLarge):
			return File{}, apierr.TooLarge(s.opt.Limits.MaxFileBytes)
		case errors.Is(err, errTooManyLines):
			return File{}, apierr.BadRequest("file", "A batch file has at most %d lines.", s.opt.Limits.MaxLines)
		case errors.Is(err, errEmpty):
			return File{}, apierr.BadRequest("file", "The file is empty.")
		}
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return File{}, apierr.TooLarge(mbe.Limit)
		}
		if ctx.Err() != nil {
			return File{}, apierr.BadRequest("file", "The upload was cut short.")
		}
		s.opt.Log.Error("store an uploaded file", "err", err)
		return File{}, apierr.Unavailable("The file could not be stored; retry.", err)
	}
	f.Bytes, f.Lines = n, cr.lines
	return f, nil
}

// AddFile records a file PutFile stored, for purpose.
func (s *Service) AddFile(ctx context.Context, f File, purpose string) (File, *apierr.Error) {
	if purpose != PurposeBatch {
		s.DiscardFile(ctx, f)
		return File{}, badPurpose()
	}
	f.Purpose = purpose
	if err := s.opt.Store.CreateFile(ctx, f); err != nil {
		s.DiscardFile(ctx, f)
		return File{}, apierr.Unavailable("The file could not be stored; retry.", err)
	}
	return f, nil
}

// DiscardFile drops the content PutFile stored.
func (s *Service) DiscardFile(ctx context.Context, f File) {
	if err := s.opt.Blobs.Delete(context.WithoutCancel(ctx), f.ID); err != nil {
		s.opt.Log.Warn("drop a file's content", "file", f.ID, "err", err)
	}
}

var (
	errTooLarge = errors.New("batch: file too large")
	errEmpty    = errors.New("batch: empty file")
)

// countingReader counts bytes and lines, refusing more than its limits.
type countingReader struct {
	r               io.Reader
	n, limit        int64
	lines, maxLines int
	last            byte
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if c.n > c.limit {
		return 0, errTooLarge
	}
	for _, b := range p[:n] {
		if b == '\n' {
			c.lines++
		}
	}
	if n > 0 {
		c.last = p[n-1]
	}
	if errors.Is(err, io.EOF) && c.n > 0 && c.last != '\n' {
		c.lines++ // the last line has no newline
		c.last = '\n'
	}
	if c.maxLines > 0 && c.lines > c.maxLines {
		return 0, errTooManyLines
	}
	return n, err
}

// File returns a file of the key's tenant.
func (s *Service) File(ctx context.Context, k *keys.Key, id string) (File, *apierr.Error) {
	if !fileID(id) {
		return File{}, fileNotFound(id)
	}
	f, err := s.opt.Store.File(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && k != nil && f.TenantID != tenant(k)) {
		return File{}, fileNotFound(id)
	}
	if err != nil {
		return File{}, apierr.Unavailable("The file could not be read; retry.", err)
	}
	return f, nil
}

func fileNotFound(id string) *apierr.Error {
	e := apierr.NotFound(fmt.Sprintf("No such File object: %s", id))
	e.Param = "id"
	return e
}

// Files lists the key's tenant's files.
func (s *Service) Files(ctx context.Context, k *keys.Key, purpose, after string, limit int) ([]File, bool, *apierr.Error) {
	if limit <= 0 || limit > 10000 {
		limit = 10000
	}
	fs, err := s.opt.Store.Files(ctx, tenant(k), purpose, after, limit+1)
	if err != nil {
		return nil, false, apierr.Unavailable("The files could not be listed; retry.", err)
	}
	more := len(fs) > limit
	if more {
		fs = fs[:limit]
	}
	return fs, more, nil
}

// DeleteFile deletes a file of the key's tenant.
func (s *Service) DeleteFile(ctx context.Context, k *keys.Key, id string) *apierr.Error {
	if _, aerr := s.File(ctx, k, id); aerr != nil {
		return aerr
	}
	if err := s.opt.Store.DeleteFile(ctx, id); err != nil {
		if errors.Is(err, ErrNotFound) {
			return fileNotFound(id)
		}
		return apierr.Unavailable("The file could not be deleted; retry.", err)
	}
	if err := s.opt.Blobs.Delete(ctx, id); err != nil {
		s.opt.Log.Warn("delete a file's content", "file", id, "err", err)
	}
	return nil
}

// FileContent opens a file of the key's tenant (nil key: any tenant's).
func (s *Service) FileContent(ctx context.Context, k *keys.Key, id string) (File, io.ReadCloser, *apierr.Error) {
	f, aerr := s.File(ctx, k, id)
	if aerr != nil {
		return File{}, nil, aerr
	}
	rc, err := s.opt.Blobs.Open(ctx, id)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return File{}, nil, fileNotFound(id)
		}
		return File{}, nil, apierr.Unavailable("The file could not be read; retry.", err)
	}
	return f, rc, nil
}

// CreateRequest asks for a batch.
type CreateRequest struct {
	API         API
	Endpoint    string
	InputFileID string
	Window      string // "24h"
	Metadata    map[string]string
}

// maxMetadata bounds a batch's metadata as OpenAI does.
const (
	maxMetadata      = 16
	maxMetadataKey   = 64
	maxMetadataValue = 512
)

// ModeKey is the metadata key that chooses a batch's mode.
const ModeKey = "baimo_mode"

// Create checks a batch's input file line by line, reserves its worst case
// and stores it; a file with bad lines makes a failed batch listing them.
// A tenant that cannot cover the batch is refused (429), nothing kept.
func (s *Service) Create(ctx context.Context, k *keys.Key, req CreateRequest) (Batch, *apierr.Error) {
	t, ok := Targets[req.Endpoint]
	if !ok || (req.API == Anthropic) != (req.Endpoint == "/v1/messages") {
		return Batch{}, apierr.BadRequest("endpoint", "endpoint must be one of /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/responses.")
	}
	if req.Window == "" {
		req.Window = "24h"
	}
	if d, err := time.ParseDuration(req.Window); err != nil || d != s.opt.Limits.Window {
		return Batch{}, apierr.BadRequest("completion_window", "completion_window must be %q.", fmtWindow(s.opt.Limits.Window))
	}
	if len(req.Metadata) > maxMetadata {
		return Batch{}, apierr.BadRequest("metadata", "metadata has at most %d keys.", maxMetadata)
	}
	for key, v := range req.Metadata {
		if len(key) > maxMetadataKey || len(v) > maxMetadataValue {
			return Batch{}, apierr.BadRequest("metadata", "metadata keys have at most %d characters and values %d.", maxMetadataKey, maxMetadataValue)
		}
	}
	mode, err := ParseMode(req.Metadata[ModeKey])
	if err != nil {
		return Batch{}, apierr.BadRequest("metadata."+ModeKey, "%s", err.Error())
	}
	f, aerr := s.File(ctx, k, req.InputFileID)
	if aerr != nil {
		aerr.Param = "input_file_id"
		return Batch{}, aerr
	}
	if f.Purpose != PurposeBatch {
		return Batch{}, apierr.BadRequest("input_file_id", "The file %s was not uploaded for batches (purpose %q).", f.ID, f.Purpose)
	}
	now := s.opt.Clock.Now()
	b := Batch{ID: NewBatchID(req.API), API: req.API, TenantID: tenant(k), KeyID: k.ID, Endpoint: req.Endpoint,
		InputFileID: f.ID, CreatedAt: now, ExpiresAt: now.Add(s.opt.Limits.Window),
		Doc: Doc{Window: req.Window, Metadata: req.Metadata, Currency: string(s.opt.Money.Currency())}}
	rc, err := s.opt.Blobs.Open(ctx, f.ID)
	if err != nil {
		return Batch{}, apierr.Unavailable("The input file could not be read; retry.", err)
	}
	c, err := check(ctx, rc, req.API, req.Endpoint, t, k, s.opt.Gateway, s.opt.Limits, b.ID, now)
	rc.Close()
	switch {
	case errors.Is(err, errTooManyLines):
		return Batch{}, apierr.BadRequest("input_file_id", "A batch has at most %d lines.", s.opt.Limits.MaxLines)
	case err != nil:
		return Batch{}, apierr.Unavailable("The input file could not be read; retry.", err)
	}
	b.Doc.Total = len(c.lines) + c.nerr
	if c.nerr > 0 {
		b.Status, b.Doc.Errors, b.Doc.ErrorCount, b.Doc.EndedAt = Failed, c.errs, c.nerr, now
		b.Doc.Final = &Counts{Total: b.Doc.Total}
		if err := s.opt.Store.CreateBatch(ctx, b, nil); err != nil {
			return Batch{}, apierr.Unavailable("The batch could not be stored; retry.", err)
		}
		s.stats.created.Add(1)
		return b, nil
	}
	b.Doc.Mode = s.modeFor(mode, c.models)
	b.Status, b.Doc.InProgressAt = InProgress, now
	if c.hold > 0 {
		b.Doc.Reservation, b.Doc.Reserved, b.Doc.Remaining = ledger.ReservationID(b.ID), c.hold, c.hold
		err := s.opt.Money.Exchange(ctx, billing.Exchange{TenantID: b.TenantID, KeyID: b.KeyID,
			Holds: []billing.Hold{{ID: b.Doc.Reservation, Amount: c.hold, TTL: s.reservationTTL(&b, now)}}})
		if err != nil {
			return Batch{}, reserveError(err, b.Doc.Currency)
		}
	}
	if err := s.opt.Store.CreateBatch(ctx, b, c.lines); err != nil {
		s.release(context.WithoutCancel(ctx), &b)
		return Batch{}, apierr.Unavailable("The batch could not be stored; retry.", err)
	}
	s.stats.created.Add(1)
	s.Kick()
	return b, nil
}

// reservationTTL is how long a batch's reservation lives: past the batch's
// deadline by Grace, after which the sweeper releases it.
func (s *Service) reservationTTL(b *Batch, now time.Time) time.Duration {
	return b.ExpiresAt.Add(s.opt.Grace).Sub(now)
}

// modeFor decides a batch's mode: the batch's own, else the operator's for
// its models when they agree, else Auto.
func (s *Service) modeFor(asked Mode, models map[string]int) Mode {
	if asked != Auto {
		return asked
	}
	var m Mode
	for model := range models {
		mm, ok := s.opt.Modes[model]
		if !ok {
			mm = Auto
		}
		if m != "" && mm != m {
			return Auto
		}
		m = mm
	}
	if m == "" {
		return Auto
	}
	return m
}

// reserveError is the client's error for a reservation refused.
func reserveError(err error, currency string) *apierr.Error {
	var ie *billing.InsufficientError
	switch {
	case errors.As(err, &ie):
		return &apierr.Error{Status: 429, Type: "insufficient_quota", Code: "insufficient_quota", Cause: err,
			Message: fmt.Sprintf("You exceeded your current quota: the account cannot cover this batch's worst case of %s %s (every line's prompt plus the output it may produce, at the batch price). Top up, or set lower output limits on the lines.",
				money.FormatNanos(ie.Need), currency)}
	case errors.Is(err, billing.ErrBudgetExceeded):
		return &apierr.Error{Status: 429, Type: "insufficient_quota", Code: "budget_exceeded", Cause: err,
			Message: "This batch's worst case is more than what remains of the API key's or tenant's spending budget."}
	case errors.Is(err, billing.ErrNoAccount):
		return &apierr.Error{Status: 403, Type: "permission_error", Code: "no_account", Cause: err,
			Message: "This API key's tenant has no billing account."}
	}
	return apierr.Unavailable("The gateway cannot reserve the batch's cost right now; retry.", err)
}

// release releases what remains of a batch's reservation.
func (s *Service) release(ctx context.Context, b *Batch) {
	if b.Doc.Reservation == "" {
		return
	}
	if err := s.opt.Money.Exchange(ctx, billing.Exchange{TenantID: b.TenantID, KeyID: b.KeyID, Release: b.Doc.Reservation}); err != nil {
		s.opt.Log.Warn("release a batch's reservation (the sweeper releases it at its expiry)", "batch", b.ID, "err", err)
		return
	}
	b.Doc.Reservation, b.Doc.Remaining = "", 0
}

// CreateFromLines creates a batch from requests sent inline (Anthropic's
// Message Batches), read from r as JSON lines: they become its input file.
func (s *Service) CreateFromLines(ctx context.Context, k *keys.Key, req CreateRequest, r io.Reader) (Batch, *apierr.Error) {
	f, aerr := s.UploadFile(ctx, k, PurposeBatch, "requests.jsonl", r)
	if aerr != nil {
		return Batch{}, aerr
	}
	req.InputFileID = f.ID
	return s.Create(ctx, k, req)
}

// Get returns a batch of the key's tenant (nil key: any) and its counts.
func (s *Service) Get(ctx context.Context, k *keys.Key, id string) (Batch, Counts, *apierr.Error) {
	b, err := s.opt.Store.Batch(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && k != nil && b.TenantID != tenant(k)) {
		e := apierr.NotFound(fmt.Sprintf("No batch found with id '%s'.", id))
		e.Param = "batch_id"
		return Batch{}, Counts{}, e
	}
	if err != nil {
		return Batch{}, Counts{}, apierr.Unavailable("The batch could not be read; retry.", err)
	}
	c, err := s.counts(ctx, &b)
	if err != nil {
		return Batch{}, Counts{}, apierr.Unavailable("The batch could not be read; retry.", err)
	}
	return b, c, nil
}

// counts are a batch's counts: its final ones, or its lines' now.
func (s *Service) counts(ctx context.Context, b *Batch) (Counts, error) {
	if b.Doc.Final != nil {
		return *b.Doc.Final, nil
	}
	c, err := s.opt.Store.Count(ctx, b.ID)
	if err != nil {
		return c, err
	}
	if c.Total == 0 {
		c.Total = b.Doc.Total
	}
	return c, nil
}

// Listed is a batch in a list, with its counts.
type Listed struct {
	Batch  Batch
	Counts Counts
}

// List lists the batches of the key's tenant (nil key and tenantID "":
// every tenant's), newest first.
func (s *Service) List(ctx context.Context, k *keys.Key, tenantID, after string, limit int, api API) ([]Listed, bool, *apierr.Error) {
	if k != nil {
		tenantID = tenant(k)
	}
	if limit <= 0 {
		limit = 20
	}
	limit = min(limit, 100)
	var out []Listed
	more := false
	for len(out) < limit {
		bs, err := s.opt.Store.Batches(ctx, tenantID, after, limit+1)
		if err != nil {
			return nil, false, apierr.Unavailable("The batches could not be listed; retry.", err)
		}
		for _, b := range bs {
			after = b.ID
			if api != "" && b.API != api {
				continue
			}
			if len(out) == limit {
				more = true
				break
			}
			c, err := s.counts(ctx, &b)
			if err != nil {
				return nil, false, apierr.Unavailable("The batches could not be listed; retry.", err)
			}
			out = append(out, Listed{Batch: b, Counts: c})
		}
		if more || len(bs) <= limit {
			break
		}
	}
	return out, more, nil
}

// Cancel asks a batch of the key's tenant (nil key: any) to stop: lines
// running finish, the others are not run, and the batch ends cancelled.
func (s *Service) Cancel(ctx context.Context, k *keys.Key, id string) (Batch, Counts, *apierr.Error) {
	if _, _, aerr := s.Get(ctx, k, id); aerr != nil {
		return Batch{}, Counts{}, aerr
	}
	_, err := s.opt.Store.Cancel(ctx, id, []Status{Validating, InProgress}, s.opt.Clock.Now())
	if err != nil && !errors.Is(err, ErrEnded) {
		return Batch{}, Counts{}, apierr.Unavailable("The batch could not be cancelled; retry.", err)
	}
	b, c, aerr := s.Get(ctx, k, id)
	if aerr != nil {
		return Batch{}, Counts{}, aerr
	}
	if errors.Is(err, ErrEnded) && b.Status != Cancelling && b.Status != Cancelled {
		e := apierr.BadRequest("batch_id", "The batch %s is %s: it cannot be cancelled.", id, b.Status)
		e.Status, e.Code = http.StatusConflict, "batch_not_cancellable"
		return Batch{}, Counts{}, e
	}
	s.stopLocal(id)
	s.Kick()
	return b, c, nil
}

// Results opens a batch's results file once it has ended: its output file
// (Anthropic's: every line's result), or its error file (OpenAI's).
func (s *Service) Results(ctx context.Context, k *keys.Key, id string, errors bool) (io.ReadCloser, *apierr.Error) {
	b, _, aerr := s.Get(ctx, k, id)
	if aerr != nil {
		return nil, aerr
	}
	file := b.Doc.OutputFileID
	if errors {
		file = b.Doc.ErrorFileID
	}
	if !b.Status.Ended() {
		e := apierr.BadRequest("batch_id", "The batch %s has not ended: its results are not ready.", id)
		e.Status, e.Code = http.StatusConflict, "results_not_ready"
		return nil, e
	}
	if file == "" {
		return io.NopCloser(strings.NewReader("")), nil // no line has a result of that kind
	}
	_, rc, aerr := s.FileContent(ctx, nil, file)
	return rc, aerr
}

// keyCache finds keys by id, reading the store at most every few seconds.
type keyCache struct {
	mu   sync.Mutex
	at   time.Time
	byID map[string]keys.Key
}

// key returns the key with id as the store has it.
func (s *Service) key(ctx context.Context, id string) (*keys.Key, error) {
	c := &s.keys
	c.mu.Lock()
	defer c.mu.Unlock()
	if k, ok := c.byID[id]; ok && s.opt.Clock.Now().Sub(c.at) < 10*time.Second {
		return &k, nil
	}
	ks, err := s.opt.Keys.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	c.byID, c.at = make(map[string]keys.Key, len(ks)), s.opt.Clock.Now()
	for _, k := range ks {
		c.byID[k.ID] = k
	}
	k, ok := c.byID[id]
	if !ok {
		return nil, fmt.Errorf("key %s: %w", id, keys.ErrNotFound)
	}
	return &k, nil
}

// fmtWindow writes a window as OpenAI does ("24h").
func fmtWindow(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return d.String()
}

// sortedModels lists a count's models, most lines first.
func sortedModels(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return m[out[i]] > m[out[j]] || m[out[i]] == m[out[j]] && out[i] < out[j] })
	return out
}
