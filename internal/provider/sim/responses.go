package sim

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// The simulator serves OpenAI's Responses API (POST /v1/responses), stream
// and not, with the same words, pace, usage arithmetic and "sim" control
// field as its chat completions. It keeps no state: a request with
// previous_response_id is refused (the gateway replays conversations
// itself), as is background. When tool_choice forces a function (or is
// "required") the answer is one call of it (or of the first tool) with
// arguments {"query":"weather"}.

type responsesRequest struct {
	Model              string            `json:"model"`
	Instructions       string            `json:"instructions"`
	Input              json.RawMessage   `json:"input"`
	Stream             bool              `json:"stream"`
	MaxOutputTokens    int               `json:"max_output_tokens"`
	PreviousResponseID string            `json:"previous_response_id"`
	Background         bool              `json:"background"`
	Tools              []json.RawMessage `json:"tools"`
	ToolChoice         json.RawMessage   `json:"tool_choice"`
	Sim                *Control          `json:"sim"`
}

type responsesItem struct {
	Type      string          `json:"type"`
	Role      string          `json:"role"`
	Content   json.RawMessage `json:"content"`
	Arguments string          `json:"arguments"`
	Output    json.RawMessage `json:"output"`
}

// responsesPrompt counts one token per word and three per input item.
func responsesPrompt(req *responsesRequest) int {
	n := len(strings.Fields(req.Instructions))
	var s string
	if json.Unmarshal(req.Input, &s) == nil {
		return n + 3 + len(strings.Fields(s))
	}
	var items []responsesItem
	_ = json.Unmarshal(req.Input, &items)
	for _, it := range items {
		n += 3 + countWords(it.Content) + countWords(it.Output) + len(strings.Fields(it.Arguments))
	}
	return n
}

// forcedTool is the function a request forces, if any.
func forcedTool(req *responsesRequest) string {
	if len(req.ToolChoice) == 0 || len(req.Tools) == 0 {
		return ""
	}
	var first struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(req.Tools[0], &first)
	var s string
	if json.Unmarshal(req.ToolChoice, &s) == nil {
		if s == "required" {
			return first.Name
		}
		return ""
	}
	var o struct {
		Type, Name string
	}
	if json.Unmarshal(req.ToolChoice, &o) == nil && o.Type == "function" {
		return o.Name
	}
	return ""
}

