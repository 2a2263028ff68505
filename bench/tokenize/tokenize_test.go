// Package tokenizebench measures internal/tokenize against
// github.com/pkoukk/tiktoken-go on the fixed mixed corpus written by
// mkcorpus (run ./run.sh, which also runs the Node libraries side by side).
package tokenizebench

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/pkoukk/tiktoken-go"
	tiktokenloader "github.com/pkoukk/tiktoken-go-loader"

	"baimo/internal/tokenize"
)

func corpusPath() string {
	if path := os.Getenv("BAIMO_TOKENIZE_CORPUS"); path != "" {
		return path
	}
	return filepath.Join("..", "..", "bench", "out", "tokenize-corpus.txt")
}

func corpus(b *testing.B) string {
	b.Helper()
	data, err := os.ReadFile(corpusPath())
	if err != nil {
		b.Skipf("corpus missing (run go run ./bench/tokenize/mkcorpus): %v", err)
	}
	return string(data)
}

// langCorpus reads the single-language corpus of lang (zh, ja or ko) written
// by mkcorpus -lang next to the mixed corpus.
func langCorpus(b *testing.B, lang string) string {
	b.Helper()
	path := filepath.Join(filepath.Dir(corpusPath()), "tokenize-corpus-"+lang+".txt")
	data, err := os.ReadFile(path)
	if err != nil {
		b.Skipf("corpus missing (run go run ./bench/tokenize/mkcorpus -lang %s -out %s): %v", lang, path, err)
	}
	return string(data)
}

var allEncodings = []*tokenize.Encoding{tokenize.O200k, tokenize.CL100k, tokenize.Qwen2, tokenize.DeepSeekV3}

// BenchmarkCount counts the whole corpus with each tokenizer; MB/s is the
// throughput on one core.
func BenchmarkCount(b *testing.B) {
	text := corpus(b)
	for _, e := range allEncodings {
		b.Run(e.Name(), func(b *testing.B) {
			if err := e.Load(); err != nil {
				b.Fatal(err)
			}
			n := e.Count(text)
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				e.Count(text)
			}
			b.ReportMetric(float64(n), "tokens")
		})
	}
}

// BenchmarkCountCJK counts the Chinese, Japanese and Korean corpora (gettext
// translations, about 200 KB each) with each tokenizer.
func BenchmarkCountCJK(b *testing.B) {
	for _, lang := range []string{"zh", "ja", "ko"} {
		text := langCorpus(b, lang)
		for _, e := range allEncodings {
			b.Run(lang+"/"+e.Name(), func(b *testing.B) {
				if err := e.Load(); err != nil {
					b.Fatal(err)
				}
				n := e.Count(text)
				b.SetBytes(int64(len(text)))
				b.ReportAllocs()
				for b.Loop() {
					e.Count(text)
				}
				b.ReportMetric(float64(n), "tokens")
			})
		}
	}
}

// BenchmarkEncode is BenchmarkCount returning the ids, into a reused slice.
func BenchmarkEncode(b *testing.B) {
	text := corpus(b)
	e := tokenize.O200k
	ids := e.Encode(nil, text)
	b.SetBytes(int64(len(text)))
	b.ReportAllocs()
	for b.Loop() {
		ids = e.Encode(ids[:0], text)
	}
}

// BenchmarkTiktokenGo encodes the corpus with github.com/pkoukk/tiktoken-go.
func BenchmarkTiktokenGo(b *testing.B) {
	text := corpus(b)
	tiktoken.SetBpeLoader(tiktokenloader.NewOfflineLoader())
	for _, name := range []string{"o200k_base", "cl100k_base"} {
		b.Run(name, func(b *testing.B) {
			enc, err := tiktoken.GetEncoding(name)
			if err != nil {
				b.Fatal(err)
			}
			n := len(enc.EncodeOrdinary(text))
			if want := tokenize.Encodings[name].Count(text); n != want {
				b.Logf("tiktoken-go counts %d, tokenize %d", n, want)
			}
			b.SetBytes(int64(len(text)))
			b.ReportAllocs()
			for b.Loop() {
				enc.EncodeOrdinary(text)
			}
			b.ReportMetric(float64(n), "tokens")
		})
	}
}

// BenchmarkPrompt10k counts a prompt of about 10,000 tokens (o200k_base):
// the latency that counting adds to a request.
func BenchmarkPrompt10k(b *testing.B) {
	benchPrompt10k(b, corpus(b), tokenize.O200k)
}

// BenchmarkPrompt10kZh counts a Chinese prompt of about 10,000 tokens with
// each tokenizer.
func BenchmarkPrompt10kZh(b *testing.B) {
	text := langCorpus(b, "zh")
	for _, e := range allEncodings {
		b.Run(e.Name(), func(b *testing.B) { benchPrompt10k(b, text, e) })
	}
}

func benchPrompt10k(b *testing.B, text string, e *tokenize.Encoding) {
	// Find a prefix of about 10,000 tokens, cut at a paragraph.
	lo, hi := 0, len(text)
	for lo < hi {
		mid := (lo + hi) / 2
		if e.Count(text[:mid]) < 10000 {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	prompt := text[:lo]
	if i := strings.LastIndex(prompt, "\n\n"); i > 0 {
		prompt = prompt[:i]
	}
	tokens := e.Count(prompt)
	b.SetBytes(int64(len(prompt)))
	b.ReportAllocs()
	for b.Loop() {
		e.Count(prompt)
	}
	b.ReportMetric(float64(tokens), "tokens")
}

// BenchmarkLoad measures parsing a vocabulary and the heap it keeps.
func BenchmarkLoad(b *testing.B) {
	for _, name := range []string{"o200k_base", "cl100k_base", "qwen2", "deepseek_v3"} {
		b.Run(name, func(b *testing.B) {
			var heap float64
			for b.Loop() {
				b.StopTimer()
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				e, _ := tokenize.NewEncoding(name)
				b.StartTimer()
				if err := e.Load(); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = float64(after.HeapAlloc-before.HeapAlloc) / (1 << 20)
				runtime.KeepAlive(e)
				b.StartTimer()
			}
			b.ReportMetric(heap, "MB-heap")
		})
	}
}
