package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"time"

	"baimo/internal/apierr"
	"baimo/internal/batch"
	"baimo/internal/keys"
	"baimo/internal/money"
	"baimo/internal/provider/ir"
)

// The batch APIs: OpenAI's Files and Batches, Anthropic's Message Batches,
// and the admin API's view of every tenant's batches (package batch does
// the work). A key sees its tenant's files and batches.

func (s *Server) batchRoutes(mux *http.ServeMux) {
	if s.Batches == nil {
		return
	}
	mux.HandleFunc("POST /v1/files", s.openAI(s.uploadFile))
	mux.HandleFunc("GET /v1/files", s.openAI(s.listFiles))
	mux.HandleFunc("GET /v1/files/{id}", s.openAI(s.getFile))
	mux.HandleFunc("GET /v1/files/{id}/content", s.openAI(s.fileContent))
	mux.HandleFunc("DELETE /v1/files/{id}", s.openAI(s.deleteFile))
	mux.HandleFunc("POST /v1/batches", s.openAI(s.createBatch))
	mux.HandleFunc("GET /v1/batches", s.openAI(s.listBatches))
	mux.HandleFunc("GET /v1/batches/{id}", s.openAI(s.getBatch))
	mux.HandleFunc("POST /v1/batches/{id}/cancel", s.openAI(s.cancelBatch))

	mux.HandleFunc("POST /v1/messages/batches", s.anthropic(s.createMessageBatch))
	mux.HandleFunc("GET /v1/messages/batches", s.anthropic(s.listMessageBatches))
	mux.HandleFunc("GET /v1/messages/batches/{id}", s.anthropic(s.getMessageBatch))
	mux.HandleFunc("POST /v1/messages/batches/{id}/cancel", s.anthropic(s.cancelMessageBatch))
	mux.HandleFunc("GET /v1/messages/batches/{id}/results", s.anthropic(s.messageBatchResults))

	mux.HandleFunc("GET /admin/batches", s.admin(s.adminListBatches))
	mux.HandleFunc("GET /admin/batches/{id}", s.admin(s.adminGetBatch))
	mux.HandleFunc("POST /admin/batches/{id}/cancel", s.admin(s.adminCancelBatch))
	mux.HandleFunc("GET /admin/batches/{id}/results", s.admin(s.adminBatchResults))
}

// keyed is a handler of a client's key.
type keyed func(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error

// openAI authenticates an OpenAI client and writes errors in its format.
func (s *Server) openAI(h keyed) http.HandlerFunc {
	return s.keyedIn(ir.FormatOpenAI, h)
}

// anthropic authenticates an Anthropic client and writes errors in its format.
func (s *Server) anthropic(h keyed) http.HandlerFunc {
	return s.keyedIn(ir.FormatAnthropic, h)
}

func (s *Server) keyedIn(f ir.Format, h keyed) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		k, aerr := s.GW.Authenticate(r, f)
		if aerr == nil {
			aerr = h(w, r, k)
		}
		if aerr != nil {
			writeError(w, f, aerr)
		}
	}
}

// maxPurpose bounds the purpose field of an upload.
const maxPurpose = 64

// uploadFile serves POST /v1/files: a multipart form with the file and its
// purpose, in either order; the file is streamed to storage, never held.
func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	lim := s.Batches.Limits()
	r.Body = http.MaxBytesReader(w, r.Body, lim.MaxFileBytes+1<<20)
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct != "multipart/form-data" {
		return apierr.BadRequest("file", "Upload the file as multipart/form-data with the fields file and purpose.")
	}
	mr, err := r.MultipartReader()
	if err != nil {
		return apierr.BadRequest("file", "The multipart form could not be read.")
	}
	var f *batch.File
	purpose := ""
	discard := func() {
		if f != nil {
			s.Batches.DiscardFile(r.Context(), *f)
		}
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			discard()
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return apierr.TooLarge(lim.MaxFileBytes)
			}
			return apierr.BadRequest("file", "The multipart form could not be read.")
		}
		switch p.FormName() {
		case "purpose":
			b, _ := io.ReadAll(io.LimitReader(p, maxPurpose+1))
			purpose = string(b)
		case "file":
			if f != nil {
				discard()
				return apierr.BadRequest("file", "Send one file.")
			}
			stored, aerr := s.Batches.PutFile(r.Context(), k, p.FileName(), p)
			if aerr != nil {
				return aerr
			}
			f = &stored
		default:
			_, _ = io.Copy(io.Discard, io.LimitReader(p, 1<<20))
		}
		p.Close()
	}
	if f == nil {
		return apierr.BadRequest("file", "Missing the file.")
	}
	added, aerr := s.Batches.AddFile(r.Context(), *f, purpose)
	if aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, fileView(added))
	return nil
}

