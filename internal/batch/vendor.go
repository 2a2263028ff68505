package batch

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"sort"
	"time"

	"baimo/internal/gateway"
	"baimo/internal/keys"
	"baimo/internal/provider"
	"baimo/internal/provider/ir"
	"baimo/internal/usage"
)

// Vendor batches. A batch in mode vendor (or auto) whose lines all name one
// model served by a channel with batch_api is passed to that vendor's own
// batch API (OpenAI-shaped /files and /batches): its input file is uploaded
// with each line's model renamed to the channel's, a vendor batch created
// (named in its metadata by this batch's id, so a run that died between
// creating it and recording it finds it instead of creating a second), and
// polled until it ends. Its results then become the lines' results the way
// a real-time line's do: each line's hold exchanged out of the reservation,
// its answer kept with a usage record built from the vendor's per-line
// usage, and settled by request id (at most once), rated at the batch rule
// of the price version in force when the vendor took the batch. A line the
// vendor gave no result costs nothing; a line the vendor answered twice is
// kept once. A cancel is passed on to the vendor, whose finished lines are
// still billed.

// vendorPoll is how often a vendor's batch is polled: five of the runner's
// polls, within 1 s and 30 s.
func (s *Service) vendorPoll() time.Duration {
	return min(max(5*s.opt.Poll, time.Second), 30*time.Second)
}

// maxVendorFile bounds a results file read from a vendor.
const maxVendorFile = 1 << 30

// vendorTimeout bounds one call to a vendor's batch API (an upload or a
// download may be large).
const vendorTimeout = 10 * time.Minute

// vendorMetaKey names, in a vendor batch's metadata, the batch it runs.
const vendorMetaKey = "baimo_batch"

// vendorChannel returns the channel that takes the batch on its vendor's
// batch API and the model of its lines, or nil when the batch runs in real
// time: its mode is not vendor or auto, it is not an OpenAI batch, its lines
// name several models, or no channel of theirs has a batch API.
func (j *job) vendorChannel() (*gateway.Channel, string, error) {
	d := &j.b.Doc
	// The vendor batch APIs spoken are OpenAI's: an OpenAI batch passes
	// through (but for the Responses API), an Anthropic one is translated
	// line by line, as the request path translates a request.
	openAI := j.target.Format == ir.FormatOpenAI && j.target.Endpoint != gateway.Responses
	if d.Vendor == nil && ((d.Mode != Vendor && d.Mode != Auto) || !(openAI || j.target.Endpoint.Conversation) || !j.anyBatchAPI()) {
		return nil, "", nil
	}
	model := ""
	for after := -1; ; {
		lines, err := j.s.opt.Store.Lines(j.ctx, j.b.ID, after, linePage)
		if err != nil {
			return nil, "", err
		}
		for _, l := range lines {
			if model != "" && l.Model != model {
				return nil, "", nil
			}
			model = l.Model
		}
		if len(lines) < linePage {
			break
		}
		after = lines[len(lines)-1].Index
	}
	if d.Vendor != nil { // passed to a vendor already: that one
		for _, ch := range j.s.opt.Gateway.Channels() {
			if ch.Name == d.Vendor.Channel {
				return ch, model, nil
			}
		}
		return nil, "", fmt.Errorf("the channel %s the batch was passed to is gone", d.Vendor.Channel)
	}
	var found []*gateway.Channel
	for _, ch := range j.s.opt.Gateway.Channels() {
		if ch.BatchAPI && ch.Models[model] != "" {
			found = append(found, ch)
		}
	}
	if len(found) == 0 {
		if d.Mode == Vendor {
			j.log.Warn("no channel of the batch's model has a batch API: its lines run in real time", "model", model)
		}
		return nil, "", nil
	}
	sort.SliceStable(found, func(a, b int) bool { return found[a].Priority < found[b].Priority })
	return found[0], model, nil
}

// anyBatchAPI reports whether some channel has a batch API: without one,
// the batch's lines need not be read to find their model.
func (j *job) anyBatchAPI() bool {
	for _, ch := range j.s.opt.Gateway.Channels() {
		if ch.BatchAPI {
			return true
		}
	}
	return false
}

// vendorBatch is the part of a vendor's batch object read here.
type vendorBatch struct {
	ID           string            `json:"id"`
	Status       string            `json:"status"`
	OutputFileID string            `json:"output_file_id"`
	ErrorFileID  string            `json:"error_file_id"`
	Metadata     map[string]string `json:"metadata"`
}

