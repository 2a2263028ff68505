package sim

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"time"
)

// A fake vendor batch API, shaped as OpenAI's Files and Batches, so that
// baimo's passthrough of batches to a vendor's own batch API has a vendor to
// talk to in tests and demos. Files and batches live in memory (bounded);
// a batch's lines run through the simulator itself, a few at a time, and
// the batch completes with an output file and an error file in OpenAI's
// line format. A batch's metadata injects faults:
//
//	"sim_poll_errors": "N"  the first N retrieves of the batch answer 500
//	"sim_duplicate": "1"    the output file holds every result twice
//	"sim_drop": "N"         the last N lines get no result at all
//	"sim_delay_ms": "N"     the batch stays in_progress at least N ms
//
// and a line fails as any request does, by its own "sim" field.

// Bounds of the fake batch API.
const (
	maxBatchFiles     = 256
	maxBatchFileBytes = 64 << 20
	maxBatchLines     = 50_000
	maxBatches        = 256
	batchParallel     = 8
)

type batchFile struct {
	ID, Purpose, Name string
	Created           int64
	Data              []byte
}

type simBatch struct {
	mu           sync.Mutex
	ID           string
	Endpoint     string
	InputFile    string
	Status       string
	Created      int64
	Metadata     map[string]string
	Total, Done  int
	Failed       int
	Output, Errs string // file ids, once ended
	pollErrors   int
	cancel       context.CancelFunc
	ended        time.Time
}

type batchAPI struct {
	mu      sync.Mutex
	files   map[string]*batchFile
	fileIDs []string // oldest first, to drop beyond the bound
	batches map[string]*simBatch
	order   []string
}

func (s *Server) batchRoutes() {
	s.batch = &batchAPI{files: map[string]*batchFile{}, batches: map[string]*simBatch{}}
	s.mux.HandleFunc("POST /v1/files", s.uploadFile)
	s.mux.HandleFunc("GET /v1/files/{id}", s.getFile)
	s.mux.HandleFunc("GET /v1/files/{id}/content", s.fileContent)
	s.mux.HandleFunc("POST /v1/batches", s.createBatch)
	s.mux.HandleFunc("GET /v1/batches", s.listBatches)
	s.mux.HandleFunc("GET /v1/batches/{id}", s.getBatch)
	s.mux.HandleFunc("POST /v1/batches/{id}/cancel", s.cancelBatch)
}

func simID(prefix string) string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func (a *batchAPI) addFile(f *batchFile) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.files[f.ID] = f
	a.fileIDs = append(a.fileIDs, f.ID)
	for len(a.fileIDs) > maxBatchFiles {
		delete(a.files, a.fileIDs[0])
		a.fileIDs = a.fileIDs[1:]
	}
}

func (a *batchAPI) file(id string) *batchFile {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.files[id]
}

func fileView(f *batchFile) map[string]any {
	return map[string]any{"id": f.ID, "object": "file", "bytes": len(f.Data), "created_at": f.Created, "filename": f.Name,
		"purpose": f.Purpose}
}

func (s *Server) uploadFile(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBatchFileBytes+1<<20)
	if err := r.ParseMultipartForm(1 << 20); err != nil {
		writeError(w, 400, "invalid_request_error", "sim: a multipart form with purpose and file: "+err.Error())
		return
	}
	defer r.MultipartForm.RemoveAll()
	if p := r.FormValue("purpose"); p != "batch" {
		writeError(w, 400, "invalid_request_error", "sim: purpose must be batch")
		return
	}
	fh, hdr, err := r.FormFile("file")
	if err != nil {
		writeError(w, 400, "invalid_request_error", "sim: no file: "+err.Error())
		return
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxBatchFileBytes+1))
	if err != nil || len(data) > maxBatchFileBytes {
		writeError(w, 400, "invalid_request_error", "sim: the file is unreadable or too large")
		return
	}
	f := &batchFile{ID: simID("file-sim"), Purpose: "batch", Name: hdr.Filename, Created: time.Now().Unix(), Data: data}
	s.batch.addFile(f)
	writeJSON(w, fileView(f))
}

func (s *Server) getFile(w http.ResponseWriter, r *http.Request) {
	f := s.batch.file(r.PathValue("id"))
	if f == nil {
		writeError(w, 404, "invalid_request_error", "sim: no such file")
		return
	}
	writeJSON(w, fileView(f))
}

