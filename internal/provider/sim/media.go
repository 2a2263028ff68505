package sim

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"baimo/internal/audio"
)

// The simulator's media endpoints, in the shapes vendors answer them:
// rerank (Jina's, as SiliconFlow and Qwen serve it: results by relevance
// and usage.total_tokens), image generations and edits (data entries, a
// 1×1 PNG each), speech to text (OpenAI's, with usage of type duration:
// the seconds the file holds, rounded up), and text to speech (a WAV of
// silence, 60 ms per character, streamed in chunks). Uploads may be up to
// 32 MiB. The "sim" control field works in JSON bodies.

// MediaModels names the models of the media endpoints.
type MediaModels struct {
	Rerank, Image, Transcribe, Speech []string
}

const maxUpload = 32 << 20

func (s *Server) mediaRoutes() {
	s.mux.HandleFunc("POST /v1/rerank", s.rerank)
	s.mux.HandleFunc("POST /v1/images/generations", s.images)
	s.mux.HandleFunc("POST /v1/images/edits", s.images)
	s.mux.HandleFunc("POST /v1/audio/transcriptions", s.transcribe)
	s.mux.HandleFunc("POST /v1/audio/translations", s.transcribe)
	s.mux.HandleFunc("POST /v1/audio/speech", s.speech)
}

// mediaRequest is the JSON of a media request, as far as the simulator
// reads it.
type mediaRequest struct {
	Model     string            `json:"model"`
	Query     string            `json:"query"`
	Documents []json.RawMessage `json:"documents"`
	TopN      int               `json:"top_n"`
	Prompt    string            `json:"prompt"`
	N         int               `json:"n"`
	Response  string            `json:"response_format"`
	Input     string            `json:"input"`
	Sim       *Control          `json:"sim"`
}

func (s *Server) decodeMedia(w http.ResponseWriter, r *http.Request, models []string) (*mediaRequest, bool) {
	var req mediaRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, s.opt.MaxBody)).Decode(&req); err != nil {
		writeError(w, 400, "invalid_request_error", "sim: invalid JSON body: "+err.Error())
		return nil, false
	}
	if !control(w, r, req.Sim, func(st int, msg string) { writeError(w, st, errorType(st), msg) }) {
		return nil, false
	}
	if !s.known(req.Model, models) {
		writeError(w, 404, "invalid_request_error", "sim: the model `"+req.Model+"` does not exist")
		return nil, false
	}
	return &req, true
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (s *Server) rerank(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeMedia(w, r, s.opt.MediaModels.Rerank)
	if !ok {
		return
	}
	if len(req.Documents) == 0 {
		writeError(w, 400, "invalid_request_error", "sim: documents is required")
		return
	}
	type result struct {
		Index     int     `json:"index"`
		Relevance float64 `json:"relevance_score"`
	}
	qw := strings.Fields(strings.ToLower(req.Query))
	tokens := len(qw)
	results := make([]result, len(req.Documents))
	for i, d := range req.Documents {
		var text string
		if json.Unmarshal(d, &text) != nil {
			var o struct{ Text string }
			_ = json.Unmarshal(d, &o)
			text = o.Text
		}
		words := strings.Fields(strings.ToLower(text))
		tokens += len(words)
		hits := 0
		for _, w := range words {
			for _, q := range qw {
				if w == q {
					hits++
				}
			}
		}
		results[i] = result{Index: i, Relevance: float64(hits+1) / float64(len(words)+2)}
	}
	for i := 1; i < len(results); i++ { // by relevance, stable
		for j := i; j > 0 && results[j].Relevance > results[j-1].Relevance; j-- {
			results[j], results[j-1] = results[j-1], results[j]
		}
	}
	if req.TopN > 0 && req.TopN < len(results) {
		results = results[:req.TopN]
	}
	out := map[string]any{"id": "rerank-sim", "model": req.Model, "results": results}
	if req.Sim == nil || !req.Sim.NoUsage {
		out["usage"] = map[string]int{"total_tokens": max(tokens, 1)}
	}
	writeJSON(w, out)
}

// onePixelPNG is a 1×1 transparent PNG.
const onePixelPNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg=="

// images serves generations (JSON) and edits (multipart).
func (s *Server) images(w http.ResponseWriter, r *http.Request) {
	var req *mediaRequest
	if strings.HasPrefix(r.Header.Get("Content-Type"), "multipart/") {
		f, ok := s.form(w, r)
		if !ok {
			return
		}
		req = &mediaRequest{Model: f.fields["model"], Prompt: f.fields["prompt"], Response: f.fields["response_format"]}
		req.N, _ = strconv.Atoi(f.fields["n"])
		if f.files == 0 {
			writeError(w, 400, "invalid_request_error", "sim: image is required")
			return
		}
		if !s.known(req.Model, s.opt.MediaModels.Image) {
			writeError(w, 404, "invalid_request_error", "sim: the model `"+req.Model+"` does not exist")
			return
		}
	} else {
		var ok bool
		if req, ok = s.decodeMedia(w, r, s.opt.MediaModels.Image); !ok {
			return
		}
	}
	if req.Prompt == "" {
		writeError(w, 400, "invalid_request_error", "sim: prompt is required")
		return
	}
	n := max(req.N, 1)
	data := make([]map[string]string, n)
	for i := range data {
		if req.Response == "url" {
			data[i] = map[string]string{"url": "https://sim.invalid/image/" + strconv.Itoa(i) + ".png"}
		} else {
			data[i] = map[string]string{"b64_json": onePixelPNG, "revised_prompt": req.Prompt}
		}
	}
	writeJSON(w, map[string]any{"created": time.Now().Unix(), "data": data})
}

