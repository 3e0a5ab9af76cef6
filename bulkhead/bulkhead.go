// Package bulkhead bounds how many calls run at once, with a bounded queue and
// a bounded, timed wait for the calls that find every slot taken.
//
// A [Bulkhead] admits at most [Config.MaxConcurrent] calls. A call that finds
// every slot taken joins a FIFO queue of at most [Config.MaxQueue] waiters and
// waits at most [Config.MaxWait], or until its context is done. A call that
// finds the queue full fails at once with [ErrFull]; a call whose wait runs
// out fails with [ErrWaitTimeout], which also matches [ErrFull].
//
// Admission is two-step: [Bulkhead.Acquire] returns a [Permit] and the caller
// calls [Permit.Release] when the call is over. Release is idempotent: a
// second call, even one made long after the slot went to another caller, does
// nothing. The success path and every rejection allocate nothing.
//
// A [Group] holds one bulkhead per key (for example per node), bounded in
// number.
//
// The package knows nothing of HTTP or gRPC and uses only the standard
// library.
package bulkhead

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// ErrFull is returned, at once, by [Bulkhead.Acquire] when every slot is taken
// and the queue is full (or there is no queue).
var ErrFull = errors.New("bulkhead: full")

// ErrWaitTimeout is returned by [Bulkhead.Acquire] when a queued call waited
// [Config.MaxWait] without getting a slot. It wraps [ErrFull], so
// errors.Is(err, ErrFull) is true for it; test for ErrWaitTimeout itself to
// tell a timed-out wait from an immediate rejection.
var ErrWaitTimeout = fmt.Errorf("%w: max wait elapsed", ErrFull)

// AsRefusal returns err, an error of [Bulkhead.Acquire], so that it matches
// [ErrFull] also when the context ended the call's wait in the queue (it
// still matches the context's error too). A transport that keeps a breaker
// per node uses it: whatever ended the wait, the node was never asked, so
// the refusal says nothing of its health. A nil err stays nil.
func AsRefusal(err error) error {
	if err == nil || errors.Is(err, ErrFull) {
		return err
	}
	return fmt.Errorf("%w: wait ended: %w", ErrFull, err)
}

// DefaultMaxConcurrent is the number of slots used when
// [Config.MaxConcurrent] is zero.
const DefaultMaxConcurrent = 32

// Config sets the limits of a [Bulkhead]. The zero value is valid: 32 slots,
// no queue.
type Config struct {
	// MaxConcurrent is the most calls that may hold a permit at once.
	// Zero means DefaultMaxConcurrent. Negative is an error.
	MaxConcurrent int

	// MaxQueue is the most calls that may wait for a slot at once. A call
	// that finds every slot taken and the queue full fails at once with
	// ErrFull. Zero means no queue: Acquire never waits. Negative is an
	// error.
	MaxQueue int

	// MaxWait is the longest a queued call waits for a slot before Acquire
	// returns ErrWaitTimeout. Zero means no bound other than the context's.
	// Negative is an error. It only matters when MaxQueue > 0.
	MaxWait time.Duration
}

// validate checks cfg and returns it with the defaults filled in.
func (cfg Config) validate() (Config, error) {
	if cfg.MaxConcurrent < 0 {
		return cfg, fmt.Errorf("bulkhead: MaxConcurrent must be >= 0, got %d", cfg.MaxConcurrent)
	}
	if cfg.MaxQueue < 0 {
		return cfg, fmt.Errorf("bulkhead: MaxQueue must be >= 0, got %d", cfg.MaxQueue)
	}
	if cfg.MaxWait < 0 {
		return cfg, fmt.Errorf("bulkhead: MaxWait must be >= 0, got %v", cfg.MaxWait)
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = DefaultMaxConcurrent
	}
	return cfg, nil
}

// Bulkhead bounds the number of concurrent calls, queueing a bounded number
// of further calls for a bounded time.
//
// The zero value is not usable; create one with [New]. Most callers want
// [Bulkhead.Acquire] followed by a deferred [Permit.Release], or
// [Bulkhead.Do], which does both. A Bulkhead is safe for concurrent use.
type Bulkhead struct {
	cfg   Config
	clock Clock

	mu       sync.Mutex
	inFlight int     // permits held, including ones in transit to a waiter
	created  int     // slots allocated so far, at most cfg.MaxConcurrent
	free     []*slot // slots not held; non-empty only when no one waits
	head     *waiter // oldest waiter
	tail     *waiter // newest waiter
	queued   int     // waiters in the list head..tail
	spare    *waiter // recycled waiters, linked through next
}

