package console_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"baimo/internal/ledger"
	"baimo/internal/money"
	"baimo/internal/usage"
)

// TestNegativeAvailableSaysWhy: once the postpaid tenant globex spends on
// credit, every page that shows its available balance below zero says why
// and how much is left, in both languages; a balance at zero says nothing.
func TestNegativeAvailableSaysWhy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	a := e.client(t, "en-US")
	a.signIn(adminKey)
	if _, body := a.get("/ui/tenants/globex"); strings.Contains(body, "avail-note") {
		t.Errorf("a balance at zero has a note: %s", excerpt(body))
	}
	rec := usage.Record{RequestID: "spent_on_credit", KeyID: "key_globex1", TenantID: "globex", Endpoint: "chat", Model: "qwen-max",
		Status: 200, Complete: true, Start: testNow, Currency: "CNY", CostNanos: 12 * money.Scale}
	if _, err := e.books.Settle(ctx, ledger.Settlement{Record: rec}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ lang, path, key, want string }{
		{"en-US", "/ui/tenants/globex", adminKey, "Below zero: spending on credit, 12 of the 500 CNY credit limit used, 488 left."},
		{"zh-CN", "/ui/tenants/globex", adminKey, "低于零：信用消费，已用 12（信用额度 500 CNY），剩余 488。"},
		{"en-US", "/ui/tenants", adminKey, "12 of the 500 CNY credit limit used, 488 left"},
		{"en-US", "/ui/portal", globexSecret, "12 of the 500 CNY credit limit used, 488 left"},
	} {
		cl := e.client(t, c.lang)
		cl.signIn(c.key)
		_, body := cl.get(c.path)
		if !strings.Contains(body, "-12") || !strings.Contains(body, c.want) {
			t.Errorf("%s %s: want -12 and %q:\n%s", c.lang, c.path, c.want, excerpt(body))
		}
	}
	p := e.client(t, "en")
	_, body := p.get("/portal/api/balance", "Authorization", "Bearer "+globexSecret)
	var b struct {
		Available string  `json:"available"`
		Note      *string `json:"available_note"`
		Spendable string  `json:"spendable"`
	}
	if err := json.Unmarshal([]byte(body), &b); err != nil || b.Available != "-12" || b.Note == nil ||
		!strings.Contains(*b.Note, "spends on credit") || b.Spendable != "488" {
		t.Errorf("portal API balance %s (%v): want available -12, a note and spendable 488", body, err)
	}
}

// TestReportNeverShowsABlankModel: requests refused before their model
// was read are summed under usage.UnknownModel in a report grouped by
// model, never under "".
func TestReportNeverShowsABlankModel(t *testing.T) {
	e := newEnv(t)
	refused := usage.Record{RequestID: "refused_no_model", Endpoint: "chat", Status: 401, Start: testNow.Add(-time.Minute)}
	if err := e.db.WriteRecords(context.Background(), []usage.Record{refused}); err != nil {
		t.Fatal(err)
	}
	c := e.client(t, "en")
	st, body := c.get("/admin/reports/usage?range=30d&group_by=model", "Authorization", "Bearer "+adminKey)
	if st != 200 {
		t.Fatalf("report = %d %s", st, body)
	}
	var rep struct {
		Groups []struct {
			Group    string `json:"group"`
			Requests int64  `json:"requests"`
		} `json:"groups"`
	}
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, g := range rep.Groups {
		if g.Group == "" {
			t.Errorf("a group with a blank model: %+v", g)
		}
		found = found || (g.Group == usage.UnknownModel && g.Requests == 1)
	}
	if !found {
		t.Errorf("no group %s of one request: %+v", usage.UnknownModel, rep.Groups)
	}
}
