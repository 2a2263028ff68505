//go:build !race

package batch_test

const raceScale = 1
