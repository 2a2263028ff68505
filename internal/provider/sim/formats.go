package sim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The simulator also speaks Anthropic Messages (POST /v1/messages) and Gemini
// (POST /v1beta/models/{model}:generateContent and
// :streamGenerateContent?alt=sse), so it can stand in for an upstream of every
// channel kind. The words, the pace, the usage arithmetic (one prompt token
// per word plus three per message) and the "sim" control field are the same
// as in the OpenAI API. When a request forces a tool (Anthropic tool_choice
// any or tool, Gemini functionCallingConfig mode ANY) the answer is one call
// of that tool (or the first) with arguments {"query":"weather"}.

// formatRoutes registers the Anthropic, Gemini and Responses endpoints.
func (s *Server) formatRoutes() {
	s.mux.HandleFunc("POST /v1/responses", s.responses) // responses.go
	s.mux.HandleFunc("POST /v1/messages", s.anthropicMessages)
	s.mux.HandleFunc("POST /v1beta/models/{rest...}", s.gemini)
}

// simArgs are the arguments of every simulated tool call.
const simArgs = `{"query":"weather"}`

type anthropicRequest struct {
	Model     string          `json:"model"`
	System    json.RawMessage `json:"system"`
	Messages  []message       `json:"messages"`
	MaxTokens int             `json:"max_tokens"`
	Stream    bool            `json:"stream"`
	Tools     []struct {
		Name string `json:"name"`
	} `json:"tools"`
	ToolChoice *struct {
		Type string `json:"type"`
		Name string `json:"name"`
	} `json:"tool_choice"`
	Sim *Control `json:"sim"`
}

func anthropicError(w http.ResponseWriter, status int, msg string) {
	typ := "api_error"
	switch {
	case status == 429:
		typ = "rate_limit_error"
	case status == 404:
		typ = "not_found_error"
	case status == 529:
		typ = "overloaded_error"
	case status < 500:
		typ = "invalid_request_error"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	b, _ := json.Marshal(map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
	_, _ = w.Write(b)
}

// control applies a request's "sim" field before generation: a status to
// fail with, or a stall. It reports whether to go on.
func control(w http.ResponseWriter, r *http.Request, c *Control, fail func(int, string)) bool {
	if c == nil {
		return true
	}
	if c.Status != 0 {
		if c.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.Itoa(c.RetryAfter))
		}
		msg := c.Message
		if msg == "" {
			msg = "sim: simulated failure " + strconv.Itoa(c.Status)
		}
		fail(c.Status, msg)
		return false
	}
	if c.Stall {
		<-r.Context().Done()
		return false
	}
	return true
}

// plan is what one simulated answer will be.
type plan struct {
	prompt, out, cached int
	tool                string // the tool to call, if one is forced
	ttft, tpot          time.Duration
	cutAfter            int
	c                   *Control
}

func (s *Server) plan(c *Control, prompt, maxTokens int) plan {
	if c == nil {
		c = &Control{}
	}
	p := plan{prompt: max(prompt, 1), out: s.opt.OutputTokens, c: c, cutAfter: c.CutAfter}
	if c.OutputTokens > 0 {
		p.out = c.OutputTokens
	}
	if maxTokens > 0 && maxTokens < p.out {
		p.out = maxTokens
	}
	p.cached = min(c.CachedTokens, p.prompt)
	p.ttft, p.tpot = s.pace(c)
	return p
}

func (p plan) word(i int) string {
	w := words[i%len(words)]
	if i > 0 {
		w = " " + w
	}
	return w
}

func (p plan) text() string {
	var b strings.Builder
	for i := 0; i < p.out; i++ {
		b.WriteString(p.word(i))
	}
	return b.String()
}

// cut drops the connection, as a broken upstream would.
func cut(w http.ResponseWriter) {
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	if hj, ok := w.(http.Hijacker); ok {
		if conn, _, err := hj.Hijack(); err == nil {
			conn.Close()
		}
	}
	panic(http.ErrAbortHandler)
}

func startSSE(w http.ResponseWriter) func() {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(200)
	fl, _ := w.(http.Flusher)
	return func() {
		if fl != nil {
			fl.Flush()
		}
	}
}

