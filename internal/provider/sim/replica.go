package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"baimo/internal/engine"
	"baimo/internal/schedule"
)

// ReplicaOptions configure a simulated inference replica.
type ReplicaOptions struct {
	// Engine is the step model the replica runs (engine.H100Llama31_8B by
	// default).
	Engine engine.Config
	// Models are the model names it serves (default "sim-chat").
	Models []string
	// OutputTokens is the answer length when a request sets no max_tokens
	// (default 128).
	OutputTokens int
	// Speed divides every step's duration: 1 is the modelled GPU's real
	// time, 10 runs ten times faster (default 1).
	Speed   float64
	MaxBody int64
}

// Replica is an OpenAI-compatible inference server whose timing comes from
// a continuous-batching step model (internal/engine) driven in real time:
// requests join the batch at the next step, every step takes the model's
// step time, and each stream gets its tokens when the step that made them
// ends. It exposes vLLM's metrics on GET /metrics, so a gateway can scrape
// it as it would scrape vLLM. Prompt tokens are counted as the simulator
// counts them (a token per word, three per message); the prefix cache keys
// on those tokens.
type Replica struct {
	opt ReplicaOptions
	mux *http.ServeMux

	mu      sync.Mutex
	eng     *engine.Engine
	wake    chan struct{} // a request arrived for an idle engine
	nextID  uint64
	success atomic.Int64
	started time.Time
}

// NewReplica returns a replica; Run drives its engine.
func NewReplica(opt ReplicaOptions) (*Replica, error) {
	if opt.Engine.MaxNumSeqs == 0 {
		opt.Engine = engine.H100Llama31_8B
	}
	if len(opt.Models) == 0 {
		opt.Models = []string{"sim-chat"}
	}
	if opt.OutputTokens <= 0 {
		opt.OutputTokens = 128
	}
	if opt.Speed <= 0 {
		opt.Speed = 1
	}
	if opt.MaxBody <= 0 {
		opt.MaxBody = 8 << 20
	}
	eng, err := engine.New(opt.Engine)
	if err != nil {
		return nil, err
	}
	r := &Replica{opt: opt, mux: http.NewServeMux(), eng: eng, wake: make(chan struct{}, 1), started: time.Now()}
	r.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, q *http.Request) { r.generate(w, q, true) })
	r.mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, q *http.Request) { r.generate(w, q, false) })
	r.mux.HandleFunc("GET /v1/models", r.models)
	r.mux.HandleFunc("GET /metrics", r.metrics)
	r.mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return r, nil
}

// ServeHTTP serves the API.
func (r *Replica) ServeHTTP(w http.ResponseWriter, q *http.Request) { r.mux.ServeHTTP(w, q) }

// stream is one request's progress, shared by the engine loop and its
// handler.
type stream struct {
	seq    *engine.Seq
	tokens atomic.Int32 // tokens delivered so far
	done   atomic.Bool
	notify chan struct{} // capacity 1: "look again"
}