// ended reports whether the vendor's batch is over.
func (v vendorBatch) ended() bool {
	switch v.Status {
	case "completed", "failed", "expired", "cancelled":
		return true
	}
	return false
}

// startVendor runs the batch on the vendor's batch API, from where it
// stands, once its key is known usable.
func (j *job) startVendor(ch *gateway.Channel, model string) error {
	k, err := j.s.key(j.ctx, j.b.KeyID)
	if err != nil && !errors.Is(err, keys.ErrNotFound) {
		return err
	}
	if k == nil && j.b.Status == InProgress && (j.b.Doc.Vendor == nil || j.b.Doc.Vendor.BatchID == "") {
		j.log.Warn("the batch's API key is gone: the batch is cancelled")
		return j.cancelNow()
	}
	j.key = k
	return j.runVendor(ch, model)
}

// runVendor runs the batch on the vendor's batch API.
func (j *job) runVendor(ch *gateway.Channel, model string) error {
	s := j.s
	if _, err := s.opt.Store.Requeue(j.ctx, j.b.ID, j.b.Epoch); err != nil {
		return err
	}
	if err := j.settleKept(); err != nil {
		return err
	}
	if err := j.reserve(); err != nil {
		return err
	}
	d := &j.b.Doc
	if d.Vendor == nil || d.Vendor.BatchID == "" {
		if j.b.Status == Cancelling { // cancelled before the vendor had it
			return j.end(Cancelled)
		}
		if err := j.vendorSubmit(ch, model); err != nil {
			return err
		}
	}
	v := d.Vendor
	for {
		if err := j.ctx.Err(); err != nil {
			return err
		}
		if s.stopping.Load() {
			return nil // another run continues
		}
		now := s.opt.Clock.Now()
		if b, err := s.opt.Store.Batch(j.ctx, j.b.ID); err == nil && b.Status == Cancelling && j.b.Status != Cancelling {
			j.b.Status, j.b.CancelledAt = b.Status, b.CancelledAt
		}
		if !v.Cancelled && (j.b.Status == Cancelling || !now.Before(j.b.ExpiresAt)) {
			if _, err := j.vendorCall(ch, http.MethodPost, "/batches/"+v.BatchID+"/cancel", nil, ""); err != nil {
				j.log.Warn("the vendor's batch could not be cancelled; retrying", "vendor_batch", v.BatchID, "err", err)
			} else {
				v.Cancelled = true
				if err := j.saveDoc(); err != nil {
					return err
				}
			}
		}
		if !now.Before(j.b.ExpiresAt.Add(s.opt.Grace / 2)) {
			// The vendor has not ended the batch (nor answered) long past
			// its window: its lines expire, at no cost, before the
			// batch's reservation does.
			j.log.Error("the vendor's batch never ended; the batch expires", "vendor_batch", v.BatchID, "vendor_status", v.Status)
			return j.vendorCollect(ch, vendorBatch{ID: v.BatchID, Status: "expired"})
		}
		vb, err := j.vendorGet(ch, v.BatchID)
		if err != nil {
			j.log.Warn("poll the vendor's batch", "vendor_batch", v.BatchID, "err", err)
		} else {
			v.Status, v.PolledAt = vb.Status, now
			if vb.ended() {
				return j.vendorCollect(ch, vb)
			}
		}
		j.sleep(s.vendorPoll())
	}
}

// vendorSubmit uploads the batch's input file to the vendor and creates the
// vendor's batch, recording each step in the batch's doc.
func (j *job) vendorSubmit(ch *gateway.Channel, model string) error {
	d := &j.b.Doc
	if d.Vendor == nil {
		d.Vendor = &VendorState{Channel: ch.Name, Format: string(ir.FormatOpenAI)}
		d.Mode = Vendor
	}
	v := d.Vendor
	if v.FileID != "" { // a run that died after the upload may have created the batch
		id, err := j.vendorFind(ch)
		if err != nil {
			return err
		}
		if id != "" {
			v.BatchID, v.Submitted = id, j.s.opt.Clock.Now()
			return j.saveDoc()
		}
	}
	if v.FileID == "" {
		id, endpoint, err := j.vendorUpload(ch, ch.Models[model])
		if err != nil {
			return err
		}
		v.FileID, v.Endpoint = id, endpoint
		if err := j.saveDoc(); err != nil {
			return err
		}
	}
	meta := map[string]string{vendorMetaKey: j.b.ID}
	for k, val := range d.Metadata {
		if k != ModeKey && len(meta) < maxMetadata {
			meta[k] = val
		}
	}
	body, _ := json.Marshal(map[string]any{"input_file_id": v.FileID, "endpoint": v.Endpoint, "completion_window": "24h",
		"metadata": meta})
	var vb vendorBatch
	b, err := j.vendorCall(ch, http.MethodPost, "/batches", bytes.NewReader(body), "application/json")
	if err == nil {
		err = json.Unmarshal(b, &vb)
	}
	if err == nil && vb.ID == "" {
		err = errors.New("the vendor's batch has no id")
	}
	if err != nil {
		return fmt.Errorf("create the vendor's batch: %w", err)
	}
	v.BatchID, v.Status, v.Submitted = vb.ID, vb.Status, j.s.opt.Clock.Now()
	j.log.Info("batch passed to the vendor's batch API", "channel", ch.Name, "vendor_batch", vb.ID)
	return j.saveDoc()
}