func (s *Server) anthropicMessages(w http.ResponseWriter, r *http.Request) {
	var req anthropicRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opt.MaxBody)).Decode(&req); err != nil {
		anthropicError(w, 400, "sim: invalid JSON body: "+err.Error())
		return
	}
	if !control(w, r, req.Sim, func(st int, msg string) { anthropicError(w, st, msg) }) {
		return
	}
	if !s.known(req.Model, s.opt.ChatModels) {
		anthropicError(w, 404, "sim: model: "+req.Model)
		return
	}
	if req.MaxTokens <= 0 {
		anthropicError(w, 400, "max_tokens: Field required")
		return
	}
	prompt := countWords(req.System)
	for _, m := range req.Messages {
		prompt += 3 + countWords(m.Content)
	}
	p := s.plan(req.Sim, prompt, req.MaxTokens)
	if tc := req.ToolChoice; tc != nil && len(req.Tools) > 0 {
		switch tc.Type {
		case "tool":
			p.tool = tc.Name
		case "any":
			p.tool = req.Tools[0].Name
		}
	}
	id := "msg_sim" + strconv.FormatInt(time.Now().UnixNano(), 36)
	usage := func(out int, start bool) string {
		u := `{"input_tokens":` + strconv.Itoa(p.prompt-p.cached) + `,"cache_creation_input_tokens":0,"cache_read_input_tokens":` +
			strconv.Itoa(p.cached) + `,"output_tokens":` + strconv.Itoa(out) + `}`
		if !start && p.c.NoUsage {
			return `{"output_tokens":` + strconv.Itoa(out) + `}`
		}
		return u
	}
	stop := "end_turn"
	if p.tool != "" {
		stop = "tool_use"
	}
	if !req.Stream {
		if !sleep(r, p.ttft+time.Duration(max(p.out-1, 0))*p.tpot) {
			return
		}
		var content []byte
		if p.tool != "" {
			content = []byte(`{"type":"tool_use","id":"toolu_sim1","name":`)
			content = strconv.AppendQuote(content, p.tool)
			content = append(content, `,"input":`+simArgs+`}`...)
		} else {
			content = append([]byte(`{"type":"text","text":`), strconv.Quote(p.text())...)
			content = append(content, '}')
		}
		b := `{"id":"` + id + `","type":"message","role":"assistant","model":` + strconv.Quote(req.Model) +
			`,"content":[` + string(content) + `],"stop_reason":"` + stop + `","stop_sequence":null,"usage":` + usage(p.out, false) + `}`
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(b))
		return
	}
	flush := startSSE(w)
	ev := func(name, data string) {
		_, _ = w.Write([]byte("event: " + name + "\ndata: " + data + "\n\n"))
	}
	if !sleep(r, p.ttft) {
		return
	}
	ev("message_start", `{"type":"message_start","message":{"id":"`+id+`","type":"message","role":"assistant","model":`+strconv.Quote(req.Model)+
		`,"content":[],"stop_reason":null,"stop_sequence":null,"usage":`+usage(1, true)+`}}`)
	if p.tool != "" {
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"toolu_sim1","name":`+strconv.Quote(p.tool)+`,"input":{}}}`)
		half := len(simArgs) / 2
		for _, frag := range []string{simArgs[:half], simArgs[half:]} {
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"input_json_delta","partial_json":`+strconv.Quote(frag)+`}}`)
		}
	} else {
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`)
		ev("ping", `{"type": "ping"}`)
		flush()
		for i := 0; i < p.out; i++ {
			if p.cutAfter > 0 && i >= p.cutAfter {
				cut(w)
			}
			if i > 0 && !sleep(r, p.tpot) {
				return
			}
			ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":`+strconv.Quote(p.word(i))+`}}`)
			flush()
		}
	}
	ev("content_block_stop", `{"type":"content_block_stop","index":0}`)
	ev("message_delta", `{"type":"message_delta","delta":{"stop_reason":"`+stop+`","stop_sequence":null},"usage":`+usage(p.out, false)+`}`)
	if !p.c.NoDone {
		ev("message_stop", `{"type":"message_stop"}`)
	}
	flush()
}

type geminiPart struct {
	Text string `json:"text"`
}

type geminiContent struct {
	Role  string       `json:"role"`
	Parts []geminiPart `json:"parts"`
}

type geminiRequest struct {
	Contents          []geminiContent `json:"contents"`
	SystemInstruction *geminiContent  `json:"systemInstruction"`
	Tools             []struct {
		FunctionDeclarations []struct {
			Name string `json:"name"`
		} `json:"functionDeclarations"`
	} `json:"tools"`
	ToolConfig *struct {
		FunctionCallingConfig *struct {
			Mode                 string   `json:"mode"`
			AllowedFunctionNames []string `json:"allowedFunctionNames"`
		} `json:"functionCallingConfig"`
	} `json:"toolConfig"`
	GenerationConfig *struct {
		MaxOutputTokens int `json:"maxOutputTokens"`
	} `json:"generationConfig"`
	Sim *Control `json:"sim"`
}

