package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// maxResponse bounds how much of one response the load generator reads.
const maxResponse = 4 << 20

// target is one server under test, reached over HTTP on the loopback.
type target struct {
	Name   string // short name in the report: direct, proxy, baimo
	URL    string // base URL; requests go to URL + "/v1/chat/completions"
	PID    int    // process under test, for CPU and RSS; 0 when unknown
	Key    string // API key sent as a Bearer token
	client *http.Client
	sent   atomic.Int64 // requests sent, warm-up included
}

// newTarget returns a target with its own connection pool, sized for conns
// concurrent requests so no phase pays for new connections.
func newTarget(name, url string, pid int, key string, conns int) *target {
	tr := &http.Transport{
		Proxy:               nil, // loopback only; ignore HTTP_PROXY
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns + 16,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	return &target{Name: name, URL: url, PID: pid, Key: key, client: &http.Client{Transport: tr}}
}

// request is one kind of request the load generator sends.
type request struct {
	Stream bool
	Body   []byte
}

// do sends one chat request, reads the whole response into buf and checks that
// it is a complete, successful answer. It returns the time from sending to
// the last byte.
func (t *target) do(ctx context.Context, req request, buf *bytes.Buffer) (time.Duration, error) {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL+"/v1/chat/completions", bytes.NewReader(req.Body))
	if err != nil {
		return 0, fmt.Errorf("new request: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if t.Key != "" {
		hr.Header.Set("Authorization", "Bearer "+t.Key)
	}
	start := time.Now()
	t.sent.Add(1)
	resp, err := t.client.Do(hr)
	if err != nil {
		return 0, err
	}
	buf.Reset()
	_, err = buf.ReadFrom(io.LimitReader(resp.Body, maxResponse))
	resp.Body.Close()
	elapsed := time.Since(start)
	if err != nil {
		return 0, fmt.Errorf("read response: %w", err)
	}
	return elapsed, checkResponse(resp.StatusCode, req.Stream, buf.Bytes())
}

// checkResponse reports whether a response is a complete chat answer.
func checkResponse(status int, stream bool, body []byte) error {
	if status != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", status, body)
	}
	if stream {
		if !bytes.Contains(body, []byte("data: [DONE]")) {
			return fmt.Errorf("stream without data: [DONE] (%d bytes)", len(body))
		}
		return nil
	}
	if !bytes.Contains(body, []byte(`"choices"`)) {
		return fmt.Errorf("answer without choices: %.200s", body)
	}
	return nil
}

// result is what one phase against one target measured.
type result struct {
	Latencies []time.Duration // of successful requests
	OK, Fail  int64
	FirstErr  string
	Elapsed   time.Duration // wall time of the measured part
	CPU       time.Duration // CPU used by the process under test; -1 if unknown
}

// add merges o into r.
func (r *result) add(o result) {
	r.Latencies = append(r.Latencies, o.Latencies...)
	r.OK += o.OK
	r.Fail += o.Fail
	if r.FirstErr == "" {
		r.FirstErr = o.FirstErr
	}
	r.Elapsed += o.Elapsed
}

// sequential sends n requests one after another (concurrency 1).
func sequential(ctx context.Context, t *target, req request, n int) result {
	var r result
	var buf bytes.Buffer
	start := time.Now()
	for range n {
		if ctx.Err() != nil {
			break
		}
		d, err := t.do(ctx, req, &buf)
		if err != nil {
			r.Fail++
			if r.FirstErr == "" {
				r.FirstErr = err.Error()
			}
			continue
		}
		r.OK++
		r.Latencies = append(r.Latencies, d)
	}
	r.Elapsed = time.Since(start)
	return r
}

// concurrent keeps c requests in flight until dur has passed or limit requests
// have been started, whichever comes first, and measures the CPU the process
// under test used meanwhile.
func concurrent(ctx context.Context, t *target, req request, c int, dur time.Duration, limit int64) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, dur+30*time.Second) // bound a stuck request
	defer cancel()
	cpu0, err := cpuOf(t.PID)
	if err != nil {
		return result{}, err
	}
	var (
		started  atomic.Int64
		mu       sync.Mutex
		total    result
		wg       sync.WaitGroup
		deadline = time.Now().Add(dur)
	)
	begin := time.Now()
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var r result
			r.Latencies = make([]time.Duration, 0, 1024)
			var buf bytes.Buffer
			for time.Now().Before(deadline) && started.Add(1) <= limit && ctx.Err() == nil {
				d, err := t.do(ctx, req, &buf)
				if err != nil {
					r.Fail++
					if r.FirstErr == "" {
						r.FirstErr = err.Error()
					}
					continue
				}
				r.OK++
				r.Latencies = append(r.Latencies, d)
			}
			mu.Lock()
			total.add(r)
			mu.Unlock()
		}()
	}
	wg.Wait()
	total.Elapsed = time.Since(begin)
	cpu1, err := cpuOf(t.PID)
	if err != nil {
		return result{}, err
	}
	total.CPU = -1
	if t.PID > 0 {
		total.CPU = cpu1 - cpu0
	}
	return total, nil
}

