package tokenize

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestDifferentialCJK is TestDifferential on texts of mostly CJK characters
// (cjkTexts), where pieces are cut between characters (cjkSplit): every id
// must match the reference tokenizers. It needs Node.js and the packages
// that TestDifferential installs.
func TestDifferentialCJK(t *testing.T) {
	if testing.Short() {
		t.Skip("differential test runs Node; skipped with -short")
	}
	dir := filepath.Join("..", "..", "e2e", "tokenize")
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node is not on PATH")
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@lenml", "tokenizers")); err != nil {
		t.Skip("e2e/tokenize/node_modules is missing (TestDifferential installs it)")
	}
	texts := cjkTexts(7, 1500)
	for i, s := range texts {
		texts[i] = strings.ToValidUTF8(s, "\uFFFD") // the references take JavaScript strings
	}
	body, err := json.Marshal(texts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
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
		want := ref[name]
		if len(want) != len(texts) {
			t.Fatalf("%s: reference gave %d results for %d texts", name, len(want), len(texts))
		}
		fails := 0
		for i, s := range texts {
			if got := enc.Encode(nil, s); !slices.Equal(got, want[i]) {
				if fails++; fails <= 3 {
					t.Errorf("%s %q:\n got %v\nwant %v", name, s, got, want[i])
				}
			}
		}
		if fails > 0 {
			t.Errorf("%s: %d of %d texts differ", name, fails, len(texts))
		}
	}
	t.Logf("%d texts", len(texts))
}
