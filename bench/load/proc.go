package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is the kernel's USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat. It is 100 on every Linux architecture Go supports for
// this tool; reading sysconf(_SC_CLK_TCK) would need cgo.
const clockTicks = 100

// procCPU returns the user plus system CPU time the process pid has used.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	return parseStatCPU(b)
}

// parseStatCPU reads utime and stime (fields 14 and 15) from the contents of
// /proc/<pid>/stat. The command name, field 2, may hold spaces and
// parentheses, so fields are counted from the last ')'.
func parseStatCPU(b []byte) (time.Duration, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("parse stat: no ')' after the command name")
	}
	f := strings.Fields(string(b[i+1:]))
	// After ')': field 3 (state) is f[0], so field n is f[n-3].
	const utime, stime = 14 - 3, 15 - 3
	if len(f) <= stime {
		return 0, fmt.Errorf("parse stat: %d fields after the command name, want more than %d", len(f), stime)
	}
	u, err := strconv.ParseInt(f[utime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse stat utime %q: %w", f[utime], err)
	}
	s, err := strconv.ParseInt(f[stime], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("parse stat stime %q: %w", f[stime], err)
	}
	if u < 0 || s < 0 {
		return 0, fmt.Errorf("parse stat: negative CPU time")
	}
	return time.Duration(u+s) * time.Second / clockTicks, nil
}

// memory is what /proc/<pid>/status says about a process's resident memory.
type memory struct {
	RSS  int64 // VmRSS, bytes
	Peak int64 // VmHWM, the high-water mark of RSS, bytes
}

// procMemory returns the current and peak resident set size of pid.
func procMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	return parseStatusMemory(b)
}

// parseStatusMemory reads VmRSS and VmHWM (in kB) from /proc/<pid>/status.
func parseStatusMemory(b []byte) (memory, error) {
	var m memory
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmRSS" && key != "VmHWM") {
			continue
		}
		f := strings.Fields(val)
		if len(f) != 2 || f[1] != "kB" {
			return memory{}, fmt.Errorf("parse status %s: unexpected value %q", key, val)
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return memory{}, fmt.Errorf("parse status %s: bad number %q", key, f[0])
		}
		if key == "VmRSS" {
			m.RSS = kb * 1024
		} else {
			m.Peak = kb * 1024
		}
		seen++
	}
	if seen != 2 {
		return memory{}, fmt.Errorf("parse status: VmRSS or VmHWM missing")
	}
	return m, nil
}

// loadAverage returns the first three fields of /proc/loadavg, or "?" when it
// cannot be read; it is only shown in the report.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// cpuModel returns the processor's model name, or "?".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "?"
}
