package main

import (
	"testing"
	"time"
)

// TestRecorderBuckets: a run has one bucket per second, calls that end
// after it count in its last second, and each second keeps the worst
// breaker state sampled in it.
func TestRecorderBuckets(t *testing.T) {
	start := time.Unix(1000, 0)
	r := newRecorder(start, 4*time.Second)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	r.sample(at(0.25), 1, []int{2, 0})
	r.sample(at(0.5), 1, []int{2, 1})
	r.sample(at(0.75), 1, []int{0, 0}) // closed again before the second ends
	r.call(at(1.5), true, true, time.Millisecond, 1, time.Second)
	r.call(at(4.2), true, false, time.Millisecond, 2, time.Second) // in flight at the end
	var res Result
	r.fill(&res)
	if len(res.Timeline) != 4 {
		t.Fatalf("%d seconds in the timeline of a 4s run, want 4", len(res.Timeline))
	}
	if got := res.Timeline[0].Breakers; len(got) != 2 || got[0] != 2 || got[1] != 1 {
		t.Errorf("second 1 breakers %v, want the worst seen: [2 1]", got)
	}
	if last := res.Timeline[3]; last.Calls != 1 || last.SuccessRate != 0 {
		t.Errorf("last second %+v: want the late failed call in it", last)
	}
	if res.CallsWithErrors != 1 {
		t.Errorf("calls with errors %d, want 1", res.CallsWithErrors)
	}
}

// TestRecorderAfterHeal: only calls that start a second or more after the
// heal count towards recovery.
func TestRecorderAfterHeal(t *testing.T) {
	start := time.Unix(1000, 0)
	r := newRecorder(start, 8*time.Second)
	at := func(s float64) time.Time { return start.Add(time.Duration(s * float64(time.Second))) }
	r.setFault(true)
	r.setHealed(at(6))
	r.call(at(6.5), true, false, 100*time.Millisecond, 1, time.Second) // started 0.4s after the heal
	r.call(at(7.3), true, true, 200*time.Millisecond, 1, time.Second)  // started 1.1s after
	r.call(at(7.9), true, false, 50*time.Millisecond, 2, time.Second)  // started 1.85s after
	var res Result
	r.fill(&res)
	if res.HealedAt != 6 || res.CallsAfterHeal != 2 || res.SuccessAfterHeal == nil || *res.SuccessAfterHeal != 0.5 {
		t.Errorf("healed at %v, %d calls after, success %v; want 6, 2, 0.5", res.HealedAt, res.CallsAfterHeal, res.SuccessAfterHeal)
	}
}
