package responsesapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/conversation"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
	"baimo/internal/provider/sim"
	"baimo/internal/responsesapi"
	"baimo/internal/store/sqlite"
	"baimo/internal/usage"
)

// upstream is a simulator behind a recorder of the bodies it received.
type upstream struct {
	mu     sync.Mutex
	bodies []string
	srv    *httptest.Server
}

func newUpstream(t *testing.T, opt sim.Options) *upstream {
	u := &upstream{}
	h := sim.New(opt)
	u.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.bodies = append(u.bodies, r.URL.Path+" "+string(b))
		u.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(b))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(u.srv.Close)
	return u
}

func (u *upstream) seen() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.bodies...)
}

type env struct {
	url     string
	secret  string // tenant acme
	other   string // tenant globex
	db      *sqlite.DB
	bill    *billing.Biller
	ups     map[string]*upstream
	svc     *responsesapi.Service
	gateway *gateway.Gateway
}

// newEnv is a gateway on SQLite with the Responses service, in front of
// simulators: an Anthropic channel "anth" and an OpenAI channel "oai" both
// serving model "m" (sim-chat), an Anthropic channel serving "only-anth",
// and a native Responses channel "native" serving "r".
func newEnv(t *testing.T) *env {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "b.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	opt := sim.DefaultOptions()
	opt.TTFT, opt.TPOT, opt.OutputTokens = 0, 0, 4
	e := &env{db: db, ups: map[string]*upstream{}}
	chans := []config.Channel{
		{Name: "anth", Kind: "anthropic", Models: config.ModelMap{"m": "sim-chat", "only-anth": "sim-chat"}},
		{Name: "oai", Kind: "openai", Models: config.ModelMap{"m": "sim-chat"}},
		{Name: "native", Kind: "responses", Models: config.ModelMap{"r": "sim-chat"}},
	}
	var gchans []*gateway.Channel
	for i := range chans {
		u := newUpstream(t, opt)
		e.ups[chans[i].Name] = u
		chans[i].BaseURL = u.srv.URL + "/v1"
		gchans = append(gchans, gateway.NewChannel(chans[i]))
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e.bill = billing.New(billing.Options{Records: db, Log: log})
	lim := config.Default().Limits
	gw, err := gateway.New(gateway.Options{Channels: gchans, Keys: db, Billing: e.bill, Log: log, Limits: lim})
	if err != nil {
		t.Fatal(err)
	}
	e.gateway = gw
	for i, tenant := range []string{"acme", "globex"} {
		secret, k, _ := keys.Generate()
		k.ID, k.TenantID, k.CreatedAt = "key_"+tenant, tenant, time.Now()
		if err := db.CreateKey(ctx, k); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			e.secret = secret
		} else {
			e.other = secret
		}
	}
	e.svc = responsesapi.New(responsesapi.Options{Gateway: gw, Store: db, Log: log, MaxBody: lim.MaxBodyBytes,
		StaleAfter: time.Hour, CancelPoll: 20 * time.Millisecond})
	srv := httptest.NewServer((&httpapi.Server{GW: gw, Store: db, Log: log, Responses: e.svc}).Handler())
	t.Cleanup(func() {
		srv.Close()
		_ = gw.Drain(context.Background())
		_ = e.svc.Drain(context.Background())
		_ = e.bill.Close(context.Background())
	})
	e.url = srv.URL
	return e
}

