package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Bounds on every wait, so a broken gateway fails the test instead of hanging it.
const (
	buildTimeout    = 8 * time.Minute
	readyTimeout    = 60 * time.Second
	shutdownTimeout = 45 * time.Second // above the gateway's own drain bound (limits.shutdown_timeout, 30 s)
	npmTimeout      = 5 * time.Minute
	nodeTimeout     = 5 * time.Minute
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	tmpRoot   string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if tmpRoot != "" {
		os.RemoveAll(tmpRoot)
	}
	os.Exit(code)
}

// repoRoot returns the directory holding go.mod, above this package.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			t.Fatalf("no go.mod above %s", dir)
		}
	}
}

// baimoBinary builds ./cmd/baimo once per test run and returns its path.
func baimoBinary(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	buildOnce.Do(func() {
		tmpRoot, buildErr = os.MkdirTemp("", "baimo-e2e-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(tmpRoot, "baimo")
		args := []string{"build", "-o", binPath}
		if raceBuild && os.Getenv("BAIMO_E2E_RACE") != "0" {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/baimo")
		ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build baimo: %v", buildErr)
	}
	return binPath
}

// syncBuffer is a bytes.Buffer safe for the process's output goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// server is one running `baimo serve`.
type server struct {
	URL      string
	AdminKey string
	cmd      *exec.Cmd
	out      *syncBuffer
	exited   chan struct{}
	waitErr  error
}

// randomHex returns n random bytes in hex.
func randomHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// freeAddr returns a loopback address with a port nothing listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// startServer starts `baimo serve` on a free port with data under dataDir and
// waits until /readyz answers 200. The server is stopped at the end of the
// test if the test has not stopped it.
func startServer(t *testing.T, dataDir, adminKey string, extraArgs ...string) *server {
	t.Helper()
	bin := baimoBinary(t)
	addr := freeAddr(t)
	s := &server{URL: "http://" + addr, AdminKey: adminKey, out: &syncBuffer{}, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, append([]string{"serve", "--addr", addr, "--data", dataDir}, extraArgs...)...)
	s.cmd.Env = append(os.Environ(), "BAIMO_ADMIN_KEY="+adminKey)
	s.cmd.Stdout = s.out
	s.cmd.Stderr = s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start baimo serve: %v", err)
	}
	go func() {
		s.waitErr = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-s.exited:
		default:
			s.cmd.Process.Kill()
			<-s.exited
		}
		if t.Failed() {
			t.Logf("baimo serve output:\n%s", s.out.String())
		}
	})
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-s.exited:
			t.Fatalf("baimo serve exited before it was ready (%v):\n%s", s.waitErr, s.out.String())
		default:
		}
		resp, err := http.Get(s.URL + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("baimo serve not ready within %s (last: %v):\n%s", readyTimeout, err, s.out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and checks that baimo exits cleanly within the bound,
// with no data race or panic in its output.
func (s *server) stop(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("signal baimo: %v", err)
	}
	select {
	case <-s.exited:
	case <-time.After(shutdownTimeout):
		t.Fatalf("baimo did not exit within %s of SIGTERM:\n%s", shutdownTimeout, s.out.String())
	}
	s.checkExit(t)
}

// checkExit fails the test if baimo exited with an error, a race or a panic.
func (s *server) checkExit(t *testing.T) {
	t.Helper()
	out := s.out.String()
	if strings.Contains(out, "WARNING: DATA RACE") {
		t.Errorf("baimo reported a data race:\n%s", out)
	}
	if strings.Contains(out, "panic:") || strings.Contains(out, "goroutine ") && strings.Contains(out, "[running]") {
		t.Errorf("baimo panicked:\n%s", out)
	}
	if s.waitErr != nil {
		t.Errorf("baimo exited with %v after SIGTERM:\n%s", s.waitErr, out)
	}
}

// httpClient bounds every request the Go side of the tests makes.
var httpClient = &http.Client{Timeout: 30 * time.Second}

// call sends a JSON request and decodes a JSON answer into out (if non-nil);
// it fails the test on a transport error or an answer that does not decode.
func (s *server) call(t *testing.T, method, path, bearer string, body any, header map[string]string, out any) int {
	t.Helper()
	code, err := s.do(method, path, bearer, body, header, out)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// do is call for use off the test goroutine: it returns its error.
func (s *server) do(method, path, bearer string, body any, header map[string]string, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("%s %s: read: %w", method, path, err)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("%s %s: status %d, body not the JSON expected: %w\n%s", method, path, resp.StatusCode, err, b)
		}
	}
	return resp.StatusCode, nil
}

