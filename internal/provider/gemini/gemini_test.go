package gemini

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

const vendorDir = "../../../testdata/vendors/gemini"

func TestResponseUsage(t *testing.T) {
	tests := []struct {
		file string
		want usage.Usage
	}{
		// promptTokenCount includes the cached 4096; output = 11 + 300 thoughts.
		{"response.json", usage.Usage{Input: 4120, CachedInput: 4096, Output: 311, Reasoning: 300, Source: usage.SourceVendor}},
		{"response_tools.json", usage.Usage{Input: 98, Output: 73, Reasoning: 50, Source: usage.SourceVendor}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join(vendorDir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := ChunkUsage(body)
			if err != nil || !ok {
				t.Fatalf("ok %v, err %v", ok, err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func streamUsage(in []byte) (usage.Usage, bool, error) {
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
		if err := s.Chunk(ev.Data); err != nil {
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
		// The last chunk's usageMetadata is the request's: 5 + 100 thoughts.
		{"stream.sse", usage.Usage{Input: 9, Output: 105, Reasoning: 100, Source: usage.SourceVendor}},
		{"stream_cached.sse", usage.Usage{Input: 2100, CachedInput: 2048, Output: 64, Reasoning: 60, Source: usage.SourceVendor}},
		{"stream_tools.sse", usage.Usage{Input: 70, Output: 15, Source: usage.SourceVendor}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in, err := os.ReadFile(filepath.Join(vendorDir, tt.file))
			if err != nil {
				t.Fatal(err)
			}
			got, ok, err := streamUsage(in)
			if err != nil || !ok {
				t.Fatalf("ok %v, err %v", ok, err)
			}
			if got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestChunkWithoutUsage(t *testing.T) {
	_, ok, err := ChunkUsage([]byte(`{"candidates":[{"content":{"parts":[{"text":"hi"}]}}]}`))
	if ok || err != nil {
		t.Errorf("ok %v, err %v; want neither", ok, err)
	}
}

func TestFromNormalisedInverts(t *testing.T) {
	for _, u := range []usage.Usage{
		{Input: 2100, CachedInput: 2048, Output: 64, Reasoning: 60, Source: usage.SourceVendor},
		{Input: 9, Output: 5, Source: usage.SourceVendor},
	} {
		m := FromNormalised(u)
		if m.TotalTokenCount != u.Input+u.Output {
			t.Errorf("total %d for %+v", m.TotalTokenCount, u)
		}
		if got := m.Normalise(); got != u {
			t.Errorf("round trip: got %+v, want %+v", got, u)
		}
	}
}

func FuzzStreamUsage(f *testing.F) {
	for _, name := range []string{"stream.sse", "stream_cached.sse", "stream_tools.sse"} {
		b, err := os.ReadFile(filepath.Join(vendorDir, name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		u, ok, err := streamUsage(in)
		if err == nil && ok && (u.Input < 0 || u.Output < u.Reasoning) {
			t.Errorf("impossible usage %+v", u)
		}
	})
}

func BenchmarkChunkUsage(b *testing.B) {
	data := []byte(`{"candidates": [{"content": {"parts": [{"text": "AI learns from data, and then it predicts the next token."}],"role": "model"},"index": 0}],"usageMetadata": {"promptTokenCount": 9,"candidatesTokenCount": 2,"totalTokenCount": 111,"thoughtsTokenCount": 100},"modelVersion": "gemini-2.5-flash","responseId": "mGfuaNnGOeXqmtkPx4O0qA0"}`)
	var s StreamUsage
	for b.Loop() {
		_ = s.Chunk(data)
	}
}
