package cputime

import (
	"runtime"
	"testing"
)

// TestProcessMoves: a busy loop shows up as CPU time used.
func TestProcessMoves(t *testing.T) {
	start := Process()
	if start == 0 {
		t.Skip("no CPU time on " + runtime.GOOS)
	}
	x := 0
	for i := range 50_000_000 {
		x ^= i * i
	}
	ns, ok := PerOp(start, 1)
	if !ok || ns <= 0 {
		t.Fatalf("PerOp = %v, %v after a busy loop (x=%d)", ns, ok, x)
	}
	if _, ok := PerOp(start, 0); ok {
		t.Error("PerOp with no operations reported a figure")
	}
}
