package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"baimo/internal/provider/gemini"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

var geminiParams = map[string]bool{
	"contents": true, "systemInstruction": true, "tools": true, "toolConfig": true,
	"generationConfig": true, "safetySettings": true, "model": true,
}

var geminiGenParams = map[string]bool{
	"stopSequences": true, "responseMimeType": true, "responseSchema": true, "responseJsonSchema": true,
	"candidateCount": true, "maxOutputTokens": true, "temperature": true, "topP": true, "topK": true,
	"seed": true, "presencePenalty": true, "frequencyPenalty": true, "thinkingConfig": true,
}

// skipSignature is Google's documented placeholder thought signature for
// function calls whose history comes from another model.
const skipSignature = "skip_thought_signature_validator"

func decodeGeminiRequest(body []byte) (request, error) {
	if err := checkFields(body, geminiParams, "Gemini"); err != nil {
		return request{}, err
	}
	var in gemini.Request
	if err := json.Unmarshal(body, &in); err != nil {
		return request{}, badRequest(err, "invalid generateContent request")
	}
	var r request
	if in.SystemInstruction != nil {
		for _, p := range in.SystemInstruction.Parts {
			if p.Text == "" && (p.InlineData != nil || p.FileData != nil || p.FunctionCall != nil || p.FunctionResponse != nil) {
				return request{}, &UnsupportedError{Feature: "non-text systemInstruction parts"}
			}
			r.system = append(r.system, p.Text)
		}
	}
	if g := in.GenerationConfig; g != nil {
		var raw struct {
			GenerationConfig json.RawMessage `json:"generationConfig"`
		}
		_ = json.Unmarshal(body, &raw)
		if err := checkFields(raw.GenerationConfig, geminiGenParams, "Gemini generationConfig"); err != nil {
			return request{}, err
		}
		if g.CandidateCount != nil && *g.CandidateCount != 1 {
			return request{}, &UnsupportedError{Feature: "candidateCount other than 1"}
		}
		r.maxTokens, r.temperature, r.topP, r.topK = g.MaxOutputTokens, g.Temperature, g.TopP, g.TopK
		r.stop, r.seed, r.presence, r.frequency = g.StopSequences, g.Seed, g.PresencePenalty, g.FrequencyPenalty
		switch g.ResponseMimeType {
		case "", "text/plain":
			if len(g.ResponseSchema) > 0 || len(g.ResponseJSONSchema) > 0 {
				return request{}, badRequest(nil, "a response schema needs responseMimeType application/json")
			}
		case "application/json":
			r.format = &responseFormat{kind: "json_object"}
			if s := g.ResponseJSONSchema; len(s) > 0 {
				r.format = &responseFormat{kind: "json_schema", schema: s}
			} else if s := g.ResponseSchema; len(s) > 0 {
				r.format = &responseFormat{kind: "json_schema", schema: s}
			}
		default:
			return request{}, &UnsupportedError{Feature: fmt.Sprintf("responseMimeType %q", g.ResponseMimeType)}
		}
		if tc := g.ThinkingConfig; tc != nil {
			th := &thinking{include: tc.IncludeThoughts}
			if tc.ThinkingBudget != nil {
				th.budget = *tc.ThinkingBudget
				th.disabled = th.budget == 0
			}
			if lv := strings.ToLower(tc.ThinkingLevel); lv != "" {
				if _, ok := budgetForEffort(lv); !ok {
					return request{}, &UnsupportedError{Feature: fmt.Sprintf("thinkingLevel %q", tc.ThinkingLevel)}
				}
				th.effort = lv
			}
			r.thinking = th
		}
	}
	if in.CachedContent != "" {
		return request{}, &UnsupportedError{Feature: "cachedContent"}
	}
	for _, t := range in.Tools {
		if len(t.GoogleSearch) > 0 || len(t.CodeExecution) > 0 || len(t.URLContext) > 0 {
			return request{}, &UnsupportedError{Feature: "Gemini built-in tools"}
		}
		for _, fd := range t.FunctionDeclarations {
			schema := fd.ParametersJSONSchema
			if len(schema) == 0 {
				schema = fd.Parameters
			}
			r.tools = append(r.tools, toolDef{name: fd.Name, description: fd.Description, schema: schema})
		}
	}
	if tc := in.ToolConfig; tc != nil && tc.FunctionCallingConfig != nil {
		fc := tc.FunctionCallingConfig
		switch fc.Mode {
		case "", "AUTO", "MODE_UNSPECIFIED":
			r.toolChoice = &toolChoice{mode: toolAuto}
		case "NONE":
			r.toolChoice = &toolChoice{mode: toolNone}
		case "ANY":
			r.toolChoice = &toolChoice{mode: toolAny}
		default:
			return request{}, &UnsupportedError{Feature: fmt.Sprintf("function calling mode %q", fc.Mode)}
		}
		switch n := len(fc.AllowedFunctionNames); {
		case n == 1 && fc.Mode == "ANY":
			r.toolChoice = &toolChoice{mode: toolName, name: fc.AllowedFunctionNames[0]}
		case n > 0:
			return request{}, &UnsupportedError{Feature: "allowedFunctionNames"}
		}
	}
	calls := 0
	var pending []part // calls awaiting a response, oldest first
	for i, c := range in.Contents {
		m := message{role: roleUser}
		switch c.Role {
		case "", "user":
		case "model":
			m.role = roleAssistant
		default:
			return request{}, badRequest(nil, "content %d: unknown role %q", i, c.Role)
		}
		for _, gp := range c.Parts {
			p, err := decodeGeminiPart(gp)
			if err != nil {
				return request{}, fmt.Errorf("content %d: %w", i, err)
			}
			if (p.kind == partText || p.kind == partThinking) && p.text == "" {
				continue // a part carrying only a thought signature
			}
			switch p.kind {
			case partToolCall:
				if p.id == "" {
					p.id = fmt.Sprintf("call_%d", calls)
				}
				calls++
				pending = append(pending, p)
			case partToolResult:
				for j, c := range pending {
					if (p.id != "" && c.id == p.id) || (p.id == "" && c.name == p.name) {
						p.id = c.id
						pending = append(pending[:j], pending[j+1:]...)
						break
					}
				}
				if p.id == "" {
					return request{}, badRequest(nil, "content %d: functionResponse %q answers no functionCall", i, p.name)
				}
			}
			m.parts = append(m.parts, p)
		}
		r.messages = append(r.messages, m)
	}
	return r, nil
}

