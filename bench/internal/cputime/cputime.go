// Package cputime measures the CPU time a benchmark loop spends on its own
// OS thread. On a machine shared with other work, wall-clock ns/op includes
// time spent descheduled; CPU time per op does not.
package cputime

import (
	"runtime"
	"syscall"
	"testing"
	"time"
)

// thread is the calling OS thread's user plus system time (Linux
// RUSAGE_THREAD; 0 where unsupported).
func thread() time.Duration {
	const rusageThread = 1
	var ru syscall.Rusage
	if syscall.Getrusage(rusageThread, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// Meter brackets a benchmark loop.
type Meter struct{ begin time.Duration }

// Start locks the goroutine to its thread and notes the thread's CPU time.
func Start() Meter {
	runtime.LockOSThread()
	return Meter{begin: thread()}
}

// Stop reports "cpu-ns/op" for the loop since Start and unlocks the thread.
func (m Meter) Stop(b *testing.B) {
	spent := thread() - m.begin
	runtime.UnlockOSThread()
	if b.N > 0 {
		b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// process is the whole process's user plus system time (RUSAGE_SELF).
func process() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// ProcessMeter brackets a benchmark loop that runs on many goroutines: it
// counts the CPU time of the whole process (the garbage collector and
// background goroutines included), so nothing else should run meanwhile.
type ProcessMeter struct{ begin time.Duration }

// StartProcess notes the process's CPU time.
func StartProcess() ProcessMeter { return ProcessMeter{begin: process()} }

// Stop reports "cpu-ns/op" for the loop since StartProcess.
func (m ProcessMeter) Stop(b *testing.B) {
	spent := process() - m.begin
	if b.N > 0 {
		b.ReportMetric(float64(spent.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}
