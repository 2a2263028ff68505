package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestTokensCount(t *testing.T) {
	file := filepath.Join(t.TempDir(), "in.txt")
	if err := os.WriteFile(file, []byte("通义千问具有强大的能力。"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		args     []string
		code     int
		contains []string
	}{
		{"qwen exact", []string{"tokens", "count", "--model", "qwen-plus", file}, 0,
			[]string{"tokens: 8\n", "characters: 12\n", "characters per token: 1.50\n", "qwen2 (exact)"}},
		{"estimated", []string{"tokens", "count", "--model", "glm-4.5", file}, 0, []string{"estimate (estimated)"}},
		{"by tokenizer", []string{"tokens", "count", "--tokenizer", "o200k_base", file}, 0, []string{"o200k_base (exact)"}},
		{"no model", []string{"tokens", "count", file}, 2, nil},
		{"no subcommand", []string{"tokens"}, 2, nil},
		{"bad tokenizer", []string{"tokens", "count", "--tokenizer", "x", file}, 2, nil},
		{"two files", []string{"tokens", "count", "--model", "gpt-4o", file, file}, 2, nil},
		{"missing file", []string{"tokens", "count", "--model", "gpt-4o", file + ".nope"}, 1, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), tt.args, &out, &errb)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr: %s", code, tt.code, errb.String())
			}
			for _, s := range tt.contains {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output %q lacks %q", out.String(), s)
				}
			}
		})
	}
}