func (s *Server) responses(w http.ResponseWriter, r *http.Request) {
	var req responsesRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opt.MaxBody)).Decode(&req); err != nil {
		writeError(w, 400, "invalid_request_error", "sim: invalid JSON body: "+err.Error())
		return
	}
	if !control(w, r, req.Sim, func(st int, msg string) { writeError(w, st, errorType(st), msg) }) {
		return
	}
	if !s.known(req.Model, s.opt.ChatModels) {
		writeError(w, 404, "invalid_request_error", "sim: the model `"+req.Model+"` does not exist")
		return
	}
	if req.PreviousResponseID != "" || req.Background {
		writeError(w, 400, "invalid_request_error", "sim: previous_response_id and background are not served: the simulator keeps no state")
		return
	}
	p := s.plan(req.Sim, responsesPrompt(&req), req.MaxOutputTokens)
	p.tool = forcedTool(&req)
	now := time.Now()
	id := "resp_sim" + strconv.FormatInt(now.UnixNano(), 36)
	msgID, fcID := "msg_sim"+strconv.FormatInt(now.UnixNano(), 36), "fc_sim"+strconv.FormatInt(now.UnixNano(), 36)
	status, incomplete := "completed", "null"
	if req.MaxOutputTokens > 0 && p.out >= req.MaxOutputTokens && p.tool == "" {
		status, incomplete = "incomplete", `{"reason":"max_output_tokens"}`
	}
	object := func(st, output string, withUsage bool) string {
		b := `{"id":"` + id + `","object":"response","created_at":` + strconv.FormatInt(now.Unix(), 10) +
			`,"status":"` + st + `","error":null,"incomplete_details":`
		if st == "incomplete" {
			b += incomplete
		} else {
			b += "null"
		}
		b += `,"model":` + strconv.Quote(req.Model) + `,"output":[` + output + `],"usage":`
		if withUsage && !p.c.NoUsage {
			b += `{"input_tokens":` + strconv.Itoa(p.prompt) + `,"input_tokens_details":{"cached_tokens":` + strconv.Itoa(p.cached) +
				`},"output_tokens":` + strconv.Itoa(p.out) + `,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":` +
				strconv.Itoa(p.prompt+p.out) + `}`
		} else {
			b += "null"
		}
		return b + `}`
	}
	itemStatus := "completed"
	if status == "incomplete" {
		itemStatus = "incomplete"
	}
	message := func(text string) string {
		return `{"type":"message","id":"` + msgID + `","status":"` + itemStatus + `","role":"assistant","content":[{"type":"output_text","text":` +
			strconv.Quote(text) + `,"annotations":[]}]}`
	}
	call := `{"type":"function_call","id":"` + fcID + `","status":"completed","call_id":"call_sim1","name":` + strconv.Quote(p.tool) +
		`,"arguments":` + strconv.Quote(simArgs) + `}`
	if !req.Stream {
		if !sleep(r, p.ttft+time.Duration(max(p.out-1, 0))*p.tpot) {
			return
		}
		out := message(p.text())
		if p.tool != "" {
			out = call
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(object(status, out, true)))
		return
	}
	flush := startSSE(w)
	seq := 0
	ev := func(name, data string) {
		// data ends with '}': the sequence number goes before it.
		_, _ = w.Write([]byte("event: " + name + "\ndata: " + data[:len(data)-1] + `,"sequence_number":` + strconv.Itoa(seq) + "}\n\n"))
		seq++
	}
	if !sleep(r, p.ttft) {
		return
	}
	ev("response.created", `{"type":"response.created","response":`+object("in_progress", "", false)+`}`)
	ev("response.in_progress", `{"type":"response.in_progress","response":`+object("in_progress", "", false)+`}`)
	var out string
	if p.tool != "" {
		ev("response.output_item.added", `{"type":"response.output_item.added","output_index":0,"item":{"type":"function_call","id":"`+fcID+
			`","status":"in_progress","call_id":"call_sim1","name":`+strconv.Quote(p.tool)+`,"arguments":""}}`)
		half := len(simArgs) / 2
		for _, frag := range []string{simArgs[:half], simArgs[half:]} {
			ev("response.function_call_arguments.delta", `{"type":"response.function_call_arguments.delta","item_id":"`+fcID+
				`","output_index":0,"delta":`+strconv.Quote(frag)+`}`)
		}
		ev("response.function_call_arguments.done", `{"type":"response.function_call_arguments.done","item_id":"`+fcID+
			`","output_index":0,"arguments":`+strconv.Quote(simArgs)+`}`)
		out = call
	} else {
		ev("response.output_item.added", `{"type":"response.output_item.added","output_index":0,"item":{"type":"message","id":"`+msgID+
			`","status":"in_progress","role":"assistant","content":[]}}`)
		ev("response.content_part.added", `{"type":"response.content_part.added","item_id":"`+msgID+
			`","output_index":0,"content_index":0,"part":{"type":"output_text","text":"","annotations":[]}}`)
		flush()
		if !p.streamWords(w, r, flush, func(word string) {
			ev("response.output_text.delta", `{"type":"response.output_text.delta","item_id":"`+msgID+
				`","output_index":0,"content_index":0,"delta":`+strconv.Quote(word)+`,"logprobs":[]}`)
		}) {
			return
		}
		text := p.text()
		ev("response.output_text.done", `{"type":"response.output_text.done","item_id":"`+msgID+
			`","output_index":0,"content_index":0,"text":`+strconv.Quote(text)+`,"logprobs":[]}`)
		ev("response.content_part.done", `{"type":"response.content_part.done","item_id":"`+msgID+
			`","output_index":0,"content_index":0,"part":{"type":"output_text","text":`+strconv.Quote(text)+`,"annotations":[]}}`)
		out = message(text)
	}
	ev("response.output_item.done", `{"type":"response.output_item.done","output_index":0,"item":`+out+`}`)
	if !p.c.NoDone {
		ev("response."+status, `{"type":"response.`+status+`","response":`+object(status, out, true)+`}`)
	}
	flush()
}

// errorType is OpenAI's error type for a simulated failure's status.
func errorType(status int) string {
	switch {
	case status == 429:
		return "rate_limit_exceeded"
	case status < 500:
		return "invalid_request_error"
	}
	return "server_error"
}

// streamWords emits the answer's words at the plan's pace, each flushed,
// cutting the connection where the plan says; false means the client left.
func (p plan) streamWords(w http.ResponseWriter, r *http.Request, flush func(), emit func(word string)) bool {
	for i := 0; i < p.out; i++ {
		if p.cutAfter > 0 && i >= p.cutAfter {
			cut(w)
		}
		if i > 0 && !sleep(r, p.tpot) {
			return false
		}
		emit(p.word(i))
		flush()
	}
	return true
}
