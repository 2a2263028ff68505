package ratelimit

import (
	"syscall"
	"time"
)

// wallMillis is time.Now().UnixMilli() for the real clock at half the cost:
// gettimeofday reads CLOCK_REALTIME alone through the vDSO, where
// time.Now also reads the monotonic clock, which a limit in Unix
// milliseconds does not use. Same clock, so the two agree.
func wallMillis() int64 {
	var tv syscall.Timeval
	if err := syscall.Gettimeofday(&tv); err != nil {
		return time.Now().UnixMilli()
	}
	return tv.Sec*1000 + tv.Usec/1000
}
