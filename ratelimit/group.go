package ratelimit

import "github.com/rampart-go/rampart/internal/keyed"

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
	g *keyed.Group[Limiter]
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
	o := buildOptions(opts)
	return &Group{g: keyed.New(maxKeys,
		func() *Limiter { return newLimiter(cfg, o) },
		func(l *Limiter) bool { return l.full(o.clock.Now()) })}, nil
}

// Get returns the limiter for key, creating it on first use. It never
// returns nil. Getting an existing key allocates nothing.
func (g *Group) Get(key string) *Limiter { return g.g.Get(key) }

// Len returns the number of keys that have a limiter of their own.
func (g *Group) Len() int { return g.g.Len() }
