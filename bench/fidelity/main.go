// Command fidelity checks the discrete-event simulator against a live run
// (issue 14): it starts simulated replica servers (baimo sim --replica) and a
// gateway (baimo serve) with a replica pool in front of them, replays a slice
// of a trace over real HTTP as streams, then simulates the same slice with
// internal/simulate and compares TTFT p50 and p90, TPOT p50 and output
// throughput. The live side is timing-sensitive: run it on a quiet machine.
//
//	go run ./bench/fidelity -trace /path/azure_llm_2023_conv.csv -length 3m -replicas 3
//
// Prompts are built so the replicas count them as the trace does (a token
// per word plus three per message); Mooncake traces' hash_ids become shared
// runs of 512 words, so prefix sharing survives.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"baimo/internal/engine"
	"baimo/internal/simulate"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fidelity:", err)
		os.Exit(1)
	}
}

type result struct {
	ttft, tpot time.Duration
	tokens     int
	start, end time.Time
	err        string
}

func run() error {
	baimo := flag.String("baimo", "", "baimo binary (default: build ./cmd/baimo)")
	tracePath := flag.String("trace", "", "trace: Mooncake JSONL or Azure CSV")
	from := flag.Duration("from", 0, "slice start")
	length := flag.Duration("length", 2*time.Minute, "slice length")
	rate := flag.Float64("rate", 1, "arrival-rate multiplier")
	replicas := flag.Int("replicas", 3, "replica servers")
	preset := flag.String("engine", engine.H100Llama31_8B.Name, "step-model preset")
	policy := flag.String("policy", "prefix", "scheduling policy")
	maxOut := flag.Int("max-output", 1024, "cap on a request's output tokens (keeps the run short)")
	flag.Parse()
	if *tracePath == "" {
		return fmt.Errorf("-trace is required")
	}
	full, err := simulate.LoadTrace(*tracePath)
	if err != nil {
		return err
	}
	tr := full.Slice(*from, *length)
	for i := range tr.Requests {
		tr.Requests[i].Output = min(tr.Requests[i].Output, *maxOut)
		tr.Requests[i].Prompt = max(tr.Requests[i].Prompt, 4)
	}
	cfg, ok := engine.Preset(*preset)
	if !ok {
		return fmt.Errorf("unknown preset %q", *preset)
	}
	work, err := os.MkdirTemp("", "fidelity")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	if *baimo == "" {
		*baimo = filepath.Join(work, "baimo")
		if out, err := exec.Command("go", "build", "-o", *baimo, "./cmd/baimo").CombinedOutput(); err != nil {
			return fmt.Errorf("build: %v\n%s", err, out)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var urls []string
	for range *replicas {
		u, err := start(ctx, *baimo, `listening on (http://[^ ]+)`, nil, "sim", "--replica", "--addr", "127.0.0.1:0", "--engine", *preset)
		if err != nil {
			return err
		}
		urls = append(urls, u)
	}
	conf := fmt.Sprintf("sim: {enabled: false}\nbilling: {free_models: [fidelity]}\nlimits: {request_timeout: 30m}\npools:\n  - name: local\n    engine: sim\n    policy: %s\n    models: {fidelity: sim-chat}\n    replicas: [%s]\n",
		*policy, strings.Join(urls, ", "))
	if err := os.WriteFile(filepath.Join(work, "config.yaml"), []byte(conf), 0o600); err != nil {
		return err
	}
	admin := fmt.Sprintf("fidelity-admin-%d", time.Now().UnixNano())
	gw, err := start(ctx, *baimo, `listening on (http://[^ /]+)`, []string{"BAIMO_ADMIN_KEY=" + admin},
		"serve", "--addr", "127.0.0.1:0", "--data", filepath.Join(work, "data"), "--config", filepath.Join(work, "config.yaml"))
	if err != nil {
		return err
	}
	key, err := createKey(gw, admin)
	if err != nil {
		return err
	}
	// Let every replica be scraped before the first request.
	time.Sleep(500 * time.Millisecond)
	fmt.Fprintf(os.Stderr, "replaying %d requests over %s against %d replicas\n", len(tr.Requests), time.Duration(float64(tr.Duration()) / *rate), *replicas)
	live := replay(gw, key, tr, *rate)
	cancel()

	res, err := simulate.Run(simulate.Config{Trace: tr, Rate: *rate, Replicas: *replicas, Engine: cfg, Policy: *policy, Seed: 1})
	if err != nil {
		return err
	}
	var sttft, stpot []time.Duration
	var stok int
	for _, o := range res.Outcomes {
		sttft = append(sttft, o.TTFT)
		if o.Output > 1 {
			stpot = append(stpot, o.TPOT)
		}
		stok += o.Output
	}
	var lttft, ltpot []time.Duration
	var ltok, failed int
	var first, last time.Time
	for _, r := range live {
		if r.err != "" {
			failed++
			continue
		}
		lttft = append(lttft, r.ttft)
		if r.tokens > 1 {
			ltpot = append(ltpot, r.tpot)
		}
		ltok += r.tokens
		if first.IsZero() || r.start.Before(first) {
			first = r.start
		}
		if r.end.After(last) {
			last = r.end
		}
	}
	if failed > 0 {
		fmt.Fprintf(os.Stderr, "%d live requests failed, e.g. %s\n", failed, firstErr(live))
	}
	lthr := float64(ltok) / last.Sub(first).Seconds()
	sthr := float64(stok) / res.End.Seconds()
	row := func(name string, l, s float64, unit string) {
		fmt.Printf("| %s | %.4g %s | %.4g %s | %+.1f%% |\n", name, l, unit, s, unit, 100*(s-l)/l)
	}
	fmt.Printf("Fidelity: %s, %s from %s at ×%g, %d replicas (%s), policy %s, %d requests (%d failed live)\n\n",
		full.Name, *length, *from, *rate, *replicas, *preset, *policy, len(tr.Requests), failed)
	fmt.Println("| figure | live (gateway + replica servers, real HTTP) | simulator | simulator − live |")
	fmt.Println("|---|---:|---:|---:|")
	row("TTFT p50", ms(pct(lttft, 0.5)), ms(pct(sttft, 0.5)), "ms")
	row("TTFT p90", ms(pct(lttft, 0.9)), ms(pct(sttft, 0.9)), "ms")
	row("TPOT p50", ms(pct(ltpot, 0.5)), ms(pct(stpot, 0.5)), "ms")
	row("output throughput", lthr, sthr, "tok/s")
	return nil
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func pct(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	return ds[min(int(q*float64(len(ds))), len(ds)-1)]
}

func firstErr(rs []result) string {
	for _, r := range rs {
		if r.err != "" {
			return r.err
		}
	}
	return ""
}

// start runs baimo with args and returns the first submatch of pattern in
// its output (the address it listens on).
func start(ctx context.Context, bin, pattern string, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return "", err
	}
	re := regexp.MustCompile(pattern)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		sent := false
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil && !sent {
				found <- m[1]
				sent = true
			}
		}
	}()
	select {
	case u := <-found:
		return u, nil
	case <-time.After(30 * time.Second):
		return "", fmt.Errorf("%s %s did not start", bin, args[0])
	}
}

