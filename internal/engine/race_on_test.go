//go:build race

package engine

// raceBuild is true under -race, where the calibration checks its main
// assumption only (the race detector makes the run about 20 times slower).
const raceBuild = true
