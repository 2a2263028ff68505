package httpapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"baimo/internal/billing"
	"baimo/internal/config"
	"baimo/internal/gateway"
	"baimo/internal/provider/sim"
	"baimo/internal/usage"
)

// mediaEnv is a billing environment whose simulator channel also serves
// the media models (sim-rerank, sim-image, sim-whisper, sim-tts), with an
// Anthropic channel serving sim-image too (to be refused: media is
// OpenAI-compatible only) and uploads limited to 64 KiB.
func mediaEnv(t *testing.T) *billingEnv {
	return newBillingEnvHolds(t, true, func(o *gateway.Options, _ *billing.Options) {
		ch := o.Channels[0]
		for _, m := range []string{"sim-rerank", "sim-image", "sim-whisper", "sim-tts"} {
			ch.Models[m] = m
		}
		o.Channels = append(o.Channels, gateway.NewChannel(config.Channel{Name: "anth", Kind: "anthropic", BaseURL: ch.BaseURL,
			Models: config.ModelMap{"via-anthropic": "sim-image"}}))
		o.Limits.MaxUploadBytes = 64 << 10
	})
}

// wav is an 8 kHz mono 8-bit WAV of the given milliseconds.
func wav(ms int) []byte { return append(sim.WAVHeader(8000, 8, 8*ms), make([]byte, 8*ms)...) }

// upload builds a multipart body of fields and one file part.
func upload(fields map[string]string, fileField, fileName string, file []byte) (string, []byte) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for k, v := range fields {
		_ = mw.WriteField(k, v)
	}
	if fileField != "" {
		fw, _ := mw.CreateFormFile(fileField, fileName)
		_, _ = fw.Write(file)
	}
	_ = mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

func post(t *testing.T, url, secret, path, contentType string, body []byte) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", url+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", contentType)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, b
}

