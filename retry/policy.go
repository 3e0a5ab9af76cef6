package retry

import (
	"context"
	"time"

	"github.com/cenkalti/backoff/v4"
)

// Defaults used for the zero values of Policy fields.
const (
	DefaultMaxAttempts = 3
	DefaultBaseDelay   = 100 * time.Millisecond
	DefaultMaxDelay    = 5 * time.Second
	DefaultMultiplier  = 2.0
	DefaultJitter      = 0.2
)

// Policy is a retry loop: up to MaxAttempts attempts of an operation, with a
// wait between them that grows from BaseDelay by Multiplier up to MaxDelay,
// randomised by ±Jitter and never above MaxDelay.
//
// The zero Policy is usable: every field documents its zero-value default.
// Most callers want [Policy.Do]; transports that keep one budget per
// destination want [Policy.DoWithBudget]. [NewPolicy] fills in the defaults
// and sets options such as the clock.
//
// A Policy is safe for concurrent use as long as its fields are not changed
// while calls are running. It keeps nothing derived from its fields: each
// call reads them afresh, so a copy whose fields are then changed (a lower
// MaxAttempts for one call, say) follows its own values.
type Policy struct {
	// MaxAttempts is the most attempts made, counting the first.
	// Zero or negative means DefaultMaxAttempts (3); 1 means never retry.
	MaxAttempts int
	// BaseDelay is the wait before the first retry, before jitter.
	// Zero or negative means DefaultBaseDelay (100ms).
	BaseDelay time.Duration
	// MaxDelay caps every backoff wait, after jitter.
	// Zero or negative means DefaultMaxDelay (5s); if it is below BaseDelay,
	// BaseDelay is used.
	MaxDelay time.Duration
	// Multiplier is the growth of the wait from one retry to the next.
	// Zero means DefaultMultiplier (2); values below 1 mean 1 (constant wait).
	Multiplier float64
	// Jitter is the randomisation factor: each wait is drawn from
	// [w*(1-Jitter), w*(1+Jitter)] and then capped at MaxDelay.
	// Zero means DefaultJitter (0.2); negative means no jitter; above 1 means 1.
	Jitter float64
	// AttemptTimeout bounds each attempt; an attempt that runs out of it is
	// retryable, while the caller's own deadline still ends the whole call.
	// Zero or negative means no per-attempt timeout (the attempt gets the
	// caller's context). A positive value costs the allocations of one
	// context.WithTimeout per attempt, and is measured by the real clock (the
	// context package's), not by the clock set with WithClock.
	AttemptTimeout time.Duration
	// MaxPushback caps the server pushback given with [Pushback].
	// Zero means the effective MaxDelay; negative means pushback delays are
	// ignored (a negative pushback, "do not retry", is still honoured).
	MaxPushback time.Duration
	// Budget, if not nil, is deposited into once per call and must grant
	// each retry. Nil means no budget. DoWithBudget overrides it per call.
	Budget *Budget
	// OnRetry, if not nil, is called before each wait with what failed and
	// how long the wait is. It runs on the caller's goroutine, under no lock,
	// and should return quickly.
	OnRetry func(Event)

	clock Clock
}

// Attempt describes the attempt an operation is running.
type Attempt struct {
	// Number is the attempt number, 1 for the first.
	Number int
	// Waited is the backoff slept before this attempt (0 for the first).
	Waited time.Duration
}

// Event describes a retry about to happen; see Policy.OnRetry.
type Event struct {
	// Attempt is the number of the attempt that failed (1 for the first).
	Attempt int
	// Err is its error, without a Permanent or Pushback wrapper.
	Err error
	// Delay is the wait before the next attempt.
	Delay time.Duration
	// Pushback is the pushback the operation gave with [Pushback], after
	// the MaxPushback cap, or 0. (rampart's transports give the wait until
	// a candidate node is free: the server's pushback when only its node
	// can take the next attempt, 0 when another node can.)
	Pushback time.Duration
}