func fileView(f batch.File) map[string]any {
	return map[string]any{"id": f.ID, "object": "file", "bytes": f.Bytes, "created_at": f.CreatedAt.Unix(),
		"filename": f.Filename, "purpose": f.Purpose, "status": "processed", "status_details": nil, "expires_at": nil}
}

// limitParam reads a limit query parameter in [1, max], def when absent.
func limitParam(r *http.Request, name string, def, max int) (int, *apierr.Error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > max {
		return 0, apierr.BadRequest(name, "%s must be an integer from 1 to %d.", name, max)
	}
	return n, nil
}

// idParam reads an id query parameter (bounded).
func idParam(r *http.Request, name string) (string, *apierr.Error) {
	v := r.URL.Query().Get(name)
	if len(v) > 200 {
		return "", apierr.BadRequest(name, "%s is too long.", name)
	}
	return v, nil
}

func (s *Server) listFiles(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	limit, aerr := limitParam(r, "limit", 10000, 10000)
	if aerr != nil {
		return aerr
	}
	after, aerr := idParam(r, "after")
	if aerr != nil {
		return aerr
	}
	purpose := r.URL.Query().Get("purpose")
	if len(purpose) > maxPurpose {
		return apierr.BadRequest("purpose", "purpose is too long.")
	}
	fs, more, aerr := s.Batches.Files(r.Context(), k, purpose, after, limit)
	if aerr != nil {
		return aerr
	}
	data := make([]map[string]any, len(fs))
	for i, f := range fs {
		data[i] = fileView(f)
	}
	writeJSON(w, http.StatusOK, listView(data, more))
	return nil
}

// listView is OpenAI's list object.
func listView(data []map[string]any, more bool) map[string]any {
	v := map[string]any{"object": "list", "data": data, "has_more": more, "first_id": nil, "last_id": nil}
	if len(data) > 0 {
		v["first_id"], v["last_id"] = data[0]["id"], data[len(data)-1]["id"]
	}
	return v
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	f, aerr := s.Batches.File(r.Context(), k, r.PathValue("id"))
	if aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, fileView(f))
	return nil
}

func (s *Server) fileContent(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	f, rc, aerr := s.Batches.FileContent(r.Context(), k, r.PathValue("id"))
	if aerr != nil {
		return aerr
	}
	defer rc.Close()
	streamFile(w, f.Bytes, rc)
	return nil
}

// streamFile writes a file's content.
func streamFile(w http.ResponseWriter, size int64, rc io.Reader) {
	w.Header().Set("Content-Type", "application/octet-stream")
	if size >= 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
	}
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, rc)
}

func (s *Server) deleteFile(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	id := r.PathValue("id")
	if aerr := s.Batches.DeleteFile(r.Context(), k, id); aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "file", "deleted": true})
	return nil
}

// maxBatchCreate bounds the body of POST /v1/batches.
const maxBatchCreate = 64 << 10

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	var req struct {
		InputFileID      string            `json:"input_file_id"`
		Endpoint         string            `json:"endpoint"`
		CompletionWindow string            `json:"completion_window"`
		Metadata         map[string]string `json:"metadata"`
	}
	body, aerr := readLimited(w, r, maxBatchCreate)
	if aerr != nil {
		return aerr
	}
	if aerr := decodeJSON(body, &req, false); aerr != nil {
		return aerr
	}
	switch {
	case req.InputFileID == "":
		return apierr.BadRequest("input_file_id", "Missing required parameter: 'input_file_id'.")
	case req.Endpoint == "":
		return apierr.BadRequest("endpoint", "Missing required parameter: 'endpoint'.")
	case req.CompletionWindow == "":
		return apierr.BadRequest("completion_window", "Missing required parameter: 'completion_window'.")
	}
	b, aerr := s.Batches.Create(r.Context(), k, batch.CreateRequest{API: batch.OpenAI, Endpoint: req.Endpoint,
		InputFileID: req.InputFileID, Window: req.CompletionWindow, Metadata: req.Metadata})
	if aerr != nil {
		return aerr
	}
	c, _ := batchCounts(&b)
	writeJSON(w, http.StatusOK, batchView(b, c))
	return nil
}

