package retry_test

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rampart-go/rampart/retry"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeClock is a manual clock. In auto mode a new timer advances the clock by
// its duration and fires at once, so a retry loop runs synchronously; in
// manual mode timers fire when the test calls Advance, and each new timer is
// announced on started.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	auto    bool
	timers  []*fakeTimer
	started chan time.Duration
}

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func newAutoClock() *fakeClock { return &fakeClock{now: epoch, auto: true} }

func newManualClock() *fakeClock {
	return &fakeClock{now: epoch, started: make(chan time.Duration, 16)}
}

// newLiveClock starts at the real time so that contexts with real deadlines
// relative to it stay alive while the test advances the fake time.
func newLiveClock() *fakeClock { return &fakeClock{now: time.Now(), auto: true} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) NewTimer(d time.Duration) retry.Timer {
	c.mu.Lock()
	t := &fakeTimer{clk: c, c: make(chan time.Time, 1), at: c.now.Add(d)}
	if c.auto {
		c.now = t.at
		t.c <- c.now
		c.mu.Unlock()
		return t
	}
	c.timers = append(c.timers, t)
	c.mu.Unlock()
	c.started <- d
	return t
}

// Advance moves the clock forward and fires the timers that are due.
func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	keep := c.timers[:0]
	for _, t := range c.timers {
		if t.stopped {
			continue
		}
		if !t.at.After(c.now) {
			t.c <- c.now
			continue
		}
		keep = append(keep, t)
	}
	c.timers = keep
}

type fakeTimer struct {
	clk     *fakeClock
	c       chan time.Time
	at      time.Time
	stopped bool // guarded by clk.mu
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.clk.mu.Lock()
	defer t.clk.mu.Unlock()
	was := !t.stopped && len(t.c) == 0
	t.stopped = true
	return was
}