// cpuOf returns the CPU time of pid, or 0 when pid is 0 (unknown).
func cpuOf(pid int) (time.Duration, error) {
	if pid <= 0 {
		return 0, nil
	}
	return procCPU(pid)
}

// streamsResult is what holding many streams open at once measured.
type streamsResult struct {
	Wanted    int
	Opened    int64 // streams whose first bytes arrived
	Completed int64 // streams that ended with data: [DONE]
	Fail      int64
	FailEarly int64 // streams that had failed when RSS was sampled
	FirstErr  string
	RSSOpen   int64 // largest RSS of the process under test while all were open
	Peak      int64 // VmHWM after the run
}

// holdStreams opens n streaming requests at once, each slow enough to stay
// open, samples the RSS of the process under test once all are open, and
// waits for them to finish. The whole phase is bounded by limit.
//
// Every 100 streams it pauses for pause, so the listen backlog is not overrun.
func holdStreams(ctx context.Context, t *target, req request, n int, limit, pause time.Duration) (streamsResult, error) {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	res := streamsResult{Wanted: n}
	var (
		opened   sync.WaitGroup
		done     sync.WaitGroup
		mu       sync.Mutex
		nOpened  atomic.Int64
		complete atomic.Int64
		failed   atomic.Int64
	)
	fail := func(err error) {
		failed.Add(1)
		mu.Lock()
		if res.FirstErr == "" {
			res.FirstErr = err.Error()
		}
		mu.Unlock()
	}
	opened.Add(n)
	for i := range n {
		if i > 0 && i%100 == 0 {
			time.Sleep(pause)
		}
		done.Add(1)
		go func() {
			defer done.Done()
			// Release the wait exactly once: when the stream opens, or when it fails first.
			release := sync.OnceFunc(opened.Done)
			defer release()
			onOpen := func() { nOpened.Add(1); release() }
			if err := oneStream(ctx, t, req, onOpen); err != nil {
				fail(err)
				return
			}
			complete.Add(1)
		}()
	}
	allOpen := make(chan struct{})
	go func() { opened.Wait(); close(allOpen) }()
	select {
	case <-allOpen:
	case <-ctx.Done():
		return res, fmt.Errorf("streams did not all open within %s", limit)
	}
	res.FailEarly = failed.Load()
	if t.PID > 0 {
		// Sample a few times while the streams are open and keep the largest.
		for range 5 {
			m, err := procMemory(t.PID)
			if err != nil {
				return res, err
			}
			res.RSSOpen = max(res.RSSOpen, m.RSS)
			time.Sleep(100 * time.Millisecond)
		}
	}
	res.Opened = nOpened.Load()
	done.Wait()
	res.Completed = complete.Load()
	res.Fail = failed.Load()
	if t.PID > 0 {
		m, err := procMemory(t.PID)
		if err != nil {
			return res, err
		}
		res.Peak = m.Peak
	}
	return res, nil
}

// oneStream sends a streaming request, calls opened once the first bytes of
// the body arrive, and reads the stream to its end.
func oneStream(ctx context.Context, t *target, req request, opened func()) error {
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL+"/v1/chat/completions", bytes.NewReader(req.Body))
	if err != nil {
		return fmt.Errorf("new request: %w", err)
	}
	hr.Header.Set("Content-Type", "application/json")
	if t.Key != "" {
		hr.Header.Set("Authorization", "Bearer "+t.Key)
	}
	t.sent.Add(1)
	resp, err := t.client.Do(hr)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	first := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, first); err != nil {
		return fmt.Errorf("status %d, first byte: %w", resp.StatusCode, err)
	}
	opened()
	var buf bytes.Buffer
	buf.Write(first)
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, maxResponse)); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read stream: %w", err)
	}
	return checkResponse(resp.StatusCode, true, buf.Bytes())
}