// batchCounts are the counts of a batch just created.
func batchCounts(b *batch.Batch) (batch.Counts, bool) {
	if b.Doc.Final != nil {
		return *b.Doc.Final, true
	}
	return batch.Counts{Total: b.Doc.Total, Pending: b.Doc.Total}, false
}

func unixOrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.Unix()
}

// batchView is a batch as OpenAI shows it, with baimo's usage and cost.
func batchView(b batch.Batch, c batch.Counts) map[string]any {
	d := &b.Doc
	v := map[string]any{"id": b.ID, "object": "batch", "endpoint": b.Endpoint, "errors": nil, "input_file_id": b.InputFileID,
		"completion_window": d.Window, "status": string(b.Status), "output_file_id": nilIfEmpty(d.OutputFileID),
		"error_file_id": nilIfEmpty(d.ErrorFileID), "created_at": b.CreatedAt.Unix(), "in_progress_at": unixOrNil(d.InProgressAt),
		"expires_at": b.ExpiresAt.Unix(), "finalizing_at": unixOrNil(d.FinalizingAt), "completed_at": nil, "failed_at": nil,
		"expired_at": nil, "cancelling_at": unixOrNil(b.CancelledAt), "cancelled_at": nil,
		"request_counts": map[string]int{"total": c.Total, "completed": c.Succeeded, "failed": c.Errored + c.Expired},
		"metadata":       d.Metadata,
		"usage":          map[string]int64{"input_tokens": c.Input, "output_tokens": c.Output, "total_tokens": c.Input + c.Output},
		"baimo":          baimoView(b, c)}
	switch b.Status {
	case batch.Completed:
		v["completed_at"] = unixOrNil(d.EndedAt)
	case batch.Failed:
		v["failed_at"] = unixOrNil(d.EndedAt)
	case batch.Expired:
		v["expired_at"] = unixOrNil(d.EndedAt)
	case batch.Cancelled:
		v["cancelled_at"] = unixOrNil(d.EndedAt)
	}
	if len(d.Errors) > 0 {
		errs := make([]map[string]any, len(d.Errors))
		for i, e := range d.Errors {
			errs[i] = map[string]any{"code": e.Code, "message": e.Message, "param": nilIfEmpty(e.Param), "line": e.Line}
		}
		v["errors"] = map[string]any{"object": "list", "data": errs, "total": d.ErrorCount}
	}
	return v
}

// baimoView is what baimo adds to a batch: where its lines run, what they
// cost so far, what it reserved.
func baimoView(b batch.Batch, c batch.Counts) map[string]any {
	cur := money.Currency(b.Doc.Currency)
	v := map[string]any{"mode": string(b.Doc.Mode), "cost": money.FormatNanos(c.CostNanos), "currency": cur,
		"reserved": money.FormatNanos(b.Doc.Reserved), "lines": c}
	if b.Doc.Vendor != nil {
		v["vendor_status"] = b.Doc.Vendor.Status
	}
	return v
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	data, more, aerr := s.batchPage(r, k, "", "after", batch.OpenAI, batchView)
	if aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, listView(data, more))
	return nil
}

// batchPage reads a page of batches as the query asks (limit, and the id
// to list after in afterParam) and shows each with view.
func (s *Server) batchPage(r *http.Request, k *keys.Key, tenant, afterParam string, api batch.API,
	view func(batch.Batch, batch.Counts) map[string]any) ([]map[string]any, bool, *apierr.Error) {
	limit, aerr := limitParam(r, "limit", 20, 100)
	if aerr != nil {
		return nil, false, aerr
	}
	after, aerr := idParam(r, afterParam)
	if aerr != nil {
		return nil, false, aerr
	}
	ls, more, aerr := s.Batches.List(r.Context(), k, tenant, after, limit, api)
	if aerr != nil {
		return nil, false, aerr
	}
	data := make([]map[string]any, len(ls))
	for i, l := range ls {
		data[i] = view(l.Batch, l.Counts)
	}
	return data, more, nil
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	b, c, aerr := s.Batches.Get(r.Context(), k, r.PathValue("id"))
	if aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, batchView(b, c))
	return nil
}

