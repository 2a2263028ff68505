package httpapi_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"baimo/internal/billing"
	"baimo/internal/usage"
)

// TestAdminAuditReratesRecords: GET /admin/audit re-rates the usage records
// of the last day: after real requests it passes; a record that could not
// be rated (charged its hold, marked unrated) makes it fail, named.
func TestAdminAuditReratesRecords(t *testing.T) {
	e := newBillingEnv(t)
	secret := e.prepaidKey(t, "acme", "10")
	for range 3 {
		if resp, body := askChat(t, e.url, secret, `{"model":"sim-chat","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`); resp.StatusCode != 200 {
			t.Fatalf("%d %s", resp.StatusCode, body)
		}
	}
	e.settled(t, "acme")
	st, m := e.doH(t, "GET", "/admin/audit", "")
	if st != 200 || m["ok"] != true || !strings.Contains(mustJSON(m), billing.CheckRatedCost) {
		t.Fatalf("audit after real requests = %d %v", st, m)
	}
	err := e.db.WriteRecords(context.Background(), []usage.Record{{RequestID: "lost-price", TenantID: "acme", KeyID: "k", Endpoint: "chat",
		Model: "sim-chat", Channel: "sim", UpstreamModel: "sim-chat", Status: 200, Complete: true, Start: time.Now().Add(-time.Minute),
		Usage: usage.Usage{Input: 10, Output: 10, Source: usage.SourceVendor}, Currency: "CNY", CostNanos: 5000, PriceVersion: billing.Unrated}})
	if err != nil {
		t.Fatal(err)
	}
	st, m = e.doH(t, "GET", "/admin/audit", "")
	if j := mustJSON(m); st != 409 || m["ok"] != false || !strings.Contains(j, "request lost-price (sim-chat") || !strings.Contains(j, "could not be rated") {
		t.Errorf("audit with an unrated record = %d %s", st, j)
	}
}
