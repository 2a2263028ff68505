// Package ratelimit holds the benchmarks of internal/ratelimit: a local
// check, and the Redis path with its round trips counted. Figures go to
// RESULTS.md here and then to BENCHMARKS.md.
package ratelimit