// vendorFind looks for the vendor's batch of this batch among the vendor's
// latest batches.
func (j *job) vendorFind(ch *gateway.Channel) (string, error) {
	after := ""
	for range 10 {
		path := "/batches?limit=100"
		if after != "" {
			path += "&after=" + after
		}
		b, err := j.vendorCall(ch, http.MethodGet, path, nil, "")
		if err != nil {
			return "", fmt.Errorf("list the vendor's batches: %w", err)
		}
		var page struct {
			Data    []vendorBatch `json:"data"`
			HasMore bool          `json:"has_more"`
		}
		if err := json.Unmarshal(b, &page); err != nil {
			return "", fmt.Errorf("list the vendor's batches: %w", err)
		}
		for _, vb := range page.Data {
			if vb.Metadata[vendorMetaKey] == j.b.ID {
				return vb.ID, nil
			}
		}
		if !page.HasMore || len(page.Data) == 0 {
			return "", nil
		}
		after = page.Data[len(page.Data)-1].ID
	}
	return "", nil
}

// vendorUpload uploads the batch's lines, each translated for the vendor
// and naming the upstream model, as the vendor's input file, streamed; it
// returns the file's id and the endpoint its lines call.
func (j *job) vendorUpload(ch *gateway.Channel, upstream string) (string, string, error) {
	pr, pw := io.Pipe()
	mw := multipart.NewWriter(pw)
	var endpoint string
	go func() {
		var err error
		endpoint, err = j.writeVendorInput(mw, upstream)
		pw.CloseWithError(err)
	}()
	b, err := j.vendorCall(ch, http.MethodPost, "/files", pr, mw.FormDataContentType())
	pr.CloseWithError(err)
	if err != nil {
		return "", "", fmt.Errorf("upload the input file to the vendor: %w", err)
	}
	var f struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(b, &f); err != nil || f.ID == "" {
		return "", "", fmt.Errorf("upload the input file to the vendor: no file id in %.200s", b)
	}
	return f.ID, endpoint, nil
}

// vendorRequest translates a line's request body for the vendor: the
// translator that reads the vendor's answer to it, and the request.
func (j *job) vendorRequest(body []byte, upstream string) (provider.Translator, ir.Upstream, error) {
	tr, err := provider.NewTranslator(j.target.Format, ir.FormatOpenAI, j.s.opt.Clock)
	if err != nil {
		return nil, ir.Upstream{}, err
	}
	up, err := tr.Request(provider.Request{Body: body, Endpoint: j.target.Endpoint.Name, Model: upstream})
	return tr, up, err
}

// vendorPrefix is the path of the vendor's versioned API below its host,
// which a vendor batch's lines name ("/v1/chat/completions").
const vendorPrefix = "/v1"

