package route

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// threadCPU is the CPU time of the calling OS thread. On a machine shared
// with other work, wall-clock ns/op includes time spent descheduled; CPU
// time per op does not, so both are reported.
func threadCPU() time.Duration {
	var ru syscall.Rusage
	const rusageThread = 1 // RUSAGE_THREAD, Linux
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter reports "cpu-ns/op" for the benchmark loop it brackets. It pins
// the goroutine to its thread so the thread's CPU time is the loop's.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter {
	runtime.LockOSThread()
	return cpuMeter{start: threadCPU()}
}

func (m cpuMeter) stop(b *testing.B) {
	d := threadCPU() - m.start
	runtime.UnlockOSThread()
	if b.N > 0 {
		b.ReportMetric(float64(d.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
