package grpcmw

import (
	"time"

	"github.com/rampart-go/rampart/breaker"
	"github.com/rampart-go/rampart/bulkhead"
	"github.com/rampart-go/rampart/ratelimit"
	"github.com/rampart-go/rampart/retry"
	"github.com/rampart-go/rampart/sampling"
	"github.com/rampart-go/rampart/topology"
)

// Option configures [DialOptions] and [NewRouter]. A nil Option is ignored.
type Option func(*config)

type config struct {
	watcher  *topology.Watcher
	router   *Router
	port     int
	hash     topology.Hasher
	breakers *breaker.Group
	noBreak  bool
	bulk     *bulkhead.Group
	noBulk   bool
	policy   *retry.Policy
	noRetry  bool
	limiter  *ratelimit.Limiter
	tracer   *sampling.Tracer
	topoWait time.Duration
}

func newConfig(opts []Option) *config {
	c := &config{}
	for _, o := range opts {
		if o != nil {
			o(c)
		}
	}
	return c
}

// router returns the Router the options describe, over w.
func (c *config) newRouter(w *topology.Watcher) *Router {
	return &Router{watcher: w, port: c.port, hash: c.hash, breakers: c.breakers,
		topoWait: c.topoWait, now: time.Now}
}

// DefaultTopologyWait is the longest a call waits for the watcher's first
// map; see [WithTopologyWait].
const DefaultTopologyWait = 5 * time.Second

// WithTopologyWait bounds how long a call that starts before the Router's
// watcher has its first map waits for one, within the call's own context,
// before it fails with Unavailable and [ErrNoTopology]. Zero means
// [DefaultTopologyWait]; negative means no wait.
func WithTopologyWait(d time.Duration) Option {
	return func(c *config) { c.topoWait = d }
}

// WithWatcher routes calls over the maps of w: the preset installs a
// [Router] over w as the resolver of "topology:///service" targets, the
// topology balancer and the [UnaryFailover] step. Without a watcher (and
// without [WithRouter]) the preset has no failover step and leaves name
// resolution and balancing to gRPC. The caller runs the watcher (go
// w.Run(ctx)).
func WithWatcher(w *topology.Watcher) Option {
	return func(c *config) { c.watcher = w }
}

// WithRouter is WithWatcher with a Router the caller built (to share it
// between ClientConns, say). It takes precedence over WithWatcher, and the
// Router's own port, hasher and breakers are used. Build it with
// WithBreakers: a Router without breakers cannot skip nodes whose breaker
// is open (the preset's breaker step then guards each node with a group
// of its own, which failover does not see).
func WithRouter(r *Router) Option {
	return func(c *config) { c.router = r }
}

// WithPort sets the port of nodes the topology map lists without one.
// Zero (the default) leaves such nodes without a port, which fails to dial:
// set it unless the map lists ports.
func WithPort(port int) Option {
	return func(c *config) { c.port = port }
}

// WithHasher sets the partition key hash; nil (the default) means
// topology.FNV1a32. It must be the hash the cluster uses.
func WithHasher(h topology.Hasher) Option {
	return func(c *config) { c.hash = h }
}

// WithBreakers sets the per-node breakers. Nil (the default) means a new
// group with the zero breaker.Settings (5 consecutive failures trip a node
// for 10s).
func WithBreakers(g *breaker.Group) Option {
	return func(c *config) { c.breakers = g }
}

// WithoutBreakers leaves the breaker step out of the preset.
func WithoutBreakers() Option {
	return func(c *config) { c.noBreak = true }
}

// WithBulkheads sets the per-node bulkheads. Nil (the default) means a new
// group of bulkheads with 32 concurrent calls per node and a queue of 128
// calls that wait at most until their context ends.
func WithBulkheads(g *bulkhead.Group) Option {
	return func(c *config) { c.bulk = g }
}

// WithoutBulkheads leaves the bulkhead step out of the preset.
func WithoutBulkheads() Option {
	return func(c *config) { c.noBulk = true }
}

// WithRetry sets the retry policy. Nil (the default) means the zero
// retry.Policy: 3 attempts, backoff from 100ms to 5s with jitter, no budget.
func WithRetry(p *retry.Policy) Option {
	return func(c *config) { c.policy = p }
}

// WithoutRetry leaves the retry step out of the preset.
func WithoutRetry() Option {
	return func(c *config) { c.noRetry = true }
}

// WithRateLimit puts l in the preset: one token per logical call, retries
// included. Nil (the default) means no rate limit step.
func WithRateLimit(l *ratelimit.Limiter) Option {
	return func(c *config) { c.limiter = l }
}

// WithTracer puts tracing in the preset: [UnaryTracing] outermost and
// [UnaryAttemptTracing] innermost, with t. Nil (the default) means no
// tracing.
func WithTracer(t *sampling.Tracer) Option {
	return func(c *config) { c.tracer = t }
}
