package usage

import (
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
