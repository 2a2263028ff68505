// Package simulate holds the simulator's speed benchmark (issue 14: a
// 1-hour trace on 16 replicas simulates in under a minute on one core) and,
// in run.sh, the sweeps behind BENCHMARKS.md §6. Results of the sweeps go to
// results/<experiment>/ (CSV and SVG, committed: BENCHMARKS.md shows them).
package simulate
