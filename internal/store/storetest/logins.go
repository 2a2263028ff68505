package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"baimo/internal/keys"
)

func testLogins(t *testing.T, s Store) {
	ctx := context.Background()
	at := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for _, l := range []keys.Login{{Name: "ann", TenantID: "acme", Hash: "h1", CreatedAt: at}, {Name: "bob", TenantID: "acme", Hash: "h2", CreatedAt: at},
		{Name: "cat", TenantID: "globex", Hash: "h3", CreatedAt: at}} {
		if err := s.CreateLogin(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateLogin(ctx, keys.Login{Name: "ann", TenantID: "globex", Hash: "x", CreatedAt: at}); !errors.Is(err, keys.ErrLoginExists) {
		t.Errorf("a taken name = %v, want ErrLoginExists", err)
	}
	l, err := s.LoginByName(ctx, "ann")
	if err != nil || l.TenantID != "acme" || l.Hash != "h1" || !l.CreatedAt.Equal(at) {
		t.Errorf("LoginByName = %+v, %v", l, err)
	}
	list, err := s.Logins(ctx, "acme")
	if err != nil || len(list) != 2 || list[0].Name != "ann" || list[1].Name != "bob" {
		t.Errorf("Logins(acme) = %+v, %v", list, err)
	}
	if err := s.DeleteLogin(ctx, "ann"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.LoginByName(ctx, "ann"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("deleted login = %v", err)
	}
	if err := s.DeleteLogin(ctx, "ann"); !errors.Is(err, keys.ErrNotFound) {
		t.Errorf("delete twice = %v", err)
	}
}
