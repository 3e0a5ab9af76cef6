package topology

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Clock is the time source of a Watcher. Tests replace it to decide when
// each poll happens.
type Clock interface {
	// After returns a channel that receives once d has passed.
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// WatchOption configures a Watcher. A nil WatchOption is ignored.
type WatchOption func(*Watcher)

// WithInterval sets the mean time between polls. Zero or negative means the
// default, 10s.
func WithInterval(d time.Duration) WatchOption {
	return func(w *Watcher) {
		if d > 0 {
			w.interval = d
		}
	}
}

// WithJitter sets how far each wait may stray from the interval, as a
// fraction: each wait is uniform in [interval*(1-f), interval*(1+f)], so a
// fleet of clients does not poll in step. f is clamped to [0, 0.9]; the
// default is 0.2. A NaN f means no jitter.
func WithJitter(f float64) WatchOption {
	return func(w *Watcher) {
		if f != f { // NaN: min and max would keep it
			f = 0
		}
		w.jitter = min(max(f, 0), 0.9)
	}
}

// WithFetchTimeout bounds each Fetch. Zero or negative means the default,
// the interval.
func WithFetchTimeout(d time.Duration) WatchOption {
	return func(w *Watcher) {
		if d > 0 {
			w.fetchTimeout = d
		}
	}
}

// OnReject sets a function called with the error for each payload the
// watcher rejects: one that fails validation or the size cap (the error
// matches ErrInvalid) or has a lower epoch than the map in use (ErrStaleEpoch).
// It runs on the watcher's goroutine, under no lock, and must not block long.
func OnReject(fn func(error)) WatchOption {
	return func(w *Watcher) { w.onReject = fn }
}

// OnFetchError sets a function called with the error for each poll that
// could not read the source (connection refused, an HTTP 500). It runs on
// the watcher's goroutine, under no lock, and must not block long. A fetch
// cut short because Run's context ended is not reported.
func OnFetchError(fn func(error)) WatchOption {
	return func(w *Watcher) { w.onFetchError = fn }
}

// WithClock replaces the clock that times the polls. A nil clock is ignored.
func WithClock(c Clock) WatchOption {
	return func(w *Watcher) {
		if c != nil {
			w.clock = c
		}
	}
}

// A Watcher keeps the topology map up to date from a Source. Run polls the
// source, at once and then at a jittered interval; Current serves the map in
// use, lock-free, to any number of goroutines. A map replaces the one in use
// only when its epoch is higher (the first good map is always taken); a map
// with the same epoch is taken as unchanged, a lower epoch is rejected, and
// so is any bad payload, while the last good map stays in use. Rejections
// are reported to OnReject and counted (Rejections), for the metrics layer
// to read.
//
// Create one with NewWatcher, start it with go w.Run(ctx), and read
// Current, or Wait for the first map. Its methods are safe for concurrent
// use.
type Watcher struct {
	src          Source
	clock        Clock
	interval     time.Duration
	jitter       float64
	fetchTimeout time.Duration
	onReject     func(error)
	onFetchError func(error)

	cur         atomic.Pointer[Map]
	ready       chan struct{} // closed at the first good map
	running     atomic.Bool
	rejections  atomic.Uint64
	updates     atomic.Uint64
	fetchErrors atomic.Uint64

	mu     sync.Mutex
	subs   map[uint64]func(*Map)
	nextID uint64
}

// NewWatcher returns a Watcher of src, not yet running.
func NewWatcher(src Source, opts ...WatchOption) *Watcher {
	w := &Watcher{
		src:      src,
		clock:    realClock{},
		interval: 10 * time.Second,
		jitter:   0.2,
		ready:    make(chan struct{}),
		subs:     make(map[uint64]func(*Map)),
	}
	for _, o := range opts {
		if o != nil {
			o(w)
		}
	}
	if w.fetchTimeout <= 0 {
		w.fetchTimeout = w.interval
	}
	return w
}

// Current returns the map in use, or nil before the first good map. It is
// lock-free and never blocks. The map must not be modified.
func (w *Watcher) Current() *Map { return w.cur.Load() }

// Wait blocks until the watcher has a map, then returns it, or returns
// ctx.Err() when ctx ends first. The watcher must be running (or be started
// by someone else) for Wait to return a map.
func (w *Watcher) Wait(ctx context.Context) (*Map, error) {
	select {
	case <-w.ready:
		return w.cur.Load(), nil
	default:
	}
	select {
	case <-w.ready:
		return w.cur.Load(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Subscribe registers fn to be called with each map the watcher puts in use,
// in epoch order, and returns a function that unregisters it. fn runs on the
// watcher's goroutine, after Current already returns the new map, under no
// lock; it must not block long. Subscribers are called one after another, in
// the order they subscribed. Subscribe does not replay the map in use:
// call Current after Subscribe to learn it. Once cancel has returned, fn
// is not called again, unless a call of it had already begun (cancel may
// be called from fn itself).
func (w *Watcher) Subscribe(fn func(*Map)) (cancel func()) {
	if fn == nil {
		return func() {}
	}
	w.mu.Lock()
	id := w.nextID
	w.nextID++
	w.subs[id] = fn
	w.mu.Unlock()
	return func() {
		w.mu.Lock()
		delete(w.subs, id)
		w.mu.Unlock()
	}
}

// Rejections returns how many payloads the watcher has rejected, invalid or
// stale.
func (w *Watcher) Rejections() uint64 { return w.rejections.Load() }

// Updates returns how many maps the watcher has put in use.
func (w *Watcher) Updates() uint64 { return w.updates.Load() }

// FetchErrors returns how many polls could not read the source.
func (w *Watcher) FetchErrors() uint64 { return w.fetchErrors.Load() }

// Run polls the source until ctx ends, at once and then after each jittered
// interval, and returns ctx.Err(). It starts no goroutine, so nothing is left
// running once it returns. It returns ErrRunning at once if the watcher is
// already running.
func (w *Watcher) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return ErrRunning
	}
	defer w.running.Store(false)
	if s, ok := w.src.(interface{ closeIdle() }); ok {
		defer s.closeIdle()
	}
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		w.poll(ctx)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.clock.After(w.wait()):
		}
	}
}

