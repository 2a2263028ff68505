package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestREADMENamesEveryVariable: every environment variable the baimo
// command reads (BAIMO_URL for the CLI, BAIMO_ADMIN_KEY, ...) is named in
// the README, where a new user looks for it.
func TestREADMENamesEveryVariable(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	srcs, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	read := regexp.MustCompile(`(?:Getenv|LookupEnv|envOr)\("(BAIMO_[A-Z0-9_]+)"`)
	var vars []string
	for _, f := range srcs {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range read.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(vars, m[1]) {
				vars = append(vars, m[1])
			}
		}
	}
	for _, must := range []string{"BAIMO_URL", "BAIMO_ADMIN_KEY"} {
		if !slices.Contains(vars, must) {
			t.Fatalf("found the variables %v, not %s: the pattern misses how the command reads them", vars, must)
		}
	}
	for _, v := range vars {
		if !regexp.MustCompile("`" + v + "[`=]").Match(readme) {
			t.Errorf("the README does not name %s", v)
		}
	}
}
