package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    time.Duration
		wantErr bool
	}{
		{
			name: "plain",
			in:   "1234 (baimo) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 8 0 100 1000 200",
			want: 3 * time.Second,
		},
		{
			name: "command with spaces and parentheses",
			in:   "77 (a (b) c) R 1 77 77 0 -1 0 0 0 0 0 7 3 0 0 20 0 1 0 1 1 1",
			want: 100 * time.Millisecond,
		},
		{name: "no parenthesis", in: "1 baimo S 1", wantErr: true},
		{name: "too few fields", in: "1 (x) S 1 2 3", wantErr: true},
		{name: "not a number", in: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 abc 3 0", wantErr: true},
		{name: "negative", in: "1 (x) S 1 1 1 0 -1 0 0 0 0 0 -5 3 0", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatCPU([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStatCPU(%q) error = %v, want error %v", tt.in, err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseStatCPU(%q) = %v, want %v", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseStatusMemory(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    memory
		wantErr bool
	}{
		{
			name: "both",
			in:   "Name:\tbaimo\nVmPeak:\t 900 kB\nVmHWM:\t   2048 kB\nVmRSS:\t   1024 kB\nThreads:\t5\n",
			want: memory{RSS: 1024 * 1024, Peak: 2048 * 1024},
		},
		{name: "missing HWM", in: "VmRSS:\t 1 kB\n", wantErr: true},
		{name: "odd unit", in: "VmRSS:\t 1 MB\nVmHWM:\t 1 kB\n", wantErr: true},
		{name: "bad number", in: "VmRSS:\t x kB\nVmHWM:\t 1 kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStatusMemory([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseStatusMemory error = %v, want error %v", err, tt.wantErr)
			}
			if got != tt.want {
				t.Errorf("parseStatusMemory = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestProcOfSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	if _, err := procCPU(os.Getpid()); err != nil {
		t.Errorf("procCPU(self): %v", err)
	}
	m, err := procMemory(os.Getpid())
	if err != nil {
		t.Fatalf("procMemory(self): %v", err)
	}
	if m.RSS <= 0 || m.Peak < m.RSS {
		t.Errorf("procMemory(self) = %+v, want 0 < RSS <= Peak", m)
	}
}

func TestPercentile(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		out := make([]time.Duration, len(v))
		for i, x := range v {
			out[i] = time.Duration(x) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // descending, to check it sorts
	}
	tests := []struct {
		name string
		in   []time.Duration
		p    float64
		want time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(3, 1, 2), 50, 2 * time.Millisecond},
		{"p50 of 100", ms(hundred...), 50, 50 * time.Millisecond},
		{"p99 of 100", ms(hundred...), 99, 99 * time.Millisecond},
		{"p100 of 100", ms(hundred...), 100, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := append([]time.Duration(nil), tt.in...)
			if got := percentile(tt.in, tt.p); got != tt.want {
				t.Errorf("percentile(p%v) = %v, want %v", tt.p, got, tt.want)
			}
			for i := range in {
				if in[i] != tt.in[i] {
					t.Fatalf("percentile changed its input")
				}
			}
		})
	}
}

func TestCheckTargetURL(t *testing.T) {
	tests := []struct {
		in     string
		wantOK bool
	}{
		{"http://127.0.0.1:8080", true},
		{"http://localhost:8080", true},
		{"http://[::1]:8080", true},
		{"http://127.0.0.2:8080", true},
		{"http://10.0.0.1:8080", false},
		{"http://192.168.1.1:80", false},
		{"http://example.com:80", false},
		{"https://127.0.0.1:8443", false},
		{"http://127.0.0.1", false},
		{"127.0.0.1:8080", false},
	}
	for _, tt := range tests {
		err := checkTargetURL(tt.in)
		if (err == nil) != tt.wantOK {
			t.Errorf("checkTargetURL(%q) = %v, want ok %v", tt.in, err, tt.wantOK)
		}
		if err != nil && !errors.Is(err, errUsage) {
			t.Errorf("checkTargetURL(%q) error %v does not wrap errUsage", tt.in, err)
		}
	}
}

func TestParseRunFlags(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		wantOK bool
	}{
		{"minimal", []string{"-direct", "http://127.0.0.1:1"}, true},
		{"no direct", []string{}, false},
		{"remote proxy", []string{"-direct", "http://127.0.0.1:1", "-proxy", "http://8.8.8.8:80"}, false},
		{"huge concurrency", []string{"-direct", "http://127.0.0.1:1", "-c", "100000"}, false},
		{"long duration", []string{"-direct", "http://127.0.0.1:1", "-dur", "1h"}, false},
		{"endless streams", []string{"-direct", "http://127.0.0.1:1", "-stream-tpot-ms", "1000", "-stream-tokens", "1000"}, false},
		{"stray argument", []string{"-direct", "http://127.0.0.1:1", "extra"}, false},
		{"more rounds than requests", []string{"-direct", "http://127.0.0.1:1", "-n1", "3", "-rounds", "4"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseRunFlags(tt.args, io.Discard)
			if (err == nil) != tt.wantOK {
				t.Errorf("parseRunFlags(%q) = %v, want ok %v", tt.args, err, tt.wantOK)
			}
		})
	}
}

func TestRedactArgs(t *testing.T) {
	in := []string{"run", "-baimo-key", "sk-secret", "--baimo-admin-key=adm", "-n1", "5"}
	got := strings.Join(redactArgs(in), " ")
	if strings.Contains(got, "sk-secret") || strings.Contains(got, "adm ") || strings.HasSuffix(got, "=adm") {
		t.Errorf("redactArgs left a secret: %q", got)
	}
	if want := "run -baimo-key $KEY --baimo-admin-key=$KEY -n1 5"; got != want {
		t.Errorf("redactArgs = %q, want %q", got, want)
	}
	if in[2] != "sk-secret" {
		t.Errorf("redactArgs changed its input")
	}
}

func TestCheckResponse(t *testing.T) {
	tests := []struct {
		name   string
		status int
		stream bool
		body   string
		wantOK bool
	}{
		{"answer", 200, false, `{"choices":[]}`, true},
		{"error status", 502, false, `{"choices":[]}`, false},
		{"no choices", 200, false, `{}`, false},
		{"stream done", 200, true, "data: {}\n\ndata: [DONE]\n\n", true},
		{"stream cut", 200, true, "data: {}\n\n", false},
	}
	for _, tt := range tests {
		err := checkResponse(tt.status, tt.stream, []byte(tt.body))
		if (err == nil) != tt.wantOK {
			t.Errorf("%s: checkResponse = %v, want ok %v", tt.name, err, tt.wantOK)
		}
	}
}

// newProxyPair starts the minimal upstream and the bare proxy in front of it.
func newProxyPair(t *testing.T) (upstream, proxy *httptest.Server) {
	t.Helper()
	upstream = httptest.NewServer(newUpstream())
	t.Cleanup(upstream.Close)
	u, err := url.Parse(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	proxy = httptest.NewServer(fullDuplex(newReverseProxy(u)))
	t.Cleanup(proxy.Close)
	return upstream, proxy
}

func TestPhasesAgainstProxy(t *testing.T) {
	_, proxy := newProxyPair(t)
	tg := newTarget("proxy", proxy.URL, os.Getpid(), "", 32)
	ctx := context.Background()
	for _, stream := range []bool{false, true} {
		req := request{Stream: stream, Body: chatBody("sim-chat", stream, 5, 0)}
		r := sequential(ctx, tg, req, 20)
		if r.OK != 20 || r.Fail != 0 || len(r.Latencies) != 20 {
			t.Errorf("sequential stream=%v: ok %d fail %d latencies %d (%s), want 20/0/20", stream, r.OK, r.Fail, len(r.Latencies), r.FirstErr)
		}
		c, err := concurrent(ctx, tg, req, 8, 10*time.Second, 40)
		if err != nil {
			t.Fatalf("concurrent stream=%v: %v", stream, err)
		}
		if c.OK != 40 || c.Fail != 0 {
			t.Errorf("concurrent stream=%v: ok %d fail %d (%s), want 40 requests (the -max bound), no failures", stream, c.OK, c.Fail, c.FirstErr)
		}
		if c.CPU < 0 {
			t.Errorf("concurrent stream=%v: CPU %v, want it measured", stream, c.CPU)
		}
	}
	slow := request{Stream: true, Body: chatBody("sim-chat", true, 5, 20)}
	h, err := holdStreams(ctx, tg, slow, 30, time.Minute, 10*time.Millisecond)
	if err != nil {
		t.Fatalf("holdStreams: %v", err)
	}
	if h.Opened != 30 || h.Completed != 30 || h.Fail != 0 || h.RSSOpen <= 0 {
		t.Errorf("holdStreams = %+v, want 30 opened and completed, RSS sampled", h)
	}
}

func TestPhasesCountFailures(t *testing.T) {
	_, proxy := newProxyPair(t)
	tg := newTarget("proxy", proxy.URL, 0, "", 4)
	// The upstream answers 500 when asked to, and the tool must count it as a failure.
	body := []byte(`{"model":"sim-chat","sim":{"status":500}}`)
	r := sequential(context.Background(), tg, request{Body: body}, 3)
	if r.OK != 0 || r.Fail != 3 || !strings.Contains(r.FirstErr, "status 500") {
		t.Errorf("sequential against a failing upstream: ok %d fail %d first %q, want 0/3 with status 500", r.OK, r.Fail, r.FirstErr)
	}
}

func TestRunReport(t *testing.T) {
	upstream, proxy := newProxyPair(t)
	var out, errOut bytes.Buffer
	args := []string{"run", "-direct", upstream.URL, "-proxy", proxy.URL, "-proxy-pid", "0",
		"-n1", "10", "-rounds", "2", "-c", "4", "-dur", "200ms", "-max", "50",
		"-streams", "10", "-stream-tpot-ms", "10", "-stream-tokens", "3"}
	if code := run(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("run exited %d: %s", code, errOut.String())
	}
	rep := out.String()
	for _, want := range []string{
		"| direct | non-stream |", "| proxy | stream |", "### Concurrency 4",
		"### 10 concurrent streams", "| proxy | 10 | 10 | 0 |", "No baimo target",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	if strings.Contains(rep, "First error") {
		t.Errorf("report shows errors:\n%s", rep)
	}
}

func TestBaimoNeedsAKey(t *testing.T) {
	upstream, _ := newProxyPair(t)
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"run", "-direct", upstream.URL, "-baimo", upstream.URL}, &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "-baimo-key") {
		t.Errorf("run with -baimo and no key: exit %d, stderr %q; want 2 naming -baimo-key", code, errOut.String())
	}
}

func TestCreateKey(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/admin/keys" || r.Header.Get("Authorization") != "Bearer adm" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var body struct {
			TenantID string `json:"tenant_id"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.TenantID != "bench" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"k1","key":"sk-baimo-xyz","prefix":"sk-baimo-x"}`)
	}))
	defer srv.Close()
	key, id, err := createKey(context.Background(), srv.URL, "adm", "sim-chat", "bench")
	if err != nil || key != "sk-baimo-xyz" || id != "k1" {
		t.Errorf("createKey = %q, %q, %v; want sk-baimo-xyz, k1", key, id, err)
	}
	if _, _, err := createKey(context.Background(), srv.URL, "wrong", "sim-chat", "bench"); err == nil {
		t.Errorf("createKey with a wrong admin key succeeded")
	}
}

