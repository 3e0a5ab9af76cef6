package throttle

import (
	"fmt"
	"slices"
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

// Once every entry is over, the next lookup of any node forgets them all,
// so that later picks pay the atomic load alone again; a pause of zero
// records nothing.
func TestSetForgetsWhenAllOver(t *testing.T) {
	var s Set
	now := time.Unix(1000, 0)
	if !s.Add("zero", now, now) || s.active.Load() {
		t.Fatal("a pause that is already over was recorded")
	}
	s.Add("replica", now.Add(time.Second), now)
	s.Add("other", now.Add(2*time.Second), now)
	now = now.Add(1500 * time.Millisecond)
	v := s.NewView(func() time.Time { return now })
	if v.Throttled("primary") || !v.Throttled("other") || v.Throttled("replica") {
		t.Fatal("wrong verdicts while one pause is in force")
	}
	now = now.Add(time.Hour)
	v = s.NewView(func() time.Time { return now })
	if v.Throttled("primary") {
		t.Fatal("primary throttled")
	}
	if s.active.Load() || len(s.until) != 0 {
		t.Fatalf("%d entries left after every pause ended (active %v)", len(s.until), s.active.Load())
	}
	reads := 0
	v = s.NewView(func() time.Time { reads++; return now })
	for i := 0; i < 100; i++ {
		v.Throttled("primary")
	}
	if reads != 0 {
		t.Fatalf("%d clock reads with nothing throttled", reads)
	}
}

// Pause waits only when no other candidate is free, and then until the
// first of them is.
func TestPause(t *testing.T) {
	var s Set
	now := time.Unix(1000, 0)
	none := func(string) bool { return false }
	nodes := slices.Values([]string{"a", "b", "c"})
	if w := s.Pause("a", time.Second, now, nodes, none); w != 0 {
		t.Fatalf("b and c free: wait %v, want 0", w)
	}
	if w := s.Pause("b", 2*time.Second, now, nodes, func(n string) bool { return n == "c" }); w != time.Second {
		t.Fatalf("c ruled out, a free in 1s: wait %v, want 1s", w)
	}
	if w := s.Pause("c", 3*time.Second, now, nil, none); w != 3*time.Second {
		t.Fatalf("no other candidate: wait %v, want the whole 3s", w)
	}
	v := s.At(now)
	for _, n := range []string{"a", "b", "c"} {
		if !v.Throttled(n) {
			t.Fatalf("%s not recorded", n)
		}
	}
}
