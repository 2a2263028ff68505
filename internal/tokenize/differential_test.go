package tokenize

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// corpusCase is one entry of testdata/tokenize/corpus.json: text, or raw
// bytes in hex for invalid UTF-8.
type corpusCase struct {
	Name string `json:"name"`
	Text string `json:"text"`
	Hex  string `json:"hex"`
}

func readCorpus(t testing.TB) []corpusCase {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "tokenize", "corpus.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cs []corpusCase
	if err := json.Unmarshal(data, &cs); err != nil {
		t.Fatal(err)
	}
	for i, c := range cs {
		if c.Hex != "" {
			b, err := hex.DecodeString(c.Hex)
			if err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			cs[i].Text = string(b)
		}
	}
	return cs
}

// randomTexts builds texts from atoms of every character class the
// pre-tokenizers distinguish, so that their boundaries meet in many orders.
func randomTexts(seed uint64, n int) []string {
	atoms := []string{
		"a", "Z", "hello", "World", "ABC", "ǅ", "ʰ", "ー", "々", "é", "e\u0301", "\u0301", "\u0903", "中", "文字", "ア", "ひ", "한",
		"0", "7", "123", "٣", "½", "Ⅻ", "²",
		" ", "  ", "\t", "\n", "\r\n", "\r", "\u00a0", "\u3000", "\u2009", "\u0085", "\ufeff", "\u200b",
		"'", "'s", "'T", "'re", "'LL", "'ve", "'d", "'m", "'x", "’",
		".", ",", "!", "?", "/", "//", "\\", "-", "_", "#", "@", "$", "%", "&", "*", "(", ")", "<", ">", "=", "+", "~", "`", "|",
		"。", "，", "！", "“", "”", "…", "—", "€", "¥", "😀", "👍🏽", "🇨🇳", "∑", "→", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<｜User｜>",
		"<think>", "</think>", "\x00", "\x1b",
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]string, n)
	for i := range out {
		var b strings.Builder
		for k := r.IntN(24) + 1; k > 0; k-- {
			b.WriteString(atoms[r.IntN(len(atoms))])
		}
		out[i] = b.String()
	}
	return out
}

// TestDifferential runs the reference tokenizers (npm tiktoken and
// @lenml/tokenizers) through e2e/tokenize/encode.mjs and requires every token
// id to match.
func TestDifferential(t *testing.T) {
	if testing.Short() {
		t.Skip("differential test runs Node; skipped with -short")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH: the differential test against the reference tokenizers needs Node.js and npm")
	}
	dir := filepath.Join("..", "..", "e2e", "tokenize")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@lenml", "tokenizers")); err != nil {
		if _, err := exec.LookPath("npm"); err != nil {
			t.Skip("npm is not on PATH and e2e/tokenize/node_modules is missing")
		}
		cmd := exec.CommandContext(ctx, "npm", "ci", "--no-audit", "--no-fund")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	}

	type input struct{ name, raw, text string }
	var ins []input
	for _, c := range readCorpus(t) {
		// The references take JavaScript strings, so invalid UTF-8 reaches
		// them as U+FFFD per byte, as Go's JSON decoder delivers it.
		ins = append(ins, input{c.Name, c.Text, string([]rune(c.Text))})
	}
	// The random texts' seed is 1 unless BAIMO_TOKENIZE_SEED says otherwise.
	seed := uint64(1)
	if v := os.Getenv("BAIMO_TOKENIZE_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("BAIMO_TOKENIZE_SEED: %v", err)
		}
		seed = n
	}
	t.Logf("random texts from seed %d (set BAIMO_TOKENIZE_SEED to change)", seed)
	for i, s := range randomTexts(seed, 1000) {
		ins = append(ins, input{fmt.Sprintf("random-%d", i), s, s})
	}
	texts := make([]string, len(ins))
	for i, in := range ins {
		texts[i] = in.text
	}
	body, err := json.Marshal(texts)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(ctx, "node", "encode.mjs")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("node encode.mjs: %v\n%s", err, stderr.String())
	}
	var ref map[string][][]int
	if err := json.Unmarshal(out, &ref); err != nil {
		t.Fatalf("reference output: %v", err)
	}
	for name, enc := range Encodings {
		want, ok := ref[name]
		if !ok || len(want) != len(ins) {
			t.Fatalf("%s: reference gave %d results for %d texts", name, len(want), len(ins))
		}
		fails := 0
		for i, in := range ins {
			got := enc.Encode(nil, in.text)
			if !slices.Equal(got, want[i]) {
				fails++
				if fails <= 5 {
					t.Errorf("%s %s %q:\n got %v\nwant %v", name, in.name, in.text, got, want[i])
				}
			}
			if n := enc.Count(in.text); n != len(want[i]) {
				t.Errorf("%s %s: Count = %d, want %d", name, in.name, n, len(want[i]))
			}
			dec, err := enc.Decode(got)
			if err != nil || string(dec) != enc.normalize(in.text) {
				t.Errorf("%s %s: decode(encode(x)) = %q, %v; want %q", name, in.name, dec, err, enc.normalize(in.text))
			}
			if in.raw != in.text {
				ids := enc.Encode(nil, in.raw)
				if dec, err := enc.Decode(ids); err != nil || string(dec) != enc.normalize(in.raw) {
					t.Errorf("%s %s: raw bytes do not round-trip: %q, %v", name, in.name, dec, err)
				}
			}
		}
		if fails > 0 {
			t.Errorf("%s: %d of %d texts differ", name, fails, len(ins))
		}
	}
}
