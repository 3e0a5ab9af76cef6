package breaker

import (
	"math"
	"testing"
	"time"
)

// TestRollingWindow: the interval given to gobreaker is a whole number of
// buckets, as many as asked (so gobreaker does not round it up by one), no
// longer than the window, and short enough that gobreaker's rounding cannot
// overflow.
func TestRollingWindow(t *testing.T) {
	for _, tc := range []struct {
		window  time.Duration
		buckets int
		want    int64 // buckets in the interval
	}{
		{0, 0, 10},
		{600 * time.Millisecond, 6, 6},
		{600 * time.Millisecond, 7, 7},
		{10 * time.Second, 3, 3},
		{5, 10, 1}, // fewer nanoseconds than buckets: one bucket
		{math.MaxInt64, 1, 1},
		{math.MaxInt64, 7, 7},
		{10 * time.Second, 1e9, 1000}, // capped: gobreaker allocates every bucket
	} {
		interval, bucket := rollingWindow(tc.window, tc.buckets)
		if bucket <= 0 || interval%bucket != 0 || int64(interval/bucket) != tc.want {
			t.Errorf("rollingWindow(%v, %d) = %v, %v: want %d whole buckets", tc.window, tc.buckets, interval, bucket, tc.want)
		}
		if tc.window > 0 && interval > tc.window {
			t.Errorf("rollingWindow(%v, %d): interval %v is longer than the window", tc.window, tc.buckets, interval)
		}
		if interval > math.MaxInt64-bucket+1 {
			t.Errorf("rollingWindow(%v, %d) = %v, %v: gobreaker's rounding overflows", tc.window, tc.buckets, interval, bucket)
		}
	}
}

// TestHugeWindow: a window of the largest Duration (never forget) gives a
// working breaker; it used to panic at the first call.
func TestHugeWindow(t *testing.T) {
	for _, buckets := range []int{0, 1, 7} {
		b := New(Settings{Window: math.MaxInt64, WindowBuckets: buckets, ConsecutiveFailures: 2})
		for range 2 {
			tk, err := b.Admit()
			if err != nil {
				t.Fatalf("buckets %d: Admit: %v", buckets, err)
			}
			tk.Done(Failure)
		}
		if got := b.State(); got != StateOpen {
			t.Errorf("buckets %d: state %v after 2 failures, want open", buckets, got)
		}
	}
}

// TestCountsDropOldOutcomes: Counts leaves out outcomes older than the
// window even when no call has come since (gobreaker only moves its window
// on a call).
func TestCountsDropOldOutcomes(t *testing.T) {
	const window = 20 * time.Millisecond
	b := New(Settings{Window: window, WindowBuckets: 2, ConsecutiveFailures: 100})
	tk, err := b.Admit()
	if err != nil {
		t.Fatal(err)
	}
	tk.Done(Failure)
	if c := b.Counts(); c.TotalFailures != 1 {
		t.Fatalf("Counts right after a failure: %+v", c)
	}
	time.Sleep(2 * window) // gobreaker reads the real clock
	if c := b.Counts(); c != (Counts{}) {
		t.Errorf("Counts %v after the window passed, want zeros", c)
	}
}