func (s *stream) poke() {
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

// Run drives the engine until ctx ends: each step is decided, waited out
// (scaled by Speed) and then delivered. Steps are anchored to the previous
// step's end, not to when the loop woke, so a late wake-up does not slow
// the modelled GPU.
func (r *Replica) Run(ctx context.Context) {
	var end time.Time
	type delivery struct {
		s     *stream
		n     int
		final bool
	}
	var out []delivery
	for {
		r.mu.Lock()
		idle := r.eng.Idle()
		var res engine.StepResult
		if !idle {
			res = r.eng.Step()
			out = out[:0]
			for _, ev := range res.Events {
				st := ev.Seq.Req.Tag.(*stream)
				out = append(out, delivery{s: st, n: ev.Index, final: ev.Kind == engine.Finished})
			}
		}
		r.mu.Unlock()
		if idle {
			select {
			case <-ctx.Done():
				return
			case <-r.wake:
				end = time.Time{}
				continue
			}
		}
		now := time.Now()
		if end.IsZero() || end.Before(now.Add(-50*time.Millisecond)) {
			end = now // idle in between, or too far behind to catch up
		}
		end = end.Add(time.Duration(float64(res.Duration) / r.opt.Speed))
		if d := time.Until(end); d > 0 {
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
		for _, d := range out {
			if d.final {
				d.s.done.Store(true)
				r.success.Add(1)
			} else {
				d.s.tokens.Store(int32(d.n))
			}
			d.s.poke()
		}
	}
}

// add queues a request with the engine and wakes the loop.
func (r *Replica) add(prompt []uint32, promptTokens, out, priority int, model string) (*stream, error) {
	st := &stream{notify: make(chan struct{}, 1)}
	req := &engine.Request{PromptTokens: promptTokens, OutputTokens: out, Priority: priority, Tag: st,
		BlockHashes: schedule.AppendTokenBlocks(nil, schedule.ModelSeed(model), prompt)}
	r.mu.Lock()
	r.nextID++
	req.ID = r.nextID
	seq, err := r.eng.Add(req)
	r.mu.Unlock()
	if err != nil {
		return nil, err
	}
	st.seq = seq
	select {
	case r.wake <- struct{}{}:
	default:
	}
	return st, nil
}

func (r *Replica) abort(st *stream) {
	r.mu.Lock()
	r.eng.Abort(st.seq)
	r.mu.Unlock()
}

// replicaRequest adds vLLM's priority extension to the simulator's request.
type replicaRequest struct {
	request
	Priority int `json:"priority"`
}

// promptIDs turns a request's text into token ids the way the simulator
// counts tokens: three framing tokens per message (its role and two
// separators), then a token per word.
func promptIDs(req *request) []uint32 {
	var ids []uint32
	word := func(s string) uint32 {
		h := fnv.New32a()
		h.Write([]byte(s))
		return h.Sum32()
	}
	addText := func(raw json.RawMessage) {
		for _, t := range texts(raw) {
			for _, f := range strings.Fields(t) {
				ids = append(ids, word(f))
			}
		}
	}
	for _, m := range req.Messages {
		ids = append(ids, word("<|"+m.Role+"|>"), 1, 2)
		addText(m.Content)
	}
	addText(req.Prompt)
	if len(ids) == 0 {
		ids = append(ids, 0)
	}
	return ids
}

// texts lists the text parts of a content value: a string, an array of
// parts, or (for completions) an array of strings.
func texts(raw json.RawMessage) []string {
	if len(raw) == 0 {
		return nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}
	}
	var parts []struct {
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) == nil {
		out := make([]string, 0, len(parts))
		for _, p := range parts {
			out = append(out, p.Text)
		}
		return out
	}
	var list []string
	_ = json.Unmarshal(raw, &list)
	return list
}

func (r *Replica) serves(model string) bool {
	for _, m := range r.opt.Models {
		if m == model {
			return true
		}
	}
	return false
}

func (r *Replica) generate(w http.ResponseWriter, q *http.Request, chat bool) {
	var req replicaRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, q.Body, r.opt.MaxBody)).Decode(&req); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "sim replica: invalid JSON body: "+err.Error())
		return
	}
	if !r.serves(req.Model) {
		writeError(w, http.StatusNotFound, "invalid_request_error", "sim replica: the model `"+req.Model+"` does not exist")
		return
	}
	out := r.opt.OutputTokens
	if mt := max(req.MaxTokens, req.MaxCompletion); mt > 0 {
		out = mt
	}
	ids := promptIDs(&req.request)
	st, err := r.add(ids, len(ids), out, req.Priority, req.Model)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "sim replica: "+err.Error())
		return
	}
	ctx := q.Context()
	id := "cmpl-" + strconv.FormatUint(st.seq.Req.ID, 36)
	enc := chunkEncoder{id: id, model: req.Model, chat: chat, created: time.Now().Unix()}
	if !req.Stream {
		for !st.done.Load() {
			select {
			case <-ctx.Done():
				r.abort(st)
				return
			case <-st.notify:
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(enc.whole(out, len(ids), st.seq.CachedTokens()))
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fl, _ := w.(http.Flusher)
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	sent := 0
	var buf []byte
	for {
		select {
		case <-ctx.Done():
			r.abort(st)
			return
		case <-st.notify:
		}
		done := st.done.Load()
		n := int(st.tokens.Load())
		if done {
			n = out
		}
		buf = buf[:0]
		for ; sent < n; sent++ {
			buf = enc.token(buf, sent)
		}
		if done {
			buf = enc.finish(buf, includeUsage, out, len(ids), st.seq.CachedTokens())
		}
		if len(buf) > 0 {
			if _, err := w.Write(buf); err != nil {
				r.abort(st)
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if done {
			return
		}
	}
}

// chunkEncoder writes one answer in OpenAI's shapes.
type chunkEncoder struct {
	id, model string
	chat      bool
	created   int64
}

func (e *chunkEncoder) head(b []byte) []byte {
	obj := "text_completion"
	if e.chat {
		obj = "chat.completion.chunk"
	}
	b = append(b, `data: {"id":"`+e.id+`","object":"`+obj+`","created":`...)
	b = strconv.AppendInt(b, e.created, 10)
	return append(b, `,"model":"`+e.model+`","choices":[`...)
}

func (e *chunkEncoder) token(b []byte, i int) []byte {
	w := words[i%len(words)]
	if i > 0 {
		w = " " + w
	}
	b = e.head(b)
	if e.chat {
		b = append(b, `{"index":0,"delta":{`...)
		if i == 0 {
			b = append(b, `"role":"assistant",`...)
		}
		b = append(b, `"content":`...)
		b = strconv.AppendQuote(b, w)
		return append(b, "},\"finish_reason\":null}]}\n\n"...)
	}
	b = append(b, `{"index":0,"text":`...)
	b = strconv.AppendQuote(b, w)
	return append(b, ",\"logprobs\":null,\"finish_reason\":null}]}\n\n"...)
}

func (e *chunkEncoder) usage(b []byte, out, prompt, cached int) []byte {
	b = fmt.Appendf(b, `{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d`, prompt, out, prompt+out)
	if cached > 0 {
		b = fmt.Appendf(b, `,"prompt_tokens_details":{"cached_tokens":%d}`, cached)
	}
	return append(b, '}')
}

func (e *chunkEncoder) finish(b []byte, includeUsage bool, out, prompt, cached int) []byte {
	b = e.head(b)
	if e.chat {
		b = append(b, `{"index":0,"delta":{},"finish_reason":"length"}]}`+"\n\n"...)
	} else {
		b = append(b, `{"index":0,"text":"","logprobs":null,"finish_reason":"length"}]}`+"\n\n"...)
	}
	if includeUsage {
		b = e.head(b)
		b = append(b, `],"usage":`...)
		b = e.usage(b, out, prompt, cached)
		b = append(b, "}\n\n"...)
	}
	return append(b, "data: [DONE]\n\n"...)
}

func (e *chunkEncoder) whole(out, prompt, cached int) []byte {
	var text strings.Builder
	for i := range out {
		if i > 0 {
			text.WriteByte(' ')
		}
		text.WriteString(words[i%len(words)])
	}
	obj := "text_completion"
	if e.chat {
		obj = "chat.completion"
	}
	b := fmt.Appendf(nil, `{"id":%q,"object":%q,"created":%d,"model":%q,"choices":[{"index":0,`, e.id, obj, e.created, e.model)
	if e.chat {
		b = fmt.Appendf(b, `"message":{"role":"assistant","content":%q,"refusal":null}`, text.String())
	} else {
		b = fmt.Appendf(b, `"text":%q`, text.String())
	}
	b = append(b, `,"logprobs":null,"finish_reason":"length"}],"usage":`...)
	b = e.usage(b, out, prompt, cached)
	return append(b, '}')
}

func (r *Replica) models(w http.ResponseWriter, _ *http.Request) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
		MaxLen  int    `json:"max_model_len"`
	}
	var data []model
	for _, m := range r.opt.Models {
		data = append(data, model{ID: m, Object: "model", Created: r.started.Unix(), OwnedBy: "baimo-sim",
			MaxLen: r.opt.Engine.NumBlocks * r.opt.Engine.BlockSize})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
}

// Stats returns the engine's gauges and counters.
func (r *Replica) Stats() engine.Stats {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.eng.Stats()
}

// metrics writes vLLM's metric names in the Prometheus text format.
func (r *Replica) metrics(w http.ResponseWriter, _ *http.Request) {
	st := r.Stats()
	var b strings.Builder
	for _, m := range r.opt.Models {
		l := `{model_name="` + m + `"}`
		fmt.Fprintf(&b, "# HELP vllm:num_requests_running Number of requests in model execution batches.\n# TYPE vllm:num_requests_running gauge\nvllm:num_requests_running%s %d\n", l, st.Running)
		fmt.Fprintf(&b, "# HELP vllm:num_requests_waiting Number of requests waiting to be processed.\n# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting%s %d\n", l, st.Waiting)
		fmt.Fprintf(&b, "# HELP vllm:kv_cache_usage_perc KV-cache usage. 1 means 100 percent usage.\n# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc%s %g\n", l, st.KVUsage())
		fmt.Fprintf(&b, "# HELP vllm:gpu_cache_usage_perc GPU KV-cache usage (the older name).\n# TYPE vllm:gpu_cache_usage_perc gauge\nvllm:gpu_cache_usage_perc%s %g\n", l, st.KVUsage())
		fmt.Fprintf(&b, "# HELP vllm:prefix_cache_queries_total Prefix cache queries, in tokens.\n# TYPE vllm:prefix_cache_queries_total counter\nvllm:prefix_cache_queries_total%s %d\n", l, st.PrefixQueries)
		fmt.Fprintf(&b, "# HELP vllm:prefix_cache_hits_total Prefix cache hits, in tokens.\n# TYPE vllm:prefix_cache_hits_total counter\nvllm:prefix_cache_hits_total%s %d\n", l, st.PrefixHits)
		fmt.Fprintf(&b, "# HELP vllm:num_preemptions_total Cumulative number of preemptions.\n# TYPE vllm:num_preemptions_total counter\nvllm:num_preemptions_total%s %d\n", l, st.Preemptions)
		fmt.Fprintf(&b, "# HELP vllm:prompt_tokens_total Number of prefill tokens processed.\n# TYPE vllm:prompt_tokens_total counter\nvllm:prompt_tokens_total%s %d\n", l, st.PromptTokens)
		fmt.Fprintf(&b, "# HELP vllm:generation_tokens_total Number of generation tokens processed.\n# TYPE vllm:generation_tokens_total counter\nvllm:generation_tokens_total%s %d\n", l, st.GenerationTokens)
		fmt.Fprintf(&b, "# HELP vllm:request_success_total Count of successfully processed requests.\n# TYPE vllm:request_success_total counter\nvllm:request_success_total%s %d\n", l, r.success.Load())
	}
	fmt.Fprintf(&b, "# HELP vllm:cache_config_info Information of the LLMEngine CacheConfig.\n# TYPE vllm:cache_config_info gauge\nvllm:cache_config_info{block_size=\"%d\",num_gpu_blocks=\"%d\"} 1\n", r.opt.Engine.BlockSize, r.opt.Engine.NumBlocks)
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = w.Write([]byte(b.String()))
}
