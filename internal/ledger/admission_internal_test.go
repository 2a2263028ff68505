package ledger

import (
	"fmt"
	"testing"
)

// TestRecentHoldsBounded: the resolved holds kept for retries are the last
// max requests resolved: each new request past max forgets the oldest, a
// request seen again is updated in place and forgets nothing.
func TestRecentHoldsBounded(t *testing.T) {
	r := recentHolds{max: 3}
	add := func(reqs ...string) {
		for _, req := range reqs {
			r.add(req, Hold{RequestID: req, Amount: int64(len(r.byReq))})
		}
	}
	kept := func() string {
		var out []string
		for _, req := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
			if _, ok := r.byReq[req]; ok {
				out = append(out, req)
			}
		}
		return fmt.Sprint(out)
	}
	add("a", "b", "c")
	if got := kept(); got != "[a b c]" {
		t.Fatalf("after a, b, c: kept %s", got)
	}
	r.add("b", Hold{RequestID: "b", Amount: 99}) // seen again: updated, nothing forgotten
	if got := kept(); got != "[a b c]" || r.byReq["b"].Amount != 99 {
		t.Fatalf("after b again: kept %s, b %+v", got, r.byReq["b"])
	}
	for i, tc := range []struct{ add, want string }{
		{"d", "[b c d]"}, {"e", "[c d e]"}, {"f", "[d e f]"}, {"g", "[e f g]"}, {"h", "[f g h]"},
	} {
		add(tc.add)
		if got := kept(); got != tc.want || len(r.byReq) != 3 || len(r.ring) != 3 {
			t.Fatalf("step %d, after %s: kept %s (%d, ring %v), want %s", i, tc.add, got, len(r.byReq), r.ring, tc.want)
		}
	}
}
