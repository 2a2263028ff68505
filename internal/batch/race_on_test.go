//go:build race

package batch_test

// raceScale shrinks the randomised tests under the race detector, which
// slows the pure-Go SQLite tenfold.
const raceScale = 3
