// Package firstmap waits for a topology watcher's first map, the way both
// transports' failover does for a call that arrives before it.
package firstmap

import (
	"context"
	"fmt"
	"time"

	"github.com/rampart-go/rampart/topology"
)

// Waiter is a topology source whose first map can be waited for, such as a
// *topology.Watcher.
type Waiter interface {
	Wait(ctx context.Context) (*topology.Map, error)
}

// Wait waits within ctx, and for at most d (zero means def, negative means
// not at all), for w's first map, and returns it. Otherwise it returns
// noMap, wrapped together with ctx's error when ctx ended the wait.
func Wait(ctx context.Context, w Waiter, d, def time.Duration, noMap error) (*topology.Map, error) {
	if d < 0 {
		return nil, noMap
	}
	if d == 0 {
		d = def
	}
	wctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	if m, err := w.Wait(wctx); err == nil && m != nil {
		return m, nil
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("%w (%w)", noMap, err)
	}
	return nil, noMap
}