func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	b, c, aerr := s.Batches.Cancel(r.Context(), k, r.PathValue("id"))
	if aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, batchView(b, c))
	return nil
}

// createMessageBatch serves Anthropic's POST /v1/messages/batches: a body
// {"requests": [{"custom_id", "params"}, ...]} read as a stream, each
// request written as one line of the batch's input file.
func (s *Server) createMessageBatch(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	lim := s.Batches.Limits()
	body := http.MaxBytesReader(w, r.Body, lim.MaxFileBytes)
	pr, pw := io.Pipe()
	read := make(chan *apierr.Error, 1)
	go func() {
		aerr := requestsToLines(body, pw, lim.MaxLineBytes)
		if aerr != nil {
			pw.CloseWithError(aerr)
		} else {
			pw.Close()
		}
		read <- aerr
	}()
	b, aerr := s.Batches.CreateFromLines(r.Context(), k, batch.CreateRequest{API: batch.Anthropic, Endpoint: "/v1/messages"}, pr)
	pr.CloseWithError(errors.New("done"))
	if rerr := <-read; rerr != nil {
		return rerr
	}
	if aerr != nil {
		return aerr
	}
	c, _ := batchCounts(&b)
	writeJSON(w, http.StatusOK, messageBatchView(r, b, c))
	return nil
}

// requestsToLines copies the requests of an Anthropic batch body to w as
// JSON lines.
func requestsToLines(r io.Reader, w io.Writer, maxLine int) *apierr.Error {
	dec := json.NewDecoder(r)
	bad := func(err error) *apierr.Error {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return apierr.TooLarge(mbe.Limit)
		}
		return apierr.InvalidJSON(err)
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		if err == nil {
			err = errors.New("not an object")
		}
		return bad(err)
	}
	seen := false
	var line bytes.Buffer
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return bad(err)
		}
		if key, _ := t.(string); key != "requests" || seen {
			return apierr.BadRequest(key, "Unknown or repeated field %q: the body is {\"requests\": [...]}.", key)
		}
		seen = true
		if t, err := dec.Token(); err != nil || t != json.Delim('[') {
			return apierr.BadRequest("requests", "requests must be an array.")
		}
		for dec.More() {
			var req json.RawMessage
			if err := dec.Decode(&req); err != nil {
				return bad(err)
			}
			if len(req) > maxLine {
				return apierr.BadRequest("requests", "A request is longer than %d bytes.", maxLine)
			}
			line.Reset()
			if err := json.Compact(&line, req); err != nil {
				return bad(err)
			}
			line.WriteByte('\n')
			if _, err := w.Write(line.Bytes()); err != nil {
				return nil // the reader stopped: its error is the answer
			}
		}
		if _, err := dec.Token(); err != nil {
			return bad(err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return bad(err)
	}
	if !seen {
		return apierr.BadRequest("requests", "Missing required parameter: 'requests'.")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return apierr.InvalidJSON(errors.New("data after the JSON value"))
	}
	return nil
}

// rfc3339OrNil writes a time as Anthropic does.
func rfc3339OrNil(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(time.RFC3339)
}

// messageBatchView is a batch as Anthropic shows it.
func messageBatchView(r *http.Request, b batch.Batch, c batch.Counts) map[string]any {
	status := "in_progress"
	switch {
	case b.Status.Ended():
		status = "ended"
	case b.Status == batch.Cancelling:
		status = "canceling"
	}
	v := map[string]any{"id": b.ID, "type": "message_batch", "processing_status": status,
		"request_counts": map[string]int{"processing": c.Pending, "succeeded": c.Succeeded, "errored": c.Errored,
			"canceled": c.Cancelled, "expired": c.Expired},
		"ended_at": nil, "created_at": rfc3339OrNil(b.CreatedAt), "expires_at": rfc3339OrNil(b.ExpiresAt), "archived_at": nil,
		"cancel_initiated_at": rfc3339OrNil(b.CancelledAt), "results_url": nil, "baimo": baimoView(b, c)}
	if b.Status.Ended() {
		v["ended_at"] = rfc3339OrNil(b.Doc.EndedAt)
		if b.Doc.OutputFileID != "" {
			v["results_url"] = baseURL(r) + "/v1/messages/batches/" + b.ID + "/results"
		}
	}
	if b.Status == batch.Failed { // a file of bad requests: every one errored
		v["request_counts"] = map[string]int{"processing": 0, "succeeded": 0, "errored": b.Doc.Total, "canceled": 0, "expired": 0}
		if len(b.Doc.Errors) > 0 {
			v["baimo"].(map[string]any)["errors"] = b.Doc.Errors
		}
	}
	return v
}

