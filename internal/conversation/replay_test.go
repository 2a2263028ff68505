package conversation

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestReadTurn(t *testing.T) {
	tn, ok := ReadTurn([]byte(`{"model":"m","previous_response_id":"resp_1","store":false,"background":true,"stream":true,"input":"hi","instructions":"be","metadata":{"a":"b"}}`))
	if !ok || tn.Model != "m" || tn.Previous != "resp_1" || tn.Store || !tn.Background || !tn.Stream ||
		string(tn.Input) != `"hi"` || string(tn.Instructions) != `"be"` || string(tn.Metadata) != `{"a":"b"}` {
		t.Errorf("ReadTurn = %+v", tn)
	}
	// Absent or mistyped members read as their defaults.
	tn, ok = ReadTurn([]byte(`{"model":"m","store":"yes","background":1}`))
	if !ok || !tn.Store || tn.Background || tn.Previous != "" {
		t.Errorf("lenient ReadTurn = %+v", tn)
	}
	for _, b := range []string{`[]`, `null`, `{"model":`, ``} {
		if _, ok := ReadTurn([]byte(b)); ok {
			t.Errorf("ReadTurn(%q) ok", b)
		}
	}
}

func TestInputItems(t *testing.T) {
	for _, c := range []struct{ in, want, err string }{
		{`"hello"`, `[{"content":"hello","role":"user"}]`, ""},
		{`[{"role":"user","content":"x"}]`, `[{"role":"user","content":"x"}]`, ""},
		{``, `[]`, ""},
		{`null`, `[]`, ""},
		{`[{"type":"item_reference","id":"msg_1"}]`, "", "item_reference"},
		{`{"role":"user"}`, "", "string or an array"},
	} {
		got, err := InputItems(json.RawMessage(c.in))
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("InputItems(%s) err = %v, want %q", c.in, err, c.err)
			}
			continue
		}
		if err != nil || string(got) != c.want {
			t.Errorf("InputItems(%s) = %s, %v; want %s", c.in, got, err, c.want)
		}
	}
}

// chain is a store of three turns: resp_1 ← resp_2 ← resp_3.
func chain() map[string]Response {
	return map[string]Response{
		"resp_1": {ID: "resp_1", Input: []byte(`[{"role":"user","content":"one"}]`),
			Object: []byte(`{"output":[{"type":"reasoning","id":"rs_1","summary":[]},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"1"}]}]}`)},
		"resp_2": {ID: "resp_2", PreviousID: "resp_1", Input: []byte(`[{"role":"user","content":"two"}]`),
			Object: []byte(`{"output":[{"type":"reasoning","id":"rs_2","encrypted_content":"sig"},{"type":"function_call","call_id":"c","name":"f","arguments":"{}"}]}`)},
		"resp_3": {ID: "resp_3", PreviousID: "resp_2", Input: []byte(`[{"type":"function_call_output","call_id":"c","output":"ok"}]`),
			Object: []byte(`{"output":[{"type":"message","role":"assistant","content":[{"type":"output_text","text":"3"}]}]}`)},
	}
}

func getter(m map[string]Response) func(context.Context, string) (Response, error) {
	return func(_ context.Context, id string) (Response, error) {
		r, ok := m[id]
		if !ok {
			return r, ErrNotFound
		}
		return r, nil
	}
}

