package firstmap

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/rampart-go/rampart/topology"
)

var errNoMap = errors.New("no map")

// gate is a Waiter whose map arrives when ready is closed; it records the
// deadline it was asked to wait under.
type gate struct {
	ready    chan struct{}
	m        *topology.Map
	deadline time.Time
}

func (g *gate) Wait(ctx context.Context) (*topology.Map, error) {
	g.deadline, _ = ctx.Deadline()
	select {
	case <-g.ready:
		return g.m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func TestWait(t *testing.T) {
	m := &topology.Map{Epoch: 7}
	t.Run("map arrives", func(t *testing.T) {
		g := &gate{ready: make(chan struct{}), m: m}
		close(g.ready)
		got, err := Wait(t.Context(), g, 0, time.Minute, errNoMap)
		if err != nil || got != m {
			t.Fatalf("Wait = %v, %v; want the map", got, err)
		}
		if left := time.Until(g.deadline); left < 50*time.Second || left > time.Minute {
			t.Errorf("zero wait used a deadline %v away, want the default (1m)", left)
		}
	})
	t.Run("negative means no wait", func(t *testing.T) {
		g := &gate{ready: make(chan struct{}), m: m}
		close(g.ready)
		if _, err := Wait(t.Context(), g, -1, time.Minute, errNoMap); err != errNoMap {
			t.Fatalf("err = %v, want the sentinel itself", err)
		}
	})
	t.Run("bounded wait runs out", func(t *testing.T) {
		g := &gate{ready: make(chan struct{})}
		_, err := Wait(t.Context(), g, time.Millisecond, time.Minute, errNoMap)
		if !errors.Is(err, errNoMap) || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want the sentinel and not the wait's own deadline", err)
		}
	})
	t.Run("caller's context ends the wait", func(t *testing.T) {
		g := &gate{ready: make(chan struct{})}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := Wait(ctx, g, 0, time.Minute, errNoMap)
		if !errors.Is(err, errNoMap) || !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want both the sentinel and context.Canceled", err)
		}
	})
}
