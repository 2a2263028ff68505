package provider

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"baimo/internal/apierr"
	"baimo/internal/provider/ir"
	"baimo/internal/sse"
)

func TestParseFormat(t *testing.T) {
	for _, f := range allFormats {
		got, err := ir.ParseFormat(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFormat(%q) = %v, %v", f, got, err)
		}
	}
	if _, err := ir.ParseFormat("unknown"); err == nil {
		t.Error("ParseFormat(unknown) succeeded")
	}
}

func TestNewTranslatorRefusesUnknown(t *testing.T) {
	tests := []struct{ c, u ir.Format }{{ir.FormatUnknown, ir.FormatOpenAI}, {ir.FormatOpenAI, ir.Format(9)}}
	for _, tt := range tests {
		if _, err := NewTranslator(tt.c, tt.u, nil); err == nil {
			t.Errorf("NewTranslator(%v, %v) succeeded", tt.c, tt.u)
		}
	}
	for _, f := range allFormats {
		if _, err := NewTranslator(f, f, nil); err != nil {
			t.Errorf("NewTranslator(%v, %v): %v", f, f, err)
		}
	}
}

func TestUnsupportedErrorNamesFeatureAndUpstream(t *testing.T) {
	tr := newTestTranslator(t, ir.FormatAnthropic, ir.FormatOpenAI)
	_, err := tr.Request(Request{Body: []byte(`{"model":"m","max_tokens":5,"top_k":3,"messages":[{"role":"user","content":"x"}]}`)})
	var ue *ir.UnsupportedError
	if !errors.As(err, &ue) || ue.Feature != "top_k" || ue.To != ir.FormatOpenAI || ue.HTTPStatus() != 400 {
		t.Fatalf("got %v", err)
	}
	if !strings.Contains(err.Error(), "top_k") || !strings.Contains(err.Error(), "openai") {
		t.Errorf("message %q names neither feature nor upstream", err)
	}
}

func TestBadRequest(t *testing.T) {
	for _, c := range allFormats {
		u := ir.FormatOpenAI
		if c == u {
			u = ir.FormatGemini
		}
		_, err := newTestTranslator(t, c, u).Request(Request{Body: []byte(`[1,2]`)})
		var be *ir.BadRequestError
		if !errors.As(err, &be) || be.HTTPStatus() != 400 {
			t.Errorf("%v: got %v, want a *BadRequestError", c, err)
		}
	}
}

func readVendor(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(testdataDir, "vendors", path))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestStreamIncremental checks that every upstream content event yields
// client bytes in the same call: nothing waits for the end of the stream.
func TestStreamIncremental(t *testing.T) {
	upstreams := map[ir.Format]string{ir.FormatOpenAI: "openai/stream.sse", ir.FormatAnthropic: "anthropic/stream.sse", ir.FormatGemini: "gemini/stream.sse",
		ir.FormatResponses: "responses/stream_tools.sse"}
	for _, pr := range pairs() {
		c, u := pr[0], pr[1]
		t.Run(c.String()+"-to-"+u.String(), func(t *testing.T) {
			tr := newTestTranslator(t, c, u)
			if _, err := tr.Request(Request{Body: []byte(streamRequests[c]), Model: "m", Stream: true}); err != nil {
				t.Fatal(err)
			}
			rd := sse.NewReader(bytes.NewReader(readVendor(t, upstreams[u])), 0)
			for {
				ev, err := rd.Next()
				if err != nil {
					break
				}
				text := bytes.Contains(ev.Data, []byte(`"text_delta"`)) ||
					(u == ir.FormatOpenAI && bytes.Contains(ev.Data, []byte(`"content":"Hello"`))) ||
					(u == ir.FormatGemini && bytes.Contains(ev.Data, []byte(`"AI learns"`))) ||
					(u == ir.FormatResponses && bytes.Contains(ev.Data, []byte(`"response.output_text.delta"`)))
				out, err := tr.Stream(nil, ev)
				if err != nil {
					t.Fatal(err)
				}
				if text && len(out) == 0 {
					t.Errorf("event %s produced nothing", ev.Data)
				}
			}
		})
	}
}

func TestStreamEndedEarly(t *testing.T) {
	// Everything up to, not including, message_delta.
	full := readVendor(t, "anthropic/stream.sse")
	cut := full[:bytes.Index(full, []byte("event: message_delta"))]
	for _, c := range []ir.Format{ir.FormatOpenAI, ir.FormatGemini} {
		tr := newTestTranslator(t, c, ir.FormatAnthropic)
		if _, err := tr.Request(Request{Body: []byte(streamRequests[c]), Model: "m", Stream: true}); err != nil {
			t.Fatal(err)
		}
		out, serr, eerr := runStream(tr, cut)
		if serr != nil || !errors.Is(eerr, ir.ErrStreamIncomplete) {
			t.Fatalf("%v: stream error %v, end error %v", c, serr, eerr)
		}
		if !bytes.Contains(out, []byte(`"error"`)) {
			t.Errorf("%v: no error event for the client:\n%s", c, out)
		}
		if err := checkClientStream(c, out, false); err != nil {
			t.Errorf("%v: %v", c, err)
		}
		if u, ok := tr.StreamUsage(); !ok || u.Input != 1525 {
			t.Errorf("%v: usage %+v %v, want the input side from message_start", c, u, ok)
		}
	}
}

