package e2e

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// chromiumPaths are where Debian's chromium package puts the browser.
var chromiumPaths = []string{"/usr/bin/chromium", "/usr/bin/chromium-browser"}

// TestConsoleBrowser drives the web console in headless Chromium (Debian's
// package, through playwright-core; no browser is downloaded): the flow of
// e2e/console/console.test.js. Screenshots of every page it visits are left
// in e2e/console/artifacts (ignored by git). It skips, saying why, without
// Node.js, npm or Chromium (.ci/run installs Chromium when it can).
func TestConsoleBrowser(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH; the console's browser tests need Node.js 20 or later, npm and Debian's chromium")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not on PATH; the console's browser tests need Node.js 20 or later, npm and Debian's chromium")
	}
	browser := os.Getenv("CHROMIUM")
	for _, p := range chromiumPaths {
		if browser == "" {
			if _, err := os.Stat(p); err == nil {
				browser = p
			}
		}
	}
	if browser == "" {
		t.Skip("chromium is not installed (apt-get install chromium); the console's browser tests need it")
	}
	dir := filepath.Join(repoRoot(t), "e2e", "console")
	installSDK(t, npm, dir, "playwright-core")

	simURL := startSim(t)
	s := startServer(t, t.TempDir(), "adm-"+randomHex(t, 16))
	artifacts := filepath.Join(dir, "artifacts")
	if err := os.RemoveAll(artifacts); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "--test", "--test-reporter=spec", "console.test.js")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "BAIMO_URL="+s.URL, "BAIMO_ADMIN_KEY="+s.AdminKey, "CHROMIUM="+browser,
		"ARTIFACTS="+artifacts, "SIM_URL="+simURL, "NO_COLOR=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test console.test.js failed (%v):\n%s", err, out)
	}
	t.Logf("node --test:\n%s\nscreenshots in %s", summary(out), artifacts)
	s.stop(t)
}