// TestMediaEndpoints: rerank, images (by size and quality), edits,
// transcriptions and speech go through the gateway to the simulator and
// are billed in their units: tokens, images at the variant's price,
// seconds read from the file, characters; the records say so.
func TestMediaEndpoints(t *testing.T) {
	e := mediaEnv(t)
	secret := e.prepaidKey(t, "studio", "100")
	type want struct {
		endpoint string
		u        usage.Usage
		cost     int64 // nanos CNY
	}
	var wants = map[string]want{}
	check := func(resp *http.Response, body []byte, w want) {
		t.Helper()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d %s", w.endpoint, resp.StatusCode, body)
		}
		wants[resp.Header.Get("X-Request-Id")] = w
	}

	resp, body := post(t, e.url, secret, "/v1/rerank", "application/json",
		[]byte(`{"model":"sim-rerank","query":"red fox","documents":["a red fox","a blue whale",{"text":"the fox"}],"top_n":2}`))
	var rr struct {
		Results []struct{ Index int } `json:"results"`
	}
	if json.Unmarshal(body, &rr) != nil || len(rr.Results) != 2 || rr.Results[0].Index != 0 {
		t.Errorf("rerank answer %s", body)
	}
	// The simulator reports 2 + 3 + 3 + 2 = 10 tokens at ¥0.8 per million.
	check(resp, body, want{"rerank", usage.Usage{Input: 10, Source: usage.SourceVendor}, 8_000})

	resp, body = post(t, e.url, secret, "/v1/images/generations", "application/json",
		[]byte(`{"model":"sim-image","prompt":"a red fox","n":2,"size":"1024x1792","quality":"hd"}`))
	if !strings.Contains(string(body), `"b64_json"`) {
		t.Errorf("images answer %s", body)
	}
	check(resp, body, want{"images@1024x1792/hd", usage.Usage{Images: 2, Source: usage.SourceVendor}, 1_200_000_000})

	resp, body = post(t, e.url, secret, "/v1/images/generations", "application/json",
		[]byte(`{"model":"sim-image","prompt":"a red fox"}`))
	check(resp, body, want{"images", usage.Usage{Images: 1, Source: usage.SourceVendor}, 200_000_000})

	ct, up := upload(map[string]string{"model": "sim-image", "prompt": "make it blue", "size": "1792x1024"}, "image", "fox.png", []byte("\x89PNG..."))
	resp, body = post(t, e.url, secret, "/v1/images/edits", ct, up)
	check(resp, body, want{"image_edits@1792x1024/", usage.Usage{Images: 1, Source: usage.SourceVendor}, 300_000_000})

	ct, up = upload(map[string]string{"model": "sim-whisper"}, "file", "talk.wav", wav(2500))
	resp, body = post(t, e.url, secret, "/v1/audio/transcriptions", ct, up)
	if !strings.Contains(string(body), `"text"`) {
		t.Errorf("transcription answer %s", body)
	}
	check(resp, body, want{"transcriptions", usage.Usage{AudioSeconds: 3, Source: usage.SourceVendor}, 18_000_000})

	ct, up = upload(map[string]string{"model": "sim-whisper", "response_format": "text"}, "file", "talk.wav", wav(1000))
	resp, body = post(t, e.url, secret, "/v1/audio/translations", ct, up)
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/plain") {
		t.Errorf("a text transcription came as %q", got)
	}
	check(resp, body, want{"translations", usage.Usage{AudioSeconds: 1, Source: usage.SourceCounted}, 6_000_000})

	resp, body = post(t, e.url, secret, "/v1/audio/speech", "application/json",
		[]byte(`{"model":"sim-tts","input":"Hello, 世界!","voice":"alloy"}`))
	if got := resp.Header.Get("Content-Type"); got != "audio/wav" || len(body) != 44+10*960*2 || string(body[:4]) != "RIFF" {
		t.Errorf("speech: %q, %d bytes", got, len(body))
	}
	// 10 characters at ¥100 per million.
	check(resp, body, want{"speech", usage.Usage{Characters: 10, Source: usage.SourceCounted}, 1_000_000})

	e.settled(t, "studio")
	page, err := e.db.ListRecords(context.Background(), usage.Filter{TenantID: "studio", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != len(wants) {
		t.Fatalf("%d records, want %d", len(page.Records), len(wants))
	}
	for _, rec := range page.Records {
		w := wants[rec.RequestID]
		if rec.Endpoint != w.endpoint || rec.Usage != w.u || rec.CostNanos != w.cost || !rec.Complete || rec.Status != 200 {
			t.Errorf("%s: endpoint %q usage %+v cost %d, want %q %+v %d", w.endpoint, rec.Endpoint, rec.Usage, rec.CostNanos,
				w.endpoint, w.u, w.cost)
		}
	}
}

// TestMediaRefusals: what cannot be served is refused before any upstream
// call, in OpenAI's shape: an upload over its limit, a file whose duration
// cannot be read, a media request to a channel of another format, a
// streaming request, too many images, and images a prepaid balance cannot
// pay for.
func TestMediaRefusals(t *testing.T) {
	e := mediaEnv(t)
	secret := e.prepaidKey(t, "thin", "0.3")
	for _, c := range []struct {
		name, path, ct string
		body           []byte
		status         int
		param          string
	}{
		{"upload too large", "/v1/audio/transcriptions", "", nil, 413, ""},
		{"not audio", "/v1/audio/transcriptions", "", []byte("hello"), 400, "file"},
		{"not multipart", "/v1/audio/transcriptions", "application/json", []byte(`{"model":"sim-whisper"}`), 400, ""},
		{"other format", "/v1/images/generations", "application/json", []byte(`{"model":"via-anthropic","prompt":"x"}`), 400, "model"},
		{"stream", "/v1/images/generations", "application/json", []byte(`{"model":"sim-image","prompt":"x","stream":true}`), 400, "stream"},
		{"n", "/v1/images/generations", "application/json", []byte(`{"model":"sim-image","prompt":"x","n":11}`), 400, "n"},
		{"size", "/v1/images/generations", "application/json", []byte(`{"model":"sim-image","prompt":"x","size":"1024 x 1024"}`), 400, "size"},
		{"speech too long", "/v1/audio/speech", "application/json", []byte(`{"model":"sim-tts","input":"` + strings.Repeat("a", 4097) + `"}`), 400, "input"},
		{"rerank no documents", "/v1/rerank", "application/json", []byte(`{"model":"sim-rerank","query":"q","documents":[]}`), 400, "documents"},
		{"balance", "/v1/images/generations", "application/json", []byte(`{"model":"sim-image","prompt":"x","n":2,"quality":"hd"}`), 429, ""},
	} {
		body, ct := c.body, c.ct
		switch c.name {
		case "upload too large":
			ct, body = upload(map[string]string{"model": "sim-whisper"}, "file", "a.wav", wav(10000))
		case "not audio":
			ct, body = upload(map[string]string{"model": "sim-whisper"}, "file", "a.wav", body)
		}
		resp, out := post(t, e.url, secret, c.path, ct, body)
		var eb struct {
			Error struct {
				Message string  `json:"message"`
				Param   *string `json:"param"`
			} `json:"error"`
		}
		if err := json.Unmarshal(out, &eb); err != nil || resp.StatusCode != c.status || eb.Error.Message == "" {
			t.Errorf("%s: %d %s", c.name, resp.StatusCode, out)
			continue
		}
		if c.param != "" && (eb.Error.Param == nil || *eb.Error.Param != c.param) {
			t.Errorf("%s: param %v, want %s: %s", c.name, eb.Error.Param, c.param, out)
		}
	}
	if b := e.settled(t, "thin"); b.Debt != 0 || b.Posted != 300_000_000 {
		t.Errorf("refusals charged something: %+v", b)
	}
}
