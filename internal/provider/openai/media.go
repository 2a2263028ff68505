package openai

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strconv"
	"strings"
	"unicode/utf8"

	"baimo/internal/audio"
	"baimo/internal/jsonfield"
	"baimo/internal/provider/ir"
	"baimo/internal/usage"
)

// The endpoints that are not conversations: rerank (the Cohere/Jina shape
// that Qwen, SiliconFlow, Jina and self-hosted rerankers serve), image
// generations and edits, speech to text and text to speech. Their bodies
// pass through (only the model renamed); their answers are metered in
// their own units: tokens or search units for rerank, images (priced by
// size and quality), seconds of audio read from the uploaded file,
// characters spoken.

// Limits on media requests.
const (
	MaxDocuments     = 1000  // documents of one rerank
	MaxImages        = 10    // images of one request (n)
	MaxSpeechChars   = 4096  // characters of one speech request
	MaxPromptChars   = 32000 // characters of an image prompt
	maxParts         = 64    // parts of one multipart upload
	maxFieldBytes    = 64 << 10
	maxVariantLength = 32
)

// isMedia reports whether endpoint is one of the media endpoints.
func isMedia(endpoint string) bool {
	switch endpoint {
	case ir.EndpointRerank, ir.EndpointImages, ir.EndpointImageEdits, ir.EndpointTranscriptions, ir.EndpointTranslations,
		ir.EndpointSpeech:
		return true
	}
	return false
}

// mediaPath is the path of a media endpoint below a base URL (…/v1).
func mediaPath(endpoint string) string {
	switch endpoint {
	case ir.EndpointRerank:
		return "/rerank"
	case ir.EndpointImages:
		return "/images/generations"
	case ir.EndpointImageEdits:
		return "/images/edits"
	case ir.EndpointTranscriptions:
		return "/audio/transcriptions"
	case ir.EndpointTranslations:
		return "/audio/translations"
	}
	return "/audio/speech"
}

var (
	rerankNames = []string{"model", "query", "documents", "top_n", "stream"}
	imageNames  = []string{"model", "prompt", "n", "size", "quality", "stream"}
	speechNames = []string{"model", "input", "stream_format", "stream"}
)

// admitMedia reads a media request.
func admitMedia(t ir.Target, body []byte) (ir.Admission, error) {
	switch t.Endpoint {
	case ir.EndpointImageEdits, ir.EndpointTranscriptions, ir.EndpointTranslations:
		return admitUpload(t, body)
	}
	var a ir.Admission
	names := map[string][]string{ir.EndpointRerank: rerankNames, ir.EndpointImages: imageNames, ir.EndpointSpeech: speechNames}[t.Endpoint]
	val, err := ir.Members(body, names)
	if err != nil {
		return a, err
	}
	if a.Model, err = ir.ModelField(val(0), "model"); err != nil {
		return a, err
	}
	if s, err := ir.BoolField(val(len(names)-1), "stream"); err != nil || s {
		if err == nil {
			err = &ir.FieldError{Param: "stream", Message: "This endpoint does not stream through this gateway."}
		}
		return a, err
	}
	switch t.Endpoint {
	case ir.EndpointRerank:
		if q, ok := jsonfield.String(val(1)); !ok || q == "" {
			return a, &ir.FieldError{Param: "query", Message: "The query parameter must be a non-empty string."}
		}
		docs := val(2)
		if docs == nil || docs[0] != '[' {
			return a, &ir.FieldError{Param: "documents", Message: "The documents parameter must be an array of documents."}
		}
		n := 0
		_ = jsonfield.EachElement(docs, func(jsonfield.Span) bool { n++; return n <= MaxDocuments })
		if n == 0 || n > MaxDocuments {
			return a, &ir.FieldError{Param: "documents", Message: "Send from 1 to " + strconv.Itoa(MaxDocuments) + " documents."}
		}
		if _, err := ir.CountField(val(3), "top_n"); err != nil {
			return a, err
		}
	case ir.EndpointImages:
		p, ok := jsonfield.String(val(1))
		if !ok || p == "" || utf8.RuneCountInString(p) > MaxPromptChars {
			return a, &ir.FieldError{Param: "prompt", Message: "The prompt parameter must be a non-empty string of at most " + strconv.Itoa(MaxPromptChars) + " characters."}
		}
		f := imageFields{}
		for i, name := range []string{"n", "size", "quality"} {
			if v := val(2 + i); v != nil && !jsonfield.IsNull(v) {
				if name == "n" {
					f.n, err = ir.CountField(v, "n")
				} else if s, ok := jsonfield.String(v); ok {
					f.set(name, s)
				} else {
					err = &ir.FieldError{Param: name, Message: "The " + name + " parameter must be a string."}
				}
				if err != nil {
					return a, err
				}
			}
		}
		if err := f.admit(&a); err != nil {
			return a, err
		}
	case ir.EndpointSpeech:
		in, ok := jsonfield.String(val(1))
		n := utf8.RuneCountInString(in)
		if !ok || n == 0 || n > MaxSpeechChars {
			return a, &ir.FieldError{Param: "input", Message: "The input parameter must be a non-empty string of at most " + strconv.Itoa(MaxSpeechChars) + " characters."}
		}
		if sf, _ := jsonfield.String(val(2)); sf == "sse" {
			return a, &ir.FieldError{Param: "stream_format", Message: "Speech is streamed back as audio; stream_format sse is not served through this gateway."}
		}
		a.Units.Characters = int64(n)
	}
	return a, nil
}

