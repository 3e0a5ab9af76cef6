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
// key its own, once the overflow is idle too: until then the calls a key
// made through the overflow still count there, and a fresh value of its own
// would let the key exceed its limit. Getting an existing key takes a read lock and allocates
// nothing. A Group is safe for concurrent use.
type Group[T any] struct {
	max  int
	make func() *T
	idle func(*T) bool

	mu       sync.RWMutex
	m        map[string]*T
	overflow *T // created on first need
}

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
	if len(g.m) >= g.max && (g.overflow != nil && !g.idle(g.overflow) || !g.evictIdleLocked()) {
		if g.overflow == nil {
			g.overflow = g.make()
		}
		return g.overflow
	}
	v = g.make()
	g.m[key] = v
	return v
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
