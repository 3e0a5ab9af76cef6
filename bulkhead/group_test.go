package bulkhead_test

import (
	"testing"

	"github.com/rampart-go/rampart/bulkhead"
)

func TestGroup(t *testing.T) {
	cfg := bulkhead.Config{MaxConcurrent: 1}
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"same key, same bulkhead; other key, other bulkhead", func(t *testing.T) {
			g, err := bulkhead.NewGroup(cfg, 4)
			if err != nil {
				t.Fatal(err)
			}
			a1, a2, b := g.Get("a"), g.Get("a"), g.Get("b")
			if a1 != a2 {
				t.Error("Get(a) returned two bulkheads")
			}
			if a1 == b {
				t.Error("Get(a) and Get(b) share a bulkhead")
			}
			if got := a1.Config(); got != (bulkhead.Config{MaxConcurrent: 1}) {
				t.Errorf("Config = %+v", got)
			}
			p, _ := a1.TryAcquire()
			defer p.Release()
			if _, ok := b.TryAcquire(); !ok {
				t.Error("a full bulkhead for a blocked one for b")
			}
		}},
		{"full group evicts an idle bulkhead", func(t *testing.T) {
			g, _ := bulkhead.NewGroup(cfg, 2)
			busy := g.Get("busy")
			p, _ := busy.TryAcquire()
			defer p.Release()
			g.Get("idle")
			c := g.Get("c")
			if g.Len() != 2 {
				t.Errorf("Len = %d, want 2", g.Len())
			}
			if g.Get("busy") != busy {
				t.Error("the busy bulkhead was evicted")
			}
			if g.Get("c") != c {
				t.Error("the new key did not get a bulkhead of its own")
			}
		}},
		{"full group with nothing idle: new keys share the overflow bulkhead", func(t *testing.T) {
			g, _ := bulkhead.NewGroup(cfg, 1)
			p, _ := g.Get("a").TryAcquire()
			x, y := g.Get("x"), g.Get("y")
			if x != y {
				t.Error("keys beyond maxKeys did not share the overflow bulkhead")
			}
			if x == g.Get("a") {
				t.Error("overflow bulkhead is a keyed one")
			}
			if g.Len() != 1 {
				t.Errorf("Len = %d, want 1", g.Len())
			}
			p.Release()
			if z := g.Get("z"); z == x {
				t.Error("once a bulkhead went idle, a new key still got the overflow one")
			}
		}},
		{"maxKeys <= 0 means DefaultMaxKeys", func(t *testing.T) {
			g, _ := bulkhead.NewGroup(cfg, 0)
			for i := range bulkhead.DefaultMaxKeys {
				b := g.Get(string(rune('a'+i%26)) + string(rune(i)))
				p, _ := b.TryAcquire() // keep every one busy
				defer p.Release()
			}
			if g.Len() != bulkhead.DefaultMaxKeys {
				t.Errorf("Len = %d, want %d", g.Len(), bulkhead.DefaultMaxKeys)
			}
			g.Get("one more")
			if g.Len() != bulkhead.DefaultMaxKeys {
				t.Errorf("Len = %d after one more key, want %d", g.Len(), bulkhead.DefaultMaxKeys)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestGroupGetNoAllocs(t *testing.T) {
	g, _ := bulkhead.NewGroup(bulkhead.Config{}, 0)
	g.Get("node-1")
	if n := testing.AllocsPerRun(100, func() { g.Get("node-1") }); n != 0 {
		t.Errorf("Get of an existing key: %v allocs, want 0", n)
	}
}

// TestGroupOverflowNeverLooser: a key served by the overflow bulkhead does
// not get a bulkhead of its own while its calls still hold overflow slots:
// it would then run more than MaxConcurrent calls at once.
func TestGroupOverflowNeverLooser(t *testing.T) {
	g, err := bulkhead.NewGroup(bulkhead.Config{MaxConcurrent: 1}, 1)
	if err != nil {
		t.Fatal(err)
	}
	pa, ok := g.Get("a").TryAcquire()
	if !ok {
		t.Fatal("a: no slot")
	}
	pb, ok := g.Get("b").TryAcquire() // the overflow's slot
	if !ok {
		t.Fatal("b: no overflow slot")
	}
	pa.Release() // a is idle and could be evicted
	if p, ok := g.Get("b").TryAcquire(); ok {
		p.Release()
		t.Fatal("b ran a second call at once, with MaxConcurrent 1")
	}
	// A key the overflow never served gets its own in place of the idle a,
	// busy overflow or not.
	pc, ok := g.Get("c").TryAcquire()
	if !ok {
		t.Fatal("c, a new key, was refused: it was put on the busy overflow")
	}
	pc.Release()
	pb.Release() // the overflow is idle: b may have its own now
	p, ok := g.Get("b").TryAcquire()
	if !ok {
		t.Fatal("b: no slot once everything was released")
	}
	p.Release()
}
