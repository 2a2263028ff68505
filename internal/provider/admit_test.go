package provider

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"baimo/internal/provider/ir"
)

// What a parser reads from a request body, of the members admission acts on.
type reading struct {
	model       string
	stream      bool
	maxOutput   int64
	choices     int64
	clientUsage bool
}

func (r reading) String() string {
	return fmt.Sprintf("model=%q stream=%v max=%d choices=%d usage=%v", r.model, r.stream, r.maxOutput, r.choices, r.clientUsage)
}

// mapReading reads body the way exact-key parsers do (Python's json, Go's
// encoding/json into a map): keys compared exactly after unescaping, the
// last of duplicates wins. ok is false when such a parser refuses the body
// or a member has a type the vendor would refuse.
func mapReading(f ir.Format, t ir.Target, body []byte) (reading, bool) {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return reading{}, false
	}
	var r reading
	str := func(v json.RawMessage, dst *string) bool { return v == nil || json.Unmarshal(v, dst) == nil }
	boolean := func(v json.RawMessage, dst *bool) bool { return v == nil || json.Unmarshal(v, dst) == nil }
	num := func(v json.RawMessage) (int64, bool) {
		var n int64
		if v == nil || string(v) == "null" {
			return 0, true
		}
		return n, json.Unmarshal(v, &n) == nil
	}
	switch f {
	case ir.FormatGemini:
		r.model, r.stream = t.Model, t.Stream
		g := m["generationConfig"]
		if g == nil {
			g = m["generation_config"]
		}
		var gm map[string]json.RawMessage
		if g != nil && string(g) != "null" && json.Unmarshal(g, &gm) != nil {
			return r, false
		}
		for _, k := range []string{"maxOutputTokens", "max_output_tokens"} {
			if v, ok := gm[k]; ok {
				n, ok := num(v)
				if !ok {
					return r, false
				}
				r.maxOutput = n
			}
		}
		for _, k := range []string{"candidateCount", "candidate_count"} {
			if v, ok := gm[k]; ok {
				n, ok := num(v)
				if !ok {
					return r, false
				}
				r.choices = n
			}
		}
		return r, true
	}
	if !str(m["model"], &r.model) || !boolean(m["stream"], &r.stream) {
		return r, false
	}
	if f == ir.FormatResponses {
		n, ok := num(m["max_output_tokens"])
		r.maxOutput = n
		return r, ok
	}
	for _, k := range []string{"max_tokens", "max_completion_tokens"} {
		n, ok := num(m[k])
		if !ok {
			return r, false
		}
		r.maxOutput = max(r.maxOutput, n)
	}
	if f == ir.FormatAnthropic {
		return r, true
	}
	for _, k := range []string{"n", "best_of"} {
		n, ok := num(m[k])
		if !ok {
			return r, false
		}
		r.choices = max(r.choices, n)
	}
	if so := m["stream_options"]; so != nil && string(so) != "null" {
		var sm map[string]json.RawMessage
		if json.Unmarshal(so, &sm) != nil || !boolean(sm["include_usage"], &r.clientUsage) {
			return r, false
		}
		r.clientUsage = r.clientUsage && r.stream
	}
	return r, true
}

