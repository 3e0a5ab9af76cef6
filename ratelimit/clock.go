package ratelimit

import "github.com/rampart-go/rampart/internal/clock"

// Clock is the source of time for a [Limiter]: its Now drives the token
// bucket and is what a context's deadline is measured from, and its timers
// time [Limiter.Wait]. The default is the system clock; tests pass a fake one
// with [WithClock] to drive time instead of sleeping.
//
// Its method set uses only standard types, so one fake clock can serve every
// rampart package that takes a clock of this shape: Now() time.Time, and
// NewTimer(d) (c <-chan time.Time, stop func() bool) that sends on c once d
// has elapsed, stop reporting whether the timer was still running.
type Clock = clock.Clock

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
	o := options{clock: clock.System{}}
	for _, opt := range opts {
		if opt != nil {
			opt(&o)
		}
	}
	return o
}
