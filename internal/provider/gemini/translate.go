package gemini

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"baimo/internal/provider/ir"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

var params = map[string]bool{
	"contents": true, "systemInstruction": true, "tools": true, "toolConfig": true,
	"generationConfig": true, "safetySettings": true, "model": true,
}

var genParams = map[string]bool{
	"stopSequences": true, "responseMimeType": true, "responseSchema": true, "responseJsonSchema": true,
	"candidateCount": true, "maxOutputTokens": true, "temperature": true, "topP": true, "topK": true,
	"seed": true, "presencePenalty": true, "frequencyPenalty": true, "thinkingConfig": true,
}

// skipSignature is Google's documented placeholder thought signature for
// function calls whose history comes from another model.
const skipSignature = "skip_thought_signature_validator"

func decodeRequest(body []byte) (ir.Request, error) {
	if err := ir.CheckFields(body, params, "Gemini"); err != nil {
		return ir.Request{}, err
	}
	var in Request
	if err := json.Unmarshal(body, &in); err != nil {
		return ir.Request{}, ir.BadRequest(err, "invalid generateContent request")
	}
	var r ir.Request
	if in.SystemInstruction != nil {
		for _, p := range in.SystemInstruction.Parts {
			if p.Text == "" && (p.InlineData != nil || p.FileData != nil || p.FunctionCall != nil || p.FunctionResponse != nil) {
				return ir.Request{}, &ir.UnsupportedError{Feature: "non-text systemInstruction parts"}
			}
			r.System = append(r.System, p.Text)
		}
	}
	if g := in.GenerationConfig; g != nil {
		var raw struct {
			GenerationConfig json.RawMessage `json:"generationConfig"`
		}
		_ = json.Unmarshal(body, &raw)
		if err := ir.CheckFields(raw.GenerationConfig, genParams, "Gemini generationConfig"); err != nil {
			return ir.Request{}, err
		}
		if g.CandidateCount != nil && *g.CandidateCount != 1 {
			return ir.Request{}, &ir.UnsupportedError{Feature: "candidateCount other than 1"}
		}
		r.MaxTokens, r.Temperature, r.TopP, r.TopK = g.MaxOutputTokens, g.Temperature, g.TopP, g.TopK
		r.Stop, r.Seed, r.Presence, r.Frequency = g.StopSequences, g.Seed, g.PresencePenalty, g.FrequencyPenalty
		switch g.ResponseMimeType {
		case "", "text/plain":
			if len(g.ResponseSchema) > 0 || len(g.ResponseJSONSchema) > 0 {
				return ir.Request{}, ir.BadRequest(nil, "a response schema needs responseMimeType application/json")
			}
		case "application/json":
			r.Format = &ir.ResponseFormat{Kind: "json_object"}
			if s := g.ResponseJSONSchema; len(s) > 0 {
				r.Format = &ir.ResponseFormat{Kind: "json_schema", Schema: s}
			} else if s := g.ResponseSchema; len(s) > 0 {
				r.Format = &ir.ResponseFormat{Kind: "json_schema", Schema: s}
			}
		default:
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("responseMimeType %q", g.ResponseMimeType)}
		}
		if tc := g.ThinkingConfig; tc != nil {
			th := &ir.Thinking{Include: tc.IncludeThoughts}
			if tc.ThinkingBudget != nil {
				th.Budget = *tc.ThinkingBudget
				th.Disabled = th.Budget == 0
			}
			if lv := strings.ToLower(tc.ThinkingLevel); lv != "" {
				if _, ok := ir.BudgetForEffort(lv); !ok {
					return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("thinkingLevel %q", tc.ThinkingLevel)}
				}
				th.Effort = lv
			}
			r.Thinking = th
		}
	}
	if in.CachedContent != "" {
		return ir.Request{}, &ir.UnsupportedError{Feature: "cachedContent"}
	}
	for _, t := range in.Tools {
		if len(t.GoogleSearch) > 0 || len(t.CodeExecution) > 0 || len(t.URLContext) > 0 {
			return ir.Request{}, &ir.UnsupportedError{Feature: "Gemini built-in tools"}
		}
		for _, fd := range t.FunctionDeclarations {
			schema := fd.ParametersJSONSchema
			if len(schema) == 0 {
				schema = fd.Parameters
			}
			r.Tools = append(r.Tools, ir.Tool{Name: fd.Name, Description: fd.Description, Schema: schema})
		}
	}
	if tc := in.ToolConfig; tc != nil && tc.FunctionCallingConfig != nil {
		fc := tc.FunctionCallingConfig
		switch fc.Mode {
		case "", "AUTO", "MODE_UNSPECIFIED":
			r.ToolChoice = &ir.ToolChoice{Mode: ir.ToolAuto}
		case "NONE":
			r.ToolChoice = &ir.ToolChoice{Mode: ir.ToolNone}
		case "ANY":
			r.ToolChoice = &ir.ToolChoice{Mode: ir.ToolAny}
		default:
			return ir.Request{}, &ir.UnsupportedError{Feature: fmt.Sprintf("function calling mode %q", fc.Mode)}
		}
		switch n := len(fc.AllowedFunctionNames); {
		case n == 1 && fc.Mode == "ANY":
			r.ToolChoice = &ir.ToolChoice{Mode: ir.ToolName, Name: fc.AllowedFunctionNames[0]}
		case n > 0:
			return ir.Request{}, &ir.UnsupportedError{Feature: "allowedFunctionNames"}
		}
	}
	calls := 0
	var pending []ir.Part // calls awaiting a response, oldest first
	for i, c := range in.Contents {
		m := ir.Message{Role: ir.RoleUser}
		switch c.Role {
		case "", "user":
		case "model":
			m.Role = ir.RoleAssistant
		default:
			return ir.Request{}, ir.BadRequest(nil, "content %d: unknown role %q", i, c.Role)
		}
		for _, gp := range c.Parts {
			p, err := decodePart(gp)
			if err != nil {
				return ir.Request{}, fmt.Errorf("content %d: %w", i, err)
			}
			if (p.Kind == ir.PartText || p.Kind == ir.PartThinking) && p.Text == "" {
				continue // a part carrying only a thought signature
			}
			switch p.Kind {
			case ir.PartToolCall:
				if p.Id == "" {
					p.Id = fmt.Sprintf("call_%d", calls)
				}
				calls++
				pending = append(pending, p)
			case ir.PartToolResult:
				for j, c := range pending {
					if (p.Id != "" && c.Id == p.Id) || (p.Id == "" && c.Name == p.Name) {
						p.Id = c.Id
						pending = append(pending[:j], pending[j+1:]...)
						break
					}
				}
				if p.Id == "" {
					return ir.Request{}, ir.BadRequest(nil, "content %d: functionResponse %q answers no functionCall", i, p.Name)
				}
			}
			m.Parts = append(m.Parts, p)
		}
		r.Messages = append(r.Messages, m)
	}
	return r, nil
}

