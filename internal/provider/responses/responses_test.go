package responses

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"

	"baimo/internal/provider/ir"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

func TestAdmit(t *testing.T) {
	for _, c := range []struct {
		body    string
		model   string
		stream  bool
		max     int64
		param   string // the field refused, "" when admitted
		invalid bool   // not JSON
	}{
		{body: `{"model":"m","input":"hi"}`, model: "m"},
		{body: `{"model":"m","input":[{"role":"user","content":"hi"}],"stream":true,"max_output_tokens":64}`, model: "m", stream: true, max: 64},
		{body: `{"model":"m","previous_response_id":"resp_1"}`, model: "m"},
		{body: `{"input":"hi"}`, param: "model"},
		{body: `{"model":"m"}`, param: "input"},
		{body: `{"model":"m","input":3}`, param: "input"},
		{body: `{"model":"m","input":"hi","max_output_tokens":0}`, param: "max_output_tokens"},
		{body: `{"model":"m","input":"hi","max_output_tokens":1.5}`, param: "max_output_tokens"},
		{body: `{"model":"m","input":"hi","background":"yes"}`, param: "background"},
		{body: `{"model":"m","input":"hi","store":1}`, param: "store"},
		{body: `{"model":"m","input":"hi","previous_response_id":7}`, param: "previous_response_id"},
		{body: `{"model":"m","input":"hi","service_tier":"priority"}`, param: "service_tier"},
		{body: `{"model":"m","input":"hi","stream":true,"stream":false}`, param: "stream"},
		{body: `{"model":"m","input":"hi","\u006dodel":"x"}`, param: "model"},
		{body: `{"model":"m",`, invalid: true},
	} {
		a, err := Client.Admit(ir.Target{Endpoint: ir.EndpointResponses}, []byte(c.body))
		var fe *ir.FieldError
		switch {
		case c.invalid:
			if !errors.Is(err, ir.ErrInvalidJSON) {
				t.Errorf("%s: %v, want invalid JSON", c.body, err)
			}
		case c.param != "":
			if !errors.As(err, &fe) || fe.Param != c.param {
				t.Errorf("%s: %v, want a refusal of %s", c.body, err, c.param)
			}
		case err != nil:
			t.Errorf("%s: %v", c.body, err)
		case a.Model != c.model || a.Stream != c.stream || a.MaxOutput != c.max:
			t.Errorf("%s: admitted %+v", c.body, a)
		case c.max > 0 && a.MaxOutputField != "max_output_tokens":
			t.Errorf("%s: output field %q", c.body, a.MaxOutputField)
		}
	}
}

func TestParseUsage(t *testing.T) {
	for _, c := range []struct {
		v    string
		want usage.Usage
		ok   bool
	}{
		{`{"input_tokens":1291,"input_tokens_details":{"cached_tokens":1024},"output_tokens":213,"output_tokens_details":{"reasoning_tokens":192},"total_tokens":1504}`,
			usage.Usage{Input: 1291, CachedInput: 1024, Output: 213, Reasoning: 192, Source: usage.SourceVendor}, true},
		{`{"input_tokens":10,"output_tokens":2}`, usage.Usage{Input: 10, Output: 2, Source: usage.SourceVendor}, true},
		// Details above their totals are held to them.
		{`{"input_tokens":10,"input_tokens_details":{"cached_tokens":50},"output_tokens":2,"output_tokens_details":{"reasoning_tokens":9}}`,
			usage.Usage{Input: 10, CachedInput: 10, Output: 2, Reasoning: 2, Source: usage.SourceVendor}, true},
		{`null`, usage.Usage{}, false},
		{`{}`, usage.Usage{}, false},
		{`{"input_tokens":-1,"output_tokens":2}`, usage.Usage{}, false},
		{`{"input_tokens":"many"}`, usage.Usage{}, false},
	} {
		got, ok := ParseUsage([]byte(c.v))
		if ok != c.ok || got != c.want {
			t.Errorf("ParseUsage(%s) = %+v, %v; want %+v, %v", c.v, got, ok, c.want, c.ok)
		}
	}
}