func (e *env) do(t *testing.T, method, path, secret, body string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

type object struct {
	ID                 string          `json:"id"`
	Object             string          `json:"object"`
	Status             string          `json:"status"`
	PreviousResponseID *string         `json:"previous_response_id"`
	Store              bool            `json:"store"`
	Background         bool            `json:"background"`
	Instructions       *string         `json:"instructions"`
	Metadata           json.RawMessage `json:"metadata"`
	Output             []struct {
		Type    string `json:"type"`
		Content []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
	Usage *struct {
		InputTokens  int64 `json:"input_tokens"`
		OutputTokens int64 `json:"output_tokens"`
	} `json:"usage"`
	Error *struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func parse(t *testing.T, body string) object {
	t.Helper()
	var o object
	if err := json.Unmarshal([]byte(body), &o); err != nil {
		t.Fatalf("not a response object: %v\n%s", err, body)
	}
	return o
}

// record waits for the usage record of a request id.
func (e *env) record(t *testing.T, id string) usage.Record {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := e.db.ListRecords(context.Background(), usage.Filter{RequestID: id})
		if err != nil {
			t.Fatal(err)
		}
		if len(p.Records) == 1 {
			return p.Records[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no usage record for %s", id)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestConversationOnAnthropic: a stored turn on an Anthropic channel is
// continued with previous_response_id: the upstream gets the whole
// conversation (the gateway replays it; the client sent only the new
// turn), the record bills that replayed input, the follow-up reaches the
// same channel, and the response shows what the client sent.
func TestConversationOnAnthropic(t *testing.T) {
	e := newEnv(t)
	st, body, h := e.do(t, "POST", "/v1/responses", e.secret,
		`{"model":"only-anth","instructions":"Be brief.","input":"My name is Ada.","metadata":{"k":"v"}}`)
	if st != 200 {
		t.Fatalf("turn 1: %d %s", st, body)
	}
	one := parse(t, body)
	if !strings.HasPrefix(one.ID, "resp_") || one.Status != "completed" || !one.Store || one.Instructions == nil ||
		*one.Instructions != "Be brief." || string(one.Metadata) != `{"k":"v"}` || one.PreviousResponseID != nil {
		t.Fatalf("turn 1 object: %s", body)
	}
	rec1 := e.record(t, h.Get("X-Request-Id"))
	st, body, h = e.do(t, "POST", "/v1/responses", e.secret,
		`{"model":"only-anth","previous_response_id":"`+one.ID+`","input":[{"role":"user","content":"What is my name?"}]}`)
	if st != 200 {
		t.Fatalf("turn 2: %d %s", st, body)
	}
	two := parse(t, body)
	if two.PreviousResponseID == nil || *two.PreviousResponseID != one.ID || two.ID == one.ID || two.Instructions != nil {
		t.Errorf("turn 2 object: %s", body)
	}
	got := e.ups["anth"].seen()
	if len(got) != 2 || !strings.HasPrefix(got[1], "/v1/messages ") {
		t.Fatalf("upstream requests: %v", got)
	}
	for _, want := range []string{"My name is Ada.", "the quick brown fox", "What is my name?"} {
		if !strings.Contains(got[1], want) {
			t.Errorf("the replayed conversation lacks %q: %s", want, got[1])
		}
	}
	if strings.Contains(got[1], "Be brief.") {
		t.Errorf("instructions are not carried over to a follow-up: %s", got[1])
	}
	rec2 := e.record(t, h.Get("X-Request-Id"))
	if rec2.Endpoint != "responses" || rec2.Channel != "anth" || rec2.Usage.Source != usage.SourceVendor ||
		rec2.Usage.Input <= rec1.Usage.Input+rec1.Usage.Output || two.Usage == nil || two.Usage.InputTokens != rec2.Usage.Input {
		t.Errorf("turn 2 billed %+v (turn 1 %+v), client saw %+v", rec2.Usage, rec1.Usage, two.Usage)
	}
	// GET returns what the client got; input_items lists the turn's own.
	st, body, _ = e.do(t, "GET", "/v1/responses/"+two.ID, e.secret, "")
	if st != 200 || parse(t, body).ID != two.ID || len(parse(t, body).Output) == 0 {
		t.Errorf("GET: %d %s", st, body)
	}
	st, body, _ = e.do(t, "GET", "/v1/responses/"+two.ID+"/input_items", e.secret, "")
	var items struct {
		Object  string `json:"object"`
		Data    []map[string]any
		FirstID string `json:"first_id"`
		HasMore bool   `json:"has_more"`
	}
	if err := json.Unmarshal([]byte(body), &items); st != 200 || err != nil || items.Object != "list" || len(items.Data) != 1 ||
		items.Data[0]["type"] != "message" || items.FirstID == "" || items.Data[0]["id"] != items.FirstID {
		t.Errorf("input_items: %d %s", st, body)
	}
	_, again, _ := e.do(t, "GET", "/v1/responses/"+two.ID+"/input_items", e.secret, "")
	if again != body {
		t.Errorf("input item ids change between listings:\n%s\n%s", body, again)
	}
	// Another tenant sees none of it.
	for _, p := range []string{"/v1/responses/" + one.ID, "/v1/responses/" + one.ID + "/input_items"} {
		if st, body, _ := e.do(t, "GET", p, e.other, ""); st != 404 || !strings.Contains(body, "not found") {
			t.Errorf("other tenant GET %s: %d %s", p, st, body)
		}
	}
	if st, body, _ := e.do(t, "POST", "/v1/responses", e.other, `{"model":"only-anth","previous_response_id":"`+one.ID+`","input":"hi"}`); st != 404 ||
		!strings.Contains(body, "previous_response_id") {
		t.Errorf("other tenant follow-up: %d %s", st, body)
	}
}

// TestFollowUpPinned: a follow-up reaches the channel and key that served
// its predecessor however routing would spread the model, and one that
// channel cannot serve is a 400 naming previous_response_id.
func TestFollowUpPinned(t *testing.T) {
	e := newEnv(t)
	_, body, _ := e.do(t, "POST", "/v1/responses", e.secret, `{"model":"m","input":"hello"}`)
	first := parse(t, body)
	var firstCh string
	for name, u := range e.ups {
		if len(u.seen()) == 1 {
			firstCh = name
		}
	}
	prev := first.ID
	for i := 0; i < 8; i++ {
		st, body, _ := e.do(t, "POST", "/v1/responses", e.secret, `{"model":"m","previous_response_id":"`+prev+`","input":"more"}`)
		if st != 200 {
			t.Fatalf("follow-up %d: %d %s", i, st, body)
		}
		prev = parse(t, body).ID
	}
	for name, u := range e.ups {
		n := len(u.seen())
		if (name == firstCh) != (n == 9) || (name != firstCh && n != 0) {
			t.Errorf("channel %s got %d requests; the conversation started on %s", name, n, firstCh)
		}
	}
	st, body, _ := e.do(t, "POST", "/v1/responses", e.secret, `{"model":"r","previous_response_id":"`+first.ID+`","input":"switch"}`)
	if st != 400 || !strings.Contains(body, `"param":"previous_response_id"`) || !strings.Contains(body, "upstream account") {
		t.Errorf("a follow-up the pinned account cannot serve: %d %s", st, body)
	}
	st, body, _ = e.do(t, "POST", "/v1/responses", e.secret, `{"model":"m","previous_response_id":"resp_nope","input":"x"}`)
	if st != 404 || !strings.Contains(body, "Previous response with id 'resp_nope' not found.") {
		t.Errorf("unknown previous: %d %s", st, body)
	}
}

// TestNativePassthrough: a native Responses channel gets the client's body
// with the conversation replayed, no previous_response_id or background,
// and store false; the client sees its own settings.
func TestNativePassthrough(t *testing.T) {
	e := newEnv(t)
	_, body, _ := e.do(t, "POST", "/v1/responses", e.secret, `{"model":"r","input":"one"}`)
	one := parse(t, body)
	st, body, _ := e.do(t, "POST", "/v1/responses", e.secret, `{"model":"r","previous_response_id":"`+one.ID+`","input":"two","stream":true}`)
	if st != 200 {
		t.Fatalf("%d %s", st, body)
	}
	got := e.ups["native"].seen()
	if len(got) != 2 || !strings.HasPrefix(got[1], "/v1/responses ") || strings.Contains(got[1], "previous_response_id") ||
		!strings.Contains(got[1], `"store":false`) || !strings.Contains(got[1], `"one"`) || !strings.Contains(got[1], "the quick brown") {
		t.Fatalf("native upstream got %v", got)
	}
	if !strings.Contains(body, "event: response.completed") || !strings.Contains(body, `"previous_response_id":"`+one.ID+`"`) ||
		!strings.Contains(body, `"store":true`) || strings.Contains(body, "resp_sim") {
		t.Errorf("the client's stream does not show its own settings and id:\n%s", body)
	}
	// The streamed answer was stored as the client saw it.
	final := body[strings.LastIndex(body, "data: ")+6:]
	var ev struct {
		Response object `json:"response"`
	}
	if err := json.Unmarshal([]byte(strings.TrimSpace(final)), &ev); err != nil {
		t.Fatal(err)
	}
	st, stored, _ := e.do(t, "GET", "/v1/responses/"+ev.Response.ID, e.secret, "")
	if st != 200 || parse(t, stored).Status != "completed" || parse(t, stored).ID != ev.Response.ID {
		t.Errorf("GET streamed: %d %s", st, stored)
	}
	// store: false keeps nothing.
	_, body, _ = e.do(t, "POST", "/v1/responses", e.secret, `{"model":"r","input":"x","store":false}`)
	if o := parse(t, body); o.Store {
		t.Errorf("store false shown as %v", o.Store)
	} else if st, _, _ := e.do(t, "GET", "/v1/responses/"+o.ID, e.secret, ""); st != 404 {
		t.Errorf("a response with store false was kept: %d", st)
	}
}

// poll GETs a response until it is finished.
func (e *env) poll(t *testing.T, id string) object {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, body, _ := e.do(t, "GET", "/v1/responses/"+id, e.secret, "")
		if st != 200 {
			t.Fatalf("GET %s: %d %s", id, st, body)
		}
		o := parse(t, body)
		if o.Status != "queued" && o.Status != "in_progress" {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s still %s", id, o.Status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestBackground: a background response answers queued at once, runs
// detached, and is billed and retrievable when it ends; one cancelled
// mid-way stops, is billed for what it produced, and shows cancelled; a
// deleted one is gone; background without store is refused.
func TestBackground(t *testing.T) {
	e := newEnv(t)
	st, body, h := e.do(t, "POST", "/v1/responses", e.secret, `{"model":"m","input":"hello","background":true}`)
	o := parse(t, body)
	if st != 200 || o.Status != "queued" || !o.Background || len(o.Output) != 0 {
		t.Fatalf("background create: %d %s", st, body)
	}
	done := e.poll(t, o.ID)
	if done.Status != "completed" || len(done.Output) == 0 || done.Usage == nil || !done.Background {
		t.Errorf("background result: %+v", done)
	}
	rec := e.record(t, h.Get("X-Request-Id"))
	if rec.Status != 200 || !rec.Complete || rec.Usage.Output != done.Usage.OutputTokens {
		t.Errorf("background record %+v", rec)
	}

	// A slow one, cancelled.
	st, body, h = e.do(t, "POST", "/v1/responses", e.secret,
		`{"model":"r","input":"hello","background":true,"sim":{"output_tokens":500,"tpot_ms":20}}`)
	slow := parse(t, body)
	if st != 200 {
		t.Fatalf("%d %s", st, body)
	}
	time.Sleep(100 * time.Millisecond)
	st, body, _ = e.do(t, "POST", "/v1/responses/"+slow.ID+"/cancel", e.secret, "")
	if st != 200 || parse(t, body).Status != "cancelled" {
		t.Fatalf("cancel: %d %s", st, body)
	}
	if got := e.poll(t, slow.ID); got.Status != "cancelled" {
		t.Errorf("after cancel: %+v", got)
	}
	rec = e.record(t, h.Get("X-Request-Id"))
	if rec.Status != 499 || rec.Complete || rec.Channel == "" {
		t.Errorf("cancelled record %+v", rec)
	}
	if st, body, _ := e.do(t, "POST", "/v1/responses/"+slow.ID+"/cancel", e.secret, ""); st != 200 || parse(t, body).Status != "cancelled" {
		t.Errorf("cancel again: %d %s", st, body)
	}

	// Not background: not cancellable. Deleted: gone.
	_, body, _ = e.do(t, "POST", "/v1/responses", e.secret, `{"model":"m","input":"x"}`)
	fg := parse(t, body)
	if st, body, _ := e.do(t, "POST", "/v1/responses/"+fg.ID+"/cancel", e.secret, ""); st != 400 {
		t.Errorf("cancel a foreground response: %d %s", st, body)
	}
	if st, body, _ := e.do(t, "DELETE", "/v1/responses/"+fg.ID, e.secret, ""); st != 200 || !strings.Contains(body, `"deleted":true`) {
		t.Errorf("delete: %d %s", st, body)
	}
	if st, _, _ := e.do(t, "GET", "/v1/responses/"+fg.ID, e.secret, ""); st != 404 {
		t.Errorf("GET after delete: %d", st)
	}
	if st, body, _ := e.do(t, "POST", "/v1/responses", e.secret, `{"model":"m","input":"x","background":true,"store":false}`); st != 400 ||
		!strings.Contains(body, `"param":"background"`) {
		t.Errorf("background without store: %d %s", st, body)
	}
	// Refused at admission: the client gets the refusal, nothing is kept.
	if st, body, _ := e.do(t, "POST", "/v1/responses", e.secret, `{"model":"nope","input":"x","background":true}`); st != 404 {
		t.Errorf("background for an unknown model: %d %s", st, body)
	}
}

// TestBackgroundStream: a streaming client of a background response gets
// the stream; the response is stored.
func TestBackgroundStream(t *testing.T) {
	e := newEnv(t)
	st, body, _ := e.do(t, "POST", "/v1/responses", e.secret, `{"model":"m","input":"hello","background":true,"stream":true}`)
	if st != 200 || !strings.Contains(body, "event: response.completed") || !strings.Contains(body, `"background":true`) {
		t.Fatalf("%d %s", st, body)
	}
	i := strings.Index(body, `"id":"resp_`)
	id := body[i+6 : i+6+len("resp_")+48]
	if got := e.poll(t, id); got.Status != "completed" {
		t.Errorf("stored %+v", got)
	}
}

// TestCancelFromAnotherNode: a cancel made through another node reaches
// the node running the response through the store.
func TestCancelFromAnotherNode(t *testing.T) {
	e := newEnv(t)
	other := responsesapi.New(responsesapi.Options{Gateway: e.gateway, Store: e.db, MaxBody: 8 << 20, StaleAfter: time.Hour})
	mux := http.NewServeMux()
	other.Mount(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	_, body, _ := e.do(t, "POST", "/v1/responses", e.secret, `{"model":"r","input":"hello","background":true,"sim":{"output_tokens":500,"tpot_ms":20}}`)
	id := parse(t, body).ID
	time.Sleep(50 * time.Millisecond)
	req, _ := http.NewRequest("POST", srv.URL+"/v1/responses/"+id+"/cancel", nil)
	req.Header.Set("Authorization", "Bearer "+e.secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	start := time.Now()
	if got := e.poll(t, id); got.Status != "cancelled" {
		t.Errorf("after a cancel on another node: %+v", got)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("the cancel took %s to reach the running node", time.Since(start))
	}
}

// TestInterruptedBackground: a background response whose node stopped
// (still in progress past StaleAfter, run nowhere here) reads as failed.
func TestInterruptedBackground(t *testing.T) {
	e := newEnv(t)
	old := time.Now().Add(-2 * time.Hour)
	rec := conversation.Response{ID: "resp_lost", TenantID: "acme", KeyID: "key_acme", Model: "m", Status: conversation.InProgress,
		Background: true, Input: []byte(`[]`), Object: []byte(`{"id":"resp_lost","object":"response","status":"in_progress","output":[]}`),
		CreatedAt: old, UpdatedAt: old}
	if err := e.db.PutResponse(context.Background(), &rec); err != nil {
		t.Fatal(err)
	}
	_, body, _ := e.do(t, "GET", "/v1/responses/resp_lost", e.secret, "")
	if o := parse(t, body); o.Status != "failed" || o.Error == nil || o.Error.Code != "interrupted" {
		t.Errorf("interrupted: %s", body)
	}
	if got, _ := e.db.Response(context.Background(), "resp_lost"); got.Status != conversation.Failed {
		t.Errorf("stored status %s", got.Status)
	}
}
