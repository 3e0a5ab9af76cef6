package httpmw

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/ratelimit"
)

// Breaker guards each node with its own circuit breaker from a
// breaker.Group (see WithBreakers), keyed by the request's URL host: the
// node address once failover has routed the request.
//
// A breaker that rejects the request makes RoundTrip return an error
// matching breaker.ErrOpen at once, without calling the next RoundTripper.
// An admitted request's result counts as:
//
//   - Failure: a connection error, an attempt timeout, a 5xx other than 501;
//   - Neutral: the caller's context done, a local rejection by a layer below
//     (bulkhead full, rate limited), a 429;
//   - Success: any other response, 4xx included.
//
// Create it with NewBreaker (or BreakerMiddleware); the zero Breaker is not usable.
// Breaker is safe for concurrent use.
type Breaker struct {
	next  http.RoundTripper
	group *breaker.Group
}

var _ http.RoundTripper = (*Breaker)(nil)

// NewBreaker returns the breaker middleware around next (nil means
// http.DefaultTransport). Without WithBreakers it uses a group of its own
// with breaker's default settings.
func NewBreaker(next http.RoundTripper, opts ...Option) *Breaker {
	return newBreaker(next, newConfig(opts))
}

func newBreaker(next http.RoundTripper, cfg *config) *Breaker {
	g := cfg.breakers
	if g == nil {
		g = breaker.NewGroup(breaker.Settings{}, 0)
	}
	return &Breaker{next: ensureHTTP(next), group: g}
}

// Group returns the breaker group in use, to inspect or share it.
func (b *Breaker) Group() *breaker.Group { return b.group }

// RoundTrip admits r through its node's breaker, sends it, and records the
// outcome.
func (b *Breaker) RoundTrip(r *http.Request) (*http.Response, error) {
	c, _ := r.Context().Value(callKey{}).(*call)
	tk, err := b.breakerFor(c, r).Admit()
	if err != nil {
		closeRequestBody(r)
		rejected(r, err)
		return nil, writeRefused(c, r, err)
	}
	defer tk.Done(breaker.Neutral) // if next panics: free a probe slot, blame no one
	resp, err := b.next.RoundTrip(r)
	tk.Done(breakerOutcome(r, resp, err))
	return resp, err
}

// breakerFor returns the breaker of r's node, reusing the one failover
// looked up for this attempt of the call c (which may be nil) when it is
// the same.
func (b *Breaker) breakerFor(c *call, r *http.Request) *breaker.Breaker {
	node := r.URL.Host
	if c != nil && c.svc != nil && c.svc.fo.breakers == b.group && c.br != nil && c.br.Name() == node {
		return c.br
	}
	return b.group.Get(node)
}

// writeRefused returns err, the breaker's refusal of r, an attempt of the
// call c (which may be nil), as the write NodeError Failover returns for an
// open primary when r is a write confined to the primary that Failover
// chose (half-open with its probes taken, or tripped meanwhile), whatever
// layers sit above; otherwise err.
func writeRefused(c *call, r *http.Request, err error) error {
	if c != nil && c.primaryOnly && c.svc != nil {
		return &NodeError{Host: c.svc.Host, Partition: c.partition, Write: true, Err: err}
	}
	return err
}

// breakerOutcome is the breaker's view of one attempt.
func breakerOutcome(r *http.Request, resp *http.Response, err error) breaker.Outcome {
	if err == nil {
		switch o, _ := classifyStatus(resp.StatusCode); o {
		case outcomeSuccess:
			return breaker.Success
		case outcomeFailure:
			return breaker.Failure
		}
		return breaker.Neutral
	}
	if callerDone(r) || localRejection(err) {
		return breaker.Neutral
	}
	var se *StatusError // retries below this layer ran out on this status
	if errors.As(err, &se) {
		if o, _ := classifyStatus(se.Code); o == outcomeNeutral {
			return breaker.Neutral // 429, as in the canonical order
		}
	}
	return breaker.Failure
}

// callerDone reports whether the caller's context of r is done. Inside a
// rampart call the caller's context is the call's parent, so an attempt
// timeout is told apart from the caller's own deadline; outside one, any
// done context counts as the caller's.
func callerDone(r *http.Request) bool {
	ctx := r.Context()
	if c, _ := ctx.Value(callKey{}).(*call); c != nil {
		return c.callerErr(ctx) != nil
	}
	return ctx.Err() != nil
}

// localRejection reports errors made on this side by a policy, which say
// nothing of the node's health.
func localRejection(err error) bool {
	return errors.Is(err, bulkhead.ErrFull) ||
		errors.Is(err, ratelimit.ErrLimited) ||
		errors.Is(err, breaker.ErrOpen) ||
		errors.Is(err, ErrNoHealthyNode) ||
		errors.Is(err, ErrNoPartitionKey) ||
		errors.Is(err, ErrNoTopology)
}

