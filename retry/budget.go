package retry

import (
	"sync"
	"sync/atomic"
	"time"
)

// Defaults used for the zero values of BudgetConfig fields and, for
// DefaultMaxDestinations, of NewBudgets' bound.
const (
	DefaultBudgetRatio      = 0.2
	DefaultBudgetMinRetries = 10
	DefaultBudgetWindow     = 10 * time.Second
	DefaultMaxDestinations  = 1024
)

// budgetSlots is how many slots a Budget's window is cut into; counts age
// out one slot (Window/budgetSlots) at a time.
const budgetSlots = 10

// BudgetConfig configures a [Budget]. Every field documents its zero value.
type BudgetConfig struct {
	// Ratio is the share of recent calls that may be retried: within any
	// Window, retries may not exceed MinRetries + Ratio × calls.
	// Zero means DefaultBudgetRatio (0.2, Finagle's default); negative means
	// 0 (only the MinRetries floor); values above 1000 mean 1000.
	Ratio float64
	// MinRetries is the floor: retries allowed within any Window whatever
	// the traffic, so that a quiet client can still retry.
	// Zero means DefaultBudgetMinRetries (10); negative means no floor.
	MinRetries int
	// Window is how long a call or a retry counts as recent.
	// Zero or negative means DefaultBudgetWindow (10s).
	Window time.Duration
}

// Budget limits retries to a ratio of recent calls plus a small floor, in the
// spirit of Finagle's RetryBudget and gRPC's retry throttling: when a
// destination fails everything, its clients add at most Ratio more load
// instead of multiplying it by MaxAttempts.
//
// Each logical call deposits once ([Budget.Deposit]); each retry must
// withdraw ([Budget.Withdraw]), which fails when the budget is spent. Policy
// does both. Counts live in a sliding window of Window cut into 10 slots.
//
// The zero Budget is usable with the BudgetConfig defaults and the system
// clock; [NewBudget] sets the config and options. A Budget is safe for
// concurrent use; Deposit and Withdraw hold a mutex for a few instructions
// and do not allocate.
type Budget struct {
	cfg   BudgetConfig
	clock Clock

	mu     sync.Mutex
	origin time.Time // the first use; slots count from it
	slots  [budgetSlots]budgetSlot
	stats  BudgetStats
}

// maxBudgetFloor caps MinRetries: a trillion retries per window is no
// limit at all.
const maxBudgetFloor = 1 << 40

type budgetSlot struct {
	epoch                 int64 // time/slot length of the slot's counts
	deposits, withdrawals int64
}

// BudgetStats are the cumulative counts of a Budget since it was made.
type BudgetStats struct {
	// Deposits is the number of calls deposited.
	Deposits uint64
	// Retries is the number of retries granted.
	Retries uint64
	// Refused is the number of retries refused.
	Refused uint64
}

// NewBudget returns a Budget with cfg and the options (see [WithClock]).
func NewBudget(cfg BudgetConfig, opts ...Option) *Budget {
	o := applyOptions(opts)
	return &Budget{cfg: cfg, clock: o.clock}
}

// params returns the effective config: the ratio, the floor, and the slot
// length in nanoseconds.
func (b *Budget) params() (ratio float64, floor, slot int64) {
	r := b.cfg.Ratio
	switch {
	case r == 0:
		r = DefaultBudgetRatio
	case r < 0 || r != r:
		r = 0
	case r > 1000:
		r = 1000
	}
	floor = int64(b.cfg.MinRetries)
	switch {
	case floor == 0:
		floor = DefaultBudgetMinRetries
	case floor < 0:
		floor = 0
	case floor > maxBudgetFloor:
		floor = maxBudgetFloor // as good as unlimited
	}
	w := b.cfg.Window
	if w <= 0 {
		w = DefaultBudgetWindow
	}
	slot = max(int64(w)/budgetSlots, 1)
	return r, floor, slot
}

func (b *Budget) now() time.Time {
	if b.clock == nil {
		return time.Now()
	}
	return b.clock.Now()
}