// writeVendorInput writes the multipart form of the vendor's input file
// and returns the endpoint its lines call.
func (j *job) writeVendorInput(mw *multipart.Writer, upstream string) (string, error) {
	if err := mw.WriteField("purpose", PurposeBatch); err != nil {
		return "", err
	}
	fw, err := mw.CreateFormFile("file", j.b.ID+".jsonl")
	if err != nil {
		return "", err
	}
	w := bufio.NewWriterSize(fw, 64<<10)
	endpoint := ""
	for after := -1; ; {
		lines, err := j.s.opt.Store.Lines(j.ctx, j.b.ID, after, pageSize)
		if err != nil {
			return "", err
		}
		if len(lines) == 0 {
			break
		}
		bodies, err := j.bodies(lines)
		if err != nil {
			return "", err
		}
		for i, l := range lines {
			_, up, err := j.vendorRequest(bodies[i], upstream)
			if err != nil {
				return "", fmt.Errorf("line %d: %w", l.Index, err)
			}
			url := vendorPrefix + up.Path
			if endpoint == "" {
				endpoint = url
			}
			out, _ := json.Marshal(struct {
				CustomID string          `json:"custom_id"`
				Method   string          `json:"method"`
				URL      string          `json:"url"`
				Body     json.RawMessage `json:"body"`
			}{l.CustomID, http.MethodPost, url, up.Body})
			w.Write(out)
			w.WriteByte('\n')
		}
		after = lines[len(lines)-1].Index
	}
	if err := w.Flush(); err != nil {
		return "", err
	}
	return endpoint, mw.Close()
}

// vendorGet reads the vendor's batch.
func (j *job) vendorGet(ch *gateway.Channel, id string) (vendorBatch, error) {
	var vb vendorBatch
	b, err := j.vendorCall(ch, http.MethodGet, "/batches/"+id, nil, "")
	if err == nil {
		err = json.Unmarshal(b, &vb)
	}
	return vb, err
}

// vendorCall makes one call to the vendor's batch API and returns its
// answer's body (at most maxVendorFile); an answer that is not 2xx is an
// error.
func (j *job) vendorCall(ch *gateway.Channel, method, path string, body io.Reader, contentType string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(j.ctx, vendorTimeout)
	defer cancel()
	r, err := ch.VendorRequest(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	} else if body == nil {
		r.Header.Del("Content-Type")
	}
	resp, err := j.s.httpClient().Do(r)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxVendorFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if len(b) > maxVendorFile {
		return nil, fmt.Errorf("%s %s: the answer is over %d bytes", method, path, maxVendorFile)
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("%s %s: status %d: %.300s", method, path, resp.StatusCode, b)
	}
	return b, nil
}

func (s *Service) httpClient() *http.Client {
	if s.opt.HTTP != nil {
		return s.opt.HTTP
	}
	return http.DefaultClient
}

// vendorResult is one line's result as the vendor gave it.
type vendorResult struct {
	status int
	body   []byte
}

