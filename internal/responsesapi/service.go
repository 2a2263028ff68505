// Package responsesapi serves OpenAI's Responses API with its state: POST
// /v1/responses with previous_response_id, store and background, and GET,
// DELETE, POST …/cancel and GET …/input_items on the stored responses. It
// keeps each stored turn (package conversation), replays a conversation for
// a follow-up and pins the follow-up to the channel and upstream key that
// served its predecessor, and runs background responses detached from
// their client. Every request goes through the gateway like any other
// (admission, the hold, translation, metering, settlement), so a turn is
// billed for the conversation it really sends upstream.
package responsesapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/clock"
	"baimo/internal/conversation"
	"baimo/internal/gateway"
	"baimo/internal/jsonfield"
	"baimo/internal/keys"
	"baimo/internal/provider"
	"baimo/internal/provider/ir"
	"baimo/internal/route"
)

// Gateway serves requests (*gateway.Gateway).
type Gateway interface {
	Serve(w http.ResponseWriter, r *http.Request, in gateway.Inbound) *apierr.Error
	Authenticate(r *http.Request, f ir.Format) (*keys.Key, *apierr.Error)
}

var _ Gateway = (*gateway.Gateway)(nil)

// Options configures a Service.
type Options struct {
	Gateway Gateway
	Store   conversation.Store
	Clock   clock.Clock
	Log     *slog.Logger
	// MaxBody bounds a request body and a replayed conversation
	// (limits.max_body_bytes).
	MaxBody int64
	// StaleAfter is how long a background response may go without an
	// update before it counts as interrupted (its node stopped): the
	// request timeout and a margin.
	StaleAfter time.Duration
	// Retention is how long a stored response is kept; 0 keeps them
	// until deleted.
	Retention time.Duration
	// StoreTimeout bounds each wait for the store; default 5s.
	StoreTimeout time.Duration
	// CancelPoll is how often a background response looks for a cancel
	// made on another node; default 2s.
	CancelPoll time.Duration
}

// Service serves the Responses API's routes.
type Service struct {
	opt     Options
	running sync.Map // response id → *run, the background responses running here
	wg      sync.WaitGroup
}

// run is a background response running on this node.
type run struct {
	stop context.CancelFunc
	done chan struct{} // closed once its end is stored
}

// New returns a Service.
func New(o Options) *Service {
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.StoreTimeout <= 0 {
		o.StoreTimeout = 5 * time.Second
	}
	if o.CancelPoll <= 0 {
		o.CancelPoll = 2 * time.Second
	}
	if o.StaleAfter <= 0 {
		o.StaleAfter = 15 * time.Minute
	}
	return &Service{opt: o}
}

// Mount registers the routes.
func (s *Service) Mount(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/responses", s.create)
	mux.HandleFunc("GET /v1/responses/{id}", s.get)
	mux.HandleFunc("DELETE /v1/responses/{id}", s.delete)
	mux.HandleFunc("POST /v1/responses/{id}/cancel", s.cancel)
	mux.HandleFunc("GET /v1/responses/{id}/input_items", s.inputItems)
}

// Drain waits for the background responses running here to finish and be
// stored, or for ctx to end.
func (s *Service) Drain(ctx context.Context) error {
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run deletes the responses past their retention every interval until ctx
// ends.
func (s *Service) Run(ctx context.Context, interval time.Duration) {
	if s.opt.Retention <= 0 {
		return
	}
	t := s.opt.Clock.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C():
			for {
				n, err := s.opt.Store.DeleteResponsesBefore(ctx, s.opt.Clock.Now().Add(-s.opt.Retention), 500)
				if err != nil {
					s.opt.Log.Warn("delete stored responses past their retention", "err", err)
				}
				if err != nil || n < 500 {
					break
				}
			}
		}
	}
}

func writeError(w http.ResponseWriter, e *apierr.Error) {
	provider.WriteError(w, ir.FormatResponses, e)
}

func writeJSON(w http.ResponseWriter, body []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(body)
}