// epoch returns the number of the slot that now falls in, counted from the
// budget's first use. The system clock's monotonic reading measures it, so
// a step of the wall clock (an NTP correction) neither refills the budget
// nor freezes it. b.mu must be held.
func (b *Budget) epoch(slot int64) int64 {
	now := b.now()
	if b.origin.IsZero() {
		b.origin = now
	}
	return int64(now.Sub(b.origin)) / slot
}

// current returns the slot for epoch, cleared if it held an older epoch.
// b.mu must be held.
func (b *Budget) current(epoch int64) *budgetSlot {
	s := &b.slots[uint64(epoch)%budgetSlots]
	if s.epoch != epoch {
		*s = budgetSlot{epoch: epoch}
	}
	return s
}

// Deposit records one logical call. Policy calls it once per Do.
func (b *Budget) Deposit() {
	_, _, slot := b.params()
	b.mu.Lock()
	b.current(b.epoch(slot)).deposits++
	b.stats.Deposits++
	b.mu.Unlock()
}

// Withdraw asks for one retry and reports whether the budget grants it: the
// retries in the window, this one included, must not exceed
// MinRetries + Ratio × calls in the window. A refusal is counted in Stats.
func (b *Budget) Withdraw() bool {
	ratio, floor, slot := b.params()
	b.mu.Lock()
	epoch := b.epoch(slot)
	var dep, wd int64
	for i := range b.slots {
		s := &b.slots[i]
		if s.epoch > epoch-budgetSlots && s.epoch <= epoch {
			dep += s.deposits
			wd += s.withdrawals
		}
	}
	// wd+1 <= floor + ratio×dep, compared as a share of the calls: the
	// quotient rounds to the ratio written as that fraction (29/100 is
	// the double 0.29), where the product may not (0.29×100 < 29).
	ok := wd+1 <= floor || (dep > 0 && float64(wd+1-floor)/float64(dep) <= ratio)
	if ok {
		b.current(epoch).withdrawals++
		b.stats.Retries++
	} else {
		b.stats.Refused++
	}
	b.mu.Unlock()
	return ok
}

// Stats returns the cumulative counts.
func (b *Budget) Stats() BudgetStats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}

// Budgets holds one [Budget] per destination (a node address, a host), so
// that a transport can pick the destination's budget for each call. It is
// bounded: once it holds MaxDestinations budgets, every new destination
// shares one overflow budget.
//
// Get on a known destination takes no lock and does not allocate. The zero
// Budgets is usable with the BudgetConfig defaults and 1024 destinations.
// Budgets is safe for concurrent use.
type Budgets struct {
	cfg  BudgetConfig
	opts []Option
	max  int

	mu       sync.Mutex // serialises inserts
	m        atomic.Pointer[map[string]*Budget]
	overflow *Budget
}

// NewBudgets returns a keyed set of budgets, each made with cfg and the
// options, for at most maxDestinations destinations (zero or negative means
// DefaultMaxDestinations).
func NewBudgets(cfg BudgetConfig, maxDestinations int, opts ...Option) *Budgets {
	return &Budgets{cfg: cfg, max: maxDestinations, opts: opts}
}

// Get returns the budget of dest, making it on first use (which allocates
// and copies the index: O(destinations)). Past the bound, Get returns the
// shared overflow budget.
func (bs *Budgets) Get(dest string) *Budget {
	if m := bs.m.Load(); m != nil {
		if b, ok := (*m)[dest]; ok {
			return b
		}
	}
	bs.mu.Lock()
	defer bs.mu.Unlock()
	var old map[string]*Budget
	if m := bs.m.Load(); m != nil {
		old = *m
		if b, ok := old[dest]; ok {
			return b
		}
	}
	limit := bs.max
	if limit <= 0 {
		limit = DefaultMaxDestinations
	}
	if len(old) >= limit {
		if bs.overflow == nil {
			bs.overflow = NewBudget(bs.cfg, bs.opts...)
		}
		return bs.overflow
	}
	m := make(map[string]*Budget, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	b := NewBudget(bs.cfg, bs.opts...)
	m[dest] = b
	bs.m.Store(&m)
	return b
}

// Len returns the number of destinations with their own budget.
func (bs *Budgets) Len() int {
	if m := bs.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}