func decodePart(gp Part) (ir.Part, error) {
	switch {
	case gp.FunctionCall != nil:
		args := gp.FunctionCall.Args
		if len(args) == 0 || string(args) == "null" {
			args = json.RawMessage(`{}`)
		}
		return ir.Part{Kind: ir.PartToolCall, Id: gp.FunctionCall.ID, Name: gp.FunctionCall.Name, Args: args}, nil
	case gp.FunctionResponse != nil:
		fr := gp.FunctionResponse
		p := ir.Part{Kind: ir.PartToolResult, Id: fr.ID, Name: fr.Name}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(fr.Response, &obj); err != nil {
			return ir.Part{}, ir.BadRequest(err, "functionResponse.response must be an object")
		}
		text := string(fr.Response)
		if len(obj) == 1 {
			for k, v := range obj {
				var s string
				if (k == "output" || k == "error") && json.Unmarshal(v, &s) == nil {
					text, p.IsError = s, k == "error"
				}
			}
		}
		p.Result = []ir.Part{{Kind: ir.PartText, Text: text}}
		return p, nil
	case gp.InlineData != nil:
		if !strings.HasPrefix(gp.InlineData.MimeType, "image/") {
			return ir.Part{}, &ir.UnsupportedError{Feature: fmt.Sprintf("inlineData of type %q", gp.InlineData.MimeType)}
		}
		return ir.Part{Kind: ir.PartImage, Mime: gp.InlineData.MimeType, Data: gp.InlineData.Data}, nil
	case gp.FileData != nil:
		m := gp.FileData.MimeType
		if m == "" {
			m = ir.MIMEFromURL(gp.FileData.FileURI)
		}
		if !strings.HasPrefix(m, "image/") || !strings.HasPrefix(gp.FileData.FileURI, "http") {
			return ir.Part{}, &ir.UnsupportedError{Feature: "fileData other than an image URL"}
		}
		return ir.Part{Kind: ir.PartImage, Url: gp.FileData.FileURI}, nil
	case len(gp.ExecutableCode) > 0 || len(gp.CodeExecResult) > 0:
		return ir.Part{}, &ir.UnsupportedError{Feature: "code execution parts"}
	case gp.Thought:
		return ir.Part{Kind: ir.PartThinking, Text: gp.Text, Signature: gp.ThoughtSignature}, nil
	}
	return ir.Part{Kind: ir.PartText, Text: gp.Text}, nil
}