// newID returns a response id: resp_ and 24 random bytes in hex.
func newID() string {
	var b [24]byte
	_, _ = rand.Read(b[:])
	return "resp_" + hex.EncodeToString(b[:])
}

func (s *Service) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.opt.StoreTimeout)
}

// tenantOf is a key's tenant, "default" for keys made without one.
func tenantOf(k *keys.Key) string {
	if k.TenantID == "" {
		return "default"
	}
	return k.TenantID
}

// load returns the stored response id of k's tenant; another tenant's
// response, like an unknown id, is a 404 naming param.
func (s *Service) load(ctx context.Context, k *keys.Key, id, param string) (conversation.Response, *apierr.Error) {
	notFound := &apierr.Error{Status: http.StatusNotFound, Type: "invalid_request_error", Code: "not_found", Param: param,
		Message: "Response with id '" + id + "' not found."}
	if param == "previous_response_id" {
		notFound.Message = "Previous response with id '" + id + "' not found."
	}
	if id == "" || len(id) > conversation.MaxIDLen {
		return conversation.Response{}, notFound
	}
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	r, err := s.opt.Store.Response(sctx, id)
	switch {
	case errors.Is(err, conversation.ErrNotFound):
		return r, notFound
	case err != nil:
		s.opt.Log.Error("stored responses", "err", err)
		return r, apierr.Unavailable("The gateway cannot read stored responses right now; retry.", err)
	case r.TenantID != tenantOf(k):
		return conversation.Response{}, notFound
	}
	return r, nil
}

// turn is one POST /v1/responses on its way.
type turn struct {
	key  *keys.Key
	t    conversation.Turn
	echo conversation.Echo
	rec  conversation.Response
	call gateway.Call
	obs  observer
}

// observer records what the gateway says of a request's progress.
type observer struct {
	admitted     chan struct{} // closed at admission, when not nil
	onAdmit      func()        // run at admission, before the upstream call
	admittedOnce sync.Once
	requestID    string // set before admitted is closed
	mu           sync.Mutex
	channel, key string
}

func (o *observer) Admitted(requestID string) {
	o.admittedOnce.Do(func() {
		o.requestID = requestID
		if o.onAdmit != nil {
			o.onAdmit()
		}
		if o.admitted != nil {
			close(o.admitted)
		}
	})
}

func (o *observer) Serving(channel, key string) {
	o.mu.Lock()
	o.channel, o.key = channel, key
	o.mu.Unlock()
}

// upstream is the channel and upstream key that served, "" before one did.
func (o *observer) upstream() (string, string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.channel, o.key
}

func (s *Service) create(w http.ResponseWriter, r *http.Request) {
	k, aerr := s.opt.Gateway.Authenticate(r, ir.FormatResponses)
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	body, aerr := gateway.ReadBody(w, r, s.opt.MaxBody, new(bytes.Buffer))
	if aerr != nil {
		writeError(w, aerr)
		return
	}
	in := gateway.Inbound{Format: ir.FormatResponses, Endpoint: gateway.Responses}
	t, ok := conversation.ReadTurn(body)
	if !ok {
		// Not a JSON object: the gateway's admission words the error.
		in.Call = &gateway.Call{Body: body}
		if e := s.opt.Gateway.Serve(w, r, in); e != nil {
			writeError(w, e)
		}
		return
	}
	tn := &turn{key: k, t: t}
	if aerr := s.prepare(r.Context(), tn, body); aerr != nil {
		writeError(w, aerr)
		return
	}
	in.Call = &tn.call
	if t.Background {
		s.background(w, r, in, tn)
		return
	}
	rl := newRelay(w, false, &tn.echo, func(obj []byte) { s.stored(r.Context(), tn, obj) })
	if e := s.opt.Gateway.Serve(rl, r, in); e != nil {
		rl.writeError(e)
		return
	}
	rl.finish()
}

