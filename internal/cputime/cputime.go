// Package cputime reads the CPU time the process has used, for benchmarks
// that report it per operation next to sec/op.
//
// On a small, shared machine the wall time of a loopback benchmark moves
// with everything else that runs, and with how long goroutines wait for
// each other. The CPU time the whole process (client and server) spends per
// call moves far less, and a saturated machine's throughput is its cores
// over it.
package cputime

import "time"

// Process returns the CPU time, user and system, this process has used so
// far, or 0 where the system does not say.
func Process() time.Duration { return process() }

// PerOp is the CPU time used since start, a value of Process, over n
// operations, in nanoseconds; ok is false when Process reads nothing here.
func PerOp(start time.Duration, n int) (ns float64, ok bool) {
	end := Process()
	if start <= 0 || end <= 0 || n <= 0 {
		return 0, false
	}
	return float64(end-start) / float64(n), true
}
