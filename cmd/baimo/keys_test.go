package main

import (
	"strings"
	"testing"
)

// TestKeysCreateNeedsTenant: `baimo keys create --tenant T` is refused,
// creating nothing, when no tenant T exists, and works once it does.
func TestKeysCreateNeedsTenant(t *testing.T) {
	startBilling(t)
	code, _, errb := cli(t, "keys", "create", "--name", "k", "--tenant", "ghost")
	if code != 1 || !strings.Contains(errb, "400") || !strings.Contains(errb, `No tenant with id "ghost"`) {
		t.Errorf("key for a missing tenant: exit %d, %s", code, errb)
	}
	if code, out, _ := cli(t, "keys", "list"); code != 0 || strings.Contains(out, "ghost") {
		t.Errorf("a key for the missing tenant was created: %s", out)
	}
	if code, _, errb := cli(t, "tenants", "create", "--id", "ghost", "--kind", "prepaid"); code != 0 {
		t.Fatalf("tenants create: %s", errb)
	}
	if code, out, errb := cli(t, "keys", "create", "--name", "k", "--tenant", "ghost"); code != 0 || !strings.Contains(out, "sk-baimo-") {
		t.Errorf("key for an existing tenant: exit %d, %s %s", code, out, errb)
	}
}