func geminiError(w http.ResponseWriter, code int, msg string) {
	status := "INTERNAL"
	switch {
	case code == 429:
		status = "RESOURCE_EXHAUSTED"
	case code == 404:
		status = "NOT_FOUND"
	case code == 503:
		status = "UNAVAILABLE"
	case code < 500:
		status = "INVALID_ARGUMENT"
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	b, _ := json.Marshal(map[string]any{"error": map[string]any{"code": code, "message": msg, "status": status}})
	_, _ = w.Write(b)
}

func (s *Server) gemini(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	i := strings.LastIndexByte(rest, ':')
	if i <= 0 {
		geminiError(w, 404, "sim: unknown method")
		return
	}
	model, method := rest[:i], rest[i+1:]
	stream := false
	switch method {
	case "generateContent":
	case "streamGenerateContent":
		if r.URL.Query().Get("alt") != "sse" {
			geminiError(w, 400, "sim: streamGenerateContent is served with alt=sse only")
			return
		}
		stream = true
	default:
		geminiError(w, 404, "sim: unknown method "+method)
		return
	}
	var req geminiRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opt.MaxBody)).Decode(&req); err != nil {
		geminiError(w, 400, "sim: invalid JSON body: "+err.Error())
		return
	}
	if !control(w, r, req.Sim, func(st int, msg string) { geminiError(w, st, msg) }) {
		return
	}
	if !s.known(model, s.opt.ChatModels) {
		geminiError(w, 404, "sim: models/"+model+" is not found")
		return
	}
	prompt := 0
	if si := req.SystemInstruction; si != nil {
		for _, p := range si.Parts {
			prompt += len(strings.Fields(p.Text))
		}
	}
	for _, c := range req.Contents {
		prompt += 3
		for _, p := range c.Parts {
			prompt += len(strings.Fields(p.Text))
		}
	}
	maxOut := 0
	if gc := req.GenerationConfig; gc != nil {
		maxOut = gc.MaxOutputTokens
	}
	p := s.plan(req.Sim, prompt, maxOut)
	if tc := req.ToolConfig; tc != nil && tc.FunctionCallingConfig != nil && tc.FunctionCallingConfig.Mode == "ANY" {
		fc := tc.FunctionCallingConfig
		switch {
		case len(fc.AllowedFunctionNames) > 0:
			p.tool = fc.AllowedFunctionNames[0]
		case len(req.Tools) > 0 && len(req.Tools[0].FunctionDeclarations) > 0:
			p.tool = req.Tools[0].FunctionDeclarations[0].Name
		}
	}
	usage := func() string {
		u := `{"promptTokenCount":` + strconv.Itoa(p.prompt) + `,"candidatesTokenCount":` + strconv.Itoa(p.out) +
			`,"totalTokenCount":` + strconv.Itoa(p.prompt+p.out)
		if p.cached > 0 {
			u += `,"cachedContentTokenCount":` + strconv.Itoa(p.cached)
		}
		return u + `}`
	}
	id := strconv.FormatInt(time.Now().UnixNano(), 36)
	chunk := func(parts, finish string, withUsage bool) string {
		b := `{"candidates":[{"content":{"parts":[` + parts + `],"role":"model"}`
		if finish != "" {
			b += `,"finishReason":"` + finish + `"`
		}
		b += `,"index":0}]`
		if withUsage && !p.c.NoUsage {
			b += `,"usageMetadata":` + usage()
		}
		return b + `,"modelVersion":` + strconv.Quote(model) + `,"responseId":"` + id + `"}`
	}
	callPart := `{"functionCall":{"name":` + strconv.Quote(p.tool) + `,"args":` + simArgs + `}}`
	if !stream {
		if !sleep(r, p.ttft+time.Duration(max(p.out-1, 0))*p.tpot) {
			return
		}
		parts := `{"text":` + strconv.Quote(p.text()) + `}`
		if p.tool != "" {
			parts = callPart
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(chunk(parts, "STOP", true)))
		return
	}
	flush := startSSE(w)
	data := func(s string) { _, _ = w.Write([]byte("data: " + s + "\r\n\r\n")) }
	if !sleep(r, p.ttft) {
		return
	}
	if p.tool != "" {
		data(chunk(callPart, "STOP", true))
		flush()
		return
	}
	for i := 0; i < p.out; i++ {
		if p.cutAfter > 0 && i >= p.cutAfter {
			cut(w)
		}
		if i > 0 && !sleep(r, p.tpot) {
			return
		}
		if i == p.out-1 {
			if p.c.NoDone {
				data(chunk(`{"text":`+strconv.Quote(p.word(i))+`}`, "", false))
			} else {
				data(chunk(`{"text":`+strconv.Quote(p.word(i))+`}`, "STOP", true))
			}
		} else {
			data(chunk(`{"text":`+strconv.Quote(p.word(i))+`}`, "", false))
		}
		flush()
	}
}
