package openai

import (
	"bytes"
	"errors"
	"mime/multipart"
	"strings"
	"testing"

	"baimo/internal/provider/ir"
	"baimo/internal/usage"
)

func TestAdmitMedia(t *testing.T) {
	for _, c := range []struct {
		endpoint, body string
		want           ir.Admission
		param          string // refused, naming it
	}{
		{ir.EndpointRerank, `{"model":"r","query":"q","documents":["a",{"text":"b"}],"top_n":1}`, ir.Admission{Model: "r"}, ""},
		{ir.EndpointRerank, `{"model":"r","query":"","documents":["a"]}`, ir.Admission{}, "query"},
		{ir.EndpointRerank, `{"model":"r","query":"q","documents":"a"}`, ir.Admission{}, "documents"},
		{ir.EndpointRerank, `{"model":"r","query":"q","documents":["a"],"top_n":0}`, ir.Admission{}, "top_n"},
		{ir.EndpointImages, `{"model":"i","prompt":"p"}`, ir.Admission{Model: "i", Units: usage.Usage{Images: 1}}, ""},
		{ir.EndpointImages, `{"model":"i","prompt":"p","n":3,"size":"1024X1792","quality":"HD"}`,
			ir.Admission{Model: "i", Units: usage.Usage{Images: 3}, Variant: "1024x1792/hd"}, ""},
		{ir.EndpointImages, `{"model":"i","prompt":"p","quality":"low"}`, ir.Admission{Model: "i", Units: usage.Usage{Images: 1}, Variant: "/low"}, ""},
		{ir.EndpointImages, `{"model":"i","prompt":"p","n":11}`, ir.Admission{}, "n"},
		{ir.EndpointImages, `{"model":"i","prompt":"p","size":"1024/1024"}`, ir.Admission{}, "size"},
		{ir.EndpointImages, `{"model":"i","prompt":"p","size":7}`, ir.Admission{}, "size"},
		{ir.EndpointImages, `{"model":"i"}`, ir.Admission{}, "prompt"},
		{ir.EndpointImages, `{"model":"i","prompt":"p","stream":true}`, ir.Admission{}, "stream"},
		{ir.EndpointImages, `{"model":"i","prompt":"p","n":2,"n":9}`, ir.Admission{}, "n"},
		{ir.EndpointSpeech, `{"model":"s","input":"héllo","voice":"alloy"}`, ir.Admission{Model: "s", Units: usage.Usage{Characters: 5}}, ""},
		{ir.EndpointSpeech, `{"model":"s","input":"x","stream_format":"sse"}`, ir.Admission{}, "stream_format"},
		{ir.EndpointSpeech, `{"model":"s","input":""}`, ir.Admission{}, "input"},
	} {
		a, err := Client.Admit(ir.Target{Endpoint: c.endpoint}, []byte(c.body))
		var fe *ir.FieldError
		if c.param != "" {
			if !errors.As(err, &fe) || fe.Param != c.param {
				t.Errorf("%s %s: %v, want a refusal of %s", c.endpoint, c.body, err, c.param)
			}
			continue
		}
		if err != nil || a != c.want {
			t.Errorf("%s %s: %+v, %v; want %+v", c.endpoint, c.body, a, err, c.want)
		}
	}
}

func multipartBody(fields [][2]string, file string, data []byte) (string, []byte) {
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, f := range fields {
		_ = mw.WriteField(f[0], f[1])
	}
	if file != "" {
		fw, _ := mw.CreateFormFile(file, "x.bin")
		_, _ = fw.Write(data)
	}
	_ = mw.Close()
	return mw.FormDataContentType(), b.Bytes()
}

// silence is one second of 8 kHz 8-bit mono WAV.
func silence() []byte {
	b := []byte("RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00\x40\x1f\x00\x00\x01\x00\x08\x00data\x40\x1f\x00\x00")
	return append(b, make([]byte, 8000)...)
}

