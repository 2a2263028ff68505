package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// upstreamCmd runs the minimal upstream until ctx ends.
func upstreamCmd(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("upstream", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:18090", "listen address (loopback only)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkLoopback(*addr); err != nil {
		return err
	}
	srv := &http.Server{Addr: *addr, Handler: newUpstream(), ReadHeaderTimeout: 10 * time.Second}
	return serveUntil(ctx, srv, stderr, "upstream")
}

// maxUpstreamBody bounds what the minimal upstream reads of a request.
const maxUpstreamBody = 1 << 20

// defaultOutputTokens is how many words the minimal upstream answers with.
const defaultOutputTokens = 16

// maxOutputTokens bounds the words one answer may ask for.
const maxOutputTokens = 10000

// upstreamRequest is the part of a chat request the minimal upstream reads.
type upstreamRequest struct {
	Model         string `json:"model"`
	Stream        bool   `json:"stream"`
	StreamOptions *struct {
		IncludeUsage bool `json:"include_usage"`
	} `json:"stream_options"`
	Sim struct {
		Status       int `json:"status"`
		TTFTms       int `json:"ttft_ms"`
		TPOTms       int `json:"tpot_ms"`
		OutputTokens int `json:"output_tokens"`
	} `json:"sim"`
}

// newUpstream returns a zero-latency OpenAI-compatible chat upstream that
// honours the same optional "sim" body field as `baimo sim` (status, ttft_ms,
// tpot_ms, output_tokens). It exists so this tool can be tested on its own.
func newUpstream() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"object":"list","data":[{"id":"sim-chat","object":"model","owned_by":"load"}]}`)
	})
	mux.HandleFunc("POST /v1/chat/completions", serveChat)
	return mux
}

// serveChat answers one chat completion, streamed or not.
func serveChat(w http.ResponseWriter, r *http.Request) {
	var req upstreamRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, maxUpstreamBody)).Decode(&req); err != nil {
		writeUpstreamError(w, http.StatusBadRequest, "malformed JSON: "+err.Error())
		return
	}
	if req.Sim.Status >= 400 && req.Sim.Status <= 599 {
		writeUpstreamError(w, req.Sim.Status, "simulated failure")
		return
	}
	n := req.Sim.OutputTokens
	if n <= 0 {
		n = defaultOutputTokens
	}
	n = min(n, maxOutputTokens)
	if req.Model == "" {
		req.Model = "sim-chat"
	}
	sleep(r.Context(), req.Sim.TTFTms)
	const id = "chatcmpl-load"
	const promptTokens = 8
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":%q,"object":"chat.completion","created":%d,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":%q},"finish_reason":"stop"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`,
			id, time.Now().Unix(), req.Model, strings.TrimSpace(strings.Repeat("word ", n)), promptTokens, n, promptTokens+n)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	flusher, _ := w.(http.Flusher)
	created := strconv.FormatInt(time.Now().Unix(), 10)
	head := `data: {"id":"` + id + `","object":"chat.completion.chunk","created":` + created + `,"model":"` + req.Model + `","choices":[`
	io.WriteString(w, head+`{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`+"\n\n")
	for i := range n {
		if i > 0 {
			if flusher != nil {
				flusher.Flush()
			}
			if !sleep(r.Context(), req.Sim.TPOTms) {
				return
			}
		}
		io.WriteString(w, head+`{"index":0,"delta":{"content":"word "},"finish_reason":null}]}`+"\n\n")
	}
	io.WriteString(w, head+`{"index":0,"delta":{},"finish_reason":"stop"}]}`+"\n\n")
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		fmt.Fprintf(w, "%s],\"usage\":{\"prompt_tokens\":%d,\"completion_tokens\":%d,\"total_tokens\":%d}}\n\n", head, promptTokens, n, promptTokens+n)
	}
	io.WriteString(w, "data: [DONE]\n\n")
}

// sleep waits ms milliseconds unless ctx ends first; it reports whether the
// wait ran to its end.
func sleep(ctx context.Context, ms int) bool {
	if ms <= 0 {
		return true
	}
	t := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// writeUpstreamError writes an error in OpenAI's shape.
func writeUpstreamError(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"message":%q,"type":"server_error","param":null,"code":null}}`, msg)
}