func decodeGeminiPart(gp gemini.Part) (part, error) {
	switch {
	case gp.FunctionCall != nil:
		args := gp.FunctionCall.Args
		if len(args) == 0 || string(args) == "null" {
			args = json.RawMessage(`{}`)
		}
		return part{kind: partToolCall, id: gp.FunctionCall.ID, name: gp.FunctionCall.Name, args: args}, nil
	case gp.FunctionResponse != nil:
		fr := gp.FunctionResponse
		p := part{kind: partToolResult, id: fr.ID, name: fr.Name}
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(fr.Response, &obj); err != nil {
			return part{}, badRequest(err, "functionResponse.response must be an object")
		}
		text := string(fr.Response)
		if len(obj) == 1 {
			for k, v := range obj {
				var s string
				if (k == "output" || k == "error") && json.Unmarshal(v, &s) == nil {
					text, p.isError = s, k == "error"
				}
			}
		}
		p.result = []part{{kind: partText, text: text}}
		return p, nil
	case gp.InlineData != nil:
		if !strings.HasPrefix(gp.InlineData.MimeType, "image/") {
			return part{}, &UnsupportedError{Feature: fmt.Sprintf("inlineData of type %q", gp.InlineData.MimeType)}
		}
		return part{kind: partImage, mime: gp.InlineData.MimeType, data: gp.InlineData.Data}, nil
	case gp.FileData != nil:
		m := gp.FileData.MimeType
		if m == "" {
			m = mimeFromURL(gp.FileData.FileURI)
		}
		if !strings.HasPrefix(m, "image/") || !strings.HasPrefix(gp.FileData.FileURI, "http") {
			return part{}, &UnsupportedError{Feature: "fileData other than an image URL"}
		}
		return part{kind: partImage, url: gp.FileData.FileURI}, nil
	case len(gp.ExecutableCode) > 0 || len(gp.CodeExecResult) > 0:
		return part{}, &UnsupportedError{Feature: "code execution parts"}
	case gp.Thought:
		return part{kind: partThinking, text: gp.Text, signature: gp.ThoughtSignature}, nil
	}
	return part{kind: partText, text: gp.Text}, nil
}

