// Package brkobs records a breaker group's state changes in a sampling
// Metrics, once per group and Metrics however many presets share them.
package brkobs

import (
	"context"
	"reflect"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/sampling"
)

// Observe records every state change of g's breakers in m (the
// rampart.breaker.transitions counter and the rampart.breaker.state
// gauge), keyed by node, unless g already records into m's instruments:
// presets that share a group and a MeterProvider (through one tracer or
// several) count each transition once. A nil g or m does nothing.
func Observe(g *breaker.Group, m *sampling.Metrics) {
	if g == nil || m == nil {
		return
	}
	var key any = m
	if p := m.Provider(); p != nil && reflect.TypeOf(p).Comparable() {
		key = providerKey{p} // Metrics of one provider share its instruments
	}
	g.ObserveOnce(key, func(ev breaker.StateChange) {
		m.BreakerTransition(context.Background(), ev.Name, int(ev.From), int(ev.To))
	})
}

// providerKey keys the observer of a MeterProvider's instruments.
type providerKey struct{ p any }