// imageFields are what an image request says of its images.
type imageFields struct {
	n             int64
	size, quality string
}

func (f *imageFields) set(name, v string) {
	if name == "size" {
		f.size = strings.ToLower(v)
	} else {
		f.quality = strings.ToLower(v)
	}
}

// admit fills in the images asked for and their variant.
func (f *imageFields) admit(a *ir.Admission) error {
	if f.n > MaxImages {
		return &ir.FieldError{Param: "n", Message: "At most " + strconv.Itoa(MaxImages) + " images may be asked for in one request."}
	}
	for _, p := range []struct{ name, v string }{{"size", f.size}, {"quality", f.quality}} {
		if len(p.v) > maxVariantLength || strings.ContainsFunc(p.v, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
		}) {
			return &ir.FieldError{Param: p.name, Message: "The " + p.name + " parameter is not a size or quality (such as 1024x1024, hd)."}
		}
	}
	a.Units.Images = max(f.n, 1)
	if f.size != "" || f.quality != "" {
		a.Variant = f.size + "/" + f.quality
	}
	return nil
}

// admitUpload reads a multipart upload (image edits, transcriptions,
// translations) part by part from the buffered body: fields up to 64 KiB,
// files streamed (an audio file's duration read from it as it passes).
func admitUpload(t ir.Target, body []byte) (ir.Admission, error) {
	var a ir.Admission
	mt, params, err := mime.ParseMediaType(t.ContentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return a, &ir.FieldError{Param: "", Message: "This endpoint takes a multipart/form-data upload."}
	}
	a.ContentType = t.ContentType
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	fields := map[string]string{}
	var files int
	var dur audio.Info
	audioEndpoint := t.Endpoint != ir.EndpointImageEdits
	for parts := 0; ; parts++ {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || parts >= maxParts {
			return a, &ir.FieldError{Param: "", Message: "The multipart body could not be read (at most " + strconv.Itoa(maxParts) + " parts)."}
		}
		name := p.FormName()
		if p.FileName() != "" {
			files++
			if audioEndpoint && name == "file" {
				if files > 1 {
					return a, &ir.FieldError{Param: "file", Message: "Send one audio file."}
				}
				if dur, err = audio.Read(p); err != nil {
					return a, &ir.FieldError{Param: "file", Message: "The audio file's duration could not be read from it (wav, mp3, flac, ogg, m4a/mp4 are read): " + err.Error()}
				}
			}
			_, _ = io.Copy(io.Discard, p)
			continue
		}
		if _, dup := fields[name]; dup {
			return a, &ir.FieldError{Param: name, Message: "The field " + name + " appears more than once; send it once."}
		}
		v, err := io.ReadAll(io.LimitReader(p, maxFieldBytes+1))
		if err != nil || len(v) > maxFieldBytes {
			return a, &ir.FieldError{Param: name, Message: "The field " + name + " is longer than 64 KiB."}
		}
		fields[name] = string(v)
	}
	m, ok := fields["model"]
	if !ok {
		return a, &ir.FieldError{Param: "model", Message: "You must provide a model parameter."}
	}
	if a.Model, err = ir.ModelField(strconv.AppendQuote(nil, m), "model"); err != nil {
		return a, err
	}
	if s := fields["stream"]; s == "true" {
		return a, &ir.FieldError{Param: "stream", Message: "This endpoint does not stream through this gateway."}
	}
	if audioEndpoint {
		if dur.Duration == 0 {
			return a, &ir.FieldError{Param: "file", Message: "You must provide an audio file."}
		}
		a.Units.AudioSeconds = dur.Seconds()
		return a, nil
	}
	if files == 0 {
		return a, &ir.FieldError{Param: "image", Message: "You must provide an image to edit."}
	}
	if p := fields["prompt"]; p == "" || utf8.RuneCountInString(p) > MaxPromptChars {
		return a, &ir.FieldError{Param: "prompt", Message: "The prompt parameter must be a non-empty string of at most " + strconv.Itoa(MaxPromptChars) + " characters."}
	}
	f := imageFields{}
	if v, ok := fields["n"]; ok {
		if f.n, err = ir.CountField([]byte(v), "n"); err != nil {
			return a, err
		}
	}
	f.set("size", fields["size"])
	f.set("quality", fields["quality"])
	return a, f.admit(&a)
}

