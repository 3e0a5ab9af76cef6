// Package keyed holds a bounded map of per-key policy instances (one
// bulkhead or limiter per node, say), shared by the policy packages' Group
// types.
package keyed

import "sync"

// Group holds one *T per key, created on first use by a constructor and
// bounded in number.
//
// When the group already holds max values and a new key arrives, Get
// evicts a value that idle reports as indistinguishable from a new one, so
// eviction loses no state. If none is idle, the new key shares one overflow
// value with every other key that did not fit; a later Get retries giving the
// key its own. A key the overflow served gets its own only once the
// overflow is idle: until then the calls it made there still count there,
// and a fresh value of its own would let it exceed its limit. Getting an existing key takes a read lock and allocates
// nothing. A Group is safe for concurrent use.
type Group[T any] struct {
	max  int
	make func() *T
	idle func(*T) bool

	mu       sync.RWMutex
	m        map[string]*T
	overflow *T // created on first need

	// The keys the overflow served since it was last seen idle; past
	// maxTracked of them, every key counts as one (lost).
	viaOverflow map[string]struct{}
	lost        bool
}

// maxTracked bounds the keys remembered as served by the overflow.
const maxTracked = 4096

// New returns a group of at most max values (max must be > 0), built by
// mk; idle reports whether a value may be evicted.
func New[T any](max int, mk func() *T, idle func(*T) bool) *Group[T] {
	return &Group[T]{max: max, make: mk, idle: idle, m: make(map[string]*T)}
}

// Get returns the value for key, creating it on first use. It never returns
// nil.
func (g *Group[T]) Get(key string) *T {
	g.mu.RLock()
	v := g.m[key]
	g.mu.RUnlock()
	if v != nil {
		return v
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if v := g.m[key]; v != nil {
		return v
	}
	if len(g.m) >= g.max && (g.inOverflowLocked(key) || !g.evictIdleLocked()) {
		if g.overflow == nil {
			g.overflow = g.make()
		}
		g.noteOverflowLocked(key)
		return g.overflow
	}
	delete(g.viaOverflow, key)
	v = g.make()
	g.m[key] = v
	return v
}

// inOverflowLocked reports whether key may still have calls counted in the
// overflow: the overflow served it, and is not idle since.
func (g *Group[T]) inOverflowLocked(key string) bool {
	if g.overflow == nil {
		return false
	}
	if g.idle(g.overflow) {
		clear(g.viaOverflow)
		g.lost = false
		return false
	}
	if g.lost {
		return true
	}
	_, ok := g.viaOverflow[key]
	return ok
}

// noteOverflowLocked remembers that the overflow served key.
func (g *Group[T]) noteOverflowLocked(key string) {
	if g.lost {
		return
	}
	if _, ok := g.viaOverflow[key]; ok {
		return
	}
	if len(g.viaOverflow) >= maxTracked {
		g.lost = true
		return
	}
	if g.viaOverflow == nil {
		g.viaOverflow = make(map[string]struct{})
	}
	g.viaOverflow[key] = struct{}{}
}

// Len returns the number of keys that have a value of their own.
func (g *Group[T]) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.m)
}

func (g *Group[T]) evictIdleLocked() bool {
	for k, v := range g.m {
		if g.idle(v) {
			delete(g.m, k)
			return true
		}
	}
	return false
}
