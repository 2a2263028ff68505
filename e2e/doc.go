// Package e2e drives the built baimo binary from outside: it starts
// `baimo serve` with its built-in simulated upstream, creates keys through the
// admin API and runs the SDK tests in e2e/sdk (the official openai npm
// package under node:test) against it, plus checks of shutdown and durability
// that need the process itself.
//
// When the test binary is built with -race, baimo is built with -race too, so
// the SDK traffic also hunts for data races in the server; set
// BAIMO_E2E_RACE=0 to build it without.
//
// Run them with `go test ./e2e/` (add -race to race-build baimo too, -v to see
// node's report). They need node and npm on PATH (they skip without them) and
// run `npm ci` in e2e/sdk when the locked openai package is not installed. The
// JavaScript tests can also be run by hand against a running gateway:
//
//	cd e2e/sdk && BAIMO_URL=http://127.0.0.1:8080 BAIMO_KEY=sk-baimo-... BAIMO_ADMIN_KEY=... node --test
package e2e
