package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"baimo/internal/billing"
	"baimo/internal/gateway"
)

// TestCurrencyMismatchIsAConfigurationError: a gateway billing in USD in
// front of a tenant whose account is in CNY answers each request with a 403
// that names both currencies and says retrying will not help (it used to be
// a retryable 503 "cannot reserve ... retry"), without calling the
// upstream.
func TestCurrencyMismatchIsAConfigurationError(t *testing.T) {
	e := newBillingEnv(t, func(_ *gateway.Options, b *billing.Options) {
		b.Rater.Currency, b.Rater.Rates = "USD", b.Rater.Catalog.ReferenceRates()
	})
	_, k := e.doH(t, "POST", "/admin/keys", `{"name":"k"}`)
	resp, body := askChat(t, e.url, k["key"].(string), `{"model":"sim-chat","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "billing_currency_mismatch") ||
		!strings.Contains(body, "billed in CNY") || !strings.Contains(body, "bills in USD") || resp.Header.Get("Retry-After") != "" {
		t.Errorf("%d %s", resp.StatusCode, body)
	}
}
