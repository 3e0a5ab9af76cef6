package bulkhead

import "sync"

// DefaultMaxKeys is the number of keys a [Group] holds when NewGroup is given
// maxKeys <= 0.
const DefaultMaxKeys = 1024

// Group holds one [Bulkhead] per key (typically per node), all with the same
// [Config], created on first use and bounded in number.
//
// When the group already holds maxKeys bulkheads and a new key arrives, Get
// evicts a bulkhead that is idle (no slot held, no one queued): an idle
// bulkhead is indistinguishable from a new one, so eviction loses no state.
// If none is idle, the new key shares a single overflow bulkhead with every
// other key that did not fit, which is stricter than a bulkhead of its own,
// never looser; a later Get retries giving the key its own bulkhead.
//
// A caller that fetched a bulkhead just before it was evicted still uses it,
// so for a moment a key may have two bulkheads; size maxKeys above the number
// of keys in real use (nodes, say) and eviction never happens.
//
// The zero value is not usable; create one with [NewGroup]. Get is the method
// most callers want. A Group is safe for concurrent use.
type Group struct {
	cfg     Config
	opts    options
	maxKeys int

	mu       sync.RWMutex
	m        map[string]*Bulkhead
	overflow *Bulkhead // created on first need
}

// NewGroup returns a group whose bulkheads use cfg (zero fields defaulted as
// in [New]) and opts, holding at most maxKeys of them (DefaultMaxKeys when
// maxKeys <= 0). It returns an error when cfg is invalid, as New does.
func NewGroup(cfg Config, maxKeys int, opts ...Option) (*Group, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Group{
		cfg:     cfg,
		opts:    buildOptions(opts),
		maxKeys: maxKeys,
		m:       make(map[string]*Bulkhead),
	}, nil
}

// Get returns the bulkhead for key, creating it on first use. It never
// returns nil. Getting an existing key allocates nothing.
func (g *Group) Get(key string) *Bulkhead {
	g.mu.RLock()
	b := g.m[key]
	g.mu.RUnlock()
	if b != nil {
		return b
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	if b := g.m[key]; b != nil {
		return b
	}
	if len(g.m) >= g.maxKeys && !g.evictIdleLocked() {
		if g.overflow == nil {
			g.overflow = newBulkhead(g.cfg, g.opts)
		}
		return g.overflow
	}
	b = newBulkhead(g.cfg, g.opts)
	g.m[key] = b
	return b
}

// Len returns the number of keys that have a bulkhead of their own.
func (g *Group) Len() int {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return len(g.m)
}

// evictIdleLocked removes one idle bulkhead, reporting whether it found one.
func (g *Group) evictIdleLocked() bool {
	for k, b := range g.m {
		if b.idle() {
			delete(g.m, k)
			return true
		}
	}
	return false
}
