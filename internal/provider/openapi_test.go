package provider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"baimo/internal/engine"
	"baimo/internal/provider/ir"
	"baimo/internal/provider/sim"
)

// openAPISchemas reads testdata/openapi/openai-answers.json: the parts of
// OpenAI's published OpenAPI spec (openai/openai-openapi) that say what an
// answer must hold.
func openAPISchemas(t *testing.T) map[string]any {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, "openapi", "openai-answers.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

// checkOpenAI validates body, an answer of baimo's own making, against the
// schema named (CreateChatCompletionResponse, ...) and returns what
// breaks it.
func checkOpenAI(doc map[string]any, schema string, body []byte) []string {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	s, ok := doc[schema].(map[string]any)
	if !ok {
		return []string{"no schema " + schema}
	}
	var errs []string
	validateSchema(doc, s, v, "$", &errs)
	return errs
}

// validateSchema is the least of a JSON Schema validator that the fixture
// needs: $ref (into components), type (one or a list), nullable, enum,
// required, properties and items.
func validateSchema(doc, s map[string]any, v any, path string, errs *[]string) {
	nullable, _ := s["nullable"].(bool)
	if ref, ok := s["$ref"].(string); ok {
		target, ok := doc["components"].(map[string]any)[ref].(map[string]any)
		if !ok {
			*errs = append(*errs, path+": unknown $ref "+ref)
			return
		}
		if v == nil && nullable {
			return
		}
		validateSchema(doc, target, v, path, errs)
		return
	}
	if v == nil {
		if !nullable {
			*errs = append(*errs, path+": null, which the schema does not allow")
		}
		return
	}
	var types []string
	switch ty := s["type"].(type) {
	case string:
		types = []string{ty}
	case []any:
		for _, x := range ty {
			types = append(types, x.(string))
		}
	}
	if len(types) > 0 && !slices.Contains(types, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(types, "number")) {
		*errs = append(*errs, fmt.Sprintf("%s: %s, want %s", path, jsonType(v), strings.Join(types, " or ")))
		return
	}
	if enum, ok := s["enum"].([]any); ok && !slices.ContainsFunc(enum, func(e any) bool { return fmt.Sprint(e) == fmt.Sprint(v) }) {
		*errs = append(*errs, fmt.Sprintf("%s: %v is not one of %v", path, v, enum))
	}
	switch v := v.(type) {
	case map[string]any:
		for _, r := range asList(s["required"]) {
			if _, ok := v[r]; !ok {
				*errs = append(*errs, path+": required "+r+" is missing")
			}
		}
		props, _ := s["properties"].(map[string]any)
		for k, sub := range props {
			if x, ok := v[k]; ok {
				validateSchema(doc, sub.(map[string]any), x, path+"."+k, errs)
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, x := range v {
				validateSchema(doc, items, x, fmt.Sprintf("%s[%d]", path, i), errs)
			}
		}
	}
}

func asList(v any) []string {
	var out []string
	l, _ := v.([]any)
	for _, x := range l {
		out = append(out, x.(string))
	}
	return out
}

// jsonType is the JSON Schema type of a value decoded with UseNumber.
func jsonType(v any) string {
	switch v := v.(type) {
	case map[string]any:
		return "object"
	case []any:
		return "array"
	case string:
		return "string"
	case bool:
		return "boolean"
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return "integer"
		}
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

// sseData returns the data of every event of an SSE body, and whether it
// ended with [DONE].
func sseData(t *testing.T, body []byte) (events [][]byte, done bool) {
	t.Helper()
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		d, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if d == "[DONE]" {
			done = true
			continue
		}
		if done {
			t.Errorf("an event after [DONE]: %s", d)
		}
		events = append(events, []byte(d))
	}
	return events, done
}

// TestOpenAISchemaValidator: the validator refuses what the spec refuses
// (else every test below could pass on anything).
func TestOpenAISchemaValidator(t *testing.T) {
	doc := openAPISchemas(t)
	const good = `{"id":"c1","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,` +
		`"message":{"role":"assistant","content":null,"refusal":null,"tool_calls":[{"id":"t","type":"function","function":{"name":"f","arguments":"{}"}}]},` +
		`"logprobs":null,"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}`
	if errs := checkOpenAI(doc, "CreateChatCompletionResponse", []byte(good)); len(errs) != 0 {
		t.Fatalf("a valid answer fails: %v", errs)
	}
	for _, c := range []struct{ from, to, want string }{
		{`"logprobs":null,`, ``, "$.choices[0]: required logprobs is missing"},
		{`"refusal":null,`, ``, "$.choices[0].message: required refusal is missing"},
		{`"finish_reason":"tool_calls"`, `"finish_reason":"done"`, "$.choices[0].finish_reason: done is not one of"},
		{`"finish_reason":"tool_calls"`, `"finish_reason":null`, "$.choices[0].finish_reason: null"},
		{`"created":1700000000`, `"created":"1700000000"`, "$.created: string, want integer"},
		{`"total_tokens":3`, `"total_tokens":3.5`, "$.usage.total_tokens: number, want integer"},
		{`"object":"chat.completion"`, `"object":"chat.completion.chunk"`, "$.object: chat.completion.chunk is not one of"},
		{`"role":"assistant"`, `"role":"user"`, "$.choices[0].message.role: user is not one of"},
		{`"type":"function"`, `"type":"tool"`, "$.choices[0].message.tool_calls[0].type"},
		{`"logprobs":null`, `"logprobs":{"content":null}`, "$.choices[0].logprobs: required refusal is missing"},
		{`"id":"c1",`, ``, "$: required id is missing"},
	} {
		bad := strings.Replace(good, c.from, c.to, 1)
		errs := checkOpenAI(doc, "CreateChatCompletionResponse", []byte(bad))
		if !strings.Contains(strings.Join(errs, "\n"), c.want) {
			t.Errorf("%s -> %s: errors %q, want %q", c.from, c.to, errs, c.want)
		}
	}
	if errs := checkOpenAI(doc, "CreateEmbeddingResponse", []byte(`{"object":"list","model":"m","data":[{"index":0,"object":"embedding","embedding":[0.5,1,"x"]}],"usage":{"prompt_tokens":1}}`)); len(errs) != 2 {
		t.Errorf("embedding with a string in its vector and no total_tokens: %q, want 2 errors", errs)
	}
}

// TestTranslatedAnswersMatchOpenAISchema: every answer an OpenAI client
// gets from an Anthropic, Gemini or Responses upstream (each recorded
// response and stream under testdata/vendors) validates against OpenAI's
// published schema: CreateChatCompletionResponse for a response (with
// choices[].logprobs and message.refusal, both null), and
// CreateChatCompletionStreamResponse for every chunk of a stream.
func TestTranslatedAnswersMatchOpenAISchema(t *testing.T) {
	doc := openAPISchemas(t)
	checked := 0
	for _, u := range []ir.Format{ir.FormatAnthropic, ir.FormatGemini, ir.FormatResponses} {
		for _, dir := range vendorDirs[u] {
			for _, in := range files(t, filepath.Join(testdataDir, "vendors", dir), ".json") {
				if strings.HasPrefix(caseName(in), "error") {
					continue
				}
				t.Run(u.String()+"/"+dir+"-"+caseName(in), func(t *testing.T) {
					body, err := os.ReadFile(in)
					if err != nil {
						t.Fatal(err)
					}
					tr := newTestTranslator(t, ir.FormatOpenAI, u)
					if _, err := tr.Request(Request{Body: []byte(streamRequests[ir.FormatOpenAI]), Model: "upstream-model"}); err != nil {
						t.Fatal(err)
					}
					out, _, err := tr.Response(body)
					if err != nil {
						t.Fatal(err)
					}
					for _, e := range checkOpenAI(doc, "CreateChatCompletionResponse", out) {
						t.Errorf("%s\n%s", e, out)
					}
					checked++
				})
			}
			for _, in := range files(t, filepath.Join(testdataDir, "vendors", dir), ".sse") {
				t.Run(u.String()+"/"+dir+"-"+caseName(in), func(t *testing.T) {
					body, err := os.ReadFile(in)
					if err != nil {
						t.Fatal(err)
					}
					tr := newTestTranslator(t, ir.FormatOpenAI, u)
					if _, err := tr.Request(Request{Body: []byte(streamRequests[ir.FormatOpenAI]), Model: "upstream-model", Stream: true}); err != nil {
						t.Fatal(err)
					}
					out, serr, eerr := runStream(tr, body)
					if serr != nil || eerr != nil {
						t.Skipf("a recording of a failed stream (%v, %v): its end is an error, not a chunk", serr, eerr)
					}
					events, done := sseData(t, out)
					if !done || len(events) < 2 {
						t.Fatalf("stream of %d events, [DONE] %v:\n%s", len(events), done, out)
					}
					for i, ev := range events {
						for _, e := range checkOpenAI(doc, "CreateChatCompletionStreamResponse", ev) {
							t.Errorf("event %d: %s\n%s", i, e, ev)
						}
					}
					checked++
				})
			}
		}
	}
	if checked < 6 {
		t.Errorf("validated %d recorded answers; the recordings are missing", checked)
	}
}

// TestSimulatorAnswersMatchOpenAISchema: every OpenAI-shaped answer of
// both simulators (the demo upstream and the replica that models a GPU
// server) validates against OpenAI's published schema: chat completions
// plain and streamed (with usage in its own last chunk or in the finishing
// one), legacy completions plain and streamed, and embeddings as floats
// and as base64.
func TestSimulatorAnswersMatchOpenAISchema(t *testing.T) {
	doc := openAPISchemas(t)
	opt := sim.DefaultOptions()
	opt.TTFT, opt.TPOT, opt.OutputTokens = 0, 0, 4
	demo := httptest.NewServer(sim.New(opt))
	defer demo.Close()
	rep, err := sim.NewReplica(sim.ReplicaOptions{Engine: engine.Tiny, Speed: 1000, OutputTokens: 4})
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	ran := make(chan struct{})
	go func() { rep.Run(ctx); close(ran) }()
	replica := httptest.NewServer(rep)
	defer func() { replica.Close(); stop(); <-ran }()

	const chat = `"model":"sim-chat","messages":[{"role":"user","content":"hello there"}]`
	const usage = `,"stream":true,"stream_options":{"include_usage":true}`
	for _, c := range []struct {
		name, path, body, schema string
		stream                   bool
		servers                  []string
	}{
		{"chat", "/v1/chat/completions", `{` + chat + `}`, "CreateChatCompletionResponse", false, []string{demo.URL, replica.URL}},
		{"chat cached reasoning", "/v1/chat/completions", `{` + chat + `,"sim":{"cached_tokens":1,"reasoning_tokens":2}}`, "CreateChatCompletionResponse", false, []string{demo.URL}},
		{"chat stream", "/v1/chat/completions", `{` + chat + usage + `}`, "CreateChatCompletionStreamResponse", true, []string{demo.URL, replica.URL}},
		{"chat stream usage in last chunk", "/v1/chat/completions", `{` + chat + usage + `,"sim":{"usage_in_last_chunk":true}}`, "CreateChatCompletionStreamResponse", true, []string{demo.URL}},
		{"chat stream no usage", "/v1/chat/completions", `{` + chat + `,"stream":true}`, "CreateChatCompletionStreamResponse", true, []string{demo.URL, replica.URL}},
		{"completion", "/v1/completions", `{"model":"sim-chat","prompt":"hello there"}`, "CreateCompletionResponse", false, []string{demo.URL, replica.URL}},
		{"completion stream", "/v1/completions", `{"model":"sim-chat","prompt":"hello there"` + usage + `}`, "CreateCompletionStreamEvent", true, []string{demo.URL, replica.URL}},
		{"embeddings", "/v1/embeddings", `{"model":"sim-embed","input":["a b","c"]}`, "CreateEmbeddingResponse", false, []string{demo.URL}},
		{"embeddings base64", "/v1/embeddings", `{"model":"sim-embed","input":"a b","encoding_format":"base64"}`, "CreateEmbeddingResponse", false, []string{demo.URL}},
	} {
		for _, base := range c.servers {
			name := "demo"
			if base == replica.URL {
				name = "replica"
			}
			t.Run(name+"/"+c.name, func(t *testing.T) {
				resp, err := http.Post(base+c.path, "application/json", strings.NewReader(c.body))
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("%d %s", resp.StatusCode, body)
				}
				answers := [][]byte{body}
				if c.stream {
					var done bool
					answers, done = sseData(t, body)
					if !done || len(answers) < 2 {
						t.Fatalf("stream of %d events, [DONE] %v:\n%s", len(answers), done, body)
					}
				}
				for i, a := range answers {
					for _, e := range checkOpenAI(doc, c.schema, a) {
						t.Errorf("answer %d: %s\n%s", i, e, a)
					}
				}
			})
		}
	}
}
