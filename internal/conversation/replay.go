package conversation

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"

	"baimo/internal/jsonfield"
)

// Turn is what a new Responses request says about its place in a
// conversation, read leniently from its body: members of the wrong type
// read as absent, for the gateway's admission to refuse in the API's words.
type Turn struct {
	Model        string
	Previous     string // previous_response_id
	Store        bool   // store, true unless false
	Background   bool
	Stream       bool
	Input        json.RawMessage // as sent
	Instructions json.RawMessage // as sent, nil when absent
	Metadata     json.RawMessage // as sent, nil when absent
}

// ReadTurn reads the members the store acts on; ok is false when body is
// not a JSON object.
func ReadTurn(body []byte) (Turn, bool) {
	t := Turn{Store: true}
	if !json.Valid(body) {
		return t, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return t, false
	}
	str := func(v json.RawMessage) string {
		s, _ := jsonfield.String(v)
		return s
	}
	boolean := func(v json.RawMessage, dflt bool) bool {
		if b, ok := jsonfield.Bool(v); ok {
			return b
		}
		return dflt
	}
	t.Model, t.Previous = str(m["model"]), str(m["previous_response_id"])
	t.Store, t.Background, t.Stream = boolean(m["store"], true), boolean(m["background"], false), boolean(m["stream"], false)
	t.Input, t.Instructions, t.Metadata = m["input"], m["instructions"], m["metadata"]
	return t, true
}