// prepare reads a turn's place in its conversation: the replayed history
// and the pin of a follow-up, the body the gateway serves, the response's
// id and echoes.
func (s *Service) prepare(ctx context.Context, tn *turn, body []byte) *apierr.Error {
	t := tn.t
	if t.Background && !t.Store {
		return apierr.BadRequest("background", "A background response must be stored: set store to true (the default).")
	}
	items, err := conversation.InputItems(t.Input)
	if err != nil {
		return apierr.BadRequest("input", "%s", err.Error())
	}
	var history []json.RawMessage
	if t.Previous != "" {
		prev, aerr := s.load(ctx, tn.key, t.Previous, "previous_response_id")
		if aerr != nil {
			return aerr
		}
		if !conversation.Finished(prev.Status) {
			return apierr.BadRequest("previous_response_id", "Previous response with id '%s' is still %s; wait for it to finish.", t.Previous, prev.Status)
		}
		if prev.Channel == "" {
			return apierr.BadRequest("previous_response_id", "Previous response with id '%s' has no answer to continue (it %s).", t.Previous, prev.Status)
		}
		sctx, cancel := s.storeCtx(ctx)
		history, err = conversation.History(sctx, func(ctx context.Context, id string) (conversation.Response, error) {
			r, err := s.opt.Store.Response(ctx, id)
			if err == nil && r.TenantID != prev.TenantID {
				err = conversation.ErrNotFound
			}
			return r, err
		}, prev, int(s.opt.MaxBody))
		cancel()
		switch {
		case errors.Is(err, conversation.ErrTooLong):
			return apierr.BadRequest("previous_response_id", "The conversation that response '%s' ends is longer than this gateway replays (limits.max_body_bytes, %d bytes); start a new one.",
				t.Previous, s.opt.MaxBody)
		case errors.Is(err, conversation.ErrNotFound):
			return apierr.BadRequest("previous_response_id", "A response of the conversation that '%s' ends was deleted; it cannot be continued.", t.Previous)
		case err != nil:
			s.opt.Log.Error("replay a stored conversation", "err", err)
			return apierr.Unavailable("The gateway cannot read stored responses right now; retry.", err)
		}
		tn.call.Pin, tn.call.PinParam = &route.Pin{Channel: prev.Channel, Key: prev.UpstreamKey}, "previous_response_id"
	}
	if tn.call.Body, err = conversation.Body(body, history, items); err != nil {
		return apierr.BadRequest("", "The request body must be a JSON object.")
	}
	if int64(len(tn.call.Body)) > s.opt.MaxBody {
		return apierr.BadRequest("previous_response_id", "The conversation with this turn is longer than this gateway replays (limits.max_body_bytes, %d bytes); start a new one.", s.opt.MaxBody)
	}
	now := s.opt.Clock.Now()
	id := newID()
	tn.echo = conversation.Echo{ID: id, Previous: t.Previous, Store: t.Store, Background: t.Background,
		Instructions: t.Instructions, Metadata: t.Metadata}
	tn.rec = conversation.Response{ID: id, TenantID: tenantOf(tn.key), KeyID: tn.key.ID, Model: t.Model, PreviousID: t.Previous,
		Background: t.Background, Input: items, CreatedAt: now, UpdatedAt: now}
	tn.call.Observer = &tn.obs
	return nil
}

// stored keeps a turn's final object, if the turn is stored, before its
// client gets it.
func (s *Service) stored(ctx context.Context, tn *turn, obj []byte) {
	if !tn.t.Store {
		return
	}
	rec := tn.rec
	rec.Object, rec.Status, rec.UpdatedAt = obj, conversation.Status(obj), s.opt.Clock.Now()
	rec.Channel, rec.UpstreamKey = tn.obs.upstream()
	rec.RequestID = tn.obs.requestID
	s.put(ctx, &rec)
}

