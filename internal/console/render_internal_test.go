package console

import (
	"io/fs"
	"path"
	"strings"
	"testing"
)

// TestParsePages parses every embedded page, as the first page rendered
// does: New no longer parses them, so this is what fails on a template that
// does not parse or a page without the layout.
func TestParsePages(t *testing.T) {
	pages, err := parsePages()
	if err != nil {
		t.Fatal(err)
	}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		t.Fatal(err)
	}
	want := 0
	for _, n := range names {
		file := path.Base(n)
		if strings.HasPrefix(file, "_") {
			continue
		}
		want++
		pt, ok := pages[strings.TrimSuffix(file, ".html")]
		if !ok {
			t.Errorf("page %s not parsed", file)
			continue
		}
		if pt.t.Lookup("layout") == nil {
			t.Errorf("page %s has no layout template", file)
		}
	}
	if want == 0 || len(pages) != want {
		t.Errorf("%d pages parsed, want %d", len(pages), want)
	}
}