// mediaPrompt is the text of a media request, for counting its tokens:
// the query and documents of a rerank, the prompt of an image request, the
// input of a speech request.
func mediaPrompt(t ir.Target, body []byte) ir.Prompt {
	var p ir.Prompt
	switch t.Endpoint {
	case ir.EndpointRerank:
		var r struct {
			Query     string            `json:"query"`
			Documents []json.RawMessage `json:"documents"`
		}
		_ = json.Unmarshal(body, &r)
		p.Texts = append(p.Texts, r.Query)
		for _, d := range r.Documents {
			if s, ok := jsonfield.String(d); ok {
				p.Texts = append(p.Texts, s)
			} else if s, ok := jsonfield.Find(d, "text"); ok {
				txt, _ := jsonfield.String(d[s.Start:s.End])
				p.Texts = append(p.Texts, txt)
			}
		}
	case ir.EndpointImages, ir.EndpointSpeech:
		for _, k := range []string{"prompt", "input"} {
			if s, ok := jsonfield.Find(body, k); ok {
				txt, _ := jsonfield.String(body[s.Start:s.End])
				p.Texts = append(p.Texts, txt)
			}
		}
	}
	return p
}

// prepareMedia renames the model of a media request: in its JSON, or in
// its multipart upload (the model field's value replaced in place).
func prepareMedia(body []byte, a *ir.Admission, model string) ([]byte, error) {
	if model == a.Model {
		return body, nil
	}
	if a.ContentType == "" {
		return jsonfield.Set(body, "model", strconv.AppendQuote(nil, model))
	}
	_, params, err := mime.ParseMediaType(a.ContentType)
	if err != nil {
		return nil, err
	}
	// The model part: its headers name it, its value follows a blank line
	// and ends at the next boundary.
	delim := []byte("\r\n--" + params["boundary"])
	for i := 0; ; {
		j := bytes.Index(body[i:], []byte(`name="model"`))
		if j < 0 {
			return nil, errors.New("multipart body without a model field")
		}
		start := i + j
		hdrEnd := bytes.Index(body[start:], []byte("\r\n\r\n"))
		if hdrEnd < 0 {
			return nil, errors.New("malformed multipart body")
		}
		vStart := start + hdrEnd + 4
		vEnd := bytes.Index(body[vStart:], delim)
		if vEnd < 0 {
			return nil, errors.New("malformed multipart body")
		}
		// The header must be a form field's, not text inside a file.
		if ls := bytes.LastIndex(body[:start], []byte("\r\n")); ls >= 0 && bytes.HasPrefix(bytes.ToLower(body[ls+2:start]), []byte("content-disposition: form-data;")) &&
			!bytes.Contains(body[start:vStart], []byte("filename=")) {
			out := make([]byte, 0, len(body)-vEnd+len(model))
			out = append(append(append(out, body[:vStart]...), model...), body[vStart+vEnd:]...)
			return out, nil
		}
		i = start + 1
	}
}

