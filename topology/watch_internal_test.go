package topology

import (
	"math"
	"testing"
	"time"
)

// TestWaitStaysInRange: every wait lies within the jitter band around the
// interval and is positive, also for a NaN jitter (taken as none) and for
// an interval so long that the band passes the largest Duration (capped).
func TestWaitStaysInRange(t *testing.T) {
	src := Static(nil)
	for _, tc := range []struct {
		name     string
		opts     []WatchOption
		min, max time.Duration
	}{
		{"default", []WatchOption{WithInterval(time.Second)}, 800 * time.Millisecond, 1200 * time.Millisecond},
		{"nan jitter", []WatchOption{WithInterval(time.Hour), WithJitter(math.NaN())}, time.Hour, time.Hour},
		{"negative jitter", []WatchOption{WithInterval(time.Hour), WithJitter(-1)}, time.Hour, time.Hour},
		{"huge interval", []WatchOption{WithInterval(math.MaxInt64)}, math.MaxInt64 / 10 * 8, math.MaxInt64},
	} {
		w := NewWatcher(src, tc.opts...)
		for range 1000 {
			if d := w.wait(); d < tc.min || d > tc.max {
				t.Fatalf("%s: wait() = %v, want within [%v, %v]", tc.name, d, tc.min, tc.max)
			}
		}
	}
}
