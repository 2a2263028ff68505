package e2e

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// routeRE matches a route registered on a ServeMux with a method pattern.
var routeRE = regexp.MustCompile(`Handle(?:Func)?\("(GET|POST|PUT|DELETE|PATCH) (/[^"]*)"(\+"?([a-z]+))?`)

// TestREADMEListsEveryRoute checks that the README's Endpoints table has a
// row for every route the gateway registers (the console's HTML pages under
// /ui/ excepted: the table lists them as one), so that a new route cannot
// ship undocumented. The simulator's routes are not the gateway's.
func TestREADMEListsEveryRoute(t *testing.T) {
	root := repoRoot(t)
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, table, ok := strings.Cut(string(readme), "\n## Endpoints\n")
	if !ok {
		t.Fatal("README.md has no ## Endpoints section")
	}
	table, _, _ = strings.Cut(table, "\n## ")
	rows := map[string]bool{}
	for _, l := range strings.Split(table, "\n") {
		if route, _, ok := strings.Cut(strings.TrimPrefix(l, "| `"), "` |"); ok && strings.HasPrefix(l, "| `") {
			rows[route] = true
		}
	}
	var routes []string
	err = filepath.WalkDir(filepath.Join(root, "internal"), func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		// The simulator and test servers (otlptest, ...) serve routes of
		// their own, not the gateway's.
		if d.IsDir() && (d.Name() == "sim" || strings.HasSuffix(d.Name(), "test")) {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range routeRE.FindAllStringSubmatch(string(src), -1) {
			method, path := m[1], m[2]
			if strings.HasPrefix(path, "/ui") {
				continue
			}
			if strings.HasSuffix(path, "/") && m[3] != "" {
				// A route built from a list of actions ("/{name}/"+action):
				// each action has its row; check the first spelled in the source.
				routes = append(routes, method+" "+path+"*")
				continue
			}
			routes = append(routes, method+" "+path)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(routes) < 50 {
		t.Fatalf("found only %d routes under internal/: the pattern no longer matches how routes are registered", len(routes))
	}
	for _, r := range routes {
		if prefix, ok := strings.CutSuffix(r, "*"); ok {
			found := false
			for row := range rows {
				found = found || strings.HasPrefix(row, prefix)
			}
			if !found {
				t.Errorf("README.md's Endpoints table has no row for %s...", prefix)
			}
			continue
		}
		// The Gemini routes take the model and method in one wildcard.
		if strings.HasSuffix(r, "/{rest...}") {
			found := false
			for row := range rows {
				found = found || strings.HasPrefix(row, strings.TrimSuffix(r, "{rest...}")+"{model}")
			}
			if !found {
				t.Errorf("README.md's Endpoints table has no row for %s", r)
			}
			continue
		}
		row := strings.ReplaceAll(strings.ReplaceAll(r, "{model...}", "{model}"), "{$}", "")
		if !rows[row] {
			t.Errorf("README.md's Endpoints table has no row for %s", row)
		}
	}
}