// put stores rec; a background response deleted while it ran is not
// stored again.
func (s *Service) put(ctx context.Context, rec *conversation.Response) {
	sctx, cancel := s.storeCtx(ctx)
	defer cancel()
	if rec.Background {
		if _, err := s.opt.Store.Response(sctx, rec.ID); errors.Is(err, conversation.ErrNotFound) {
			return
		}
	}
	if err := s.opt.Store.PutResponse(sctx, rec); err != nil {
		s.opt.Log.Error("store a response", "response_id", rec.ID, "err", err)
	}
}

// shell is the response object of a background response before its
// answer: queued, with what the request said.
func (s *Service) shell(tn *turn, status string) []byte {
	obj := []byte(`{"id":"","object":"response","created_at":` + strconv.FormatInt(tn.rec.CreatedAt.Unix(), 10) +
		`,"status":` + strconv.Quote(status) + `,"error":null,"incomplete_details":null,"model":` + strconv.Quote(tn.t.Model) +
		`,"output":[],"usage":null}`)
	out, err := tn.echo.Patch(obj)
	if err != nil {
		return obj
	}
	return out
}

// background runs a background response detached from its client: the
// client gets the queued response once it is admitted (its hold placed),
// or the refusal; a streaming client also gets the stream for as long as it
// stays. The answer is stored when it ends, cancelled or not.
func (s *Service) background(w http.ResponseWriter, r *http.Request, in gateway.Inbound, tn *turn) {
	tn.rec.Status, tn.rec.Object = conversation.Queued, s.shell(tn, conversation.Queued)
	sctx, cancel := s.storeCtx(r.Context())
	err := s.opt.Store.PutResponse(sctx, &tn.rec)
	cancel()
	if err != nil {
		s.opt.Log.Error("store a background response", "err", err)
		writeError(w, apierr.Unavailable("The gateway cannot store responses right now; retry.", err))
		return
	}
	ctx, stop := context.WithCancel(context.WithoutCancel(r.Context()))
	rn := &run{stop: stop, done: make(chan struct{})}
	s.running.Store(tn.rec.ID, rn)
	tn.obs.admitted = make(chan struct{})
	tn.obs.onAdmit = func() {
		// In the request's goroutine, so that its end is stored after.
		rec := tn.rec
		rec.Status, rec.Object = conversation.InProgress, s.shell(tn, conversation.InProgress)
		s.put(ctx, &rec)
	}
	var client http.ResponseWriter
	if tn.t.Stream {
		client = w
	}
	rl := newRelay(client, true, &tn.echo, func(obj []byte) { s.stored(ctx, tn, obj) })
	ended := make(chan struct{})
	var refused *apierr.Error
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(rn.done)
		defer s.running.Delete(tn.rec.ID)
		defer stop()
		watch := s.watchCancel(ctx, tn.rec.ID, stop)
		e := s.opt.Gateway.Serve(rl, r.Clone(ctx), in)
		if e == nil {
			rl.finish()
		}
		watch()
		refused = e
		close(ended)
		s.settle(tn, rl, e, ctx.Err() != nil)
	}()
	select {
	case <-tn.obs.admitted:
	case <-ended:
		select {
		case <-tn.obs.admitted:
		default:
			// Refused before admission: nothing ran, nothing is kept.
			dctx, cancel := s.storeCtx(r.Context())
			_ = s.opt.Store.DeleteResponse(dctx, tn.rec.ID)
			cancel()
			rl.detach()
			if refused == nil {
				refused = apierr.Internal(errors.New("background response ended before admission"))
			}
			h := w.Header()
			h.Set("X-Request-Id", rl.Header().Get("X-Request-Id"))
			writeError(w, refused)
			return
		}
	}
	if !tn.t.Stream {
		rl.detach()
		w.Header().Set("X-Request-Id", tn.obs.requestID)
		writeJSON(w, s.shell(tn, conversation.Queued))
		return
	}
	// A streaming client follows the answer until it ends or leaves.
	select {
	case <-ended:
	case <-r.Context().Done():
	}
	rl.detach()
}