func encodeRequest(r ir.Request, model string) (ir.Upstream, error) {
	if r.ParallelTools != nil && !*r.ParallelTools {
		return ir.Upstream{}, &ir.UnsupportedError{Feature: "disabling parallel tool calls"}
	}
	var out Request
	if len(r.System) > 0 {
		sys := &Content{}
		for _, s := range r.System {
			sys.Parts = append(sys.Parts, Part{Text: s})
		}
		out.SystemInstruction = sys
	}
	g := GenerationConfig{
		StopSequences: r.Stop, MaxOutputTokens: r.MaxTokens, Temperature: r.Temperature,
		TopP: r.TopP, TopK: r.TopK, Seed: r.Seed, PresencePenalty: r.Presence, FrequencyPenalty: r.Frequency,
	}
	if th := r.Thinking; th != nil && !th.Disabled {
		tc := &ThinkingConfig{IncludeThoughts: true}
		budget := th.Budget
		if th.Effort != "" {
			budget, _ = ir.BudgetForEffort(th.Effort)
		}
		if budget != 0 {
			tc.ThinkingBudget = &budget
		}
		g.ThinkingConfig = tc
	}
	if f := r.Format; f != nil {
		g.ResponseMimeType = "application/json"
		g.ResponseJSONSchema = f.Schema
	}
	if g.StopSequences != nil || g.MaxOutputTokens != nil || g.Temperature != nil || g.TopP != nil ||
		g.TopK != nil || g.Seed != nil || g.PresencePenalty != nil || g.FrequencyPenalty != nil ||
		g.ThinkingConfig != nil || g.ResponseMimeType != "" {
		out.GenerationConfig = &g
	}
	if len(r.Tools) > 0 {
		t := Tool{}
		for _, td := range r.Tools {
			t.FunctionDeclarations = append(t.FunctionDeclarations, FunctionDeclaration{Name: td.Name, Description: td.Description, ParametersJSONSchema: td.Schema})
		}
		out.Tools = []Tool{t}
	}
	if tc := r.ToolChoice; tc != nil {
		fc := &FunctionCallingConfig{}
		switch tc.Mode {
		case ir.ToolAuto:
			fc.Mode = "AUTO"
		case ir.ToolNone:
			fc.Mode = "NONE"
		case ir.ToolAny:
			fc.Mode = "ANY"
		case ir.ToolName:
			fc.Mode, fc.AllowedFunctionNames = "ANY", []string{tc.Name}
		}
		out.ToolConfig = &ToolConfig{FunctionCallingConfig: fc}
	}
	names := map[string]string{} // tool call id → function name
	for i, m := range r.Messages {
		c := Content{Role: "user"}
		if m.Role == ir.RoleAssistant {
			c.Role = "model"
		}
		signed := false
		for _, p := range m.Parts {
			switch p.Kind {
			case ir.PartText:
				if p.Text != "" {
					c.Parts = append(c.Parts, Part{Text: p.Text})
				}
			case ir.PartImage:
				if p.Url != "" {
					c.Parts = append(c.Parts, Part{FileData: &FileData{MimeType: ir.MIMEFromURL(p.Url), FileURI: p.Url}})
				} else {
					c.Parts = append(c.Parts, Part{InlineData: &Blob{MimeType: p.Mime, Data: p.Data}})
				}
			case ir.PartThinking, ir.PartRedactedThinking:
				// Earlier turns' thinking is not sent across vendors.
			case ir.PartToolCall:
				names[p.Id] = p.Name
				gp := Part{FunctionCall: &FunctionCall{Name: p.Name, Args: p.Args}}
				if !signed {
					gp.ThoughtSignature, signed = skipSignature, true
				}
				c.Parts = append(c.Parts, gp)
			case ir.PartToolResult:
				name, ok := names[p.Id]
				if !ok {
					name = p.Name
				}
				if name == "" {
					return ir.Upstream{}, ir.BadRequest(nil, "message %d: tool result %q answers no tool call", i, p.Id)
				}
				for _, rp := range p.Result {
					if rp.Kind != ir.PartText {
						return ir.Upstream{}, &ir.UnsupportedError{Feature: "an image in a tool result"}
					}
				}
				key := "output"
				if p.IsError {
					key = "error"
				}
				resp, _ := json.Marshal(map[string]string{key: ir.TextOf(p.Result)})
				c.Parts = append(c.Parts, Part{FunctionResponse: &FunctionResponse{Name: name, Response: resp}})
			}
		}
		switch n := len(out.Contents); {
		case len(c.Parts) == 0:
		case n > 0 && out.Contents[n-1].Role == c.Role:
			// One turn per role, as the other formats would have it.
			out.Contents[n-1].Parts = append(out.Contents[n-1].Parts, c.Parts...)
		default:
			out.Contents = append(out.Contents, c)
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		return ir.Upstream{}, fmt.Errorf("encode generateContent request: %w", err)
	}
	return ir.Upstream{Body: body, Path: vendor{}.Path(ir.EndpointGenerate, model, r.Stream)}, nil
}

func stop(s string, toolCalls bool) ir.StopReason {
	switch s {
	case "STOP", "":
		if toolCalls {
			return ir.StopToolUse
		}
		return ir.StopEnd
	case "MAX_TOKENS":
		return ir.StopMaxTokens
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE":
		return ir.StopContentFilter
	}
	return ir.StopOther
}

func finishReason(r ir.StopReason) string {
	switch r {
	case ir.StopMaxTokens:
		return "MAX_TOKENS"
	case ir.StopContentFilter, ir.StopRefusal:
		return "SAFETY"
	case ir.StopOther:
		return "OTHER"
	}
	return "STOP"
}

func decodeResponse(body []byte) (ir.Response, error) {
	var in Response
	if err := json.Unmarshal(body, &in); err != nil {
		return ir.Response{}, err
	}
	r := ir.Response{Id: in.ResponseID, Model: in.ModelVersion}
	if in.UsageMetadata != nil {
		r.Usage, r.HasUsage = in.UsageMetadata.Normalise(), true
	}
	if len(in.Candidates) == 0 {
		r.Stop = ir.StopContentFilter // the prompt was blocked
		return r, nil
	}
	c := in.Candidates[0]
	tools := 0
	if c.Content != nil {
		for _, gp := range c.Content.Parts {
			switch {
			case gp.FunctionCall != nil:
				p, _ := decodePart(gp)
				if p.Id == "" {
					p.Id = fmt.Sprintf("call_%d", tools)
				}
				tools++
				r.Parts = append(r.Parts, p)
			case gp.Thought:
				r.Parts = append(r.Parts, ir.Part{Kind: ir.PartThinking, Text: gp.Text, Signature: gp.ThoughtSignature})
			case gp.Text != "":
				r.Parts = append(r.Parts, ir.Part{Kind: ir.PartText, Text: gp.Text})
			}
		}
	}
	r.Stop = stop(c.FinishReason, tools > 0)
	return r, nil
}

func parts(ps []ir.Part, thoughts bool) []Part {
	var out []Part
	for _, p := range ps {
		switch p.Kind {
		case ir.PartText:
			if p.Text != "" {
				out = append(out, Part{Text: p.Text})
			}
		case ir.PartThinking:
			if thoughts && p.Text != "" {
				out = append(out, Part{Text: p.Text, Thought: true})
			}
		case ir.PartToolCall:
			out = append(out, Part{FunctionCall: &FunctionCall{ID: p.Id, Name: p.Name, Args: p.Args}})
		}
	}
	return out
}

func encodeResponse(r ir.Response, thoughts bool) ([]byte, error) {
	um := FromNormalised(r.Usage)
	out := Response{
		Candidates: []Candidate{{
			Content:      &Content{Role: "model", Parts: parts(r.Parts, thoughts)},
			FinishReason: finishReason(r.Stop),
		}},
		UsageMetadata: &um, ModelVersion: r.Model, ResponseID: r.Id,
	}
	if out.Candidates[0].Content.Parts == nil {
		out.Candidates[0].Content.Parts = []Part{}
	}
	return json.Marshal(out)
}

// geminiDecoder reads a streamGenerateContent (alt=sse) stream.
type decoder struct {
	tools int
}

func (d *decoder) Event(ev sse.Event, p *ir.Pipe) error {
	if len(ev.Data) == 0 {
		return nil
	}
	var c struct {
		Response
		Error *ErrorDetail `json:"error"`
	}
	if err := json.Unmarshal(ev.Data, &c); err != nil {
		return err
	}
	if c.Error != nil {
		kind, status := Kind(c.Error.Status, c.Error.Code)
		p.Fail(ir.APIError{Status: status, Kind: kind, Message: c.Error.Message})
		return nil
	}
	var u *usage.Usage
	if c.UsageMetadata != nil {
		n := c.UsageMetadata.Normalise()
		u = &n
	}
	p.Start(c.ResponseID, c.ModelVersion, u)
	if u != nil {
		p.Usage(*u)
	}
	if len(c.Candidates) == 0 {
		if len(c.PromptFeedback) > 0 && u != nil {
			p.Finish(ir.StopContentFilter, "") // the prompt was blocked
		}
		return nil
	}
	cand := c.Candidates[0]
	if cand.Content != nil {
		for _, gp := range cand.Content.Parts {
			switch {
			case gp.FunctionCall != nil:
				id := gp.FunctionCall.ID
				if id == "" {
					id = fmt.Sprintf("call_%d", d.tools)
				}
				p.ToolCall(d.tools, id, gp.FunctionCall.Name)
				args := ir.CompactJSON(gp.FunctionCall.Args)
				if args == "" || args == "null" {
					args = "{}"
				}
				p.ToolArgs(d.tools, args)
				d.tools++
			case gp.Thought:
				p.Thinking(gp.Text)
				p.Signature(gp.ThoughtSignature)
			default:
				p.Text(gp.Text)
			}
		}
	}
	if cand.FinishReason != "" {
		p.Finish(stop(cand.FinishReason, d.tools > 0), "")
	}
	return nil
}

// geminiEncoder writes a streamGenerateContent (alt=sse) stream: each event
// one GenerateContentResponse.
type encoder struct {
	em              *ir.Emitter
	includeThoughts bool
	id, model       string
	u               usage.Usage
	hasUsage        bool

	// A tool call's arguments are held until the call is complete: Gemini
	// sends a functionCall whole.
	call     *FunctionCall
	callArgs []byte
	stop     ir.StopReason
}

func (e *encoder) chunk(parts []Part, finish string, withUsage bool) {
	r := Response{ModelVersion: e.model, ResponseID: e.id}
	c := Candidate{FinishReason: finish}
	if len(parts) > 0 {
		c.Content = &Content{Role: "model", Parts: parts}
	}
	r.Candidates = []Candidate{c}
	if withUsage {
		um := FromNormalised(e.u)
		r.UsageMetadata = &um
	}
	e.em.Event("", r)
}

// flush returns the held tool call as a part, if any.
func (e *encoder) flush() []Part {
	if e.call == nil {
		return nil
	}
	args := e.callArgs
	if len(args) == 0 {
		args = []byte("{}")
	}
	if t := bytes.TrimSpace(args); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		e.em.SetErr(fmt.Errorf("tool call %s: arguments are not a JSON object", e.call.Name))
		args = []byte("{}")
	}
	e.call.Args = json.RawMessage(args)
	p := Part{FunctionCall: e.call}
	e.call, e.callArgs = nil, nil
	return []Part{p}
}

