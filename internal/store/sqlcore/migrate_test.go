package sqlcore

import (
	"strings"
	"testing"
)

// TestMigrationsRendered checks that every type token of the shared
// migrations is spelled in both dialects.
func TestMigrationsRendered(t *testing.T) {
	for _, d := range []Dialect{SQLite, Postgres} {
		ms, err := d.Migrations()
		if err != nil {
			t.Fatal(err)
		}
		if len(ms) == 0 {
			t.Fatalf("%s: no migrations", d.Name)
		}
		for _, m := range ms {
			if i := strings.Index(m.SQL, "{{"); i >= 0 {
				t.Errorf("%s %s: unrendered token at %q", d.Name, m.Name, m.SQL[i:min(len(m.SQL), i+20)])
			}
		}
	}
}