func encodeGeminiRequest(r request, model string) (Upstream, error) {
	if r.parallelTools != nil && !*r.parallelTools {
		return Upstream{}, &UnsupportedError{Feature: "disabling parallel tool calls"}
	}
	var out gemini.Request
	if len(r.system) > 0 {
		sys := &gemini.Content{}
		for _, s := range r.system {
			sys.Parts = append(sys.Parts, gemini.Part{Text: s})
		}
		out.SystemInstruction = sys
	}
	g := gemini.GenerationConfig{
		StopSequences: r.stop, MaxOutputTokens: r.maxTokens, Temperature: r.temperature,
		TopP: r.topP, TopK: r.topK, Seed: r.seed, PresencePenalty: r.presence, FrequencyPenalty: r.frequency,
	}
	if th := r.thinking; th != nil && !th.disabled {
		tc := &gemini.ThinkingConfig{IncludeThoughts: true}
		budget := th.budget
		if th.effort != "" {
			budget, _ = budgetForEffort(th.effort)
		}
		if budget != 0 {
			tc.ThinkingBudget = &budget
		}
		g.ThinkingConfig = tc
	}
	if f := r.format; f != nil {
		g.ResponseMimeType = "application/json"
		g.ResponseJSONSchema = f.schema
	}
	if g.StopSequences != nil || g.MaxOutputTokens != nil || g.Temperature != nil || g.TopP != nil ||
		g.TopK != nil || g.Seed != nil || g.PresencePenalty != nil || g.FrequencyPenalty != nil ||
		g.ThinkingConfig != nil || g.ResponseMimeType != "" {
		out.GenerationConfig = &g
	}
	if len(r.tools) > 0 {
		t := gemini.Tool{}
		for _, td := range r.tools {
			t.FunctionDeclarations = append(t.FunctionDeclarations, gemini.FunctionDeclaration{Name: td.name, Description: td.description, ParametersJSONSchema: td.schema})
		}
		out.Tools = []gemini.Tool{t}
	}
	if tc := r.toolChoice; tc != nil {
		fc := &gemini.FunctionCallingConfig{}
		switch tc.mode {
		case toolAuto:
			fc.Mode = "AUTO"
		case toolNone:
			fc.Mode = "NONE"
		case toolAny:
			fc.Mode = "ANY"
		case toolName:
			fc.Mode, fc.AllowedFunctionNames = "ANY", []string{tc.name}
		}
		out.ToolConfig = &gemini.ToolConfig{FunctionCallingConfig: fc}
	}
	names := map[string]string{} // tool call id → function name
	for i, m := range r.messages {
		c := gemini.Content{Role: "user"}
		if m.role == roleAssistant {
			c.Role = "model"
		}
		signed := false
		for _, p := range m.parts {
			switch p.kind {
			case partText:
				if p.text != "" {
					c.Parts = append(c.Parts, gemini.Part{Text: p.text})
				}
			case partImage:
				if p.url != "" {
					c.Parts = append(c.Parts, gemini.Part{FileData: &gemini.FileData{MimeType: mimeFromURL(p.url), FileURI: p.url}})
				} else {
					c.Parts = append(c.Parts, gemini.Part{InlineData: &gemini.Blob{MimeType: p.mime, Data: p.data}})
				}
			case partThinking, partRedactedThinking:
				// Earlier turns' thinking is not sent across vendors.
			case partToolCall:
				names[p.id] = p.name
				gp := gemini.Part{FunctionCall: &gemini.FunctionCall{Name: p.name, Args: p.args}}
				if !signed {
					gp.ThoughtSignature, signed = skipSignature, true
				}
				c.Parts = append(c.Parts, gp)
			case partToolResult:
				name, ok := names[p.id]
				if !ok {
					name = p.name
				}
				if name == "" {
					return Upstream{}, badRequest(nil, "message %d: tool result %q answers no tool call", i, p.id)
				}
				for _, rp := range p.result {
					if rp.kind != partText {
						return Upstream{}, &UnsupportedError{Feature: "an image in a tool result"}
					}
				}
				key := "output"
				if p.isError {
					key = "error"
				}
				resp, _ := json.Marshal(map[string]string{key: textOf(p.result)})
				c.Parts = append(c.Parts, gemini.Part{FunctionResponse: &gemini.FunctionResponse{Name: name, Response: resp}})
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
		return Upstream{}, fmt.Errorf("encode generateContent request: %w", err)
	}
	path := "models/" + model + ":generateContent"
	if r.stream {
		path = "models/" + model + ":streamGenerateContent?alt=sse"
	}
	return Upstream{Body: body, Path: path}, nil
}

func geminiStop(s string, toolCalls bool) stopReason {
	switch s {
	case "STOP", "":
		if toolCalls {
			return stopToolUse
		}
		return stopEnd
	case "MAX_TOKENS":
		return stopMaxTokens
	case "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE":
		return stopContentFilter
	}
	return stopOther
}

func geminiFinishReason(r stopReason) string {
	switch r {
	case stopMaxTokens:
		return "MAX_TOKENS"
	case stopContentFilter, stopRefusal:
		return "SAFETY"
	case stopOther:
		return "OTHER"
	}
	return "STOP"
}

func decodeGeminiResponse(body []byte) (response, error) {
	var in gemini.Response
	if err := json.Unmarshal(body, &in); err != nil {
		return response{}, err
	}
	r := response{id: in.ResponseID, model: in.ModelVersion}
	if in.UsageMetadata != nil {
		r.usage, r.hasUsage = in.UsageMetadata.Normalise(), true
	}
	if len(in.Candidates) == 0 {
		r.stop = stopContentFilter // the prompt was blocked
		return r, nil
	}
	c := in.Candidates[0]
	tools := 0
	if c.Content != nil {
		for _, gp := range c.Content.Parts {
			switch {
			case gp.FunctionCall != nil:
				p, _ := decodeGeminiPart(gp)
				if p.id == "" {
					p.id = fmt.Sprintf("call_%d", tools)
				}
				tools++
				r.parts = append(r.parts, p)
			case gp.Thought:
				r.parts = append(r.parts, part{kind: partThinking, text: gp.Text, signature: gp.ThoughtSignature})
			case gp.Text != "":
				r.parts = append(r.parts, part{kind: partText, text: gp.Text})
			}
		}
	}
	r.stop = geminiStop(c.FinishReason, tools > 0)
	return r, nil
}

func geminiParts(ps []part, thoughts bool) []gemini.Part {
	var out []gemini.Part
	for _, p := range ps {
		switch p.kind {
		case partText:
			if p.text != "" {
				out = append(out, gemini.Part{Text: p.text})
			}
		case partThinking:
			if thoughts && p.text != "" {
				out = append(out, gemini.Part{Text: p.text, Thought: true})
			}
		case partToolCall:
			out = append(out, gemini.Part{FunctionCall: &gemini.FunctionCall{ID: p.id, Name: p.name, Args: p.args}})
		}
	}
	return out
}

func encodeGeminiResponse(r response, thoughts bool) ([]byte, error) {
	um := gemini.FromNormalised(r.usage)
	out := gemini.Response{
		Candidates: []gemini.Candidate{{
			Content:      &gemini.Content{Role: "model", Parts: geminiParts(r.parts, thoughts)},
			FinishReason: geminiFinishReason(r.stop),
		}},
		UsageMetadata: &um, ModelVersion: r.model, ResponseID: r.id,
	}
	if out.Candidates[0].Content.Parts == nil {
		out.Candidates[0].Content.Parts = []gemini.Part{}
	}
	return json.Marshal(out)
}

// geminiDecoder reads a streamGenerateContent (alt=sse) stream.
type geminiDecoder struct {
	tools int
}

func (d *geminiDecoder) event(ev sse.Event, p *pipe) error {
	if len(ev.Data) == 0 {
		return nil
	}
	var c struct {
		gemini.Response
		Error *gemini.ErrorDetail `json:"error"`
	}
	if err := json.Unmarshal(ev.Data, &c); err != nil {
		return err
	}
	if c.Error != nil {
		kind, status := geminiKind(c.Error.Status, c.Error.Code)
		p.fail(apiError{status: status, kind: kind, message: c.Error.Message})
		return nil
	}
	var u *usage.Usage
	if c.UsageMetadata != nil {
		n := c.UsageMetadata.Normalise()
		u = &n
	}
	p.start(c.ResponseID, c.ModelVersion, u)
	if u != nil {
		p.usage(*u)
	}
	if len(c.Candidates) == 0 {
		if len(c.PromptFeedback) > 0 && u != nil {
			p.finish(stopContentFilter, "") // the prompt was blocked
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
				p.toolCall(d.tools, id, gp.FunctionCall.Name)
				args := compactJSON(gp.FunctionCall.Args)
				if args == "" || args == "null" {
					args = "{}"
				}
				p.toolArgs(d.tools, args)
				d.tools++
			case gp.Thought:
				p.thinking(gp.Text)
				p.signature(gp.ThoughtSignature)
			default:
				p.text(gp.Text)
			}
		}
	}
	if cand.FinishReason != "" {
		p.finish(geminiStop(cand.FinishReason, d.tools > 0), "")
	}
	return nil
}

// geminiEncoder writes a streamGenerateContent (alt=sse) stream: each event
// one GenerateContentResponse.
type geminiEncoder struct {
	em              *emitter
	includeThoughts bool
	id, model       string
	u               usage.Usage
	hasUsage        bool

	// A tool call's arguments are held until the call is complete: Gemini
	// sends a functionCall whole.
	call     *gemini.FunctionCall
	callArgs []byte
	stop     stopReason
}

func (e *geminiEncoder) chunk(parts []gemini.Part, finish string, withUsage bool) {
	r := gemini.Response{ModelVersion: e.model, ResponseID: e.id}
	c := gemini.Candidate{FinishReason: finish}
	if len(parts) > 0 {
		c.Content = &gemini.Content{Role: "model", Parts: parts}
	}
	r.Candidates = []gemini.Candidate{c}
	if withUsage {
		um := gemini.FromNormalised(e.u)
		r.UsageMetadata = &um
	}
	e.em.event("", r)
}

// flush returns the held tool call as a part, if any.
func (e *geminiEncoder) flush() []gemini.Part {
	if e.call == nil {
		return nil
	}
	args := e.callArgs
	if len(args) == 0 {
		args = []byte("{}")
	}
	if t := bytes.TrimSpace(args); len(t) == 0 || t[0] != '{' || !json.Valid(t) {
		e.em.setErr(fmt.Errorf("tool call %s: arguments are not a JSON object", e.call.Name))
		args = []byte("{}")
	}
	e.call.Args = json.RawMessage(args)
	p := gemini.Part{FunctionCall: e.call}
	e.call, e.callArgs = nil, nil
	return []gemini.Part{p}
}

func (e *geminiEncoder) start(id, model string, u usage.Usage) { e.id, e.model, e.u = id, model, u }

func (e *geminiEncoder) text(s string) {
	e.chunk(append(e.flush(), gemini.Part{Text: s}), "", false)
}

func (e *geminiEncoder) thinking(s string) {
	if e.includeThoughts {
		e.chunk(append(e.flush(), gemini.Part{Text: s, Thought: true}), "", false)
	}
}

func (e *geminiEncoder) signature(string) {}

func (e *geminiEncoder) toolCall(_ int, id, name string) {
	if held := e.flush(); held != nil {
		e.chunk(held, "", false)
	}
	e.call = &gemini.FunctionCall{ID: id, Name: name}
}

func (e *geminiEncoder) toolArgs(_ int, frag string) {
	if e.call == nil {
		e.em.setErr(fmt.Errorf("tool call arguments with no tool call open"))
		return
	}
	if len(e.callArgs)+len(frag) > maxToolArgs {
		e.em.setErr(fmt.Errorf("tool call %s: arguments over %d bytes", e.call.Name, maxToolArgs))
		return
	}
	e.callArgs = append(e.callArgs, frag...)
}

func (e *geminiEncoder) finish(r stopReason, _ string) { e.stop = r }

func (e *geminiEncoder) usage(u usage.Usage) { e.u, e.hasUsage = u, true }

func (e *geminiEncoder) fail(a apiError) { e.em.raw("", encodeError(FormatGemini, a)) }

func (e *geminiEncoder) end() {
	e.chunk(e.flush(), geminiFinishReason(e.stop), true)
}

func geminiKind(status string, code int) (ErrorKind, int) {
	switch status {
	case "INVALID_ARGUMENT", "FAILED_PRECONDITION", "OUT_OF_RANGE":
		return KindInvalidRequest, 400
	case "UNAUTHENTICATED":
		return KindAuth, 401
	case "PERMISSION_DENIED":
		return KindPermission, 403
	case "NOT_FOUND":
		return KindNotFound, 404
	case "RESOURCE_EXHAUSTED":
		return KindRateLimit, 429
	case "UNAVAILABLE":
		return KindOverloaded, 503
	case "DEADLINE_EXCEEDED":
		return KindTimeout, 504
	}
	if code >= 400 && code < 600 {
		return KindForStatus(code), code
	}
	return KindServer, 500
}

func geminiStatus(k ErrorKind) string {
	switch k {
	case KindInvalidRequest, KindTooLarge:
		return "INVALID_ARGUMENT"
	case KindAuth:
		return "UNAUTHENTICATED"
	case KindPermission:
		return "PERMISSION_DENIED"
	case KindNotFound:
		return "NOT_FOUND"
	case KindRateLimit:
		return "RESOURCE_EXHAUSTED"
	case KindOverloaded:
		return "UNAVAILABLE"
	case KindTimeout:
		return "DEADLINE_EXCEEDED"
	}
	return "INTERNAL"
}
