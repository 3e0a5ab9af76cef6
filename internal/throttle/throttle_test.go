package throttle

import (
	"fmt"
	"testing"
	"time"
)

// The throttle record is bounded, forgets entries once they are over, and
// costs a pick nothing while no node is throttled.
func TestSet(t *testing.T) {
	var th Set
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	if s := th.NewView(func() time.Time { t.Fatal("clock read with nothing throttled"); return now }); s.Throttled("a") {
		t.Fatal("empty record throttles")
	}
	for i := 0; i < MaxNodes; i++ {
		if !th.Add(fmt.Sprint("n", i), now.Add(time.Second), now) {
			t.Fatalf("set %d refused", i)
		}
	}
	if th.Add("late", now.Add(time.Second), now) {
		t.Fatal("full record took another node")
	}
	if !th.Add("n0", now.Add(2*time.Second), now) {
		t.Fatal("a node already recorded could not extend its pause")
	}
	s := th.NewView(clock)
	if u, ok := s.Until("n0"); !ok || !u.Equal(now.Add(2*time.Second)) {
		t.Fatalf("n0 until %v, %v", u, ok)
	}
	now = now.Add(time.Second)
	if !th.Add("late", now.Add(time.Second), now) {
		t.Fatal("expired entries were not made room for")
	}
	if n := len(th.until); n != 2 {
		t.Fatalf("%d entries after expiry, want n0 and late", n)
	}
	now = now.Add(time.Hour)
	s = th.NewView(clock)
	if s.Throttled("n0") || s.Throttled("late") || th.active.Load() {
		t.Fatal("entries outlived their pause")
	}
}