// apiKey is what POST /admin/keys returns.
type apiKey struct {
	ID     string   `json:"id"`
	Key    string   `json:"key"`
	Prefix string   `json:"prefix"`
	Name   string   `json:"name"`
	Models []string `json:"models"`
}

// createKey creates an API key through the admin API.
func (s *server) createKey(t *testing.T, name string, models []string) apiKey {
	t.Helper()
	body := map[string]any{"name": name}
	if models != nil {
		body["models"] = models
	}
	var k apiKey
	if code := s.call(t, http.MethodPost, "/admin/keys", s.AdminKey, body, nil, &k); code != http.StatusCreated {
		t.Fatalf("POST /admin/keys: status %d, want 201", code)
	}
	if k.ID == "" || !strings.HasPrefix(k.Key, "sk-baimo-") || !strings.HasPrefix(k.Key, k.Prefix) || k.Prefix == "" {
		t.Fatalf("POST /admin/keys = %+v, want an id, a key starting sk-baimo- and its prefix", k)
	}
	return k
}

// record is the part of a usage record these tests read.
type record struct {
	RequestID    string `json:"request_id"`
	KeyID        string `json:"key_id"`
	Model        string `json:"model"`
	Stream       bool   `json:"stream"`
	Status       int    `json:"status"`
	InputTokens  int64  `json:"input_tokens"`
	OutputTokens int64  `json:"output_tokens"`
	Complete     bool   `json:"complete"`
	ErrorClass   string `json:"error_class"`
}

// usage lists the usage records of keyID.
func (s *server) usage(t *testing.T, keyID string) []record {
	t.Helper()
	var u struct {
		Data []record `json:"data"`
	}
	if code := s.call(t, http.MethodGet, "/admin/usage?limit=1000&key_id="+keyID, s.AdminKey, nil, nil, &u); code != http.StatusOK {
		t.Fatalf("GET /admin/usage: status %d", code)
	}
	return u.Data
}

func TestSDK(t *testing.T) {
	node, err := exec.LookPath("node")
	if err != nil {
		t.Skip("node is not on PATH; the SDK tests need Node.js 20 or later and npm")
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Skip("npm is not on PATH; the SDK tests need Node.js 20 or later and npm")
	}
	sdkDir := filepath.Join(repoRoot(t), "e2e", "sdk")
	// One `baimo sim` speaks OpenAI, Anthropic and Gemini: it stands behind
	// a channel of each kind, so every SDK reaches every kind of upstream.
	simURL := startSim(t)
	// A second simulator, slow to answer (10 s to its first token), stands
	// behind via-slow: a background response on it is still running when the
	// test cancels it.
	slowURL := startSim(t, "--ttft", "10s")
	s := startServer(t, t.TempDir(), "adm-"+randomHex(t, 16), "--config", formatsConfig(t, simURL, slowURL, cohereRerank(t)))
	key := s.createKey(t, "e2e-all", nil)

	installSDK(t, npm, sdkDir, sdkPackages...)

	files, err := filepath.Glob(filepath.Join(sdkDir, "*.test.js"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no *.test.js in %s (%v)", sdkDir, err)
	}
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, append([]string{"--test", "--test-reporter=spec"}, files...)...)
	cmd.Dir = sdkDir
	cmd.Env = append(os.Environ(),
		"BAIMO_URL="+s.URL,
		"BAIMO_KEY="+key.Key,
		"BAIMO_KEY_ID="+key.ID,
		"BAIMO_ADMIN_KEY="+s.AdminKey,
		"BAIMO_FORMATS=1",
		"BAIMO_SLOW=1",
		"BAIMO_BATCH_VENDOR_MODEL=via-batch",
		"NO_COLOR=1",
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node --test failed (%v):\n%s", err, out)
	}
	t.Logf("node --test:\n%s", summary(out))

	resp, err := httpClient.Get(s.URL + "/healthz")
	if err != nil {
		t.Fatalf("GET /healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /healthz: status %d, want 200", resp.StatusCode)
	}

	// The SDK traffic shows in the metrics, by model.
	resp, err = httpClient.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	metrics, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(metrics, []byte(`"sim-chat"`)) {
		t.Errorf("GET /metrics: status %d, want 200 with series for model \"sim-chat\":\n%.2000s", resp.StatusCode, metrics)
	}
	s.stop(t)
}