// wait returns the jittered interval before the next poll.
func (w *Watcher) wait() time.Duration {
	if w.jitter == 0 {
		return w.interval
	}
	f := 1 + w.jitter*(2*rand.Float64()-1)
	d := float64(w.interval) * f
	if d >= math.MaxInt64 { // an interval near the largest Duration
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(d)
}

// poll fetches the source once and applies the result, and reports whether
// a new map was put in use. Only Run calls it, so polls never overlap.
func (w *Watcher) poll(ctx context.Context) bool {
	fctx, cancel := context.WithTimeout(ctx, w.fetchTimeout)
	m, err := w.src.Fetch(fctx)
	cancel()
	switch {
	case err != nil && errors.Is(err, ErrInvalid):
		w.reject(err)
		return false
	case err != nil:
		if ctx.Err() != nil {
			return false
		}
		w.fetchErrors.Add(1)
		if w.onFetchError != nil {
			w.onFetchError(err)
		}
		return false
	case m == nil:
		return false
	}
	cur := w.cur.Load()
	if cur != nil {
		if m.Epoch < cur.Epoch {
			w.reject(fmt.Errorf("%w: got epoch %d, in use %d", ErrStaleEpoch, m.Epoch, cur.Epoch))
			return false
		}
		if m.Epoch == cur.Epoch {
			return false
		}
	}
	w.cur.Store(m)
	w.updates.Add(1)
	if cur == nil {
		close(w.ready)
	}
	w.mu.Lock()
	ids := make([]uint64, 0, len(w.subs))
	for id := range w.subs {
		ids = append(ids, id)
	}
	w.mu.Unlock()
	slices.Sort(ids) // in the order they subscribed
	for _, id := range ids {
		// Looked up again at its turn: a subscriber cancelled while an
		// earlier one ran is not called.
		w.mu.Lock()
		fn := w.subs[id]
		w.mu.Unlock()
		if fn != nil {
			fn(m)
		}
	}
	return true
}

func (w *Watcher) reject(err error) {
	w.rejections.Add(1)
	if w.onReject != nil {
		w.onReject(err)
	}
}
