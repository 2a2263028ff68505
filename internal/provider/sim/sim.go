// Package sim is a simulated OpenAI-compatible upstream. It serves chat,
// completions and embeddings for demo models, streams words at a set pace,
// reports usage like a real vendor, and fails on request, so the gateway
// answers with no vendor keys and tests can script an upstream's faults.
//
// A request may carry an extra field "sim" that the gateway passes through
// untouched:
//
//	"sim": {"status": 500, "cut_after": 3, "ttft_ms": 0, "tpot_ms": 0,
//	        "output_tokens": 20, "stall": true, "no_done": true,
//	        "no_usage": true, "retry_after": 2, "usage_in_last_chunk": true}
package sim

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Options sets the simulator's defaults.
type Options struct {
	TTFT         time.Duration // time to first token
	TPOT         time.Duration // time per output token after the first
	OutputTokens int           // tokens generated when the request does not say
	ChatModels   []string
	EmbedModels  []string
	// MediaModels are served by the media endpoints (media.go).
	MediaModels MediaModels
	MaxBody     int64
}

// DefaultOptions returns a pace that looks like a real model in a demo.
func DefaultOptions() Options {
	return Options{
		TTFT: 200 * time.Millisecond, TPOT: 20 * time.Millisecond, OutputTokens: 16,
		ChatModels: []string{"sim-chat"}, EmbedModels: []string{"sim-embed"}, MaxBody: 8 << 20,
		MediaModels: MediaModels{Rerank: []string{"sim-rerank"}, Image: []string{"sim-image"}, Transcribe: []string{"sim-whisper"},
			Speech: []string{"sim-tts"}},
	}
}

// Control is the per-request "sim" field.
type Control struct {
	Status           int    `json:"status"`
	Message          string `json:"message"`
	CutAfter         int    `json:"cut_after"`
	TTFTms           *int   `json:"ttft_ms"`
	TPOTms           *int   `json:"tpot_ms"`
	OutputTokens     int    `json:"output_tokens"`
	Stall            bool   `json:"stall"`
	NoDone           bool   `json:"no_done"`
	NoUsage          bool   `json:"no_usage"`
	RetryAfter       int    `json:"retry_after"`
	UsageInLastChunk bool   `json:"usage_in_last_chunk"`
	CachedTokens     int    `json:"cached_tokens"`
	ReasoningTokens  int    `json:"reasoning_tokens"`
	// IgnoreMaxTokens makes the simulator misbehave as an upstream that
	// produces more than the request's max_tokens.
	IgnoreMaxTokens bool `json:"ignore_max_tokens"`
}

