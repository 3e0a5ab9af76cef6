package ratelimit_test

import "github.com/rampart-go/rampart/internal/clock/clocktest"

// fakeClock is the manual clock the tests drive: time moves only on Advance.
type fakeClock = clocktest.Fake

func newFakeClock() *fakeClock { return clocktest.New() }