// InputItems returns a turn's input as an array of items: a string is one
// user message. An item_reference is refused: the store does not resolve
// references (send the item itself).
func InputItems(input json.RawMessage) (json.RawMessage, error) {
	if len(input) == 0 || jsonfield.IsNull(input) {
		return json.RawMessage(`[]`), nil
	}
	if input[0] == '"' {
		b, err := json.Marshal([]map[string]json.RawMessage{{"role": json.RawMessage(`"user"`), "content": input}})
		return b, err
	}
	if input[0] != '[' {
		return nil, errors.New("input must be a string or an array of input items")
	}
	var bad error
	err := jsonfield.EachElement(input, func(v jsonfield.Span) bool {
		item := input[v.Start:v.End]
		if s, ok := jsonfield.Find(item, "type"); ok {
			if t, _ := jsonfield.String(item[s.Start:s.End]); t == "item_reference" {
				bad = errors.New("item_reference input items are not supported by this gateway; send the item itself")
				return false
			}
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	if bad != nil {
		return nil, bad
	}
	return input, nil
}

// ErrTooLong says a replayed conversation is over the size it may have.
var ErrTooLong = errors.New("conversation: too long")

// History returns the items of the conversation that ends with last, oldest
// first: each stored turn's input items, then its output items. Reasoning
// items without encrypted content are left out (an upstream cannot take
// them back without its own stored copy). get loads a response by id; the
// walk stops after MaxChain turns or past maxBytes of items (ErrTooLong).
func History(ctx context.Context, get func(ctx context.Context, id string) (Response, error), last Response, maxBytes int) ([]json.RawMessage, error) {
	var turns []Response
	size := 0
	for r := last; ; {
		turns = append(turns, r)
		size += len(r.Input) + len(r.Object)
		if size > maxBytes {
			return nil, ErrTooLong
		}
		if r.PreviousID == "" {
			break
		}
		if len(turns) >= MaxChain {
			return nil, fmt.Errorf("%w: more than %d turns", ErrTooLong, MaxChain)
		}
		prev, err := get(ctx, r.PreviousID)
		if err != nil {
			return nil, fmt.Errorf("response %s continues %s: %w", r.ID, r.PreviousID, err)
		}
		r = prev
	}
	var items []json.RawMessage
	for i := len(turns) - 1; i >= 0; i-- {
		t := turns[i]
		var in []json.RawMessage
		if err := json.Unmarshal(t.Input, &in); err != nil {
			return nil, fmt.Errorf("response %s input: %w", t.ID, err)
		}
		items = append(items, in...)
		var obj struct {
			Output []json.RawMessage `json:"output"`
		}
		if err := json.Unmarshal(t.Object, &obj); err != nil {
			return nil, fmt.Errorf("response %s: %w", t.ID, err)
		}
		for _, it := range obj.Output {
			if replayable(it) {
				items = append(items, it)
			}
		}
	}
	return items, nil
}

// replayable reports whether an output item can be sent back upstream.
func replayable(item []byte) bool {
	var it struct {
		Type             string `json:"type"`
		EncryptedContent string `json:"encrypted_content"`
	}
	if json.Unmarshal(item, &it) != nil {
		return false
	}
	return it.Type != "reasoning" || it.EncryptedContent != ""
}

// Body is the request body served for a turn: the client's body with input
// the history followed by the turn's items, without previous_response_id
// and background (the store resolved them), and with store false (the
// gateway keeps the conversation, not the upstream).
func Body(body []byte, history []json.RawMessage, input json.RawMessage) ([]byte, error) {
	var all bytes.Buffer
	all.WriteByte('[')
	for i, it := range history {
		if i > 0 {
			all.WriteByte(',')
		}
		all.Write(it)
	}
	inner := bytes.TrimSpace(input)
	if len(inner) >= 2 {
		inner = bytes.TrimSpace(inner[1 : len(inner)-1])
	}
	if len(inner) > 0 {
		if len(history) > 0 {
			all.WriteByte(',')
		}
		all.Write(inner)
	}
	all.WriteByte(']')
	out, err := jsonfield.Set(body, "input", all.Bytes())
	if err != nil {
		return nil, err
	}
	out = jsonfield.Delete(out, "previous_response_id")
	out = jsonfield.Delete(out, "background")
	return jsonfield.Set(out, "store", []byte("false"))
}

// Echo is what a response object shows of the client's request that the
// gateway changed on the way upstream, and the id the gateway gave it.
type Echo struct {
	ID           string
	Previous     string
	Store        bool
	Background   bool
	Instructions json.RawMessage // nil: null
	Metadata     json.RawMessage // nil: {}
}

// Patch sets obj's id, previous_response_id, store, background,
// instructions and metadata to what the client sent (upstreams echo what
// they were sent; translation knows none of these).
func (e *Echo) Patch(obj []byte) ([]byte, error) {
	prev := []byte("null")
	if e.Previous != "" {
		prev = strconv.AppendQuote(nil, e.Previous)
	}
	ins := e.Instructions
	if ins == nil {
		ins = json.RawMessage("null")
	}
	meta := e.Metadata
	if meta == nil || jsonfield.IsNull(meta) {
		meta = json.RawMessage("{}")
	}
	out := obj
	var err error
	for _, f := range []struct {
		name string
		v    []byte
	}{{"id", strconv.AppendQuote(nil, e.ID)}, {"previous_response_id", prev}, {"store", strconv.AppendBool(nil, e.Store)},
		{"background", strconv.AppendBool(nil, e.Background)}, {"instructions", ins}, {"metadata", meta}} {
		if out, err = jsonfield.Set(out, f.name, f.v); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// PatchEvent patches the response object inside a stream event's data, if
// it carries one, and returns it; final says the event closes the response
// (response.completed, .incomplete or .failed: its object is the final one).
func (e *Echo) PatchEvent(data []byte) (out, obj []byte, final bool, err error) {
	s, ok := jsonfield.Find(data, "response")
	if !ok || data[s.Start] != '{' {
		return data, nil, false, nil
	}
	if obj, err = e.Patch(data[s.Start:s.End]); err != nil {
		return nil, nil, false, err
	}
	if t, ok := jsonfield.Find(data, "type"); ok {
		typ, _ := jsonfield.String(data[t.Start:t.End])
		final = typ == "response.completed" || typ == "response.incomplete" || typ == "response.failed"
	}
	return jsonfield.Replace(data, s, obj), obj, final, nil
}

// Status reads a response object's status.
func Status(obj []byte) string {
	if s, ok := jsonfield.Find(obj, "status"); ok {
		st, _ := jsonfield.String(obj[s.Start:s.End])
		return st
	}
	return ""
}

// ListedItem is one input item as GET …/input_items lists it, with its id.
type ListedItem struct {
	ID   string
	JSON json.RawMessage
}

// ListItems returns a stored response's input items, each with an id (an
// item sent without one gets one derived from the response's id and its
// place, the same at every listing) and a type ("message" when the client
// left it out); newest first when desc.
func ListItems(r Response, desc bool) ([]ListedItem, error) {
	var raw []json.RawMessage
	if err := json.Unmarshal(r.Input, &raw); err != nil {
		return nil, fmt.Errorf("response %s input: %w", r.ID, err)
	}
	out := make([]ListedItem, 0, len(raw))
	for i, it := range raw {
		typ := "message"
		if s, ok := jsonfield.Find(it, "type"); ok {
			if t, _ := jsonfield.String(it[s.Start:s.End]); t != "" {
				typ = t
			}
		}
		id := ""
		if s, ok := jsonfield.Find(it, "id"); ok {
			id, _ = jsonfield.String(it[s.Start:s.End])
		}
		var err error
		if id == "" {
			id = itemID(typ, r.ID, i)
			if it, err = jsonfield.Set(it, "id", strconv.AppendQuote(nil, id)); err != nil {
				return nil, err
			}
		}
		if it, err = jsonfield.Set(it, "type", strconv.AppendQuote(nil, typ)); err != nil {
			return nil, err
		}
		if typ == "message" {
			if it, err = contentParts(it); err != nil {
				return nil, err
			}
		}
		out = append(out, ListedItem{ID: id, JSON: it})
	}
	if desc {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, nil
}

// contentParts lists a message's content as OpenAI lists input items: a
// string content (the shorthand clients may send) becomes one part,
// input_text, or output_text with its annotations for an assistant's.
func contentParts(it json.RawMessage) (json.RawMessage, error) {
	c, ok := jsonfield.Find(it, "content")
	if !ok {
		return it, nil
	}
	text, ok := jsonfield.String(it[c.Start:c.End])
	if !ok {
		return it, nil
	}
	role := ""
	if r, ok := jsonfield.Find(it, "role"); ok {
		role, _ = jsonfield.String(it[r.Start:r.End])
	}
	type part struct {
		Type        string          `json:"type"`
		Text        string          `json:"text"`
		Annotations json.RawMessage `json:"annotations,omitempty"`
	}
	p := part{Type: "input_text", Text: text}
	if role == "assistant" {
		p = part{Type: "output_text", Text: text, Annotations: json.RawMessage(`[]`)}
	}
	b, err := json.Marshal([]part{p})
	if err != nil {
		return nil, fmt.Errorf("message content: %w", err)
	}
	return jsonfield.Replace(it, c, b), nil
}

// itemID derives the id of the i-th input item of response id.
func itemID(typ, id string, i int) string {
	prefix := map[string]string{"message": "msg_", "function_call": "fc_", "function_call_output": "fco_", "reasoning": "rs_"}[typ]
	if prefix == "" {
		prefix = "item_"
	}
	h := sha256.Sum256([]byte(id + "/" + strconv.Itoa(i)))
	return prefix + hex.EncodeToString(h[:16])
}

// Page returns at most limit items after the item with id after (or before
// the one with id before), and whether more follow.
func Page(items []ListedItem, after, before string, limit int) ([]ListedItem, bool, error) {
	lo, hi := 0, len(items)
	find := func(id string) (int, error) {
		for i, it := range items {
			if it.ID == id {
				return i, nil
			}
		}
		return 0, fmt.Errorf("no input item with id '%s' in this response", id)
	}
	if after != "" {
		i, err := find(after)
		if err != nil {
			return nil, false, err
		}
		lo = i + 1
	}
	if before != "" {
		i, err := find(before)
		if err != nil {
			return nil, false, err
		}
		hi = i
	}
	if lo >= hi {
		return nil, false, nil
	}
	if hi-lo > limit {
		return items[lo : lo+limit], true, nil
	}
	return items[lo:hi], false, nil
}
