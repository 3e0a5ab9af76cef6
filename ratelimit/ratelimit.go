// Package ratelimit limits the rate of calls with a token bucket (on
// golang.org/x/time/rate) and either rejects a call at once or lets it wait a
// bounded time for a token, never past its context's deadline.
//
// A [Limiter] refills [Config.Rate] tokens per second into a bucket of
// [Config.Burst] tokens; each call takes one. [Limiter.Wait] waits up to
// [Config.MaxWait] for a token and fails at once with [ErrLimited] when the
// token would come later than that, or later than the context's deadline.
// [Limiter.Allow] never waits. A [Group] holds one limiter per key, bounded
// in number.
//
// The package knows nothing of HTTP or gRPC.
package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// ErrLimited is returned, at once, by [Limiter.Wait] when no token is
// available within [Config.MaxWait] and the context's deadline.
var ErrLimited = errors.New("ratelimit: limited")

// Config sets the limits of a [Limiter]. Rate and Burst have no default: the
// zero Config is an error.
type Config struct {
	// Rate is the number of tokens added to the bucket per second; use
	// rate.Every(d) for one token every d. rate.Inf disables the limit (every
	// call passes at once). Zero, negative and NaN are errors.
	Rate rate.Limit

	// Burst is the size of the bucket: the most calls that may pass at once
	// after a quiet spell. It must be >= 1 (zero is an error), even with
	// rate.Inf.
	Burst int

	// MaxWait is the longest Wait waits for a token. Zero means Wait never
	// waits: it takes a token if one is there or returns ErrLimited at once,
	// like Allow. Negative is an error.
	MaxWait time.Duration
}

func (cfg Config) validate() error {
	if math.IsNaN(float64(cfg.Rate)) || cfg.Rate <= 0 {
		return fmt.Errorf("ratelimit: Rate must be > 0 (rate.Inf for no limit), got %v", float64(cfg.Rate))
	}
	if cfg.Burst < 1 {
		return fmt.Errorf("ratelimit: Burst must be >= 1, got %d", cfg.Burst)
	}
	if cfg.MaxWait < 0 {
		return fmt.Errorf("ratelimit: MaxWait must be >= 0, got %v", cfg.MaxWait)
	}
	return nil
}

// Limiter is a token bucket that lets a call wait a bounded time for a token
// or rejects it at once.
//
// The bucket starts full. The zero value is not usable; create one with
// [New]. Most callers want [Limiter.Wait], once per logical call (a retried
// call does not take a token per attempt). A Limiter is safe for concurrent
// use.
type Limiter struct {
	lim   *rate.Limiter
	cfg   Config
	clock Clock

	// mu makes Wait's reserve, check and cancel one step with respect to
	// other Waits, so a rejected reservation is always the newest one and
	// cancelling it gives back its whole token.
	mu sync.Mutex
}

// New returns a limiter with the limits of cfg. It returns an error when
// cfg.Rate is not > 0, cfg.Burst < 1 or cfg.MaxWait < 0.
func New(cfg Config, opts ...Option) (*Limiter, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return newLimiter(cfg, buildOptions(opts)), nil
}

func newLimiter(cfg Config, o options) *Limiter {
	return &Limiter{lim: rate.NewLimiter(cfg.Rate, cfg.Burst), cfg: cfg, clock: o.clock}
}

// Config returns the limits in use.
func (l *Limiter) Config() Config { return l.cfg }

// Allow takes a token if one is available now and reports whether it did.
// It never waits and allocates nothing.
func (l *Limiter) Allow() bool {
	return l.lim.AllowN(l.clock.Now(), 1)
}

// Tokens returns the number of tokens in the bucket now; it is negative while
// calls are waiting for tokens they reserved. With rate.Inf it is Burst.
func (l *Limiter) Tokens() float64 {
	if l.cfg.Rate == rate.Inf {
		return float64(l.cfg.Burst)
	}
	return l.lim.TokensAt(l.clock.Now())
}

// full reports whether the bucket is full at now, that is whether l is
// indistinguishable from a new limiter.
func (l *Limiter) full(now time.Time) bool {
	return l.cfg.Rate == rate.Inf || l.lim.TokensAt(now) >= float64(l.cfg.Burst)
}

// Wait takes a token, waiting for one if needed.
//
// It returns the context's error at once if ctx is already done. If a token
// is available it returns nil at once. Otherwise it reserves the next token
// and, if that token comes within [Config.MaxWait] and no later than ctx's
// deadline (measured from the clock's Now), waits for it on the clock's timer; else it cancels the
// reservation, so no token is lost, and returns [ErrLimited] at once without
// waiting. If ctx is done while waiting, Wait cancels the reservation and
// returns the context's error. (As with x/time/rate's CancelAt, a cancelled
// wait gives back only the part of its token that later reservations have not
// already counted on.)
//
// Wait allocates nothing when it returns at once; a call that waits
// allocates the clock's timer.
func (l *Limiter) Wait(ctx context.Context) error {
	_, err := l.Take(ctx)
	return err
}

// Take is Wait that also reports how long it waited for its token: the
// token's delay when Take waited it out, 0 when a token was available at
// once or when it returns an error.
func (l *Limiter) Take(ctx context.Context) (waited time.Duration, err error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	now := l.clock.Now()
	if l.lim.AllowN(now, 1) {
		return 0, nil
	}
	if l.cfg.MaxWait == 0 {
		return 0, ErrLimited
	}

	l.mu.Lock()
	now = l.clock.Now()
	r := l.lim.ReserveN(now, 1)
	if !r.OK() { // cannot happen with Burst >= 1; be safe anyway
		l.mu.Unlock()
		return 0, ErrLimited
	}
	delay := r.DelayFrom(now)
	if delay == 0 {
		l.mu.Unlock()
		return 0, nil
	}
	budget := l.cfg.MaxWait
	if deadline, ok := ctx.Deadline(); ok {
		budget = min(budget, deadline.Sub(now))
	}
	if delay > budget {
		r.CancelAt(now)
		l.mu.Unlock()
		return 0, ErrLimited
	}
	l.mu.Unlock()

	c, stop := l.clock.NewTimer(delay)
	select {
	case <-c:
		return delay, nil
	case <-ctx.Done():
		stop()
		// Under l.mu, as the rejections above reserve and cancel: a
		// rejection's CancelAt between this one's would make x/time/rate
		// take this reservation for an older one and give nothing back.
		l.mu.Lock()
		r.CancelAt(l.clock.Now())
		l.mu.Unlock()
		return 0, ctx.Err()
	}
}
