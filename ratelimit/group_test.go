package ratelimit_test

import (
	"fmt"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/rampart-go/rampart/ratelimit"
)

func TestGroup(t *testing.T) {
	cfg := ratelimit.Config{Rate: rate.Every(time.Second), Burst: 1}
	tests := []struct {
		name string
		run  func(t *testing.T, clk *fakeClock)
	}{
		{"same key, same limiter; other key, other limiter", func(t *testing.T, clk *fakeClock) {
			g, err := ratelimit.NewGroup(cfg, 4, ratelimit.WithClock(clk))
			if err != nil {
				t.Fatal(err)
			}
			a1, a2, b := g.Get("a"), g.Get("a"), g.Get("b")
			if a1 != a2 || a1 == b {
				t.Fatal("Get does not map keys to limiters one to one")
			}
			if got := a1.Config(); got != cfg {
				t.Errorf("Config = %+v, want %+v", got, cfg)
			}
			if !a1.Allow() || a1.Allow() {
				t.Error("a's limiter does not hold one token")
			}
			if !b.Allow() {
				t.Error("an empty bucket for a emptied b's")
			}
		}},
		{"full group evicts a limiter whose bucket is full", func(t *testing.T, clk *fakeClock) {
			g, _ := ratelimit.NewGroup(cfg, 2, ratelimit.WithClock(clk))
			busy := g.Get("busy")
			busy.Allow() // bucket not full: must not be evicted
			g.Get("idle")
			c := g.Get("c")
			if g.Len() != 2 || g.Get("busy") != busy || g.Get("c") != c {
				t.Errorf("wrong eviction: Len = %d", g.Len())
			}
		}},
		{"a refilled bucket can be evicted", func(t *testing.T, clk *fakeClock) {
			g, _ := ratelimit.NewGroup(cfg, 1, ratelimit.WithClock(clk))
			a := g.Get("a")
			a.Allow()
			if g.Get("b") == g.Get("a") {
				t.Fatal("overflow limiter is a keyed one")
			}
			clk.Advance(time.Second) // a's bucket is full again
			b := g.Get("b")
			if g.Len() != 1 || g.Get("b") != b || g.Get("a") == a {
				t.Error("a's refilled limiter was not evicted for b")
			}
		}},
		{"full group with no full bucket: new keys share the overflow limiter", func(t *testing.T, clk *fakeClock) {
			g, _ := ratelimit.NewGroup(cfg, 1, ratelimit.WithClock(clk))
			g.Get("a").Allow()
			x, y := g.Get("x"), g.Get("y")
			if x != y {
				t.Fatal("keys beyond maxKeys did not share the overflow limiter")
			}
			if !x.Allow() || y.Allow() {
				t.Error("overflow keys do not share one bucket")
			}
			if g.Len() != 1 {
				t.Errorf("Len = %d, want 1", g.Len())
			}
		}},
		{"rate.Inf limiters are always evictable", func(t *testing.T, clk *fakeClock) {
			g, _ := ratelimit.NewGroup(ratelimit.Config{Rate: rate.Inf, Burst: 1}, 1, ratelimit.WithClock(clk))
			g.Get("a").Allow()
			b := g.Get("b")
			if g.Len() != 1 || g.Get("b") != b {
				t.Error("rate.Inf limiter was not evicted")
			}
		}},
		{"maxKeys <= 0 means DefaultMaxKeys", func(t *testing.T, clk *fakeClock) {
			g, _ := ratelimit.NewGroup(cfg, -1, ratelimit.WithClock(clk))
			for i := range ratelimit.DefaultMaxKeys + 10 {
				g.Get(fmt.Sprint("tenant-", i)).Allow()
			}
			if g.Len() != ratelimit.DefaultMaxKeys {
				t.Errorf("Len = %d, want %d", g.Len(), ratelimit.DefaultMaxKeys)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newFakeClock()) })
	}
}

func TestGroupGetNoAllocs(t *testing.T) {
	g, _ := ratelimit.NewGroup(ratelimit.Config{Rate: 10, Burst: 1}, 0)
	g.Get("tenant-1")
	if n := testing.AllocsPerRun(100, func() { g.Get("tenant-1") }); n != 0 {
		t.Errorf("Get of an existing key: %v allocs, want 0", n)
	}
}

// TestGroupOverflowNeverLooser: a key served by the overflow limiter does
// not get a full bucket of its own while the overflow's is not full again:
// it would then pass more than Burst calls at once.
func TestGroupOverflowNeverLooser(t *testing.T) {
	clk := newFakeClock()
	g, err := ratelimit.NewGroup(ratelimit.Config{Rate: rate.Every(time.Hour), Burst: 2}, 1, ratelimit.WithClock(clk))
	if err != nil {
		t.Fatal(err)
	}
	g.Get("a").Allow()
	clk.Advance(59 * time.Minute) // a is not full yet: not evictable
	passed := 0
	for g.Get("b").Allow() { // the overflow limiter
		passed++
	}
	clk.Advance(time.Minute) // a is full again, and evictable
	for passed < 10 && g.Get("b").Allow() {
		passed++
	}
	if passed != 2 {
		t.Errorf("b passed %d calls within a minute, want Burst = 2", passed)
	}
}