// watchCancel stops a background response when a cancel made on another
// node reaches the store; the returned func ends the watch.
func (s *Service) watchCancel(ctx context.Context, id string, stop context.CancelFunc) func() {
	wctx, end := context.WithCancel(ctx)
	t := s.opt.Clock.NewTicker(s.opt.CancelPoll)
	go func() {
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C():
				rctx, cancel := context.WithTimeout(wctx, s.opt.StoreTimeout)
				r, err := s.opt.Store.Response(rctx, id)
				cancel()
				if err == nil && r.CancelRequested {
					stop()
					return
				}
			}
		}
	}()
	return end
}

// settle stores how a background response ended when no final object was
// stored on the way: the gateway's error, a cancel, or a broken answer.
func (s *Service) settle(tn *turn, rl *relay, e *apierr.Error, cancelled bool) {
	if rl.final != nil {
		return // stored on the way, as the client saw it
	}
	rec := tn.rec
	rec.Channel, rec.UpstreamKey = tn.obs.upstream()
	rec.RequestID, rec.UpdatedAt = tn.obs.requestID, s.opt.Clock.Now()
	code, msg := "server_error", "The response ended before it was complete."
	switch {
	case cancelled:
		rec.Status = conversation.Cancelled
	case e != nil:
		rec.Status, code, msg = conversation.Failed, e.Code, e.Message
		if code == "" {
			code = e.Type
		}
	case rl.status != 0 && rl.status != http.StatusOK:
		rec.Status = conversation.Failed
		var eb struct {
			Error struct {
				Message string `json:"message"`
				Code    string `json:"code"`
			} `json:"error"`
		}
		if json.Unmarshal(rl.errBody, &eb) == nil && eb.Error.Message != "" {
			msg = eb.Error.Message
			if eb.Error.Code != "" {
				code = eb.Error.Code
			}
		}
	default:
		rec.Status = conversation.Failed
	}
	obj := rl.final
	if obj == nil {
		obj = s.shell(tn, rec.Status)
	}
	obj, _ = jsonfield.Set(obj, "status", strconv.AppendQuote(nil, rec.Status))
	if rec.Status == conversation.Failed {
		errObj, _ := json.Marshal(map[string]string{"code": code, "message": msg})
		obj, _ = jsonfield.Set(obj, "error", errObj)
	}
	rec.Object = obj
	s.put(context.Background(), &rec)
}

// target authenticates a request on a stored response and loads the
// response its path names, writing the error when it cannot.
func (s *Service) target(w http.ResponseWriter, r *http.Request) (conversation.Response, bool) {
	k, aerr := s.opt.Gateway.Authenticate(r, ir.FormatResponses)
	if aerr != nil {
		writeError(w, aerr)
		return conversation.Response{}, false
	}
	rec, aerr := s.load(r.Context(), k, r.PathValue("id"), "")
	if aerr != nil {
		writeError(w, aerr)
		return rec, false
	}
	return rec, true
}

// current returns a stored response as it stands: one still queued or in
// progress past StaleAfter was interrupted (the node running it stopped)
// and is stored as failed.
func (s *Service) current(ctx context.Context, rec conversation.Response) []byte {
	if conversation.Finished(rec.Status) || s.opt.Clock.Now().Sub(rec.CreatedAt) < s.opt.StaleAfter {
		return rec.Object
	}
	if _, here := s.running.Load(rec.ID); here {
		return rec.Object
	}
	obj, _ := jsonfield.Set(rec.Object, "status", []byte(`"failed"`))
	obj, _ = jsonfield.Set(obj, "error", []byte(`{"code":"interrupted","message":"The gateway node running this background response stopped before it finished."}`))
	rec.Status, rec.Object, rec.UpdatedAt = conversation.Failed, obj, s.opt.Clock.Now()
	s.put(ctx, &rec)
	return obj
}

// get answers GET /v1/responses/{id}.
func (s *Service) get(w http.ResponseWriter, r *http.Request) {
	if r.URL.Query().Get("stream") == "true" {
		writeError(w, apierr.BadRequest("stream", "Streaming a stored response again is not supported by this gateway; retrieve it without stream."))
		return
	}
	rec, ok := s.target(w, r)
	if !ok {
		return
	}
	writeJSON(w, s.current(r.Context(), rec))
}

