package bulkhead

import "github.com/rampart-go/rampart/internal/keyed"

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
	g *keyed.Group[Bulkhead]
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
	o := buildOptions(opts)
	return &Group{g: keyed.New(maxKeys,
		func() *Bulkhead { return newBulkhead(cfg, o) },
		(*Bulkhead).idle)}, nil
}

// Get returns the bulkhead for key, creating it on first use. It never
// returns nil. Getting an existing key allocates nothing.
func (g *Group) Get(key string) *Bulkhead { return g.g.Get(key) }

// Len returns the number of keys that have a bulkhead of their own.
func (g *Group) Len() int { return g.g.Len() }
