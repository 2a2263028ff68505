//go:build !linux

package ratelimit

import "time"

// wallMillis is time.Now().UnixMilli(); Linux has a cheaper read.
func wallMillis() int64 { return time.Now().UnixMilli() }