// structReading reads body the way Go servers (Ollama, vLLM's Go peers) do:
// encoding/json into a struct, field names matched case-insensitively.
func structReading(f ir.Format, t ir.Target, body []byte) (reading, bool) {
	var r reading
	switch f {
	case ir.FormatGemini:
		var s struct {
			GenerationConfig *struct {
				MaxOutputTokens *int64 `json:"maxOutputTokens"`
				CandidateCount  *int64 `json:"candidateCount"`
			} `json:"generationConfig"`
		}
		if json.Unmarshal(body, &s) != nil {
			return r, false
		}
		r.model, r.stream = t.Model, t.Stream
		if g := s.GenerationConfig; g != nil {
			if g.MaxOutputTokens != nil {
				r.maxOutput = *g.MaxOutputTokens
			}
			if g.CandidateCount != nil {
				r.choices = *g.CandidateCount
			}
		}
		return r, true
	}
	var s struct {
		Model               *string `json:"model"`
		Stream              *bool   `json:"stream"`
		MaxOutputTokens     *int64  `json:"max_output_tokens"`
		MaxTokens           *int64  `json:"max_tokens"`
		MaxCompletionTokens *int64  `json:"max_completion_tokens"`
		N                   *int64  `json:"n"`
		BestOf              *int64  `json:"best_of"`
		StreamOptions       *struct {
			IncludeUsage *bool `json:"include_usage"`
		} `json:"stream_options"`
	}
	if json.Unmarshal(body, &s) != nil {
		return r, false
	}
	if s.Model != nil {
		r.model = *s.Model
	}
	if s.Stream != nil {
		r.stream = *s.Stream
	}
	if f == ir.FormatResponses {
		if s.MaxOutputTokens != nil {
			r.maxOutput = *s.MaxOutputTokens
		}
		return r, true
	}
	for _, p := range []*int64{s.MaxTokens, s.MaxCompletionTokens} {
		if p != nil {
			r.maxOutput = max(r.maxOutput, *p)
		}
	}
	if f == ir.FormatAnthropic {
		return r, true
	}
	for _, p := range []*int64{s.N, s.BestOf} {
		if p != nil {
			r.choices = max(r.choices, *p)
		}
	}
	if s.StreamOptions != nil && s.StreamOptions.IncludeUsage != nil {
		r.clientUsage = *s.StreamOptions.IncludeUsage && r.stream
	}
	return r, true
}

var admitTargets = map[ir.Format]ir.Target{
	ir.FormatOpenAI:    {Endpoint: ir.EndpointChat},
	ir.FormatAnthropic: {Endpoint: ir.EndpointMessages},
	ir.FormatGemini:    {Endpoint: ir.EndpointGenerate, Model: "g-model", Stream: true},
	ir.FormatResponses: {Endpoint: ir.EndpointResponses},
}

// checkAdmission holds admission to the rule: what it admits, every
// mainstream parser reads the same way; otherwise it refuses the body.
func checkAdmission(t *testing.T, f ir.Format, body []byte) (admitted bool) {
	t.Helper()
	tg := admitTargets[f]
	a, err := ClientOf(f).Admit(tg, body)
	if err != nil {
		return false
	}
	got := reading{model: a.Model, stream: a.Stream, maxOutput: a.MaxOutput, choices: a.Choices, clientUsage: a.ClientUsage}
	m, mok := mapReading(f, tg, body)
	s, sok := structReading(f, tg, body)
	if !mok || !sok || got != m || got != s {
		t.Fatalf("%s admitted %s\nas      %v\nmap:    %v (parses %v)\nstruct: %v (parses %v)", f, body, got, m, mok, s, sok)
	}
	return true
}

