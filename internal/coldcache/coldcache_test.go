package coldcache

import "testing"

// TestEvictTouchesEveryLine: after n calls, every line of the buffer was
// written n times.
func TestEvictTouchesEveryLine(t *testing.T) {
	before := make([]byte, 0, size/64)
	for i := 0; i < size; i += 64 {
		before = append(before, buf[i])
	}
	Evict()
	Evict()
	for j, i := 0, 0; i < size; i, j = i+64, j+1 {
		if buf[i] != before[j]+2 {
			t.Fatalf("line %d written %d times, want 2", j, buf[i]-before[j])
		}
	}
}
