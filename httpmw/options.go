package httpmw

import (
	"context"
	"net/http"
	"time"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/retry"
)

// Option configures the middleware constructors of this package and the
// preset. Every constructor takes the same options and reads those that
// concern it; a nil Option is ignored.
type Option func(*config)

// Limiter is what the rate-limit middleware needs: Wait blocks until the
// call may go, or returns an error (a rejection, or the context's error).
// A *ratelimit.Limiter satisfies it.
type Limiter interface {
	Wait(ctx context.Context) error
}

type config struct {
	breakers  *breaker.Group
	bulkheads *bulkhead.Group
	limiter   Limiter
	policy    *retry.Policy
	budgets   *retry.Budgets
	services  map[string]*service
	bodyLimit int64
	now       func() time.Time
	tracer    *tracerConfig
	base      http.RoundTripper
}

func newConfig(opts []Option) *config {
	c := &config{bodyLimit: DefaultBodyLimit}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// DefaultBodyLimit is the largest request body, in bytes, that the retry
// layer buffers for replay when the request has no GetBody.
const DefaultBodyLimit = 1 << 20

// WithBreakers makes the breaker middleware use g (one breaker per node
// address), and failover skip nodes whose breaker in g is open. A nil g is
// ignored. Without it, NewBreaker makes its own group with default settings,
// and the preset shares one group between failover and breaker.
func WithBreakers(g *breaker.Group) Option {
	return func(c *config) {
		if g != nil {
			c.breakers = g
		}
	}
}

// WithBulkheads makes the bulkhead middleware use g (one bulkhead per node
// address). A nil g is ignored. Without it NewBulkhead makes a group with
// bulkhead's default config (32 concurrent calls per node, no queue).
func WithBulkheads(g *bulkhead.Group) Option {
	return func(c *config) {
		if g != nil {
			c.bulkheads = g
		}
	}
}

// WithRateLimit makes the rate-limit middleware wait on l once per call. A
// nil l is ignored. The preset has no rate limit without it.
func WithRateLimit(l Limiter) Option {
	return func(c *config) {
		if l != nil {
			c.limiter = l
		}
	}
}

// WithRetry makes the retry middleware use p (see retry.Policy for its
// defaults). A nil p is ignored; without it the retry middleware uses the
// zero retry.Policy: 3 attempts, 100ms base delay, 5s cap. p must not be
// changed afterwards.
func WithRetry(p *retry.Policy) Option {
	return func(c *config) {
		if p != nil {
			c.policy = p
		}
	}
}

// WithRetryBudgets gives the retry middleware one retry budget per
// destination (the request's URL host, which for a failover service is the
// logical host). A nil b is ignored; without it the policy's own Budget, if
// any, applies.
func WithRetryBudgets(b *retry.Budgets) Option {
	return func(c *config) {
		if b != nil {
			c.budgets = b
		}
	}
}

// WithBodyLimit sets the largest request body, in bytes, that the retry
// middleware buffers so it can replay it when the request has no GetBody.
// A larger body is sent once and not retried. Zero or negative means
// DefaultBodyLimit (1 MiB).
func WithBodyLimit(n int64) Option {
	return func(c *config) {
		if n <= 0 {
			n = DefaultBodyLimit
		}
		c.bodyLimit = n
	}
}

// WithClock sets the clock the middleware reads (for Retry-After dates). A
// nil now is ignored. The retry waits themselves run on the retry policy's
// clock (retry.WithClock).
func WithClock(now func() time.Time) Option {
	return func(c *config) {
		if now != nil {
			c.now = now
		}
	}
}

// WithService configures failover for requests whose URL host equals
// s.Host, ignoring case as DNS does. It may be given several times, once
// per logical host; a later one for the same host replaces the earlier. A Service without Host or
// Topology is ignored.
func WithService(s Service) Option {
	return func(c *config) {
		if s.Host == "" || s.Topology == nil {
			return
		}
		if c.services == nil {
			c.services = make(map[string]*service)
		}
		c.services[hostKey(s.Host)] = newService(s)
	}
}

// ensureHTTP returns next, or http.DefaultTransport when next is nil.
func ensureHTTP(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		return http.DefaultTransport
	}
	return next
}