// slot is one unit of capacity. Slots are allocated on first use and
// recycled forever, so holding and releasing one allocates nothing.
type slot struct {
	b   *Bulkhead
	gen uint64 // bumped on every release; guarded by b.mu
}

// waiter is a queued Acquire. Waiters are recycled through Bulkhead.spare.
type waiter struct {
	ch     chan *slot // buffered (1): a slot is handed over without blocking
	prev   *waiter
	next   *waiter
	queued bool // in the queue; false once handed a slot or removed
}

// New returns a bulkhead with the limits of cfg, its zero fields set to their
// defaults. It returns an error when a field of cfg is negative.
func New(cfg Config, opts ...Option) (*Bulkhead, error) {
	cfg, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return newBulkhead(cfg, buildOptions(opts)), nil
}

func newBulkhead(cfg Config, o options) *Bulkhead {
	b := &Bulkhead{cfg: cfg, clock: o.clock}
	// Reserve room for the free list up front when it is small; a larger one
	// grows with the peak concurrency actually seen.
	b.free = make([]*slot, 0, min(cfg.MaxConcurrent, 1024))
	return b
}

// Config returns the limits in use, defaults filled in.
func (b *Bulkhead) Config() Config { return b.cfg }

// Permit is one held slot of a [Bulkhead], returned by [Bulkhead.Acquire] and
// [Bulkhead.TryAcquire].
//
// A Permit is a small value: copy it freely. The zero Permit holds nothing
// and its Release does nothing.
type Permit struct {
	s      *slot
	gen    uint64
	waited time.Duration
}

// Waited reports how long the Acquire that returned p waited in the queue
// for its slot, by the bulkhead's clock: 0 when a slot was free at once.
func (p Permit) Waited() time.Duration { return p.waited }

// Release gives the slot back: to the oldest waiter if there is one, else to
// the free pool. Only the first Release of a Permit (or of any copy of it)
// counts; later calls do nothing, even after the slot was handed to another
// caller, because the slot's generation has moved on. Release never waits
// for anything but a short internal lock, and allocates nothing.
func (p Permit) Release() {
	s := p.s
	if s == nil {
		return
	}
	b := s.b
	b.mu.Lock()
	if s.gen != p.gen {
		b.mu.Unlock()
		return
	}
	s.gen++
	b.passLocked(s)
	b.mu.Unlock()
}

// Acquire takes a slot, waiting in the queue if every slot is taken.
//
// It returns at once with the context's error if ctx is already done, and at
// once with [ErrFull] if every slot is taken and the queue is full. Waiters
// are served in arrival order. A queued call returns [ErrWaitTimeout] after
// [Config.MaxWait], or the context's error if ctx is done first, holding no
// slot. If a slot is handed to it at the same moment, a timed-out call keeps
// it and succeeds, while a cancelled call passes it on to the next waiter (or
// the free pool): a slot is never lost.
//
// On success the caller must call [Permit.Release] once the call is over.
// Acquire allocates nothing unless it has to wait (a waiting call allocates
// the clock's timer).
func (b *Bulkhead) Acquire(ctx context.Context) (Permit, error) {
	if err := ctx.Err(); err != nil {
		return Permit{}, err
	}
	b.mu.Lock()
	if s := b.takeLocked(); s != nil {
		p := Permit{s: s, gen: s.gen}
		b.mu.Unlock()
		return p, nil
	}
	if b.queued >= b.cfg.MaxQueue {
		b.mu.Unlock()
		return Permit{}, ErrFull
	}
	w := b.enqueueLocked()
	b.mu.Unlock()
	return b.wait(ctx, w)
}

// TryAcquire takes a slot if one is free, without waiting. It reports false,
// holding nothing, when every slot is taken. It allocates nothing.
func (b *Bulkhead) TryAcquire() (Permit, bool) {
	b.mu.Lock()
	s := b.takeLocked()
	if s == nil {
		b.mu.Unlock()
		return Permit{}, false
	}
	p := Permit{s: s, gen: s.gen}
	b.mu.Unlock()
	return p, true
}

