package ratelimit

import "time"

// Clock is the source of time for a [Limiter]: its Now drives the token
// bucket and is what a context's deadline is measured from, and its timers
// time [Limiter.Wait]. The default is the system clock; tests pass a fake one
// with [WithClock] to drive time instead of sleeping.
//
// Its method set uses only standard types, so one fake clock can serve every
// rampart package that takes a clock of this shape.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer starts a timer that sends on c once d has elapsed; stop stops
	// it and reports whether it was still running, like time.Timer.Stop.
	NewTimer(d time.Duration) (c <-chan time.Time, stop func() bool)
}

// systemClock is the default Clock, on package time.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	t := time.NewTimer(d)
	return t.C, t.Stop
}

// Option configures a [Limiter] or a [Group]. A nil Option is ignored.
type Option func(*options)

type options struct {
	clock Clock
}

// WithClock makes the limiter read the time and take its timers from c. A nil
// c is ignored.
func WithClock(c Clock) Option {
	return func(o *options) {
		if c != nil {
			o.clock = c
		}
	}
}

func buildOptions(opts []Option) options {
	o := options{clock: systemClock{}}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}
