package keys

import (
	"strings"
	"testing"
	"time"
)

func TestNewIDSortsByTime(t *testing.T) {
	seen := map[string]bool{}
	prev := ""
	for i := 0; i < 1000; i++ {
		id := NewID("req_")
		if !strings.HasPrefix(id, "req_") || len(id) != len("req_")+28 || seen[id] {
			t.Fatalf("id %q (len %d) is malformed or repeated", id, len(id))
		}
		seen[id] = true
		if i%100 == 0 {
			time.Sleep(2 * time.Microsecond)
			if prev != "" && id[:4+13] < prev[:4+13] {
				t.Fatalf("id %s sorts before the earlier %s", id, prev)
			}
			prev = id
		}
	}
}

func TestGenerateAndHash(t *testing.T) {
	secret, k, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, SecretPrefix) || k.Hash != Hash(secret) || !strings.HasPrefix(secret, k.Prefix) || strings.Contains(k.Hash, secret) {
		t.Errorf("Generate = %q %+v", secret, k)
	}
	k2 := Key{Models: []string{"a"}, ExpiresAt: time.Unix(100, 0)}
	if k2.Allows("b") || !k2.Allows("a") {
		t.Error("Allows")
	}
	if ok, why := k2.Usable(time.Unix(100, 0)); ok || why != "expired" {
		t.Errorf("Usable at expiry = %v %q", ok, why)
	}
}