// TestAdmitUpload: multipart uploads are read part by part; the audio's
// duration comes from the file; the model renamed in place.
func TestAdmitUpload(t *testing.T) {
	ct, body := multipartBody([][2]string{{"model", "whisper-pub"}, {"language", "en"}}, "file", silence())
	a, err := Client.Admit(ir.Target{Endpoint: ir.EndpointTranscriptions, ContentType: ct}, body)
	if err != nil || a.Model != "whisper-pub" || a.Units.AudioSeconds != 1 || a.ContentType != ct {
		t.Fatalf("transcription admitted %+v, %v", a, err)
	}
	out, err := Vendor.Prepare(body, &a, ir.EndpointTranscriptions, "whisper-1", 0)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(out, []byte("\r\n\r\nwhisper-1\r\n--")) || bytes.Contains(out, []byte("whisper-pub")) || len(out) != len(body)-2 {
		t.Errorf("model not renamed in place:\n%q", out[:200])
	}
	b2, err := Client.Admit(ir.Target{Endpoint: ir.EndpointTranscriptions, ContentType: ct}, out)
	if err != nil || b2.Model != "whisper-1" || b2.Units.AudioSeconds != 1 {
		t.Errorf("the renamed upload reads %+v, %v", b2, err)
	}
	ct, body = multipartBody([][2]string{{"model", "img"}, {"prompt", "blue"}, {"n", "2"}, {"size", "512x512"}}, "image", []byte("png"))
	a, err = Client.Admit(ir.Target{Endpoint: ir.EndpointImageEdits, ContentType: ct}, body)
	if err != nil || a.Units.Images != 2 || a.Variant != "512x512/" {
		t.Errorf("edit admitted %+v, %v", a, err)
	}
	for name, c := range map[string]struct {
		endpoint string
		fields   [][2]string
		file     string
		data     []byte
		param    string
	}{
		"no model":     {ir.EndpointTranscriptions, nil, "file", silence(), "model"},
		"no file":      {ir.EndpointTranscriptions, [][2]string{{"model", "w"}}, "", nil, "file"},
		"not audio":    {ir.EndpointTranscriptions, [][2]string{{"model", "w"}}, "file", []byte("text"), "file"},
		"two models":   {ir.EndpointTranscriptions, [][2]string{{"model", "w"}, {"model", "x"}}, "file", silence(), "model"},
		"stream":       {ir.EndpointTranscriptions, [][2]string{{"model", "w"}, {"stream", "true"}}, "file", silence(), "stream"},
		"no image":     {ir.EndpointImageEdits, [][2]string{{"model", "i"}, {"prompt", "p"}}, "", nil, "image"},
		"no prompt":    {ir.EndpointImageEdits, [][2]string{{"model", "i"}}, "image", []byte("x"), "prompt"},
		"long field":   {ir.EndpointImageEdits, [][2]string{{"model", "i"}, {"prompt", strings.Repeat("p", 70000)}}, "image", []byte("x"), "prompt"},
		"bad n":        {ir.EndpointImageEdits, [][2]string{{"model", "i"}, {"prompt", "p"}, {"n", "0"}}, "image", []byte("x"), "n"},
		"bad size":     {ir.EndpointImageEdits, [][2]string{{"model", "i"}, {"prompt", "p"}, {"size", "a b"}}, "image", []byte("x"), "size"},
		"huge n field": {ir.EndpointImageEdits, [][2]string{{"model", "i"}, {"prompt", "p"}, {"n", "1e3"}}, "image", []byte("x"), "n"},
	} {
		ct, body := multipartBody(c.fields, c.file, c.data)
		_, err := Client.Admit(ir.Target{Endpoint: c.endpoint, ContentType: ct}, body)
		var fe *ir.FieldError
		if !errors.As(err, &fe) || fe.Param != c.param {
			t.Errorf("%s: %v, want a refusal of %s", name, err, c.param)
		}
	}
	if _, err := Client.Admit(ir.Target{Endpoint: ir.EndpointTranscriptions, ContentType: "application/json"}, []byte(`{}`)); err == nil {
		t.Error("a JSON body was admitted as an upload")
	}
}

