//go:build race

package billing

// raceBuild is true when the tests run with -race.
const raceBuild = true