func createKey(gw, admin string) (string, error) {
	for range 100 {
		req, _ := http.NewRequest("POST", gw+"/admin/keys", strings.NewReader(`{"name":"fidelity"}`))
		req.Header.Set("Authorization", "Bearer "+admin)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			var k struct {
				Key string `json:"key"`
			}
			err = json.NewDecoder(resp.Body).Decode(&k)
			resp.Body.Close()
			if err == nil && k.Key != "" {
				return k.Key, nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return "", fmt.Errorf("could not create an API key at %s", gw)
}

// prompt builds a user message the replica counts as n tokens (n-3 words),
// sharing words with prompts that share the trace's leading ids.
func prompt(r simulate.Request, idTokens, idx int) string {
	words := max(r.Prompt-3, 1)
	var b strings.Builder
	n := 0
	for _, id := range r.IDs {
		for j := 0; j < idTokens && n < words; j++ {
			fmt.Fprintf(&b, "k%dw%d ", id, j)
			n++
		}
	}
	for ; n < words; n++ {
		fmt.Fprintf(&b, "r%dw%d ", idx, n)
	}
	return b.String()
}

func replay(gw, key string, tr *simulate.Trace, rate float64) []result {
	out := make([]result, len(tr.Requests))
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1024}}
	t0 := time.Now()
	for i, r := range tr.Requests {
		body, _ := json.Marshal(map[string]any{"model": "fidelity", "stream": true, "max_tokens": r.Output,
			"messages": []map[string]string{{"role": "user", "content": prompt(r, tr.IDTokens, i)}}})
		time.Sleep(time.Until(t0.Add(time.Duration(float64(r.At) / rate))))
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = send(client, gw, key, body)
		}()
	}
	wg.Wait()
	return out
}

func send(client *http.Client, gw, key string, body []byte) result {
	res := result{start: time.Now()}
	req, _ := http.NewRequest("POST", gw+"/v1/chat/completions", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := client.Do(req)
	if err != nil {
		res.err = err.Error()
		return res
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		res.err = fmt.Sprintf("%d %s", resp.StatusCode, b)
		return res
	}
	sc := bufio.NewScanner(resp.Body)
	var firstTok, lastTok time.Time
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || line == "[DONE]" || !strings.Contains(line, `"content":"`) {
			continue
		}
		now := time.Now()
		if firstTok.IsZero() {
			firstTok = now
		}
		lastTok = now
		res.tokens++
	}
	res.end = time.Now()
	if res.tokens == 0 {
		res.err = "no tokens"
		return res
	}
	res.ttft = firstTok.Sub(res.start)
	if res.tokens > 1 {
		res.tpot = lastTok.Sub(firstTok) / time.Duration(res.tokens-1)
	}
	return res
}