// TestEndpointUsage reads each vendor shape of a media answer.
func TestEndpointUsage(t *testing.T) {
	v := Vendor.(ir.UnitMeter)
	vendorU := func(u usage.Usage) usage.Usage { u.Source = usage.SourceVendor; return u }
	counted := func(u usage.Usage) usage.Usage { u.Source = usage.SourceCounted; return u }
	for _, c := range []struct {
		name, endpoint string
		adm            ir.Admission
		body           string
		want           usage.Usage
	}{
		{"jina", ir.EndpointRerank, ir.Admission{}, `{"results":[],"usage":{"total_tokens":42}}`, vendorU(usage.Usage{Input: 42})},
		{"siliconflow", ir.EndpointRerank, ir.Admission{}, `{"results":[],"meta":{"tokens":{"input_tokens":17,"output_tokens":0}}}`, vendorU(usage.Usage{Input: 17})},
		{"cohere", ir.EndpointRerank, ir.Admission{}, `{"results":[],"meta":{"billed_units":{"search_units":1}}}`, vendorU(usage.Usage{SearchCalls: 1})},
		{"rerank silent", ir.EndpointRerank, ir.Admission{}, `{"results":[]}`, usage.Usage{}},
		{"dall-e", ir.EndpointImages, ir.Admission{Units: usage.Usage{Images: 3}}, `{"data":[{"url":"u"},{"url":"v"}]}`, vendorU(usage.Usage{Images: 2})},
		{"gpt-image-1", ir.EndpointImages, ir.Admission{Units: usage.Usage{Images: 1}},
			`{"data":[{"b64_json":"x"}],"usage":{"input_tokens":50,"output_tokens":4160,"input_tokens_details":{"text_tokens":50,"image_tokens":0}}}`,
			vendorU(usage.Usage{Images: 1, Input: 50, Output: 4160})},
		{"images silent", ir.EndpointImages, ir.Admission{Units: usage.Usage{Images: 2}}, `{"created":1}`, counted(usage.Usage{Images: 2})},
		{"whisper", ir.EndpointTranscriptions, ir.Admission{Units: usage.Usage{AudioSeconds: 9}}, `{"text":"hi","usage":{"type":"duration","seconds":8}}`,
			vendorU(usage.Usage{AudioSeconds: 8})},
		{"gpt-4o-transcribe", ir.EndpointTranscriptions, ir.Admission{Units: usage.Usage{AudioSeconds: 9}},
			`{"text":"hi","usage":{"type":"tokens","input_tokens":120,"output_tokens":12,"total_tokens":132}}`,
			vendorU(usage.Usage{AudioSeconds: 9, Input: 120, Output: 12})},
		{"transcript as text", ir.EndpointTranslations, ir.Admission{Units: usage.Usage{AudioSeconds: 4}}, "hello there\n", counted(usage.Usage{AudioSeconds: 4})},
		{"speech", ir.EndpointSpeech, ir.Admission{Units: usage.Usage{Characters: 12}}, "", counted(usage.Usage{Characters: 12})},
		{"negative", ir.EndpointRerank, ir.Admission{}, `{"usage":{"total_tokens":-5}}`, usage.Usage{}},
	} {
		u, handled := v.EndpointUsage(c.endpoint, &c.adm, []byte(c.body))
		if !handled || u != c.want {
			t.Errorf("%s: %+v (%v), want %+v", c.name, u, handled, c.want)
		}
	}
	if _, handled := v.EndpointUsage(ir.EndpointChat, nil, []byte(`{}`)); handled {
		t.Error("chat answers are BodyUsage's")
	}
}

// FuzzAdmitUpload: any multipart body is admitted or refused, never a
// panic, and one admitted as audio has a duration.
func FuzzAdmitUpload(f *testing.F) {
	ct, body := multipartBody([][2]string{{"model", "w"}}, "file", silence())
	f.Add(body)
	_, body = multipartBody([][2]string{{"model", "w"}, {"prompt", "p"}}, "image", []byte("png"))
	f.Add(body)
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, e := range []string{ir.EndpointTranscriptions, ir.EndpointImageEdits} {
			a, err := Client.Admit(ir.Target{Endpoint: e, ContentType: ct}, b)
			if err == nil && e == ir.EndpointTranscriptions && a.Units.AudioSeconds <= 0 {
				t.Fatalf("admitted without a duration: %+v", a)
			}
			if err == nil {
				if _, err := Vendor.Prepare(b, &a, e, "other-model", 0); err != nil && a.Model != "other-model" {
					t.Logf("prepare: %v", err)
				}
			}
		}
	})
}