// hostile request bodies, by format: each must be refused, or read as
// every parser reads it.
var hostile = map[ir.Format][]string{
	ir.FormatOpenAI: {
		`{"model":"cheap","mod\u0065l":"dear","messages":[{"role":"user","content":"x"}]}`,
		`{"mod\u0065l":"dear","messages":[{"role":"user","content":"x"}]}`,
		`{"model":"cheap","Model":"dear","messages":[{"role":"user","content":"x"}]}`,
		`{"model":"cheap","model":"dear","messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","stream":false,"str\u0065am":true,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","stream":false,"STREAM":true,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","stream":false,"\u017ftream":true,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_tokens":10,"max_to\u212aens":100000,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_tokens":10,"MAX_TOKENS":100000,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_tokens":10,"max_tokens":100000,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","n":1,"N":8,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":false,"include_usag\u0065":true},"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","stream":true,"stream_options":{"include_usage":true,"Include_Usage":false},"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_tokens":1e5,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_tokens":100.0,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_tokens":"100","messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","max_tokens":99999999999999999999999,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","n":0,"messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","stream":"true","messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","service_tier":"priority","messages":[{"role":"user","content":"x"}]}`,
		"\xef\xbb\xbf" + `{"model":"m","messages":[{"role":"user","content":"x"}]}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}]} {"model":"dear"}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}]`,
		`[{"model":"m"}]`,
		`{"model":"","messages":[{"role":"user","content":"x"}]}`,
		`{"model":null,"messages":[{"role":"user","content":"x"}]}`,
	},
	ir.FormatAnthropic: {
		`{"model":"cheap","mod\u0065l":"dear","max_tokens":10,"messages":[]}`,
		`{"model":"cheap","MODEL":"dear","max_tokens":10,"messages":[]}`,
		`{"model":"m","max_tokens":10,"max_tokens":64000,"messages":[]}`,
		`{"model":"m","max_tokens":10,"Max_Tokens":64000,"messages":[]}`,
		`{"model":"m","stream":false,"str\u0065am":true,"max_tokens":10,"messages":[]}`,
		`{"model":"m","messages":[]}`,
		`{"model":"m","max_tokens":1.5,"messages":[]}`,
		`{"model":"m","max_tokens":10,"service_tier":"priority","messages":[]}`,
	},
	ir.FormatGemini: {
		`{"contents":[],"generationConfig":{"maxOutputTokens":10},"generation_config":{"max_output_tokens":60000}}`,
		`{"contents":[],"generationConfig":{"maxOutputTokens":10,"max_output_tokens":60000}}`,
		`{"contents":[],"generationConfig":{"maxOutputTokens":10,"MaxOutputTokens":60000}}`,
		`{"contents":[],"generationConfig":{"maxOutputTokens":10},"GenerationConfig":{"maxOutputTokens":60000}}`,
		`{"contents":[],"generationConfig":{"maxOutputTok\u0065ns":60000}}`,
		`{"contents":[],"generationConfig":{"candidateCount":2,"candidateCount":8}}`,
		`{"contents":[],"generationConfig":{"maxOutputTokens":0}}`,
		`{"generationConfig":{}}`,
		`{"contents":[{"parts":[{"text":"hi"}]}],"generation_config":{"max_output_tokens":100}}`,
		`{"contents":[],"generationConfig":{"max_output_tokens":100}}`,
	},
	ir.FormatResponses: {
		`{"model":"cheap","mod\u0065l":"dear","input":"x"}`,
		`{"model":"cheap","Model":"dear","input":"x"}`,
		`{"model":"m","max_output_tokens":10,"max_output_tokens":100000,"input":"x"}`,
		`{"model":"m","max_output_tokens":10,"Max_Output_Tokens":100000,"input":"x"}`,
		`{"model":"m","max_output_tokens":10,"max_output_to\u212aens":100000,"input":"x"}`,
		`{"model":"m","stream":false,"str\u0065am":true,"input":"x"}`,
		`{"model":"m","max_output_tokens":1e5,"input":"x"}`,
		`{"model":"m","max_output_tokens":0,"input":"x"}`,
		`{"model":"m","background":"true","input":"x"}`,
		`{"model":"m","previous_response_id":{"id":"resp_1"},"input":"x"}`,
		`{"model":"m","service_tier":"flex","input":"x"}`,
		`{"model":"m","input":{"role":"user"}}`,
		`{"model":"m"}`,
	},
}

// TestAdmitRefusesAmbiguousBodies: each hostile body is refused (a 400
// naming the field), never read one way while the vendor reads another.
func TestAdmitRefusesAmbiguousBodies(t *testing.T) {
	for f, bodies := range hostile {
		for _, b := range bodies {
			if _, err := ClientOf(f).Admit(admitTargets[f], []byte(b)); err == nil {
				t.Errorf("%s admitted %s", f, b)
			}
		}
	}
}

