package main

import (
	"fmt"
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

const limit = 400 * 24

var table = map[string]int{"a": 1 + 1}

var f = func() int { return 1 + 1 }

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
// the count of the block the switch is in, those of one that did not, none;
// the values of package-level declarations get one when the package ran.
func TestCaseBlocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "p.go")
	if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	const d = 6 // the lines of declarations above F
	blocks := []block{
		{file: "m/p.go", startLine: d + 3, startCol: 23, endLine: d + 4, endCol: 9, stmts: 1, count: 3},    // F's body up to the switch
		{file: "m/p.go", startLine: d + 5, startCol: 14, endLine: d + 6, endCol: 15, stmts: 1, count: 1},   // case n > 10
		{file: "m/p.go", startLine: d + 13, startCol: 18, endLine: d + 14, endCol: 11, stmts: 1, count: 0}, // G never ran
	}
	got := caseBlocks(path, "m/p.go", blocks, true)
	want := []block{
		{file: "m/p.go", startLine: 3, startCol: 15, endLine: 3, endCol: 23, count: 1}, // 400 * 24
		{file: "m/p.go", startLine: 5, startCol: 13, endLine: 5, endCol: 39, count: 1}, // the map literal
		{file: "m/p.go", startLine: d + 5, startCol: 7, endLine: d + 5, endCol: 13, count: 3},
		{file: "m/p.go", startLine: d + 7, startCol: 7, endLine: d + 7, endCol: 12, count: 3},
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
	// A package none of whose code ran gets no blocks for its declarations.
	if got := caseBlocks(path, "m/p.go", blocks[2:], false); len(got) != 0 {
		t.Errorf("caseBlocks of a package that did not run = %v", got)
	}
}

func TestWithFlags(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		gcflags string
		want    string
	}{
		{[]string{"test", "-cover", "./x"}, "baimo/...=-N -l", "[test -gcflags=baimo/...=-N -l -cover ./x]"},
		{[]string{"test", "./x"}, "", "[test ./x]"},
		{[]string{"list", "./x"}, "baimo/...=-N -l", "[list ./x]"},
		{nil, "baimo/...=-N -l", "[]"},
	} {
		if got := fmt.Sprint(withFlags(tc.args, tc.gcflags)); got != tc.want {
			t.Errorf("withFlags(%q, %q) = %s, want %s", tc.args, tc.gcflags, got, tc.want)
		}
	}
}
