package breaker

import (
	"math"
	"testing"
	"time"
)

func TestOpenFor(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		jitter  float64
		lo, hi  time.Duration
	}{
		{"no jitter", time.Second, -1, time.Second, time.Second},
		{"NaN is no jitter", time.Second, math.NaN(), time.Second, time.Second},
		{"20%", time.Second, 0.2, time.Second, 1200 * time.Millisecond},
		{"100%", time.Second, 1, time.Second, 2 * time.Second},
		{"huge jitter is capped", time.Hour, 1e30, time.Hour, time.Hour + 1<<62},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			j := maxJitter(tt.timeout, tt.jitter)
			var sawAbove bool
			for range 1000 {
				d := time.Duration(openFor(tt.timeout, j))
				if d < tt.lo || d > tt.hi {
					t.Fatalf("open period %v outside [%v, %v]", d, tt.lo, tt.hi)
				}
				sawAbove = sawAbove || d > tt.lo
			}
			if tt.hi > tt.lo && !sawAbove {
				t.Fatalf("1000 open periods all exactly %v: no jitter", tt.lo)
			}
		})
	}
}
