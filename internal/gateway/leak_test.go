package gateway_test

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/httpapi"
	"baimo/internal/keys"
)

// The upstream key of the leaking channel: nothing about its shape says
// "key", so only the gateway knowing it can keep it in.
const leakyKey = "zq9-private-upstream-77"

// Account identifiers as vendors write them in errors (OpenAI's
// organisation and project, Anthropic's organisation UUID, a Google Cloud
// project number, a reseller's user id).
var accountIDs = []string{"org-Zx81kq2m9P", "proj_Ab12Cd34Ef", "5f3c2b1a-9d8e-4f7a-b6c5-0123456789ab", "847362519034", "user_8f8f8f8f"}

// echoMessage is what a careless upstream puts in an error: the URL it was
// called at, its host, the key it was given and the account behind it.
func echoMessage(r *http.Request) string {
	got := r.Header.Get("Authorization") + r.Header.Get("x-api-key") + r.Header.Get("x-goog-api-key")
	return fmt.Sprintf("Request to http://%s%s from %s with credentials %q failed for organization %s, project %s "+
		"(organization %s, project %s, account %s); key %s",
		r.Host, r.URL.RequestURI(), r.Host, got, accountIDs[0], accountIDs[1], accountIDs[2], accountIDs[3], accountIDs[4], leakyKey)
}

// echoError is an upstream of kind that answers every request with an
// error in its own format echoing echoMessage: with status, or, when
// status is 200, as an error event in the middle of a stream.
func echoError(kind string, status int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		m := fmt.Sprintf("%q", echoMessage(r))
		var body string
		switch kind {
		case "anthropic":
			body = `{"type":"error","error":{"type":"invalid_request_error","message":` + m + `}}`
		case "gemini":
			body = fmt.Sprintf(`{"error":{"code":%d,"message":%s,"status":"INVALID_ARGUMENT"}}`, max(status, 500), m)
		default:
			body = `{"error":{"message":` + m + `,"type":"invalid_request_error","param":null,"code":null}}`
		}
		if status != http.StatusOK {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_, _ = w.Write([]byte(body))
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		switch kind {
		case "anthropic":
			_, _ = fmt.Fprintf(w, "event: message_start\ndata: %s\n\n", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"upstream-model","content":[],"stop_reason":null,"usage":{"input_tokens":9,"output_tokens":1}}}`)
			_, _ = fmt.Fprintf(w, "event: error\ndata: %s\n\n", body)
		case "gemini":
			_, _ = fmt.Fprintf(w, "data: %s\n\n", `{"candidates":[{"content":{"role":"model","parts":[{"text":"Hel"}]}}]}`)
			_, _ = fmt.Fprintf(w, "data: %s\n\n", body)
		default:
			_, _ = fmt.Fprintf(w, "data: %s\n\n", `{"id":"c1","object":"chat.completion.chunk","created":1,"model":"upstream-model","choices":[{"index":0,"delta":{"role":"assistant","content":"Hel"},"finish_reason":null}]}`)
			_, _ = fmt.Fprintf(w, "data: %s\n\n", body)
		}
	}
}

// leakGateway is a gateway whose one channel, of kind, reaches upstream by
// its host name (localhost) with leakyKey, logging into logs.
func leakGateway(t *testing.T, kind string, upstream http.Handler, logs *lockedBuf) *harness {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	_, port, _ := net.SplitHostPort(up.Listener.Addr().String())
	t.Setenv("BAIMO_TEST_LEAKY_KEY", leakyKey)
	cc := config.Channel{Name: "leaky", Kind: kind, BaseURL: "http://localhost:" + port, Models: config.ModelMap{"m": "upstream-model"},
		APIKey: secretFromEnv(t, "BAIMO_TEST_LEAKY_KEY")}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := &harness{recs: &records{}}
	ks := &fakeKeys{m: map[string]keys.Key{}}
	secret, k, _ := keys.Generate()
	k.ID = "key_leak"
	_ = ks.CreateKey(context.Background(), k)
	h.secret = secret
	h.bill = billing.New(billing.Options{Records: h.recs, Log: log})
	limits := config.Default().Limits
	var err error
	h.gw, err = gateway.New(gateway.Options{Channels: []*gateway.Channel{gateway.NewChannel(cc)}, Keys: ks, Billing: h.bill,
		Log: log, Limits: limits})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer((&httpapi.Server{GW: h.gw, Log: log}).Handler())
	t.Cleanup(srv.Close)
	h.url = srv.URL
	return h
}

// TestUpstreamSecretsNeverLeak: an upstream of each kind that echoes its
// URL, host, key and account identifiers in an error (an error status, or
// an error event inside a stream) is heard by a client of each format only
// through the scrubber: neither the client's answer nor any log line holds
// one of them.
func TestUpstreamSecretsNeverLeak(t *testing.T) {
	kinds := []string{"openai", "anthropic", "gemini"}
	for _, kind := range kinds {
		for _, client := range kinds {
			for _, status := range []int{200, 400, 401, 403, 404, 429, 500} {
				t.Run(fmt.Sprintf("%s_to_%s_%d", client, kind, status), func(t *testing.T) {
					var logs lockedBuf
					h := leakGateway(t, kind, echoError(kind, status), &logs)
					path, header, body := clientRequest(client, status == 200)
					resp, out := postWith(t, h, path, header, body)
					if resp.StatusCode == 200 && status != 200 {
						t.Fatalf("an upstream %d became a 200: %s", status, out)
					}
					rec := h.only(t) // the record is written: its log lines too
					leaks := append([]string{leakyKey, "localhost", "127.0.0.1"}, accountIDs...)
					for _, l := range leaks {
						if strings.Contains(out, l) {
							t.Errorf("the client sees %q:\n%s", l, out)
						}
						for k, v := range resp.Header {
							if strings.Contains(strings.Join(v, " "), l) {
								t.Errorf("header %s holds %q", k, l)
							}
						}
						if strings.Contains(logs.String(), l) {
							t.Errorf("the log holds %q:\n%s", l, logs.String())
						}
					}
					if status == 200 && !strings.Contains(out, "[redacted]") {
						t.Errorf("the stream's error event did not reach the client, scrubbed: %s", out)
					}
					if status == 400 && !strings.Contains(out, "Request to") {
						t.Errorf("a request fault's message does not reach the client, scrubbed: %s", out)
					}
					if rec.Complete {
						t.Errorf("a failed request recorded as complete: %+v", rec)
					}
				})
			}
		}
	}
}