func (e *encoder) Start(id, model string, u usage.Usage) { e.id, e.model, e.u = id, model, u }

func (e *encoder) Text(s string) {
	e.chunk(append(e.flush(), Part{Text: s}), "", false)
}

func (e *encoder) Thinking(s string) {
	if e.includeThoughts {
		e.chunk(append(e.flush(), Part{Text: s, Thought: true}), "", false)
	}
}

func (e *encoder) Signature(string) {}

func (e *encoder) ToolCall(_ int, id, name string) {
	if held := e.flush(); held != nil {
		e.chunk(held, "", false)
	}
	e.call = &FunctionCall{ID: id, Name: name}
}

func (e *encoder) ToolArgs(_ int, frag string) {
	if e.call == nil {
		e.em.SetErr(fmt.Errorf("tool call arguments with no tool call open"))
		return
	}
	if len(e.callArgs)+len(frag) > ir.MaxToolArgs {
		e.em.SetErr(fmt.Errorf("tool call %s: arguments over %d bytes", e.call.Name, ir.MaxToolArgs))
		return
	}
	e.callArgs = append(e.callArgs, frag...)
}

func (e *encoder) Finish(r ir.StopReason, _ string) { e.stop = r }

func (e *encoder) Usage(u usage.Usage) { e.u, e.hasUsage = u, true }

