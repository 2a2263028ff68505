package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCoverProfile(t *testing.T) {
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"test", "-cover", "-coverprofile", "/tmp/c", "./..."}, "/tmp/c"},
		{[]string{"test", "-coverprofile=/tmp/d", "./x"}, "/tmp/d"},
		{[]string{"test", "--coverprofile", "/tmp/e"}, "/tmp/e"},
		{[]string{"test", "-failfast", "./x"}, ""},
		{[]string{"build", "-coverprofile", "/tmp/c"}, ""},
		{nil, ""},
	} {
		if got := coverProfile(tt.args); got != tt.want {
			t.Errorf("coverProfile(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

const src = `package p

func F(n int) string {
	switch {
	case n > 10:
		return "big"
	case n > 0:
		return "small"
	}
	return "none"
}

func G(n int) int {
	switch n {
	case 1 + 1:
		return 2
	}
	return 0
}
`

// TestCaseBlocks: the case expressions of a switch that ran get a block with
// the count of the block the switch is in; those of one that did not, none.
func TestCaseBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.go")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	blocks := []block{
		{file: "m/p.go", startLine: 3, startCol: 23, endLine: 4, endCol: 9, stmts: 1, count: 3},    // F's body up to the switch
		{file: "m/p.go", startLine: 5, startCol: 14, endLine: 6, endCol: 15, stmts: 1, count: 1},   // case n > 10
		{file: "m/p.go", startLine: 13, startCol: 18, endLine: 14, endCol: 11, stmts: 1, count: 0}, // G never ran
	}
	got := caseBlocks(path, "m/p.go", blocks)
	want := []block{
		{file: "m/p.go", startLine: 5, startCol: 7, endLine: 5, endCol: 13, count: 3},
		{file: "m/p.go", startLine: 7, startCol: 7, endLine: 7, endCol: 12, count: 3},
	}
	if len(got) != len(want) {
		t.Fatalf("caseBlocks = %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("block %d = %v, want %v", i, got[i], want[i])
		}
	}
	b, err := parseBlock(want[0].String())
	if err != nil || b != want[0] {
		t.Errorf("parseBlock(%q) = %v, %v", want[0], b, err)
	}
}
