package layering

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

// deps returns the packages pkg imports, directly or not.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath", pkg).Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	var list []string
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p struct{ ImportPath string }
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		list = append(list, p.ImportPath)
	}
	return list
}

func TestDomainImportsNoHTTPOrSQL(t *testing.T) {
	forbidden := []string{"net/http", "database/sql", "github.com/jackc/pgx", "modernc.org/sqlite", "baimo/internal/store"}
	for _, pkg := range []string{"money", "usage", "price", "ledger", "billing"} {
		for _, d := range deps(t, "baimo/internal/"+pkg) {
			for _, f := range forbidden {
				if d == f || strings.HasPrefix(d, f+"/") {
					t.Errorf("internal/%s imports %s (transitively)", pkg, d)
				}
			}
		}
	}
}

func TestRequestPathImportsNoStore(t *testing.T) {
	for _, pkg := range []string{"gateway", "billing", "route", "provider"} {
		for _, d := range deps(t, "baimo/internal/"+pkg) {
			if strings.HasPrefix(d, "baimo/internal/store") || d == "database/sql" {
				t.Errorf("internal/%s imports %s", pkg, d)
			}
		}
	}
}