func (s *Server) fileContent(w http.ResponseWriter, r *http.Request) {
	f := s.batch.file(r.PathValue("id"))
	if f == nil {
		writeError(w, 404, "invalid_request_error", "sim: no such file")
		return
	}
	w.Header().Set("Content-Type", "application/jsonl")
	_, _ = w.Write(f.Data)
}

// view is the batch as OpenAI shows it; b.mu is held.
func (b *simBatch) view() map[string]any {
	v := map[string]any{"id": b.ID, "object": "batch", "endpoint": b.Endpoint, "input_file_id": b.InputFile,
		"completion_window": "24h", "status": b.Status, "created_at": b.Created, "metadata": b.Metadata,
		"output_file_id": nil, "error_file_id": nil, "errors": nil,
		"request_counts": map[string]int{"total": b.Total, "completed": b.Done - b.Failed, "failed": b.Failed}}
	if b.Output != "" {
		v["output_file_id"] = b.Output
	}
	if b.Errs != "" {
		v["error_file_id"] = b.Errs
	}
	return v
}

func metaInt(m map[string]string, k string) int {
	n, _ := strconv.Atoi(m[k])
	return max(n, 0)
}

func (s *Server) createBatch(w http.ResponseWriter, r *http.Request) {
	var req struct {
		InputFileID string            `json:"input_file_id"`
		Endpoint    string            `json:"endpoint"`
		Window      string            `json:"completion_window"`
		Metadata    map[string]string `json:"metadata"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil {
		writeError(w, 400, "invalid_request_error", "sim: invalid JSON body: "+err.Error())
		return
	}
	if req.Endpoint != "/v1/chat/completions" && req.Endpoint != "/v1/completions" && req.Endpoint != "/v1/embeddings" {
		writeError(w, 400, "invalid_request_error", "sim: unsupported endpoint "+req.Endpoint)
		return
	}
	f := s.batch.file(req.InputFileID)
	if f == nil {
		writeError(w, 404, "invalid_request_error", "sim: no such file "+req.InputFileID)
		return
	}
	lines := bytes.Split(bytes.TrimRight(f.Data, "\n"), []byte("\n"))
	if len(lines) > maxBatchLines {
		writeError(w, 400, "invalid_request_error", "sim: too many lines")
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &simBatch{ID: simID("batch_sim"), Endpoint: req.Endpoint, InputFile: f.ID, Status: "in_progress",
		Created: time.Now().Unix(), Metadata: req.Metadata, Total: len(lines), pollErrors: metaInt(req.Metadata, "sim_poll_errors"),
		cancel: cancel}
	a := s.batch
	a.mu.Lock()
	if len(a.order) >= maxBatches { // forget the oldest ended batch, or refuse
		for i, id := range a.order {
			if ob := a.batches[id]; ob != nil && !ob.ended.IsZero() {
				delete(a.batches, id)
				a.order = append(a.order[:i:i], a.order[i+1:]...)
				break
			}
		}
	}
	if len(a.order) >= maxBatches {
		a.mu.Unlock()
		cancel()
		writeError(w, 429, "rate_limit_exceeded", "sim: too many batches in flight")
		return
	}
	a.batches[b.ID] = b
	a.order = append(a.order, b.ID)
	a.mu.Unlock()
	go s.runBatch(ctx, b, lines)
	b.mu.Lock()
	v := b.view()
	b.mu.Unlock()
	writeJSON(w, v)
}

// runBatch runs a batch's lines through the simulator and ends it.
func (s *Server) runBatch(ctx context.Context, b *simBatch, lines [][]byte) {
	started := time.Now()
	results := make([][]byte, len(lines))
	failed := make([]bool, len(lines))
	drop := metaInt(b.Metadata, "sim_drop")
	next := make(chan int)
	var wg sync.WaitGroup
	for range batchParallel {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				// A line started runs to its end, cancelled or not.
				results[i], failed[i] = s.runBatchLine(context.Background(), b.Endpoint, lines[i])
				b.mu.Lock()
				b.Done++
				if failed[i] {
					b.Failed++
				}
				b.mu.Unlock()
			}
		}()
	}
feed:
	for i := range lines {
		if i >= len(lines)-drop {
			break
		}
		select {
		case next <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if d := time.Duration(metaInt(b.Metadata, "sim_delay_ms")) * time.Millisecond; time.Since(started) < d {
		select {
		case <-time.After(d - time.Since(started)):
		case <-ctx.Done():
		}
	}
	var out, errs bytes.Buffer
	copies := 1
	if b.Metadata["sim_duplicate"] == "1" {
		copies = 2
	}
	for range copies {
		for i, res := range results {
			if res == nil {
				continue
			}
			dst := &out
			if failed[i] {
				dst = &errs
			}
			dst.Write(res)
			dst.WriteByte('\n')
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if out.Len() > 0 {
		f := &batchFile{ID: simID("file-sim"), Purpose: "batch_output", Name: b.ID + "_output.jsonl", Created: time.Now().Unix(), Data: out.Bytes()}
		s.batch.addFile(f)
		b.Output = f.ID
	}
	if errs.Len() > 0 {
		f := &batchFile{ID: simID("file-sim"), Purpose: "batch_output", Name: b.ID + "_error.jsonl", Created: time.Now().Unix(), Data: errs.Bytes()}
		s.batch.addFile(f)
		b.Errs = f.ID
	}
	if b.Status == "cancelling" || ctx.Err() != nil {
		b.Status = "cancelled"
	} else {
		b.Status = "completed"
	}
	b.ended = time.Now()
}

// runBatchLine runs one input line; it returns its result line and whether
// it goes to the error file.
func (s *Server) runBatchLine(ctx context.Context, endpoint string, line []byte) ([]byte, bool) {
	var in struct {
		CustomID string          `json:"custom_id"`
		Method   string          `json:"method"`
		URL      string          `json:"url"`
		Body     json.RawMessage `json:"body"`
	}
	id := simID("batch_req_sim")
	if err := json.Unmarshal(line, &in); err != nil || in.URL != endpoint || len(in.Body) == 0 {
		b, _ := json.Marshal(map[string]any{"id": id, "custom_id": in.CustomID, "response": nil,
			"error": map[string]any{"code": "invalid_request", "message": "sim: the line is not a request to " + endpoint}})
		return b, true
	}
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, in.URL, bytes.NewReader(in.Body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	s.mux.ServeHTTP(rec, req)
	body := bytes.TrimSpace(rec.Body.Bytes())
	if !json.Valid(body) {
		body, _ = json.Marshal(map[string]any{"error": map[string]any{"message": "sim: the line's answer was cut", "type": "server_error"}})
	}
	b, _ := json.Marshal(map[string]any{"id": id, "custom_id": in.CustomID, "error": nil,
		"response": map[string]any{"status_code": rec.Code, "request_id": id, "body": json.RawMessage(body)}})
	return b, rec.Code != http.StatusOK
}

func (a *batchAPI) get(id string) *simBatch {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.batches[id]
}

func (s *Server) getBatch(w http.ResponseWriter, r *http.Request) {
	b := s.batch.get(r.PathValue("id"))
	if b == nil {
		writeError(w, 404, "invalid_request_error", "sim: no such batch")
		return
	}
	b.mu.Lock()
	if b.pollErrors > 0 {
		b.pollErrors--
		b.mu.Unlock()
		writeError(w, 500, "server_error", "sim: simulated failure of a batch retrieve")
		return
	}
	v := b.view()
	b.mu.Unlock()
	writeJSON(w, v)
}

func (s *Server) listBatches(w http.ResponseWriter, r *http.Request) {
	a := s.batch
	a.mu.Lock()
	ids := append([]string(nil), a.order...)
	a.mu.Unlock()
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 100 {
		limit = 20
	}
	after := r.URL.Query().Get("after")
	data := []map[string]any{}
	skipping := after != ""
	more := false
	for i := len(ids) - 1; i >= 0; i-- { // newest first
		if skipping {
			skipping = ids[i] != after
			continue
		}
		if len(data) == limit {
			more = true
			break
		}
		b := a.get(ids[i])
		if b == nil {
			continue
		}
		b.mu.Lock()
		data = append(data, b.view())
		b.mu.Unlock()
	}
	writeJSON(w, map[string]any{"object": "list", "data": data, "has_more": more})
}

func (s *Server) cancelBatch(w http.ResponseWriter, r *http.Request) {
	b := s.batch.get(r.PathValue("id"))
	if b == nil {
		writeError(w, 404, "invalid_request_error", "sim: no such batch")
		return
	}
	b.mu.Lock()
	if b.Status == "in_progress" {
		b.Status = "cancelling"
		b.cancel()
	}
	v := b.view()
	b.mu.Unlock()
	writeJSON(w, v)
}
