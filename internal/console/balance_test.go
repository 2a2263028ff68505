package console_test

import (
	"context"
	"strings"
	"testing"

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
}