// baseURL is the scheme and host the client called.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https" {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (s *Server) listMessageBatches(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	data, more, aerr := s.batchPage(r, k, "", "after_id", batch.Anthropic, func(b batch.Batch, c batch.Counts) map[string]any {
		return messageBatchView(r, b, c)
	})
	if aerr != nil {
		return aerr
	}
	v := map[string]any{"data": data, "has_more": more, "first_id": nil, "last_id": nil}
	if len(data) > 0 {
		v["first_id"], v["last_id"] = data[0]["id"], data[len(data)-1]["id"]
	}
	writeJSON(w, http.StatusOK, v)
	return nil
}

func (s *Server) getMessageBatch(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	b, c, aerr := s.Batches.Get(r.Context(), k, r.PathValue("id"))
	if aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, messageBatchView(r, b, c))
	return nil
}

func (s *Server) cancelMessageBatch(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	b, c, aerr := s.Batches.Cancel(r.Context(), k, r.PathValue("id"))
	if aerr != nil {
		return aerr
	}
	writeJSON(w, http.StatusOK, messageBatchView(r, b, c))
	return nil
}

func (s *Server) messageBatchResults(w http.ResponseWriter, r *http.Request, k *keys.Key) *apierr.Error {
	return s.results(r.Context(), w, k, r.PathValue("id"), false)
}

// results streams a batch's results file as JSON lines.
func (s *Server) results(ctx context.Context, w http.ResponseWriter, k *keys.Key, id string, errors bool) *apierr.Error {
	rc, aerr := s.Batches.Results(ctx, k, id, errors)
	if aerr != nil {
		return aerr
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "application/x-jsonl")
	w.WriteHeader(http.StatusOK)
	_, _ = io.Copy(w, rc)
	return nil
}

func (s *Server) adminListBatches(w http.ResponseWriter, r *http.Request) {
	tenant, aerr := idParam(r, "tenant_id")
	var data []map[string]any
	var more bool
	if aerr == nil {
		data, more, aerr = s.batchPage(r, nil, tenant, "after", "", adminBatchView)
	}
	if aerr != nil {
		WriteOpenAIError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, listView(data, more))
}

// adminBatchView is a batch as OpenAI shows it, with its tenant, key and
// runner.
func adminBatchView(b batch.Batch, c batch.Counts) map[string]any {
	v := batchView(b, c)
	v["api"], v["tenant_id"], v["key_id"] = b.API, b.TenantID, b.KeyID
	v["runner"] = map[string]any{"owner": b.Owner, "lease_until": unixOrNil(b.LeaseUntil), "epoch": b.Epoch}
	return v
}

func (s *Server) adminGetBatch(w http.ResponseWriter, r *http.Request) {
	b, c, aerr := s.Batches.Get(r.Context(), nil, r.PathValue("id"))
	if aerr != nil {
		WriteOpenAIError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, adminBatchView(b, c))
}

func (s *Server) adminCancelBatch(w http.ResponseWriter, r *http.Request) {
	b, c, aerr := s.Batches.Cancel(r.Context(), nil, r.PathValue("id"))
	if aerr != nil {
		WriteOpenAIError(w, aerr)
		return
	}
	writeJSON(w, http.StatusOK, adminBatchView(b, c))
}

func (s *Server) adminBatchResults(w http.ResponseWriter, r *http.Request) {
	if aerr := s.results(r.Context(), w, nil, r.PathValue("id"), r.URL.Query().Get("errors") == "true"); aerr != nil {
		WriteOpenAIError(w, aerr)
	}
}