// TestMeter reads the recorded stream: the usage of response.completed, the
// text of every delta, the end; and an error event fails it.
func TestMeter(t *testing.T) {
	b, err := os.ReadFile("../../../testdata/vendors/responses/stream_tools.sse")
	if err != nil {
		t.Fatal(err)
	}
	m := Vendor.NewMeter(false)
	rd := sse.NewReader(bytes.NewReader(b), 0)
	for {
		ev, err := rd.Next()
		if err != nil {
			break
		}
		if !m.Event(ev) {
			t.Errorf("event held back: %s", ev.Raw)
		}
	}
	u, ok := m.Usage()
	want := usage.Usage{Input: 1291, CachedInput: 1024, Output: 46, Source: usage.SourceVendor}
	if !ok || u != want {
		t.Errorf("usage %+v, want %+v", u, want)
	}
	if got := string(m.Text()); got != `Let me check the weather.{"city":"Paris"}` {
		t.Errorf("text %q", got)
	}
	if _, complete := m.End(nil); !complete || !m.Done() || m.Failed() {
		t.Errorf("complete %v done %v failed %v", complete, m.Done(), m.Failed())
	}
	m = Vendor.NewMeter(false)
	m.Event(sse.Event{Name: []byte("error"), Data: []byte(`{"type":"error","code":"server_error","message":"boom","sequence_number":3}`)})
	if _, complete := m.End(nil); complete || !m.Failed() {
		t.Error("an error event does not fail the stream")
	}
}

// TestPrepare patches the model and an output limit, and nothing else.
func TestPrepare(t *testing.T) {
	body := `{"model":"m","input":"hi","store":false}`
	out, err := Vendor.Prepare([]byte(body), &ir.Admission{Model: "m"}, ir.EndpointResponses, "gpt-4.1", 128)
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != `{"model":"gpt-4.1","input":"hi","store":false,"max_output_tokens":128}` {
		t.Errorf("prepared %s", out)
	}
	if Vendor.Path(ir.EndpointChat, "x", true) != "/responses" {
		t.Error("path")
	}
}

// TestPromptCountsEveryItem reads instructions, messages, calls, outputs
// and tools for counting.
func TestPromptCountsEveryItem(t *testing.T) {
	p := Client.Prompt(ir.Target{}, []byte(`{"instructions":"be brief","input":[{"role":"user","content":[{"type":"input_text","text":"hello"}]},`+
		`{"type":"function_call","call_id":"c","name":"f","arguments":"{\"a\":1}"},{"type":"function_call_output","call_id":"c","output":"42"},`+
		`{"type":"reasoning","summary":[{"type":"summary_text","text":"think"}]}],"tools":[{"type":"function","name":"f"}]}`))
	var all []string
	for _, m := range p.Messages {
		all = append(all, m.Role+":"+m.Content)
	}
	got := strings.Join(all, "|")
	want := `system:be brief|user:hello|assistant:f{"a":1}|tool:42|assistant:think|system:[{"type":"function","name":"f"}]`
	if got != want {
		t.Errorf("prompt\n%s\nwant\n%s", got, want)
	}
}

// TestFormatKeepsStrict checks that text.format's strict flag survives the
// translation to the internal representation: it reaches an upstream
// request and the response's echo of the format.
func TestFormatKeepsStrict(t *testing.T) {
	for _, tt := range []struct {
		name, strict, want string
	}{
		{"strict true", `,"strict":true`, `"strict":true`},
		{"strict false", `,"strict":false`, `"strict":false`},
		{"not said", ``, ``},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := `{"model":"m","input":"hi","text":{"format":{"type":"json_schema","name":"w","schema":{"type":"object"}` + tt.strict + `}}}`
			r, err := decodeRequest([]byte(body))
			if err != nil {
				t.Fatal(err)
			}
			up, err := encodeRequest(r, "m")
			if err != nil {
				t.Fatal(err)
			}
			echo, err := json.Marshal(shell("resp_1", "m", &r, 1))
			if err != nil {
				t.Fatal(err)
			}
			for what, got := range map[string][]byte{"upstream request": up.Body, "response": echo} {
				has := bytes.Contains(got, []byte(`"strict"`))
				if tt.want == "" && has || tt.want != "" && !bytes.Contains(got, []byte(tt.want)) {
					t.Errorf("%s = %s, want strict %q", what, got, tt.want)
				}
			}
		})
	}
}
