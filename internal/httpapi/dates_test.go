package httpapi_test

import (
	"strings"
	"testing"
)

// TestNoZeroDates: the admin API never writes 0001-01-01: a tenant whose
// creation time is not known (the default tenant of a store made before it
// was recorded) has created_at null, and a statement from the beginning
// has from null (and its lines are a list, even empty).
func TestNoZeroDates(t *testing.T) {
	e := newBillingEnv(t)
	e.doH(t, "POST", "/admin/tenants", `{"id":"acme","kind":"prepaid","currency":"CNY"}`)
	for _, path := range []string{"/admin/tenants", "/admin/tenants/default/statement", "/admin/tenants/acme/statement", "/admin/keys"} {
		st, m := e.doH(t, "GET", path, "")
		if j := mustJSON(m); st != 200 || strings.Contains(j, "0001-01-01") {
			t.Errorf("GET %s = %d %s", path, st, j)
		}
	}
	_, m := e.doH(t, "GET", "/admin/tenants/default/statement", "")
	if v, ok := m["from"]; !ok || v != nil || m["lines"] == nil {
		t.Errorf("statement from the beginning: %v", m)
	}
	_, m = e.doH(t, "GET", "/admin/tenants", "")
	for _, x := range m["data"].([]any) {
		tn := x.(map[string]any)
		if (tn["id"] == "default") != (tn["created_at"] == nil) {
			t.Errorf("tenant %v: created_at %v; want null only where not known", tn["id"], tn["created_at"])
		}
	}
}
