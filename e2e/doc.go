// Package e2e drives the built baimo binary from outside.
//
// TestSDK starts `baimo serve` in front of a `baimo sim` process that speaks
// the OpenAI, Anthropic and Gemini formats, creates keys through the admin API
// and runs the SDK tests in e2e/sdk under node:test: the official openai,
// @anthropic-ai/sdk and @google/genai npm clients, each against OpenAI-,
// Anthropic- and Gemini-kind upstreams, checking that the usage each client
// sees equals the usage recorded. Other tests check shutdown and durability
// (a stream in flight at SIGTERM finishes and is recorded), the admin API's
// authentication, a gateway SIGKILLed mid-stream at seeded points and
// restarted (holds reconciled, or on SQLite, where holds live in memory, each
// request charged exactly its record; books audited), three gateway nodes
// sharing PostgreSQL and Redis through one load run with a key limit and a
// prepaid balance while one node is killed and restarted, two nodes
// passing a parked key, an unpark and a breaker reset to each other, and
// three nodes reaching PostgreSQL and Redis through TCP fault proxies
// (package faultproxy) that cut and blackhole them under load while a
// price version is added and a node is killed for good (TestNodesUnderFaults),
// a channel added on one node serving on another within about a second
// (TestChannelsReplicated), and the web console in headless Chromium
// (TestConsoleBrowser: Debian's chromium through playwright-core, the flow of
// e2e/console/console.test.js, screenshots of every page left in
// e2e/console/artifacts).
//
// When the test binary is built with -race, baimo is built with -race too, so
// the SDK traffic also hunts for data races in the server; set
// BAIMO_E2E_RACE=0 to build it without.
//
// Run them with `go test ./e2e/` (add -race to race-build baimo too, -v to see
// node's report). The SDK tests need node and npm on PATH (they skip without
// them) and run `npm ci` in e2e/sdk when the locked packages are not
// installed. The multi-node test needs BAIMO_TEST_POSTGRES and
// BAIMO_TEST_REDIS (it skips, saying which is unset); the crash test uses
// SQLite, and PostgreSQL too when it is set. BAIMO_E2E_SEED replays a crash
// seed. The JavaScript tests can also be run by hand against a running
// gateway:
//
//	cd e2e/sdk && BAIMO_URL=http://127.0.0.1:8080 BAIMO_KEY=sk-baimo-... BAIMO_ADMIN_KEY=... node --test
package e2e