// NewPolicy returns a copy of p with its zero fields set to their defaults
// and the options applied (see [WithClock]).
func NewPolicy(p Policy, opts ...Option) *Policy {
	s := p.settings()
	p.MaxAttempts = s.maxAttempts
	p.BaseDelay = s.base
	p.MaxDelay = s.max
	p.Multiplier = s.mult
	if p.Jitter >= 0 {
		p.Jitter = s.jitter
	}
	if p.MaxPushback == 0 {
		p.MaxPushback = s.maxPushback
	}
	if o := applyOptions(opts); o.clock != nil {
		p.clock = o.clock
	}
	return &p
}

// settings are the effective values of a Policy's fields.
type settings struct {
	maxAttempts    int
	base, max      time.Duration
	mult, jitter   float64
	attemptTimeout time.Duration
	maxPushback    time.Duration // < 0: ignore pushback delays
	clock          Clock
}

func (p *Policy) settings() settings {
	s := settings{
		maxAttempts:    p.MaxAttempts,
		base:           p.BaseDelay,
		max:            p.MaxDelay,
		mult:           p.Multiplier,
		jitter:         p.Jitter,
		attemptTimeout: p.AttemptTimeout,
		maxPushback:    p.MaxPushback,
		clock:          p.clock,
	}
	if s.maxAttempts <= 0 {
		s.maxAttempts = DefaultMaxAttempts
	}
	if s.base <= 0 {
		s.base = DefaultBaseDelay
	}
	if s.max <= 0 {
		s.max = DefaultMaxDelay
	}
	if s.max < s.base {
		s.max = s.base
	}
	switch {
	case s.mult == 0:
		s.mult = DefaultMultiplier
	case s.mult < 1 || s.mult != s.mult: // NaN too
		s.mult = 1
	}
	switch {
	case s.jitter == 0:
		s.jitter = DefaultJitter
	case s.jitter < 0 || s.jitter != s.jitter:
		s.jitter = 0
	case s.jitter > 1:
		s.jitter = 1
	}
	if s.maxPushback == 0 {
		s.maxPushback = s.max
	}
	if s.clock == nil {
		s.clock = systemClock{}
	}
	return s
}

// Do calls op until it succeeds, returns an error that must not be retried,
// or the policy gives up; it uses p.Budget. See [Policy.DoWithBudget].
func (p *Policy) Do(ctx context.Context, op func(ctx context.Context, a Attempt) error) error {
	return p.do(ctx, p.Budget, op)
}

// DoWithBudget is Do with the retry budget b for this call (for example the
// destination's, from [Budgets.Get]); a nil b means p.Budget.
//
// op receives the attempt context: ctx itself, or a child of ctx with
// AttemptTimeout. op must not keep either argument after it returns.
//
// Do returns nil on success; the error itself (without its Permanent
// wrapper) when it is not retryable; ctx.Err() if ctx is done before the
// first attempt; otherwise an [*ExhaustedError] that wraps the last cause
// and the reason. The budget gets one deposit per call and one withdrawal per
// retry. The fields other than AttemptTimeout are normalised, and the
// backoff created, on the first failure only, so a call whose first attempt
// succeeds allocates nothing when AttemptTimeout is zero.
func (p *Policy) DoWithBudget(ctx context.Context, b *Budget, op func(ctx context.Context, a Attempt) error) error {
	if b == nil {
		b = p.Budget
	}
	return p.do(ctx, b, op)
}

// do runs the first attempt, which needs only AttemptTimeout (runAttempt
// treats a non-positive one as none), and leaves everything else to retry on
// its failure. The success path therefore reads p's fields as they are at
// the call, with no normalisation and nothing cached in p that a copy of p
// with changed fields could leave stale.
func (p *Policy) do(ctx context.Context, b *Budget, op func(context.Context, Attempt) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if b != nil {
		b.Deposit()
	}
	timeout := p.AttemptTimeout
	err := runAttempt(ctx, timeout, op, Attempt{Number: 1})
	if err == nil {
		return nil
	}
	return p.retry(ctx, b, op, timeout, err)
}

