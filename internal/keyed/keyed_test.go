package keyed

import (
	"strconv"
	"testing"
)

type val struct{ busy bool }

func newGroup(max int) *Group[val] {
	return New(max, func() *val { return new(val) }, func(v *val) bool { return !v.busy })
}

// TestOverflowKeysWaitForIdleOverflow: a key the overflow served gets its
// own value only once the overflow is idle; a key it never served gets one
// in place of an idle value at once.
func TestOverflowKeysWaitForIdleOverflow(t *testing.T) {
	g := newGroup(1)
	a := g.Get("a")
	a.busy = true
	b := g.Get("b") // the overflow
	if b == a {
		t.Fatal("b got a's value")
	}
	b.busy = true
	a.busy = false // a is idle now
	if g.Get("b") != b {
		t.Error("b got a value of its own while its calls are in the busy overflow")
	}
	c := g.Get("c")
	if c == b || c == a {
		t.Error("c, which the overflow never served, did not get a value of its own")
	}
	b.busy = false // the overflow is idle
	if got := g.Get("b"); got == b {
		t.Error("b is still on the overflow once it is idle")
	}
}

// TestTrackingBound: re-getting a key already tracked at the bound does
// not count as losing track, so keys the overflow never served still get
// their own value.
func TestTrackingBound(t *testing.T) {
	g := newGroup(1)
	a := g.Get("a")
	a.busy = true
	for i := range maxTracked {
		g.Get("k" + strconv.Itoa(i)).busy = true // all on the overflow
	}
	g.Get("k0") // tracked already
	a.busy = false
	if g.Get("new") == g.overflow {
		t.Error("a new key was put on the busy overflow after a tracked key came again")
	}
}
