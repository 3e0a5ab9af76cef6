// Package clocktest is a manual fake of clock.Clock for tests.
package clocktest

import (
	"sync"
	"testing"
	"time"
)

// Fake is a manual clock: time moves only when the test calls Advance,
// and every NewTimer is announced on created so a test can wait until a
// caller is really waiting.
type Fake struct {
	mu      sync.Mutex
	now     time.Time
	timers  []*fakeTimer
	created chan time.Duration
}

type fakeTimer struct {
	at      time.Time
	c       chan time.Time
	stopped bool
	fired   bool
}

// New returns a Fake clock set to 2030-01-01 00:00 UTC.
func New() *Fake {
	return &Fake{
		now:     time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		created: make(chan time.Duration, 1024),
	}
}

func (c *Fake) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *Fake) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
	c.mu.Lock()
	t := &fakeTimer{at: c.now.Add(d), c: make(chan time.Time, 1)}
	c.timers = append(c.timers, t)
	c.fireLocked()
	c.mu.Unlock()
	c.created <- d
	stop := func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		running := !t.stopped && !t.fired
		t.stopped = true
		return running
	}
	return t.c, stop
}

// Advance moves the clock forward by d and fires the timers that are due.
func (c *Fake) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

func (c *Fake) fireLocked() {
	kept := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.fired = true
			t.c <- c.now
		default:
			kept = append(kept, t)
		}
	}
	clear(c.timers[len(kept):])
	c.timers = kept
}

// WaitTimer blocks until some caller has started a timer and returns its
// duration.
func (c *Fake) WaitTimer(t testing.TB) time.Duration {
	t.Helper()
	select {
	case d := <-c.created:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no timer was started")
		return 0
	}
}

// TimerStarted reports, without blocking, whether some caller has started a
// timer not yet reported by WaitTimer or TimerStarted, and its duration.
func (c *Fake) TimerStarted() (time.Duration, bool) {
	select {
	case d := <-c.created:
		return d, true
	default:
		return 0, false
	}
}