// startSim starts `baimo sim` on a free port, answering at once (no pace)
// unless extraArgs say otherwise (--ttft 10s), and returns its base URL (no
// path). It is killed at the end of the test.
func startSim(t *testing.T, extraArgs ...string) string {
	t.Helper()
	addr := freeAddr(t)
	out := &syncBuffer{}
	cmd := exec.Command(baimoBinary(t), append([]string{"sim", "--addr", addr, "--ttft", "0s", "--tpot", "0s"}, extraArgs...)...)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start baimo sim: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("baimo sim output:\n%s", out.String())
		}
	})
	url := "http://" + addr
	deadline := time.Now().Add(readyTimeout)
	for {
		resp, err := http.Get(url + "/v1/models")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		select {
		case <-exited:
			t.Fatalf("baimo sim exited before it was ready:\n%s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("baimo sim not ready within %s (last: %v):\n%s", readyTimeout, err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// formatsConfig writes a configuration with the built-in simulator (model
// sim-chat, as the OpenAI SDK tests use) and one channel of each kind in
// front of the simulator at simURL: public models via-openai, via-anthropic
// and via-gemini, all sim-chat upstream; an Anthropic-kind channel up-slow
// (model via-slow) in front of the slow simulator at slowURL; up-cohere
// (model cohere-rerank, which the tests price) in front of the fake Cohere
// reranker at cohereURL; and up-batch (model via-batch), whose batches go to
// the simulator's batch API. It returns the file's path.
func formatsConfig(t *testing.T, simURL, slowURL, cohereURL string) string {
	t.Helper()
	cfg := fmt.Sprintf(`channels:
  - {name: up-openai, kind: openai, base_url: "%[1]s/v1", models: {via-openai: sim-chat}}
  - {name: up-anthropic, kind: anthropic, base_url: "%[1]s/v1", models: {via-anthropic: sim-chat}}
  - {name: up-gemini, kind: gemini, base_url: "%[1]s/v1beta", models: {via-gemini: sim-chat}}
  - {name: up-slow, kind: anthropic, base_url: "%[2]s/v1", models: {via-slow: sim-chat}}
  - {name: up-cohere, kind: openai, base_url: "%[3]s/v1", models: {cohere-rerank: rerank-v3.5}}
# The simulator's fake vendor batch API takes the batches of via-batch
# (batches.test.js); its other requests run in real time as any channel's.
  - {name: up-batch, kind: openai, base_url: "%[1]s/v1", batch_api: true, models: {via-batch: sim-chat}}
# The SDK tests ask the simulator to fail on purpose (500, 429, cut streams).
# With the defaults, 5 failures in 30 s open the channel's breaker and a 429
# cools its key down, and every later test on it would get 503.
routing:
  channel_breaker: {failures: 1000}
  key_breaker: {failures: 1000}
  max_cooldown: 1ms
`, simURL, slowURL, cohereURL)
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// cohereRerank starts a fake Cohere reranker and returns its base URL (no
// path): POST /v1/rerank answers in Cohere's v2 shape, results by relevance
// (earlier documents first) and meta.billed_units.search_units, one per 100
// documents as Cohere bills them. It is closed at the end of the test.
func cohereRerank(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Model     string            `json:"model"`
			Query     string            `json:"query"`
			Documents []json.RawMessage `json:"documents"`
			TopN      int               `json:"top_n"`
		}
		if r.Method != http.MethodPost || r.URL.Path != "/v1/rerank" {
			http.Error(w, `{"message":"not found"}`, http.StatusNotFound)
			return
		}
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&req); err != nil || req.Model != "rerank-v3.5" ||
			req.Query == "" || len(req.Documents) == 0 {
			http.Error(w, `{"message":"invalid request: model rerank-v3.5, a query and documents are required"}`, http.StatusBadRequest)
			return
		}
		type result struct {
			Index     int     `json:"index"`
			Relevance float64 `json:"relevance_score"`
		}
		n := len(req.Documents)
		if req.TopN > 0 && req.TopN < n {
			n = req.TopN
		}
		results := make([]result, n)
		for i := range results {
			results[i] = result{Index: i, Relevance: 1 / float64(i+1)}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"id":      "fake-cohere-" + strconv.Itoa(len(req.Documents)),
			"results": results,
			"meta": map[string]any{
				"api_version":  map[string]string{"version": "2"},
				"billed_units": map[string]int{"search_units": (len(req.Documents) + 99) / 100},
			},
		})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// sdkPackages are the npm packages the SDK tests drive.
var sdkPackages = []string{"openai", "@anthropic-ai/sdk", "@google/genai"}

// installSDK runs `npm ci` in dir unless the locked packages are installed.
func installSDK(t *testing.T, npm, dir string, pkgs ...string) {
	t.Helper()
	if installedMatchesLock(dir, pkgs) {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), npmTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--no-audit", "--no-fund")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
	}
}

// installedMatchesLock reports whether node_modules holds the version of
// each of pkgs that package-lock.json names.
func installedMatchesLock(dir string, pkgs []string) bool {
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	b, err := os.ReadFile(filepath.Join(dir, "package-lock.json"))
	if err != nil || json.Unmarshal(b, &lock) != nil {
		return false
	}
	for _, pkg := range pkgs {
		var installed struct {
			Version string `json:"version"`
		}
		b, err = os.ReadFile(filepath.Join(dir, "node_modules", filepath.FromSlash(pkg), "package.json"))
		if err != nil || json.Unmarshal(b, &installed) != nil {
			return false
		}
		want := lock.Packages["node_modules/"+pkg].Version
		if want == "" || installed.Version != want {
			return false
		}
	}
	return true
}

// summary returns the closing counts of node's test reporter, or all of out.
func summary(out []byte) string {
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		for _, p := range []string{"ℹ tests", "ℹ pass", "ℹ fail", "ℹ skipped", "# tests", "# pass", "# fail"} {
			if strings.HasPrefix(strings.TrimSpace(l), p) {
				lines = append(lines, l)
			}
		}
	}
	if len(lines) == 0 {
		return string(out)
	}
	return strings.Join(lines, "\n")
}