type message struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type request struct {
	Model         string          `json:"model"`
	Messages      []message       `json:"messages"`
	Prompt        json.RawMessage `json:"prompt"`
	Input         json.RawMessage `json:"input"`
	Stream        bool            `json:"stream"`
	Encoding      string          `json:"encoding_format"`
	MaxTokens     int             `json:"max_tokens"`
	MaxCompletion int             `json:"max_completion_tokens"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Sim *Control `json:"sim"`
}

// Server is the simulated upstream, an http.Handler.
type Server struct {
	opt   Options
	mux   *http.ServeMux
	batch *batchAPI // batches.go
}

// New returns a simulator with the given options.
func New(opt Options) *Server {
	if opt.OutputTokens <= 0 {
		opt.OutputTokens = 16
	}
	if opt.MaxBody <= 0 {
		opt.MaxBody = 8 << 20
	}
	s := &Server{opt: opt, mux: http.NewServeMux()}
	s.mux.HandleFunc("POST /v1/chat/completions", func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, true) })
	s.mux.HandleFunc("POST /v1/completions", func(w http.ResponseWriter, r *http.Request) { s.generate(w, r, false) })
	s.mux.HandleFunc("POST /v1/embeddings", s.embeddings)
	s.mux.HandleFunc("GET /v1/models", s.models)
	s.formatRoutes() // Anthropic and Gemini, in formats.go
	s.mediaRoutes()  // rerank, images, audio, in media.go
	s.batchRoutes()  // a fake vendor batch API, in batches.go
	return s
}

// ServeHTTP serves the OpenAI-compatible API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

func writeError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
	_, _ = w.Write(b)
}

func (s *Server) decode(w http.ResponseWriter, r *http.Request) (*request, bool) {
	var req request
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opt.MaxBody)).Decode(&req); err != nil {
		writeError(w, 400, "invalid_request_error", "sim: invalid JSON body: "+err.Error())
		return nil, false
	}
	if c := req.Sim; c != nil && c.Status != 0 {
		if c.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(c.RetryAfter))
		}
		msg := c.Message
		if msg == "" {
			msg = "sim: simulated failure " + strconv.Itoa(c.Status)
		}
		typ := "server_error"
		if c.Status == 429 {
			typ = "rate_limit_exceeded"
		} else if c.Status < 500 {
			typ = "invalid_request_error"
		}
		writeError(w, c.Status, typ, msg)
		return nil, false
	}
	if c := req.Sim; c != nil && c.Stall {
		<-r.Context().Done()
		return nil, false
	}
	return &req, true
}

func (s *Server) known(model string, list []string) bool {
	for _, m := range list {
		if m == model {
			return true
		}
	}
	return false
}

// countWords counts whitespace-separated words in the text parts of a raw
// content value (a string or an array of parts).
func countWords(raw json.RawMessage) int {
	if len(raw) == 0 {
		return 0
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return len(strings.Fields(s))
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if json.Unmarshal(raw, &parts) == nil {
		n := 0
		for _, p := range parts {
			n += len(strings.Fields(p.Text))
			if p.Type == "image_url" {
				n += 85
			}
		}
		return n
	}
	var list []string
	if json.Unmarshal(raw, &list) == nil {
		n := 0
		for _, s := range list {
			n += len(strings.Fields(s))
		}
		return n
	}
	return 1
}

// PromptTokens is the simulator's token count for a chat request: one token
// per word plus three per message for the chat framing.
func promptTokens(req *request) int {
	n := countWords(req.Prompt)
	for _, m := range req.Messages {
		n += 3 + countWords(m.Content)
	}
	if n == 0 {
		n = 1
	}
	return n
}

var words = strings.Fields("the quick brown fox jumps over the lazy dog while a hundred models answer every question in turn")

func (s *Server) pace(c *Control) (ttft, tpot time.Duration) {
	ttft, tpot = s.opt.TTFT, s.opt.TPOT
	if c != nil && c.TTFTms != nil {
		ttft = time.Duration(*c.TTFTms) * time.Millisecond
	}
	if c != nil && c.TPOTms != nil {
		tpot = time.Duration(*c.TPOTms) * time.Millisecond
	}
	return ttft, tpot
}

func sleep(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	}
}

func (s *Server) generate(w http.ResponseWriter, r *http.Request, chat bool) {
	req, ok := s.decode(w, r)
	if !ok {
		return
	}
	if !s.known(req.Model, s.opt.ChatModels) {
		writeError(w, 404, "invalid_request_error", "sim: the model `"+req.Model+"` does not exist")
		return
	}
	c := req.Sim
	if c == nil {
		c = &Control{}
	}
	out := s.opt.OutputTokens
	if c.OutputTokens > 0 {
		out = c.OutputTokens
	}
	if mt := max(req.MaxTokens, req.MaxCompletion); mt > 0 && mt < out && !c.IgnoreMaxTokens {
		out = mt
	}
	prompt := promptTokens(req)
	ttft, tpot := s.pace(c)
	id := "simcmpl-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	object := "chat.completion"
	if !chat {
		object = "text_completion"
	}
	if !req.Stream {
		if !sleep(r, ttft+time.Duration(max(out-1, 0))*tpot) {
			return
		}
		var text strings.Builder
		for i := 0; i < out; i++ {
			if i > 0 {
				text.WriteByte(' ')
			}
			text.WriteString(words[i%len(words)])
		}
		b := []byte(`{"id":"` + id + `","object":"` + object + `","created":` + strconv.FormatInt(time.Now().Unix(), 10) +
			`,"model":"` + req.Model + `","choices":[{"index":0,`)
		if chat {
			b = append(b, `"message":{"role":"assistant","content":`...)
			b = strconv.AppendQuote(b, text.String())
			b = append(b, `,"refusal":null},"logprobs":null,"finish_reason":"stop"}]`...)
		} else {
			b = append(b, `"text":`...)
			b = strconv.AppendQuote(b, text.String())
			b = append(b, `,"logprobs":null,"finish_reason":"stop"}]`...)
		}
		if !c.NoUsage {
			b = append(b, `,"usage":`...)
			b = appendUsage(b, prompt, out, c)
		}
		b = append(b, '}')
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	fl, _ := w.(http.Flusher)
	flush := func() {
		if fl != nil {
			fl.Flush()
		}
	}
	if chat {
		object += ".chunk" // a completions stream's events are text_completion too
	}
	head := `data: {"id":"` + id + `","object":"` + object + `","created":` + strconv.FormatInt(time.Now().Unix(), 10) +
		`,"model":"` + req.Model + `","choices":[`
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage && !c.NoUsage
	buf := make([]byte, 0, 512)
	if !sleep(r, ttft) {
		return
	}
	if chat {
		buf = append(append(buf[:0], head...), `{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`+"\n\n"...)
		_, _ = w.Write(buf)
	}
	for i := 0; i < out; i++ {
		if c.CutAfter > 0 && i >= c.CutAfter {
			flush()
			// Cut the connection mid-stream, as a broken upstream would.
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
				}
			}
			panic(http.ErrAbortHandler)
		}
		if i > 0 && !sleep(r, tpot) {
			return
		}
		word := words[i%len(words)]
		if i > 0 {
			word = " " + word
		}
		buf = append(buf[:0], head...)
		if chat {
			buf = append(buf, `{"index":0,"delta":{"content":`...)
			buf = strconv.AppendQuote(buf, word)
			buf = append(buf, `},"finish_reason":null}]}`+"\n\n"...)
		} else {
			buf = append(buf, `{"index":0,"text":`...)
			buf = strconv.AppendQuote(buf, word)
			buf = append(buf, `,"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
		}
		_, _ = w.Write(buf)
		flush()
	}
	buf = append(buf[:0], head...)
	if chat {
		buf = append(buf, `{"index":0,"delta":{},"finish_reason":"stop"}]`...)
	} else {
		buf = append(buf, `{"index":0,"text":"","logprobs":null,"finish_reason":"stop"}]`...)
	}
	if includeUsage && c.UsageInLastChunk {
		buf = append(buf, `,"usage":`...)
		buf = appendUsage(buf, prompt, out, c)
		includeUsage = false
	}
	buf = append(buf, "}\n\n"...)
	if includeUsage {
		buf = append(buf, head[:len(head)-1]...)
		buf = append(buf, `[],"usage":`...)
		buf = appendUsage(buf, prompt, out, c)
		buf = append(buf, "}\n\n"...)
	}
	if !c.NoDone {
		buf = append(buf, "data: [DONE]\n\n"...)
	}
	_, _ = w.Write(buf)
	flush()
}

