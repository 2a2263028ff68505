package main

import "testing"

func TestPatient(t *testing.T) {
	for _, tc := range []struct{ dsn, want string }{
		{"postgres://postgres@127.0.0.1:5432/b?sslmode=disable",
			"postgres://postgres@127.0.0.1:5432/b?idle_in_transaction_session_timeout=60000&sslmode=disable"},
		{"postgresql://h/b", "postgresql://h/b?idle_in_transaction_session_timeout=60000"},
		{"postgres://h/b?idle_in_transaction_session_timeout=5000", "postgres://h/b?idle_in_transaction_session_timeout=5000"},
		{"host=h dbname=b", "host=h dbname=b"}, // a keyword DSN is left as it is
	} {
		if got := patient(tc.dsn); got != tc.want {
			t.Errorf("patient(%q) = %q, want %q", tc.dsn, got, tc.want)
		}
	}
}
