package provider

import (
	"testing"

	"baimo/internal/provider/ir"
	"baimo/internal/sse"
)

// BenchmarkStreamTextDelta measures translating one upstream text event, the
// commonest event of a stream, for every pair.
func BenchmarkStreamTextDelta(b *testing.B) {
	events := map[ir.Format]sse.Event{
		ir.FormatOpenAI:    {Data: []byte(`{"id":"c","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"Hello there, how are you?"},"finish_reason":null}]}`)},
		ir.FormatAnthropic: {Name: []byte("content_block_delta"), Data: []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello there, how are you?"}}`)},
		ir.FormatGemini:    {Data: []byte(`{"candidates":[{"content":{"parts":[{"text":"Hello there, how are you?"}],"role":"model"},"index":0}],"modelVersion":"g","responseId":"r"}`)},
	}
	for _, pr := range pairs() {
		c, u := pr[0], pr[1]
		b.Run(c.String()+"-to-"+u.String(), func(b *testing.B) {
			tr, err := NewTranslator(c, u, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := tr.Request(Request{Body: []byte(streamRequests[c]), Model: "m", Stream: true}); err != nil {
				b.Fatal(err)
			}
			var out []byte
			ev := events[u]
			for b.Loop() {
				out, err = tr.Stream(out[:0], ev)
				if err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