// TestAdmitReadsPlainBodies: ordinary bodies are admitted, as every parser
// reads them (the differential check must not pass by refusing all).
func TestAdmitReadsPlainBodies(t *testing.T) {
	plain := map[ir.Format][]string{
		ir.FormatOpenAI: {
			`{"model":"m","messages":[{"role":"user","content":"x"}]}`,
			`{"model":"de\u0065pseek","stream":true,"stream_options":{"include_usage":true},"max_tokens":50,"n":2,"messages":[{"role":"user","content":"x","model":"nested look-alike"}],"metadata":{"model":"x","stream":true}}`,
			"\n\t {\"model\" : \"m\" ,\"max_completion_tokens\":7, \"messages\":[{}] } \n",
			`{"model":"m","service_tier":"default","stream":null,"max_tokens":null,"messages":[{"role":"user","content":"x"}]}`,
		},
		ir.FormatAnthropic: {`{"model":"m","max_tokens":1024,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		ir.FormatGemini: {
			`{"contents":[{"parts":[{"text":"hi"}]}],"generationConfig":{"maxOutputTokens":100,"candidateCount":2}}`,
		},
		ir.FormatResponses: {
			`{"model":"m","input":"hi"}`,
			`{"model":"m","stream":true,"max_output_tokens":50,"background":false,"store":true,"previous_response_id":"resp_1","input":[{"role":"user","content":"x","model":"look-alike"}],"metadata":{"model":"x"}}`,
		},
	}
	for f, bodies := range plain {
		for _, b := range bodies {
			if !checkAdmission(t, f, []byte(b)) {
				_, err := ClientOf(f).Admit(admitTargets[f], []byte(b))
				t.Errorf("%s refused a plain body %s: %v", f, b, err)
			}
		}
	}
}

// genBody builds a request body of format f from spellings that parsers
// disagree about: escapes, case variants (with Unicode folds), duplicates,
// look-alikes nested in other members, odd numbers, whitespace.
func genBody(rng *rand.Rand, f ir.Format) []byte {
	pick := func(xs ...string) string { return xs[rng.IntN(len(xs))] }
	variant := func(key string) string {
		switch rng.IntN(24) {
		case 0:
			return strings.ToUpper(key[:1]) + key[1:]
		case 1:
			return strings.ToUpper(key)
		case 2:
			i := rng.IntN(len(key))
			return key[:i] + fmt.Sprintf(`\u%04x`, key[i]) + key[i+1:]
		case 3:
			return strings.Replace(strings.Replace(key, "s", "\u017f", 1), "k", "\u212a", 1)
		}
		return key
	}
	num := func() string {
		if rng.IntN(3) > 0 {
			return pick("1", "7", "100", "4096")
		}
		return pick("0", "-3", "1.0", "1e3", `"12"`, "null", "99999999999999999999", "true")
	}
	var members []string
	add := func(key, val string) {
		for range 1 + rng.IntN(8)/7 { // sometimes twice
			members = append(members, fmt.Sprintf(`%s"%s"%s:%s`, pick("", " ", "\n"), variant(key), pick("", " "), val))
			val = pick(val, num(), `"other"`, "true", "false")
		}
	}
	switch f {
	case ir.FormatGemini:
		members = append(members, `"contents":[{"parts":[{"text":"hi"}]}]`)
		var inner []string
		for _, k := range []string{"maxOutputTokens", "max_output_tokens", "candidateCount", "candidate_count"} {
			if rng.IntN(2) == 0 {
				inner = append(inner, fmt.Sprintf(`"%s":%s`, variant(k), num()))
			}
		}
		cfg := "{" + strings.Join(inner, ",") + "}"
		add(pick("generationConfig", "generation_config"), cfg)
	case ir.FormatResponses:
		add("model", pick(`"cheap"`, `"dear"`, `"ch\u0065ap"`, `"cheap"`, "null", "1"))
		if rng.IntN(2) == 0 {
			add("max_output_tokens", num())
		}
		if rng.IntN(2) == 0 {
			add("stream", pick("true", "false", "true", "null", `"true"`))
		}
		if rng.IntN(3) == 0 {
			add("store", pick("true", "false", "null", `"no"`))
		}
		members = append(members, `"input":[{"role":"user","content":"x","model":"look-alike","max_output_tokens":999999}]`)
		if rng.IntN(3) == 0 {
			members = append(members, `"metadata":{"model":"dear","stream":"true"}`)
		}
	default:
		add("model", pick(`"cheap"`, `"dear"`, `"ch\u0065ap"`, `"cheap"`, "null", "1"))
		if f == ir.FormatAnthropic || rng.IntN(2) == 0 {
			add("max_tokens", num())
		}
		if rng.IntN(2) == 0 {
			add("stream", pick("true", "false", "true", "null", `"true"`))
		}
		members = append(members, `"messages":[{"role":"user","content":"x","model":"look-alike"}]`)
		if f == ir.FormatOpenAI {
			if rng.IntN(2) == 0 {
				add("n", num())
			}
			if rng.IntN(3) == 0 {
				add("max_completion_tokens", num())
			}
			if rng.IntN(2) == 0 {
				add("stream_options", fmt.Sprintf(`{"%s":%s}`, variant("include_usage"), pick("true", "false", "null")))
			}
		}
		if rng.IntN(3) == 0 {
			members = append(members, `"metadata":{"model":"dear","stream":true,"max_tokens":999999}`)
		}
	}
	rng.Shuffle(len(members), func(i, j int) { members[i], members[j] = members[j], members[i] })
	b := "{" + strings.Join(members, ",") + "}"
	switch rng.IntN(24) {
	case 0:
		b = "\xef\xbb\xbf" + b
	case 1:
		b += ` {"model":"dear"}`
	case 2:
		b = "  \n" + b + "\n"
	}
	return []byte(b)
}

// TestAdmitDifferential runs generated bodies through admission and the
// reference parsers; a failure prints the seed that made the body.
func TestAdmitDifferential(t *testing.T) {
	seed := rand.Uint64()
	rng := rand.New(rand.NewPCG(seed, 1))
	admitted := map[ir.Format]int{}
	for i := 0; i < 20000; i++ {
		f := allFormats[i%len(allFormats)]
		b := genBody(rng, f)
		ok := false
		t.Run("", func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d, body %d", seed, i)
				}
			}()
			ok = checkAdmission(t, f, b)
		})
		if ok {
			admitted[f]++
		}
	}
	for _, f := range allFormats {
		if admitted[f] < 100 {
			t.Errorf("%s admitted only %d generated bodies: the check would pass by refusing", f, admitted[f])
		}
	}
}

// FuzzAdmit drives each format's admission with arbitrary bodies: it never
// panics, and what it admits every reference parser reads the same way.
func FuzzAdmit(f *testing.F) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, fm := range allFormats {
		for _, b := range hostile[fm] {
			f.Add(uint8(fm), []byte(b))
		}
		for range 20 {
			f.Add(uint8(fm), genBody(rng, fm))
		}
	}
	f.Fuzz(func(t *testing.T, fm uint8, body []byte) {
		format := allFormats[int(fm)%len(allFormats)]
		if bytes.Count(body, []byte("{")) > 64 { // deep nesting is the JSON parser's business, not admission's
			return
		}
		checkAdmission(t, format, body)
	})
}

// FuzzPrepare drives the passthrough patching of admitted bodies of every
// format: the result is valid JSON that names the upstream model (OpenAI,
// Anthropic), asks a stream for its usage (OpenAI) and carries the output
// limit, as every parser reads it.
func FuzzPrepare(f *testing.F) {
	rng := rand.New(rand.NewPCG(3, 4))
	for _, fm := range allFormats {
		for range 20 {
			f.Add(uint8(fm), genBody(rng, fm), uint16(500))
		}
	}
	f.Fuzz(func(t *testing.T, fm uint8, body []byte, limit uint16) {
		format := allFormats[int(fm)%len(allFormats)]
		tg := admitTargets[format]
		a, err := ClientOf(format).Admit(tg, body)
		if err != nil {
			return
		}
		out, err := VendorOf(format).Prepare(body, &a, tg.Endpoint, "up-model", int64(limit))
		if err != nil {
			t.Fatalf("%s: prepare %s: %v", format, body, err)
		}
		if !json.Valid(out) {
			t.Fatalf("%s: prepared body is not JSON: %s -> %s", format, body, out)
		}
		var m struct {
			Model         string `json:"model"`
			MaxOutput     int64  `json:"max_output_tokens"`
			MaxTokens     int64  `json:"max_tokens"`
			MaxCompletion int64  `json:"max_completion_tokens"`
			StreamOptions *struct {
				IncludeUsage bool `json:"include_usage"`
			} `json:"stream_options"`
			GenerationConfig *struct {
				MaxOutputTokens int64 `json:"maxOutputTokens"`
			} `json:"generationConfig"`
		}
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("%s: %v: %s", format, err, out)
		}
		switch format {
		case ir.FormatGemini:
			if limit > 0 && (m.GenerationConfig == nil || m.GenerationConfig.MaxOutputTokens != int64(limit)) {
				t.Fatalf("gemini: limit %d not set: %s", limit, out)
			}
		default:
			if m.Model != "up-model" {
				t.Fatalf("%s: upstream model not set: %s", format, out)
			}
			if limit > 0 && m.MaxTokens != int64(limit) && m.MaxCompletion != int64(limit) && m.MaxOutput != int64(limit) {
				t.Fatalf("%s: limit %d not set: %s", format, limit, out)
			}
			if format == ir.FormatOpenAI && a.Stream && (m.StreamOptions == nil || !m.StreamOptions.IncludeUsage) {
				t.Fatalf("openai: a stream does not ask for usage: %s", out)
			}
		}
	})
}
