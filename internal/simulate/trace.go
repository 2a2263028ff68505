package simulate

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Limits on what a trace may hold, so a malformed file cannot exhaust
// memory.
const (
	MaxTraceRequests = 5_000_000
	MaxPromptTokens  = 1 << 20
	MaxOutputTokens  = 1 << 17
	maxLine          = 4 << 20
)

// Request is one request of a trace.
type Request struct {
	At     time.Duration // arrival, from the trace's start
	Prompt int           // prompt tokens
	Output int           // output tokens
	// IDs name the prompt's blocks of Trace.IDTokens tokens (Mooncake's
	// hash_ids): prompts sharing leading ids share that prefix. Nil when the
	// trace says nothing of sharing (Azure): every prompt is then unique.
	IDs []uint64
}

// Trace is a list of requests in arrival order.
type Trace struct {
	Name     string
	IDTokens int // tokens per id of Request.IDs
	Requests []Request
}

// Duration is the arrival time of the last request.
func (t *Trace) Duration() time.Duration {
	if len(t.Requests) == 0 {
		return 0
	}
	return t.Requests[len(t.Requests)-1].At
}

// Slice returns the requests arriving in [from, from+length), shifted to
// start at zero. A length of 0 means to the end.
func (t *Trace) Slice(from, length time.Duration) *Trace {
	out := &Trace{Name: t.Name, IDTokens: t.IDTokens}
	for _, r := range t.Requests {
		if r.At < from || (length > 0 && r.At >= from+length) {
			continue
		}
		r.At -= from
		out.Requests = append(out.Requests, r)
	}
	return out
}

// Repeat returns the trace played n times in a row, each copy starting one
// mean inter-arrival gap after the last request of the one before, with its
// prefix ids shifted so that copies share nothing.
func (t *Trace) Repeat(n int) *Trace {
	if n <= 1 || len(t.Requests) == 0 {
		return t
	}
	out := &Trace{Name: t.Name, IDTokens: t.IDTokens, Requests: make([]Request, 0, n*len(t.Requests))}
	span := t.Duration() + t.Duration()/time.Duration(len(t.Requests))
	var maxID uint64
	for _, r := range t.Requests {
		for _, id := range r.IDs {
			maxID = max(maxID, id)
		}
	}
	for k := range n {
		for _, r := range t.Requests {
			r.At += time.Duration(k) * span
			if k > 0 && len(r.IDs) > 0 {
				ids := make([]uint64, len(r.IDs))
				for i, id := range r.IDs {
					ids[i] = id + uint64(k)*(maxID+1)
				}
				r.IDs = ids
			}
			out.Requests = append(out.Requests, r)
		}
	}
	return out
}

// LoadTrace reads a Mooncake JSONL trace (.jsonl) or an Azure LLM inference
// CSV trace (.csv).
func LoadTrace(path string) (*Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	name := path[strings.LastIndexByte(path, '/')+1:]
	var t *Trace
	switch {
	case strings.HasSuffix(path, ".jsonl"):
		t, err = ReadMooncake(f)
	case strings.HasSuffix(path, ".csv"):
		t, err = ReadAzure(f)
	default:
		return nil, fmt.Errorf("trace %s: unknown format (want .jsonl for Mooncake or .csv for Azure)", path)
	}
	if err != nil {
		return nil, fmt.Errorf("trace %s: %w", path, err)
	}
	t.Name = strings.TrimSuffix(strings.TrimSuffix(name, ".jsonl"), ".csv")
	return t, nil
}

func checkLengths(line, prompt, output int) error {
	if prompt < 1 || prompt > MaxPromptTokens {
		return fmt.Errorf("line %d: prompt of %d tokens out of [1, %d]", line, prompt, MaxPromptTokens)
	}
	if output < 0 || output > MaxOutputTokens {
		return fmt.Errorf("line %d: output of %d tokens out of [0, %d]", line, output, MaxOutputTokens)
	}
	return nil
}

// ReadMooncake reads the Mooncake FAST'25 trace format: one JSON object a
// line with timestamp (ms), input_length, output_length and hash_ids
// (512-token blocks).
func ReadMooncake(r io.Reader) (*Trace, error) {
	t := &Trace{IDTokens: 512}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), maxLine)
	for n := 1; sc.Scan(); n++ {
		line := sc.Bytes()
		if len(strings.TrimSpace(string(line))) == 0 {
			continue
		}
		var row struct {
			Timestamp float64  `json:"timestamp"`
			Input     int      `json:"input_length"`
			Output    int      `json:"output_length"`
			HashIDs   []uint64 `json:"hash_ids"`
		}
		if err := json.Unmarshal(line, &row); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if err := checkLengths(n, row.Input, row.Output); err != nil {
			return nil, err
		}
		if row.Timestamp < 0 || len(row.HashIDs) > MaxPromptTokens/512+1 {
			return nil, fmt.Errorf("line %d: bad timestamp or too many hash_ids", n)
		}
		if len(t.Requests) >= MaxTraceRequests {
			return nil, fmt.Errorf("more than %d requests", MaxTraceRequests)
		}
		t.Requests = append(t.Requests, Request{At: time.Duration(row.Timestamp * float64(time.Millisecond)),
			Prompt: row.Input, Output: max(row.Output, 1), IDs: row.HashIDs})
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return finish(t)
}

// ReadAzure reads the Azure LLM inference trace format (2023 and 2024):
// TIMESTAMP, ContextTokens, GeneratedTokens.
func ReadAzure(r io.Reader) (*Trace, error) {
	cr := csv.NewReader(bufio.NewReaderSize(r, 64<<10))
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, err
	}
	if len(head) < 3 || !strings.EqualFold(strings.TrimSpace(head[0]), "TIMESTAMP") {
		return nil, errors.New("header: want TIMESTAMP,ContextTokens,GeneratedTokens")
	}
	t := &Trace{}
	var first time.Time
	for n := 2; ; n++ {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(rec) < 3 {
			return nil, fmt.Errorf("line %d: %d fields", n, len(rec))
		}
		ts, err := time.Parse("2006-01-02 15:04:05.9999999", strings.TrimSpace(rec[0]))
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		in, err1 := strconv.Atoi(strings.TrimSpace(rec[1]))
		out, err2 := strconv.Atoi(strings.TrimSpace(rec[2]))
		if err1 != nil || err2 != nil {
			return nil, fmt.Errorf("line %d: token counts are not integers", n)
		}
		if err := checkLengths(n, in, out); err != nil {
			return nil, err
		}
		if first.IsZero() {
			first = ts
		}
		if len(t.Requests) >= MaxTraceRequests {
			return nil, fmt.Errorf("more than %d requests", MaxTraceRequests)
		}
		t.Requests = append(t.Requests, Request{At: ts.Sub(first), Prompt: in, Output: max(out, 1)})
	}
	return finish(t)
}

func finish(t *Trace) (*Trace, error) {
	if len(t.Requests) == 0 {
		return nil, errors.New("no requests")
	}
	sort.SliceStable(t.Requests, func(i, j int) bool { return t.Requests[i].At < t.Requests[j].At })
	if base := t.Requests[0].At; base < 0 {
		for i := range t.Requests {
			t.Requests[i].At -= base
		}
	}
	return t, nil
}
