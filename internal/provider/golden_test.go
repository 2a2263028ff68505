package provider

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"baimo/internal/clock"
	"baimo/internal/provider/ir"
	"baimo/internal/sse"
	"baimo/internal/usage"
)

var update = flag.Bool("update", false, "rewrite golden files under testdata/translate")

const testdataDir = "../../testdata"

var allFormats = []ir.Format{ir.FormatOpenAI, ir.FormatAnthropic, ir.FormatGemini, ir.FormatResponses}

// vendorDirs lists, per upstream format, the fixture directories whose
// responses and streams that format's decoder reads.
var vendorDirs = map[ir.Format][]string{
	ir.FormatOpenAI:    {"openai", "deepseek", "kimi", "qwen"},
	ir.FormatAnthropic: {"anthropic"},
	ir.FormatGemini:    {"gemini"},
	ir.FormatResponses: {"responses"},
}

// streamRequests are the client requests made before a stream is translated,
// asking for everything a client can see (usage, thoughts).
var streamRequests = map[ir.Format]string{
	ir.FormatOpenAI:    `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":true}}`,
	ir.FormatAnthropic: `{"model":"m","max_tokens":1024,"messages":[{"role":"user","content":"hi"}],"stream":true}`,
	ir.FormatGemini:    `{"contents":[{"role":"user","parts":[{"text":"hi"}]}],"generationConfig":{"thinkingConfig":{"includeThoughts":true}}}`,
	ir.FormatResponses: `{"model":"m","input":"hi","stream":true}`,
}

func newTestTranslator(t *testing.T, client, upstream ir.Format) Translator {
	t.Helper()
	tr, err := NewTranslator(client, upstream, clock.NewFake(time.Unix(1700000000, 0)))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func pairs() [][2]ir.Format {
	var out [][2]ir.Format
	for _, c := range allFormats {
		for _, u := range allFormats {
			if c != u {
				out = append(out, [2]ir.Format{c, u})
			}
		}
	}
	return out
}

func pairDir(c, u ir.Format) string {
	return filepath.Join(testdataDir, "translate", c.String()+"-to-"+u.String())
}

// randomIDs are the ids the Responses codec makes up (responses.NewID):
// golden files show them as <prefix>_ID.
var randomIDs = regexp.MustCompile(`\b(resp|msg|fc|rs)_[0-9a-f]{48}\b`)

// checkGolden compares got with the golden file, or rewrites it with -update.
func checkGolden(t *testing.T, path string, got []byte) {
	t.Helper()
	got = randomIDs.ReplaceAll(got, []byte("${1}_ID"))
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s\n--- want\n%s", path, got, want)
	}
}

func pretty(b []byte) []byte {
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "  "); err != nil {
		return b
	}
	return buf.Bytes()
}

func usageLine(u usage.Usage) string {
	return fmt.Sprintf("usage: input=%d cached=%d write5m=%d write1h=%d output=%d reasoning=%d source=%s\n",
		u.Input, u.CachedInput, u.CacheWrite5m, u.CacheWrite1h, u.Output, u.Reasoning, u.Source)
}

func files(t *testing.T, dir, ext string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*"+ext))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(m)
	return m
}

func caseName(path string) string {
	b := filepath.Base(path)
	return strings.TrimSuffix(b, filepath.Ext(b))
}

func TestRequestGolden(t *testing.T) {
	for _, pr := range pairs() {
		c, u := pr[0], pr[1]
		for _, in := range files(t, filepath.Join(testdataDir, "translate", "requests", c.String()), ".json") {
			name := caseName(in)
			t.Run(c.String()+"-to-"+u.String()+"/"+name, func(t *testing.T) {
				body, err := os.ReadFile(in)
				if err != nil {
					t.Fatal(err)
				}
				var s struct {
					Stream bool `json:"stream"`
				}
				_ = json.Unmarshal(body, &s)
				up, err := newTestTranslator(t, c, u).Request(Request{Body: body, Model: "upstream-model", Stream: s.Stream})
				var out bytes.Buffer
				if err != nil {
					var ue *ir.UnsupportedError
					var be *ir.BadRequestError
					switch {
					case errors.As(err, &ue):
						fmt.Fprintf(&out, "unsupported: %v\n", err)
					case errors.As(err, &be):
						fmt.Fprintf(&out, "bad request: %v\n", err)
					default:
						t.Fatalf("untyped error: %v", err)
					}
					if strings.HasPrefix(name, "unsupported") && ue == nil {
						t.Errorf("want an *UnsupportedError, got %v", err)
					}
				} else {
					if strings.HasPrefix(name, "unsupported") {
						t.Errorf("want an *UnsupportedError, got a translation")
					}
					if !json.Valid(up.Body) {
						t.Fatalf("output is not JSON: %s", up.Body)
					}
					fmt.Fprintf(&out, "path: %s\nstream: %v\n%s\n", up.Path, s.Stream, pretty(up.Body))
				}
				checkGolden(t, filepath.Join(pairDir(c, u), "request-"+name+".golden"), out.Bytes())
			})
		}
	}
}