// TestHistory: turns oldest first, each input then output; reasoning an
// upstream cannot take back (no encrypted content) left out; bounds hold.
func TestHistory(t *testing.T) {
	m := chain()
	items, err := History(context.Background(), getter(m), m["resp_3"], 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, it := range items {
		got = append(got, string(it))
	}
	want := []string{
		`{"role":"user","content":"one"}`,
		`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"1"}]}`,
		`{"role":"user","content":"two"}`,
		`{"type":"reasoning","id":"rs_2","encrypted_content":"sig"}`,
		`{"type":"function_call","call_id":"c","name":"f","arguments":"{}"}`,
		`{"type":"function_call_output","call_id":"c","output":"ok"}`,
		`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"3"}]}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("History =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := History(context.Background(), getter(m), m["resp_3"], 100); !errors.Is(err, ErrTooLong) {
		t.Errorf("over maxBytes: %v", err)
	}
	delete(m, "resp_1")
	if _, err := History(context.Background(), getter(m), m["resp_3"], 1<<20); !errors.Is(err, ErrNotFound) {
		t.Errorf("a deleted turn: %v", err)
	}
	// A cycle (never written by the service) ends at MaxChain.
	loop := map[string]Response{"a": {ID: "a", PreviousID: "a", Input: []byte(`[]`), Object: []byte(`{}`)}}
	if _, err := History(context.Background(), getter(loop), loop["a"], 1<<30); !errors.Is(err, ErrTooLong) {
		t.Errorf("a cycle: %v", err)
	}
}

func TestBody(t *testing.T) {
	body := []byte(`{"model":"m","previous_response_id":"resp_1","input":"hi","background":true,"store":true,"stream":true}`)
	hist := []json.RawMessage{json.RawMessage(`{"role":"user","content":"a"}`), json.RawMessage(`{"role":"assistant","content":"b"}`)}
	in, _ := InputItems(json.RawMessage(`"hi"`))
	out, err := Body(body, hist, in)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"model":"m","input":[{"role":"user","content":"a"},{"role":"assistant","content":"b"},{"content":"hi","role":"user"}],"store":false,"stream":true}`
	if string(out) != want {
		t.Errorf("Body =\n%s\nwant\n%s", out, want)
	}
	out, _ = Body([]byte(`{"model":"m","input":[]}`), nil, json.RawMessage(`[]`))
	if string(out) != `{"model":"m","input":[],"store":false}` {
		t.Errorf("empty Body = %s", out)
	}
}

func TestPatch(t *testing.T) {
	e := Echo{ID: "resp_mine", Previous: "resp_0", Store: true, Background: true, Instructions: json.RawMessage(`"be brief"`)}
	obj, err := e.Patch([]byte(`{"id":"resp_up","status":"completed","store":false,"previous_response_id":null,"instructions":"merged","output":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"resp_mine","status":"completed","store":true,"previous_response_id":"resp_0","instructions":"be brief","output":[],"background":true,"metadata":{}}`
	if string(obj) != want {
		t.Errorf("Patch =\n%s\nwant\n%s", obj, want)
	}
	data := []byte(`{"type":"response.completed","response":{"id":"resp_up","status":"completed"},"sequence_number":9}`)
	out, obj, final, err := e.PatchEvent(data)
	if err != nil || !final || !strings.Contains(string(out), `"id":"resp_mine"`) || !strings.HasPrefix(string(obj), `{"id":"resp_mine"`) ||
		!strings.HasSuffix(string(out), `"sequence_number":9}`) {
		t.Errorf("PatchEvent = %s, %s, %v, %v", out, obj, final, err)
	}
	delta := []byte(`{"type":"response.output_text.delta","delta":"x"}`)
	if out, obj, final, _ := e.PatchEvent(delta); string(out) != string(delta) || obj != nil || final {
		t.Errorf("a delta was changed: %s", out)
	}
	if _, _, final, _ := e.PatchEvent([]byte(`{"type":"response.created","response":{"id":"x"}}`)); final {
		t.Error("response.created is not final")
	}
}

// TestListItemsContentParts checks that input items list a message's
// content as parts, as OpenAI does, whatever shorthand the client sent.
func TestListItemsContentParts(t *testing.T) {
	for _, tt := range []struct{ item, want string }{
		{`{"role":"user","content":"hi"}`, `"content":[{"type":"input_text","text":"hi"}]`},
		{`{"role":"system","content":"be \"brief\""}`, `"content":[{"type":"input_text","text":"be \"brief\""}]`},
		{`{"role":"assistant","content":"yes"}`, `"content":[{"type":"output_text","text":"yes","annotations":[]}]`},
		{`{"type":"message","role":"user","content":[{"type":"input_text","text":"kept"}]}`, `"content":[{"type":"input_text","text":"kept"}]`},
		{`{"type":"function_call_output","call_id":"c","output":"o"}`, `"output":"o"`},
	} {
		r := Response{ID: "resp_x", Input: []byte("[" + tt.item + "]")}
		items, err := ListItems(r, false)
		if err != nil || len(items) != 1 {
			t.Fatalf("ListItems(%s) = %v, %v", tt.item, items, err)
		}
		if !strings.Contains(string(items[0].JSON), tt.want) {
			t.Errorf("ListItems(%s) = %s, want it to hold %s", tt.item, items[0].JSON, tt.want)
		}
	}
}

func TestListItemsAndPage(t *testing.T) {
	r := Response{ID: "resp_x", Input: []byte(`[{"role":"user","content":"a"},{"type":"function_call_output","call_id":"c","output":"o"},{"id":"msg_given","role":"user","content":"b"}]`)}
	items, err := ListItems(r, false)
	if err != nil || len(items) != 3 {
		t.Fatal(items, err)
	}
	if !strings.HasPrefix(items[0].ID, "msg_") || !strings.HasPrefix(items[1].ID, "fco_") || items[2].ID != "msg_given" ||
		!strings.Contains(string(items[0].JSON), `"type":"message"`) || !strings.Contains(string(items[0].JSON), `"id":"`+items[0].ID+`"`) {
		t.Errorf("ListItems = %+v", items)
	}
	if !strings.Contains(string(items[0].JSON), `"content":[{"type":"input_text","text":"a"}]`) {
		t.Errorf("a string content is not listed as an input_text part: %s", items[0].JSON)
	}
	again, _ := ListItems(r, true)
	if again[0].ID != "msg_given" || again[2].ID != items[0].ID {
		t.Errorf("desc or unstable ids: %+v", again)
	}
	p, more, err := Page(items, "", "", 2)
	if err != nil || len(p) != 2 || !more {
		t.Errorf("first page %v %v %v", p, more, err)
	}
	p, more, _ = Page(items, p[1].ID, "", 2)
	if len(p) != 1 || p[0].ID != "msg_given" || more {
		t.Errorf("after page %v %v", p, more)
	}
	p, _, _ = Page(items, "", "msg_given", 10)
	if len(p) != 2 {
		t.Errorf("before page %v", p)
	}
	if _, _, err := Page(items, "nope", "", 1); err == nil {
		t.Error("an unknown cursor was accepted")
	}
}

// FuzzTurn drives a client body through the store's reading and rewriting:
// no panic, and a body it rewrites is JSON.
func FuzzTurn(f *testing.F) {
	for _, s := range []string{`{"model":"m","input":"hi","previous_response_id":"resp_1","background":true}`,
		`{"model":"m","input":[{"role":"user","content":"x"},{"type":"item_reference","id":"a"}]}`, `{"input":{}}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		tn, ok := ReadTurn(body)
		if !ok {
			return
		}
		items, err := InputItems(tn.Input)
		if err != nil {
			return
		}
		out, err := Body(body, []json.RawMessage{json.RawMessage(`{"role":"user","content":"a"}`)}, items)
		if err == nil && !json.Valid(out) {
			t.Fatalf("Body(%s) = %s: not JSON", body, out)
		}
	})
}