// EndpointUsage reads the usage of a media answer, with the units the
// request itself said where the answer says none: rerank tokens (Jina's
// usage, SiliconFlow's meta.tokens) or Cohere's search units; the images
// an image answer holds (and the tokens of a per-token image model); the
// duration or tokens a transcription reports, else the seconds read from
// the file; the characters of a speech request. handled is false for the
// other endpoints.
func (vendor) EndpointUsage(endpoint string, a *ir.Admission, body []byte) (usage.Usage, bool) {
	if !isMedia(endpoint) {
		return usage.Usage{}, false
	}
	var u usage.Usage
	if a != nil {
		u.Images, u.AudioSeconds, u.Characters = a.Units.Images, a.Units.AudioSeconds, a.Units.Characters
	}
	u.Source = usage.SourceCounted
	vendorSaid := false
	var w struct {
		Usage *struct {
			Type         string `json:"type"`
			Seconds      *int64 `json:"seconds"`
			InputTokens  *int64 `json:"input_tokens"`
			OutputTokens *int64 `json:"output_tokens"`
			PromptTokens *int64 `json:"prompt_tokens"`
			TotalTokens  *int64 `json:"total_tokens"`
		} `json:"usage"`
		Meta *struct {
			BilledUnits *struct {
				SearchUnits *int64 `json:"search_units"`
			} `json:"billed_units"`
			Tokens *struct {
				InputTokens *int64 `json:"input_tokens"`
			} `json:"tokens"`
		} `json:"meta"`
		Data *[]json.RawMessage `json:"data"`
	}
	if len(body) > 0 && body[0] == '{' && json.Unmarshal(body, &w) == nil {
		pos := func(p *int64) (int64, bool) { return max(ptr(p), 0), p != nil && *p >= 0 }
		switch endpoint {
		case ir.EndpointRerank:
			if w.Usage != nil {
				if n, ok := pos(w.Usage.PromptTokens); ok {
					u.Input, vendorSaid = n, true
				} else if n, ok := pos(w.Usage.TotalTokens); ok {
					u.Input, vendorSaid = n, true
				}
			}
			if m := w.Meta; m != nil && m.Tokens != nil && !vendorSaid {
				u.Input, vendorSaid = pos(m.Tokens.InputTokens)
			}
			if m := w.Meta; m != nil && m.BilledUnits != nil && m.BilledUnits.SearchUnits != nil {
				u.SearchCalls, _ = pos(m.BilledUnits.SearchUnits)
				vendorSaid = true
			}
			if !vendorSaid {
				return usage.Usage{}, true // counted by the gateway from the prompt
			}
		case ir.EndpointImages, ir.EndpointImageEdits:
			if w.Data != nil {
				u.Images, vendorSaid = int64(len(*w.Data)), true
			}
		}
		if x := w.Usage; x != nil && endpoint != ir.EndpointRerank {
			if x.Type == "duration" && x.Seconds != nil && *x.Seconds >= 0 {
				u.AudioSeconds, vendorSaid = *x.Seconds, true
			}
			if in, ok := pos(x.InputTokens); ok {
				out, _ := pos(x.OutputTokens)
				u.Input, u.Output, vendorSaid = in, out, true
			}
		}
	}
	if vendorSaid {
		u.Source = usage.SourceVendor
	}
	return u, true
}

func ptr(p *int64) int64 {
	if p == nil {
		return 0
	}
	return *p
}
