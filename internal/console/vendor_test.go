package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io/fs"
	"os"
	"strings"
	"testing"
)

// TestVendoredAssets checks the vendored libraries against their manifest
// (static/vendor/SOURCES) and the manifest against web/package.json, so a
// copy cannot drift from the pinned version unnoticed. (.ci/console-vendor
// also compares them with the npm packages themselves.)
func TestVendoredAssets(t *testing.T) {
	pkg, err := os.ReadFile("web/package.json")
	if err != nil {
		t.Fatal(err)
	}
	var p struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	if err := json.Unmarshal(pkg, &p); err != nil {
		t.Fatal(err)
	}
	src, err := fs.ReadFile(assets, "static/vendor/SOURCES")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(string(src), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 4 {
			t.Fatalf("SOURCES line %q: want package@version, npm path, file, sha256", line)
		}
		name, version, _ := strings.Cut(f[0], "@")
		if p.Dependencies[name] != version {
			t.Errorf("%s: SOURCES says %s, package.json pins %q", f[2], version, p.Dependencies[name])
		}
		b, err := fs.ReadFile(assets, "static/vendor/"+f[2])
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != f[3] {
			t.Errorf("%s does not match its sha256 in SOURCES: it was edited or replaced", f[2])
		}
		seen[name] = true
	}
	for name := range p.Dependencies {
		if !seen[name] {
			t.Errorf("package.json pins %s but nothing of it is vendored", name)
		}
	}
}

// TestScriptSize keeps the console's JavaScript under 150 KB gzipped.
func TestScriptSize(t *testing.T) {
	var total int
	err := fs.WalkDir(assets, "static", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".js") {
			return err
		}
		b, err := fs.ReadFile(assets, path)
		if err != nil {
			return err
		}
		var buf bytes.Buffer
		w, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = w.Write(b)
		_ = w.Close()
		total += buf.Len()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("JavaScript: %d bytes gzipped", total)
	if total > 150<<10 {
		t.Errorf("the console's JavaScript is %d bytes gzipped, over 150 KB", total)
	}
}
