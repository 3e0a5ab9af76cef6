// Package clock is the replaceable clock shared by the policy packages that
// wait (bulkhead, ratelimit). Its method set uses only standard types, so one
// fake clock serves every package that takes a clock of this shape.
package clock

import "time"

// Clock is a source of the current time and of timers.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer starts a timer that sends on c once d has elapsed; stop stops
	// it and reports whether it was still running, like time.Timer.Stop.
	NewTimer(d time.Duration) (c <-chan time.Time, stop func() bool)
}

// System is the Clock of package time.
type System struct{}

// Now returns time.Now().
func (System) Now() time.Time { return time.Now() }

// NewTimer starts a time.Timer.
func (System) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}
