package httpapi_test

import (
	"net/http"
	"strings"
	"testing"

	"baimo/internal/money"
)

// TestQuoteShowsTheHold: POST /v1/quote needs an API key, and shows, next
// to what the request costs, the hold the gateway would take for it from
// the key's tenant: the very amount admission holds (a tenant with exactly
// that much is served; one nano less is refused before the upstream call).
func TestQuoteShowsTheHold(t *testing.T) {
	const body = `{"model":"sim-chat","max_tokens":300,"n":2,"messages":[{"role":"user","content":"What is the weather in Paris?"}]}`
	e := newBillingEnv(t)
	if st, m := e.env.do(t, "POST", "/v1/quote", "", body); st != http.StatusUnauthorized {
		t.Errorf("quote without a key = %d %v", st, m)
	}
	probe := e.prepaidKey(t, "probe", "1")
	st, q := e.env.do(t, "POST", "/v1/quote", probe, body)
	hold, _ := q["hold"].(string)
	if st != 200 || hold == "" || q["hold_output_tokens"] != float64(300) {
		t.Fatalf("quote = %d %v", st, q)
	}
	held, err := money.ParseNanos(hold)
	cost, err2 := money.ParseNanos(q["max_cost"].(string))
	if err != nil || err2 != nil || held < cost || held == 0 {
		t.Fatalf("hold %s, cost %v: want a hold at least the cost of the whole output", hold, q["max_cost"])
	}
	// A request the other way would take: an output limit beyond the
	// model's is refused as the request would be.
	if st, m := e.env.do(t, "POST", "/v1/quote", probe, strings.Replace(body, `"max_tokens":300`, `"max_tokens":100000000`, 1)); st != 400 {
		t.Errorf("quote beyond the model's output = %d %v", st, m)
	}
	for _, c := range []struct {
		tenant string
		funds  int64
		status int
	}{{"exact", held, 200}, {"short", held - 1, 429}} {
		secret := e.prepaidKey(t, c.tenant, money.FormatNanos(c.funds))
		if resp, out := askChat(t, e.url, secret, body); resp.StatusCode != c.status {
			t.Errorf("tenant with %s (the quoted hold %s): %d %s, want %d", money.FormatNanos(c.funds), hold, resp.StatusCode, out, c.status)
		}
	}
	// A model no channel serves has a price but no hold.
	if st, m := e.env.do(t, "POST", "/v1/quote", probe, `{"model":"deepseek-chat","input_tokens":10}`); st != 200 || m["hold"] != nil || m["hold_note"] == nil {
		t.Errorf("quote of a model not served = %d %v", st, m)
	}
}
