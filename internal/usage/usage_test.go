package usage

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func TestCursorRoundTrip(t *testing.T) {
	for _, c := range []Cursor{{Start: 1_764_324_000_123_456_789, Seq: 42}, {Start: 0, Seq: 1}, {Start: -5, Seq: 1 << 62}} {
		got, err := ParseCursor(c.String())
		if err != nil || got != c {
			t.Errorf("ParseCursor(%q) = %+v, %v; want %+v", c.String(), got, err, c)
		}
	}
	if (Cursor{}).String() != "" {
		t.Error("the zero cursor is not the empty token")
	}
	if c, err := ParseCursor(""); err != nil || !c.IsZero() {
		t.Errorf(`ParseCursor("") = %+v, %v`, c, err)
	}
}

func TestParseCursorRefuses(t *testing.T) {
	for _, s := range []string{"x", "cjEuMS4w", "!!!!", strings.Repeat("A", 65), "cjEuYS4x", "cjIuMS4x", "cjEuMS4tMQ"} {
		if c, err := ParseCursor(s); err == nil {
			t.Errorf("ParseCursor(%q) = %+v, want an error", s, c)
		}
	}
}

func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		status  int
		channel string
		want    Outcome
	}{
		{200, "sim", Served}, {399, "", Served}, {401, "", Refused}, {429, "", Refused}, {0, "", Refused},
		{502, "sim", Failed}, {499, "sim", Failed}, {199, "sim", Failed},
	} {
		r := Record{Status: tc.status, Channel: tc.channel}
		if got := r.Outcome(); got != tc.want {
			t.Errorf("status %d channel %q: %s, want %s", tc.status, tc.channel, got, tc.want)
		}
		if o, ok := ParseOutcome(tc.want.String()); !ok || o != tc.want {
			t.Errorf("ParseOutcome(%q) = %v, %v", tc.want, o, ok)
		}
	}
	if _, ok := ParseOutcome(""); ok {
		t.Error(`ParseOutcome("") succeeded`)
	}
}

func TestSourceNames(t *testing.T) {
	tests := []struct {
		s    Source
		name string
	}{
		{SourceNone, "none"},
		{SourceVendor, "vendor"},
		{SourceCounted, "counted"},
		{SourceEstimated, "estimated"},
	}
	for _, tt := range tests {
		if got := tt.s.String(); got != tt.name {
			t.Errorf("Source(%d).String() = %q, want %q", tt.s, got, tt.name)
		}
		if got := ParseSource(tt.name); got != tt.s {
			t.Errorf("ParseSource(%q) = %v, want %v", tt.name, got, tt.s)
		}
	}
	if got := Source(len(sourceNames)).String(); got != "unknown" {
		t.Errorf("the first unnamed Source reads %q, want \"unknown\"", got)
	}
	if got := Source(255).String(); got != "unknown" {
		t.Errorf("Source(255) reads %q, want \"unknown\"", got)
	}
	for _, s := range []string{"", "Vendor", "unknown", "vendor "} {
		if got := ParseSource(s); got != SourceNone {
			t.Errorf("ParseSource(%q) = %v, want none", s, got)
		}
	}
}

// TestUncachedInput: Input includes cache reads and both kinds of cache
// writes, so the tokens billed at the plain input price are what is left,
// never below zero when a vendor's parts overshoot its total.
func TestUncachedInput(t *testing.T) {
	tests := []struct {
		name string
		u    Usage
		want int64
	}{
		{"no cache", Usage{Input: 100}, 100},
		{"cache read", Usage{Input: 100, CachedInput: 30}, 70},
		{"cache writes", Usage{Input: 100, CacheWrite5m: 20, CacheWrite1h: 10}, 70},
		{"all kinds", Usage{Input: 100, CachedInput: 30, CacheWrite5m: 20, CacheWrite1h: 10}, 40},
		{"exactly cached", Usage{Input: 60, CachedInput: 30, CacheWrite5m: 20, CacheWrite1h: 10}, 0},
		{"parts above the total", Usage{Input: 50, CachedInput: 30, CacheWrite5m: 20, CacheWrite1h: 10}, 0},
		{"empty", Usage{}, 0},
	}
	for _, tt := range tests {
		if got := tt.u.UncachedInput(); got != tt.want {
			t.Errorf("%s: UncachedInput() = %d, want %d", tt.name, got, tt.want)
		}
	}
}