// Bulkhead bounds the concurrent requests to each node with a bulkhead from
// a bulkhead.Group (see WithBulkheads), keyed by the request's URL host. A
// request holds its slot until the next RoundTripper returns (the response
// headers are in); a request that finds the node's bulkhead full (or its
// queue wait over, or cut short by its attempt timeout) fails with an error
// matching bulkhead.ErrFull, without being sent. A caller that gives up
// while queued gets its context's error.
//
// Create it with NewBulkhead (or BulkheadMiddleware); the zero Bulkhead is not usable.
// Bulkhead is safe for concurrent use.
type Bulkhead struct {
	next  http.RoundTripper
	group *bulkhead.Group
}

var _ http.RoundTripper = (*Bulkhead)(nil)

// NewBulkhead returns the bulkhead middleware around next (nil means
// http.DefaultTransport). Without WithBulkheads it uses a group of its own
// with bulkhead's default config (32 concurrent requests per node, no
// queue).
func NewBulkhead(next http.RoundTripper, opts ...Option) *Bulkhead {
	return newBulkhead(next, newConfig(opts))
}

func newBulkhead(next http.RoundTripper, cfg *config) *Bulkhead {
	g := cfg.bulkheads
	if g == nil {
		var err error
		g, err = bulkhead.NewGroup(bulkhead.Config{}, 0)
		if err != nil { // the zero Config is valid
			panic("httpmw: " + err.Error())
		}
	}
	return &Bulkhead{next: ensureHTTP(next), group: g}
}

// RoundTrip takes a slot of r's node, sends r, and gives the slot back.
func (b *Bulkhead) RoundTrip(r *http.Request) (*http.Response, error) {
	p, err := b.group.Get(r.URL.Host).Acquire(r.Context())
	if err != nil {
		if !callerDone(r) { // the attempt's own timeout ended the wait
			err = bulkhead.AsRefusal(err)
		}
		closeRequestBody(r)
		rejected(r, err)
		return nil, err
	}
	defer p.Release() // also if next panics
	if d := p.Waited(); d > 0 {
		bulkheadWaited(r, d)
	}
	return b.next.RoundTrip(r)
}

// RateLimit makes every request wait for the limiter (see WithRateLimit)
// once before it is sent: in the canonical order it sits outside the retry
// loop, so it counts logical calls, not attempts. A request the limiter
// rejects fails with the limiter's error (ratelimit.ErrLimited for a
// *ratelimit.Limiter) without being sent. Without a limiter it passes every
// request through.
//
// Create it with NewRateLimit (or RateLimitMiddleware); the zero RateLimit is not usable.
// RateLimit is safe for concurrent use.
type RateLimit struct {
	next    http.RoundTripper
	limiter taker // nil without a limiter
}

// taker is a Limiter that reports how long it waited, as
// *ratelimit.Limiter's Take does: waits are then recorded in the metrics.
// Only a *ratelimit.Limiter itself is used through Take: a type of the
// caller's that embeds one has Take too, but may have a Wait of its own,
// which is what WithRateLimit promises to call.
type taker interface {
	Take(ctx context.Context) (waited time.Duration, err error)
}

// waitOnly makes a Limiter that does not report its waits a taker that
// reports none.
type waitOnly struct{ Limiter }

func (w waitOnly) Take(ctx context.Context) (time.Duration, error) { return 0, w.Wait(ctx) }

var _ http.RoundTripper = (*RateLimit)(nil)

// NewRateLimit returns the rate-limit middleware around next (nil means
// http.DefaultTransport), waiting on the limiter given with WithRateLimit.
func NewRateLimit(next http.RoundTripper, opts ...Option) *RateLimit {
	return newRateLimit(next, newConfig(opts))
}

func newRateLimit(next http.RoundTripper, cfg *config) *RateLimit {
	l := &RateLimit{next: ensureHTTP(next)}
	switch lim := cfg.limiter.(type) {
	case nil:
	case *ratelimit.Limiter:
		l.limiter = lim
	default:
		l.limiter = waitOnly{lim}
	}
	return l
}

// RoundTrip waits for the limiter and sends r.
func (l *RateLimit) RoundTrip(r *http.Request) (*http.Response, error) {
	if l.limiter != nil {
		waited, err := l.limiter.Take(r.Context())
		if err != nil {
			closeRequestBody(r)
			rejected(r, err)
			return nil, err
		}
		if waited > 0 {
			rateLimitWaited(r, waited)
		}
	}
	return l.next.RoundTrip(r)
}