// newFakeBaimo returns a server that speaks the parts of baimo's API the tool
// uses: the admin API for a key and usage totals, and /v1 behind that key.
func newFakeBaimo(t *testing.T, upstream *url.URL) *httptest.Server {
	t.Helper()
	proxy := fullDuplex(newReverseProxy(upstream))
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/keys", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer adm" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id":"k1","key":"sk-baimo-test"}`)
	})
	mux.HandleFunc("GET /admin/usage", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("key_id") != "k1" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		io.WriteString(w, `{"data":[],"totals":{"requests":7}}`)
	})
	mux.HandleFunc("/v1/", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer sk-baimo-test" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		proxy.ServeHTTP(w, r)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestRunReportWithBaimo(t *testing.T) {
	upstream, _ := newProxyPair(t)
	u, err := url.Parse(upstream.URL)
	if err != nil {
		t.Fatal(err)
	}
	baimo := newFakeBaimo(t, u)
	var out, errOut bytes.Buffer
	args := []string{"run", "-direct", upstream.URL, "-baimo", baimo.URL, "-baimo-admin-key", "adm",
		"-n1", "10", "-rounds", "2", "-c", "4", "-dur", "200ms", "-max", "20",
		"-streams", "5", "-stream-tpot-ms", "10", "-stream-tokens", "3"}
	if code := run(context.Background(), args, &out, &errOut); code != 0 {
		t.Fatalf("run exited %d: %s", code, errOut.String())
	}
	rep := out.String()
	for _, want := range []string{
		"| baimo | stream |", "### baimo against the budget", "| added p50 ≤ 100 µs at c=1 | non-stream |",
		"| 5 concurrent streams < 200 MB RSS | stream | n/a | **misses** |", // no -baimo-pid, so no RSS
		"`{\"requests\":7}`", "-baimo-admin-key $KEY",
	} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	if strings.Contains(rep, "First error") || strings.Contains(rep, " adm ") {
		t.Errorf("report shows errors or the admin key:\n%s", rep)
	}
}
