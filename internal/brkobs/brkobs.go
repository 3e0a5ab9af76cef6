// Package brkobs records a breaker group's state changes in a sampling
// Metrics, once per group and Metrics however many presets share them.
package brkobs

import (
	"context"
	"sync"
	"weak"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/sampling"
)

// pair is a group and a Metrics already connected. Weak pointers keep
// neither alive.
type pair struct {
	g weak.Pointer[breaker.Group]
	m weak.Pointer[sampling.Metrics]
}

var (
	mu   sync.Mutex
	seen = map[pair]struct{}{}
)

// Observe records every state change of g's breakers in m (the
// rampart.breaker.transitions counter and the rampart.breaker.state
// gauge), keyed by node, unless g is already observed into m: presets that
// share a group and a tracer count each transition once. A nil g or m does
// nothing.
func Observe(g *breaker.Group, m *sampling.Metrics) {
	if g == nil || m == nil {
		return
	}
	k := pair{weak.Make(g), weak.Make(m)}
	mu.Lock()
	defer mu.Unlock()
	if _, ok := seen[k]; ok {
		return
	}
	for p := range seen { // forget the pairs whose group or Metrics is gone
		if p.g.Value() == nil || p.m.Value() == nil {
			delete(seen, p)
		}
	}
	seen[k] = struct{}{}
	g.Observe(func(ev breaker.StateChange) {
		m.BreakerTransition(context.Background(), ev.Name, int(ev.From), int(ev.To))
	})
}
