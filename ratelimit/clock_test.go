package ratelimit_test

import (
	"sync"
	"testing"
	"time"
)

// fakeClock is a manual clock: time moves only when the test calls Advance,
// and every NewTimer is announced on created so a test can wait until a
// caller is really waiting.
type fakeClock struct {
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

func newFakeClock() *fakeClock {
	return &fakeClock{
		now:     time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
		created: make(chan time.Duration, 1024),
	}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) (<-chan time.Time, func() bool) {
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
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.fireLocked()
}

func (c *fakeClock) fireLocked() {
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

// waitTimer blocks until some caller has started a timer and returns its
// duration.
func (c *fakeClock) waitTimer(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.created:
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("no timer was started")
		return 0
	}
}
