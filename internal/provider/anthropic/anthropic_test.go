package anthropic

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"baimo/internal/sse"
	"baimo/internal/usage"
)

const vendorDir = "../../../testdata/vendors/anthropic"

func TestResponseUsage(t *testing.T) {
	tests := []struct {
		file string
		want usage.Usage
	}{
		// input 21 + cache read 0 + cache write 188086 (all 1h).
		{"message.json", usage.Usage{Input: 188107, CacheWrite1h: 188086, Output: 393, Source: usage.SourceVendor}},
		{"message_tools.json", usage.Usage{Input: 3050, CachedInput: 2000, CacheWrite5m: 600, CacheWrite1h: 400, Output: 120, Source: usage.SourceVendor}},
		// No cache_creation split: every write has the default 5m lifetime.
		{"message_legacy_cache.json", usage.Usage{Input: 3082, CachedInput: 1024, CacheWrite5m: 2048, Output: 3, Source: usage.SourceVendor}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(vendorDir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, err := ResponseUsage(body)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func streamUsage(t testing.TB, in []byte) (usage.Usage, bool, error) {
	var s StreamUsage
	rd := sse.NewReader(bytes.NewReader(in), 1<<16)
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return usage.Usage{}, false, err
		}
		if err := s.Event(ev.Name, ev.Data); err != nil {
			return usage.Usage{}, false, err
		}
	}
	u, ok := s.Usage()
	return u, ok, nil
}

func TestStreamUsage(t *testing.T) {
	tests := []struct {
		file string
		want usage.Usage
	}{
		// message_start: input 25, read 1200, write 300 (100 5m, 200 1h);
		// message_delta: output 15.
		{"stream.sse", usage.Usage{Input: 1525, CachedInput: 1200, CacheWrite5m: 100, CacheWrite1h: 200, Output: 15, Source: usage.SourceVendor}},
		{"stream_tools.sse", usage.Usage{Input: 472, Output: 89, Source: usage.SourceVendor}},
		// The stream broke after message_start: its provisional output count.
		{"stream_error.sse", usage.Usage{Input: 12, Output: 1, Source: usage.SourceVendor}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(vendorDir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := streamUsage(t, in)
			if err != nil || !ok {
				t.Fatalf("ok %v, err %v", ok, err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestStreamUsageWithoutEventNames(t *testing.T) {
	in := []byte("data: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}\n\n" +
		"data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"usage\"}}\n\n" +
		"data: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":7}}\n\n")
	got, ok, err := streamUsage(t, in)
	if err != nil || !ok {
		t.Fatalf("ok %v, err %v", ok, err)
	}
	if want := (usage.Usage{Input: 5, Output: 7, Source: usage.SourceVendor}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestFromNormalisedInverts(t *testing.T) {
	tests := []usage.Usage{
		{Input: 1525, CachedInput: 1200, CacheWrite5m: 100, CacheWrite1h: 200, Output: 15, Source: usage.SourceVendor},
		{Input: 10, Output: 0, Source: usage.SourceVendor},
		{Source: usage.SourceVendor},
	}
	for _, u := range tests {
		a := FromNormalised(u)
		if got := *a.InputTokens; got != u.Input-u.CachedInput-u.CacheWrite5m-u.CacheWrite1h {
			t.Errorf("input_tokens %d for %+v", got, u)
		}
		if got := a.Normalise(); got != u {
			t.Errorf("round trip: got %+v, want %+v", got, u)
		}
	}
}

func FuzzStreamUsage(f *testing.F) {
	for _, name := range []string{"stream.sse", "stream_tools.sse", "stream_error.sse"} {
		b, err := os.ReadFile(filepath.Join(vendorDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		u, ok, err := streamUsage(t, in)
		if err == nil && ok && (u.Input < 0 || u.Output < 0 || u.CachedInput > u.Input) {
			t.Errorf("impossible usage %+v", u)
		}
		_, _ = ResponseUsage(in)
	})
}

func BenchmarkStreamUsageTextDelta(b *testing.B) {
	name := []byte("content_block_delta")
	data := []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hello there, how are you doing today?"}}`)
	var s StreamUsage
	for b.Loop() {
		_ = s.Event(name, data)
	}
}

func BenchmarkStreamUsageMessageDelta(b *testing.B) {
	name := []byte("message_delta")
	data := []byte(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":15}}`)
	var s StreamUsage
	for b.Loop() {
		_ = s.Event(name, data)
	}
}