// retry is the rest of do once the first attempt has failed with err: it
// normalises p's settings (keeping the AttemptTimeout the first attempt
// ran with) and then waits and runs further attempts.
func (p *Policy) retry(ctx context.Context, b *Budget, op func(context.Context, Attempt) error, timeout time.Duration, err error) error {
	s := p.settings()
	s.attemptTimeout = timeout
	// The backoff curve lives in this frame (no allocation); it is set up
	// at the first wait.
	var (
		bo      backoff.ExponentialBackOff
		boReady bool
	)
	for n := 1; ; n++ {
		// err is attempt n's error.
		last := strip(err)
		retryable, pushback, hasPB := classify(err)
		if !retryable {
			return last // as it is, also when ctx is done too
		}
		if cerr := ctx.Err(); cerr != nil {
			return &ExhaustedError{Attempts: n, Last: last, Reason: cerr}
		}
		if n >= s.maxAttempts {
			return &ExhaustedError{Attempts: n, Last: last, Reason: ErrExhausted}
		}
		if !boReady {
			initBackoff(&bo, &s)
			boReady = true
		}
		d := bo.NextBackOff()
		if d < 0 || d > s.max { // backoff.Stop cannot happen (no MaxElapsedTime); jitter can overshoot
			d = s.max
		}
		var pb time.Duration
		if hasPB && s.maxPushback > 0 {
			pb = min(pushback, s.maxPushback)
			d = max(d, pb)
		}
		if dl, ok := ctx.Deadline(); ok && !s.clock.Now().Add(d).Before(dl) {
			return &ExhaustedError{Attempts: n, Last: last, Reason: context.DeadlineExceeded, early: true}
		}
		if b != nil && !b.Withdraw() {
			return &ExhaustedError{Attempts: n, Last: last, Reason: ErrBudget}
		}
		if p.OnRetry != nil {
			p.OnRetry(Event{Attempt: n, Err: last, Delay: d, Pushback: pb})
		}
		if err := sleep(ctx, s.clock, d); err != nil {
			return &ExhaustedError{Attempts: n, Last: last, Reason: err}
		}
		if err = runAttempt(ctx, s.attemptTimeout, op, Attempt{Number: n + 1, Waited: d}); err == nil {
			return nil
		}
	}
}

// runAttempt runs op once, under AttemptTimeout if it is positive.
func runAttempt(ctx context.Context, timeout time.Duration, op func(context.Context, Attempt) error, a Attempt) error {
	if timeout <= 0 {
		return op(ctx, a)
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	err := op(actx, a)
	cancel()
	return err
}

// initBackoff sets bo up as the backoff/v4 curve for s. The waits run on
// s's clock (see sleep).
func initBackoff(bo *backoff.ExponentialBackOff, s *settings) {
	*bo = backoff.ExponentialBackOff{
		InitialInterval:     s.base,
		RandomizationFactor: s.jitter,
		Multiplier:          s.mult,
		MaxInterval:         s.max,
		MaxElapsedTime:      0, // the caller's deadline bounds the loop
		Stop:                backoff.Stop,
		// backoff/v4 reads its clock only for the elapsed time, which
		// matters with a MaxElapsedTime; without one, a clock that is
		// never read saves a clock read per wait.
		Clock: noElapsedClock{},
	}
	bo.Reset()
}

// noElapsedClock is the backoff curve's clock: with no MaxElapsedTime,
// backoff/v4 reads it and discards the result.
type noElapsedClock struct{}

func (noElapsedClock) Now() time.Time { return time.Time{} }

// sleep waits d on c, or returns ctx.Err() as soon as ctx is done.
func sleep(ctx context.Context, c Clock, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := c.NewTimer(d)
	select {
	case <-t.C():
		return ctx.Err()
	case <-ctx.Done():
		t.Stop()
		return ctx.Err()
	}
}
