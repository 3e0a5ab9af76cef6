package retry

import "time"

// Clock is the source of time for a Policy or Budget. The default is the
// system clock. Tests supply a fake one with [WithClock] so that they advance
// time rather than sleep. The Policy waits out its backoff delays on its
// timers (backoff/v4 only computes the delays, so it gets no clock), and a
// Budget counts its window with it.
//
// Implementations must be safe for concurrent use.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// NewTimer returns a started timer that fires once, after d.
	NewTimer(d time.Duration) Timer
}

// Timer is a one-shot timer made by a [Clock].
type Timer interface {
	// C returns the channel on which the timer delivers the time when it fires.
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it did so.
	Stop() bool
}

// systemClock is the default Clock: time.Now and time.NewTimer.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) NewTimer(d time.Duration) Timer { return sysTimer{time.NewTimer(d)} }

type sysTimer struct{ t *time.Timer }

func (t sysTimer) C() <-chan time.Time { return t.t.C }
func (t sysTimer) Stop() bool          { return t.t.Stop() }

// Option configures a Policy (through [NewPolicy]), a [Budget] or [Budgets].
// A nil Option is ignored.
type Option func(*options)

type options struct {
	clock Clock
}

func applyOptions(opts []Option) options {
	var o options
	for _, fn := range opts {
		if fn != nil {
			fn(&o)
		}
	}
	return o
}

// WithClock makes the Policy or Budget read time and start timers with c.
// A nil c is ignored (the system clock stays).
func WithClock(c Clock) Option {
	return func(o *options) {
		if c != nil {
			o.clock = c
		}
	}
}