func TestTotal(t *testing.T) {
	u := Usage{Input: 100, CachedInput: 40, Output: 25, Reasoning: 10, Images: 3}
	if got := u.Total(); got != 125 {
		t.Errorf("Total() = %d, want 125 (input plus output; cached and reasoning are inside them)", got)
	}
}

// TestOutcomeEdges: a status of 400 is not served, whoever answered it; a
// name past the known outcomes reads "unknown"; an unknown model shows as
// UnknownModel.
func TestOutcomeEdges(t *testing.T) {
	for _, tc := range []struct {
		status  int
		channel string
		want    Outcome
	}{{400, "sim", Failed}, {400, "", Refused}, {200, "", Served}, {300, "sim", Served}} {
		r := Record{Status: tc.status, Channel: tc.channel}
		if got := r.Outcome(); got != tc.want {
			t.Errorf("status %d channel %q: %s, want %s", tc.status, tc.channel, got, tc.want)
		}
	}
	if s := Outcome(len(outcomeNames)).String(); s != "unknown" {
		t.Errorf("the first unnamed outcome reads %q", s)
	}
	if OutcomeAny.String() != "" || Failed.String() != "failed" {
		t.Error("outcome names")
	}
	if ShownModel("") != UnknownModel || ShownModel("m") != "m" {
		t.Error("ShownModel")
	}
}

// TestCursorLength: a token of 64 characters is read, one of 65 is refused
// before it is decoded.
func TestCursorLength(t *testing.T) {
	// "r1." + a start padded with zeros + ".7" is 48 bytes: 64 characters of base64.
	raw := "r1." + strings.Repeat("0", 43) + ".7"
	tok := base64.RawURLEncoding.EncodeToString([]byte(raw))
	if len(tok) != 64 {
		t.Fatalf("built a token of %d characters", len(tok))
	}
	if c, err := ParseCursor(tok); err != nil || c != (Cursor{Start: 0, Seq: 7}) {
		t.Errorf("a 64-character token = %+v, %v", c, err)
	}
	long := base64.RawURLEncoding.EncodeToString([]byte("r1." + strings.Repeat("0", 44) + ".7"))
	if _, err := ParseCursor(long); !errors.Is(err, ErrBadCursor) {
		t.Errorf("a %d-character token: err = %v", len(long), err)
	}
}

// A record's endpoint carries what rates it: whether it was a batch's line
// (the batch price) and the variant its model may price apart.
func TestRecordedEndpoint(t *testing.T) {
	for _, c := range []struct {
		endpoint string
		batch    bool
		variant  string
	}{
		{"chat", false, ""},
		{BatchEndpoint("chat"), true, ""},
		{VariantEndpoint("images", "1024x1792/hd"), false, "1024x1792/hd"},
		{VariantEndpoint("images", ""), false, ""},
		{BatchEndpoint(VariantEndpoint("images", "512x512/")), true, "512x512/"},
		{"chatbatch:", false, ""},
	} {
		r := Record{Endpoint: c.endpoint}
		if r.IsBatch() != c.batch || r.Variant() != c.variant {
			t.Errorf("endpoint %q: batch %v, variant %q; want %v, %q", c.endpoint, r.IsBatch(), r.Variant(), c.batch, c.variant)
		}
	}
	if e := BatchEndpoint("chat"); e != "batch:chat" {
		t.Errorf("BatchEndpoint(chat) = %q", e)
	}
	if e := VariantEndpoint("images", "1024x1024/hd"); e != "images@1024x1024/hd" {
		t.Errorf("VariantEndpoint = %q", e)
	}
	if e := VariantEndpoint("images", ""); e != "images" {
		t.Errorf("VariantEndpoint with no variant = %q, want the endpoint alone", e)
	}
}
