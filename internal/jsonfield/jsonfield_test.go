package jsonfield

import (
	"encoding/json"
	"testing"
)

func TestFind(t *testing.T) {
	body := []byte(` { "model" : "gpt-4o", "messages":[{"role":"user","content":"a \"}\" b"}], "stream":true,
		"n":3, "stream_options":{"include_usage":false}, "x":null, "model":"last" } `)
	tests := []struct {
		key, want string
		ok        bool
	}{
		{"model", `"last"`, true},
		{"stream", "true", true},
		{"n", "3", true},
		{"x", "null", true},
		{"messages", `[{"role":"user","content":"a \"}\" b"}]`, true},
		{"missing", "", false},
	}
	for _, tt := range tests {
		s, ok := Find(body, tt.key)
		if ok != tt.ok || (ok && string(body[s.Start:s.End]) != tt.want) {
			t.Errorf("Find(%q) = %q, %v; want %q, %v", tt.key, body[s.Start:s.End], ok, tt.want, tt.ok)
		}
	}
	s, ok := Path(body, "stream_options", "include_usage")
	if !ok || string(body[s.Start:s.End]) != "false" {
		t.Errorf("Path = %q, %v", body[s.Start:s.End], ok)
	}
	if _, ok := Find([]byte(`[1,2]`), "a"); ok {
		t.Error("Find on an array succeeded")
	}
	if s, ok := Find([]byte(`{"mod\u0065l":"x"}`), "model"); !ok || s.End-s.Start != 3 {
		t.Error("escaped key not found")
	}
}

func TestSetDelete(t *testing.T) {
	tests := []struct {
		in, key, val, want string
	}{
		{`{"a":1}`, "a", `2`, `{"a":2}`},
		{`{"a":1}`, "b", `"x"`, `{"a":1,"b":"x"}`},
		{`{}`, "b", `true`, `{"b":true}`},
		{"{ }\n", "b", `true`, "{ \"b\":true}\n"},
	}
	for _, tt := range tests {
		got, err := Set([]byte(tt.in), tt.key, []byte(tt.val))
		if err != nil || string(got) != tt.want {
			t.Errorf("Set(%s, %s) = %s, %v; want %s", tt.in, tt.key, got, err, tt.want)
		}
		if !json.Valid(got) {
			t.Errorf("Set produced invalid JSON %s", got)
		}
	}
	dels := []struct{ in, key, want string }{
		{`{"a":1,"b":2,"c":3}`, "b", `{"a":1,"c":3}`},
		{`{"a":1,"b":2}`, "a", `{"b":2}`},
		{`{"a":1,"b":2}`, "b", `{"a":1}`},
		{`{"a":1}`, "a", `{}`},
		{`{"a":1}`, "z", `{"a":1}`},
		{`{"x\"a":1,"a":{"b":[1,2]}}`, "a", `{"x\"a":1}`},
	}
	for _, tt := range dels {
		got := Delete([]byte(tt.in), tt.key)
		if string(got) != tt.want {
			t.Errorf("Delete(%s, %s) = %s; want %s", tt.in, tt.key, got, tt.want)
		}
	}
}

func TestScalars(t *testing.T) {
	if s, ok := String([]byte(`"a\nb"`)); !ok || s != "a\nb" {
		t.Errorf("String escaped = %q %v", s, ok)
	}
	if _, ok := String([]byte(`12`)); ok {
		t.Error("String(12) ok")
	}
	if v, ok := Bool([]byte("true")); !ok || !v {
		t.Error("Bool(true)")
	}
	if _, ok := Int([]byte("1.5")); ok {
		t.Error("Int(1.5) ok")
	}
}

func FuzzEach(f *testing.F) {
	f.Add([]byte(`{"model":"x","stream":true,"a":[1,{"b":"}"}]}`))
	f.Add([]byte(`{"a":"\\"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		valid := json.Valid(b)
		_ = Each(b, func(k []byte, v Span) bool {
			if v.Start < 0 || v.End > len(b) || v.Start > v.End {
				t.Fatalf("bad span %v for len %d", v, len(b))
			}
			if valid && !json.Valid(b[v.Start:v.End]) {
				t.Fatalf("value %q of valid object is not valid JSON", b[v.Start:v.End])
			}
			return true
		})
		if valid {
			if out, err := Set(b, "model", []byte(`"m"`)); err == nil && !json.Valid(out) {
				t.Fatalf("Set made invalid JSON: %q", out)
			}
			if out := Delete(b, "model"); !json.Valid(out) {
				t.Fatalf("Delete made invalid JSON: %q -> %q", b, out)
			}
		}
	})
}
