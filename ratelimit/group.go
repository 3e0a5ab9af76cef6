package ratelimit

import "sync"

// DefaultMaxKeys is the number of keys a [Group] holds when NewGroup is given
// maxKeys <= 0.
const DefaultMaxKeys = 1024

// Group holds one [Limiter] per key (per tenant, per route, per node), all
// with the same [Config], created on first use and bounded in number.
//
// When the group already holds maxKeys limiters and a new key arrives, Get
// evicts a limiter whose bucket is full: a full bucket is indistinguishable
// from a new limiter, so eviction loses no state and never hands out extra
// tokens. If no bucket is full, the new key shares a single overflow limiter
// with every other key that did not fit, which is stricter than a limiter of
// its own, never looser; a later Get retries giving the key its own limiter.
//
// A caller that fetched a limiter just before it was evicted may still take
// a token from it; size maxKeys above the number of keys in real use and
// eviction never happens.
//
// The zero value is not usable; create one with [NewGroup]. Get is the method
// most callers want. A Group is safe for concurrent use.
type Group struct {
	cfg     Config
	opts    options
	maxKeys int

	mu       sync.RWMutex
	m        map[string]*Limiter
	overflow *Limiter // created on first need
}

// NewGroup returns a group whose limiters use cfg and opts, holding at most
// maxKeys of them (DefaultMaxKeys when maxKeys <= 0). It returns an error
// when cfg is invalid, as [New] does.
func NewGroup(cfg Config, maxKeys int, opts ...Option) (*Group, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Group{
		cfg:     cfg,
		opts:    buildOptions(opts),
		maxKeys: maxKeys,
		m:       make(map[string]*Limiter),
	}, nil
}

// Get returns the limiter for key, creating it on first use. It never
// returns nil. Getting an existing key allocates nothing.
func (g *Group) Get(key string) *Limiter {
	g.mu.RLock()
	l := g.m[key]
	g.mu.RUnlock()
	if l != nil {
		return l
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if l := g.m[key]; l != nil {
		return l
	}
	if len(g.m) >= g.maxKeys && !g.evictFullLocked() {
		if g.overflow == nil {
			g.overflow = newLimiter(g.cfg, g.opts)
		}
		return g.overflow
	}
	l = newLimiter(g.cfg, g.opts)
	g.m[key] = l
	return l
}

// Len returns the number of keys that have a limiter of their own.
func (g *Group) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.m)
}

// evictFullLocked removes one limiter whose bucket is full, reporting whether
// it found one.
func (g *Group) evictFullLocked() bool {
	now := g.opts.clock.Now()
	for k, l := range g.m {
		if l.full(now) {
			delete(g.m, k)
			return true
		}
	}
	return false
}
