//go:build !unix

package main

// lockDataDir is a no-op where flock(2) does not exist; run one `baimo
// serve` per data directory there.
func lockDataDir(string) (func(), error) { return func() {}, nil }