func (e *encoder) Fail(a ir.APIError) { e.em.Raw("", ir.Body(encodeError(a))) }

func (e *encoder) End() {
	e.chunk(e.flush(), finishReason(e.stop), true)
}

func Kind(status string, code int) (ir.ErrorKind, int) {
	switch status {
	case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE":
		return ir.KindInvalidRequest, 400
	case "UNAUTHENTICATED":
		return ir.KindAuth, 401
	case "PERMISSION_DENIED":
		return ir.KindPermission, 403
	case "NOT_FOUND":
		return ir.KindNotFound, 404
	case "RESOURCE_EXHAUSTED":
		return ir.KindRateLimit, 429
	case "UNAVAILABLE":
		return ir.KindOverloaded, 503
	case "DEADLINE_EXCEEDED":
		return ir.KindTimeout, 504
	}
	if code >= 400 && code < 600 {
		return ir.KindForStatus(code), code
	}
	return ir.KindServer, 500
}

func Status(k ir.ErrorKind) string {
	switch k {
	case ir.KindInvalidRequest, ir.KindTooLarge:
		return "INVALID_ARGUMENT"
	case ir.KindAuth:
		return "UNAUTHENTICATED"
	case ir.KindPermission:
		return "PERMISSION_DENIED"
	case ir.KindNotFound:
		return "NOT_FOUND"
	case ir.KindRateLimit:
		return "RESOURCE_EXHAUSTED"
	case ir.KindOverloaded:
		return "UNAVAILABLE"
	case ir.KindTimeout:
		return "DEADLINE_EXCEEDED"
	}
	return "INTERNAL"
}

// decodeError reads a Google error answer (which the REST API sometimes
// wraps in an array).
func decodeError(status int, body []byte) ir.APIError {
	var w []Error
	var one Error
	if json.Unmarshal(body, &one) == nil && one.Error.Message != "" {
		w = []Error{one}
	} else {
		_ = json.Unmarshal(body, &w)
	}
	if len(w) == 0 || w[0].Error.Message == "" {
		return ir.ErrorFrom(status, body, "", 0, false)
	}
	kind, _ := Kind(w[0].Error.Status, status)
	return ir.ErrorFrom(status, body, w[0].Error.Message, kind, w[0].Error.Status != "")
}

// encodeError writes e in Google's error shape. Anthropic's 529
// (overloaded) is 503 here: Gemini clients do not know it.
func encodeError(e ir.APIError) (int, []byte) {
	if e.Status == 529 {
		e.Status = 503
	}
	b, _ := json.Marshal(Error{Error: ErrorDetail{Code: e.Status, Message: e.Message, Status: Status(e.Kind)}})
	return e.Status, b
}
