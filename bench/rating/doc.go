// Package rating holds the benchmarks of price rating on the request path
// (price.Catalog.Rate). Run them with
//
//	go test -run '^$' -bench . -benchmem ./bench/rating
//
// and record the figures in RESULTS.md.
package rating