func TestResponseGolden(t *testing.T) {
	for _, pr := range pairs() {
		c, u := pr[0], pr[1]
		for _, dir := range vendorDirs[u] {
			for _, in := range files(t, filepath.Join(testdataDir, "vendors", dir), ".json") {
				if strings.HasPrefix(caseName(in), "error") {
					continue // TestErrorGolden
				}
				name := dir + "-" + caseName(in)
				t.Run(c.String()+"-to-"+u.String()+"/"+name, func(t *testing.T) {
					body, err := os.ReadFile(in)
					if err != nil {
						t.Fatal(err)
					}
					tr := newTestTranslator(t, c, u)
					if _, err := tr.Request(Request{Body: []byte(streamRequests[c]), Model: "upstream-model"}); err != nil {
						t.Fatal(err)
					}
					var out bytes.Buffer
					rb, us, err := tr.Response(body)
					if err != nil {
						t.Fatal(err)
					}
					fmt.Fprintf(&out, "%s\n%s", pretty(rb), usageLine(us))
					if cu, ok := clientResponseUsage(c, rb); ok {
						compareVisibleUsage(t, c, us, cu)
					}
					checkGolden(t, filepath.Join(pairDir(c, u), "response-"+name+".golden"), out.Bytes())
				})
			}
		}
	}
}

// TestErrorGolden runs every recorded upstream error answer through the
// live mapping (UpstreamError, then ErrorBody in the client's format), for
// every pair of formats, the same one included: what a client sees, and
// what routing learns.
func TestErrorGolden(t *testing.T) {
	for _, c := range allFormats {
		for _, u := range allFormats {
			for _, dir := range vendorDirs[u] {
				for _, in := range files(t, filepath.Join(testdataDir, "vendors", dir), ".json") {
					if !strings.HasPrefix(caseName(in), "error") {
						continue
					}
					name := dir + "-" + caseName(in)
					t.Run(c.String()+"-to-"+u.String()+"/"+name, func(t *testing.T) {
						body, err := os.ReadFile(in)
						if err != nil {
							t.Fatal(err)
						}
						e, uf := UpstreamError(u, errorStatus(dir), body, 3*time.Second)
						status, eb := ErrorBody(c, e)
						var out bytes.Buffer
						fmt.Fprintf(&out, "status: %d\nretry-after: %s\nfault: %s\ncode: %s\n%s\n", status, e.RetryAfter, uf.Fault, uf.Code, pretty(eb))
						checkGolden(t, filepath.Join(pairDir(c, u), "error-"+name+".golden"), out.Bytes())
					})
				}
			}
		}
	}
}

func errorStatus(dir string) int {
	switch dir {
	case "anthropic":
		return 529
	case "gemini":
		return 400
	}
	return 429
}

// runStream feeds an upstream stream through tr event by event, as the
// gateway will, and returns the client bytes and the error of the end step.
func runStream(tr Translator, in []byte) (out []byte, streamErr, endErr error) {
	rd := sse.NewReader(bytes.NewReader(in), 1<<16)
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, err, nil
		}
		out, err = tr.Stream(out, ev)
		if err != nil {
			return out, err, nil
		}
	}
	out, endErr = tr.StreamEnd(out)
	return out, nil, endErr
}

func TestStreamGolden(t *testing.T) {
	for _, pr := range pairs() {
		c, u := pr[0], pr[1]
		for _, dir := range vendorDirs[u] {
			for _, in := range files(t, filepath.Join(testdataDir, "vendors", dir), ".sse") {
				name := dir + "-" + caseName(in)
				t.Run(c.String()+"-to-"+u.String()+"/"+name, func(t *testing.T) {
					body, err := os.ReadFile(in)
					if err != nil {
						t.Fatal(err)
					}
					tr := newTestTranslator(t, c, u)
					if _, err := tr.Request(Request{Body: []byte(streamRequests[c]), Model: "upstream-model", Stream: true}); err != nil {
						t.Fatal(err)
					}
					got, serr, eerr := runStream(tr, body)
					var out bytes.Buffer
					out.Write(got)
					if serr != nil {
						fmt.Fprintf(&out, "stream error: %v\n", serr)
					}
					if eerr != nil {
						fmt.Fprintf(&out, "end error: %v\n", eerr)
					}
					us, ok := tr.StreamUsage()
					if ok {
						out.WriteString(usageLine(us))
					}
					complete := serr == nil && eerr == nil
					if err := checkClientStream(c, got, complete); err != nil {
						t.Errorf("client stream is malformed: %v\n%s", err, got)
					}
					if complete {
						cu, seen := clientStreamUsage(t, c, got)
						if !seen || !ok {
							t.Errorf("usage missing: client saw %v, stream reported %v", seen, ok)
						} else {
							compareVisibleUsage(t, c, us, cu)
						}
					}
					checkGolden(t, filepath.Join(pairDir(c, u), "stream-"+name+".golden"), out.Bytes())
				})
			}
		}
	}
}

// compareVisibleUsage checks that the usage a client reads equals the metered
// usage on every count the client's format can express.
func compareVisibleUsage(t *testing.T, c ir.Format, metered, seen usage.Usage) {
	t.Helper()
	m := metered
	switch c {
	case ir.FormatOpenAI:
		m.CacheWrite5m, m.CacheWrite1h = 0, 0
	case ir.FormatAnthropic:
		m.Reasoning = 0
	case ir.FormatGemini, ir.FormatResponses:
		m.CacheWrite5m, m.CacheWrite1h = 0, 0
	}
	m.Source, seen.Source = 0, 0
	if m != seen {
		t.Errorf("client sees usage %+v, metered %+v", seen, m)
	}
}