// Do runs fn while holding a slot: it calls Acquire, returns its error if
// admission fails, else runs fn(ctx) and releases the slot when fn returns
// (or panics). It returns fn's error.
func (b *Bulkhead) Do(ctx context.Context, fn func(context.Context) error) error {
	p, err := b.Acquire(ctx)
	if err != nil {
		return err
	}
	defer p.Release()
	return fn(ctx)
}

// InFlight returns the number of slots held right now.
func (b *Bulkhead) InFlight() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inFlight
}

// Queued returns the number of calls waiting for a slot right now.
func (b *Bulkhead) Queued() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.queued
}

// idle reports whether no slot is held and no one waits, that is whether b
// is indistinguishable from a new bulkhead.
func (b *Bulkhead) idle() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.inFlight == 0 && b.queued == 0
}

// takeLocked returns a free slot, or nil when all MaxConcurrent are held.
// Free slots exist only while the queue is empty, so a new caller never
// overtakes a waiter.
func (b *Bulkhead) takeLocked() *slot {
	if n := len(b.free); n > 0 {
		s := b.free[n-1]
		b.free[n-1] = nil
		b.free = b.free[:n-1]
		b.inFlight++
		return s
	}
	if b.created < b.cfg.MaxConcurrent {
		b.created++
		b.inFlight++
		return &slot{b: b}
	}
	return nil
}

// passLocked gives a released slot to the oldest waiter, or back to the free
// pool when no one waits.
func (b *Bulkhead) passLocked(s *slot) {
	if w := b.head; w != nil {
		b.unlinkLocked(w)
		w.ch <- s // buffered and empty: never blocks
		return
	}
	b.inFlight--
	b.free = append(b.free, s)
}

// enqueueLocked appends a (recycled) waiter to the queue.
func (b *Bulkhead) enqueueLocked() *waiter {
	w := b.spare
	if w != nil {
		b.spare = w.next
		w.next = nil
	} else {
		w = &waiter{ch: make(chan *slot, 1)}
	}
	w.queued = true
	w.prev = b.tail
	if b.tail != nil {
		b.tail.next = w
	} else {
		b.head = w
	}
	b.tail = w
	b.queued++
	return w
}

// unlinkLocked removes w from the queue.
func (b *Bulkhead) unlinkLocked(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		b.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		b.tail = w.prev
	}
	w.prev, w.next = nil, nil
	w.queued = false
	b.queued--
}

// recycleLocked returns a waiter, out of the queue and with an empty channel,
// to the spare list.
func (b *Bulkhead) recycleLocked(w *waiter) {
	w.next = b.spare
	b.spare = w
}

// wait blocks a queued caller until it is handed a slot, MaxWait elapses or
// ctx is done.
func (b *Bulkhead) wait(ctx context.Context, w *waiter) (Permit, error) {
	start := b.clock.Now()
	var expired <-chan time.Time
	if b.cfg.MaxWait > 0 {
		c, stop := b.clock.NewTimer(b.cfg.MaxWait)
		defer stop()
		expired = c
	}
	var (
		p   Permit
		err error
	)
	select {
	case s := <-w.ch:
		b.mu.Lock()
		p = Permit{s: s, gen: s.gen}
		b.recycleLocked(w)
		b.mu.Unlock()
	case <-expired:
		p, err = b.giveUp(w, ErrWaitTimeout, true)
	case <-ctx.Done():
		p, err = b.giveUp(w, ctx.Err(), false)
	}
	if p.s != nil {
		p.waited = max(b.clock.Now().Sub(start), 1) // it did wait
	}
	return p, err
}

// giveUp leaves the queue after a timeout or a cancellation. If a slot was
// handed over at the same moment (the waiter is no longer queued), the slot
// sits in w.ch: after a timeout the caller keeps it (it did arrive in time);
// after a cancellation it is passed on to the next waiter, so it is never
// lost.
func (b *Bulkhead) giveUp(w *waiter, err error, keepLateSlot bool) (Permit, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.queued {
		b.unlinkLocked(w)
		b.recycleLocked(w)
		return Permit{}, err
	}
	s := <-w.ch // sent under b.mu before we took it: never blocks
	b.recycleLocked(w)
	if keepLateSlot {
		return Permit{s: s, gen: s.gen}, nil
	}
	b.passLocked(s)
	return Permit{}, err
}