func TestStreamMalformedUpstream(t *testing.T) {
	for _, pr := range pairs() {
		c, u := pr[0], pr[1]
		tr := newTestTranslator(t, c, u)
		if _, err := tr.Request(Request{Body: []byte(streamRequests[c]), Model: "m", Stream: true}); err != nil {
			t.Fatal(err)
		}
		out, err := tr.Stream(nil, sse.Event{Name: []byte("message_start"), Data: []byte(`{not json`)})
		if !errors.Is(err, ir.ErrUpstream) {
			t.Errorf("%v-to-%v: err %v, want ErrUpstream", c, u, err)
		}
		if !bytes.Contains(out, []byte("malformed upstream stream")) {
			t.Errorf("%v-to-%v: no error event:\n%s", c, u, out)
		}
		// The stream is over: more events add nothing.
		more, err := tr.Stream(nil, sse.Event{Data: []byte(`{}`)})
		if len(more) != 0 || err != nil {
			t.Errorf("%v-to-%v: after failure got %q, %v", c, u, more, err)
		}
	}
}

func TestGeminiClientToolArgsLimit(t *testing.T) {
	tr := newTestTranslator(t, ir.FormatGemini, ir.FormatOpenAI)
	if _, err := tr.Request(Request{Body: []byte(streamRequests[ir.FormatGemini]), Model: "m", Stream: true}); err != nil {
		t.Fatal(err)
	}
	start := `{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"call_1","type":"function","function":{"name":"f","arguments":""}}]}}]}`
	if _, err := tr.Stream(nil, sse.Event{Data: []byte(start)}); err != nil {
		t.Fatal(err)
	}
	frag := `{"id":"c","object":"chat.completion.chunk","model":"m","choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"` + strings.Repeat("a", 1<<20) + `"}}]}}]}`
	var err error
	for i := 0; i < 10 && err == nil; i++ {
		_, err = tr.Stream(nil, sse.Event{Data: []byte(frag)})
	}
	if !errors.Is(err, ir.ErrUpstream) || !strings.Contains(err.Error(), "arguments over") {
		t.Errorf("got %v, want the tool argument limit", err)
	}
}

func TestErrorBody(t *testing.T) {
	tests := []struct {
		f    ir.Format
		want string
	}{
		{ir.FormatOpenAI, `{"error":{"message":"bad key","type":"authentication_error","param":null,"code":"invalid_api_key"}}`},
		{ir.FormatAnthropic, `{"type":"error","error":{"type":"authentication_error","message":"bad key"}}`},
		{ir.FormatGemini, `{"error":{"code":401,"message":"bad key","status":"UNAUTHENTICATED"}}`},
	}
	for _, tt := range tests {
		if st, got := ErrorBody(tt.f, apierr.Unauthorized("bad key")); st != 401 || string(got) != tt.want {
			t.Errorf("%v: got %s, want %s", tt.f, got, tt.want)
		}
	}
}

func TestErrorFromUnparseableBody(t *testing.T) {
	e, uf := UpstreamError(ir.FormatGemini, 502, []byte("<html>bad gateway</html>"), 0)
	status, body := ErrorBody(ir.FormatAnthropic, e)
	if status != 502 || uf.Fault != FaultServer || string(body) != `{"type":"error","error":{"type":"api_error","message":"The upstream model server failed (502)."}}` {
		t.Errorf("got %d %s (%v)", status, body, uf)
	}
}

func TestClientModelIsEchoed(t *testing.T) {
	for _, pr := range pairs() {
		c, u := pr[0], pr[1]
		tr := newTestTranslator(t, c, u)
		if _, err := tr.Request(Request{Body: []byte(streamRequests[c]), Model: "upstream-x", ClientModel: "public-y", Stream: true}); err != nil {
			t.Fatal(err)
		}
		in := map[ir.Format]string{ir.FormatOpenAI: "openai/stream.sse", ir.FormatAnthropic: "anthropic/stream.sse", ir.FormatGemini: "gemini/stream.sse",
			ir.FormatResponses: "responses/stream_tools.sse"}[u]
		out, serr, eerr := runStream(tr, readVendor(t, in))
		if serr != nil || eerr != nil {
			t.Fatal(serr, eerr)
		}
		if !bytes.Contains(out, []byte(`"public-y"`)) {
			t.Errorf("%v-to-%v: client model missing from the stream:\n%s", c, u, out)
		}
	}
}