// delete answers DELETE /v1/responses/{id}; a background response running
// here is stopped.
func (s *Service) delete(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.target(w, r)
	if !ok {
		return
	}
	sctx, cancel := s.storeCtx(r.Context())
	defer cancel()
	if !conversation.Finished(rec.Status) {
		_ = s.opt.Store.RequestCancel(sctx, rec.ID)
	}
	if err := s.opt.Store.DeleteResponse(sctx, rec.ID); err != nil && !errors.Is(err, conversation.ErrNotFound) {
		writeError(w, apierr.Unavailable("The gateway cannot delete stored responses right now; retry.", err))
		return
	}
	if v, here := s.running.Load(rec.ID); here {
		v.(*run).stop()
	}
	b, _ := json.Marshal(map[string]any{"id": rec.ID, "object": "response", "deleted": true})
	writeJSON(w, b)
}

// cancel answers POST /v1/responses/{id}/cancel: a background response
// still running is stopped (here, or on its node, which watches the store)
// and billed for what it produced; a finished one is answered as it is.
func (s *Service) cancel(w http.ResponseWriter, r *http.Request) {
	rec, ok := s.target(w, r)
	if !ok {
		return
	}
	if !rec.Background {
		writeError(w, apierr.BadRequest("", "Only background responses can be cancelled."))
		return
	}
	if conversation.Finished(rec.Status) {
		writeJSON(w, rec.Object)
		return
	}
	sctx, cancel := s.storeCtx(r.Context())
	defer cancel()
	if err := s.opt.Store.RequestCancel(sctx, rec.ID); err != nil {
		writeError(w, apierr.Unavailable("The gateway cannot cancel stored responses right now; retry.", err))
		return
	}
	if v, here := s.running.Load(rec.ID); here {
		rn := v.(*run)
		rn.stop()
		select {
		case <-rn.done:
			if now, err := s.opt.Store.Response(sctx, rec.ID); err == nil {
				writeJSON(w, now.Object)
				return
			}
		case <-sctx.Done():
		}
	}
	// Its node stores it cancelled when it sees the request.
	obj, _ := jsonfield.Set(rec.Object, "status", []byte(`"cancelled"`))
	writeJSON(w, obj)
}

// inputItems answers GET /v1/responses/{id}/input_items: the turn's input
// items (those of earlier turns belong to their own responses), each with
// an id, paged with limit (1..100, default 20), order (desc by default),
// after and before.
func (s *Service) inputItems(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	limit := 20
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100 {
			writeError(w, apierr.BadRequest("limit", "limit must be an integer from 1 to 100."))
			return
		}
		limit = n
	}
	order := q.Get("order")
	if order == "" {
		order = "desc"
	}
	if order != "asc" && order != "desc" {
		writeError(w, apierr.BadRequest("order", "order must be asc or desc."))
		return
	}
	rec, ok := s.target(w, r)
	if !ok {
		return
	}
	items, err := conversation.ListItems(rec, order == "desc")
	if err != nil {
		writeError(w, apierr.Internal(err))
		return
	}
	page, more, err := conversation.Page(items, q.Get("after"), q.Get("before"), limit)
	if err != nil {
		writeError(w, apierr.BadRequest("after", "%s", err.Error()))
		return
	}
	out := struct {
		Object  string            `json:"object"`
		Data    []json.RawMessage `json:"data"`
		FirstID *string           `json:"first_id"`
		LastID  *string           `json:"last_id"`
		HasMore bool              `json:"has_more"`
	}{Object: "list", Data: make([]json.RawMessage, 0, len(page)), HasMore: more}
	for _, it := range page {
		out.Data = append(out.Data, it.JSON)
	}
	if len(page) > 0 {
		out.FirstID, out.LastID = &page[0].ID, &page[len(page)-1].ID
	}
	b, _ := json.Marshal(out)
	writeJSON(w, b)
}
