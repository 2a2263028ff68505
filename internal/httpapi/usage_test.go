package httpapi_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"baimo/internal/usage"
)

// TestAdminUsage pages through GET /admin/usage with its filters and checks
// the totals by outcome.
func TestAdminUsage(t *testing.T) {
	e := newEnv(t)
	start := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	var recs []usage.Record
	for i := 0; i < 12; i++ {
		r := usage.Record{RequestID: fmt.Sprintf("r%02d", i), KeyID: "k1", TenantID: "t1", Endpoint: "chat",
			Model: "sim-chat", Channel: "x", UpstreamModel: "sim-chat", Status: 200, Complete: true,
			Start: start.Add(time.Duration(i) * time.Minute), Currency: "CNY", CostNanos: 1000}
		switch i % 4 {
		case 1: // refused before its model was read
			r.Model, r.Channel, r.UpstreamModel, r.Status, r.CostNanos = "", "", "", 401, 0
		case 2: // failed upstream
			r.Status, r.CostNanos = 502, 0
		}
		if i >= 8 {
			r.KeyID = "k2"
		}
		recs = append(recs, r)
	}
	if err := e.db.WriteRecords(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	type page struct {
		ids    []string
		models []string
		m      map[string]any
	}
	get := func(q url.Values) page {
		t.Helper()
		st, m := e.do(t, "GET", "/admin/usage?"+q.Encode(), "adm", "")
		if st != 200 {
			t.Fatalf("GET /admin/usage?%s = %d %v", q.Encode(), st, m)
		}
		var p page
		p.m = m
		for _, d := range m["data"].([]any) {
			r := d.(map[string]any)
			p.ids = append(p.ids, r["request_id"].(string))
			p.models = append(p.models, r["model"].(string)+"/"+r["outcome"].(string))
		}
		return p
	}
	// Pages of 5, newest first, until next_cursor is null.
	var all []string
	q := url.Values{"limit": {"5"}}
	for n := 0; ; n++ {
		p := get(q)
		all = append(all, p.ids...)
		_, hasTotals := p.m["totals"]
		if hasTotals != (n == 0) {
			t.Errorf("page %d: totals present %v, want only on the first page", n, hasTotals)
		}
		if p.m["has_more"] != (p.m["next_cursor"] != nil) {
			t.Errorf("page %d: has_more %v but next_cursor %v", n, p.m["has_more"], p.m["next_cursor"])
		}
		if p.m["next_cursor"] == nil {
			break
		}
		q.Set("cursor", p.m["next_cursor"].(string))
		if n > 5 {
			t.Fatal("too many pages")
		}
	}
	if fmt.Sprint(all) != "[r11 r10 r09 r08 r07 r06 r05 r04 r03 r02 r01 r00]" {
		t.Errorf("pages = %v", all)
	}
	p := get(url.Values{"key_id": {"k1"}, "outcome": {"refused"}})
	if fmt.Sprint(p.ids) != "[r05 r01]" || fmt.Sprint(p.models) != "[(unknown)/refused (unknown)/refused]" {
		t.Errorf("k1's refused = %v %v", p.ids, p.models)
	}
	tot := get(url.Values{}).m["totals"].(map[string]any)
	if tot["requests"] != 12.0 || tot["served"] != 6.0 || tot["refused"] != 3.0 || tot["failed"] != 3.0 {
		t.Errorf("totals = %v", tot)
	}
	p = get(url.Values{"model": {usage.UnknownModel}, "from": {"2026-11-28T10:04:00Z"}, "to": {"2026-11-28T10:09:00Z"}})
	if fmt.Sprint(p.ids) != "[r05]" {
		t.Errorf("unknown model in [10:04, 10:09) = %v", p.ids)
	}
	p = get(url.Values{"channel": {"x"}, "status": {"502"}, "tenant_id": {"t1"}})
	if fmt.Sprint(p.ids) != "[r10 r06 r02]" || p.m["totals"].(map[string]any)["failed"] != 3.0 {
		t.Errorf("502 on channel x = %v %v", p.ids, p.m["totals"])
	}
	// Another tenant's and another channel's records: each filter keeps
	// them apart.
	more := []usage.Record{
		{RequestID: "o1", KeyID: "k3", TenantID: "t2", Endpoint: "chat", Model: "sim-chat", Channel: "y", Status: 200, Complete: true,
			Start: start.Add(-time.Hour), Currency: "CNY", CostNanos: 5},
		{RequestID: "o2", KeyID: "k3", TenantID: "t2", Endpoint: "chat", Model: "sim-chat", Channel: "x", Status: 502,
			Start: start.Add(-time.Minute), Currency: "CNY"},
	}
	if err := e.db.WriteRecords(context.Background(), more); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		q    url.Values
		want string
	}{
		{url.Values{"tenant_id": {"t2"}}, "[o2 o1]"},
		{url.Values{"channel": {"y"}}, "[o1]"},
		{url.Values{"tenant_id": {"t2"}, "channel": {"x"}}, "[o2]"},
		{url.Values{"tenant_id": {"t1"}, "channel": {"y"}}, "[]"},
		{url.Values{"key_id": {"k3"}, "status": {"200"}}, "[o1]"},
	} {
		if p := get(c.q); fmt.Sprint(p.ids) != c.want {
			t.Errorf("GET /admin/usage?%s = %v, want %s", c.q.Encode(), p.ids, c.want)
		}
	}
	if tot := get(url.Values{"tenant_id": {"t1"}}).m["totals"].(map[string]any); tot["requests"] != 12.0 || tot["served"] != 6.0 {
		t.Errorf("t1's totals with t2's records stored = %v", tot)
	}
	for _, bad := range []string{"outcome=won", "cursor=xyz", "status=99", "limit=0", "limit=10001", "model=" + strings.Repeat("m", 201)} {
		if st, m := e.do(t, "GET", "/admin/usage?"+bad, "adm", ""); st != 400 {
			t.Errorf("GET /admin/usage?%s = %d %v, want 400", bad, st, m)
		}
	}
}
