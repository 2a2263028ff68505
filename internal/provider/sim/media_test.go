package sim

import (
	"bytes"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestMedia checks the media endpoints' shapes: rerank by relevance with
// usage, n images, a transcription's duration usage read from the file,
// speech as a WAV of 60 ms per character.
func TestMedia(t *testing.T) {
	srv := httptest.NewServer(New(DefaultOptions()))
	defer srv.Close()
	_, body := post(t, srv.URL+"/v1/rerank", `{"model":"sim-rerank","query":"fox","documents":["a cat","the fox"],"top_n":1}`)
	if !strings.Contains(body, `"results":[{"index":1,`) || !strings.Contains(body, `"total_tokens":5`) {
		t.Errorf("rerank = %s", body)
	}
	_, body = post(t, srv.URL+"/v1/images/generations", `{"model":"sim-image","prompt":"x","n":3}`)
	if strings.Count(body, `"b64_json"`) != 3 {
		t.Errorf("images = %s", body)
	}
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("model", "sim-whisper")
	fw, _ := mw.CreateFormFile("file", "a.wav")
	wav := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x40\x1f\x00\x00\x01\x00\x08\x00data\x80\x3e\x00\x00")
	_, _ = fw.Write(append(wav, make([]byte, 16000)...))
	_ = mw.Close()
	resp, err := http.Post(srv.URL+"/v1/audio/transcriptions", mw.FormDataContentType(), &b)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(got), `"usage":{"seconds":2,"type":"duration"}`) {
		t.Errorf("transcription = %s", got)
	}
	resp, body = post(t, srv.URL+"/v1/audio/speech", `{"model":"sim-tts","input":"abc"}`)
	if resp.Header.Get("Content-Type") != "audio/wav" || len(body) != 44+3*1920 {
		t.Errorf("speech: %s, %d bytes", resp.Header.Get("Content-Type"), len(body))
	}
	if resp, _ := post(t, srv.URL+"/v1/images/generations", `{"model":"sim-chat","prompt":"x"}`); resp.StatusCode != 404 {
		t.Errorf("an unknown image model: %d", resp.StatusCode)
	}
}
