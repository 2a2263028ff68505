package sse

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type got struct{ name, data, id, raw string }

func readAll(t *testing.T, r io.Reader, maxLine int) ([]got, error) {
	t.Helper()
	rd := NewReader(r, maxLine)
	var out []got
	for {
		ev, err := rd.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, err
		}
		out = append(out, got{string(ev.Name), string(ev.Data), string(ev.ID), string(ev.Raw)})
	}
}

func TestReader(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []got
	}{
		{"openai", "data: {\"a\":1}\n\ndata: [DONE]\n\n", []got{
			{"", `{"a":1}`, "", "data: {\"a\":1}\n\n"}, {"", "[DONE]", "", "data: [DONE]\n\n"}}},
		{"crlf and named", "event: message_start\r\ndata: {}\r\n\r\n", []got{
			{"message_start", "{}", "", "event: message_start\r\ndata: {}\r\n\r\n"}}},
		{"comments and blank lines", ": keep-alive\n\n\ndata: x\n\n", []got{{"", "x", "", "data: x\n\n"}}},
		{"multi-line data", "data: a\ndata: b\nid: 7\n\n", []got{{"", "a\nb", "7", "data: a\ndata: b\nid: 7\n\n"}}},
		{"no space after colon", "data:x\n\n", []got{{"", "x", "", "data:x\n\n"}}},
		{"missing final blank line", "data: a\n\ndata: b", []got{{"", "a", "", "data: a\n\n"}, {"", "b", "", "data: b"}}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mode := range []string{"whole", "one byte at a time"} {
				var r io.Reader = strings.NewReader(tt.in)
				if mode != "whole" {
					r = iotest.OneByteReader(r)
				}
				evs, err := readAll(t, r, 0)
				if err != nil {
					t.Fatalf("%s: %v", mode, err)
				}
				if len(evs) != len(tt.want) {
					t.Fatalf("%s: got %d events %q, want %d", mode, len(evs), evs, len(tt.want))
				}
				for i := range evs {
					if evs[i] != tt.want[i] {
						t.Errorf("%s: event %d = %+v, want %+v", mode, i, evs[i], tt.want[i])
					}
				}
			}
		})
	}
}

func TestReaderSplitsAtEveryByte(t *testing.T) {
	in := "data: {\"choices\":[{\"delta\":{\"content\":\"你好\"}}]}\n\nevent: e\ndata: 2\n\ndata: [DONE]\n\n"
	want, err := readAll(t, strings.NewReader(in), 0)
	if err != nil {
		t.Fatal(err)
	}
	for cut := 1; cut < len(in); cut++ {
		r := io.MultiReader(strings.NewReader(in[:cut]), strings.NewReader(in[cut:]))
		evs, err := readAll(t, r, 0)
		if err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if len(evs) != len(want) {
			t.Fatalf("cut %d: %d events, want %d", cut, len(evs), len(want))
		}
		for i := range evs {
			if evs[i] != want[i] {
				t.Errorf("cut %d: event %d = %+v, want %+v", cut, i, evs[i], want[i])
			}
		}
	}
}

func TestLineLimit(t *testing.T) {
	in := "data: " + strings.Repeat("x", 100) + "\n\n"
	if _, err := readAll(t, strings.NewReader(in), 64); !errors.Is(err, ErrLineTooLong) {
		t.Errorf("err = %v, want ErrLineTooLong", err)
	}
	if evs, err := readAll(t, strings.NewReader(in), 200); err != nil || len(evs) != 1 {
		t.Errorf("under the limit: %v, %d events", err, len(evs))
	}
	// Longer than the bufio buffer but under the limit.
	big := "data: " + strings.Repeat("y", 40<<10) + "\n\n"
	if evs, err := readAll(t, strings.NewReader(big), 0); err != nil || len(evs) != 1 || len(evs[0].data) != 40<<10 {
		t.Errorf("big line: %v", err)
	}
}

// TestLinesAroundTheBuffer reads lines of about the Reader's buffer size,
// whole and a byte at a time, each followed by a short event, through one
// Reader that is Reset between streams as the gateway's pool does.
func TestLinesAroundTheBuffer(t *testing.T) {
	rd := NewReader(strings.NewReader(""), 0)
	for _, n := range []int{bufSize - 8, bufSize - 7, bufSize - 6, bufSize, bufSize + 1, 3*bufSize + 5} {
		for _, oneByte := range []bool{false, true} {
			data := strings.Repeat("z", n)
			in := "data: " + data + "\r\n\r\ndata: next\n\n"
			var src io.Reader = strings.NewReader(in)
			if oneByte {
				src = iotest.OneByteReader(src)
			}
			rd.Reset(src)
			ev, err := rd.Next()
			if err != nil || string(ev.Data) != data || string(ev.Raw) != "data: "+data+"\r\n\r\n" {
				t.Fatalf("n=%d oneByte=%v: err %v, data %d bytes, raw %d bytes", n, oneByte, err, len(ev.Data), len(ev.Raw))
			}
			ev, err = rd.Next()
			if err != nil || string(ev.Data) != "next" {
				t.Fatalf("n=%d oneByte=%v: event after: %q, %v", n, oneByte, ev.Data, err)
			}
			if _, err := rd.Next(); !errors.Is(err, io.EOF) {
				t.Fatalf("n=%d oneByte=%v: end: %v", n, oneByte, err)
			}
		}
	}
}

func TestAppendData(t *testing.T) {
	b := AppendData(nil, "ping", []byte("a\nb"))
	if string(b) != "event: ping\ndata: a\ndata: b\n\n" {
		t.Errorf("AppendData = %q", b)
	}
	evs, err := readAll(t, bytes.NewReader(b), 0)
	if err != nil || len(evs) != 1 || evs[0].data != "a\nb" || evs[0].name != "ping" {
		t.Errorf("round trip = %+v, %v", evs, err)
	}
}

func FuzzReader(f *testing.F) {
	f.Add([]byte("data: {\"a\":1}\n\ndata: [DONE]\n\n"), 64)
	f.Add([]byte("event: x\r\ndata: y\r\n\r\n:c\n"), 8)
	f.Fuzz(func(t *testing.T, in []byte, maxLine int) {
		if maxLine < 0 || maxLine > 1<<16 {
			maxLine = 0
		}
		rd := NewReader(bytes.NewReader(in), maxLine)
		total := 0
		for i := 0; i < len(in)+2; i++ {
			ev, err := rd.Next()
			if err != nil {
				return
			}
			total += len(ev.Raw)
			if total > len(in) {
				t.Fatalf("raw bytes %d exceed input %d", total, len(in))
			}
		}
		t.Fatal("reader did not end")
	})
}