// form is a multipart upload as the simulator reads it.
type form struct {
	fields map[string]string
	files  int
	audio  []byte
}

func (s *Server) form(w http.ResponseWriter, r *http.Request) (form, bool) {
	f := form{fields: map[string]string{}}
	r.Body = http.MaxBytesReader(w, r.Body, maxUpload)
	mr, err := r.MultipartReader()
	if err != nil {
		writeError(w, 400, "invalid_request_error", "sim: want a multipart/form-data body: "+err.Error())
		return f, false
	}
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return f, true
		}
		if err != nil {
			writeError(w, 400, "invalid_request_error", "sim: malformed multipart body: "+err.Error())
			return f, false
		}
		b, err := io.ReadAll(io.LimitReader(p, maxUpload))
		if err != nil {
			writeError(w, 400, "invalid_request_error", "sim: malformed multipart body: "+err.Error())
			return f, false
		}
		if p.FileName() != "" {
			f.files++
			if p.FormName() == "file" {
				f.audio = b
			}
			continue
		}
		f.fields[p.FormName()] = string(b)
	}
}

func (s *Server) transcribe(w http.ResponseWriter, r *http.Request) {
	f, ok := s.form(w, r)
	if !ok {
		return
	}
	model := f.fields["model"]
	if !s.known(model, s.opt.MediaModels.Transcribe) {
		writeError(w, 404, "invalid_request_error", "sim: the model `"+model+"` does not exist")
		return
	}
	if f.audio == nil {
		writeError(w, 400, "invalid_request_error", "sim: file is required")
		return
	}
	info, err := audio.Read(bytes.NewReader(f.audio))
	if err != nil {
		writeError(w, 400, "invalid_request_error", "sim: could not read the audio: "+err.Error())
		return
	}
	secs := info.Seconds()
	text := strings.Join(words[:min(len(words), int(secs)+1)], " ")
	switch f.fields["response_format"] {
	case "text":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte(text + "\n"))
	case "verbose_json":
		writeJSON(w, map[string]any{"task": "transcribe", "language": "english", "duration": info.Duration.Seconds(), "text": text,
			"usage": map[string]any{"type": "duration", "seconds": secs}})
	default:
		writeJSON(w, map[string]any{"text": text, "usage": map[string]any{"type": "duration", "seconds": secs}})
	}
}

// speech streams a WAV of silence, 60 ms per character of input, 16 kHz
// mono, in chunks of 4 KiB.
func (s *Server) speech(w http.ResponseWriter, r *http.Request) {
	req, ok := s.decodeMedia(w, r, s.opt.MediaModels.Speech)
	if !ok {
		return
	}
	chars := utf8.RuneCountInString(req.Input)
	if chars == 0 {
		writeError(w, 400, "invalid_request_error", "sim: input is required")
		return
	}
	const rate = 16000
	n := int(math.Min(float64(chars)*0.06*rate*2, 16<<20))
	hdr := WAVHeader(rate, 16, n)
	w.Header().Set("Content-Type", "audio/wav")
	_, _ = w.Write(hdr)
	fl, _ := w.(http.Flusher)
	chunk := make([]byte, 4096)
	for n > 0 {
		k := min(n, len(chunk))
		if _, err := w.Write(chunk[:k]); err != nil {
			return
		}
		if fl != nil {
			fl.Flush()
		}
		n -= k
	}
}

// WAVHeader is the 44-byte header of a mono PCM WAV of n data bytes.
func WAVHeader(rate, bits, n int) []byte {
	hdr := make([]byte, 44)
	copy(hdr, "RIFF")
	binary.LittleEndian.PutUint32(hdr[4:], uint32(36+n))
	copy(hdr[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(hdr[16:], 16)
	binary.LittleEndian.PutUint16(hdr[20:], 1)
	binary.LittleEndian.PutUint16(hdr[22:], 1)
	binary.LittleEndian.PutUint32(hdr[24:], uint32(rate))
	binary.LittleEndian.PutUint32(hdr[28:], uint32(rate*bits/8))
	binary.LittleEndian.PutUint16(hdr[32:], uint16(bits/8))
	binary.LittleEndian.PutUint16(hdr[34:], uint16(bits))
	copy(hdr[36:], "data")
	binary.LittleEndian.PutUint32(hdr[40:], uint32(n))
	return hdr
}
