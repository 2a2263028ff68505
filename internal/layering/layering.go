// Package layering enforces, in its tests, the dependency rules of baimo's
// layout: the domain packages (money, usage, price, ledger, billing) import
// no HTTP and no SQL, even transitively, and the request path (gateway)
// never imports a store. It has no code of its own.
package layering
