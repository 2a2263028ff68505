// Package schedule holds the benchmarks of internal/schedule: the cost of one
// placement decision on a pool of 64 replicas, per policy, for a prompt whose
// prefix a replica holds and for a cache miss, with the index warm. Figures
// go to BENCHMARKS.md §6.
package schedule
