package gateway

import (
	"context"
	"encoding/json"
	"testing"

	"baimo/internal/billing"
	"baimo/internal/usage"

	"baimo/internal/jsonfield"
	"baimo/internal/keys"
)

// FuzzRequestDecoder drives the request decoder (admit) and the body patcher
// (prepare) with arbitrary bodies: never a panic, and a body that is admitted
// is patched into valid JSON naming the upstream model and asking for usage
// when it streams.
func FuzzRequestDecoder(f *testing.F) {
	f.Add([]byte(`{"model":"pub","messages":[{"role":"user","content":"hi"}],"stream":true}`))
	f.Add([]byte(`{"model":"pub","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false,"x":1}}`))
	f.Add([]byte(`{"model":"pub","messages":[],"stream":"yes"}`))
	f.Add([]byte(`{"mod\u0065l":"pub","messages":[1],"stream_options":null,"stream":true}`))
	g, err := New(Options{Channels: []*Channel{{Name: "c", Models: map[string]string{"pub": "up-model"}, auth: []string{""}}},
		Billing: billing.New(billing.Options{Records: discard{}})})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req := &request{endpoint: Chat, key: &keys.Key{}, channel: g.opt.Channels[0]}
		if aerr := g.admit(req, body); aerr != nil {
			if aerr.Status < 400 || aerr.Status > 499 || aerr.Message == "" {
				t.Fatalf("admit error %+v", aerr)
			}
			return
		}
		out, aerr := g.prepare(req, body)
		if aerr != nil {
			if aerr.Status != 400 {
				t.Fatalf("prepare error %+v", aerr)
			}
			return
		}
		if !json.Valid(out) {
			t.Fatalf("prepared body is not JSON: %q -> %q", body, out)
		}
		s, ok := jsonfield.Find(out, "model")
		if m, _ := jsonfield.String(out[s.Start:s.End]); !ok || m != "up-model" {
			t.Fatalf("upstream model not set: %q", out)
		}
		if req.stream {
			s, ok := jsonfield.Path(out, "stream_options", "include_usage")
			if !ok || string(out[s.Start:s.End]) != "true" {
				t.Fatalf("streaming body does not ask for usage: %q", out)
			}
		}
	})
}

// discard is a record store that keeps nothing.
type discard struct{}

func (discard) WriteRecords(context.Context, []usage.Record) error { return nil }