func appendUsage(b []byte, prompt, out int, c *Control) []byte {
	b = append(b, `{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt), 10)
	b = append(b, `,"completion_tokens":`...)
	b = strconv.AppendInt(b, int64(out), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(prompt+out), 10)
	if c.CachedTokens > 0 {
		b = append(b, `,"prompt_tokens_details":{"cached_tokens":`...)
		b = strconv.AppendInt(b, int64(min(c.CachedTokens, prompt)), 10)
		b = append(b, '}')
	}
	if c.ReasoningTokens > 0 {
		b = append(b, `,"completion_tokens_details":{"reasoning_tokens":`...)
		b = strconv.AppendInt(b, int64(min(c.ReasoningTokens, out)), 10)
		b = append(b, '}')
	}
	return append(b, '}')
}

func (s *Server) embeddings(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decode(w, r)
	if !ok {
		return
	}
	if !s.known(req.Model, s.opt.EmbedModels) {
		writeError(w, 404, "invalid_request_error", "sim: the model `"+req.Model+"` does not exist")
		return
	}
	var inputs []string
	var one string
	if json.Unmarshal(req.Input, &one) == nil {
		inputs = []string{one}
	} else if json.Unmarshal(req.Input, &inputs) != nil || len(inputs) == 0 {
		writeError(w, 400, "invalid_request_error", "sim: input must be a string or an array of strings")
		return
	}
	tokens := 0
	b := []byte(`{"object":"list","data":[`)
	for i, in := range inputs {
		tokens += max(len(strings.Fields(in)), 1)
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		h := uint32(2166136261)
		for j := 0; j < len(in); j++ {
			h = (h ^ uint32(in[j])) * 16777619
		}
		var vec [8]float32
		for d := range vec {
			h = h*1664525 + 1013904223
			vec[d] = float32(h%1000000) / 1e6
		}
		if req.Encoding == "base64" {
			// As OpenAI does: little-endian float32s, base64-encoded.
			raw := make([]byte, 0, 4*len(vec))
			for _, f := range vec {
				raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
			}
			b = append(b, `,"embedding":"`...)
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, `"}`...)
			continue
		}
		b = append(b, `,"embedding":[`...)
		for d, f := range vec {
			if d > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendFloat(b, float64(f), 'f', -1, 32)
		}
		b = append(b, "]}"...)
	}
	b = append(b, `],"model":"`+req.Model+`","usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	b = append(b, "}}"...)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func (s *Server) models(w http.ResponseWriter, _ *http.Request) {
	type model struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		OwnedBy string `json:"owned_by"`
	}
	var data []model
	for _, m := range append(append([]string{}, s.opt.ChatModels...), s.opt.EmbedModels...) {
		data = append(data, model{ID: m, Object: "model", Created: 1700000000, OwnedBy: "baimo-sim"})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"object": "list", "data": data})
}