// vendorResults reads the vendor's output and error files: each line's
// result by custom_id, the first one when the vendor gave two.
func (j *job) vendorResults(ch *gateway.Channel, vb vendorBatch) (map[string]vendorResult, error) {
	out := map[string]vendorResult{}
	dup := 0
	for _, id := range []string{vb.OutputFileID, vb.ErrorFileID} {
		if id == "" {
			continue
		}
		b, err := j.vendorCall(ch, http.MethodGet, "/files/"+id+"/content", nil, "")
		if err != nil {
			return nil, fmt.Errorf("read the vendor's results: %w", err)
		}
		for len(b) > 0 {
			line := b
			if i := bytes.IndexByte(b, '\n'); i >= 0 {
				line, b = b[:i], b[i+1:]
			} else {
				b = nil
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			var l openAILine
			if err := json.Unmarshal(line, &l); err != nil || l.CustomID == "" {
				j.log.Warn("a line of the vendor's results is unreadable; skipped", "err", err)
				continue
			}
			if _, ok := out[l.CustomID]; ok {
				dup++
				continue
			}
			r := vendorResult{status: http.StatusInternalServerError}
			switch {
			case l.Response != nil:
				r.status, r.body = l.Response.StatusCode, l.Response.Body
			case l.Error != nil:
				r.body, _ = json.Marshal(map[string]any{"error": map[string]any{"message": "The vendor's batch API: " + l.Error.Message,
					"type": "server_error", "code": l.Error.Code, "param": nil}})
			}
			out[l.CustomID] = r
		}
	}
	if dup > 0 {
		j.log.Warn("the vendor gave some lines more than one result; each is kept once", "duplicates", dup)
	}
	return out, nil
}

// vendorCollect makes the vendor's results the lines' results, settles
// them, and ends the batch.
func (j *job) vendorCollect(ch *gateway.Channel, vb vendorBatch) error {
	s := j.s
	results, err := j.vendorResults(ch, vb)
	if err != nil {
		return err
	}
	v := j.b.Doc.Vendor
	final, rest := Completed, LineExpired
	switch {
	case j.b.Status == Cancelling:
		final, rest = Cancelled, LineCancelled
	case !s.opt.Clock.Now().Before(j.b.ExpiresAt) || vb.Status == "expired":
		final = Expired
	case vb.Status == "cancelled": // cancelled at the vendor: this batch is too
		if _, err := s.opt.Store.Cancel(j.ctx, j.b.ID, []Status{InProgress}, s.opt.Clock.Now()); err != nil && !errors.Is(err, ErrEnded) {
			return err
		}
		j.b.Status = Cancelling
		final, rest = Cancelled, LineCancelled
	case vb.Status == "failed":
		final = Failed
	}
	var missing []int
	for {
		lines, err := s.opt.Store.StartLines(j.ctx, j.b.ID, j.b.Epoch, pageSize)
		if err != nil {
			return err
		}
		if len(lines) == 0 {
			break
		}
		bodies, err := j.bodies(lines)
		if err != nil {
			return err
		}
		var with []Line
		for i, l := range lines {
			if r, ok := results[l.CustomID]; ok {
				if err := j.vendorLine(&l, bodies[i], ch, v, r); err != nil {
					return err
				}
				with = append(with, l)
			} else {
				missing = append(missing, l.Index)
			}
		}
		if len(with) == 0 {
			continue
		}
		j.exchange(with)
		kept, err := s.opt.Store.KeepResults(context.WithoutCancel(j.ctx), j.b.ID, j.b.Epoch, with)
		if err != nil {
			return err
		}
		for i := range kept {
			if !kept[i] {
				return ErrFenced
			}
			j.ended.Add(1)
			if with[i].Status >= 200 && with[i].Status < 300 {
				s.stats.succeeded.Add(1)
			} else {
				s.stats.errored.Add(1)
			}
			s.stats.costNanos.Add(with[i].Cost)
		}
	}
	if err := j.settleKept(); err != nil {
		return err
	}
	if len(missing) > 0 {
		if err := s.opt.Store.Retry(j.ctx, j.b.ID, j.b.Epoch, missing); err != nil {
			return err
		}
		if _, err := s.opt.Store.EndPending(j.ctx, j.b.ID, j.b.Epoch, rest); err != nil {
			return err
		}
		j.log.Warn("lines the vendor gave no result for cost nothing", "lines", len(missing), "state", rest)
	}
	return j.finish(final)
}

// vendorLine fills a line's result from the vendor's: the answer in the
// line's format, and a usage record of the vendor's usage, rated.
func (j *job) vendorLine(l *Line, body []byte, ch *gateway.Channel, v *VendorState, r vendorResult) error {
	now := j.s.opt.Clock.Now()
	rec := usage.Record{RequestID: RequestID(j.b.ID, l.CustomID), KeyID: j.b.KeyID, TenantID: j.b.TenantID,
		Endpoint: usage.BatchEndpoint(j.target.Endpoint.Name), Model: l.Model, Channel: ch.Name,
		UpstreamModel: ch.Models[l.Model], Status: r.status, Complete: true, Start: v.Submitted, Duration: now.Sub(v.Submitted)}
	status, answer := r.status, r.body
	if status >= 200 && status < 300 {
		tr, _, err := j.vendorRequest(body, rec.UpstreamModel)
		if err == nil {
			answer, rec.Usage, err = tr.Response(r.body)
		}
		if err != nil {
			j.log.Warn("the vendor's answer to a line is unreadable", "line", l.Index, "err", err)
			status = http.StatusBadGateway
			answer = nil
		} else if rec.Usage.Source == usage.SourceNone {
			j.log.Warn("the vendor's answer to a line has no usage", "line", l.Index)
		}
	}
	if status < 200 || status > 299 {
		aerr, _ := provider.UpstreamError(ir.FormatOpenAI, status, r.body, 0)
		status, answer = provider.ErrorBody(j.target.Format, aerr)
		rec.Status, rec.ErrorClass, rec.Usage = status, usage.ErrUpstream, usage.Usage{}
	}
	return j.fill(l, status, answer, rec)
}

// fill sets a line's result: its answer and its record, rated.
func (j *job) fill(l *Line, status int, body []byte, rec usage.Record) error {
	if rt := j.s.opt.Money.Rater(); rt != nil {
		if err := rt.RateRecord(&rec); err != nil {
			j.log.Warn("a line's cost is not known until it is settled", "line", l.Index, "err", err)
		}
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	l.Status, l.Body, l.Record, l.Cost, l.Input, l.Output = status, body, b, rec.CostNanos, rec.Usage.Input, rec.Usage.Output
	return nil
}