// chatStream sends a streaming chat request with id and reads it to its end;
// it returns the status and whether the stream ended with data: [DONE].
func (s *server) chatStream(key, id string, sim map[string]int) (int, bool, error) {
	body, _ := json.Marshal(map[string]any{
		"model":    "sim-chat",
		"messages": []map[string]string{{"role": "user", "content": "hello"}},
		"stream":   true,
		"sim":      sim,
	})
	req, err := http.NewRequest(http.MethodPost, s.URL+"/v1/chat/completions", bytes.NewReader(body))
	if err != nil {
		return 0, false, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("X-Request-Id", id)
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, false, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, bytes.Contains(b, []byte("data: [DONE]")), err
}

// sentID returns the X-Request-Id a client sent, given the id baimo filed the
// request under: baimo keeps the client's id and may append "." and a random
// suffix (so that a reused id still makes two records). The ids these tests
// send have no dot.
func sentID(recorded string) string {
	if i := strings.LastIndexByte(recorded, '.'); i > 0 {
		return recorded[:i]
	}
	return recorded
}

// TestShutdownKeepsRecords checks what issue 2 asks of shutdown: a stream in
// flight when SIGTERM arrives is allowed to finish, and no usage record is
// lost, including those still waiting for their batch to be written.
func TestShutdownKeepsRecords(t *testing.T) {
	dataDir := t.TempDir()
	adminKey := "adm-" + randomHex(t, 16)
	s := startServer(t, dataDir, adminKey)
	key := s.createKey(t, "e2e-shutdown", []string{"sim-chat"})

	const n = 40
	ids := make([]string, n)
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		ids[i] = fmt.Sprintf("e2e-shutdown-%d-%s", i, randomHex(t, 6))
		wg.Add(1)
		go func() {
			defer wg.Done()
			var out map[string]any
			code, err := s.do(http.MethodPost, "/v1/chat/completions", key.Key, map[string]any{
				"model": "sim-chat", "messages": []map[string]string{{"role": "user", "content": "hi"}},
			}, map[string]string{"X-Request-Id": ids[i]}, &out)
			if err != nil || code != http.StatusOK {
				errs <- fmt.Errorf("request %d: status %d, %v: %v", i, code, err, out)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	// A slow stream (about 2 s) is in flight when SIGTERM arrives.
	streamID := "e2e-shutdown-stream-" + randomHex(t, 6)
	type streamResult struct {
		status int
		done   bool
		err    error
	}
	streamc := make(chan streamResult, 1)
	go func() {
		status, done, err := s.chatStream(key.Key, streamID, map[string]int{"output_tokens": 20, "tpot_ms": 100})
		streamc <- streamResult{status, done, err}
	}()
	time.Sleep(500 * time.Millisecond) // let the stream start
	s.stop(t)
	sr := <-streamc
	if sr.err != nil || sr.status != http.StatusOK || !sr.done {
		t.Errorf("stream in flight at SIGTERM: status %d, finished %v, err %v; want it to run to data: [DONE]", sr.status, sr.done, sr.err)
	}

	// Every record is on disk after the restart.
	s2 := startServer(t, dataDir, adminKey)
	got := map[string]record{}
	for _, r := range s2.usage(t, key.ID) {
		got[sentID(r.RequestID)] = r
	}
	for _, id := range ids {
		r, ok := got[id]
		switch {
		case !ok:
			t.Errorf("record %s lost across shutdown (%d records kept)", id, len(got))
		case r.Status != http.StatusOK || !r.Complete || r.OutputTokens <= 0 || r.KeyID != key.ID:
			t.Errorf("record %s = %+v, want status 200, complete, output tokens, key %s", id, r, key.ID)
		}
	}
	if r, ok := got[streamID]; !ok {
		t.Errorf("record of the stream in flight at SIGTERM lost")
	} else if !r.Complete || r.OutputTokens != 20 || !r.Stream {
		t.Errorf("record of the stream in flight at SIGTERM = %+v, want a complete stream with 20 output tokens", r)
	}
	s2.stop(t)
}

// TestAdminNeedsTheAdminKey checks that the admin API refuses API keys and
// wrong admin keys.
func TestAdminNeedsTheAdminKey(t *testing.T) {
	s := startServer(t, t.TempDir(), "adm-"+randomHex(t, 16))
	key := s.createKey(t, "e2e-admin", nil)
	for _, tt := range []struct {
		name   string
		bearer string
	}{
		{"API key", key.Key},
		{"wrong admin key", "adm-wrong"},
		{"no key", ""},
	} {
		var e struct {
			Error map[string]any `json:"error"`
		}
		code := s.call(t, http.MethodGet, "/admin/keys", tt.bearer, nil, nil, &e)
		if code != http.StatusUnauthorized && code != http.StatusForbidden {
			t.Errorf("%s: GET /admin/keys status %d, want 401 or 403", tt.name, code)
		}
		if e.Error["message"] == nil {
			t.Errorf("%s: error body %v lacks error.message", tt.name, e)
		}
	}
	var list struct {
		Data []map[string]any `json:"data"`
	}
	if code := s.call(t, http.MethodGet, "/admin/keys", s.AdminKey, nil, nil, &list); code != http.StatusOK {
		t.Fatalf("GET /admin/keys: status %d", code)
	}
	raw, _ := json.Marshal(list)
	if len(list.Data) == 0 || bytes.Contains(raw, []byte(key.Key)) {
		t.Errorf("GET /admin/keys = %s, want the key listed without its secret", raw)
	}
	chat := map[string]any{"model": "sim-chat", "messages": []map[string]string{{"role": "user", "content": "hi"}}}
	if code := s.call(t, http.MethodPost, "/v1/chat/completions", key.Key, chat, nil, nil); code != http.StatusOK {
		t.Fatalf("a new key: chat status %d, want 200", code)
	}
	if code := s.call(t, http.MethodDelete, "/admin/keys/"+key.ID, s.AdminKey, nil, nil, nil); code/100 != 2 {
		t.Errorf("DELETE /admin/keys/%s: status %d, want 2xx", key.ID, code)
	}
	var e struct {
		Error map[string]any `json:"error"`
	}
	code := s.call(t, http.MethodPost, "/v1/chat/completions", key.Key, chat, nil, &e)
	if code != http.StatusUnauthorized {
		t.Errorf("a deleted key: status %d, want 401", code)
	}
	s.stop(t)
}
