// Package route holds the benchmarks of internal/route: choosing a channel
// among many, per policy, on one core and in parallel. Figures go to
// RESULTS.md here and then to BENCHMARKS.md.
package route
